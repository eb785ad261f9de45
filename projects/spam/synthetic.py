"""Small generated messages with the real schema (raw strings, "spam"/"ham" labels) for the harness."""

from __future__ import annotations

import numpy as np
import pandas as pd

from common.datasets import Dataset, generated
from common.text import signature_example
from projects.spam.data import deduplicate

_HAM = ["ok", "see", "you", "later", "at", "home", "love", "dinner", "lol", "call", "me", "when", "u", "get",
        "there", "going", "to", "sleep", "now", "thanks", "for", "today", "meeting", "tomorrow", "haha", "where",
        "are", "sorry", "running", "late", "mum", "says", "hi", "can't", "wait", "weekend"]
_SPAM = ["WINNER", "claim", "your", "prize", "FREE", "txt", "WIN", "to", "80082", "call", "now", "£1000", "cash",
         "award", "guaranteed", "urgent", "mobile", "ringtone", "reply", "STOP", "offer", "www.win-now.com",
         "selected", "bonus", "£150", "voucher", "entry", "18+"]
_ODD = ["", "   ", "😀🎉 ok", "12345", "Ünïcödé text ✓", "x" * 3000]


def generate(n: int = 400, seed: int = 0) -> Dataset:
    """``n`` messages (about 15% spam) of mixed ham/spam words, some duplicated, plus odd inputs.

    The duplicates are removed the same way the real loader removes them.
    """
    rng = np.random.default_rng(seed)
    texts, labels = [], []
    for i in range(n):
        spam = rng.random() < 0.15
        own, other = (_SPAM, _HAM) if spam else (_HAM, _SPAM)
        k = int(rng.integers(4, 14))
        words = [own[j] for j in rng.integers(0, len(own), k)]
        words += [other[j] for j in rng.integers(0, len(other), int(rng.integers(0, 3)))]
        rng.shuffle(words)
        texts.append(" ".join(words) + ("!!" if spam and rng.random() < 0.5 else ""))
        labels.append("spam" if spam else "ham")
        if i % 25 == 0:
            texts.append(texts[-1])
            labels.append(labels[-1])
    for j, odd in enumerate(_ODD):
        texts.append(odd + " " * j)
        labels.append("ham")
    frame, notes = deduplicate(pd.DataFrame({"label": labels, "text": texts}))
    return Dataset(
        X=frame["text"].tolist(),
        y=np.asarray(frame["label"].tolist(), dtype=object),
        files=[generated("spam", {"n": n, "seed": seed})],
        name="synthetic",
        notes=notes,
    )


def predict_example(ds: Dataset) -> pd.DataFrame:
    """Raw texts, including awkward ones, as the ``text`` column the served model receives."""
    return signature_example([ds.X[0], "WINNER!! claim your FREE prize now, txt WIN to 80082", "", "😀 see u at home"])


