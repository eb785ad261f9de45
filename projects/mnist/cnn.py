"""A small Keras 3 convolutional network wrapped as a scikit-learn classifier.

TensorFlow and Keras are imported only to train, never when this module is imported, so the other MNIST
models (and every other project) load without them. A trained network predicts in NumPy from its weights
(checked against Keras at the end of ``fit``), so loading and serving a CNN pipeline needs no TensorFlow.

The recipe that lifts a plain two-convolution network to the project's bar in a few epochs on a CPU
(docs/mnist.md gives the figures): batch normalisation after every convolution, light augmentation
(random shifts of up to 2 pixels and rotations of up to ~8 degrees, applied only while training), and a
one-cycle style learning-rate schedule (linear warm-up, then cosine decay to almost zero) with Adam.
"""

from __future__ import annotations

import logging
import math
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted

from common.errors import InputError, ParameterError

log = logging.getLogger(__name__)

_INSTALL = (
    "model=cnn needs TensorFlow and Keras 3, which are an optional extra: install them with "
    "`pip install -e '.[cnn]'` (or `make venv EXTRAS=dev,cnn`), or choose model=classical or model=xgboost."
)


def tensorflow_available() -> bool:
    """True when TensorFlow and Keras can be imported (checked without importing them)."""
    from importlib.util import find_spec

    return find_spec("tensorflow") is not None and find_spec("keras") is not None


def _keras() -> Any:
    """Import Keras on the TensorFlow backend (lazily: only the CNN pays for it).

    Raises:
        ParameterError: when TensorFlow or Keras is not installed, saying how to install them.
    """
    # Quiet TensorFlow's C++ start-up banner and pin the backend, unless the user chose otherwise.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    try:
        import keras
    except ImportError as exc:
        raise ParameterError(f"{_INSTALL} ({exc})") from exc
    return keras


def network(keras: Any, n_classes: int, width: int = 32) -> Any:
    """The convolutional network: 28x28x1 in, class probabilities out.

    Four 3x3 convolutions, each followed by batch normalisation and ReLU; the second and fourth have
    stride 2 (learned down-sampling, 28 -> 14 -> 7). Then dropout and a softmax layer on the flattened
    7x7 maps. About 7 M multiply-adds per image: cheap enough for a few epochs on two CPU cores.
    """
    layers = keras.layers

    def conv(x: Any, filters: int, strides: int = 1) -> Any:
        x = layers.Conv2D(filters, 3, strides=strides, padding="same", use_bias=False)(x)
        # momentum 0.9: the running statistics settle within a few hundred steps (short runs predict well too)
        x = layers.BatchNormalization(momentum=0.9)(x)
        return layers.ReLU()(x)

    inputs = keras.Input((28, 28, 1), name="image")
    x = conv(inputs, width)
    x = conv(x, width, strides=2)
    x = conv(x, 2 * width)
    x = conv(x, 2 * width, strides=2)
    x = layers.Flatten()(x)
    x = layers.Dropout(0.3)(x)
    outputs = layers.Dense(n_classes, activation="softmax", name="proba")(x)
    return keras.Model(inputs, outputs, name="mnist_cnn")


def _as_batch(X: Any) -> np.ndarray:
    """Scaled images (n, 28, 28) or (n, 784) -> float32 (n, 28, 28, 1)."""
    arr = np.asarray(X, dtype=np.float32)
    if arr.ndim == 2 and arr.shape[1] == 784:
        arr = arr.reshape(-1, 28, 28)
    if arr.ndim == 4 and arr.shape[1:] == (28, 28, 1):
        return arr
    if arr.ndim != 3 or arr.shape[1:] != (28, 28):
        raise InputError(f"KerasCNN expects (n, 28, 28) or (n, 784) scaled images; got shape {arr.shape}.")
    return arr[..., None]


# ------------------------------------------------------------------------------ NumPy inference
# Predicting with the trained network needs only its weights. Running the forward pass in NumPy means a
# loaded CNN pipeline predicts without importing TensorFlow (about 3 s of a new process on 2 cores, more
# than the whole load-and-predict budget), and serving it needs no TensorFlow at all.

