"""Turning raw TMDB catalogue rows into weighted text fields, inside the pipeline.

``MovieText`` is stateless cleaning (JSON lists of genres/keywords become tokens, overview and tagline are
joined, the release year becomes a decade token). Every vocabulary, idf weight and projection is learned by
the later steps in ``build_content_features`` on the catalogue being fitted.
"""

from __future__ import annotations

import json
import re
import unicodedata
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.decomposition import TruncatedSVD
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import Normalizer
from sklearn.utils import Tags

from common.errors import InputError

# The raw TMDB columns the recommender reads (others are carried along and ignored).
TEXT_COLUMNS = ["title", "overview", "tagline", "genres", "keywords"]
REQUIRED = ["id", "title"]
OPTIONAL = ["overview", "tagline", "genres", "keywords", "release_date", "vote_average", "vote_count",
            "original_title", "original_language", "popularity"]
FIELDS = ["title", "text", "genres", "keywords", "era"]

_NON_WORD = re.compile(r"[^0-9a-z]+")


def fold(text: Any) -> str:
    """Lower-case ASCII with accents removed and punctuation turned into single spaces."""
    if not isinstance(text, str):
        return ""
    if text.isascii():  # the common case, which needs no Unicode decomposition
        ascii_text = text.lower()
    else:
        decomposed = unicodedata.normalize("NFKD", text)
        ascii_text = "".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold()
    ascii_text = ascii_text.replace("&", " and ").replace("'", "")
    return _NON_WORD.sub(" ", ascii_text).strip()


def json_names(value: Any) -> list[str]:
    """Names from a TMDB JSON list (``[{"id": 28, "name": "Action"}, ...]``); tolerant of plain text.

    Missing values give an empty list; a string that is not JSON is read as a ``|`` or ``,`` separated
    list, so a hand-written input row (``"Action|Drama"``) works too.
    """
    if isinstance(value, list | tuple):
        return [str(v.get("name", "")) if isinstance(v, dict) else str(v) for v in value]
    if not isinstance(value, str) or not value.strip():
        return []
    text = value.strip()
    if text.startswith("["):
        try:
            items = json.loads(text)
        except ValueError:
            items = None
        if isinstance(items, list):
            return [str(i.get("name", "")) if isinstance(i, dict) else str(i) for i in items]
    return [part.strip() for part in re.split(r"[|,]", text) if part.strip()]


@lru_cache(maxsize=2**16)
def _token(name: str, prefix: str) -> str:
    key = fold(name).replace(" ", "_")
    return f"{prefix}{key}" if key else ""


def tokens_of(names: list[str], prefix: str) -> str:
    """One token per multi-word name (``science fiction`` -> ``g_science_fiction``), space separated."""
    return " ".join(t for t in (_token(name, prefix) for name in names) if t)


def release_year(value: Any) -> int:
    """The year of a ``YYYY-MM-DD`` date (0 when unknown)."""
    if isinstance(value, str) and len(value) >= 4 and value[:4].isdigit():
        return int(value[:4])
    if isinstance(value, int | float | np.integer | np.floating) and np.isfinite(value) and value > 1800:
        return int(value)
    return 0


def era_tokens(year: int) -> str:
    """Decade and half-decade tokens, so films of the same era share a little similarity."""
    if year <= 0:
        return ""
    return f"decade_{year // 10 * 10} half_{year // 5 * 5}"


class NotACatalogueError(InputError, TypeError):
    """Input of the wrong type where a catalogue is needed.

    An ``InputError`` so the command line shows the message, and a ``TypeError`` as Python (and
    scikit-learn's estimator checks) expect for an argument of the wrong type.
    """


def as_catalogue(X: Any) -> pd.DataFrame:
    """Accept a catalogue DataFrame (or row dicts) with at least ``id`` and ``title``.

    Raises:
        NotACatalogueError: for another type (an ``InputError``).
        InputError: for missing columns or no rows.
    """
    if isinstance(X, pd.DataFrame):
        frame = X
    elif isinstance(X, list | tuple) and X and isinstance(X[0], dict):
        frame = pd.DataFrame(list(X))
    else:
        got = f"a sparse {type(X).__name__} (sparse input is not supported)" if sparse.issparse(X) else type(X).__name__
        raise NotACatalogueError(
            "The recommender is fitted on a catalogue: a DataFrame of raw TMDB columns (id, title, overview, "
            f"tagline, genres, keywords, release_date, vote_average, vote_count); got {got}."
        )
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise InputError(f"The catalogue is missing column(s) {', '.join(missing)}; it needs at least id and title.")
    if len(frame) == 0:
        raise InputError("The catalogue has no rows.")
    return frame


class CatalogueInput:
    """Mixin for estimators fitted on a catalogue (see ``as_catalogue``): says so in scikit-learn's tags.

    A catalogue is a table of text fields, ids and vote figures in which missing values are normal, so the
    tags declare string input and NaN as allowed. Put it before ``BaseEstimator`` in the bases.
    """

    def __sklearn_tags__(self) -> Tags:
        tags = super().__sklearn_tags__()  # type: ignore[misc]
        tags.input_tags.string = True
        tags.input_tags.allow_nan = True
        return tags


def _column(frame: pd.DataFrame, name: str) -> pd.Series:
    if name in frame.columns:
        return frame[name]
    return pd.Series([None] * len(frame), index=frame.index, dtype=object)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


