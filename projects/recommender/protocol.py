"""The evaluation protocols on real users' ratings, shared by ``evaluate.py`` and every model's tuning.

Two protocols, both scored with binary relevance (a test film is a liked film, rating >= 4):

* ``time`` (primary): one global cutoff ``T``, chosen so that about ``test_fraction`` of all likes fall at
  or after it. Models learn from the ratings made before ``T`` only; a user is evaluated on their likes
  from ``T`` on when they rated at least ``min_history`` (default 1) catalogue films before ``T``, with any
  rating. Nobody's future reaches the training ratings.
* ``per_user`` (secondary, comparable with older runs): users with at least ``min_liked`` likes; per user
  the likes in time order, the first 80% are the history and the last 20% the test set. Each evaluated
  user's ratings from their cutoff on are dropped from training, but other users' later ratings stay
  (``cross_user_leak`` measures how many).

In both, a recommender proposes ``k`` films the user has not rated before the cutoff (``UserSplit.seen``:
films rated below the like threshold are excluded too, as is standard). NDCG@k, precision@k and recall@k
are averaged over users; coverage is the share of the films that can be recommended that were recommended
to at least one user, over films with training ratings and over films without (cold) separately.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd

from common.errors import DataError

RATING_COLUMNS = ["userId", "id", "rating", "timestamp"]
ProtocolKind = Literal["time", "per_user"]


@dataclass
class UserSplit:
    """One user's chronological split, in catalogue positions."""

    user: int
    history: np.ndarray  # liked films before the test period, oldest first
    test: np.ndarray  # liked films of the test period
    cutoff: int  # timestamp of the first test film (per user) or the global cutoff T
    history_ids: np.ndarray  # catalogue ids of the history films
    seen: np.ndarray | None = field(default=None)  # every film rated before the cutoff (never recommended)

    @property
    def exclude(self) -> np.ndarray:
        """The films never recommended to this user: everything rated before the cutoff (the history if unknown)."""
        return self.history if self.seen is None else self.seen


@dataclass
class ProtocolSplit:
    """One protocol's users, the ratings a model may learn from, and what was done (for the report)."""

    kind: str
    users: list[UserSplit]
    train: pd.DataFrame
    cutoff: int | None = None  # the global cutoff T (``time`` only)

    @property
    def histories(self) -> list[np.ndarray]:
        return [s.history for s in self.users]

    @property
    def excludes(self) -> list[np.ndarray]:
        return [s.exclude for s in self.users]


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
    liked = _liked(ratings, id_to_pos, like_threshold)
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
    _add_seen(out, ratings, id_to_pos)
    return out


def _liked(ratings: pd.DataFrame, id_to_pos: dict[int, int], like_threshold: float) -> pd.DataFrame:
    """Liked catalogue ratings with their catalogue position, in (user, time, id) order."""
    liked = ratings.loc[ratings["rating"] >= like_threshold, ["userId", "id", "timestamp"]]
    pos = liked["id"].map(id_to_pos)
    liked = liked.assign(pos=pos).dropna(subset=["pos"])
    liked = liked.drop_duplicates(["userId", "pos"], keep="first")
    return liked.sort_values(["userId", "timestamp", "id"], kind="mergesort")


def _add_seen(splits: list[UserSplit], ratings: pd.DataFrame, id_to_pos: dict[int, int]) -> None:
    """Set each split's ``seen``: the catalogue films the user rated before the cutoff, plus the history."""
    if not splits:
        return
    cut = pd.Series({s.user: s.cutoff for s in splits}, dtype="int64")
    cutoff = ratings["userId"].map(cut)
    early = ratings.loc[cutoff.notna().to_numpy() & (ratings["timestamp"] < cutoff).to_numpy(), ["userId", "id"]]
    pos = early["id"].map(id_to_pos)
    early = early.assign(pos=pos).dropna(subset=["pos"])
    groups = {u: g.to_numpy(dtype=np.int64) for u, g in early.groupby("userId", sort=False)["pos"]}
    for s in splits:
        s.seen = np.union1d(groups.get(s.user, np.empty(0, dtype=np.int64)), s.history)


def global_cutoff(ratings: pd.DataFrame, like_threshold: float = 4.0, test_fraction: float = 0.2) -> int:
    """The time ``T`` at or after which about ``test_fraction`` of all likes fall."""
    times = np.sort(ratings.loc[ratings["rating"] >= like_threshold, "timestamp"].to_numpy(dtype=np.int64))
    if len(times) == 0:
        raise DataError("No liked ratings: a global time split needs likes to place its cutoff.")
    return int(times[min(int(np.floor(len(times) * (1 - test_fraction))), len(times) - 1)])


