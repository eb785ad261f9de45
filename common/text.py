"""Raw-text input and character n-gram counts shared by the text projects (spam, sentiment).

``TextInput`` is the first step of a text pipeline, so a trained model takes what people actually have: a
list or Series of strings, one string, a 1-D array, or a DataFrame with a ``text`` column (what ``mlflow
models serve`` and the pyfunc flavour pass). Missing values become empty strings, numbers become their
text, bytes are decoded, and very long texts are cut, so no single message can stall a batch. Anything that
is not text (a dict, a 2-D numeric array, a frame without ``text``) raises ``InputError`` saying what to pass.

``CharWbCounts`` produces the same counts as ``CountVectorizer(analyzer="char_wb")`` (same n-grams, same
vocabulary rule, same alphabetical column order). scikit-learn counts every n-gram of every document in
Python; texts repeat words, so this step keeps the column indices of each training word's n-grams in flat
arrays and assembles a batch from per-word lookups. Words never seen in training are analysed on the fly.
scikit-learn's ``CountVectorizer`` stays the reference: a test checks vocabulary and counts are identical.
Put ``TfidfTransformer`` after it for TF-IDF.
"""

from __future__ import annotations

import math
import numbers
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from common.errors import InputError

TEXT_COLUMN = "text"
MAX_CHARS = 20_000

_HOW = (
    "Pass a list (or pandas Series) of strings, a single string, or a DataFrame with a 'text' column, "
    "for example model.predict(['WINNER!! claim your prize']) or model.predict(pd.DataFrame({'text': [...]}))."
)


def text_tags(tags: Any, requires_fit: bool = True) -> Any:
    """scikit-learn tags of a step that takes a sequence of strings (not a numeric 2-D array).

    scikit-learn's estimator checks feed numeric arrays; with these tags (the ones ``CountVectorizer``
    declares) they check only what applies to text steps, and the project tests check the rest on text.
    """
    tags.input_tags.string = True
    tags.input_tags.two_d_array = False
    tags.requires_fit = requires_fit
    return tags


# ------------------------------------------------------------------------------------------- raw input
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


def _raw_values(X: Any) -> tuple[Sequence[Any], pd.Index | None]:
    """The elements of any accepted raw text input, as given (and the index of a Series or DataFrame).

    Raises:
        InputError: for anything that is not text, with the accepted forms in the message.
    """
    if isinstance(X, str | bytes):
        return [X], None
    if isinstance(X, pd.DataFrame):
        if TEXT_COLUMN not in X.columns:
            raise InputError(
                f"Text input as a DataFrame needs a '{TEXT_COLUMN}' column; got columns {list(X.columns)[:10]}. "
                + _HOW
            )
        column = X[TEXT_COLUMN]
        if isinstance(column, pd.DataFrame):
            raise InputError(f"The input DataFrame has more than one '{TEXT_COLUMN}' column. {_HOW}")
        return column.tolist(), X.index
    if isinstance(X, pd.Series):
        return X.tolist(), X.index
    if isinstance(X, np.ndarray):
        if X.ndim == 2 and X.shape[1] == 1 and X.dtype.kind in "OUS":
            return X[:, 0].tolist(), None
        if X.ndim == 1:
            return X.tolist(), None
        raise InputError(f"Text input cannot be an array of shape {X.shape} and dtype {X.dtype}. {_HOW}")
    if isinstance(X, list | tuple):
        return X, None
    raise InputError(f"Text input cannot be a {type(X).__name__}. {_HOW}")


def text_frame(X: Any) -> pd.DataFrame:
    """Any accepted raw text input as a one-column ``text`` DataFrame of the elements as given (not
    converted), keeping a Series' or DataFrame's index: what an input contract checks."""
    values, index = _raw_values(X)
    return pd.DataFrame({TEXT_COLUMN: pd.Series(list(values), dtype=object, index=index)})


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
    values, _ = _raw_values(X)
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
        """Check that ``X`` is text; nothing is learned."""
        as_texts(X, self.max_chars)
        return self

    def transform(self, X: Any) -> list[str]:
        """The texts as a list of strings."""
        return as_texts(X, self.max_chars)

    def __sklearn_tags__(self) -> Any:
        return text_tags(super().__sklearn_tags__(), requires_fit=False)


def signature_example(X: Any) -> pd.DataFrame:
    """The MLflow signature/input example for text models: a DataFrame with one ``text`` column."""
    return pd.DataFrame({TEXT_COLUMN: as_texts(X)})


# ------------------------------------------------------------------------------------ char n-gram counts
_WHITESPACE = re.compile(r"\s\s+")


