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
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import numpy as np
from annotated_types import Ge, Gt, Interval
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.decomposition import PCA
from sklearn.dummy import DummyClassifier
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.svm import SVC
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from common.errors import ParameterError
from common.kernels import compile_rbf, resolve_gamma
from common.params import Search, Seed
from projects.mnist.cnn import KerasCNN, tensorflow_available
from projects.mnist.features import N_PIXELS, SIDE, Deskew, PixelScaler, shift

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
        X, y = validate_data(self, X, y, dtype=np.float32)
        check_classification_targets(y)
        self.classes_, target = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError(f"EarlyStoppingXGB needs at least 2 classes; got 1 class ({self.classes_[0]!r}).")
        binary = len(self.classes_) == 2
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
            # Blank pixels (0) as "missing": most MNIST pixels are blank, and the histograms then skip them
            # (docs/mnist.md gives the speed-up). Nothing is lost: every split still learns which side blank
            # pixels go to.
            missing=0.0, objective="binary:logistic" if binary else "multi:softprob",
            eval_metric="logloss" if binary else "mlogloss", early_stopping_rounds=self.early_stopping_rounds,
        )
        self.model_.fit(X_fit, y_fit, eval_set=[(X_val, y_val)], verbose=False)
        self.best_iteration_ = int(self.model_.best_iteration)
        self.validation_logloss_ = float(self.model_.best_score)
        log.info("xgboost stopped at round %d of %d (validation log-loss %.4f)", self.best_iteration_ + 1,
                 self.n_estimators, self.validation_logloss_)
        self.model_.set_params(device="cpu")
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float32, reset=False)
        # predict_proba uses the trees up to the best validation round.
        return self.model_.predict_proba(X)

    def predict(self, X: Any) -> np.ndarray:
        proba = self.predict_proba(X)  # first: it checks that the model is fitted
        return self.classes_[np.argmax(proba, axis=1)]


# ------------------------------------------------------------------------------------------- classical
class VirtualSVC(ClassifierMixin, BaseEstimator):
    """PCA + RBF SVM, refitted on its support vectors and their one-pixel shifts (virtual SVs).

    The support vectors are the training images the decision boundary rests on; shifted copies of them
    teach the SVM small translation invariance at a fraction of the cost of augmenting every image.
    Takes flat (n, 784) images (deskewed, 0-1); with ``shifts=0`` any numeric rows.

    libsvm fits the SVM (scikit-learn's ``SVC``, kept as ``svm_``); predictions come from the same support
    vectors and coefficients through ``common.kernels`` (matrix products instead of libsvm's loop over one
    kernel value at a time), with ``SVC``'s decision values and labels.

    Args:
        n_components: PCA dimensions (PCA is fitted on all training rows, before augmentation).
        C: SVM regularisation.
        gamma: RBF width; ``scale`` = 1 / (n_components * variance of the PCA scores), as ``SVC`` resolves it.
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
        X, y = validate_data(self, X, y, dtype=np.float32)
        check_classification_targets(y)
        if self.shifts and X.shape[1] != N_PIXELS:
            raise ParameterError(f"VirtualSVC shifts images: it needs {N_PIXELS} pixel columns with shifts > 0; "
                                 f"got {X.shape[1]} columns.")
        n_comp = min(self.n_components, X.shape[0], X.shape[1])
        self.pca_ = PCA(n_comp, random_state=0).fit(X)
        Z = self._pca_scores(X)
        gamma = resolve_gamma(self.gamma, Z)
        svm = SVC(C=self.C, gamma=gamma, cache_size=self.cache_mb).fit(Z, y)
        if self.shifts:
            sv = svm.support_
            images = X[sv].reshape(-1, SIDE, SIDE)
            moves = [(1, 0), (-1, 0), (0, 1), (0, -1)] + ([(1, 1), (1, -1), (-1, 1), (-1, -1)] if self.shifts == 8 else [])
            virtual = np.concatenate([images] + [shift(images, dr, dc) for dr, dc in moves]).reshape(-1, X.shape[1])
            log.info("virtual SVs: %d support vectors -> %d training images", len(sv), len(virtual))
            svm = SVC(C=self.C, gamma=gamma, cache_size=self.cache_mb).fit(
                self._pca_scores(virtual), np.tile(y[sv], len(moves) + 1))
        self.svm_ = svm
        self.gamma_ = gamma
        self.classes_ = svm.classes_
        self.compiled_ = compile_rbf(svm, gamma)
        return self

    def __setstate__(self, state: dict[str, Any]) -> None:
        if "compiled_" not in state and "svm_" in state:
            # Pickled before common.kernels: compile the same fitted SVC, so older champions still load.
            state = {k: v for k, v in state.items() if k not in ("sv_norms_", "pair_index_")}
            state["compiled_"] = compile_rbf(state["svm_"], state["gamma_"])
        super().__setstate__(state)

    def _pca_scores(self, X: np.ndarray) -> np.ndarray:
        """PCA scores in float64, a block of rows at a time (the images stay float32 to halve their memory).

        float32 products round differently depending on where a row sits in the batch, which would make a
        row's decision values depend on its neighbours.
        """
        blocks = [self.pca_.transform(X[i:i + _PCA_ROWS].astype(np.float64)) for i in range(0, len(X), _PCA_ROWS)]
        return np.concatenate(blocks) if blocks else np.empty((0, self.pca_.n_components_))

    def _scores(self, X: Any) -> np.ndarray:
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float32, reset=False)
        return self._pca_scores(X)

    def decision_function(self, X: Any) -> np.ndarray:
        """``SVC.decision_function`` (one-vs-rest): votes plus a confidence in (-1/3, 1/3); (n,) for two classes."""
        scores = self._scores(X)  # first: it checks that the model is fitted
        return self.compiled_.decision_function(scores, shape="ovr")

    def predict(self, X: Any) -> np.ndarray:
        """``SVC.predict``: libsvm's one-vs-one vote."""
        scores = self._scores(X)
        return self.compiled_.predict(scores)


