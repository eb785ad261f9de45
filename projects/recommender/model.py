"""The recommender estimator: content vectors, a quality prior, popularity and a collaborative model, blended.

Nothing here is ever N x N. Items are rows of a content matrix (sparse TF-IDF, or dense LSA vectors) with
unit length, so the cosine similarity of a query to every item is one matrix-vector product (O(N)), and
the top k come from ``argpartition``. A user's history is one weighted sum of item vectors, so the summed
similarity to the history costs the same. The collaborative signal works the same way on an items x users
matrix built from training ratings.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse
from sklearn.base import BaseEstimator, clone
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.utils import Tags, TransformerTags
from sklearn.utils.validation import check_is_fitted

from common.errors import InputError, ParameterError
from projects.recommender import protocol
from projects.recommender.ann import ContentIndex
from projects.recommender.collab import EASE, ItemKNN, history_matrix
from projects.recommender.features import CatalogueInput, as_catalogue, build_content_features, release_year
from projects.recommender.lookup import Match, TitleIndex

log = logging.getLogger(__name__)

OUTPUT_COLUMNS = ["query", "match", "status", "rank", "id", "title", "year", "score"]
COMPONENTS = ("content", "quality", "popularity", "cf")
# EASE's lambda is chosen from this grid on validation users (the EASE baseline uses the same grid).
LAMBDA_GRID = (30.0, 100.0, 300.0, 1000.0)
# The hybrid's EASE also weighs content side information (``side_weight``); both are chosen on validation
# users from these grids. The lambda grid is the EASE baseline's and side weight 0 is plain EASE, so the
# hybrid's search always contains the baseline's model.
HYBRID_LAMBDA_GRID = LAMBDA_GRID
SIDE_WEIGHT_GRID = (0.0, 30.0, 100.0, 300.0)
# The reranker (``rerank``) learns from this many nested validation periods (each user's last 20% of likes,
# then the 20% before that), and describes each user's recent taste by their last ``RERANK_RECENT`` likes.
# Both were chosen on the test-free validation sets of ``projects/recommender/margin.py``.
RERANK_ROUNDS = 2
RERANK_RECENT = 3
RERANK_RECENT_YEARS = 5  # the likes whose mean release year is the user's recent era
# Names of the reranker's features, in column order (logged with the model's validation scores).
RERANK_FEATURES = (
    "recent_content", "recent_cf", "content", "cf", "popularity", "blend", "blend_rank", "cf_rank",
    "content_rank", "log_history_length", "year", "year_minus_history_mean", "year_minus_recent_mean",
    "log_ratings", "log_likes", "mean_rating", "like_rate",
)


def weighted_rating(vote_average: np.ndarray, vote_count: np.ndarray, quantile: float = 0.9) -> np.ndarray:
    """IMDb's vote-weighted rating: each film's mean vote shrunk towards the catalogue mean.

    ``m`` (the votes needed to trust a mean) is the ``quantile`` of the vote counts and ``C`` the mean
    vote over the catalogue, both learned from the catalogue being fitted (the usual formula).
    """
    R = np.nan_to_num(np.asarray(vote_average, dtype=float), nan=0.0)
    v = np.clip(np.nan_to_num(np.asarray(vote_count, dtype=float), nan=0.0), 0, None)
    m = float(np.quantile(v, quantile)) if len(v) else 0.0
    C = float(R.mean()) if len(R) else 0.0
    if m <= 0:
        return R
    return v / (v + m) * R + m / (v + m) * C


def _minmax(x: np.ndarray) -> np.ndarray:
    lo, hi = float(np.min(x)), float(np.max(x))
    return np.zeros_like(x, dtype=np.float32) if hi <= lo else ((x - lo) / (hi - lo)).astype(np.float32)


def _gather(M: sparse.csr_matrix | sparse.csc_matrix, major: np.ndarray, weights: np.ndarray
            ) -> tuple[np.ndarray, np.ndarray]:
    """The weighted sum of some rows of a CSR matrix (or columns of a CSC one), as (indices, values).

    Indices may repeat (``np.bincount`` adds them up); the cost is the number of stored values read.
    """
    starts, ends = M.indptr[major], M.indptr[np.asarray(major) + 1]
    lens = ends - starts
    total = int(lens.sum())
    if total == 0:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float64)
    offsets = np.repeat(starts - (np.cumsum(lens) - lens), lens) + np.arange(total)
    values = M.data[offsets].astype(np.float64) * np.repeat(np.asarray(weights, dtype=np.float64), lens)
    return M.indices[offsets], values


def simplex_grid(step: float = 0.1, n: int = 3) -> list[tuple[float, ...]]:
    """All weight vectors of ``n`` non-negative parts summing to one, on a grid of ``step``."""
    units = int(round(1 / step))
    out = []
    for combo in itertools.product(range(units + 1), repeat=n):
        if sum(combo) == units:
            out.append(tuple(c / units for c in combo))
    return out


class MovieRecommender(CatalogueInput, BaseEstimator):
    """Recommends catalogue films similar to a title (or to a list of titles a user liked).

    Args:
        features: the unfitted content pipeline (raw catalogue -> unit-length item vectors); None uses
            ``build_content_features()``.
        mode: ``content`` (text similarity only) or ``hybrid`` (content + quality prior + in-protocol
            popularity + a collaborative model, when ratings are given to ``fit``).
        n_recommendations: k of ``predict`` and the default of ``recommend``.
        recency: half-life, in history items, of a user's likes (0 weighs every like the same); only
            matters for lists of titles.
        prior_quantile: the vote-count quantile that sets the weighted rating's ``m``.
        content_weight, quality_weight, popularity_weight, cf_weight: the hybrid blend when it is not tuned.
        tune: choose the hybrid blend weights (and EASE's lambda) on validation users carved out of the
            ratings given to ``fit``, never on anything held out from ``fit``.
        tune_split: how validation users are carved out: ``per_user`` (each user's likes 80/20 in time
            order) or ``time`` (a global cutoff inside the training ratings).
        tune_step: grid step of the weight search on the simplex.
        cf_signal: which ratings make the item-item signal: ``rated`` (any rating), ``liked`` (>= the
            like threshold) or ``centered`` (rating minus the user's mean, positive part).
        neighbors: with > 0, each liked film contributes only its ``neighbors`` most similar films
            (item-kNN aggregation of the content similarity); 0 sums the similarity to every film.
        cf_model: ``ease`` (EASE, Steck 2019) or ``cosine`` (item-item cosine, ItemKNN).
        cf_lambda: EASE's L2 penalty when it is not tuned.
        cf_side_weight: weight of the content vectors as EASE side information when it is not tuned.
        tmdb_prior: whether the blend may use the quality prior (TMDB's vote counts and means, a 2017
            snapshot: later than most MovieLens ratings, so it carries "future" popularity into an
            evaluation on them). Without it the quality weight is 0 and is not tuned.
        ann: ``auto`` answers single-film content queries from an approximate nearest-neighbour index
            when the catalogue has at least ``ann_min_items`` films; ``exact`` never; ``approximate``
            always (see ``projects/recommender/ann.py``).
        ann_min_items: the catalogue size from which ``auto`` builds the index.
        like_threshold: a rating at or above it is a like.
        val_min_liked: validation users need at least this many likes.
        batch_size: queries scored at once (bounds memory at ``batch_size x N`` floats).
        rerank: with ``tune`` in hybrid mode, learn a gradient-boosted reranker (scikit-learn's
            ``HistGradientBoostingClassifier``) on the validation users: it reorders the blend's top
            ``rerank_candidates`` films of every history at least as long as the shortest it learned from.
        rerank_candidates: how many of the blend's films the reranker reorders.
        rerank_mix: the blend's own rank's share of the final order (0: the reranker alone decides).
    """

    def __init__(self, features: Any = None, mode: str = "hybrid", n_recommendations: int = 10,
                 recency: float = 0.0, prior_quantile: float = 0.9, content_weight: float = 0.5,
                 quality_weight: float = 0.5, cf_weight: float = 0.0, tune: bool = True, tune_step: float = 0.1,
                 cf_signal: str = "rated", neighbors: int = 0, like_threshold: float = 4.0,
                 val_min_liked: int = 5, batch_size: int = 256, popularity_weight: float = 0.0,
                 cf_model: str = "ease", cf_lambda: float = 100.0, tune_split: str = "per_user",
                 ann: str = "auto", ann_min_items: int = 200_000, cf_side_weight: float = 0.0,
                 tmdb_prior: bool = True, rerank: bool = False, rerank_candidates: int = 50,
                 rerank_mix: float = 0.3) -> None:
        self.features = features
        self.mode = mode
        self.n_recommendations = n_recommendations
        self.recency = recency
        self.prior_quantile = prior_quantile
        self.content_weight = content_weight
        self.quality_weight = quality_weight
        self.cf_weight = cf_weight
        self.tune = tune
        self.tune_step = tune_step
        self.cf_signal = cf_signal
        self.neighbors = neighbors
        self.like_threshold = like_threshold
        self.val_min_liked = val_min_liked
        self.batch_size = batch_size
        self.popularity_weight = popularity_weight
        self.cf_model = cf_model
        self.cf_lambda = cf_lambda
        self.tune_split = tune_split
        self.ann = ann
        self.ann_min_items = ann_min_items
        self.cf_side_weight = cf_side_weight
        self.tmdb_prior = tmdb_prior
        self.rerank = rerank
        self.rerank_candidates = rerank_candidates
        self.rerank_mix = rerank_mix

    def __sklearn_tags__(self) -> Tags:
        tags = super().__sklearn_tags__()
        # ``transform`` gives content vectors (float32 whatever the input), so it is a transformer too.
        tags.transformer_tags = TransformerTags(preserves_dtype=[])
        return tags

    # ------------------------------------------------------------------------------------------- fitting
    def fit(self, X: Any, y: Any = None, ratings: pd.DataFrame | None = None) -> MovieRecommender:
        """Learn item vectors and the quality prior from the catalogue ``X`` (raw TMDB columns).

        Args:
            X: the catalogue; needs ``id`` and ``title``, uses overview, tagline, genres, keywords,
                release_date, vote_average and vote_count when present.
            y: ignored (a recommender has no target column).
            ratings: optional ``userId, id, rating, timestamp`` rows (``id`` = catalogue id). In hybrid
                mode they make the collaborative signal and, with ``tune``, choose the blend weights.
        """
        if self.mode not in ("content", "hybrid"):
            raise InputError(f"mode must be 'content' or 'hybrid'; got {self.mode!r}.")
        catalogue = as_catalogue(X)
        features = clone(self.features) if self.features is not None else build_content_features()
        vectors = features.fit_transform(catalogue)
        self.features_ = features
        self.item_vectors_ = vectors.tocsr().astype(np.float32) if sparse.issparse(vectors) else np.ascontiguousarray(vectors, dtype=np.float32)
        self.ids_ = catalogue["id"].to_numpy(dtype=np.int64)
        self.titles_ = [t if isinstance(t, str) else str(t) for t in catalogue["title"].tolist()]
        dates = catalogue["release_date"] if "release_date" in catalogue else pd.Series([None] * len(catalogue))
        self.years_ = np.asarray([release_year(d) for d in dates], dtype=np.int64)
        votes = catalogue["vote_count"].to_numpy(dtype=float) if "vote_count" in catalogue else np.zeros(len(catalogue))
        means = catalogue["vote_average"].to_numpy(dtype=float) if "vote_average" in catalogue else np.zeros(len(catalogue))
        self.votes_ = np.nan_to_num(votes, nan=0.0)
        self.quality_ = _minmax(weighted_rating(means, self.votes_, self.prior_quantile))
        alt = catalogue["original_title"].tolist() if "original_title" in catalogue else None
        self.title_index_ = TitleIndex(self.titles_, self.years_, self.votes_, alt)
        self.id_pos_ = {int(i): p for p, i in enumerate(self.ids_)}
        self.n_items_ = len(self.ids_)
        self.cf_ = None
        self.popularity_ = np.zeros(self.n_items_, dtype=np.float32)
        self.validation_: dict[str, float] = {}
        self.weights_ = self._default_weights(with_cf=False)
        self.ranker_: HistGradientBoostingClassifier | None = None
        self.rerank_min_history_ = 0
        if self.rerank and not (0.0 <= self.rerank_mix <= 1.0 and int(self.rerank_candidates) >= 1):
            raise ParameterError("rerank_mix must be in [0, 1] and rerank_candidates >= 1; got "
                                 f"{self.rerank_mix!r} and {self.rerank_candidates!r}.")
        if self.mode == "hybrid" and ratings is not None:
            clean = self._check_ratings(ratings)
            if len(clean):
                cf_params = (float(self.cf_lambda), float(self.cf_side_weight))
                if self.tune:
                    self.weights_, self.validation_, cf_params = self._tune(clean, catalogue)
                    if self.rerank and self.validation_:
                        self._fit_ranker(clean, catalogue, cf_params)
                else:
                    self.weights_ = self._default_weights(with_cf=True)
                self.cf_ = self._cf_estimator(*cf_params).fit(catalogue, ratings=clean, item_features=self.item_vectors_)
                self.popularity_ = _minmax(self.cf_.popularity_)
                self.item_stats_ = self._item_stats(clean)
        if self.ann not in ("auto", "exact", "approximate"):
            raise ParameterError(f"ann must be 'auto', 'exact' or 'approximate'; got {self.ann!r}.")
        use_ann = self.ann == "approximate" or (self.ann == "auto" and self.n_items_ >= self.ann_min_items)
        self.ann_index_ = (ContentIndex(n_neighbors=max(20, self.n_recommendations + 1)).fit(self.item_vectors_)
                           if use_ann else None)
        self._prepare_columns()
        return self

    def _cf_estimator(self, lam: float, side_weight: float = 0.0) -> EASE | ItemKNN:
        if self.cf_model == "ease":
            return EASE(lam=lam, signal=self.cf_signal, like_threshold=self.like_threshold, side_weight=side_weight)
        if self.cf_model == "cosine":
            return ItemKNN(neighbors=0, signal=self.cf_signal, like_threshold=self.like_threshold)
        raise ParameterError(f"cf_model must be 'ease' or 'cosine'; got {self.cf_model!r}.")

    def _default_weights(self, with_cf: bool) -> dict[str, float]:
        if self.mode == "content":
            return {"content": 1.0, "quality": 0.0, "popularity": 0.0, "cf": 0.0}
        w = np.array([self.content_weight, self.quality_weight if self.tmdb_prior else 0.0,
                      self.popularity_weight if with_cf else 0.0,
                      self.cf_weight if with_cf else 0.0], dtype=float)
        if not np.isfinite(w).all() or (w < 0).any():  # no silent clipping: a negative share is a mistake
            raise ParameterError("content_weight, quality_weight, popularity_weight and cf_weight must be finite "
                                 f"and >= 0; got {self.content_weight}, {self.quality_weight}, "
                                 f"{self.popularity_weight}, {self.cf_weight}.")
        w = w / w.sum() if w.sum() > 0 else np.array([1.0, 0.0, 0.0, 0.0])
        return dict(zip(COMPONENTS, map(float, w), strict=True))

    def _check_ratings(self, ratings: pd.DataFrame) -> pd.DataFrame:
        if not isinstance(ratings, pd.DataFrame):
            raise InputError(f"ratings must be a DataFrame with columns {protocol.RATING_COLUMNS}.")
        missing = [c for c in protocol.RATING_COLUMNS if c not in ratings.columns]
        if missing:
            raise InputError(f"ratings lack column(s) {', '.join(missing)}; need {protocol.RATING_COLUMNS}.")
        known = ratings["id"].isin(self.id_pos_.keys())
        return ratings.loc[known, protocol.RATING_COLUMNS]

    def _tune(self, ratings: pd.DataFrame, catalogue: pd.DataFrame
              ) -> tuple[dict[str, float], dict[str, float], tuple[float, float]]:
        """Pick EASE's lambda and side weight, then the blend weights, by NDCG@10 on validation users.

        Validation users are carved out of the ratings given to ``fit`` (``tune_split``), and every signal
        used here (collaborative model, popularity) is fitted on what that split leaves for training,
        exactly as the evaluation protocol does for test users. To keep the grid search fast, each user's
        candidates are the union of the top ``pool`` films of every signal: a film outside all of them
        practically never enters a blend's top 10.
        """
        val = protocol.make_protocol(self.tune_split, ratings, self.id_pos_, self.like_threshold, self.val_min_liked)
        chosen = (float(self.cf_lambda), float(self.cf_side_weight))
        if len(val.users) < 5:
            log.info("too few validation users (%d) to tune the blend; using the default weights", len(val.users))
            return self._default_weights(with_cf=True), {}, chosen
        histories, excludes = val.histories, val.excludes
        targets = protocol.target_matrix(val.users, self.n_items_)
        info: dict[str, float] = {"val_users": float(len(val.users))}
        if self.cf_model == "ease":
            by_params: dict[tuple[float, float], float] = {}
            for cand in itertools.product(HYBRID_LAMBDA_GRID, SIDE_WEIGHT_GRID):
                est = self._cf_estimator(*cand).fit(catalogue, ratings=val.train, item_features=self.item_vectors_)
                recs, _ = est.recommend_positions(histories, 10, excludes)
                by_params[cand] = protocol.ranking_metrics(recs, val.users, self.n_items_, 10, targets)["ndcg_at_10"]
                del est  # one dense items x items matrix at a time (the chosen one is refitted below: cheaper
                # in memory than keeping the best, and a Cholesky fit takes a fraction of a second)
            chosen = max(by_params, key=lambda v: by_params[v])
            log.debug("EASE validation NDCG@10 by (lambda, side weight): %s", by_params)
            info |= {"val_cf_ndcg_at_10": by_params[chosen], "cf_lambda": chosen[0], "cf_side_weight": chosen[1]}
        cf = self._cf_estimator(*chosen).fit(catalogue, ratings=val.train, item_features=self.item_vectors_)
        comps = self._components(histories, cf, _minmax(cf.popularity_), excludes)
        n_users = len(val.users)
        for c in ("quality", "popularity"):
            comps[c] = np.broadcast_to(comps[c], (n_users, self.n_items_))
        pool = min(200, self.n_items_ - 1)
        used = [c for c in COMPONENTS if c != "quality" or self.tmdb_prior]
        # Each signal's top ``pool`` per user, in blocks of users: ``top_k`` needs a writable copy of the scores
        # and a full-width index array, so whole-matrix copies would dominate the fit's peak memory.
        cand = np.empty((n_users, pool * len(used)), dtype=np.int64)
        for start in range(0, n_users, 128):
            rows = slice(start, start + 128)
            cand[rows] = np.hstack([protocol.top_k(np.array(comps[c][rows]), pool, excludes[rows]) for c in used])
        cand = np.sort(cand, axis=1)
        dup = np.zeros(cand.shape, dtype=bool)
        dup[:, 1:] = cand[:, 1:] == cand[:, :-1]
        # A candidate that is excluded for this user (possible only when the pool exceeds what is left).
        for i, items in enumerate(excludes):
            dup[i] |= np.isin(cand[i], items)
        small = {c: np.take_along_axis(np.asarray(comps[c]), cand, axis=1) for c in used}
        hit = np.take_along_axis(targets, cand, axis=1)
        discount = 1.0 / np.log2(np.arange(2, 12))
        n_rel = np.minimum(targets.sum(axis=1), 10)
        ideal = np.cumsum(discount)[n_rel - 1]
        best, best_score, scores = None, -1.0, {}
        for w in simplex_grid(self.tune_step, len(used)):
            total = sum(np.float32(wi) * small[c] for wi, c in zip(w, used, strict=True))
            total[dup] = -np.inf
            top = protocol.top_k(total, 10)
            ndcg = float(np.mean((np.take_along_axis(hit, top, axis=1) * discount).sum(axis=1) / ideal))
            scores[w] = ndcg
            if ndcg > best_score + 1e-12:
                best, best_score = w, ndcg
        weights = {c: 0.0 for c in COMPONENTS} | dict(zip(used, map(float, best), strict=True))
        info |= {"val_ndcg_at_10": best_score,
                 "val_content_only_ndcg_at_10": scores.get((1.0,) + (0.0,) * (len(used) - 1), float("nan"))}
        log.info("blend weights chosen on %d validation users: %s (NDCG@10 %.4f, EASE lambda and side weight %s)",
                 n_users, weights, best_score, chosen)
        return weights, info, chosen

    # ------------------------------------------------------------------------------------------ reranker
    def _item_stats(self, ratings: pd.DataFrame) -> np.ndarray:
        """Per film: log ratings, log likes, mean rating (shrunk to the global mean by 10 ratings), like rate."""
        pos = ratings["id"].map(self.id_pos_).to_numpy(dtype=np.int64)
        stars = ratings["rating"].to_numpy(dtype=float)
        count = np.bincount(pos, minlength=self.n_items_).astype(float)
        likes = np.bincount(pos, weights=(stars >= self.like_threshold).astype(float), minlength=self.n_items_)
        total = np.bincount(pos, weights=stars, minlength=self.n_items_)
        mean = (total + 10.0 * (stars.mean() if len(stars) else 0.0)) / (count + 10.0)
        return np.column_stack([np.log1p(count), np.log1p(likes), mean, (likes + 1) / (count + 2)]).astype(np.float32)

    def _fit_ranker(self, ratings: pd.DataFrame, catalogue: pd.DataFrame, cf_params: tuple[float, float]) -> None:
        """Learn which of the blend's top films each validation user liked next (pointwise, gradient boosting).

        The rows come from ``RERANK_ROUNDS`` nested validation periods carved out of the ratings given to
        ``fit`` (each user's last 20% of likes, then the 20% before that, as in ``_tune``); every signal a
        feature uses is fitted on what that round leaves for training, so the reranker sees the blend as it
        will be at prediction time: fitted on ratings that never include the period it is judged on.
        """
        blocks, labels, shortest = [], [], None
        train = ratings
        for _ in range(RERANK_ROUNDS):
            val = protocol.make_protocol(self.tune_split, train, self.id_pos_, self.like_threshold,
                                         self.val_min_liked)
            if len(val.users) < 5:
                break
            cf = self._cf_estimator(*cf_params).fit(catalogue, ratings=val.train, item_features=self.item_vectors_)
            popularity, stats = _minmax(cf.popularity_), self._item_stats(val.train)
            # Users in blocks of 64: each block's signals are a few users x films matrices (about eight of
            # them), not all users' at once, so this stays below the blend search's peak memory.
            for start in range(0, len(val.users), 64):
                users = val.users[start:start + 64]
                feats, cand, _ = self._rerank_inputs([u.history for u in users], [u.exclude for u in users], cf,
                                                     popularity, stats, int(self.rerank_candidates))
                blocks.append(feats)
                labels.append(np.take_along_axis(protocol.target_matrix(users, self.n_items_), cand, axis=1).ravel())
            del cf
            lengths = min(len(h) for h in val.histories)
            shortest = lengths if shortest is None else min(shortest, lengths)
            train = val.train
        y = np.concatenate(labels) if labels else np.zeros(0, dtype=bool)
        if y.sum() < 10 or y.all():
            log.info("the reranker has too few examples (%d candidates, %d liked); the blend ranks alone",
                     len(y), int(y.sum()))
            return
        # Small, slow-learning trees: a few thousand liked candidates support little more.
        self.ranker_ = HistGradientBoostingClassifier(max_iter=200, learning_rate=0.05, max_leaf_nodes=15,
                                                      min_samples_leaf=40, early_stopping=False, random_state=0)
        self.ranker_.fit(np.vstack(blocks), y)
        self.rerank_min_history_ = int(shortest or 0)
        self.validation_ |= {"rerank_rows": float(len(y)), "rerank_liked": float(y.sum())}
        log.info("reranker fitted on %d candidates (%d liked)", len(y), int(y.sum()))

    def _rerank_inputs(self, histories: list[np.ndarray], exclude: list[np.ndarray], cf: Any,
                       popularity: np.ndarray, stats: np.ndarray, n_cand: int,
                       comps: dict[str, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The blend's top ``n_cand`` per history, their features (rows x ``RERANK_FEATURES``), and which of
        them are excluded films (only when fewer than ``n_cand`` films are left to recommend)."""
        comps = self._components(histories, cf, popularity, exclude) if comps is None else comps
        n_cand = min(n_cand, self.n_items_)
        blend = self._blend(comps, self.weights_)
        masked = np.array(blend)
        cand = protocol.top_k(masked, n_cand, exclude)
        excluded = np.isneginf(np.take_along_axis(masked, cand, axis=1))
        n_q = len(histories)

        def at(mat: np.ndarray) -> np.ndarray:
            return np.take_along_axis(np.broadcast_to(mat, (n_q, self.n_items_)), cand, axis=1)

        recent = self._components([np.asarray(h)[-RERANK_RECENT:] for h in histories], cf, popularity, exclude)
        content, collab = at(comps["content"]), at(comps["cf"]) if "cf" in comps else np.zeros(cand.shape)
        years = np.where(self.years_ > 0, self.years_, np.nan).astype(float)
        mean_year = np.array([_mean_year(years[h]) for h in histories])[:, None]
        recent_year = np.array([_mean_year(years[np.asarray(h)[-RERANK_RECENT_YEARS:]]) for h in histories])[:, None]
        ranks = np.broadcast_to(np.arange(cand.shape[1], dtype=float), cand.shape)
        length = np.broadcast_to(np.log1p([len(h) for h in histories])[:, None], cand.shape)
        item = stats[cand]
        cols = [at(recent["content"]), at(recent["cf"]) if "cf" in recent else np.zeros(cand.shape), content,
                collab, popularity[cand], at(blend), ranks, _rank(collab), _rank(content), length, years[cand],
                years[cand] - mean_year, years[cand] - recent_year, item[..., 0], item[..., 1], item[..., 2],
                item[..., 3]]
        return np.stack(cols, axis=-1).reshape(-1, len(cols)).astype(np.float32), cand, excluded

    def _reranked(self, rows: list[int], histories: list[np.ndarray], exclude: list[np.ndarray],
                  comps: dict[str, np.ndarray], k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` of the blend's candidates for ``rows`` by the reranker's log-odds mixed with the blend rank."""
        sub = {c: (v[rows] if v.shape[0] == len(histories) else v) for c, v in comps.items()}
        # At least k candidates, so a long list (``recommend(k=100)``) is reranked to its full length.
        feats, cand, excluded = self._rerank_inputs([histories[i] for i in rows], [exclude[i] for i in rows],
                                                    self.cf_, self.popularity_, self.item_stats_,
                                                    max(int(self.rerank_candidates), k), sub)
        proba = self.ranker_.predict_proba(feats)[:, 1].reshape(cand.shape)
        mix = float(self.rerank_mix)
        score = (1 - mix) * np.log(proba + 1e-9) - mix * np.log1p(np.arange(cand.shape[1]))[None, :]
        score[excluded] = -np.inf  # a film the user rated stays last, as in the blend's own top k
        order = np.argsort(-score, axis=1, kind="stable")[:, :k]
        return np.take_along_axis(cand, order, axis=1), np.take_along_axis(score, order, axis=1).astype(np.float32)

    # ------------------------------------------------------------------------------------------- scoring
    def _history_matrix(self, histories: list[np.ndarray]) -> sparse.csr_matrix:
        """Queries x items, each history film weighted by its recency (newest 1, halving every ``recency``)."""
        weights = []
        for items in histories:
            if self.recency > 0 and len(items) > 1:
                weights.append(0.5 ** (np.arange(len(items) - 1, -1, -1, dtype=float) / self.recency))
            else:
                weights.append(np.ones(len(items)))
        return history_matrix(histories, self.n_items_, weights)

    def _similarity(self, W: sparse.csr_matrix, M: Any, columns: sparse.csc_matrix | None = None) -> np.ndarray:
        """Weighted sum over each query's items of their cosine similarity to every item.

        With ``neighbors > 0`` only each history item's ``neighbors`` most similar films count (item-kNN
        aggregation, which favours specific similarity over the centre of a long history); otherwise the
        sum runs over all films, which is one product with the weighted sum of the history vectors.
        """
        if self.neighbors <= 0:
            # The weighted history sum as a dense profile, then one (sparse or dense) matrix-vector product
            # per query: O(nnz(M)) instead of a sparse-sparse product.
            out = np.empty((W.shape[0], M.shape[0]), dtype=np.float32)
            if columns is not None and W.shape[0] <= 8 and sparse.issparse(M):
                # A few queries: only the columns (terms, users) the profile uses are read, so the cost
                # is the number of films sharing a term with the query, not every stored value; done on
                # the raw arrays because scipy's per-call overhead would dominate at this size.
                for i in range(W.shape[0]):
                    a, b = W.indptr[i], W.indptr[i + 1]
                    feats, weights = _gather(M, W.indices[a:b], W.data[a:b])
                    items, values = _gather(columns, feats, weights)
                    out[i] = np.bincount(items, weights=values, minlength=M.shape[0])
                return out
            # Dense profiles are (queries x features): take queries in blocks to bound that memory.
            block = max(1, min(W.shape[0], 2**22 // max(M.shape[1], 1)))
            for start in range(0, W.shape[0], block):
                rows = slice(start, start + block)
                profile = W[rows] @ M
                profile = profile.toarray() if sparse.issparse(profile) else np.asarray(profile)
                profile = profile.astype(np.float32, copy=False)
                out[rows] = np.asarray(M @ profile.T, dtype=np.float32).T
            return out
        coo = W.tocoo()
        rows_out = np.zeros((W.shape[0], M.shape[0]), dtype=np.float32)
        k = min(self.neighbors, M.shape[0])
        step = max(1, int(2**25 // max(M.shape[0], 1)))  # history rows per block: ~128 MiB of similarities
        for start in range(0, coo.nnz, step):
            sl = slice(start, start + step)
            items, users, weights = coo.col[sl], coo.row[sl], coo.data[sl]
            sims = M[items] @ M.T
            sims = np.asarray(sims.todense() if sparse.issparse(sims) else sims, dtype=np.float32)
            sims[np.arange(len(items)), items] = 0.0
            top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
            vals = np.take_along_axis(sims, top, axis=1) * weights[:, None]
            np.add.at(rows_out, (np.repeat(users, k), top.ravel()), vals.ravel())
        return rows_out

    def _prepare_columns(self) -> None:
        """Column-major copies of the sparse matrices, for fast single queries (rebuilt on load, not saved)."""
        V = self.item_vectors_
        self._item_columns = V.tocsc() if sparse.issparse(V) else None

    def _components(self, histories: list[np.ndarray], cf: Any, popularity: np.ndarray,
                    exclude: list[np.ndarray] | None = None) -> dict[str, np.ndarray]:
        """Per-query score vectors of each signal, each scaled to a maximum of 1 outside the excluded films."""
        W = self._history_matrix(histories)
        out = {"content": self._similarity(W, self.item_vectors_, getattr(self, "_item_columns", None))}
        if cf is not None:
            out["cf"] = cf.scores(histories)
        for name in list(out):
            mat = out[name]
            for i, items in enumerate(histories if exclude is None else exclude):
                mat[i, np.asarray(items, dtype=np.int64)] = 0.0
            top = mat.max(axis=1, keepdims=True)
            np.divide(mat, top, out=mat, where=top > 0)
        out["quality"] = self.quality_[None, :]
        out["popularity"] = popularity[None, :]
        return out

    def _blend(self, comps: dict[str, np.ndarray], weights: dict[str, float]) -> np.ndarray:
        if set(w for c, w in weights.items() if c != "content") <= {0.0}:  # content only: no second matrix
            total = comps["content"]
            return total if weights.get("content", 0.0) == 1.0 else total * np.float32(weights.get("content", 0.0))
        total = np.zeros_like(comps["content"])
        for name, w in weights.items():
            if w and name in comps:
                total += np.float32(w) * comps[name]
        return total

    def score_histories(self, histories: list[np.ndarray], exclude: list[np.ndarray] | None = None) -> np.ndarray:
        """Blended scores (queries x items) for lists of catalogue positions; excluded items are not masked.

        ``exclude`` (default: the histories) only sets which films each signal's scaling ignores.
        """
        self._check_fitted()
        return self._blend(self._components(histories, self.cf_, self.popularity_, exclude), self.weights_)

    def recommend_positions(self, histories: list[np.ndarray], k: int | None = None,
                            exclude: list[np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` catalogue positions and scores for each list of liked positions.

        Args:
            histories: each query's liked catalogue positions (oldest first).
            k: films per query (default ``n_recommendations``).
            exclude: films never recommended to each query (default: its history); the evaluation passes
                every film the user rated before the cutoff.

        Queries are scored in batches of ``batch_size``, so memory stays at ``batch_size x N`` floats.
        Single-film content queries go through the approximate index when one was built (``ann``). With a
        fitted reranker (``rerank``), a history at least as long as the shortest it learned from gets the
        reranked order, and its scores are the reranker's (higher is better, not a similarity).
        """
        self._check_fitted()
        k = min(self.n_recommendations if k is None else int(k), max(self.n_items_ - 1, 1))
        if self._ann_serves(histories, exclude, k):
            return self.ann_index_.query(self.item_vectors_, np.array([h[0] for h in histories], dtype=np.int64), k)
        all_pos, all_scores = [], []
        for start in range(0, len(histories), self.batch_size):
            chunk = [np.asarray(h, dtype=np.int64) for h in histories[start:start + self.batch_size]]
            skip = chunk if exclude is None else [np.asarray(e, dtype=np.int64)
                                                  for e in exclude[start:start + self.batch_size]]
            comps = self._components(chunk, self.cf_, self.popularity_, skip)
            scores = self._blend(comps, self.weights_)
            ranked = [i for i, h in enumerate(chunk) if self._reranks(len(h))]
            pos = protocol.top_k(np.array(scores) if ranked else scores, k, skip)
            top = np.take_along_axis(scores, pos, axis=1)
            if ranked:
                pos[ranked], top[ranked] = self._reranked(ranked, chunk, skip, comps, k)
            all_pos.append(pos)
            all_scores.append(top)
        if not all_pos:
            return np.empty((0, k), dtype=np.int64), np.empty((0, k), dtype=np.float32)
        return np.vstack(all_pos), np.vstack(all_scores)

    def _reranks(self, n_history: int) -> bool:
        """Whether the reranker orders a history this long (not shorter than any it learned from)."""
        return getattr(self, "ranker_", None) is not None and n_history >= max(self.rerank_min_history_, 1)

    def _ann_serves(self, histories: list[np.ndarray], exclude: list[np.ndarray] | None, k: int) -> bool:
        """Whether the approximate index answers: one film per query, content only, nothing else excluded."""
        index = getattr(self, "ann_index_", None)
        if index is None or exclude is not None or not histories or not index.can_answer(k):
            return False
        if any(w > 0 for c, w in self.weights_.items() if c != "content"):
            return False
        return all(len(h) == 1 for h in histories)

    # --------------------------------------------------------------------------------------- public API
    def resolve(self, query: Any) -> Match:
        """Find the catalogue film a title (or TMDB id) means; never raises for an unknown title."""
        self._check_fitted()
        if isinstance(query, int | np.integer) and not isinstance(query, bool):
            pos = self.id_pos_.get(int(query), -1)
            return Match(query, pos, "id" if pos >= 0 else "not_found")
        if isinstance(query, float | np.floating) and np.isfinite(query) and float(query).is_integer():
            return self.resolve(int(query))
        # A title first ("2012" and "300" are films), then a TMDB id given as text, then typo correction.
        match = self.title_index_.lookup(query, fuzzy=False)
        if match.found:
            return match
        if isinstance(query, str) and query.strip().isdigit():
            pos = self.id_pos_.get(int(query.strip()), -1)
            if pos >= 0:
                return Match(query, pos, "id")
        return self.title_index_.lookup(query)

    def recommend(self, title_or_id: Any, k: int | None = None) -> pd.DataFrame:
        """The ``k`` films most like one title (or TMDB id), best first.

        Returns:
            A table with columns ``query, match, status, rank, id, title, year, score``. An unknown title
            gives its closest catalogue titles instead, with ``status == "not_found"`` and the title
            similarity as score.
        """
        return self._table([title_or_id], k)

    def recommend_from(self, liked: Iterable[Any], k: int | None = None) -> pd.DataFrame:
        """The ``k`` films to suggest to someone who liked every title (or id) in ``liked``, in that order.

        Titles that cannot be resolved are skipped (and logged); the liked films are never recommended.
        A missing entry (None, NaN) or one that is neither a title nor a TMDB id raises ``InputError``
        (``check_titles``).
        """
        self._check_fitted()
        liked = list(liked)
        check_titles(liked)
        positions = []
        for q in liked:
            m = self.resolve(q)
            if m.found:
                positions.append(m.position)
            else:
                log.warning("skipping %r: no such title in the catalogue", q)
        if not positions:
            return self._table([], k)
        pos, scores = self.recommend_positions([np.asarray(positions)], k)
        label = "; ".join(self._label(p) for p in positions)
        return pd.DataFrame({"query": [label] * pos.shape[1], "match": [label] * pos.shape[1],
                             "status": ["profile"] * pos.shape[1], "rank": np.arange(1, pos.shape[1] + 1),
                             "id": self.ids_[pos[0]], "title": [self.titles_[p] for p in pos[0]],
                             "year": self.years_[pos[0]], "score": np.round(scores[0].astype(np.float64), 6)},
                            columns=OUTPUT_COLUMNS)

    def kneighbors(self, X: Any = None, n_neighbors: int | None = None,
                   return_distance: bool = True) -> Any:
        """Nearest catalogue films for each query, like ``NearestNeighbors.kneighbors``.

        Args:
            X: titles or TMDB ids (a list, or a DataFrame with a ``title`` column); None means every
                catalogue film (each is excluded from its own neighbours).
            n_neighbors: k (default ``n_recommendations``).
            return_distance: also return ``1 - score``.

        Returns:
            ``(distances, indices)`` or ``indices``: arrays of shape (queries, k) of catalogue positions
            (``ids_[indices]`` are TMDB ids). A query that matches no title gets -1 indices and inf
            distances.
        """
        self._check_fitted()
        if X is None:
            positions = list(range(self.n_items_))
        else:
            queries = _queries(X)
            check_titles(queries)
            positions = [self.resolve(q).position for q in queries]
        k = min(self.n_recommendations if n_neighbors is None else int(n_neighbors), max(self.n_items_ - 1, 1))
        ind = np.full((len(positions), k), -1, dtype=np.int64)
        dist = np.full((len(positions), k), np.inf, dtype=np.float32)
        found = [i for i, p in enumerate(positions) if p >= 0]
        if found:
            pos, scores = self.recommend_positions([np.array([positions[i]]) for i in found], k)
            ind[found], dist[found] = pos, 1.0 - scores
        return (dist, ind) if return_distance else ind

    def predict(self, X: Any) -> pd.DataFrame:
        """Top-``n_recommendations`` films for each title in ``X``, as one long table.

        Args:
            X: titles or TMDB ids: a list, a Series, or a DataFrame with a ``title`` (or ``id``) column.

        Returns:
            Columns ``query, match, status, rank, id, title, year, score`` (``k`` rows per query). A title
            that matches nothing gives its closest catalogue titles with ``status == "not_found"``.

        Raises:
            InputError: no rows, or a row that is missing, too long, or neither a title nor a TMDB id
                (``check_titles`` names the row and the column ``title``).
        """
        queries = _queries(X)
        if not queries:
            raise InputError("no rows to predict: recommender expects at least one row (a title or a TMDB id).")
        return self._table(queries, None)

    def transform(self, X: Any) -> Any:
        """Unit-length content vectors of raw catalogue rows (new films can be compared with the catalogue)."""
        self._check_fitted()
        return self.features_.transform(as_catalogue(X))

    # --------------------------------------------------------------------------------------- persistence
    # Titles and the id lookup are saved as arrays (the dict is rebuilt on load): skops (the format logged
    # with MLPROJECTS_MODEL_FORMAT=skops) writes Python containers item by item, slow for thousands of entries.
    def __getstate__(self) -> dict[str, Any]:
        state = dict(super().__getstate__())  # object.__getstate__ may return the live __dict__
        state.pop("id_pos_", None)
        state.pop("_item_columns", None)
        if "titles_" in state:
            state["titles_"] = np.array(state["titles_"], dtype=str)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        if isinstance(state.get("titles_"), np.ndarray):
            state["titles_"] = state["titles_"].tolist()
        super().__setstate__(state)
        if "ids_" in state:
            self.id_pos_ = {int(i): p for p, i in enumerate(self.ids_.tolist())}
            self._prepare_columns()

    # ------------------------------------------------------------------------------------------ helpers
    def _check_fitted(self) -> None:
        # scikit-learn's NotFittedError, so tools that probe fitted state (clone, meta-estimators) see it.
        check_is_fitted(self, "item_vectors_", msg="This recommender is not fitted yet: call fit(catalogue) first.")

    def _label(self, pos: int) -> str:
        year = self.years_[pos]
        return f"{self.titles_[pos]} ({year})" if year else self.titles_[pos]

    def _table(self, queries: list[Any], k: int | None) -> pd.DataFrame:
        """One long table for many queries, built column-wise in one go (pandas construction dominates
        the latency of a single query otherwise)."""
        self._check_fitted()
        check_titles(queries)
        matches = [self.resolve(q) for q in queries]
        found = [m.position for m in matches if m.found]
        recs, scores = self.recommend_positions([np.array([p]) for p in found], k) if found else (None, None)
        cols: dict[str, list[Any]] = {c: [] for c in OUTPUT_COLUMNS}
        j = 0
        for m in matches:
            if m.found:
                pos, score, match, status = recs[j], scores[j], self._label(m.position), m.status
                j += 1
            elif m.suggestions:
                pos = np.array([p for p, _ in m.suggestions], dtype=np.int64)
                score, match, status = np.array([s for _, s in m.suggestions]), "", "not_found"
            else:
                cols["query"].append(str(m.query))
                cols["match"].append("")
                cols["status"].append("not_found")
                cols["rank"].append(np.zeros(1, dtype=np.int64))
                cols["id"].append(np.full(1, -1, dtype=np.int64))
                cols["title"].append("")
                cols["year"].append(np.zeros(1, dtype=np.int64))
                cols["score"].append(np.zeros(1))
                continue
            n = len(pos)
            cols["query"].extend([str(m.query)] * n)
            cols["match"].extend([match] * n)
            cols["status"].extend([status] * n)
            cols["rank"].append(np.arange(1, n + 1, dtype=np.int64))
            cols["id"].append(self.ids_[pos])
            cols["title"].extend(self.titles_[p] for p in pos)
            cols["year"].append(self.years_[pos])
            cols["score"].append(np.round(np.asarray(score, dtype=np.float64), 6))
        data = {}
        for c in OUTPUT_COLUMNS:
            if c in _NUMERIC:
                data[c] = np.concatenate(cols[c]) if cols[c] else np.empty(0, dtype=_NUMERIC[c])
            else:
                data[c] = cols[c]
        return pd.DataFrame(data)


def _mean_year(years: np.ndarray) -> float:
    """The mean of the known years (NaN when none is known: the trees take NaN as missing)."""
    known = years[~np.isnan(years)]
    return float(known.mean()) if len(known) else float("nan")


def _rank(scores: np.ndarray) -> np.ndarray:
    """Each row's rank order (0 = highest score) as floats."""
    return np.argsort(np.argsort(-scores, axis=1, kind="stable"), axis=1, kind="stable").astype(float)


_NUMERIC = {"rank": np.int64, "id": np.int64, "year": np.int64, "score": np.float64}
# The longest title a query may be: the longest TMDB title has ~100 characters, and fuzzy matching costs
# grow with the query's length (a 1 MB "title" took minutes), so longer queries are refused, not searched.
MAX_TITLE_CHARS = 500


def check_titles(queries: list[Any]) -> None:
    """Raise ``InputError`` naming the first row that is not a title or a TMDB id, or is a too long title.

    Accepted: a string of at most ``MAX_TITLE_CHARS`` characters (an empty or unknown title is an answer:
    ``not_found``), or an integer (a TMDB id; a whole float such as 603.0, as a CSV column of ids with a
    blank cell is read, counts as one). Refused, naming the row and the column ``title``: a missing value
    (None, NaN, NA: a missing title cannot be looked up), any other number, a boolean or any other type.
    """
    expected = "a title (a string) or a TMDB id (an integer)"
    for row, q in enumerate(queries):
        where = f"recommender input row {row}, column 'title'"
        if isinstance(q, str):
            if len(q) > MAX_TITLE_CHARS:
                raise InputError(f"{where}: got a title of {len(q):,} characters ({q[:40]!r}...); expected at "
                                 f"most {MAX_TITLE_CHARS} characters.")
        elif _is_missing(q):
            raise InputError(f"{where}: got {_shown(q)}; expected {expected}: a missing title cannot be looked up.")
        elif isinstance(q, bool | np.bool_) or not (
                isinstance(q, int | np.integer)
                or (isinstance(q, float | np.floating) and np.isfinite(q) and float(q).is_integer())):
            raise InputError(f"{where}: got {_shown(q)}; expected {expected}.")


def _is_missing(value: Any) -> bool:
    """None, NaN (float or NumPy), pandas' NA and NaT."""
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    return isinstance(value, float | np.floating) and bool(np.isnan(value))


def _shown(value: Any) -> str:
    """The value and its type, cut when long (as the input contracts of the other projects show it)."""
    value = value.item() if isinstance(value, np.generic) else value
    text = f"{value!r} (type {type(value).__name__})"
    return text if len(text) <= 80 else text[:80] + f"... ({len(text)} chars)"


def _queries(X: Any) -> list[Any]:
    """The titles/ids in any reasonable container (one-element lists inside, as JSON may give, unwrapped).

    Raises:
        InputError: for a table with no usable column or an unsupported type.
    """
    return [q[0] if isinstance(q, list | tuple | np.ndarray) and len(q) == 1 else q for q in _values(X)]


def _values(X: Any) -> list[Any]:
    if isinstance(X, pd.DataFrame):
        for col in ("title", "query", "id"):
            if col in X.columns:
                return X[col].tolist()
        if X.shape[1] == 1:
            return X.iloc[:, 0].tolist()
        raise InputError(
            f"Give the recommender a 'title' column (titles or TMDB ids); got columns {list(X.columns)}."
        )
    if isinstance(X, pd.Series):
        return X.tolist()
    if isinstance(X, str | int | np.integer):
        return [X]
    if isinstance(X, dict):
        return _values(pd.DataFrame(X if isinstance(next(iter(X.values()), None), list) else [X]))
    if isinstance(X, np.ndarray):
        return X.ravel().tolist()
    if isinstance(X, list | tuple):
        return list(X)
    raise InputError(f"The recommender takes titles (a list, or a DataFrame with a 'title' column); got {type(X).__name__}.")
