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

The first step, ``validate``, checks raw rows against ``contract.CONTRACT`` and passes them on unchanged.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

import numpy as np
from annotated_types import Ge, Gt, Interval, Le
from sklearn.base import BaseEstimator, RegressorMixin, clone
from sklearn.compose import TransformedTargetRegressor
from sklearn.ensemble import VotingRegressor
from sklearn.linear_model import Lasso
from sklearn.pipeline import Pipeline
from sklearn.svm import SVR
from sklearn.utils.validation import check_consistent_length, check_is_fitted, column_or_1d, validate_data
from xgboost import XGBRegressor

from common.contract import ValidateInput
from common.errors import ParameterError
from common.kernels import compile_rbf, resolve_gamma
from common.params import Search
from projects.house_prices.contract import CONTRACT
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
        X = self._validate(X, reset=True)
        target = column_or_1d(y, warn=True, dtype=np.float64)
        check_consistent_length(X, target)
        self.keep_ = self._inliers(X, target)
        self.n_dropped_ = int((~self.keep_).sum())
        rows = np.flatnonzero(self.keep_)
        X_keep = X.iloc[rows] if hasattr(X, "iloc") else X[rows]
        self.estimators_ = [(name, clone(est).fit(X_keep, target[rows])) for name, est in self.members]
        w = np.ones(len(self.members)) if self.weights is None else np.asarray(self.weights, dtype=float)
        self.weights_ = w / w.sum()
        return self

    def _validate(self, X: Any, reset: bool) -> Any:
        """Record (fit) or check (predict) the width and column names of ``X``.

        A DataFrame goes to the members as it is: the house members read named columns, and they check the
        values themselves. Anything else becomes a 2-D array (dense; missing values left to the members).
        """
        if hasattr(X, "iloc"):
            return validate_data(self, X, skip_check_array=True, reset=reset)
        return validate_data(self, X, reset=reset, dtype=None, ensure_all_finite=False)

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
        check_is_fitted(self)
        X = self._validate(X, reset=False)
        preds = np.column_stack([np.asarray(est.predict(X), dtype=float) for _, est in self.estimators_])
        return preds @ self.weights_


def _lasso(alpha: float) -> Lasso:
    return Lasso(alpha=alpha, max_iter=50_000)


class RBFSVR(RegressorMixin, BaseEstimator):
    """An RBF support-vector regressor: fitted by scikit-learn's ``SVR`` (libsvm), predicting with
    ``common.kernels`` (the same decision values as ``SVR.predict``, by matrix products in row blocks).

    Args:
        C: regularisation (larger = less smoothing).
        epsilon: half-width of the tube in which errors cost nothing.
        gamma: RBF width, a number or ``scale``/``auto`` (resolved from the training rows as ``SVR`` does).
        tol: libsvm's stopping tolerance.
        cache_size: libsvm's kernel cache (MB).
        max_iter: libsvm's iteration limit (-1 = none).
    """

    def __init__(self, C: float = 1.0, epsilon: float = 0.1, gamma: float | str = "scale", tol: float = 1e-3,
                 cache_size: float = 200, max_iter: int = -1) -> None:
        self.C = C
        self.epsilon = epsilon
        self.gamma = gamma
        self.tol = tol
        self.cache_size = cache_size
        self.max_iter = max_iter

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> RBFSVR:
        X, y = validate_data(self, X, y, dtype=np.float64, y_numeric=True)
        self.gamma_ = resolve_gamma(self.gamma, X)
        self.svr_ = SVR(kernel="rbf", C=self.C, epsilon=self.epsilon, gamma=self.gamma_, tol=self.tol,
                        cache_size=self.cache_size, max_iter=self.max_iter).fit(X, y, sample_weight=sample_weight)
        self.compiled_ = compile_rbf(self.svr_, self.gamma_)
        self.n_iter_ = self.svr_.n_iter_
        return self

    def predict(self, X: Any) -> np.ndarray:
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, reset=False)
        return self.compiled_.predict(X)

    def __setstate__(self, state: dict[str, Any]) -> None:
        if "svr_" not in state and "support_vectors_" in state:
            # Pickled when RBFSVR subclassed SVR: its state is a fitted SVR's. Wrap it, so registered
            # champions of that time still load and predict the same.
            svr = SVR.__new__(SVR)
            svr.__dict__.update({k: v for k, v in state.items() if k != "sv_sq_norms_"})
            params = {k: state[k] for k in ("C", "epsilon", "gamma", "tol", "cache_size", "max_iter")}
            state = {**params, "gamma_": float(params["gamma"]), "svr_": svr, "n_iter_": svr.n_iter_,
                     "n_features_in_": svr.n_features_in_, "compiled_": compile_rbf(svr, float(params["gamma"]))}
        super().__setstate__(state)


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


def build_pipeline(model: Literal["blend", "linear", "svr", "gbm"] = "blend",
                   linear_alpha: Annotated[float, Gt(0), Search(5e-5, 3e-3, log=True)] = 1.7e-3,
                   svr_c: Annotated[float, Gt(0), Search(2.0, 100.0, log=True)] = 72.0,
                   gbm_iter: Annotated[int, Ge(1), Search(500, 3000, log=True)] = 1770,
                   clip_quantile: Annotated[float, Interval(ge=0, lt=0.5), Search(0.0, 0.02)] = 0.0115,
                   outlier_threshold: Annotated[float, Gt(0), Le(math.inf), Search(2.5, 8.0)] = 7.2) -> TransformedTargetRegressor:
    """An unfitted pipeline from raw Kaggle columns to SalePrice (learned in log space).

    Args:
        model: ``blend`` (equal-weight average of the three below), ``linear`` (Lasso), ``svr`` or ``gbm``.
        linear_alpha: Lasso regularisation strength (> 0).
        svr_c: SVR regularisation (> 0; larger = less smoothing).
        gbm_iter: boosting iterations (>= 1).
        clip_quantile: the linear and SVR inputs are clipped to the training rows' minimum and their
            ``1 - clip_quantile`` quantile (in [0, 0.5); 0 = the training maximum).
        outlier_threshold: training rows further than this many robust standard deviations from a first Lasso
            fit are left out of training (> 0; ``inf`` = keep every row).
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
        ("validate", ValidateInput(CONTRACT)),
        ("features", HouseFeatures()),
        ("lot_frontage", GroupMedianImputer()),
        ("neighborhood", NeighborhoodLevel()),
        ("model", blend),
    ])
    return TransformedTargetRegressor(regressor=inner, func=np.log, inverse_func=np.exp, check_inverse=False)