def inference_plan(net: Any, keras: Any) -> list[tuple[str, dict[str, Any]]] | None:
    """The network as a list of NumPy steps, or ``None`` when it has a layer or option not handled here."""
    to_np = keras.ops.convert_to_numpy
    plan: list[tuple[str, dict[str, Any]]] = []
    for layer in net.layers:
        kind, cfg = type(layer).__name__, layer.get_config()
        if kind in ("InputLayer", "Dropout"):  # dropout is the identity at inference
            continue
        if kind == "Conv2D":
            if (cfg["data_format"] != "channels_last" or tuple(cfg["dilation_rate"]) != (1, 1)
                    or cfg.get("groups", 1) != 1 or cfg["activation"] != "linear"):
                return None
            plan.append(("conv", {"kernel": to_np(layer.kernel).astype(np.float32),
                                  "bias": to_np(layer.bias).astype(np.float32) if cfg["use_bias"] else None,
                                  "strides": tuple(cfg["strides"]), "padding": cfg["padding"]}))
        elif kind == "BatchNormalization":
            if cfg["axis"] not in (-1, 3, [-1], [3]):
                return None
            inv = 1.0 / np.sqrt(to_np(layer.moving_variance) + cfg["epsilon"])
            scale = inv * (to_np(layer.gamma) if cfg["scale"] else 1.0)
            shift = (to_np(layer.beta) if cfg["center"] else 0.0) - to_np(layer.moving_mean) * scale
            plan.append(("affine", {"scale": scale.astype(np.float32), "shift": shift.astype(np.float32)}))
        elif kind == "ReLU":
            if cfg.get("max_value") is not None or cfg.get("negative_slope", 0) or cfg.get("threshold", 0):
                return None
            plan.append(("relu", {}))
        elif kind == "Flatten":
            plan.append(("flatten", {}))
        elif kind == "Dense":
            if cfg["activation"] not in ("linear", "relu", "softmax"):
                return None
            plan.append(("dense", {"kernel": to_np(layer.kernel).astype(np.float32),
                                   "bias": to_np(layer.bias).astype(np.float32) if cfg["use_bias"] else None,
                                   "activation": cfg["activation"]}))
        else:
            return None
    return _fuse(plan)


def _fuse(plan: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, dict[str, Any]]]:
    """Fold each batch normalisation that follows a convolution into the convolution's kernel and bias."""
    fused: list[tuple[str, dict[str, Any]]] = []
    for kind, p in plan:
        if kind == "affine" and fused and fused[-1][0] == "conv":
            conv = fused[-1][1]
            bias = conv["bias"] if conv["bias"] is not None else np.zeros_like(p["shift"])
            fused[-1] = ("conv", {**conv, "kernel": (conv["kernel"] * p["scale"]).astype(np.float32),
                                  "bias": (bias * p["scale"] + p["shift"]).astype(np.float32)})
        else:
            fused.append((kind, p))
    return fused


def _conv2d(x: np.ndarray, kernel: np.ndarray, strides: tuple[int, int], padding: str) -> np.ndarray:
    """A channels-last 2-D convolution as one matrix product over the image patches (TF's padding rule)."""
    n, h, w, c = x.shape
    kh, kw, _, out = kernel.shape
    sh, sw = strides
    if padding == "same":
        oh, ow = -(-h // sh), -(-w // sw)
        ph, pw = max((oh - 1) * sh + kh - h, 0), max((ow - 1) * sw + kw - w, 0)
        x = np.pad(x, ((0, 0), (ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2), (0, 0)))
    else:
        oh, ow = (h - kh) // sh + 1, (w - kw) // sw + 1
    patches = np.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(1, 2))[:, ::sh, ::sw][:, :oh, :ow]
    cols = patches.reshape(n * oh * ow, c * kh * kw)  # (c, kh, kw) order, matched by the kernel below
    return (cols @ kernel.transpose(2, 0, 1, 3).reshape(c * kh * kw, out)).reshape(n, oh, ow, out)


