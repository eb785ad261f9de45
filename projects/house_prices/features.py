"""Feature construction for the Ames houses, as transformers that live inside the Pipeline.

``HouseFeatures`` is stateless domain knowledge from the data description (ordinal quality scales, "NA"
meaning "no basement/garage/pool", totals and ages). Everything estimated from rows (medians, category
levels, scales) is learned by later steps on training rows only.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin

from common.errors import InputError

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

    def transform(self, X: Any) -> pd.DataFrame:
        raw = as_frame(X)
        out = pd.DataFrame(index=raw.index)
        for col in NUMERIC:
            out[col] = pd.to_numeric(raw[col], errors="coerce").astype(float)
        out[ZERO_WHEN_ABSENT] = out[ZERO_WHEN_ABSENT].fillna(0.0)
        for col, scale in ORDINAL.items():
            out[col] = raw[col].map(scale).astype(float)
            if col in ABSENT_MEANS_NONE or col in ("Fence",):
                out[col] = out[col].fillna(0.0)
        for col in NOMINAL:
            src = raw[col]
            if col in ("MSSubClass", "MoSold"):
                src = pd.to_numeric(src, errors="coerce").astype("Int64").astype(str).replace("<NA>", np.nan)
            values = src.astype(object).where(src.notna(), None)
            if col in ABSENT_MEANS_NONE:
                values = values.fillna("None")
            out["cat_" + col] = values.astype(object)
        o = out
        o["GarageYrBlt"] = o["GarageYrBlt"].fillna(o["YearBuilt"])
        o["TotalSF"] = o["TotalBsmtSF"] + o["1stFlrSF"] + o["2ndFlrSF"]
        o["TotalBath"] = o["FullBath"] + 0.5 * o["HalfBath"] + o["BsmtFullBath"] + 0.5 * o["BsmtHalfBath"]
        o["TotalPorch"] = o[["OpenPorchSF", "EnclosedPorch", "3SsnPorch", "ScreenPorch", "WoodDeckSF"]].sum(axis=1)
        o["Age"] = (o["YrSold"] - o["YearBuilt"]).clip(lower=0)
        o["RemodAge"] = (o["YrSold"] - o["YearRemodAdd"]).clip(lower=0)
        o["GarageAge"] = (o["YrSold"] - o["GarageYrBlt"]).clip(lower=0)
        o["QualSF"] = o["OverallQual"] * o["TotalSF"]
        o["QualLiv"] = o["OverallQual"] * o["GrLivArea"]
        o["HasPool"] = (o["PoolArea"] > 0).astype(float)
        o["Has2nd"] = (o["2ndFlrSF"] > 0).astype(float)
        o["HasGarage"] = (o["GarageArea"] > 0).astype(float)
        o["HasBsmt"] = (o["TotalBsmtSF"] > 0).astype(float)
        o["HasFireplace"] = (o["Fireplaces"] > 0).astype(float)
        o["Remodeled"] = (o["YearRemodAdd"] != o["YearBuilt"]).astype(float)
        o["NewHouse"] = (o["YearBuilt"] == o["YrSold"]).astype(float)
        o["LotFrontageMissing"] = o["LotFrontage"].isna().astype(float)
        return o

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
        out = X.copy()
        fill = out[self.group].astype(str).map(self.medians_).astype(float).fillna(self.overall_)
        out[self.column] = out[self.column].fillna(fill)
        return out


def log1p_nonneg(X: Any) -> Any:
    """log1p of non-negative skewed areas (module-level so the pipeline pickles)."""
    return np.log1p(np.clip(np.asarray(X, dtype=float), 0, None))
