"""Collaborative anchors learned from training ratings: in-protocol popularity, ItemKNN cosine and EASE.

Each is a scikit-learn estimator fitted like the model (``fit(catalogue, ratings=...)``) and answering
``recommend_positions(histories, k, exclude)``; ``scores(histories)`` gives the raw score matrix the hybrid
blends. They learn only from the ratings passed to ``fit``; ``tune_on_validation`` picks their one
parameter on validation users carved out of those ratings, never on test users.

EASE (Steck 2019, "Embarrassingly Shallow Autoencoders") is a closed form on the item-item Gram matrix:
``P = (X'X + lambda I)^-1``, ``B = -P / diag(P)`` with a zero diagonal, and a user's scores are ``x_u B``.
It is a few lines of numpy and LAPACK (a Cholesky inverse), so no library is added for it; only films
with at least one training signal enter the Gram matrix (about 2,300 to 2,600 liked films on
MovieLens-small), so ``B`` stays a small dense matrix whatever the catalogue size. ``implicit`` (ALS/BPR) was not added: on a few hundred users EASE is the stronger simple
anchor in the literature (Steck 2019; Anelli et al. 2022) and needs no iterative solver or extra wheel.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import sparse
from scipy.linalg import get_lapack_funcs
from sklearn.base import BaseEstimator, clone
from sklearn.utils.validation import check_is_fitted
from threadpoolctl import threadpool_limits

from common.errors import InputError, ParameterError
from projects.recommender import protocol
from projects.recommender.features import CatalogueInput, as_catalogue

log = logging.getLogger(__name__)

Signal = Literal["liked", "rated", "centered"]


def signal_matrix(ratings: pd.DataFrame | None, id_pos: dict[int, int], n_items: int, signal: Signal = "liked",
                  like_threshold: float = 4.0) -> sparse.csr_matrix:
    """Users x items matrix of the training signal: 1 per like (``liked``), per rating (``rated``), or the
    positive part of the rating minus the user's mean (``centered``)."""
    if ratings is None or len(ratings) == 0:
        return sparse.csr_matrix((0, n_items), dtype=np.float32)
    missing = [c for c in protocol.RATING_COLUMNS if c not in ratings.columns]
    if missing:
        raise InputError(f"ratings lack column(s) {', '.join(missing)}; need {protocol.RATING_COLUMNS}.")
    r = ratings.loc[ratings["id"].isin(id_pos.keys()), protocol.RATING_COLUMNS]
    if signal == "liked":
        r = r[r["rating"] >= like_threshold]
        values = np.ones(len(r), dtype=np.float32)
    elif signal == "centered":
        centred = r["rating"] - r.groupby("userId")["rating"].transform("mean")
        keep = (centred > 0).to_numpy()
        r, values = r[keep], centred[keep].to_numpy(dtype=np.float32)
    elif signal == "rated":
        values = np.ones(len(r), dtype=np.float32)
    else:
        raise ParameterError(f"signal must be 'liked', 'rated' or 'centered'; got {signal!r}.")
    _, uidx = np.unique(r["userId"].to_numpy(), return_inverse=True)
    cols = r["id"].map(id_pos).to_numpy(dtype=np.int64)
    out = sparse.csr_matrix((values, (uidx, cols)), shape=(int(uidx.max(initial=-1)) + 1, n_items), dtype=np.float32)
    out.sum_duplicates()
    return out


def history_matrix(histories: Sequence[np.ndarray], n_items: int, weights: Sequence[np.ndarray] | None = None
                   ) -> sparse.csr_matrix:
    """Queries x items, 1 (or the given weight) at each history film."""
    lens = [len(h) for h in histories]
    rows = np.repeat(np.arange(len(histories)), lens)
    cols = np.concatenate([np.asarray(h, dtype=np.int64) for h in histories]) if histories else np.empty(0, np.int64)
    vals = (np.concatenate([np.asarray(w, dtype=np.float32) for w in weights]) if weights is not None
            else np.ones(len(cols), dtype=np.float32))
    return sparse.csr_matrix((vals, (rows, cols)), shape=(len(histories), n_items), dtype=np.float32)


