"""Small generated tweets with the real schema (raw strings; negative/neutral/positive) for the harness.

They carry what the pipeline must handle: @handles, URLs, elongations, emoticons, negations, emoji and
empty or numeric texts.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from common.datasets import Dataset, generated
from common.text import signature_example

_WORDS = {
    "positive": ["love", "great", "happy", "awesome", "fun", "thanks", "best", "cool", "yay", "good"],
    "negative": ["hate", "sad", "awful", "bad", "sick", "tired", "worst", "miss", "ugh", "boring"],
    "neutral": ["going", "work", "today", "home", "watching", "tomorrow", "the", "bus", "lunch", "reading"],
}
_FILLER = ["i", "am", "just", "at", "the", "with", "my", "so", "this", "it", "is", "was"]
_EXTRAS = {"positive": ["soooo good", ":)", ":D", "<3"], "negative": ["not good", ":(", "sooo tired", "never again"],
           "neutral": ["@someone", "http://t.co/abc", "ok", "..."]}
_ODD = ["", "   ", "12345", "😀🎉", "Ünïcödé ✓", "a" * 500]


def _tweets(n: int, rng: np.random.Generator) -> tuple[list[str], list[str]]:
    texts, labels = [], []
    classes = list(_WORDS)
    for _ in range(n):
        label = classes[int(rng.choice(3, p=[0.3, 0.4, 0.3]))]
        words = [_WORDS[label][j] for j in rng.integers(0, 10, int(rng.integers(1, 3)))]
        words += [_FILLER[j] for j in rng.integers(0, len(_FILLER), int(rng.integers(2, 7)))]
        if rng.random() < 0.15:  # label noise, as in real annotations
            other = classes[int(rng.integers(0, 3))]
            words.append(_WORDS[other][int(rng.integers(0, 10))])
        if rng.random() < 0.5:
            words.append(_EXTRAS[label][int(rng.integers(0, 4))])
        rng.shuffle(words)
        texts.append(" ".join(words))
        labels.append(label)
    return texts, labels


def generate(n: int = 450, seed: int = 0) -> Dataset:
    """``n`` training tweets plus a given test set of ``n // 3``, like the Kaggle train/test files."""
    rng = np.random.default_rng(seed)
    X, y = _tweets(n, rng)
    X += _ODD
    y += ["neutral"] * len(_ODD)
    X_test, y_test = _tweets(max(n // 3, 30), rng)
    return Dataset(
        X=X,
        y=np.asarray(y, dtype=object),
        X_test=X_test,
        y_test=np.asarray(y_test, dtype=object),
        files=[generated("sentiment", {"n": n, "seed": seed})],
        name="synthetic",
    )


def predict_example(ds: Dataset) -> pd.DataFrame:
    """Raw tweets, awkward ones included, as the ``text`` column the served model receives."""
    return signature_example([ds.X[0], "soooo happy today :) @friend http://t.co/x", "", "not good at all :("])


