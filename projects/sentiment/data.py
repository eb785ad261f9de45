"""Loading Kaggle's Tweet Sentiment Extraction files. Pure: parse and check; nothing is learned here.

Only the ``text`` column is returned as input. ``selected_text`` (the span annotators picked *given* the
label, present in train.csv only) is dropped on reading: used as input it hands the model the answer.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from common.datasets import DataFile, Dataset, Source, check_columns, read_csv, resolve
from common.errors import DataError

LABELS = ("negative", "neutral", "positive")
_KAGGLE = "competition:tweet-sentiment-extraction"
_HOME = "https://www.kaggle.com/competitions/tweet-sentiment-extraction/data"
# A pinned copy of Kaggle's files (byte-identical: the checksum is Kaggle's file's).
_COPY = ("https://raw.githubusercontent.com/reejungkim/Natural-Language-Processing/"
         "1dbfd8d85df259264da5765c2d5056a46c316f05/tweet-sentiment-extraction")

TRAIN = DataFile(
    path="sentiment/train.csv",
    sha256="192204063468a632b2601f6e833c42d7875b618d1a6e5c9529ad8ca58ee6be75",
    sources=(Source(f"{_COPY}/train.csv"),),
    kaggle=_KAGGLE,
    homepage=_HOME,
)
TEST = DataFile(
    path="sentiment/test.csv",
    sha256="4d1fc2995ce88eb7d435f18563e93361f35956c3e74ed22572b9614eff6d04e6",
    sources=(Source(f"{_COPY}/test.csv"),),
    kaggle=_KAGGLE,
    homepage=_HOME,
)


def read_labelled(path: str | Path) -> tuple[list[str], np.ndarray, int]:
    """(texts, labels, rows dropped for empty text) from a Kaggle file; other columns are never kept."""
    frame = read_csv(path, usecols=lambda c: c in ("textID", "text", "sentiment"), dtype=str,
                     keep_default_na=False)
    check_columns(frame, str(path), required=["text", "sentiment"])
    labels = frame["sentiment"].str.strip().str.lower()
    unknown = sorted(set(labels) - set(LABELS))
    if unknown:
        raise DataError(f"{path}: sentiment must be one of {', '.join(LABELS)}; found {unknown[:5]}.")
    keep = frame["text"].str.strip() != ""
    return frame.loc[keep, "text"].tolist(), np.asarray(labels[keep].tolist(), dtype=object), int((~keep).sum())


def load(data_dir: str | Path | None = None) -> Dataset:
    """train.csv tweets and labels for training/CV, test.csv for the single held-out score.

    Args:
        data_dir: an explicit folder in mirror layout (else the usual resolution order).
    """
    train_info, test_info = resolve(TRAIN, data_dir), resolve(TEST, data_dir)
    X, y, dropped = read_labelled(train_info.path)
    X_test, y_test, dropped_test = read_labelled(test_info.path)
    notes = ["input is the tweet text only; selected_text (chosen by annotators given the label) is not read"]
    if dropped or dropped_test:
        notes.append(f"dropped rows with empty text: {dropped} in train.csv, {dropped_test} in test.csv")
    counts = pd.Series(y).value_counts().to_dict()
    notes.append(f"train: {len(X)} tweets {counts}; test: {len(X_test)} tweets")
    return Dataset(X=X, y=y, X_test=X_test, y_test=y_test, files=[train_info, test_info], name="kaggle", notes=notes)
