"""mnist pipelines: raw 0-255 images in, digits out. One of three models, chosen by ``model``.

- ``xgboost``: deskewed images scaled to 0-1, then gradient-boosted trees (``hist``) that stop early on
  a validation part carved from the training rows inside ``fit``.
- ``classical``: deskewed and centred images, PCA, an RBF support-vector machine, refitted on its own
  support vectors plus copies shifted by one pixel ("virtual support vectors", DeCoste & Schoelkopf 2002).
- ``cnn``: a small Keras convolutional network (needs the ``cnn`` extra; TensorFlow is imported only
  when this model is fitted or predicts).

Every learned step (the validation split, PCA, the SVM, the network) sees only the rows it is fitted on:
the given 10,000-image test set is scored by a model that never saw it.
"""

from __future__ import annotations

import logging
from typing import Any, Literal

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.decomposition import PCA
from sklearn.dummy import DummyClassifier
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.svm import SVC
from sklearn.utils.validation import check_is_fitted

from common.errors import ParameterError
from projects.mnist.cnn import KerasCNN, tensorflow_available
from projects.mnist.features import SIDE, Deskew, PixelScaler, shift

log = logging.getLogger(__name__)

MODELS = ("xgboost", "classical", "cnn")
DEVICES = ("cpu", "cuda")


# --------------------------------------------------------------------------------------------- xgboost
class EarlyStoppingXGB(ClassifierMixin, BaseEstimator):
    """XGBoost (``hist``) that holds out ``validation_fraction`` of the rows it is fitted on and stops
    adding trees when the validation log-loss has not improved for ``early_stopping_rounds`` rounds.

    The split happens inside ``fit``, so cross-validation or a test score never lets the stopping rule
    see scored rows. The fitted booster predicts on the CPU, so a model trained with ``device="cuda"``
    loads and serves anywhere.

    Args:
        n_estimators: the most boosting rounds (each adds one tree per class).
        learning_rate: shrinkage per round.
        max_depth: depth of each tree.
        max_bin: histogram bins per feature (grey values need few).
        subsample: fraction of rows sampled per tree.
        colsample_bytree: fraction of pixels sampled per tree.
        early_stopping_rounds: patience on the validation log-loss.
        validation_fraction: share of the training rows held out for early stopping (stratified).
        device: ``cpu`` or ``cuda`` (``cuda:<n>``).
        n_jobs: threads (None = all cores).
        random_state: seeds the split and the sampling.
    """

    def __init__(self, n_estimators: int = 1000, learning_rate: float = 0.3, max_depth: int = 6,
                 max_bin: int = 16, subsample: float = 0.7, colsample_bytree: float = 0.35,
                 early_stopping_rounds: int = 10, validation_fraction: float = 0.1, device: str = "cpu",
                 n_jobs: int | None = None, random_state: int = 0) -> None:
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.max_depth = max_depth
        self.max_bin = max_bin
        self.subsample = subsample
        self.colsample_bytree = colsample_bytree
        self.early_stopping_rounds = early_stopping_rounds
        self.validation_fraction = validation_fraction
        self.device = device
        self.n_jobs = n_jobs
        self.random_state = random_state

    def fit(self, X: Any, y: Any) -> EarlyStoppingXGB:
        import xgboost as xgb

        if self.device.startswith("cuda") and not xgb.build_info().get("USE_CUDA", False):
            raise ParameterError(
                f"device={self.device} needs an XGBoost build with CUDA and an NVIDIA GPU; this XGBoost "
                "has no CUDA support. Use device=cpu."
            )
        # A CUDA build on a machine without a GPU warns and trains on the CPU instead.
        X = np.asarray(X, dtype=np.float32)
        self.classes_, target = np.unique(np.asarray(y), return_inverse=True)
        self.n_features_in_ = X.shape[1]
        try:
            X_fit, X_val, y_fit, y_val = train_test_split(
                X, target, test_size=self.validation_fraction, stratify=target, random_state=self.random_state)
        except ValueError:  # a class too rare to stratify (tiny samples): split without stratification
            X_fit, X_val, y_fit, y_val = train_test_split(
                X, target, test_size=self.validation_fraction, random_state=self.random_state)
        self.model_ = xgb.XGBClassifier(
            n_estimators=self.n_estimators, learning_rate=self.learning_rate, max_depth=self.max_depth,
            max_bin=self.max_bin, subsample=self.subsample, colsample_bytree=self.colsample_bytree,
            tree_method="hist", device=self.device, n_jobs=self.n_jobs, random_state=self.random_state,
            # Blank pixels (0) as "missing": ~75% of MNIST pixels are blank, and the histograms then skip
            # them, which makes each round ~2.5x faster. Nothing is lost: every split still learns which
            # side blank pixels go to.
            missing=0.0, objective="multi:softprob", eval_metric="mlogloss", early_stopping_rounds=self.early_stopping_rounds,
        )
        self.model_.fit(X_fit, y_fit, eval_set=[(X_val, y_val)], verbose=False)
        self.best_iteration_ = int(self.model_.best_iteration)
        self.validation_logloss_ = float(self.model_.best_score)
        log.info("xgboost stopped at round %d of %d (validation log-loss %.4f)", self.best_iteration_ + 1,
                 self.n_estimators, self.validation_logloss_)
        self.model_.set_params(device="cpu")
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "model_")
        # predict_proba uses the trees up to the best validation round.
        return self.model_.predict_proba(np.asarray(X, dtype=np.float32))

    def predict(self, X: Any) -> np.ndarray:
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