def gram_matrix(X: sparse.spmatrix, side: Any = None, side_weight: float = 0.0, block: int = 512) -> np.ndarray:
    """``X'X`` (plus ``side_weight * F F'`` with side information ``F``) as a dense float32 items x items matrix.

    Built in blocks of ``block`` item rows, so the sparse products never hold more than a block of the
    (mostly filled) Gram matrix as triplets, and no float64 or second full-size copy is made.
    """
    Xc = sparse.csc_matrix(X, dtype=np.float32)
    n = Xc.shape[1]
    G = np.empty((n, n), dtype=np.float32)
    use_side = side is not None and side_weight > 0
    for start in range(0, n, block):
        rows = slice(start, min(start + block, n))
        part = Xc[:, rows].T @ Xc
        G[rows] = part.toarray() if sparse.issparse(part) else np.asarray(part)
        if use_side:
            FF = side[rows] @ side.T
            FF = FF.toarray() if sparse.issparse(FF) else np.asarray(FF)
            G[rows] += np.float32(side_weight) * FF.astype(np.float32, copy=False)
    return G


def _spd_inverse(G: np.ndarray, block: int = 512) -> np.ndarray:
    """The inverse of a symmetric positive definite matrix, in place (Cholesky: half the work of LU ``inv``).

    LAPACK's ``potrf``/``potri`` fill one triangle; the other is copied over in blocks (no full-size
    temporary).
    """
    potrf, potri = get_lapack_funcs(("potrf", "potri"), (G,))
    A = G.T  # G is symmetric, so its transpose (a Fortran-ordered view, no copy) is G itself
    c, info = potrf(A, lower=False, overwrite_a=True, clean=False)
    if info != 0:
        raise ParameterError(f"EASE's Gram matrix is not positive definite (LAPACK potrf info {info}); "
                             "raise lambda.")
    P, info = potri(c, lower=False, overwrite_c=True)
    if info != 0:
        raise ParameterError(f"EASE's Gram matrix could not be inverted (LAPACK potri info {info}); raise lambda.")
    n = P.shape[0]
    for start in range(0, n, block):  # mirror the upper triangle (in Fortran order) onto the lower one
        end = min(start + block, n)
        diag = P[start:end, start:end]
        diag[...] = np.triu(diag) + np.triu(diag, 1).T
        P[end:, start:end] = P[start:end, end:].T
    return P.T  # symmetric again: the C-ordered view


def ease_weights(X: sparse.spmatrix, lam: float, side: Any = None, side_weight: float = 0.0) -> np.ndarray:
    """EASE's item-item weights from a users x items matrix (dense items x items, zero diagonal).

    With ``side`` (items x features, e.g. unit content vectors) and ``side_weight`` > 0, the features are
    stacked under the users as extra rows scaled by ``sqrt(side_weight)`` (side-information EASE, as in
    Jeunen et al. 2020, "Closed-form models for collaborative filtering with side-information"): the Gram
    matrix gains ``side_weight * F F'``, so films with similar content share weight.

    Memory and time: one dense float32 items x items matrix is built and inverted in place by Cholesky
    (``G + lambda I`` is symmetric positive definite for lambda > 0), about 5x faster than ``np.linalg.inv``
    here and without its two extra copies; float32 halves the memory and time of float64, and with
    lambda >= 1 the system is well conditioned (a test checks the result against the float64 least-squares
    definition).
    """
    if lam <= 0:
        raise ParameterError(f"EASE's lambda must be > 0; got {lam}.")
    G = gram_matrix(X, side, side_weight)
    G[np.diag_indices_from(G)] += np.float32(lam)
    # One BLAS thread: a few thousand items gain little from threads, and threaded OpenBLAS spin-waits
    # when the cores are busy (a hybrid fit took 72 s instead of 5.6 s with two threads at load average 9).
    with threadpool_limits(limits=1, user_api="blas"):
        P = _spd_inverse(G)
    P /= -np.diag(P)[None, :]
    P[np.diag_indices_from(P)] = 0.0
    return P


