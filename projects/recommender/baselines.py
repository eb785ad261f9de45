"""Reference recommenders scored beside the model under the same protocol.

Each has ``fit(catalogue, ratings=None)`` and ``recommend_positions(histories, k, exclude)`` like the model:
random, most-voted (TMDB vote count), vote-weighted rating (IMDb formula) and the seed tutorial's method
(TF-IDF of title + overview + tagline, ranked by summed cosine similarity to the user's liked films). The
collaborative anchors learned from training ratings (in-protocol popularity, ItemKNN, EASE) are in
``collab.py``. Note that TMDB's vote counts date from 2017, after most MovieLens ratings: the two TMDB
popularity baselines see "future" popularity, which in-protocol popularity does not.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.utils.validation import check_is_fitted

from projects.recommender import protocol
from projects.recommender.features import CatalogueInput, as_catalogue
from projects.recommender.model import weighted_rating


class _Ranker:
    """Mixin: a recommender that ranks every film by one fixed score (the user's history excluded).

    A mixin rather than an estimator base class: only the concrete rankers below are estimators (and each
    is listed for scikit-learn's checks); subclasses implement ``_scores``.
    """

    def _scores(self, catalogue: pd.DataFrame) -> np.ndarray:
        raise NotImplementedError

    def fit(self, X: Any, y: Any = None, ratings: Any = None) -> _Ranker:
        """Score every catalogue film (``y`` and ``ratings`` are ignored: these rankers learn no taste)."""
        catalogue = as_catalogue(X)
        self.score_ = np.asarray(self._scores(catalogue), dtype=np.float64)
        self.n_items_ = len(catalogue)
        return self

    def recommend_positions(self, histories: list[np.ndarray], k: int = 10,
                            exclude: list[np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` catalogue positions and scores per history, excluding ``exclude`` (default: the history)."""
        check_is_fitted(self, "score_")
        scores = np.tile(self.score_, (len(histories), 1))
        pos = protocol.top_k(scores, k, histories if exclude is None else exclude)
        return pos, np.take_along_axis(scores, pos, axis=1)


class RandomRecommender(CatalogueInput, _Ranker, BaseEstimator):
    """Uniformly random films (a different draw per user)."""

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def _scores(self, catalogue: pd.DataFrame) -> np.ndarray:
        return np.zeros(len(catalogue))

    def recommend_positions(self, histories: list[np.ndarray], k: int = 10,
                            exclude: list[np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``k`` random films per history (reproducible from ``seed``), excluding ``exclude`` (default: the history)."""
        check_is_fitted(self, "n_items_")
        rng = np.random.default_rng(self.seed)
        scores = rng.random((len(histories), self.n_items_))
        pos = protocol.top_k(scores, k, histories if exclude is None else exclude)
        return pos, np.take_along_axis(scores, pos, axis=1)


class MostVoted(CatalogueInput, _Ranker, BaseEstimator):
    """The films with the most TMDB votes."""

    def _scores(self, catalogue: pd.DataFrame) -> np.ndarray:
        return catalogue["vote_count"].fillna(0).to_numpy(dtype=float)


class WeightedRatingRanker(CatalogueInput, _Ranker, BaseEstimator):
    """The films with the best vote-weighted rating (IMDb's formula, ``m`` = a vote-count quantile)."""

    def __init__(self, quantile: float = 0.9) -> None:
        self.quantile = quantile

    def _scores(self, catalogue: pd.DataFrame) -> np.ndarray:
        return weighted_rating(catalogue["vote_average"].to_numpy(dtype=float),
                               catalogue["vote_count"].to_numpy(dtype=float), self.quantile)


def seed_text(catalogue: pd.DataFrame) -> list[str]:
    """The seed tutorial's document: title, overview and tagline joined."""
    parts = [catalogue[c].fillna("").astype(str) for c in ("title", "overview", "tagline") if c in catalogue]
    return (parts[0] + " " + parts[1] + " " + parts[2]).tolist() if len(parts) == 3 else parts[0].tolist()


class SeedTfidf(CatalogueInput, BaseEstimator):
    """The seed's TF-IDF (English stop words) and cosine similarity, summed over the user's liked films.

    Computed sparse (``T @ (T[history].sum())``), so the seed's dense N x N matrix is never built; the
    ranking is the same.
    """

    def fit(self, X: Any, y: Any = None, ratings: Any = None) -> SeedTfidf:
        """Fit the TF-IDF on the catalogue's title, overview and tagline (``y`` and ``ratings`` are ignored)."""
        catalogue = as_catalogue(X)
        self.vectorizer_ = TfidfVectorizer(stop_words="english")
        self.matrix_ = self.vectorizer_.fit_transform(seed_text(catalogue)).tocsr()
        self.n_items_ = len(catalogue)
        return self

    def recommend_positions(self, histories: list[np.ndarray], k: int = 10,
                            exclude: list[np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` positions by summed cosine similarity to each history, excluding ``exclude`` (default: it)."""
        check_is_fitted(self, "matrix_")
        out_pos, out_scores = [], []
        exclude = histories if exclude is None else exclude
        for start in range(0, len(histories), 256):
            chunk = histories[start:start + 256]
            profile = np.vstack([np.asarray(self.matrix_[h].sum(axis=0)) for h in chunk])
            scores = np.asarray(self.matrix_ @ profile.T).T
            pos = protocol.top_k(scores, k, exclude[start:start + 256])
            out_pos.append(pos)
            out_scores.append(np.take_along_axis(scores, pos, axis=1))
        return np.vstack(out_pos), np.vstack(out_scores)


def reference_recommenders(seed: int = 0) -> dict[str, Any]:
    """The unfitted baselines by metric-name prefix (no underscores: ``baseline_<name>_<metric>``)."""
    return {
        "random": RandomRecommender(seed=seed),
        "mostvoted": MostVoted(),
        "weightedrating": WeightedRatingRanker(quantile=0.9),
        "seedtfidf": SeedTfidf(),
    }
