"""Train/test splits and CV splitters chosen by the project's ``SplitSpec``."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import KFold, StratifiedKFold, TimeSeriesSplit, train_test_split

from common.datasets import Dataset
from common.errors import DataError
from common.spec import SplitSpec


def take(x: Any, idx: np.ndarray) -> Any:
    """Row-select from a DataFrame, Series, array or list with positional indices."""
    if isinstance(x, pd.DataFrame | pd.Series):
        return x.iloc[idx]
    if isinstance(x, np.ndarray):
        return x[idx]
    return [x[i] for i in idx]


def concat(a: Any, b: Any) -> Any:
    """Stack two row collections of the same kind."""
    if isinstance(a, pd.DataFrame | pd.Series):
        return pd.concat([a, b])
    if isinstance(a, np.ndarray):
        return np.concatenate([a, b])
    return list(a) + list(b)


def n_rows(x: Any) -> int:
    return int(x.shape[0]) if hasattr(x, "shape") else len(x)


def train_test(ds: Dataset, split: SplitSpec) -> tuple[Any, Any, Any, Any]:
    """Return ``X_train, X_test, y_train, y_test`` for the project's protocol.

    ``given`` uses the dataset's own test file; ``time`` keeps the last rows for testing (the loader
    returns rows in time order); ``random``/``stratified`` shuffle with the spec's seed.
    """
    if split.kind == "given":
        if ds.X_test is None or ds.y_test is None:
            raise DataError("This project's protocol needs a labelled test file, but the loader returned none.")
        return ds.X, ds.X_test, ds.y, ds.y_test
    n = n_rows(ds.X)
    if n < 4:
        raise DataError(f"Only {n} labelled rows: too few to split into train and test.")
    idx = np.arange(n)
    if split.kind == "time":
        cut = int(round(n * (1 - split.test_size)))
        train_idx, test_idx = idx[:cut], idx[cut:]
    else:
        stratify = np.asarray(ds.y) if split.kind == "stratified" else None
        train_idx, test_idx = train_test_split(
            idx, test_size=split.test_size, random_state=split.seed, stratify=stratify
        )
    return take(ds.X, train_idx), take(ds.X, test_idx), take(ds.y, train_idx), take(ds.y, test_idx)


def cv_splitter(split: SplitSpec, n_samples: int | None = None) -> Any:
    """The cross-validation splitter matching the protocol (time order is never shuffled)."""
    folds = split.cv_folds
    if split.kind == "time":
        return TimeSeriesSplit(n_splits=folds, gap=split.gap)
    if split.kind in ("stratified", "given") and folds:
        return StratifiedKFold(n_splits=folds, shuffle=True, random_state=split.seed)
    return KFold(n_splits=folds, shuffle=True, random_state=split.seed)


def subsample(ds: Dataset, n: int, split: SplitSpec) -> Dataset:
    """A smaller copy of ``ds`` for quick runs (``--sample N``).

    Time-ordered data keeps the most recent ``n`` rows (contiguous, still in order); otherwise ``n`` rows are
    drawn with the split's seed, stratified by class for classification. A given test set shrinks in the
    same proportion.
    """
    def pick(X: Any, y: Any, k: int) -> tuple[Any, Any]:
        total = n_rows(X)
        if k >= total:
            return X, y
        if split.kind == "time":
            idx = np.arange(total - k, total)
        else:
            strat = np.asarray(y) if split.kind in ("stratified", "given") and y is not None else None
            try:
                idx, _ = train_test_split(np.arange(total), train_size=k, random_state=split.seed, stratify=strat)
            except ValueError:
                idx, _ = train_test_split(np.arange(total), train_size=k, random_state=split.seed)
            idx = np.sort(idx)
        return take(X, idx), (None if y is None else take(y, idx))

    total = n_rows(ds.X)
    ds.X, ds.y = pick(ds.X, ds.y, n)
    if ds.X_test is not None:
        k = max(4, int(round(n_rows(ds.X_test) * min(1.0, n / max(total, 1)))))
        ds.X_test, ds.y_test = pick(ds.X_test, ds.y_test, k)
    ds.notes.append(f"sample: {n_rows(ds.X)} of {total} rows")
    return ds
