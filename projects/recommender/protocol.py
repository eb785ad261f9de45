"""The evaluation protocol on real users' ratings, shared by ``evaluate.py`` and the model's weight tuning.

Users with at least ``min_liked`` liked (rating >= 4) catalogue films; per user the liked films in time
order, the first 80% are the history and the last 20% the test set. A recommender proposes ``k`` catalogue
films not in the history; NDCG@k, precision@k and recall@k (binary relevance: a test film) are averaged
over users, and catalogue coverage is the share of the catalogue recommended to at least one user.

The ratings a model may learn from (``training_ratings``) drop, for every evaluated user, everything rated
from the start of that user's test period on, so neither the test films nor anything the user rated at the
same time or later reach the collaborative signal.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

RATING_COLUMNS = ["userId", "id", "rating", "timestamp"]


@dataclass
class UserSplit:
    """One user's chronological split, in catalogue positions."""

    user: int
    history: np.ndarray  # liked films before the test period, oldest first
    test: np.ndarray  # liked films of the test period
    cutoff: int  # timestamp of the first test film
    history_ids: np.ndarray  # catalogue ids of the history films


def user_splits(ratings: pd.DataFrame, id_to_pos: dict[int, int], like_threshold: float = 4.0,
                min_liked: int = 10, test_fraction: float = 0.2) -> list[UserSplit]:
    """Split every eligible user's liked catalogue films in time order (ties broken by id).

    Args:
        ratings: columns ``userId``, ``id`` (catalogue id), ``rating``, ``timestamp``.
        id_to_pos: catalogue id -> position; ratings of other films are ignored.
        like_threshold: a rating at or above it is a like.
        min_liked: users with fewer liked catalogue films are not evaluated.
        test_fraction: the share of the most recent likes held out (at least one film).
    """
    liked = ratings.loc[ratings["rating"] >= like_threshold, ["userId", "id", "timestamp"]]
    pos = liked["id"].map(id_to_pos)
    liked = liked.assign(pos=pos).dropna(subset=["pos"])
    liked = liked.drop_duplicates(["userId", "pos"], keep="first")
    liked = liked.sort_values(["userId", "timestamp", "id"], kind="mergesort")
    out: list[UserSplit] = []
    for user, group in liked.groupby("userId", sort=True):
        n = len(group)
        if n < min_liked:
            continue
        n_hist = int(np.floor(n * (1 - test_fraction)))
        n_hist = min(max(n_hist, 1), n - 1)
        items = group["pos"].to_numpy(dtype=np.int64)
        times = group["timestamp"].to_numpy(dtype=np.int64)
        ids = group["id"].to_numpy(dtype=np.int64)
        out.append(UserSplit(int(user), items[:n_hist], items[n_hist:], int(times[n_hist]), ids[:n_hist]))
    return out


def training_ratings(ratings: pd.DataFrame, splits: list[UserSplit]) -> pd.DataFrame:
    """The ratings a model may learn from: each split user's ratings from their test period on are removed.

    History likes are always kept (one may share the second of the first test film); every other rating
    at or after the user's cutoff is dropped.
    """
    if not splits:
        return ratings
    cut = pd.Series({s.user: s.cutoff for s in splits}, dtype="int64")
    cutoff = ratings["userId"].map(cut)
    keep = (cutoff.isna() | (ratings["timestamp"] < cutoff)).to_numpy(copy=True)
    late = ~keep
    if late.any():
        history = pd.MultiIndex.from_tuples(
            [(s.user, int(i)) for s in splits for i in s.history_ids], names=["userId", "id"])
        rows = pd.MultiIndex.from_arrays([ratings["userId"].to_numpy()[late], ratings["id"].to_numpy()[late]])
        keep[np.flatnonzero(late)] = rows.isin(history)
    return ratings.loc[keep]


def target_matrix(splits: list[UserSplit], n_items: int) -> np.ndarray:
    """A boolean users x items matrix of test films."""
    out = np.zeros((len(splits), n_items), dtype=bool)
    for i, s in enumerate(splits):
        out[i, s.test] = True
    return out


def ranking_metrics(recs: np.ndarray, splits: list[UserSplit], n_items: int, k: int = 10,
                    targets: np.ndarray | None = None) -> dict[str, float]:
    """NDCG@k, precision@k, recall@k averaged over users, and catalogue coverage.

    Args:
        recs: users x k catalogue positions in rank order (-1 pads a short list).
        splits: the users' splits (``test`` is the relevant set).
        n_items: catalogue size (for coverage).
        k: the cut-off.
        targets: a precomputed ``target_matrix`` (saves work in a tuning loop).
    """
    if len(splits) == 0:
        nan = float("nan")
        return {f"ndcg_at_{k}": nan, f"precision_at_{k}": nan, f"recall_at_{k}": nan, "coverage": nan}
    recs = np.asarray(recs)[:, :k]
    T = target_matrix(splits, n_items) if targets is None else targets
    valid = recs >= 0
    hits = np.zeros(recs.shape, dtype=bool)
    rows = np.repeat(np.arange(len(splits)), recs.shape[1]).reshape(recs.shape)
    hits[valid] = T[rows[valid], recs[valid]]
    discount = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = (hits * discount[: recs.shape[1]]).sum(axis=1)
    n_rel = np.array([len(s.test) for s in splits])
    ideal = np.cumsum(discount)[np.minimum(n_rel, k) - 1]
    n_hits = hits.sum(axis=1)
    covered = np.unique(recs[valid]).size
    return {
        f"ndcg_at_{k}": float(np.mean(dcg / ideal)),
        f"precision_at_{k}": float(np.mean(n_hits / k)),
        f"recall_at_{k}": float(np.mean(n_hits / n_rel)),
        "coverage": float(covered / n_items),
    }


def top_k(scores: np.ndarray, k: int, exclude: list[np.ndarray] | None = None) -> np.ndarray:
    """Row-wise top-``k`` positions of a users x items score matrix, best first, excluding given items.

    ``scores`` is modified in place where items are excluded.
    """
    if exclude is not None:
        for i, items in enumerate(exclude):
            if len(items):
                scores[i, items] = -np.inf
    k = min(k, scores.shape[1])
    out = np.empty((scores.shape[0], k), dtype=np.int64)
    # Row blocks keep the temporary (rows x items) index array small.
    block = max(1, 2**21 // max(scores.shape[1], 1))
    for start in range(0, scores.shape[0], block):
        chunk = scores[start:start + block]
        part = np.argpartition(-chunk, k - 1, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(chunk, part, axis=1), axis=1, kind="stable")
        out[start:start + block] = np.take_along_axis(part, order, axis=1)
    return out
