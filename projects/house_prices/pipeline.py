"""house_prices pipeline: raw Kaggle columns in, SalePrice out; fitted in log-price space.

``blend`` averages a regularised linear model (one-hot + log areas, trained with robust outlier
filtering) and gradient-boosted trees (native categorical splits). Both learn only from the rows they
are fitted on, so cross-validation and the holdout see no leakage.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin, clone
from sklearn.compose import ColumnTransformer, TransformedTargetRegressor
from sklearn.ensemble import HistGradientBoostingRegressor, VotingRegressor
from sklearn.impute import SimpleImputer
from sklearn.linear_model import Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, OrdinalEncoder, StandardScaler

from projects.house_prices.features import SKEWED, GroupMedianImputer, HouseFeatures, log1p_nonneg


class RobustRefit(RegressorMixin, BaseEstimator):
    """Fit, drop training rows whose residual is an extreme outlier, refit.

    The Ames data has a few partial sales of huge houses at low prices that bend a linear fit. The rule is
    learned from the rows being fitted (residuals beyond ``threshold`` robust standard deviations), so it
    only ever removes training rows; every row is still scored when it is in a test fold.
    """

    def __init__(self, estimator: Any = None, threshold: float = 4.0) -> None:
        self.estimator = estimator
        self.threshold = threshold

    def fit(self, X: Any, y: Any) -> RobustRefit:
        y_arr = np.asarray(y, dtype=float)
        first = clone(self.estimator).fit(X, y_arr)
        resid = y_arr - first.predict(X)
        scale = 1.4826 * np.median(np.abs(resid - np.median(resid))) or 1.0
        keep = np.abs(resid - np.median(resid)) <= self.threshold * scale
        self.n_dropped_ = int((~keep).sum())
        rows = np.flatnonzero(keep)
        X_keep = X.iloc[rows] if hasattr(X, "iloc") else X[rows]
        self.estimator_ = clone(self.estimator).fit(X_keep, y_arr[rows]) if self.n_dropped_ else first
        return self

    def predict(self, X: Any) -> np.ndarray:
        return self.estimator_.predict(X)


def _linear(alpha: float) -> Pipeline:
    features = HouseFeatures()
    numeric = HouseFeatures.numeric_columns()
    skewed = [c for c in numeric if c in SKEWED]
    plain = [c for c in numeric if c not in SKEWED]
    columns = ColumnTransformer(
        [
            ("skewed", Pipeline([("impute", SimpleImputer(strategy="median")),
                                 ("log", FunctionTransformer(log1p_nonneg, feature_names_out="one-to-one")),
                                 ("scale", StandardScaler())]), skewed),
            ("numeric", Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())]), plain),
            ("nominal", Pipeline([("impute", SimpleImputer(strategy="most_frequent")),
                                  ("onehot", OneHotEncoder(handle_unknown="infrequent_if_exist", min_frequency=3,
                                                           sparse_output=False))]),
             HouseFeatures.nominal_columns()),
        ],
        verbose_feature_names_out=False,
    )
    return Pipeline([
        ("features", features),
        ("lot_frontage", GroupMedianImputer()),
        ("columns", columns),
        ("model", RobustRefit(Ridge(alpha=alpha))),
    ])


def _gbm(n_iter: int, seed: int = 0) -> Pipeline:
    numeric = HouseFeatures.numeric_columns()
    nominal = HouseFeatures.nominal_columns()
    columns = ColumnTransformer(
        [
            ("numeric", "passthrough", numeric),
            ("nominal", OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=np.nan,
                                       encoded_missing_value=np.nan, min_frequency=3), nominal),
        ],
        verbose_feature_names_out=False,
    )
    categorical = np.r_[np.zeros(len(numeric), dtype=bool), np.ones(len(nominal), dtype=bool)]
    model = HistGradientBoostingRegressor(
        learning_rate=0.03, max_iter=n_iter, max_leaf_nodes=12, min_samples_leaf=8, l2_regularization=1.0,
        max_features=0.4, categorical_features=categorical, early_stopping=False, random_state=seed,
    )
    return Pipeline([("features", HouseFeatures()), ("columns", columns), ("model", model)])


def build_pipeline(model: str = "blend", linear_alpha: float = 8.0, gbm_iter: int = 900,
                   linear_weight: float = 0.55) -> TransformedTargetRegressor:
    """An unfitted pipeline from raw Kaggle columns to SalePrice (learned in log space).

    Args:
        model: ``blend`` (linear + boosted trees), ``linear`` or ``gbm``.
        linear_alpha: Ridge regularisation strength.
        gbm_iter: boosting iterations.
        linear_weight: the linear model's share of the blend (log space).
    """
    if model == "linear":
        inner: Any = _linear(linear_alpha)
    elif model == "gbm":
        inner = _gbm(gbm_iter)
    else:
        inner = VotingRegressor(
            [("linear", _linear(linear_alpha)), ("gbm", _gbm(gbm_iter))],
            weights=[linear_weight, 1.0 - linear_weight],
        )
    return TransformedTargetRegressor(regressor=inner, func=np.log, inverse_func=np.exp, check_inverse=False)
