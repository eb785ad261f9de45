"""Small generated data with the real Kaggle schema, for the test harness (no real data needed)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from common.datasets import Dataset, generated
from projects.house_prices.features import CATEGORICAL, NUMERIC, ORDINAL

# Levels per categorical column (a few of the real ones; NaN appears where the data has "NA").
_LEVELS: dict[str, list[str]] = {
    "MSZoning": ["RL", "RM", "FV"], "Street": ["Pave"], "LandContour": ["Lvl", "Bnk"], "Utilities": ["AllPub"],
    "LotConfig": ["Inside", "Corner"], "Neighborhood": ["NAmes", "CollgCr", "OldTown", "Edwards", "NridgHt"],
    "Condition1": ["Norm", "Feedr"], "Condition2": ["Norm"], "BldgType": ["1Fam", "TwnhsE"],
    "HouseStyle": ["1Story", "2Story"], "RoofStyle": ["Gable", "Hip"], "RoofMatl": ["CompShg"],
    "Exterior1st": ["VinylSd", "HdBoard"], "Exterior2nd": ["VinylSd", "HdBoard"], "MasVnrType": ["BrkFace", "Stone"],
    "Foundation": ["PConc", "CBlock"], "Heating": ["GasA"], "Electrical": ["SBrkr", "FuseA"],
    "GarageType": ["Attchd", "Detchd"], "MiscFeature": ["Shed"], "SaleType": ["WD", "New"],
    "SaleCondition": ["Normal", "Partial", "Abnorml"], "Alley": ["Grvl", "Pave"],
}


def generate(n: int = 240, seed: int = 0) -> Dataset:
    """``n`` labelled houses plus 20 unlabelled ones; price follows quality, size and neighbourhood."""
    rng = np.random.default_rng(seed)
    total = n + 20
    frame = pd.DataFrame(index=range(total))
    for col in NUMERIC:
        frame[col] = rng.integers(0, 5, total).astype(float)
    frame["MSSubClass"] = rng.choice([20, 60, 50, 120], total)
    frame["LotFrontage"] = np.where(rng.random(total) < 0.15, np.nan, rng.normal(70, 15, total).round().clip(0))  # lengths are never negative
    frame["LotArea"] = rng.lognormal(9.1, 0.4, total).round()
    frame["OverallQual"] = rng.integers(3, 10, total)
    frame["OverallCond"] = rng.integers(3, 9, total)
    frame["YearBuilt"] = rng.integers(1920, 2009, total)
    frame["YearRemodAdd"] = np.maximum(frame["YearBuilt"], rng.integers(1950, 2010, total))
    frame["GrLivArea"] = rng.normal(1500, 400, total).clip(500).round()
    frame["1stFlrSF"] = (frame["GrLivArea"] * 0.6).round()
    frame["2ndFlrSF"] = frame["GrLivArea"] - frame["1stFlrSF"]
    frame["TotalBsmtSF"] = (frame["1stFlrSF"] * rng.uniform(0, 1, total)).round()
    frame["GarageYrBlt"] = np.where(rng.random(total) < 0.05, np.nan, frame["YearBuilt"])
    frame["YrSold"] = rng.integers(2006, 2011, total)
    frame["MoSold"] = rng.integers(1, 13, total)
    for col in CATEGORICAL:
        levels = list(ORDINAL[col]) if col in ORDINAL else _LEVELS.get(col, ["A", "B"])
        values = rng.choice(levels, total).astype(object)
        if col in ("Alley", "PoolQC", "Fence", "MiscFeature", "FireplaceQu", "MasVnrType"):
            values[rng.random(total) < 0.6] = np.nan
        frame[col] = values
    neigh = frame["Neighborhood"].map({"NAmes": 0.0, "CollgCr": 0.1, "OldTown": -0.15, "Edwards": -0.1,
                                       "NridgHt": 0.3})
    log_price = (10.6 + 0.11 * frame["OverallQual"] + 0.00035 * frame["GrLivArea"] + neigh
                 + 0.002 * (frame["YearBuilt"] - 1970) + rng.normal(0, 0.08, total))
    frame.insert(0, "Id", np.arange(1, total + 1))
    train, test = frame.iloc[:n], frame.iloc[n:]
    return Dataset(
        X=train.drop(columns=["Id"]).reset_index(drop=True),
        y=pd.Series(np.exp(log_price.iloc[:n]).round().to_numpy(), name="SalePrice"),
        X_predict=test.drop(columns=["Id"]).reset_index(drop=True),
        predict_ids=test["Id"].rename("Id").reset_index(drop=True),
        files=[generated("house_prices", {"n": n, "seed": seed})],
        name="synthetic",
    )


# Fast settings for the test harness, and the loose quality floor it checks on generated data.
TEST_PARAMS = {"gbm_iter": 60}
QUALITY_FLOOR = {"cv_rmsle": ("<=", 0.25)}