def time_splits(ratings: pd.DataFrame, id_to_pos: dict[int, int], like_threshold: float = 4.0,
                min_history: int = 1, test_fraction: float = 0.2) -> ProtocolSplit:
    """The global temporal protocol: learn from ratings before ``T``, test each user's likes from ``T`` on.

    Who is evaluated: a user with at least one like from ``T`` on and at least ``min_history`` rated
    catalogue films (any rating) before ``T``. The default, 1, is the least history that makes the user
    someone the models can know: a user with no rating before ``T`` is a cold user, a different task, and any
    higher minimum would drop users for being light raters, which no model choice justifies. Ratings, not
    likes, are counted, because every rating before ``T`` is history (it is excluded from the candidates);
    the query is the liked part of it, and a user whose history has no like is queried with an empty list.

    Args:
        ratings: columns ``userId``, ``id`` (catalogue id), ``rating``, ``timestamp``.
        id_to_pos: catalogue id -> position; ratings of other films are ignored.
        like_threshold: a rating at or above it is a like.
        min_history: a user is evaluated only with at least this many rated catalogue films before ``T``.
        test_fraction: the share of all likes at or after ``T``.
    """
    if min_history < 1:
        raise ValueError(f"min_history must be >= 1 (a user needs a history before T); got {min_history}.")
    T = global_cutoff(ratings, like_threshold, test_fraction)
    liked = _liked(ratings, id_to_pos, like_threshold)
    before = liked["timestamp"].to_numpy() < T
    early = ratings.loc[(ratings["timestamp"] < T).to_numpy() & ratings["id"].isin(id_to_pos.keys()).to_numpy()]
    n_rated = early.drop_duplicates(["userId", "id"]).groupby("userId").size()
    out: list[UserSplit] = []
    hist_groups = {u: g for u, g in liked.loc[before].groupby("userId", sort=False)}
    no_likes = liked.iloc[:0]
    for user, group in liked.loc[~before].groupby("userId", sort=True):
        if int(n_rated.get(user, 0)) < min_history:
            continue
        hist = hist_groups.get(user, no_likes)
        out.append(UserSplit(int(user), hist["pos"].to_numpy(dtype=np.int64), group["pos"].to_numpy(dtype=np.int64),
                             T, hist["id"].to_numpy(dtype=np.int64)))
    _add_seen(out, ratings, id_to_pos)
    return ProtocolSplit("time", out, ratings.loc[ratings["timestamp"] < T], cutoff=T)


def per_user_protocol(ratings: pd.DataFrame, id_to_pos: dict[int, int], like_threshold: float = 4.0,
                      min_liked: int = 10, test_fraction: float = 0.2) -> ProtocolSplit:
    """The per-user 80/20 protocol (``user_splits``) with its training ratings (``training_ratings``)."""
    users = user_splits(ratings, id_to_pos, like_threshold, min_liked, test_fraction)
    return ProtocolSplit("per_user", users, training_ratings(ratings, users))


def make_protocol(kind: ProtocolKind, ratings: pd.DataFrame, id_to_pos: dict[int, int], like_threshold: float = 4.0,
                  min_liked: int = 10, test_fraction: float = 0.2, min_history: int = 1) -> ProtocolSplit:
    """Either protocol by name: ``min_liked`` is the per-user protocol's minimum of likes, ``min_history``
    the time protocol's minimum of rated films before ``T`` (see ``time_splits``)."""
    if kind == "time":
        return time_splits(ratings, id_to_pos, like_threshold, min_history, test_fraction)
    if kind == "per_user":
        return per_user_protocol(ratings, id_to_pos, like_threshold, min_liked, test_fraction)
    raise ValueError(f"unknown protocol {kind!r}; expected 'time' or 'per_user'")


def tuning_ratings(ratings: pd.DataFrame, id_to_pos: dict[int, int], like_threshold: float = 4.0,
                   min_liked: int = 10, test_fraction: float = 0.2, min_history: int = 1) -> pd.DataFrame:
    """The ratings tuning may read: those before the global cutoff ``T`` (the time protocol's test data is
    everything from ``T`` on) minus every per-user test period (the per-user protocol's test data)."""
    early = time_splits(ratings, id_to_pos, like_threshold, min_history, test_fraction).train
    return training_ratings(early, user_splits(ratings, id_to_pos, like_threshold, min_liked, test_fraction))