def cosine_weights(X: sparse.spmatrix, neighbors: int = 0) -> np.ndarray:
    """Item-item cosine of the columns of ``X`` (dense, zero diagonal); ``neighbors > 0`` keeps each row's top."""
    Xc = sparse.csc_matrix(X, dtype=np.float64)
    norms = np.sqrt(np.asarray(Xc.multiply(Xc).sum(axis=0)).ravel())
    scale = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
    Xn = Xc @ sparse.diags(scale)
    S = np.asarray((Xn.T @ Xn).toarray(), dtype=np.float32)
    S[np.diag_indices_from(S)] = 0.0
    if 0 < neighbors < S.shape[1]:
        drop = np.argpartition(-S, neighbors, axis=1)[:, neighbors:]
        np.put_along_axis(S, drop, 0.0, axis=1)
    return S


class _Collaborative(CatalogueInput, BaseEstimator):
    """Mixin: fit on a catalogue and ratings, answer lists of liked positions (subclasses set ``_weights``)."""

    # Abstract: EASE, ItemKNN and Popularity are checked by tests/test_estimator_checks.py instead.
    _not_an_estimator_reason = "abstract base of the collaborative baselines"

    signal: Signal = "liked"
    like_threshold: float = 4.0

    def fit(self, X: Any, y: Any = None, ratings: pd.DataFrame | None = None,
            item_features: Any = None) -> _Collaborative:
        """Learn from ``ratings`` (``userId, id, rating, timestamp``) on the catalogue ``X``; ``y`` is ignored.

        ``item_features`` (catalogue rows x features) is side information for the models that use it.
        Without ratings every film scores 0 (ties broken by position): there is nothing to learn from.
        """
        self._side = item_features
        catalogue = as_catalogue(X)
        self.ids_ = catalogue["id"].to_numpy(dtype=np.int64)
        self.n_items_ = len(self.ids_)
        id_pos = {int(i): p for p, i in enumerate(self.ids_)}
        M = signal_matrix(ratings, id_pos, self.n_items_, self.signal, self.like_threshold)
        counts = np.asarray((M > 0).sum(axis=0)).ravel()
        self.items_ = np.flatnonzero(counts > 0)  # films with a training signal: the only ones scored
        self.popularity_ = counts.astype(np.float32)
        self.weights_ = self._weights(M[:, self.items_]) if len(self.items_) else np.zeros((0, 0), np.float32)
        del self._side
        return self

    def _weights(self, X: sparse.csr_matrix) -> np.ndarray:
        raise NotImplementedError

    def scores(self, histories: Sequence[np.ndarray]) -> np.ndarray:
        """Queries x items scores (films without a training signal score 0)."""
        check_is_fitted(self, "weights_")
        H = history_matrix(histories, self.n_items_)[:, self.items_]
        out = np.zeros((len(histories), self.n_items_), dtype=np.float32)
        if len(self.items_):
            out[:, self.items_] = np.asarray(H @ self.weights_, dtype=np.float32)
        return out

    def recommend_positions(self, histories: list[np.ndarray], k: int = 10,
                            exclude: list[np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` positions and scores per history, excluding ``exclude`` (default: the history itself).

        Films with a training signal come first; the rest follow by position (they all score 0).
        """
        out_pos, out_scores = [], []
        exclude = histories if exclude is None else exclude
        for start in range(0, len(histories), 256):
            chunk = histories[start:start + 256]
            scores = self.scores(chunk)
            rank = scores.copy()
            cold = np.ones(self.n_items_, dtype=bool)
            cold[self.items_] = False
            rank[:, cold] = -np.inf
            pos = protocol.top_k(rank, k, exclude[start:start + 256])
            out_pos.append(pos)
            out_scores.append(np.take_along_axis(scores, pos, axis=1))
        if not out_pos:
            return np.empty((0, k), dtype=np.int64), np.empty((0, k), dtype=np.float32)
        return np.vstack(out_pos), np.vstack(out_scores)


class Popularity(_Collaborative):
    """In-protocol popularity: films ranked by their number of likes in the training ratings."""

    def __init__(self, like_threshold: float = 4.0) -> None:
        self.like_threshold = like_threshold

    def _weights(self, X: sparse.csr_matrix) -> np.ndarray:
        return np.zeros((0, 0), dtype=np.float32)

    def scores(self, histories: Sequence[np.ndarray]) -> np.ndarray:
        """The same like counts for every query."""
        check_is_fitted(self, "popularity_")
        return np.tile(self.popularity_, (len(histories), 1))


class ItemKNN(_Collaborative):
    """Item-based kNN: summed cosine similarity (over users' likes) of each film to the user's liked films.

    Args:
        neighbors: keep each film's ``neighbors`` most similar films (0 keeps every film).
        signal: ``liked``, ``rated`` or ``centered`` ratings make the item vectors.
        like_threshold: a rating at or above it is a like.
    """

    def __init__(self, neighbors: int = 0, signal: Signal = "liked", like_threshold: float = 4.0) -> None:
        self.neighbors = neighbors
        self.signal = signal
        self.like_threshold = like_threshold

    def _weights(self, X: sparse.csr_matrix) -> np.ndarray:
        return cosine_weights(X, self.neighbors)


class EASE(_Collaborative):
    """EASE (Steck 2019): a linear item-item model with a zero diagonal, in closed form.

    Args:
        lam: the L2 penalty (lambda; larger is smoother).
        signal: ``liked``, ``rated`` or ``centered`` ratings make the user rows.
        like_threshold: a rating at or above it is a like.
        side_weight: > 0 adds the ``item_features`` given to ``fit`` as side information (see
            ``ease_weights``); 0 is plain EASE.
    """

    def __init__(self, lam: float = 100.0, signal: Signal = "liked", like_threshold: float = 4.0,
                 side_weight: float = 0.0) -> None:
        self.lam = lam
        self.signal = signal
        self.like_threshold = like_threshold
        self.side_weight = side_weight

    def _weights(self, X: sparse.csr_matrix) -> np.ndarray:
        side = self._side[self.items_] if self._side is not None and self.side_weight > 0 else None
        return ease_weights(X, self.lam, side, self.side_weight)


def validation_ndcg(make: Callable[[], Any], catalogue: pd.DataFrame, val: protocol.ProtocolSplit,
                    id_pos: dict[int, int], k: int = 10) -> float:
    """NDCG@k of a freshly made estimator fitted on the validation split's training ratings."""
    est = make().fit(catalogue, ratings=val.train)
    recs, _ = est.recommend_positions(val.histories, k, val.excludes)
    return protocol.ranking_metrics(recs, val.users, len(id_pos), k)[f"ndcg_at_{k}"]


def tune_on_validation(base: Any, param: str, grid: Sequence[Any], catalogue: pd.DataFrame, train: pd.DataFrame,
                       kind: protocol.ProtocolKind, like_threshold: float = 4.0, min_liked: int = 5,
                       k: int = 10) -> tuple[Any, dict[Any, float]]:
    """Pick ``param`` from ``grid`` by NDCG@k on validation users carved out of ``train`` (same protocol kind).

    Returns the estimator (unfitted, with the best value set) and the validation score of each value.
    """
    id_pos = {int(i): p for p, i in enumerate(catalogue["id"].to_numpy())}
    val = protocol.make_protocol(kind, train, id_pos, like_threshold, min_liked)
    if len(val.users) < 5:
        log.info("too few validation users (%d) to tune %s; keeping %s=%s", len(val.users), type(base).__name__,
                 param, base.get_params()[param])
        return clone(base), {}
    scores = {v: validation_ndcg(lambda v=v: clone(base).set_params(**{param: v}), catalogue, val, id_pos, k)
              for v in grid}
    best = max(scores, key=lambda v: scores[v])
    return clone(base).set_params(**{param: best}), scores