_PCA_ROWS = 8192  # images per float64 block when computing PCA scores (bounded memory)


# ---------------------------------------------------------------------------------------------- build
@dataclass(frozen=True)
class XGBoostParams:
    """Settings of ``model=xgboost`` (``--param xgboost.<name>=...``).

    Attributes:
        n_estimators: the most boosting rounds (>= 1; early stopping usually ends sooner).
        learning_rate: shrinkage per round (in (0, 1]).
        max_depth: tree depth (>= 1).
        device: ``cpu`` or ``cuda`` (an NVIDIA GPU and an XGBoost built with CUDA).
        threads: CPU threads (>= 0; 0 = all cores; 1 avoids OpenMP's spin-waiting on a busy machine).
    """

    n_estimators: Annotated[int, Ge(1)] = 1000
    learning_rate: Annotated[float, Interval(gt=0, le=1), Search(0.05, 0.5, log=True)] = 0.05
    max_depth: Annotated[int, Ge(1), Search(3, 10)] = 5
    device: Literal["cpu", "cuda"] = "cpu"
    threads: Annotated[int, Ge(0)] = 0


@dataclass(frozen=True)
class ClassicalParams:
    """Settings of ``model=classical`` (``--param classical.<name>=...``).

    Attributes:
        n_components: PCA dimensions (>= 1; at most the pixels and training rows are used).
        C: SVM regularisation (> 0).
        shifts: shifted copies per support vector (0, 4 or 8).
    """

    n_components: Annotated[int, Ge(1), Search(30, 90)] = 87
    C: Annotated[float, Gt(0), Search(1.0, 30.0, log=True)] = 3.9
    shifts: Annotated[Literal[0, 4, 8], Search()] = 8


@dataclass(frozen=True)
class CNNParams:
    """Settings of ``model=cnn`` (``--param cnn.<name>=...``).

    Attributes:
        epochs: passes over the training images (>= 1).
        batch_size: images per step (>= 1).
    """

    epochs: Annotated[int, Ge(1), Search(2, 12)] = 3
    batch_size: Annotated[int, Ge(1), Search(choices=(64, 128, 256))] = 128


def build_pipeline(model: Literal["xgboost", "classical", "cnn"] = "classical", deskew: bool = True, seed: Seed = 0,
                   xgboost: XGBoostParams = XGBoostParams(), classical: ClassicalParams = ClassicalParams(),
                   cnn: CNNParams = CNNParams()) -> Pipeline:
    """An unfitted pipeline from raw (n, 28, 28) or (n, 784) images of 0-255 to digits.

    Args:
        model: ``xgboost``, ``classical`` or ``cnn``.
        deskew: xgboost and classical: deskew and centre the digits first (else only scale to 0-1).
        seed: random seed of the xgboost and cnn models (0 to 2**32 - 1).
        xgboost: settings of the xgboost model.
        classical: settings of the classical model.
        cnn: settings of the cnn model.
    """
    prepare = ("deskew", Deskew()) if deskew else ("pixels", PixelScaler())
    if model == "xgboost":
        if xgboost.device not in DEVICES:
            raise ParameterError(f"xgboost.device must be one of {', '.join(DEVICES)}; got {xgboost.device!r}.")
        est = EarlyStoppingXGB(n_estimators=xgboost.n_estimators, learning_rate=xgboost.learning_rate,
                               max_depth=xgboost.max_depth, device=xgboost.device, n_jobs=xgboost.threads or None,
                               random_state=seed)
        return Pipeline([prepare, ("model", est)])
    if model == "classical":
        return Pipeline([prepare, ("model", VirtualSVC(n_components=classical.n_components, C=classical.C,
                                                       shifts=classical.shifts))])
    if model == "cnn":
        if not tensorflow_available():
            from projects.mnist.cnn import _INSTALL

            raise ParameterError(_INSTALL)
        # The network learns its own invariances (and sees shifted/rotated digits), so no deskewing.
        return Pipeline([("pixels", PixelScaler(flatten=False)),
                         ("model", KerasCNN(epochs=cnn.epochs, batch_size=cnn.batch_size, seed=seed))])
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
