"""RBF support-vector decision values from a fitted scikit-learn SVR or SVC, by matrix products in NumPy.

libsvm fits; this module only predicts. ``compile_rbf`` reads the public fitted attributes of a
scikit-learn ``SVR``/``SVC`` (``support_vectors_``, ``dual_coef_``, ``intercept_``, ``n_support_``,
``classes_``) and returns a ``CompiledRBF``. Its decision values are libsvm's sum over support vectors,
``sum_i dual_coef_i * exp(-gamma * |x - sv_i|^2) + intercept``, computed for a block of rows at a time as
matrix products instead of libsvm's loop over one kernel value at a time. The fitted scikit-learn model
stays the reference: ``tests/test_kernels.py`` checks that the compiled form gives the same decision values
(to 1e-8 relative) and the same labels on random data.

scikit-learn keeps the number behind ``gamma="scale"``/``"auto"`` private, so the caller passes gamma as a
number: ``resolve_gamma`` computes it from the training rows the way scikit-learn documents.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from numbers import Real
from typing import Any, Literal

import numpy as np
from scipy.sparse import issparse
from sklearn.base import is_classifier
from sklearn.utils.validation import check_is_fitted

from common.errors import ParameterError

# Kernel values held at once per block of rows (float64): bounds the memory of a large batch whatever the
# number of support vectors, while keeping blocks large enough for the matrix products to be efficient.
BLOCK_BYTES = 64 * 2**20


def resolve_gamma(gamma: float | Literal["scale", "auto"], X: Any) -> float:
    """The RBF width as a number, as scikit-learn's SVMs resolve it from the training rows ``X``.

    ``scale`` is ``1 / (n_features * X.var())`` (1.0 when the variance is zero) and ``auto`` is
    ``1 / n_features`` (scikit-learn's ``SVC``/``SVR`` documentation). Call it on the rows the SVM is fitted on.

    Raises:
        ParameterError: for a string other than ``scale``/``auto`` or a gamma that is not positive.
    """
    if isinstance(gamma, str):
        X = X if issparse(X) else np.asarray(X, dtype=np.float64)
        if gamma == "scale":
            variance = float(X.multiply(X).mean() - X.mean() ** 2) if issparse(X) else float(X.var())
            return 1.0 / (X.shape[1] * variance) if variance != 0 else 1.0
        if gamma == "auto":
            return 1.0 / X.shape[1]
        raise ParameterError(f"gamma must be 'scale', 'auto' or a positive number; got {gamma!r}.")
    return _positive(gamma)


def _positive(gamma: Any) -> float:
    if isinstance(gamma, bool) or not isinstance(gamma, Real) or not gamma > 0:
        raise ParameterError(f"gamma must be 'scale', 'auto' or a positive number; got {gamma!r}.")
    return float(gamma)


def _pairs(k: int) -> list[tuple[int, int]]:
    """Class pairs in libsvm's one-vs-one order (that of ``decision_function_shape='ovo'``)."""
    return [(i, j) for i in range(k) for j in range(i + 1, k)]


def _pair_index(k: int) -> np.ndarray:
    """(k, k-1): for class ``c``, the one-vs-one pair that each row of its support vectors' ``dual_coef_``
    belongs to.

    scikit-learn documents ``dual_coef_`` of a multiclass SVC as (k-1, n_SV): the coefficient of a class-``c``
    support vector in the pair (c, o) sits in row ``o - 1`` when ``o > c`` and in row ``o`` when ``o < c``.
    """
    index = {pair: p for p, pair in enumerate(_pairs(k))}
    out = np.zeros((k, max(k - 1, 1)), dtype=np.intp)
    for c in range(k):
        for row in range(k - 1):
            other = row if row < c else row + 1
            out[c, row] = index[(min(c, other), max(c, other))]
    return out


@dataclass(frozen=True, eq=False)
class CompiledRBF:
    """A fitted RBF SVR or SVC as arrays; ``decision_function``/``predict`` give the fitted model's values.

    Build it with ``compile_rbf``. It holds the fitted model's own arrays (not copies: treat them as
    read-only), pickles with them, and needs nothing from libsvm to predict.

    Attributes:
        support_vectors: (n_SV, n_features) float64.
        dual_coef: (1, n_SV) for regression, (k-1, n_SV) for k classes, as scikit-learn exposes it.
        intercept: (1,) for regression, one per class pair for classification.
        gamma: the RBF width the model was fitted with.
        classes: the class labels (None for regression).
        n_support: support vectors per class, in class order (None for regression).
    """

    support_vectors: np.ndarray
    dual_coef: np.ndarray
    intercept: np.ndarray
    gamma: float
    classes: np.ndarray | None = None
    n_support: np.ndarray | None = None
    # Derived once, so that a one-row prediction pays only for its products.
    sv_scaled_sq_norms: np.ndarray = field(init=False, repr=False)
    pair_index: np.ndarray | None = field(init=False, repr=False)
    class_starts: np.ndarray | None = field(init=False, repr=False)

    def __post_init__(self) -> None:
        sv = self.support_vectors
        object.__setattr__(self, "sv_scaled_sq_norms", self.gamma * np.einsum("ij,ij->i", sv, sv))
        classifier = self.classes is not None
        object.__setattr__(self, "pair_index", _pair_index(len(self.classes)) if classifier else None)
        object.__setattr__(self, "class_starts", np.r_[0, np.cumsum(self.n_support)] if classifier else None)

    @property
    def is_classifier(self) -> bool:
        """True for a compiled SVC (class labels), False for an SVR."""
        return self.classes is not None

    def _kernel(self, X: np.ndarray) -> np.ndarray:
        """exp(-gamma * |x - sv|^2) for each row of ``X`` and each support vector.

        The exponent ``2 gamma x.sv - gamma |x|^2 - gamma |sv|^2`` is built in place in the product's
        output, so the (rows x support vectors) matrix is written once and passed over four times.
        """
        kernel = (2.0 * self.gamma * X) @ self.support_vectors.T
        kernel -= self.gamma * np.einsum("ij,ij->i", X, X)[:, None]
        kernel -= self.sv_scaled_sq_norms[None, :]
        np.minimum(kernel, 0.0, out=kernel)  # rounding can make a tiny squared distance negative
        return np.exp(kernel, out=kernel)

    def _raw(self, X: Any) -> np.ndarray:
        """Decision values before any reshaping: (n,) for regression, (n, n_pairs) for classification."""
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.support_vectors.shape[1]:
            raise ValueError(f"expected an array of shape (n, {self.support_vectors.shape[1]}); got {X.shape}.")
        rows = max(1, BLOCK_BYTES // (8 * max(len(self.support_vectors), 1)))
        if not self.is_classifier:
            out = np.empty(len(X))
            for start in range(0, len(X), rows):
                out[start:start + rows] = self._kernel(X[start:start + rows]) @ self.dual_coef[0]
            return out + self.intercept[0]
        k = len(self.classes)
        index, starts = self.pair_index, self.class_starts
        out = np.zeros((len(X), len(self.intercept)))
        for start in range(0, len(X), rows):
            kernel = self._kernel(X[start:start + rows])
            block = out[start:start + rows]
            # A support vector of class c has weights only for the k-1 pairs that involve c: the
            # products run class by class, each into its own pairs.
            for c in range(k):
                lo, hi = starts[c], starts[c + 1]
                block[:, index[c, :k - 1]] += kernel[:, lo:hi] @ self.dual_coef[:, lo:hi].T
        return out + self.intercept

    def decision_function(self, X: Any, shape: Literal["ovo", "ovr"] = "ovo") -> np.ndarray:
        """The fitted model's decision values for the rows of ``X``.

        Regression: ``SVR.predict``. Binary classification: ``SVC.decision_function`` (n,). Multiclass:
        ``SVC.decision_function`` with ``decision_function_shape`` = ``shape``: the one-vs-one values
        (n, k(k-1)/2) in libsvm's pair order, or one-vs-rest scores (n, k) built from them as scikit-learn
        does (votes plus a confidence in (-1/3, 1/3)).
        """
        dec = self._raw(X)
        if not self.is_classifier or len(self.classes) == 2:
            return dec.ravel() if dec.ndim == 2 else dec
        if shape == "ovo":
            return dec
        if shape != "ovr":
            raise ParameterError(f"shape must be 'ovo' or 'ovr'; got {shape!r}.")
        k = len(self.classes)
        votes = np.zeros((len(dec), k))
        conf = np.zeros((len(dec), k))
        for p, (i, j) in enumerate(_pairs(k)):
            votes[:, i] += dec[:, p] > 0
            votes[:, j] += dec[:, p] <= 0
            conf[:, i] += dec[:, p]
            conf[:, j] -= dec[:, p]
        return votes + conf / (3 * (np.abs(conf) + 1))

    def predict(self, X: Any) -> np.ndarray:
        """``SVR.predict``, or ``SVC.predict``'s labels: libsvm's one-vs-one vote, ties to the first class."""
        dec = self._raw(X)
        if not self.is_classifier:
            return dec
        k = len(self.classes)
        if k == 2:
            # scikit-learn exposes binary values with libsvm's sign flipped; libsvm picks the first class
            # only when its own value is > 0, i.e. when the exposed one is < 0.
            return self.classes[(dec[:, 0] >= 0).astype(np.intp)]
        votes = np.zeros((len(dec), k), dtype=np.int64)
        for p, (i, j) in enumerate(_pairs(k)):
            first = dec[:, p] > 0
            votes[:, i] += first
            votes[:, j] += ~first
        return self.classes[np.argmax(votes, axis=1)]


def compile_rbf(model: Any, gamma: float | None = None) -> CompiledRBF:
    """A fitted scikit-learn RBF ``SVR``/``SVC`` (or ``NuSVR``/``NuSVC``) as a ``CompiledRBF``.

    Args:
        model: the fitted libsvm model with ``kernel="rbf"``.
        gamma: the RBF width it was fitted with, as a number. It may be left out when the model's own
            ``gamma`` parameter is a number; for ``scale``/``auto`` pass ``resolve_gamma(gamma, X_train)``.

    Raises:
        NotFittedError: when ``model`` is not fitted.
        ParameterError: for another kernel, a missing numeric gamma, or a gamma that contradicts the model's.
    """
    check_is_fitted(model, "support_vectors_")
    params = model.get_params()
    if params.get("kernel") != "rbf":
        raise ParameterError(f"compile_rbf handles RBF kernels only; got kernel={params.get('kernel')!r}.")
    own = params.get("gamma")
    if gamma is None:
        if isinstance(own, str):
            raise ParameterError(
                f"the model was fitted with gamma={own!r}: pass the number, resolve_gamma({own!r}, X_train).")
        gamma = own
    gamma = _positive(gamma)
    if not isinstance(own, str) and not np.isclose(float(own), gamma, rtol=1e-12, atol=0.0):
        raise ParameterError(f"gamma={gamma} contradicts the model's own gamma={own}.")
    support_vectors = _dense(model.support_vectors_)
    dual_coef = _dense(model.dual_coef_)
    intercept = np.array(model.intercept_, dtype=np.float64)
    if not is_classifier(model):
        return CompiledRBF(support_vectors, dual_coef, intercept, gamma)
    return CompiledRBF(support_vectors, dual_coef, intercept, gamma, classes=np.array(model.classes_),
                       n_support=np.array(model.n_support_, dtype=np.intp))


def _dense(values: Any) -> np.ndarray:
    """The fitted array itself when it is dense float64, else a dense float64 copy (an SVM fitted on sparse
    rows keeps sparse support vectors and coefficients).

    Sharing the arrays keeps a pickled estimator that holds both the SVM and its compiled form from storing
    them twice (pickle writes an object referenced twice once).
    """
    return np.asarray(values.toarray() if issparse(values) else values, dtype=np.float64)