def tuning_protocol(ratings: pd.DataFrame, id_to_pos: dict[int, int], like_threshold: float = 4.0,
                    min_liked: int = 10, test_fraction: float = 0.2, min_history: int = 1) -> ProtocolSplit:
    """The tuning objective's split: the per-user protocol applied to ``tuning_ratings`` (no test data of
    either protocol), so each user's last likes before their test data are the validation period."""
    before_test = tuning_ratings(ratings, id_to_pos, like_threshold, min_liked, test_fraction, min_history)
    return per_user_protocol(before_test, id_to_pos, like_threshold, min_liked, test_fraction)


def cross_user_leak(train: pd.DataFrame, splits: list[UserSplit]) -> float:
    """The mean over test users of the share of training ratings made at or after that user's cutoff."""
    if not splits or len(train) == 0:
        return float("nan")
    times = np.sort(train["timestamp"].to_numpy(dtype=np.int64))
    cutoffs = np.array([s.cutoff for s in splits], dtype=np.int64)
    late = len(times) - np.searchsorted(times, cutoffs, side="left")
    return float(np.mean(late / len(times)))


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


def per_user_ndcg(recs: np.ndarray, splits: list[UserSplit], n_items: int, k: int = 10,
                  targets: np.ndarray | None = None) -> np.ndarray:
    """Each user's NDCG@k (binary relevance), for paired comparisons."""
    recs = np.asarray(recs)[:, :k]
    T = target_matrix(splits, n_items) if targets is None else targets
    hits = _hits(recs, T)
    discount = 1.0 / np.log2(np.arange(2, k + 2))
    n_rel = np.array([len(s.test) for s in splits])
    ideal = np.cumsum(discount)[np.minimum(n_rel, k) - 1]
    return (hits * discount[: recs.shape[1]]).sum(axis=1) / ideal


def _hits(recs: np.ndarray, T: np.ndarray) -> np.ndarray:
    valid = recs >= 0
    hits = np.zeros(recs.shape, dtype=bool)
    rows = np.repeat(np.arange(recs.shape[0]), recs.shape[1]).reshape(recs.shape)
    hits[valid] = T[rows[valid], recs[valid]]
    return hits


def ranking_metrics(recs: np.ndarray, splits: list[UserSplit], n_items: int, k: int = 10,
                    targets: np.ndarray | None = None, rated: np.ndarray | None = None) -> dict[str, float]:
    """NDCG@k, precision@k, recall@k averaged over users, and coverage of the films that can be recommended.

    Args:
        recs: users x k catalogue positions in rank order (-1 pads a short list).
        splits: the users' splits (``test`` is the relevant set).
        n_items: catalogue size (for coverage).
        k: the cut-off.
        targets: a precomputed ``target_matrix`` (saves work in a tuning loop).
        rated: a boolean mask of the films with training ratings. With it, ``coverage`` is the share of
            those films recommended to someone and ``coverage_cold`` the share of the others; without it,
            ``coverage`` is over the whole catalogue.
    """
    if len(splits) == 0:
        nan = float("nan")
        return {f"ndcg_at_{k}": nan, f"precision_at_{k}": nan, f"recall_at_{k}": nan, "coverage": nan}
    recs = np.asarray(recs)[:, :k]
    T = target_matrix(splits, n_items) if targets is None else targets
    valid = recs >= 0
    hits = _hits(recs, T)
    n_rel = np.array([len(s.test) for s in splits])
    n_hits = hits.sum(axis=1)
    shown = np.zeros(n_items, dtype=bool)
    shown[recs[valid]] = True
    out = {
        f"ndcg_at_{k}": float(np.mean(per_user_ndcg(recs, splits, n_items, k, T))),
        f"precision_at_{k}": float(np.mean(n_hits / k)),
        f"recall_at_{k}": float(np.mean(n_hits / n_rel)),
    }
    if rated is None:
        out["coverage"] = float(shown.mean())
    else:
        rated = np.asarray(rated, dtype=bool)
        out["coverage"] = float(shown[rated].mean()) if rated.any() else float("nan")
        out["coverage_cold"] = float(shown[~rated].mean()) if (~rated).any() else float("nan")
    return out


def paired_bootstrap(a: np.ndarray, b: np.ndarray, n_boot: int = 2000, seed: int = 0,
                     level: float = 0.95) -> tuple[float, float, float]:
    """Mean of ``a - b`` over users and its percentile bootstrap interval (users resampled, pairs kept)."""
    diff = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    if len(diff) == 0:
        nan = float("nan")
        return nan, nan, nan
    rng = np.random.default_rng(seed)
    means = np.empty(n_boot)
    for start in range(0, n_boot, 256):
        idx = rng.integers(0, len(diff), size=(min(256, n_boot - start), len(diff)))
        means[start:start + len(idx)] = diff[idx].mean(axis=1)
    lo, hi = np.quantile(means, [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(diff.mean()), float(lo), float(hi)


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