def run_plan(plan: list[tuple[str, dict[str, Any]]], images: np.ndarray, chunk: int = 128) -> np.ndarray:
    """Class probabilities for (n, 28, 28, 1) float32 images, ``chunk`` images at a time (bounded memory)."""
    outputs = []
    for start in range(0, len(images), chunk):
        x = batch = images[start:start + chunk]
        for kind, p in plan:
            if kind == "conv":
                x = _conv2d(x, p["kernel"], p["strides"], p["padding"])
                if p["bias"] is not None:
                    x += p["bias"]
            elif kind == "affine":
                x = x * p["scale"] + p["shift"]
            elif kind == "relu":
                x = np.maximum(x, 0) if np.may_share_memory(x, batch) else np.maximum(x, 0, out=x)  # keep the input
            elif kind == "flatten":
                x = x.reshape(len(x), -1)
            elif kind == "dense":
                x = x @ p["kernel"]
                if p["bias"] is not None:
                    x = x + p["bias"]
                if p["activation"] == "relu":
                    x = np.maximum(x, 0)
                elif p["activation"] == "softmax":
                    x = np.exp(x - x.max(axis=1, keepdims=True))
                    x = x / x.sum(axis=1, keepdims=True)
        outputs.append(x.astype(np.float32))
    return np.concatenate(outputs) if outputs else np.zeros((0, 0), np.float32)


def checked_plan(net: Any, keras: Any, sample: np.ndarray) -> list[tuple[str, dict[str, Any]]] | None:
    """``inference_plan`` kept only when it reproduces Keras's probabilities on ``sample`` (else ``None``)."""
    plan = inference_plan(net, keras)
    if plan is None:
        log.info("cnn: the network has a layer NumPy inference does not handle; predicting with Keras")
        return None
    expected = keras.ops.convert_to_numpy(net(sample, training=False))
    got = run_plan(plan, sample)
    gap = float(np.max(np.abs(expected - got))) if got.shape == expected.shape else float("inf")
    if gap > 1e-4:
        log.warning("cnn: NumPy inference differs from Keras by %.2g; predicting with Keras", gap)
        return None
    return plan