# ------------------------------------------------------------------------------------------- classical
class VirtualSVC(ClassifierMixin, BaseEstimator):
    """PCA + RBF SVM, refitted on its support vectors and their one-pixel shifts (virtual SVs).

    The support vectors are the training images the decision boundary rests on; shifted copies of them
    teach the SVM small translation invariance at a fraction of the cost of augmenting every image.
    Takes flat (n, 784) images (deskewed, 0-1).

    Args:
        n_components: PCA dimensions (PCA is fitted on all training rows, before augmentation).
        C: SVM regularisation.
        gamma: RBF width; ``scale`` = 1 / (n_components * variance of the PCA scores).
        shifts: 0 (plain SVM), 4 (up/down/left/right) or 8 (also diagonals) shifted copies per SV.
        cache_mb: libsvm kernel cache.
    """

    def __init__(self, n_components: int = 50, C: float = 5.0, gamma: float | str = "scale", shifts: int = 4,
                 cache_mb: int = 1000) -> None:
        self.n_components = n_components
        self.C = C
        self.gamma = gamma
        self.shifts = shifts
        self.cache_mb = cache_mb

    def fit(self, X: Any, y: Any) -> VirtualSVC:
        if self.shifts not in (0, 4, 8):
            raise ParameterError(f"VirtualSVC shifts must be 0, 4 or 8; got {self.shifts}.")
        X = np.asarray(X, dtype=np.float32)
        y = np.asarray(y)
        self.n_features_in_ = X.shape[1]
        n_comp = min(self.n_components, X.shape[0], X.shape[1])
        self.pca_ = PCA(n_comp, random_state=0).fit(X)
        Z = self.pca_.transform(X)
        gamma = 1.0 / (Z.shape[1] * Z.var()) if self.gamma == "scale" else float(self.gamma)
        svm = SVC(C=self.C, gamma=gamma, cache_size=self.cache_mb).fit(Z, y)
        if self.shifts:
            sv = svm.support_
            images = X[sv].reshape(-1, SIDE, SIDE)
            moves = [(1, 0), (-1, 0), (0, 1), (0, -1)] + ([(1, 1), (1, -1), (-1, 1), (-1, -1)] if self.shifts == 8 else [])
            virtual = np.concatenate([images] + [shift(images, dr, dc) for dr, dc in moves]).reshape(-1, X.shape[1])
            log.info("virtual SVs: %d support vectors -> %d training images", len(sv), len(virtual))
            svm = SVC(C=self.C, gamma=gamma, cache_size=self.cache_mb).fit(
                self.pca_.transform(virtual), np.tile(y[sv], len(moves) + 1))
        self.svm_ = svm
        self.gamma_ = gamma
        self.classes_ = svm.classes_
        self.sv_norms_ = (svm.support_vectors_**2).sum(axis=1)
        self.pair_index_ = _pair_index(len(self.classes_))
        return self

    def _pair_decisions(self, X: Any) -> np.ndarray:
        """libsvm's one-vs-one decision values, computed with matrix products.

        The same numbers as ``SVC.decision_function`` (up to rounding), many times faster than libsvm's
        loop over one kernel value at a time. Each support vector of class ``c`` only has weights for the
        k-1 pairs that involve ``c``, so the products run class by class.
        """
        check_is_fitted(self, "svm_")
        Z = self.pca_.transform(np.asarray(X, dtype=np.float32)).astype(np.float64)
        svm = self.svm_
        sv, dual = svm.support_vectors_, svm.dual_coef_
        starts = np.r_[0, np.cumsum(svm.n_support_)]
        out = np.empty((len(Z), self.pair_index_.size // 2))
        for i in range(0, len(Z), _BLOCK):
            z = Z[i:i + _BLOCK]
            kernel = z @ sv.T  # turned in place into exp(-gamma * squared distance)
            kernel *= -2.0
            kernel += (z**2).sum(axis=1)[:, None]
            kernel += self.sv_norms_[None, :]
            np.maximum(kernel, 0.0, out=kernel)
            kernel *= -self.gamma_
            np.exp(kernel, out=kernel)
            block = np.zeros((len(z), out.shape[1]))
            for c in range(len(self.classes_)):
                lo, hi = starts[c], starts[c + 1]
                block[:, self.pair_index_[c]] += kernel[:, lo:hi] @ dual[:, lo:hi].T
            out[i:i + _BLOCK] = block
        return out + svm.intercept_

    def decision_function(self, X: Any) -> np.ndarray:
        """One-vs-rest scores as scikit-learn's SVC builds them: votes plus a confidence in (-1/3, 1/3)."""
        dec = self._pair_decisions(X)
        k = len(self.classes_)
        if k == 2:
            return dec[:, 0]
        votes = np.zeros((len(dec), k))
        conf = np.zeros((len(dec), k))
        for p, (i, j) in enumerate(_pairs(k)):
            votes[:, i] += dec[:, p] > 0
            votes[:, j] += dec[:, p] <= 0
            conf[:, i] += dec[:, p]
            conf[:, j] -= dec[:, p]
        return votes + conf / (3 * (np.abs(conf) + 1))

    def predict(self, X: Any) -> np.ndarray:
        dec = self._pair_decisions(X)
        k = len(self.classes_)
        if k == 2:
            return self.classes_[(dec[:, 0] > 0).astype(int)]  # scikit-learn flips binary signs
        votes = np.zeros((len(dec), k), dtype=np.int64)
        for p, (i, j) in enumerate(_pairs(k)):
            winner_i = dec[:, p] > 0
            votes[:, i] += winner_i
            votes[:, j] += ~winner_i
        return self.classes_[np.argmax(votes, axis=1)]  # libsvm's rule: the first class with most votes


_BLOCK = 1024  # rows per kernel block: 1024 x 19k support vectors = 155 MB of float64


def _pairs(k: int) -> list[tuple[int, int]]:
    """Class pairs in libsvm's one-vs-one order."""
    return [(i, j) for i in range(k) for j in range(i + 1, k)]


def _pair_index(k: int) -> np.ndarray:
    """(k, k-1): for class ``c``, the one-vs-one pair of each row of its support vectors' ``dual_coef_``.

    libsvm stores the weight of a class-``c`` support vector in the pair (c, o) at row ``o - 1`` when
    ``o > c`` and at row ``o`` when ``o < c``.
    """
    index = {pair: p for p, pair in enumerate(_pairs(k))}
    out = np.zeros((k, k - 1), dtype=np.intp)
    for c in range(k):
        for row in range(k - 1):
            other = row if row < c else row + 1
            out[c, row] = index[(min(c, other), max(c, other))]
    return out


# ---------------------------------------------------------------------------------------------- build
def build_pipeline(model: Literal["xgboost", "classical", "cnn"] = "classical", deskew: bool = True,
                   n_estimators: int = 1000, learning_rate: float = 0.3, max_depth: int = 6,
                   device: Literal["cpu", "cuda"] = "cpu", n_components: int = 50, C: float = 5.0,
                   shifts: Literal[0, 4, 8] = 4, epochs: int = 3, batch_size: int = 128, threads: int = 0,
                   seed: int = 0) -> Pipeline:
    """An unfitted pipeline from raw (n, 28, 28) or (n, 784) images of 0-255 to digits.

    Args:
        model: ``xgboost``, ``classical`` or ``cnn``.
        deskew: xgboost and classical: deskew and centre the digits first (else only scale to 0-1).
        n_estimators: xgboost: the most boosting rounds (early stopping usually ends sooner).
        learning_rate: xgboost: shrinkage per round.
        max_depth: xgboost: tree depth.
        device: xgboost: ``cpu`` or ``cuda``.
        n_components: classical: PCA dimensions.
        C: classical: SVM regularisation.
        shifts: classical: shifted copies per support vector (0, 4 or 8).
        epochs: cnn: passes over the training images.
        batch_size: cnn: images per step.
        threads: xgboost: CPU threads (0 = all cores; 1 avoids OpenMP's spin-waiting on a busy machine).
        seed: random seed of every model.
    """
    prepare = ("deskew", Deskew()) if deskew else ("pixels", PixelScaler())
    if model == "xgboost":
        if device.split(":")[0] not in DEVICES:
            raise ParameterError(f"device must be cpu or cuda (cuda:<n>); got {device!r}.")
        est = EarlyStoppingXGB(n_estimators=n_estimators, learning_rate=learning_rate, max_depth=max_depth,
                               device=device, n_jobs=threads or None, random_state=seed)
        return Pipeline([prepare, ("model", est)])
    if model == "classical":
        return Pipeline([prepare, ("model", VirtualSVC(n_components=n_components, C=C, shifts=shifts))])
    if model == "cnn":
        if not tensorflow_available():
            from projects.mnist.cnn import _INSTALL

            raise ParameterError(_INSTALL)
        # The network learns its own invariances (and sees shifted/rotated digits), so no deskewing.
        return Pipeline([("pixels", PixelScaler(flatten=False)),
                         ("model", KerasCNN(epochs=epochs, batch_size=batch_size, seed=seed))])
    raise ParameterError(f"model must be one of {', '.join(MODELS)}; got {model!r}.")


def baselines() -> dict[str, Any]:
    """The majority class beside every model."""
    return {"majority": Pipeline([("pixels", PixelScaler()), ("model", DummyClassifier(strategy="most_frequent"))])}


def signature_example(X: Any) -> np.ndarray:
    """Raw example rows for the MLflow signature: (n, 784) float64 grey values 0-255.

    Flat rows are what tables, CSV files and JSON carry; float64 is the type JSON numbers parse to, so a
    served model receives the values as sent and the pipeline's own range check applies (a uint8 schema
    would silently wrap 300 to 44).
    """
    return np.asarray(X, dtype=np.float64).reshape(len(X), -1)