def word_ngrams(word: str, min_n: int, max_n: int) -> list[str]:
    """The n-grams of one space-padded word, exactly as scikit-learn's ``char_wb`` analyzer makes them.

    (A word shorter than ``n`` contributes itself once for that ``n``, then longer ``n`` are skipped.)
    """
    w = " " + word + " "
    size = len(w)
    out: list[str] = []
    for n in range(min_n, max_n + 1):
        if n >= size:
            out.append(w)
            break
        out.extend(w[i:i + n] for i in range(size - n + 1))
    return out


def _words(text: str, lowercase: bool, preprocessor: Callable[[str], str] | None) -> list[str]:
    if preprocessor is not None:
        text = preprocessor(text)
    elif lowercase:
        text = text.lower()
    return _WHITESPACE.sub(" ", text).split()


class CharWbCounts(TransformerMixin, BaseEstimator):
    """Texts -> sparse counts of character n-grams within word boundaries (vocabulary learned in fit).

    Args:
        ngram_range: (min_n, max_n) n-gram lengths.
        min_df: keep n-grams that occur in at least this many training texts.
        lowercase: lowercase texts first (ignored when ``preprocessor`` is given, as in scikit-learn).
        preprocessor: a module-level function applied to each text instead of lowercasing.
    """

    def __init__(self, ngram_range: tuple[int, int] = (2, 5), min_df: int = 1, lowercase: bool = True,
                 preprocessor: Callable[[str], str] | None = None) -> None:
        self.ngram_range = ngram_range
        self.min_df = min_df
        self.lowercase = lowercase
        self.preprocessor = preprocessor

    def _grams(self, word: str) -> list[str]:
        return word_ngrams(word, int(self.ngram_range[0]), int(self.ngram_range[1]))

    def fit(self, X: Iterable[str], y: Any = None) -> CharWbCounts:
        """Learn the vocabulary (n-grams in at least ``min_df`` texts) and each training word's columns."""
        docs = [_words(t, self.lowercase, self.preprocessor) for t in X]
        grams_of: dict[str, list[str]] = {}
        df: Counter[str] = Counter()
        for words in docs:
            seen: set[str] = set()
            for w in words:
                grams = grams_of.get(w)
                if grams is None:
                    grams = grams_of[w] = self._grams(w)
                seen.update(grams)
            df.update(seen)
        kept = sorted(g for g, c in df.items() if c >= self.min_df)
        self.vocabulary_ = {g: i for i, g in enumerate(kept)}
        # Flat per-word index lists: word k's columns are indices_[offsets_[k]:offsets_[k + 1]].
        vocab = self.vocabulary_
        self.word_index_ = {}
        pieces, offsets = [], [0]
        for k, (w, grams) in enumerate(grams_of.items()):
            cols = [vocab[g] for g in grams if g in vocab]
            self.word_index_[w] = k
            pieces.append(cols)
            offsets.append(offsets[-1] + len(cols))
        self.indices_ = np.fromiter((c for cols in pieces for c in cols), dtype=np.int32, count=offsets[-1])
        self.offsets_ = np.asarray(offsets, dtype=np.int64)
        return self

    def transform(self, X: Iterable[str]) -> sp.csr_matrix:
        """Counts of the vocabulary's n-grams, one row per text."""
        check_is_fitted(self, "vocabulary_")
        index, vocab = self.word_index_, self.vocabulary_
        known: list[int] = []
        known_rows: list[int] = []
        extra_cols: list[int] = []
        extra_rows: list[int] = []
        n = 0
        for row, text in enumerate(X):
            n = row + 1
            for w in _words(text, self.lowercase, self.preprocessor):
                k = index.get(w)
                if k is not None:
                    known.append(k)
                    known_rows.append(row)
                else:
                    for g in self._grams(w):
                        c = vocab.get(g)
                        if c is not None:
                            extra_cols.append(c)
                            extra_rows.append(row)
        words = np.asarray(known, dtype=np.int64)
        starts, ends = self.offsets_[words], self.offsets_[words + 1]
        lengths = ends - starts
        # Gather each known word's column run without a Python loop.
        total = int(lengths.sum())
        pos = np.arange(total) - np.repeat(np.cumsum(lengths) - lengths, lengths) + np.repeat(starts, lengths)
        cols = np.concatenate([self.indices_[pos], np.asarray(extra_cols, dtype=np.int32)])
        rows = np.concatenate([np.repeat(np.asarray(known_rows, dtype=np.int64), lengths),
                               np.asarray(extra_rows, dtype=np.int64)])
        counts = sp.csr_matrix((np.ones(len(cols)), (rows, cols)), shape=(n, len(vocab)))
        counts.sum_duplicates()
        return counts

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """The n-grams in column order."""
        check_is_fitted(self, "vocabulary_")
        names = np.empty(len(self.vocabulary_), dtype=object)
        for g, i in self.vocabulary_.items():
            names[i] = g
        return names

    def __sklearn_tags__(self) -> Any:
        return text_tags(super().__sklearn_tags__())
