"""stocks pipeline: raw daily bars in, each day's forecast of the NEXT trading day's Close out.

``features`` turns the bars into causal features of each day (nothing learned); ``model`` learns the
next-day log return from them and turns it back into a price: ``close_t * exp(predicted return)``. The
default return model is a Ridge regression whose penalty is chosen by an inner walk-forward split of the
training rows, on a grid that reaches penalties so strong that only the intercept (the drift) survives:
next-day returns are close to unpredictable and the model is allowed to say so.

``model="seed"`` is the seed tutorial's leaky method (same-day Open/High/Low -> same-day Close), kept only so
``evaluate.py`` can show its numbers beside the honest ones.
"""

from __future__ import annotations

import warnings
from typing import Annotated, Any, Literal

import numpy as np
import pandas as pd
from annotated_types import Ge, Gt
from sklearn.base import BaseEstimator, RegressorMixin, clone
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.linear_model import LinearRegression
from sklearn.model_selection import TimeSeriesSplit
from sklearn.pipeline import Pipeline
from sklearn.utils.validation import check_is_fitted, validate_data
from threadpoolctl import threadpool_limits

from common.params import Search
from projects.stocks.features import BASE, BarFeatures, SameDayBars, as_frame

# Rows left out between the inner training and validation parts (one trading week), as in the outer split.
INNER_GAP = 5
# Training rows with complete features are preferred when there are at least this many.
MIN_FIT_ROWS = 30


class NextCloseFromReturn(RegressorMixin, BaseEstimator):
    """Fit ``regressor`` on the next-day log return; predict the next-day close ``close_t * exp(r_hat)``.

    Learning returns rather than prices keeps the target stationary (a price model would mostly learn
    "tomorrow is about today"). The input is ``BarFeatures``' table, whose column ``close_t`` is today's
    close (a plain array: its last column). Training rows whose features are incomplete (the first
    ``WARMUP`` days of the frame) are left out of the fit when at least ``MIN_FIT_ROWS`` complete rows remain;
    at prediction time they are imputed by the regressor's own imputer.

    Args:
        regressor: an unfitted regressor of feature rows -> log return (default: ``WalkForwardRidge()``).
        max_abs_return: predicted log returns are clipped to this size (a guard for extrapolation).
    """

    def __init__(self, regressor: Any = None, max_abs_return: float = 0.2) -> None:
        self.regressor = regressor
        self.max_abs_return = max_abs_return

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True  # the first days of a frame have incomplete features
        tags.target_tags.positive_only = True  # tomorrow's close is a price (rows with no positive return are skipped)
        # Forecasts stay within exp(+-max_abs_return) of today's close by design: no R^2 floor applies.
        tags.regressor_tags.poor_score = True
        return tags

    def _split(self, F: Any, y: Any = None, reset: bool = False) -> tuple[np.ndarray, np.ndarray, Any]:
        """(features, today's close, y) from the input, validated as scikit-learn does."""
        if reset:
            Fa, y = validate_data(self, F, y, ensure_all_finite="allow-nan", y_numeric=True, dtype=np.float64)
            names = getattr(self, "feature_names_in_", None)
            self.base_index_ = (int(np.flatnonzero(names == BASE)[0]) if names is not None and BASE in names
                                else Fa.shape[1] - 1)
        else:
            Fa = validate_data(self, F, reset=False, ensure_all_finite="allow-nan", dtype=np.float64)
        return np.delete(Fa, self.base_index_, axis=1), Fa[:, self.base_index_], y

    def fit(self, F: Any, y: Any) -> NextCloseFromReturn:
        Z, base, y = self._split(F, y, reset=True)
        if Z.shape[1] == 0:
            raise ValueError(f"NextCloseFromReturn needs feature columns besides today's close; got n_features=1 "
                             f"(only {BASE}).")
        with np.errstate(divide="ignore", invalid="ignore"):
            r = np.log(np.asarray(y, dtype=float) / base)
        finite = np.isfinite(r)
        complete = finite & ~np.isnan(Z).any(axis=1)
        rows = complete if complete.sum() >= MIN_FIT_ROWS else finite
        if not rows.any():
            raise ValueError("NextCloseFromReturn found no row with a positive close and next close to learn a "
                             f"return from (n_samples={len(r)}).")
        self.regressor_ = clone(self.regressor if self.regressor is not None else WalkForwardRidge()).fit(
            Z[rows], r[rows])
        self.n_fit_rows_ = int(rows.sum())
        return self

    def _returns(self, Z: np.ndarray) -> np.ndarray:
        return np.clip(np.asarray(self.regressor_.predict(Z), dtype=float), -self.max_abs_return, self.max_abs_return)

    def predict_return(self, F: Any) -> np.ndarray:
        """The predicted next-day log return of each row."""
        check_is_fitted(self)
        return self._returns(self._split(F)[0])

    def predict(self, F: Any) -> np.ndarray:
        check_is_fitted(self)
        Z, base, _ = self._split(F)
        return base * np.exp(self._returns(Z))