class MovieText(CatalogueInput, TransformerMixin, BaseEstimator):
    """Raw catalogue rows -> the text fields the vectorisers read (stateless).

    Output columns: ``title``, ``text`` (overview + tagline), ``genres`` and ``keywords`` (one token per
    name, so "science fiction" is one feature), ``era`` (decade tokens). Missing values become "".
    """

    def __sklearn_tags__(self) -> Tags:
        tags = super().__sklearn_tags__()
        tags.requires_fit = False  # stateless: fit only checks the input
        tags.transformer_tags.preserves_dtype = []  # the output is a table of text, whatever came in
        return tags

    def fit(self, X: Any, y: Any = None) -> MovieText:
        as_catalogue(X)
        return self

    def transform(self, X: Any) -> pd.DataFrame:
        raw = as_catalogue(X)
        overview = _column(raw, "overview").map(_text)
        tagline = _column(raw, "tagline").map(_text)
        years = _column(raw, "release_date").map(release_year)
        return pd.DataFrame(
            {
                "title": _column(raw, "title").map(_text).map(fold).to_numpy(dtype=object),
                "text": (overview + " " + tagline).to_numpy(dtype=object),
                "genres": _column(raw, "genres").map(lambda v: tokens_of(json_names(v), "g_")).to_numpy(dtype=object),
                "keywords": _column(raw, "keywords").map(lambda v: tokens_of(json_names(v), "k_")).to_numpy(dtype=object),
                "era": years.map(era_tokens).to_numpy(dtype=object),
            },
            index=raw.index,
        )

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        return np.asarray(FIELDS, dtype=object)


def split_tokens(text: str) -> list[str]:
    """The tokens of an already-tokenised field (module-level so the pipeline pickles and loads with skops)."""
    return text.split()


class FieldTfidf(TfidfVectorizer):
    """TF-IDF of one field that tolerates a field with no usable terms (all empty, or pruned by min_df).

    A small or hand-made catalogue may have no keywords at all; the field then contributes nothing instead
    of failing the whole fit.
    """

    def fit(self, raw_documents: Any, y: Any = None) -> FieldTfidf:
        self.fit_transform(raw_documents)
        return self

    def fit_transform(self, raw_documents: Any, y: Any = None) -> Any:
        try:
            out = super().fit_transform(raw_documents)
            self.empty_ = False
            return out
        except ValueError:  # "empty vocabulary" / "no terms remain": the field carries no signal here
            self.empty_ = True
            return sparse.csr_matrix((len(raw_documents), 1), dtype=np.float32)

    def transform(self, raw_documents: Any) -> Any:
        if getattr(self, "empty_", False):
            return sparse.csr_matrix((len(raw_documents), 1), dtype=np.float32)
        return super().transform(raw_documents)

    # The vocabulary is stored as two arrays rather than a dict of tens of thousands of entries: skops
    # (the format logged with MLPROJECTS_MODEL_FORMAT=skops) writes a dict entry by entry, slow to save and load.
    def __getstate__(self) -> dict[str, Any]:
        state = dict(super().__getstate__())  # object.__getstate__ may return the live __dict__
        state.pop("stop_words_", None)  # only informative, and as large as the vocabulary
        vocab = state.pop("vocabulary_", None)
        if isinstance(vocab, dict):
            state["vocabulary_terms_"] = np.array(list(vocab), dtype=str)
            state["vocabulary_index_"] = np.fromiter(vocab.values(), dtype=np.int64, count=len(vocab))
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        terms, index = state.pop("vocabulary_terms_", None), state.pop("vocabulary_index_", None)
        super().__setstate__(state)
        if terms is not None:
            self.vocabulary_ = dict(zip(terms.tolist(), index.tolist(), strict=True))

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        if getattr(self, "empty_", False):
            return np.asarray(["(none)"], dtype=object)
        return super().get_feature_names_out(input_features)


def build_content_features(
    text_weight: float = 1.0,
    title_weight: float = 0.5,
    genre_weight: float = 0.6,
    keyword_weight: float = 1.0,
    era_weight: float = 0.3,
    svd_components: int = 0,
    min_df: int = 2,
    seed: int = 0,
) -> Pipeline:
    """The unfitted content pipeline: clean -> one TF-IDF per field, weighted -> optional LSA -> L2 rows.

    Each field's TF-IDF rows are L2-normalised, then scaled by its weight, so a weight is the field's share
    of the cosine similarity. ``svd_components > 0`` adds a truncated SVD (latent semantic analysis), which
    gives dense item vectors and similarity between films that share no exact word.
    """
    def vec(**kw: Any) -> FieldTfidf:
        return FieldTfidf(sublinear_tf=True, dtype=np.float32, **kw)

    fields = ColumnTransformer(
        [
            ("title", vec(min_df=1, ngram_range=(1, 1)), "title"),
            ("text", vec(min_df=min_df, stop_words="english", strip_accents="unicode", max_df=0.5), "text"),
            ("genres", vec(analyzer=split_tokens, min_df=1), "genres"),
            ("keywords", vec(analyzer=split_tokens, min_df=min_df), "keywords"),
            ("era", vec(analyzer=split_tokens, min_df=1, use_idf=False), "era"),
        ],
        transformer_weights={"title": title_weight, "text": text_weight, "genres": genre_weight,
                             "keywords": keyword_weight, "era": era_weight},
        sparse_threshold=1.0,
    )
    steps: list[tuple[str, Any]] = [("clean", MovieText()), ("fields", fields)]
    if svd_components > 0:
        steps.append(("lsa", TruncatedSVD(n_components=svd_components, random_state=seed)))
    steps.append(("normalize", Normalizer(copy=False)))
    return Pipeline(steps)