class KerasCNN(ClassifierMixin, BaseEstimator):
    """A small CNN (Keras 3 on TensorFlow) as a scikit-learn classifier that pickles.

    Takes images scaled to 0-1 as (n, 28, 28) or (n, 784) (``PixelScaler`` does that in the pipeline).
    Pickling stores the trained network as ``.keras`` bytes (returned by ``keras_model()``) and its
    weights as a NumPy inference plan, which ``predict`` runs without TensorFlow.

    Args:
        epochs: passes over the training images.
        batch_size: images per gradient step.
        learning_rate: the peak learning rate of the one-cycle schedule (Adam).
        width: filters of the first convolutions (doubled in each later stage).
        augment: random shifts and rotations while training.
        seed: seeds Python, NumPy and TensorFlow (``keras.utils.set_random_seed``) for repeatable runs.
        verbose: Keras progress output (0 silent, 2 one line per epoch).
    """

    def __init__(self, epochs: int = 3, batch_size: int = 128, learning_rate: float = 3e-3, width: int = 32,
                 augment: bool = True, seed: int = 0, verbose: int = 0) -> None:
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.width = width
        self.augment = augment
        self.seed = seed
        self.verbose = verbose

    # ------------------------------------------------------------------------------------------ fitting
    def fit(self, X: Any, y: Any) -> KerasCNN:
        if self.epochs < 1 or self.batch_size < 1:
            raise ParameterError(f"KerasCNN needs epochs >= 1 and batch_size >= 1; got {self.epochs}, {self.batch_size}.")
        images = _as_batch(X)  # before importing Keras: a wrong input fails fast
        keras = _keras()
        self.classes_, target = np.unique(np.asarray(y), return_inverse=True)
        self.n_features_in_ = 784
        keras.utils.set_random_seed(self.seed)
        net = network(keras, len(self.classes_), self.width)
        if self.augment:
            # Augmentation layers wrap the network only while training; the saved network has none.
            aug = keras.Sequential([
                keras.layers.RandomRotation(0.022, fill_mode="constant", seed=self.seed),  # about 8 degrees
                keras.layers.RandomTranslation(0.07, 0.07, fill_mode="constant", seed=self.seed + 1),  # 2 px
            ], name="augment")
            inputs = keras.Input((28, 28, 1))
            trainer = keras.Model(inputs, net(aug(inputs)), name="mnist_cnn_training")
        else:
            trainer = net
        steps = self.epochs * math.ceil(len(images) / self.batch_size)
        warmup = max(1, int(0.15 * steps))
        schedule = keras.optimizers.schedules.CosineDecay(
            initial_learning_rate=self.learning_rate / 10, decay_steps=max(1, steps - warmup), alpha=0.01,
            warmup_target=self.learning_rate, warmup_steps=warmup,
        )
        trainer.compile(optimizer=keras.optimizers.Adam(schedule), loss="sparse_categorical_crossentropy",
                        metrics=["accuracy"])
        timer = _EpochTimer.make(keras)
        history = trainer.fit(images, target, batch_size=self.batch_size, epochs=self.epochs, shuffle=True,
                              verbose=self.verbose, callbacks=[timer])
        self.history_ = {k: [float(v) for v in vals] for k, vals in history.history.items()}
        self.epoch_seconds_ = list(timer.seconds)
        for i, secs in enumerate(self.epoch_seconds_):
            log.info("cnn epoch %d/%d: %.1fs, loss %.4f, accuracy %.4f", i + 1, self.epochs, secs,
                     self.history_["loss"][i], self.history_["accuracy"][i])
        self._net = net
        self._net_bytes = None
        self._plan = checked_plan(net, keras, images[:64])
        return self

    # --------------------------------------------------------------------------------------- predicting
    def predict_proba(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "classes_")
        images = _as_batch(X)
        if getattr(self, "_plan", None) is not None:
            return run_plan(self._plan, images)
        net = self.keras_model()
        # Calling the network directly avoids model.predict's per-call set-up, which dominates small batches.
        keras = _keras()
        chunks = [keras.ops.convert_to_numpy(net(images[i:i + 1024], training=False))
                  for i in range(0, len(images), 1024)]
        return np.concatenate(chunks) if chunks else np.zeros((0, len(self.classes_)), np.float32)

    def predict(self, X: Any) -> np.ndarray:
        proba = self.predict_proba(X)  # first: it checks that the model is fitted
        return self.classes_[np.argmax(proba, axis=1)]

    # --------------------------------------------------------------------------------------- pickling
    def keras_model(self) -> Any:
        """The trained Keras network (rebuilt from its saved bytes on first use; imports TensorFlow)."""
        if getattr(self, "_net", None) is None:
            keras = _keras()
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "network.keras"
                path.write_bytes(self._net_bytes)
                self._net = keras.saving.load_model(path, compile=False)
        return self._net

    def __getstate__(self) -> dict[str, Any]:
        state = dict(super().__getstate__())  # a copy: the live network must stay on self
        net = state.pop("_net", None)
        if net is not None and state.get("_net_bytes") is None:
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "network.keras"
                net.save(path)
                state["_net_bytes"] = path.read_bytes()
            self._net_bytes = state["_net_bytes"]  # serialise once, however often the model is pickled
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self._net = None


class _EpochTimer:
    """Builds a Keras callback that records the wall time of every epoch (Keras is imported lazily)."""

    @staticmethod
    def make(keras: Any) -> Any:
        class EpochTimer(keras.callbacks.Callback):
            def __init__(self) -> None:
                super().__init__()
                self.seconds: list[float] = []
                self._start = 0.0

            def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
                self._start = time.perf_counter()

            def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
                self.seconds.append(time.perf_counter() - self._start)

        return EpochTimer()
