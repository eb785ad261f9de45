"""Approximate nearest-neighbour search over the content vectors, for large catalogues.

Exact search scores every film that shares a term with the query, so a query is linear in the catalogue
(about 67 ms at 1M films). A title query asks for the films nearest to a *catalogue* film, so
``ContentIndex`` precomputes an approximate k-nearest-neighbour graph of the catalogue with pynndescent
(NN-descent, Dong et al. 2011) directly on the sparse unit TF-IDF rows under cosine distance; a query
reads its film's row of the graph and re-scores those few films exactly with the sparse vectors, so the
returned scores are exact cosines and only the candidate set is approximate. A query is then O(1) in the
catalogue size.

Chosen after measuring (docs/recommender.md, "Approximate search"): faiss-cpu's IVF index over a 64- or
128-dimension LSA embedding found only 16-33% of the exact top 10 (the embedding loses the rare shared
words that decide a film's nearest neighbours), and hnswlib ships no wheel for this Python; pynndescent
works on the sparse vectors themselves and reached recall@10 of 0.998 at 100k films. Its cost is numba:
the first build in a process compiles for about 15 s.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

import numpy as np
from scipy import sparse

from common.errors import ParameterError

log = logging.getLogger(__name__)


class ContentIndex:
    """An approximate k-nearest-neighbour graph of the catalogue's content vectors (cosine).

    Args:
        n_neighbors: neighbours kept per film (queries for up to ``n_neighbors - 1`` films are answered
            from the graph; more fall back to exact search).
        seed: random seed of NN-descent.
        n_jobs: threads of the build (-1: all cores).
    """

    def __init__(self, n_neighbors: int = 20, seed: int = 0, n_jobs: int = -1) -> None:
        self.n_neighbors = n_neighbors
        self.seed = seed
        self.n_jobs = n_jobs

    def fit(self, vectors: Any) -> ContentIndex:
        """Build the graph of the (unit-length) item vectors; only the neighbour ids are kept."""
        from pynndescent import NNDescent  # imported on first use: only large catalogues need it

        n = vectors.shape[0]
        if n < 3:
            raise ParameterError("An approximate index needs at least three films.")
        k = int(min(self.n_neighbors, n - 1))
        data = vectors.tocsr() if sparse.issparse(vectors) else np.ascontiguousarray(vectors, dtype=np.float32)
        with warnings.catch_warnings():  # numba's and pynndescent's notices about threading layers
            warnings.simplefilter("ignore")
            nnd = NNDescent(data, metric="cosine", n_neighbors=k + 1, random_state=self.seed, n_jobs=self.n_jobs,
                            low_memory=True, compressed=True, verbose=False)
            graph = nnd.neighbor_graph[0]
        self.graph_ = np.ascontiguousarray(graph, dtype=np.int32)
        self.n_items_ = n
        return self

    def can_answer(self, k: int) -> bool:
        """Whether the graph holds enough neighbours for a top-``k`` query."""
        return k <= self.graph_.shape[1] - 1

    def query(self, vectors: Any, positions: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` films (positions, exact cosine scores) for each catalogue film, the film itself excluded.

        Ties are broken by position, as in exact search.
        """
        positions = np.asarray(positions, dtype=np.int64)
        out_pos = np.full((len(positions), k), -1, dtype=np.int64)
        out_scores = np.zeros((len(positions), k), dtype=np.float32)
        for i, pos in enumerate(positions):
            row = self.graph_[pos].astype(np.int64)
            row = np.unique(row[(row >= 0) & (row != pos)])
            exact = vectors[row] @ vectors[pos].T
            exact = np.asarray(exact.toarray() if sparse.issparse(exact) else exact, dtype=np.float32).ravel()
            order = np.argsort(-exact, kind="stable")[:k]
            out_pos[i, :len(order)] = row[order]
            out_scores[i, :len(order)] = exact[order]
        return out_pos, out_scores