class WalkForwardRidge(RegressorMixin, BaseEstimator):
    """Ridge regression on standardised features, its penalty chosen by an inner walk-forward split.

    Each inner fold learns its own medians (for missing features) and scales from its training part and
    solves every penalty at once from one SVD; the penalty with the lowest absolute error over the inner
    validation parts is refitted on all rows. Absolute error of the log return is, to first order, the
    relative absolute error of the price: the quantity MASE scores. The intercept is not penalised, so the
    strongest penalties leave the drift (the mean return) as the forecast; with too few rows for the inner
    folds, the strongest penalty is kept.

    Args:
        alphas: penalties to choose from.
        n_splits: inner walk-forward folds.
        gap: rows left out between each inner training and validation part.
    """

    def __init__(self, alphas: tuple[float, ...] = (1e1, 1e2, 1e3, 1e4, 1e5, 1e6), n_splits: int = 5,
                 gap: int = INNER_GAP) -> None:
        self.alphas = alphas
        self.n_splits = n_splits
        self.gap = gap

    @staticmethod
    def _solve(X: np.ndarray, y: np.ndarray, alphas: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(medians, coefficients per alpha in raw units, intercepts per alpha) learned from X, y."""
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # an all-missing column gets 0 below
            med = np.nanmedian(X, axis=0)
        med = np.where(np.isfinite(med), med, 0.0)
        Xf = np.where(np.isnan(X), med, X)
        mean, std = Xf.mean(axis=0), Xf.std(axis=0)
        std = np.where(std > 0, std, 1.0)
        Xs = (Xf - mean) / std
        ym = y.mean()
        # Ridge for every alpha from one eigendecomposition of the small p x p Gram matrix.
        eig, V = np.linalg.eigh(Xs.T @ Xs)
        proj = V.T @ (Xs.T @ (y - ym))
        coef = (proj[None, :] / (np.clip(eig, 0, None)[None, :] + alphas[:, None])) @ V.T / std[None, :]
        return med, coef, ym - coef @ mean

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True  # missing features are imputed with medians learned in fit
        return tags

    def fit(self, X: Any, y: Any) -> WalkForwardRidge:
        # The matrices are tiny: threaded BLAS only adds overhead, more so on a busy machine (docs/stocks.md).
        with threadpool_limits(limits=1, user_api="blas"):
            return self._fit(X, y)

    def _fit(self, X: Any, y: Any) -> WalkForwardRidge:
        Xa, ya = validate_data(self, X, y, ensure_all_finite="allow-nan", y_numeric=True, dtype=np.float64)
        alphas = np.asarray(self.alphas, dtype=float).reshape(-1)
        folds: list[tuple[np.ndarray, np.ndarray]] = []
        if len(alphas) > 1:
            try:
                folds = list(TimeSeriesSplit(n_splits=self.n_splits, gap=self.gap).split(Xa))
            except ValueError:
                pass  # too few rows for the inner folds: nothing to choose with (see below)
        errors = np.zeros(len(alphas))
        for tr, va in folds:
            med, coef, icpt = self._solve(Xa[tr], ya[tr], alphas)
            Xv = np.where(np.isnan(Xa[va]), med, Xa[va])
            errors += np.abs(ya[va, None] - (Xv @ coef.T + icpt[None, :])).sum(axis=0)
        self.cv_errors_ = errors
        # Without validation the strongest penalty is the cautious choice: it leaves about the mean (the drift).
        self.alpha_ = float(alphas[int(np.argmin(errors))] if folds else alphas.max())
        self.medians_, coef, icpt = self._solve(Xa, ya, np.asarray([self.alpha_]))
        self.coef_, self.intercept_ = coef[0], float(icpt[0])
        return self

    def predict(self, X: Any) -> np.ndarray:
        check_is_fitted(self)
        Xa = validate_data(self, X, reset=False, ensure_all_finite="allow-nan", dtype=np.float64)
        return np.where(np.isnan(Xa), self.medians_, Xa) @ self.coef_ + self.intercept_


def _hgb(n_iter: int, seed: int = 0) -> Any:
    # Small trees, large leaves and strong L2: daily returns are mostly noise, so capacity overfits.
    return HistGradientBoostingRegressor(
        learning_rate=0.03, max_iter=n_iter, max_leaf_nodes=8, min_samples_leaf=100, l2_regularization=10.0,
        early_stopping=False, random_state=seed,
    )


def build_pipeline(model: Annotated[Literal["ridge", "hgb", "seed"], Search(choices=("ridge", "hgb"))] = "ridge",
                   alphas: tuple[Annotated[float, Gt(0)], ...] = (1e1, 1e2, 1e3, 1e4, 1e5, 1e6),
                   inner_folds: Annotated[int, Ge(2), Search(3, 8)] = 5,
                   hgb_iter: Annotated[int, Ge(1), Search(30, 400, log=True)] = 150,
                   cost_bps: Annotated[float, Ge(0)] = 5.0) -> Pipeline:
    """An unfitted pipeline from raw daily bars to each day's next-day Close.

    Args:
        model: ``ridge`` (penalty chosen by inner walk-forward), ``hgb`` (regularised boosted trees), or
            ``seed`` (the seed tutorial's leaky same-day regression; evaluated for comparison only).
        alphas: Ridge penalties to choose from (each > 0; one value fixes it).
        inner_folds: inner walk-forward folds that choose the penalty (>= 2).
        hgb_iter: boosting iterations of ``hgb`` (>= 1).
        cost_bps: transaction cost per trade in basis points (>= 0), for the backtest in ``evaluate.py``. It is
            an evaluation setting logged with the run's parameters; the estimator does not use it.
    """
    if model == "seed":
        return Pipeline([("features", SameDayBars()), ("model", LinearRegression())])
    regressor = _hgb(hgb_iter) if model == "hgb" else WalkForwardRidge(tuple(alphas), inner_folds)
    return Pipeline([("features", BarFeatures()), ("model", NextCloseFromReturn(regressor))])


# ---------------------------------------------------------------------------------------------- baselines
class Persistence(RegressorMixin, BaseEstimator):
    """Tomorrow's close = today's close (the random-walk forecast every model must beat). Learns nothing."""

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.requires_fit = False  # stateless: it forecasts from the bars it is given
        return tags

    def fit(self, X: Any, y: Any = None) -> Persistence:
        as_frame(X)
        return self

    def predict(self, X: Any) -> np.ndarray:
        return as_frame(X)["Close"].to_numpy(dtype=float)


class Drift(RegressorMixin, BaseEstimator):
    """Tomorrow's close = today's close grown by the mean daily log return of the training rows."""

    def fit(self, X: Any, y: Any) -> Drift:
        close = as_frame(X)["Close"].to_numpy(dtype=float)
        with np.errstate(divide="ignore", invalid="ignore"):
            r = np.log(np.asarray(y, dtype=float) / close)
        self.mu_ = float(np.mean(r[np.isfinite(r)])) if np.isfinite(r).any() else 0.0
        return self

    def predict(self, X: Any) -> np.ndarray:
        check_is_fitted(self)
        return as_frame(X)["Close"].to_numpy(dtype=float) * np.exp(self.mu_)


def baselines() -> dict[str, Any]:
    """The two naive forecasts every result is shown beside."""
    return {"persistence": Persistence(), "drift": Drift()}


def signature_example(X: Any) -> pd.DataFrame:
    """Raw bars as a client sends them (dates as ``YYYY-MM-DD`` text), for the MLflow signature."""
    frame = as_frame(X)
    out = frame.copy()
    out["Date"] = frame["Date"].dt.strftime("%Y-%m-%d")
    return out.reset_index(drop=True)
