"""house_prices pipeline: raw Kaggle columns in, SalePrice out; fitted in log-price space.

``blend`` averages, with equal weights fixed in advance, three models of different kinds on shared
domain features:

* ``linear``: Lasso on one-hot categories and log areas, with every numeric input clipped to the range
  learned on the training rows (no extrapolation to houses bigger than any seen);
* ``svr``: an RBF support-vector regressor on the same clipped inputs (smooth, and it flattens out far
  from the training data);
* ``gbm``: gradient-boosted trees (XGBoost) with native categorical splits.

Before the members are fitted, ``OutlierFilteredBlend`` fits the Lasso once and leaves out the
training rows whose residual is extreme (the Ames partial sales of huge houses at low prices). That rule
is learned from the rows being fitted, so it only ever removes training rows: every row is still scored
when it sits in a validation fold or the holdout.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin, clone
from sklearn.compose import TransformedTargetRegressor
from sklearn.ensemble import VotingRegressor
from sklearn.linear_model import Lasso
from sklearn.pipeline import Pipeline
from sklearn.svm import SVR
from xgboost import XGBRegressor

from common.errors import ParameterError
from projects.house_prices.features import (
    NEIGHBORHOOD_COLUMNS,
    GroupMedianImputer,
    HouseFeatures,
    LinearDesign,
    NeighborhoodLevel,
    TreeDesign,
)

MODELS = ("blend", "linear", "svr", "gbm")


class OutlierFilteredBlend(RegressorMixin, BaseEstimator):
    """Fit a detector, drop training rows with extreme residuals, fit every member on the rest, average.

    Args:
        members: ``(name, estimator)`` pairs; each is cloned and fitted on the kept rows.
        detector: a fast regressor whose in-sample residuals flag the outliers (None = no filtering); the
            default pipeline uses the Lasso member itself.
        threshold: rows whose residual is more than ``threshold`` robust standard deviations (1.4826 MAD)
            from the median residual are left out of training.
        weights: blend weights (None = equal), normalised to sum to one.
    """

    def __init__(self, members: list[tuple[str, Any]] | None = None, detector: Any = None,
                 threshold: float = 3.5, weights: list[float] | None = None) -> None:
        self.members = members
        self.detector = detector
        self.threshold = threshold
        self.weights = weights

    def fit(self, X: Any, y: Any) -> OutlierFilteredBlend:
        if not self.members:
            raise ParameterError("OutlierFilteredBlend needs at least one (name, estimator) member.")
        if self.weights is not None and len(self.weights) != len(self.members):
            raise ParameterError(f"{len(self.weights)} weights for {len(self.members)} blend members.")
        target = np.asarray(y, dtype=float)
        self.keep_ = self._inliers(X, target)
        self.n_dropped_ = int((~self.keep_).sum())
        rows = np.flatnonzero(self.keep_)
        X_keep = X.iloc[rows] if hasattr(X, "iloc") else X[rows]
        self.estimators_ = [(name, clone(est).fit(X_keep, target[rows])) for name, est in self.members]
        w = np.ones(len(self.members)) if self.weights is None else np.asarray(self.weights, dtype=float)
        self.weights_ = w / w.sum()
        return self

    def _inliers(self, X: Any, target: np.ndarray) -> np.ndarray:
        keep = np.ones(len(target), dtype=bool)
        if self.detector is None or not np.isfinite(self.threshold):
            return keep
        resid = target - clone(self.detector).fit(X, target).predict(X)
        centre = np.median(resid)
        scale = 1.4826 * np.median(np.abs(resid - centre))
        if scale > 0:
            keep = np.abs(resid - centre) <= self.threshold * scale
        return keep

    def predict(self, X: Any) -> np.ndarray:
        preds = np.column_stack([np.asarray(est.predict(X), dtype=float) for _, est in self.estimators_])
        return preds @ self.weights_


def _lasso(alpha: float) -> Lasso:
    return Lasso(alpha=alpha, max_iter=50_000)


class RBFSVR(SVR):
    """``SVR`` with an RBF kernel whose predictions are computed in numpy.

    Fitting is libsvm's; prediction is the same sum over support vectors,
    ``sum_i dual_coef_i * exp(-gamma * |x - sv_i|^2) + intercept``, as two matrix products: more than ten
    times faster than libsvm's row-by-row loop for a large batch (about 1,100 support vectors here), and a
    sixth of its time for one row.
    """

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> RBFSVR:
        if self.kernel != "rbf":
            raise ParameterError(f"RBFSVR computes RBF kernels only; got kernel={self.kernel!r}.")
        super().fit(X, y, sample_weight=sample_weight)
        self.sv_sq_norms_ = np.einsum("ij,ij->i", self.support_vectors_, self.support_vectors_)
        return self

    def predict(self, X: Any) -> np.ndarray:
        X = np.asarray(X, dtype=float)
        out = np.empty(len(X))
        for start in range(0, len(X), 2048):  # chunks bound the kernel matrix (2048 x n_support floats)
            part = X[start:start + 2048]
            sq = (np.einsum("ij,ij->i", part, part)[:, None] + self.sv_sq_norms_[None, :]
                  - 2.0 * part @ self.support_vectors_.T)
            kernel = np.exp(-self._gamma * np.maximum(sq, 0.0))
            out[start:start + 2048] = kernel @ self.dual_coef_[0] + self.intercept_[0]
        return out


def _svr(c: float) -> RBFSVR:
    # gamma ~ 1 / (3 * number of one-hot + scaled features): a smooth, nearly linear kernel.
    return RBFSVR(C=c, gamma=3e-4, epsilon=0.008)


def _on_linear_design(models: list[tuple[str, Any]], clip_quantile: float) -> Pipeline:
    """Models that read the same clipped, one-hot design matrix, computed once per call (and averaged)."""
    model = models[0][1] if len(models) == 1 else VotingRegressor(models)
    return Pipeline([("design", LinearDesign(clip_quantile=clip_quantile)), ("model", model)])


def _gbm(n_iter: int, seed: int = 0) -> Pipeline:
    design = TreeDesign()
    kinds = ["q"] * len(HouseFeatures.numeric_columns() + NEIGHBORHOOD_COLUMNS) + ["c"] * len(
        HouseFeatures.nominal_columns())
    # Shallow trees with row and column subsampling (one of two settings compared by CV, see the docs).
    # One thread: predictable timings, and CV folds on a busy machine do not oversubscribe the cores.
    model = XGBRegressor(
        n_estimators=n_iter, learning_rate=0.03, max_depth=3, subsample=0.7, colsample_bytree=0.5,
        min_child_weight=2, tree_method="hist", enable_categorical=True, feature_types=kinds, n_jobs=1,
        random_state=seed,
    )
    return Pipeline([("design", design), ("model", model)])


def build_pipeline(model: Literal["blend", "linear", "svr", "gbm"] = "blend", linear_alpha: float = 3e-4, svr_c: float = 20.0,
                   gbm_iter: int = 1500, clip_quantile: float = 0.005,
                   outlier_threshold: float = 3.5) -> TransformedTargetRegressor:
    """An unfitted pipeline from raw Kaggle columns to SalePrice (learned in log space).

    Args:
        model: ``blend`` (equal-weight average of the three below), ``linear`` (Lasso), ``svr`` or ``gbm``.
        linear_alpha: Lasso regularisation strength.
        svr_c: SVR regularisation (larger = less smoothing).
        gbm_iter: boosting iterations.
        clip_quantile: the linear and SVR inputs are clipped to the training rows' minimum and their
            ``1 - clip_quantile`` quantile (0 = the training maximum).
        outlier_threshold: training rows further than this many robust standard deviations from a first Lasso
            fit are left out of training (``inf`` = keep every row).
    """
    if model not in MODELS:
        raise ParameterError(f"model must be one of {', '.join(MODELS)}; got {model!r}.")
    if not 0.0 <= clip_quantile < 0.5:
        raise ParameterError(f"clip_quantile must be in [0, 0.5); got {clip_quantile}.")
    if gbm_iter < 1:
        raise ParameterError(f"gbm_iter must be at least 1; got {gbm_iter}.")
    lasso, svr = ("linear", _lasso(linear_alpha)), ("svr", _svr(svr_c))
    if model == "blend":  # thirds: Lasso and SVR share one design step (half of weight 2/3 each), trees 1/3
        members = [("linear+svr", _on_linear_design([lasso, svr], clip_quantile)), ("gbm", _gbm(gbm_iter))]
        weights: list[float] | None = [2.0, 1.0]
    else:
        members = [(model, _gbm(gbm_iter) if model == "gbm" else
                    _on_linear_design([lasso if model == "linear" else svr], clip_quantile))]
        weights = None
    blend = OutlierFilteredBlend(members, detector=_on_linear_design([lasso], clip_quantile),
                                 threshold=outlier_threshold, weights=weights)
    inner = Pipeline([
        ("features", HouseFeatures()),
        ("lot_frontage", GroupMedianImputer()),
        ("neighborhood", NeighborhoodLevel()),
        ("model", blend),
    ])
    return TransformedTargetRegressor(regressor=inner, func=np.log, inverse_func=np.exp, check_inverse=False)

