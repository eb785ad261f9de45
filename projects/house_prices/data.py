"""Loading the Kaggle House Prices files. Pure: parse and check; nothing is learned here."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from common.datasets import DataFile, Dataset, Source, check_columns, read_csv, resolve
from common.errors import DataError
from projects.house_prices.features import NUMERIC, RAW_COLUMNS

_KAGGLE = "competition:house-prices-advanced-regression-techniques"
_HOME = "https://www.kaggle.com/c/house-prices-advanced-regression-techniques/data"
_GITHUB = "https://raw.githubusercontent.com/vatsin20/House-Price-Prediction/a65a145975bee307cf8e45d4131f07d363196f61"

TRAIN = DataFile(
    path="house-prices/train.csv",
    sha256="1e18addf81e5e4d347cc17ee6075bbe4a42b7fa26b9e5b063e8f692a5f929d41",
    # A pinned copy of Kaggle's file (byte-identical, so the checksum holds); OpenML 42165 holds the same
    # rows but re-encoded, so its bytes cannot be verified against Kaggle's checksum.
    sources=(Source(f"{_GITHUB}/train.csv"),),
    kaggle=_KAGGLE,
    homepage=_HOME + " (also OpenML dataset 42165)",
)
TEST = DataFile(
    path="house-prices/test.csv",
    sha256="8fdd3d829d4d986b58f845c9553b225e67dd8383624d90fb6ca1d4bed5798c1e",
    sources=(Source(f"{_GITHUB}/test.csv"),),
    kaggle=_KAGGLE,
    homepage=_HOME,
)


def read_raw(path: str | Path, where: str | None = None) -> pd.DataFrame:
    """Read a Kaggle-format CSV the way a user would (``NA`` becomes NaN) and check its schema."""
    frame = read_csv(path)
    return check_columns(frame, where or str(path), required=RAW_COLUMNS, numeric=NUMERIC)


def load(data_dir: str | Path | None = None, with_test: bool = True) -> Dataset:
    """Kaggle train.csv as (raw columns, SalePrice) and test.csv as rows to predict for a submission.

    Args:
        data_dir: an explicit folder in mirror layout (else the usual resolution order).
        with_test: also read test.csv for the submission file (skipped if unavailable).
    """
    train_info = resolve(TRAIN, data_dir)
    train = read_raw(train_info.path)
    check_columns(train, train_info.path, numeric=["SalePrice"])
    if (train["SalePrice"] <= 0).any():
        raise DataError(f"{train_info.path}: SalePrice must be positive in every row.")
    ds = Dataset(
        X=train.drop(columns=["SalePrice", "Id"]),
        y=train["SalePrice"].astype(float),
        files=[train_info],
        name="kaggle",
    )
    if with_test:
        try:
            test_info = resolve(TEST, data_dir)
        except Exception as exc:  # the submission is optional; training must not depend on it
            ds.notes.append(f"test.csv unavailable, no submission file: {exc}")
        else:
            test = read_raw(test_info.path)
            ds.X_predict = test.drop(columns=["Id"])
            ds.predict_ids = test["Id"].rename("Id")
            ds.files.append(test_info)
    return ds
