"""The recommender's protocols: a global time split (primary) and a per-user time split (secondary).

Leakage story. Under the primary protocol (``time``) every model and baseline learns only from ratings
made before one global cutoff ``T``, and is scored on the likes from ``T`` on of users who rated at least
one film before ``T``: nobody's future reaches fitting. The secondary protocol (``per_user``: each user's
last 20% of likes) is kept so results stay comparable with earlier runs; there, other users' later ratings do reach
training (``peruser_cross_user_leak`` says how much). In both, films the user rated before the cutoff are
never recommended, and every tuned number (blend weights, EASE's lambda, ItemKNN's neighbours) is chosen
on validation users carved out of the training ratings, never on test users. The catalogue text carries no
user information, so content vectors are fitted on the whole catalogue.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from common import plots
from common.bench import timed
from common.console import step
from common.errors import DataError
from common.protocol import Context, Outcome
from projects.recommender import protocol
from projects.recommender.baselines import reference_recommenders
from projects.recommender.collab import EASE, ItemKNN, Popularity, tune_on_validation
from projects.recommender.model import LAMBDA_GRID

log = logging.getLogger(__name__)

K = 10
LIKE_THRESHOLD = 4.0
MIN_LIKED = 10  # per-user protocol: likes a user needs to be evaluated
# Time protocol: rated films (any rating) before T a user needs to be evaluated. 1 is the least history a
# model can use; more would drop light raters for no reason a model choice could justify (see time_splits).
MIN_HISTORY = 1
VAL_MIN_LIKED = 5  # validation users (inside the training ratings)
TEST_FRACTION = 0.2
NEIGHBOR_GRID = (0, 50, 200)
N_BOOT = 2000
# Metric-name prefix of each protocol: the primary one keeps the plain names (``ndcg_at_10``).
PROTOCOLS = {"": "time", "peruser_": "per_user"}
#: References ranked by TMDB's 2017 vote counts and means: data from after most ratings (see the docs).
TMDB_2017 = ("mostvoted", "weightedrating")


def _plot(rows: dict[str, float], path: Path, title: str) -> Path:
    """NDCG@K of the model (green) and each baseline (grey) as horizontal bars."""
    names, values = list(rows), list(rows.values())
    fig, ax = plots.subplots(figsize=(7, 4))
    colors = ["tab:green" if n == "model" else "tab:gray" for n in names]
    ax.barh(names[::-1], values[::-1], color=colors[::-1])
    for i, v in enumerate(values[::-1]):
        ax.text(v, i, f" {v:.3f}", va="center")
    ax.set_xlabel(f"NDCG@{K} (test users' later likes)")
    ax.set_title(title)
    return plots.save(fig, path)


def collaborative_baselines(catalogue: pd.DataFrame, train: pd.DataFrame) -> tuple[dict[str, Any], dict[str, float]]:
    """In-protocol popularity, ItemKNN cosine and EASE, each tuned on validation users of ``train`` (unfitted)."""
    ease, ease_val = tune_on_validation(EASE(like_threshold=LIKE_THRESHOLD), "lam", LAMBDA_GRID, catalogue, train,
                                        "per_user", LIKE_THRESHOLD, VAL_MIN_LIKED, K)
    knn, knn_val = tune_on_validation(ItemKNN(like_threshold=LIKE_THRESHOLD), "neighbors", NEIGHBOR_GRID, catalogue,
                                      train, "per_user", LIKE_THRESHOLD, VAL_MIN_LIKED, K)
    chosen = {"ease_lambda": float(ease.lam), "itemknn_neighbors": float(knn.neighbors)}
    if ease_val:
        chosen["ease_val_ndcg_at_10"] = max(ease_val.values())
    if knn_val:
        chosen["itemknn_val_ndcg_at_10"] = max(knn_val.values())
    return {"popularity": Popularity(like_threshold=LIKE_THRESHOLD), "itemknn": knn, "ease": ease}, chosen


def score_protocol(ctx: Context, catalogue: pd.DataFrame, split: protocol.ProtocolSplit
                   ) -> tuple[dict[str, float], dict[str, float], Any, np.ndarray]:
    """Fit the model and every baseline on ``split.train``; score them on ``split.users``.

    Returns the metrics, each method's NDCG@K (for the plot), the fitted model and its recommendations.
    """
    users, n_items = split.users, len(catalogue)
    targets = protocol.target_matrix(users, n_items)
    id_pos = {int(i): p for p, i in enumerate(catalogue["id"].to_numpy())}
    rated = np.zeros(n_items, dtype=bool)
    rated[split.train["id"].map(id_pos).dropna().to_numpy(dtype=np.int64)] = True
    histories, excludes = split.histories, split.excludes
    with step(f"[{split.kind}] fitting the recommender on {len(split.train):,} training ratings"):
        fit = timed(lambda: ctx.build().fit(catalogue, ratings=split.train))
    model = fit.result
    with step(f"[{split.kind}] recommending {K} films to {len(users)} test users"):
        recs, _ = model.recommend_positions(histories, K, excludes)
    metrics = protocol.ranking_metrics(recs, users, n_items, K, targets, rated)
    metrics |= {
        "users_evaluated": float(len(users)),
        "test_items": float(sum(len(s.test) for s in users)),
        "films_evaluated": float(len(np.unique(np.concatenate([s.test for s in users])))),
        "films_with_training_ratings": float(rated.sum()),
        "training_ratings": float(len(split.train)),
        "excluded_per_user": float(np.mean([len(e) for e in excludes])),
        "cross_user_leak": protocol.cross_user_leak(split.train, users),
        "eval_fit_seconds": fit.wall_s,
    }
    if split.cutoff is not None:
        metrics["cutoff_timestamp"] = float(split.cutoff)
    metrics |= {f"blend_{c}": v for c, v in model.weights_.items()}
    metrics |= dict(model.validation_)
    ndcg_model = protocol.per_user_ndcg(recs, users, n_items, K, targets)
    summary = {"model": metrics[f"ndcg_at_{K}"]}
    collab, chosen = collaborative_baselines(catalogue, split.train)
    metrics |= {f"baseline_{k}": v for k, v in chosen.items()}
    per_user = {}
    for name, base in {**collab, **reference_recommenders(seed=ctx.spec.split.seed)}.items():
        with step(f"[{split.kind}] baseline {name}", level=logging.DEBUG):
            base.fit(catalogue, ratings=split.train)
            brecs, _ = base.recommend_positions(histories, K, excludes)
        bm = protocol.ranking_metrics(brecs, users, n_items, K, targets, rated)
        # TMDB's 2017 vote counts postdate most ratings: they are logged as references, not baselines, so the
        # leaderboard and the train-all summary never present a ranking built on future data as a baseline.
        kind = "reference" if name in TMDB_2017 else "baseline"
        metrics |= {f"{kind}_{name}_{k}": v for k, v in bm.items()}
        summary[name] = bm[f"ndcg_at_{K}"]
        per_user[name] = protocol.per_user_ndcg(brecs, users, n_items, K, targets)
    for name in ("ease", "popularity", "itemknn"):
        mean, lo, hi = protocol.paired_bootstrap(ndcg_model, per_user[name], N_BOOT, seed=ctx.spec.split.seed)
        metrics |= {f"model_minus_{name}_ndcg_at_{K}": mean, f"model_minus_{name}_ci_low": lo,
                    f"model_minus_{name}_ci_high": hi}
    return metrics, summary, model, recs


def evaluate(ctx: Context) -> Outcome:
    """Score the model and the baselines under both protocols; fit the final model on every rating."""
    ds = ctx.dataset
    catalogue = ds.X
    ratings = ds.extras.get("ratings")
    if ratings is None or len(ratings) == 0:
        raise DataError(
            "The recommender is evaluated on MovieLens ratings, but the dataset has none. Load it with "
            "with_ratings=True (the default) so ml-latest-small is read or downloaded from GroupLens."
        )
    id_pos = {int(i): p for p, i in enumerate(catalogue["id"].to_numpy())}
    metrics: dict[str, float] = {}
    eval_model = None
    for prefix, kind in PROTOCOLS.items():
        split = protocol.make_protocol(kind, ratings, id_pos, LIKE_THRESHOLD, MIN_LIKED, TEST_FRACTION, MIN_HISTORY)
        if not split.users:
            need = (f"a like from the cutoff on and {MIN_HISTORY} rated catalogue film(s) before it" if kind == "time"
                    else f"{MIN_LIKED} liked catalogue films")
            raise DataError(f"The {kind} protocol has no user to score (users need {need}).")
        scored, summary, model, recs = score_protocol(ctx, catalogue, split)
        metrics |= {prefix + k: v for k, v in scored.items()}
        label = "global time split" if kind == "time" else "per-user time split"
        _plot(summary, ctx.artifact(f"{prefix}ndcg_vs_baselines.png"), f"recommender vs baselines ({label})")
        targets = protocol.target_matrix(split.users, len(catalogue))
        pd.DataFrame({"userId": [s.user for s in split.users], "history": [len(s.history) for s in split.users],
                      "excluded": [len(s.exclude) for s in split.users], "test": [len(s.test) for s in split.users],
                      "hits": targets[np.arange(len(split.users))[:, None], recs].sum(axis=1)}
                     ).to_csv(ctx.artifact(f"{prefix}per_user_hits.csv"), index=False)
        if eval_model is None:
            eval_model, eval_fit = model, scored["eval_fit_seconds"]

    final, fit_seconds = eval_model, eval_fit
    if ctx.fit_final:
        with step(f"Fitting the final recommender on all {len(ratings):,} ratings"):
            fit = timed(lambda: ctx.build().fit(catalogue, ratings=ratings))
        final, fit_seconds = fit.result, fit.wall_s
    probe = catalogue["title"].astype(str).head(100).tolist()
    metrics["predict_ms_per_row"] = 1000 * timed(lambda: final.predict(probe)).wall_s / max(len(probe), 1)
    example = pd.DataFrame({"title": catalogue["title"].astype(str).head(3).tolist()})
    return Outcome(metrics=metrics, model=final, input_example=example, fit_seconds=fit_seconds,
                   X_test=catalogue, y_test=None)
