"""Loading the SMS Spam Collection (or the Enron email corpus). Pure: parse, check, deduplicate."""

from __future__ import annotations

import csv
import logging
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from common.datasets import DataFile, Dataset, Source, check_columns, read_csv, resolve
from common.errors import DataError, ParameterError

log = logging.getLogger(__name__)

LABELS = ("ham", "spam")

SMS = DataFile(
    path="spam/SMSSpamCollection",
    sha256="7d039a24a6083ed9ef0f806ebad56bbb976e3aeb8de05669173bfdc4996c239d",
    sources=(Source("https://archive.ics.uci.edu/static/public/228/sms+spam+collection.zip",
                    member="SMSSpamCollection"),),
    homepage="https://archive.ics.uci.edu/dataset/228/sms+spam+collection",
)
ENRON = DataFile(
    path="spam/spam_ham_dataset.csv",
    sha256="65386c0361eb99c0be3835d6488cbb9dda2ae0575eb37d2ab543c52a2c7619cb",
    # A pinned copy of the Kaggle file inside a zip (checksum-verified after extraction).
    sources=(Source("https://raw.githubusercontent.com/Ahmad10Raza/Spam_or_Ham_Classification/"
                    "cb8db3b927c75ba4a223733724963c2f7a2378e0/spam_ham_dataset.zip",
                    member="spam_ham_dataset.csv"),),
    kaggle="dataset:venky73/spam-mails-dataset",
    homepage="https://www.kaggle.com/datasets/venky73/spam-mails-dataset (Enron-Spam, Metsis et al. 2006)",
)


def read_sms(path: str | Path) -> pd.DataFrame:
    """The tab-separated ``label<TAB>text`` file as (label, text).

    Quote processing is off: a few messages contain a stray ``"``, and with default quoting the parser
    merges lines and silently loses two messages (5,572 instead of 5,574 rows).
    """
    frame = read_csv(path, sep="\t", header=None, names=["label", "text"], quoting=csv.QUOTE_NONE,
                     dtype=str, keep_default_na=False, encoding="utf-8")
    return check_columns(frame, str(path), text=["label", "text"])


def read_enron(path: str | Path) -> pd.DataFrame:
    """The Kaggle Enron CSV (``label,text`` plus an index and ``label_num``) as (label, text)."""
    frame = read_csv(path, dtype={"label": str, "text": str}, keep_default_na=False)
    check_columns(frame, str(path), text=["label", "text"])
    return frame[["label", "text"]]


def deduplicate(frame: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Keep the first row of each distinct text, so no message is on both sides of a split.

    Returns the frame and notes for the user (how many duplicates went, and whether any disagreed).
    """
    labels_per_text = frame.groupby("text")["label"].nunique()
    conflicting = int((labels_per_text > 1).sum())
    out = frame.drop_duplicates("text", keep="first").reset_index(drop=True)
    notes = [f"deduplicated before splitting: removed {len(frame) - len(out)} duplicate texts "
             f"({len(frame)} -> {len(out)} messages)"]
    if conflicting:
        notes.append(f"{conflicting} duplicated texts had different labels; the first label was kept")
    return out, notes


def load(data_dir: str | Path | None = None, dataset: Literal["sms", "enron"] = "sms") -> Dataset:
    """Messages as raw strings and their labels (``"spam"``/``"ham"``), duplicates removed.

    Args:
        data_dir: an explicit folder in mirror layout (else the usual resolution order).
        dataset: ``sms`` (UCI SMS Spam Collection, 5,574 messages) or ``enron`` (5,171 Enron emails).
    """
    if dataset == "sms":
        info = resolve(SMS, data_dir)
        frame = read_sms(info.path)
    elif dataset == "enron":
        info = resolve(ENRON, data_dir)
        frame = read_enron(info.path)
    else:
        raise ParameterError(f"Unknown spam dataset '{dataset}': use 'sms' or 'enron'.")
    frame["label"] = frame["label"].str.strip().str.lower()
    unknown = sorted(set(frame["label"]) - set(LABELS))
    if unknown:
        raise DataError(f"{info.path}: labels must be 'ham' or 'spam'; found {unknown[:5]}.")
    frame, notes = deduplicate(frame)
    spam = int((frame["label"] == "spam").sum())
    notes.append(f"{dataset}: {len(frame)} messages, {spam} spam ({spam / len(frame):.1%})")
    return Dataset(
        X=frame["text"].astype(str).tolist(),
        y=np.asarray(frame["label"].tolist(), dtype=object),
        files=[info],
        name=dataset,
        notes=notes,
    )
