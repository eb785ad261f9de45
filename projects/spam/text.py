"""Raw-text input shared by the text projects (spam, sentiment).

Both pipelines start with ``TextInput``, so a trained model takes what people actually have: a list or
Series of strings, one string, a 1-D array, or a DataFrame with a ``text`` column (what ``mlflow models
serve`` and the pyfunc flavour pass). Missing values become empty strings, numbers become their text,
bytes are decoded, and very long texts are cut, so no single message can stall a batch. Anything that is
not text (a dict, a 2-D numeric array, a frame without ``text``) raises ``InputError`` saying what to pass.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin

from common.errors import InputError

TEXT_COLUMN = "text"
MAX_CHARS = 20_000

_HOW = (
    "Pass a list (or pandas Series) of strings, a single string, or a DataFrame with a 'text' column, "
    "for example model.predict(['WINNER!! claim your prize']) or model.predict(pd.DataFrame({'text': [...]}))."
)


def _scalar_text(value: Any, position: int) -> str:
    """One element as text: strings as they are, missing as '', numbers as their text."""
    if isinstance(value, str):
        return value
    if value is None or value is pd.NA or value is pd.NaT:
        return ""
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", errors="replace")
    if isinstance(value, numbers.Number):
        if isinstance(value, float | np.floating) and math.isnan(value):
            return ""
        return str(value)
    if isinstance(value, np.str_):
        return str(value)
    raise InputError(
        f"Text input element {position} is a {type(value).__name__}, not text. {_HOW}"
    )


def as_texts(X: Any, max_chars: int | None = MAX_CHARS) -> list[str]:
    """Normalise any accepted raw input to a list of strings (cut to ``max_chars`` characters).

    Args:
        X: a list/tuple/Series/1-D array of texts (None, NaN and numbers allowed), one string, a
            DataFrame with a ``text`` column (other columns are ignored, never read), or an ``(n, 1)``
            array of strings.
        max_chars: longer texts are cut to this many characters (None keeps them whole).

    Raises:
        InputError: for anything that is not text, with the accepted forms in the message.
    """
    if isinstance(X, str | bytes):
        values: Sequence[Any] = [X]
    elif isinstance(X, pd.DataFrame):
        if TEXT_COLUMN not in X.columns:
            raise InputError(
                f"Text input as a DataFrame needs a '{TEXT_COLUMN}' column; got columns {list(X.columns)[:10]}. "
                + _HOW
            )
        column = X[TEXT_COLUMN]
        if isinstance(column, pd.DataFrame):
            raise InputError(f"The input DataFrame has more than one '{TEXT_COLUMN}' column. {_HOW}")
        values = column.tolist()
    elif isinstance(X, pd.Series):
        values = X.tolist()
    elif isinstance(X, np.ndarray):
        if X.ndim == 2 and X.shape[1] == 1 and X.dtype.kind in "OUS":
            values = X[:, 0].tolist()
        elif X.ndim == 1:
            values = X.tolist()
        else:
            raise InputError(f"Text input cannot be an array of shape {X.shape} and dtype {X.dtype}. {_HOW}")
    elif isinstance(X, list | tuple):
        values = X
    else:
        raise InputError(f"Text input cannot be a {type(X).__name__}. {_HOW}")
    out = [_scalar_text(v, i) for i, v in enumerate(values)]
    if max_chars is not None:
        out = [t if len(t) <= max_chars else t[:max_chars] for t in out]
    return out


class TextInput(TransformerMixin, BaseEstimator):
    """First step of a text pipeline: raw input of any accepted form -> list of strings (stateless).

    Args:
        max_chars: texts longer than this are cut (bounds the cost of one pathological input).
    """

    def __init__(self, max_chars: int = MAX_CHARS) -> None:
        self.max_chars = max_chars

    def fit(self, X: Any, y: Any = None) -> TextInput:
        as_texts(X, self.max_chars)
        return self

    def transform(self, X: Any) -> list[str]:
        return as_texts(X, self.max_chars)

    def __sklearn_tags__(self):  # noqa: D105
        tags = super().__sklearn_tags__()
        tags.input_tags.string = True
        tags.input_tags.two_d_array = False
        return tags


def signature_example(X: Any) -> pd.DataFrame:
    """The MLflow signature/input example for text models: a DataFrame with one ``text`` column."""
    return pd.DataFrame({TEXT_COLUMN: as_texts(X)})
