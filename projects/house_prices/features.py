"""Feature construction for the Ames houses, as transformers that live inside the Pipeline.

``HouseFeatures`` is stateless domain knowledge from the data description (ordinal quality scales, "NA"
meaning "no basement/garage/pool", totals and ages). Everything estimated from rows (medians, category
levels, scales) is learned by later steps on training rows only.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils import Tags
from sklearn.utils.validation import check_is_fitted

from common.errors import InputError, ParameterError

NUMERIC = [
    "MSSubClass", "LotFrontage", "LotArea", "OverallQual", "OverallCond", "YearBuilt", "YearRemodAdd",
    "MasVnrArea", "BsmtFinSF1", "BsmtFinSF2", "BsmtUnfSF", "TotalBsmtSF", "1stFlrSF", "2ndFlrSF",
    "LowQualFinSF", "GrLivArea", "BsmtFullBath", "BsmtHalfBath", "FullBath", "HalfBath", "BedroomAbvGr",
    "KitchenAbvGr", "TotRmsAbvGrd", "Fireplaces", "GarageYrBlt", "GarageCars", "GarageArea", "WoodDeckSF",
    "OpenPorchSF", "EnclosedPorch", "3SsnPorch", "ScreenPorch", "PoolArea", "MiscVal", "MoSold", "YrSold",
]
CATEGORICAL = [
    "MSZoning", "Street", "Alley", "LotShape", "LandContour", "Utilities", "LotConfig", "LandSlope",
    "Neighborhood", "Condition1", "Condition2", "BldgType", "HouseStyle", "RoofStyle", "RoofMatl",
    "Exterior1st", "Exterior2nd", "MasVnrType", "ExterQual", "ExterCond", "Foundation", "BsmtQual",
    "BsmtCond", "BsmtExposure", "BsmtFinType1", "BsmtFinType2", "Heating", "HeatingQC", "CentralAir",
    "Electrical", "KitchenQual", "Functional", "FireplaceQu", "GarageType", "GarageFinish", "GarageQual",
    "GarageCond", "PavedDrive", "PoolQC", "Fence", "MiscFeature", "SaleType", "SaleCondition",
]
RAW_COLUMNS = NUMERIC + CATEGORICAL

_QUALITY = {"Ex": 5, "Gd": 4, "TA": 3, "Fa": 2, "Po": 1}
ORDINAL: dict[str, dict[str, int]] = {
    **{c: _QUALITY for c in ("ExterQual", "ExterCond", "BsmtQual", "BsmtCond", "HeatingQC", "KitchenQual",
                             "FireplaceQu", "GarageQual", "GarageCond", "PoolQC")},
    "BsmtExposure": {"Gd": 4, "Av": 3, "Mn": 2, "No": 1},
    "BsmtFinType1": {"GLQ": 6, "ALQ": 5, "BLQ": 4, "Rec": 3, "LwQ": 2, "Unf": 1},
    "BsmtFinType2": {"GLQ": 6, "ALQ": 5, "BLQ": 4, "Rec": 3, "LwQ": 2, "Unf": 1},
    "GarageFinish": {"Fin": 3, "RFn": 2, "Unf": 1},
    "Functional": {"Typ": 7, "Min1": 6, "Min2": 5, "Mod": 4, "Maj1": 3, "Maj2": 2, "Sev": 1, "Sal": 0},
    "LotShape": {"Reg": 3, "IR1": 2, "IR2": 1, "IR3": 0},
    "LandSlope": {"Gtl": 2, "Mod": 1, "Sev": 0},
    "PavedDrive": {"Y": 2, "P": 1, "N": 0},
    "CentralAir": {"Y": 1, "N": 0},
    "Fence": {"GdPrv": 4, "MnPrv": 3, "GdWo": 2, "MnWw": 1},
}
# Missing in these means "the house has none" (data description), so it is a value, not a gap to impute.
ABSENT_MEANS_NONE = [
    "Alley", "MasVnrType", "BsmtQual", "BsmtCond", "BsmtExposure", "BsmtFinType1", "BsmtFinType2",
    "FireplaceQu", "GarageType", "GarageFinish", "GarageQual", "GarageCond", "PoolQC", "Fence", "MiscFeature",
]
# Areas and counts of a basement/garage that does not exist are zero, not unknown.
ZERO_WHEN_ABSENT = [
    "MasVnrArea", "BsmtFinSF1", "BsmtFinSF2", "BsmtUnfSF", "TotalBsmtSF", "BsmtFullBath", "BsmtHalfBath",
    "GarageCars", "GarageArea",
]
NOMINAL = [c for c in CATEGORICAL if c not in ORDINAL] + ["MSSubClass", "MoSold"]
ENGINEERED = [
    "TotalSF", "TotalBath", "TotalPorch", "Age", "RemodAge", "GarageAge", "QualSF", "QualLiv", "HasPool",
    "Has2nd", "HasGarage", "HasBsmt", "HasFireplace", "Remodeled", "NewHouse", "LotFrontageMissing",
]
SKEWED = [
    "LotArea", "LotFrontage", "MasVnrArea", "BsmtFinSF1", "BsmtFinSF2", "BsmtUnfSF", "TotalBsmtSF",
    "1stFlrSF", "2ndFlrSF", "LowQualFinSF", "GrLivArea", "WoodDeckSF", "OpenPorchSF", "EnclosedPorch",
    "3SsnPorch", "ScreenPorch", "PoolArea", "MiscVal", "TotalSF", "TotalPorch", "QualSF", "QualLiv",
    "GarageArea",
]


def as_frame(X: Any) -> pd.DataFrame:
    """Accept a DataFrame (or a list of row dicts) of raw Kaggle columns; name what is missing otherwise."""
    if isinstance(X, pd.DataFrame):
        frame = X
    elif isinstance(X, list | tuple) and X and isinstance(X[0], dict):
        frame = pd.DataFrame(list(X))
    elif isinstance(X, dict):
        frame = pd.DataFrame([X])
    else:
        raise InputError(
            f"house_prices expects a DataFrame of the raw Kaggle columns (like train.csv without SalePrice); "
            f"got {type(X).__name__}."
        )
    missing = [c for c in RAW_COLUMNS if c not in frame.columns]
    if missing:
        raise InputError(
            f"house_prices input is missing {len(missing)} raw column(s): {', '.join(missing[:12])}"
            + (" ..." if len(missing) > 12 else "") + ". Pass every column of Kaggle's test.csv."
        )
    return frame


class HouseFeatures(TransformerMixin, BaseEstimator):
    """Raw Kaggle columns -> typed, domain-encoded and engineered columns (stateless).

    Output: ``NUMERIC``-like numbers (ordinal scales become integers, absent areas zero) plus
    ``ENGINEERED`` totals, ages and indicators, and ``NOMINAL`` columns as strings ("None" = absent).
    Extra input columns (``Id``...) are ignored.
    """

    def fit(self, X: Any, y: Any = None) -> HouseFeatures:
        as_frame(X)
        return self

    def __sklearn_tags__(self) -> Tags:
        tags = super().__sklearn_tags__()
        tags.requires_fit = False  # stateless: fit only checks the columns
        return tags

    def transform(self, X: Any) -> pd.DataFrame:
        raw = as_frame(X)
        # One conversion to a numpy block, then plain numpy per column: pandas' per-column overhead would
        # dominate single-row predictions otherwise.
        # (one row: taking the row is several times faster than converting every Arrow string column)
        block = raw.iloc[0].to_numpy(dtype=object)[None, :] if len(raw) == 1 else raw.to_numpy(dtype=object)
        position = {c: i for i, c in enumerate(raw.columns)}
        where = {c: position[c] for c in RAW_COLUMNS}
        o: dict[str, np.ndarray] = {}
        for col in NUMERIC:
            o[col] = _as_float(block[:, where[col]], col)
        for col in ZERO_WHEN_ABSENT:
            o[col] = _zero_nan(o[col])
        for col, scale in ORDINAL.items():
            values = np.array([scale.get(v, np.nan) if isinstance(v, str) else np.nan
                               for v in block[:, where[col]]], dtype=float)
            o[col] = _zero_nan(values) if col in ABSENT_MEANS_NONE or col == "Fence" else values
        for col in NOMINAL:
            numeric = col in ("MSSubClass", "MoSold")
            source = o[col] if numeric else block[:, where[col]]
            o["cat_" + col] = _nominal(source, numeric, absent="None" if col in ABSENT_MEANS_NONE else None)
        o["GarageYrBlt"] = np.where(np.isnan(o["GarageYrBlt"]), o["YearBuilt"], o["GarageYrBlt"])
        o["TotalSF"] = o["TotalBsmtSF"] + o["1stFlrSF"] + o["2ndFlrSF"]
        o["TotalBath"] = o["FullBath"] + 0.5 * o["HalfBath"] + o["BsmtFullBath"] + 0.5 * o["BsmtHalfBath"]
        porches = ["OpenPorchSF", "EnclosedPorch", "3SsnPorch", "ScreenPorch", "WoodDeckSF"]
        o["TotalPorch"] = np.nansum(np.column_stack([o[c] for c in porches]), axis=1)
        o["Age"] = np.maximum(o["YrSold"] - o["YearBuilt"], 0.0)
        o["RemodAge"] = np.maximum(o["YrSold"] - o["YearRemodAdd"], 0.0)
        o["GarageAge"] = np.maximum(o["YrSold"] - o["GarageYrBlt"], 0.0)
        o["QualSF"] = o["OverallQual"] * o["TotalSF"]
        o["QualLiv"] = o["OverallQual"] * o["GrLivArea"]
        with np.errstate(invalid="ignore"):  # NaN compares as False: "no pool" unless stated
            o["HasPool"] = (o["PoolArea"] > 0).astype(float)
            o["Has2nd"] = (o["2ndFlrSF"] > 0).astype(float)
            o["HasGarage"] = (o["GarageArea"] > 0).astype(float)
            o["HasBsmt"] = (o["TotalBsmtSF"] > 0).astype(float)
            o["HasFireplace"] = (o["Fireplaces"] > 0).astype(float)
        o["Remodeled"] = (o["YearRemodAdd"] != o["YearBuilt"]).astype(float)
        o["NewHouse"] = (o["YearBuilt"] == o["YrSold"]).astype(float)
        o["LotFrontageMissing"] = np.isnan(o["LotFrontage"]).astype(float)
        return _frame(o, raw.index)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        return np.asarray(self.numeric_columns() + self.nominal_columns(), dtype=object)

    @staticmethod
    def numeric_columns() -> list[str]:
        return [c for c in NUMERIC if c not in ("MSSubClass", "MoSold")] + list(ORDINAL) + ENGINEERED

    @staticmethod
    def nominal_columns() -> list[str]:
        return ["cat_" + c for c in NOMINAL]


class GroupMedianImputer(TransformerMixin, BaseEstimator):
    """Fill a numeric column with its median within a group (LotFrontage by Neighborhood), learned in fit."""

    def __init__(self, column: str = "LotFrontage", group: str = "cat_Neighborhood") -> None:
        self.column = column
        self.group = group

    def fit(self, X: pd.DataFrame, y: Any = None) -> GroupMedianImputer:
        self.medians_ = X.groupby(X[self.group].astype(str))[self.column].median().dropna().to_dict()
        self.overall_ = float(X[self.column].median())
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        check_is_fitted(self)
        values = X[self.column].to_numpy(dtype=float, copy=True)
        gaps = np.flatnonzero(np.isnan(values))
        if not len(gaps):
            return X
        groups = X[self.group].to_numpy(dtype=object)
        values[gaps] = [self.medians_.get(str(groups[i]), self.overall_) for i in gaps]
        out = X.copy(deep=False)  # copy-on-write: the caller's frame is never modified
        out[self.column] = values
        return out


def _frame(columns: dict[str, np.ndarray], index: pd.Index) -> pd.DataFrame:
    """A frame of one float block and one object block (strings stay plain Python objects, not Arrow
    strings, so the later steps read them back without conversion)."""
    numeric = [c for c, v in columns.items() if v.dtype != object]
    nominal = [c for c, v in columns.items() if v.dtype == object]
    parts = [pd.DataFrame(np.column_stack([columns[c] for c in numeric]), columns=numeric, index=index)]
    if nominal:
        strings = np.column_stack([columns[c] for c in nominal])
        parts.append(pd.DataFrame(strings, columns=nominal, index=index, dtype=object))
    return pd.concat(parts, axis=1)


def _zero_nan(values: np.ndarray) -> np.ndarray:
    return np.where(np.isnan(values), 0.0, values)


def _as_float(values: np.ndarray, column: str = "value") -> np.ndarray:
    """A column as floats (numbers sent as text are fine; missing stays NaN).

    Raises:
        InputError: when a value is neither missing nor a number: a wrong type is the caller's error, and
            silently imputing it would hide a broken client (the REST server answers 400 with this message).
    """
    try:
        return values.astype(float)
    except (TypeError, ValueError):
        series = pd.Series(values)
        out = pd.to_numeric(series, errors="coerce")
        bad = out.isna() & series.notna() & (series.astype(str).str.strip() != "")
        if bad.any():
            examples = series[bad].astype(str).head(3).tolist()
            raise InputError(f"house_prices column {column} must be numeric; got {examples}.") from None
        return out.to_numpy(dtype=float, na_value=np.nan)


def _nominal(values: np.ndarray, numeric: bool, absent: str | None) -> np.ndarray:
    """A categorical column as an object array of strings; missing -> ``absent`` (None = unknown).

    ``numeric`` codes (MSSubClass, MoSold) arrive as floats: 20, "20" and 20.0 are the same class "20".
    """
    if numeric:
        return np.array([absent if np.isnan(v) else str(int(v)) for v in values], dtype=object)
    missing = pd.isna(values)
    return np.array([absent if m else str(v) for v, m in zip(values, missing, strict=True)], dtype=object)


def log1p_nonneg(X: Any) -> Any:
    """log1p of non-negative skewed areas (module-level so the pipeline pickles)."""
    return np.log1p(np.clip(np.asarray(X, dtype=float), 0, None))


# Neighbourhood price level and its interactions with size and quality (``NeighborhoodLevel``).
NEIGHBORHOOD_INTERACTIONS = ("GrLivArea", "TotalSF", "OverallQual")
NEIGHBORHOOD_COLUMNS = ["NbhdLevel"] + [f"NbhdLevel_x_{c}" for c in NEIGHBORHOOD_INTERACTIONS]
# Small integer scales whose effect on price is not linear (quality 9 -> 10 is worth more than 4 -> 5, and
# condition 5 is the "average/new" default): the linear members also see them one-hot encoded.
LEVELS = ["OverallQual", "OverallCond", "YrSold"]


class NeighborhoodLevel(TransformerMixin, BaseEstimator):
    """Add each neighbourhood's (smoothed) mean log price, learned from the training rows, and its products
    with centred size and quality.

    The same extra square foot is worth more in an expensive neighbourhood than in a cheap one; a linear model
    cannot express that with one-hot neighbourhoods alone. Levels are shrunk toward the overall mean with
    ``smoothing`` pseudo-rows, so a neighbourhood seen a handful of times stays near zero and an unseen one is
    exactly zero. Fitted on the (log) target of the rows the pipeline is fitted on, so CV folds never see the
    prices of their validation rows.

    Args:
        smoothing: pseudo-count pulling small neighbourhoods toward the overall mean.
    """

    def __init__(self, smoothing: float = 10.0) -> None:
        self.smoothing = smoothing

    def fit(self, X: pd.DataFrame, y: Any = None) -> NeighborhoodLevel:
        if y is None:
            raise InputError("NeighborhoodLevel learns from prices: fit it with the target (y).")
        target = np.asarray(y, dtype=float)
        groups = X["cat_Neighborhood"].astype(str).to_numpy()
        self.mean_ = float(np.mean(target))
        stats = pd.DataFrame({"g": groups, "y": target}).groupby("g")["y"].agg(["sum", "count"])
        level = (stats["sum"] + self.smoothing * self.mean_) / (stats["count"] + self.smoothing) - self.mean_
        self.levels_ = {str(k): float(v) for k, v in level.items()}
        self.centers_ = {c: float(np.nanmedian(self._scaled(X, c))) for c in NEIGHBORHOOD_INTERACTIONS}
        return self

    @staticmethod
    def _scaled(X: pd.DataFrame, column: str) -> np.ndarray:
        values = X[column].to_numpy(dtype=float)
        return log1p_nonneg(values) if column in SKEWED else values

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        check_is_fitted(self)
        groups = X["cat_Neighborhood"].to_numpy(dtype=object)
        level = np.array([self.levels_.get(str(g), 0.0) for g in groups], dtype=float)
        extra = {"NbhdLevel": level}
        for col in NEIGHBORHOOD_INTERACTIONS:
            centred = _zero_nan(self._scaled(X, col) - self.centers_[col])  # missing -> the median house
            extra[f"NbhdLevel_x_{col}"] = level * centred
        return pd.concat([X, pd.DataFrame(extra, index=X.index)], axis=1)


def _positions(X: pd.DataFrame, columns: list[str], owner: str) -> np.ndarray:
    """Positions of ``columns`` in ``X``; an InputError names any that are missing."""
    positions = X.columns.get_indexer(columns)
    if (positions < 0).any():
        missing = [c for c, i in zip(columns, positions, strict=True) if i < 0]
        raise InputError(f"{owner} needs column(s) {', '.join(missing[:8])}: pass it the output of the "
                         "house_prices feature steps (HouseFeatures, GroupMedianImputer, NeighborhoodLevel).")
    return positions


def _block(X: pd.DataFrame, positions: np.ndarray, seen: list[str], columns: list[str], owner: str,
           dtype: Any) -> np.ndarray:
    """``X[columns]`` as one array; positions learned in fit are reused when ``X`` has the same columns
    (selection by position is cheaper than by name for a one-row frame)."""
    if X.columns.tolist() != seen:
        positions = _positions(X, columns, owner)
    return X.iloc[:, positions].to_numpy(dtype=dtype)


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and value != value)


def _category_table(values: np.ndarray, min_frequency: int) -> tuple[list[Any], bool, Any]:
    """(frequent categories sorted, whether rarer ones exist, the most frequent value) of one column."""
    counts: dict[Any, int] = {}
    for v in values:
        if not _missing(v):
            counts[v] = counts.get(v, 0) + 1
    frequent = sorted((v for v, n in counts.items() if n >= min_frequency), key=str)
    mode = min(counts, key=lambda v: (-counts[v], str(v))) if counts else None
    return frequent, len(frequent) < len(counts), mode


class LinearDesign(TransformerMixin, BaseEstimator):
    """Domain-feature frame -> dense matrix for the linear and kernel members, learned on training rows.

    Numeric columns are clipped to [training minimum, training ``1 - clip_quantile`` quantile] (a winsorizer:
    a linear model must not extrapolate to a house bigger than any it has seen), imputed with the training
    median, log1p-transformed if skewed, and standardised. Nominal and level columns are one-hot encoded;
    categories seen fewer than ``min_frequency`` times share one "infrequent" column, unknown categories go
    there too (or nowhere if there is none), and a missing value takes the most frequent category.

    Written in plain numpy rather than as a ColumnTransformer because a single-row prediction passes through
    it twice (Lasso and SVR): sklearn's per-step validation would cost more than the models themselves.

    Args:
        numeric: numeric columns; skewed: those that get log1p; nominal: categorical columns;
        levels: numeric columns that are also one-hot encoded; clip_quantile: upper clipping quantile's
        complement (0 = clip at the training maximum); min_frequency: rarer categories are pooled.
    """

    def __init__(self, numeric: list[str] | None = None, skewed: list[str] | None = None,
                 nominal: list[str] | None = None, levels: list[str] | None = None,
                 clip_quantile: float = 0.005, min_frequency: int = 3) -> None:
        self.numeric = numeric
        self.skewed = skewed
        self.nominal = nominal
        self.levels = levels
        self.clip_quantile = clip_quantile
        self.min_frequency = min_frequency

    def _columns(self) -> tuple[list[str], list[str]]:
        numeric = (list(self.numeric) if self.numeric is not None
                   else HouseFeatures.numeric_columns() + NEIGHBORHOOD_COLUMNS)
        nominal = list(self.nominal) if self.nominal is not None else HouseFeatures.nominal_columns()
        categorical = nominal + (list(self.levels) if self.levels is not None else LEVELS)
        return numeric, categorical

    def fit(self, X: pd.DataFrame, y: Any = None) -> LinearDesign:
        if not 0.0 <= self.clip_quantile < 0.5:
            raise ParameterError(f"clip_quantile must be in [0, 0.5); got {self.clip_quantile}.")
        numeric, categorical = self._columns()
        self.columns_in_ = X.columns.tolist()
        self.numeric_positions_ = _positions(X, numeric, "LinearDesign")
        self.categorical_positions_ = _positions(X, categorical, "LinearDesign")
        skewed = set(self.skewed if self.skewed is not None else SKEWED)
        values = X.iloc[:, self.numeric_positions_].to_numpy(dtype=float)
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # an all-missing column: bounds and median NaN
            self.low_ = np.nanmin(values, axis=0)
            self.high_ = np.nanquantile(values, 1.0 - self.clip_quantile, axis=0)
            clipped = np.clip(values, self.low_, self.high_)
            self.median_ = np.nan_to_num(np.nanmedian(clipped, axis=0))
        self.log_mask_ = np.array([c in skewed for c in numeric])
        filled = self._numeric(values, scale=False)
        self.mean_ = filled.mean(axis=0)
        std = filled.std(axis=0)
        self.scale_ = np.where(std > 0, std, 1.0)
        self.categories_: dict[str, list[Any]] = {}
        self.infrequent_: dict[str, bool] = {}
        self.mode_: dict[str, Any] = {}
        block = X.iloc[:, self.categorical_positions_].to_numpy(dtype=object)
        for j, col in enumerate(categorical):
            self.categories_[col], self.infrequent_[col], self.mode_[col] = _category_table(
                block[:, j], self.min_frequency)
        self.index_ = {col: {v: i for i, v in enumerate(cats)} for col, cats in self.categories_.items()}
        self.numeric_columns_, self.categorical_columns_ = numeric, categorical
        self.n_features_out_ = len(numeric) + sum(
            len(v) + self.infrequent_[c] for c, v in self.categories_.items())
        return self

    def _numeric(self, values: np.ndarray, scale: bool = True) -> np.ndarray:
        out = np.clip(values, self.low_, self.high_)
        out = np.where(np.isnan(out), self.median_, out)
        out[:, self.log_mask_] = log1p_nonneg(out[:, self.log_mask_])
        return (out - self.mean_) / self.scale_ if scale else out

    def transform(self, X: pd.DataFrame) -> np.ndarray:
        n = len(X)
        out = np.zeros((n, self.n_features_out_))
        k = len(self.numeric_columns_)
        out[:, :k] = self._numeric(_block(X, self.numeric_positions_, self.columns_in_, self.numeric_columns_,
                                          "LinearDesign", float))
        rows = np.arange(n)
        block = _block(X, self.categorical_positions_, self.columns_in_, self.categorical_columns_,
                       "LinearDesign", object)
        for j, col in enumerate(self.categorical_columns_):
            index, width = self.index_[col], len(self.categories_[col]) + self.infrequent_[col]
            other = width - 1 if self.infrequent_[col] else -1
            mode = self.mode_[col]
            codes = np.array([index.get(mode if _missing(v) else v, other) for v in block[:, j]], dtype=int)
            hit = codes >= 0
            out[rows[hit], k + codes[hit]] = 1.0
            k += width
        return out

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        names = list(self.numeric_columns_)
        for col in self.categorical_columns_:
            names += [f"{col}={v}" for v in self.categories_[col]]
            names += [f"{col}=infrequent"] if self.infrequent_[col] else []
        return np.asarray(names, dtype=object)


class TreeDesign(TransformerMixin, BaseEstimator):
    """Domain-feature frame -> matrix for tree models: numbers as they are (NaN kept), categories as codes.

    Categories seen at least ``min_frequency`` times get codes 0..k-1 (sorted), rarer ones share code k, and
    unknown or missing values are NaN (trees route missing values on their own). ``categorical_mask_`` says
    which output columns are codes.
    """

    def __init__(self, numeric: list[str] | None = None, nominal: list[str] | None = None,
                 min_frequency: int = 3) -> None:
        self.numeric = numeric
        self.nominal = nominal
        self.min_frequency = min_frequency

    def fit(self, X: pd.DataFrame, y: Any = None) -> TreeDesign:
        self.numeric_columns_ = (list(self.numeric) if self.numeric is not None
                                 else HouseFeatures.numeric_columns() + NEIGHBORHOOD_COLUMNS)
        self.nominal_columns_ = (list(self.nominal) if self.nominal is not None
                                 else HouseFeatures.nominal_columns())
        self.columns_in_ = X.columns.tolist()
        self.numeric_positions_ = _positions(X, self.numeric_columns_, "TreeDesign")
        self.nominal_positions_ = _positions(X, self.nominal_columns_, "TreeDesign")
        block = X.iloc[:, self.nominal_positions_].to_numpy(dtype=object)
        self.codes_: dict[str, dict[Any, int]] = {}
        for j, col in enumerate(self.nominal_columns_):
            frequent, infrequent, _ = _category_table(block[:, j], self.min_frequency)
            codes = {v: i for i, v in enumerate(frequent)}
            if infrequent:  # every rarer category seen in training shares the next code
                seen = {v for v in block[:, j] if not _missing(v)}
                codes |= {v: len(frequent) for v in seen - set(frequent)}
            self.codes_[col] = codes
        self.categorical_mask_ = np.r_[np.zeros(len(self.numeric_columns_), dtype=bool),
                                       np.ones(len(self.nominal_columns_), dtype=bool)]
        return self

    def transform(self, X: pd.DataFrame) -> np.ndarray:
        out = np.empty((len(X), len(self.categorical_mask_)))
        k = len(self.numeric_columns_)
        seen = self.columns_in_
        out[:, :k] = _block(X, self.numeric_positions_, seen, self.numeric_columns_, "TreeDesign", float)
        block = _block(X, self.nominal_positions_, seen, self.nominal_columns_, "TreeDesign", object)
        for j, col in enumerate(self.nominal_columns_):
            codes = self.codes_[col]
            out[:, k + j] = [codes.get(v, np.nan) for v in block[:, j]]
        return out

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        return np.asarray(self.numeric_columns_ + self.nominal_columns_, dtype=object)
