"""The recommender's protocol: per-user time split of MovieLens likes, model and baselines on the same users.

Leakage story: the test users' test films, and everything they rated from the start of their test period
on, are removed from the ratings the model (and any baseline) is fitted with. The hybrid's blend weights
are chosen inside ``fit`` on validation users carved out of those training ratings (each user's own
history split 80/20 in time order), so no test film ever influences a learned number. The catalogue text
carries no user information, so the content vectors are fitted on the whole catalogue.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from common import plots
from common.bench import timed
from common.console import step
from common.errors import DataError
from common.protocol import Context, Outcome
from projects.recommender import protocol
from projects.recommender.baselines import reference_recommenders

log = logging.getLogger(__name__)

K = 10
LIKE_THRESHOLD = 4.0
MIN_LIKED = 10
TEST_FRACTION = 0.2


def _plot(rows: dict[str, float], path: Path) -> Path:
    """NDCG@K of the model (green) and each baseline (grey) as horizontal bars."""
    names, values = list(rows), list(rows.values())
    fig, ax = plots.subplots(figsize=(7, 3.5))
    colors = ["tab:green" if n == "model" else "tab:gray" for n in names]
    ax.barh(names[::-1], values[::-1], color=colors[::-1])
    for i, v in enumerate(values[::-1]):
        ax.text(v, i, f" {v:.3f}", va="center")
    ax.set_xlabel(f"NDCG@{K} (test users' later likes)")
    ax.set_title("recommender vs baselines")
    return plots.save(fig, path)


def evaluate(ctx: Context) -> Outcome:
    """Score the model and the baselines on the protocol; fit the final model on every rating."""
    ds = ctx.dataset
    catalogue = ds.X
    ratings = ds.extras.get("ratings")
    if ratings is None or len(ratings) == 0:
        raise DataError(
            "The recommender is evaluated on MovieLens ratings, but the dataset has none. Load it with "
            "with_ratings=True (the default) so ml-latest-small is read or downloaded from GroupLens."
        )
    id_pos = {int(i): p for p, i in enumerate(catalogue["id"].to_numpy())}
    splits = protocol.user_splits(ratings, id_pos, LIKE_THRESHOLD, MIN_LIKED, TEST_FRACTION)
    if not splits:
        raise DataError(f"No user has {MIN_LIKED} liked catalogue films, so the protocol has no one to score.")
    train_ratings = protocol.training_ratings(ratings, splits)
    histories = [s.history for s in splits]
    n_items = len(catalogue)
    targets = protocol.target_matrix(splits, n_items)

    with step(f"Fitting the recommender on {n_items} films and {len(train_ratings):,} training ratings"):
        fit = timed(lambda: ctx.build().fit(catalogue, ratings=train_ratings))
    model, eval_fit = fit.result, fit.wall_s
    with step(f"Recommending {K} films to {len(splits)} test users"):
        recs, _ = model.recommend_positions(histories, K)
    metrics = protocol.ranking_metrics(recs, splits, n_items, K, targets)
    metrics |= {
        "users_evaluated": float(len(splits)),
        "test_items": float(sum(len(s.test) for s in splits)),
        "training_ratings": float(len(train_ratings)),
        "eval_fit_seconds": eval_fit,
    }
    metrics |= {f"blend_{k}": v for k, v in model.weights_.items()}
    metrics |= {k: v for k, v in model.validation_.items()}

    summary = {"model": metrics[f"ndcg_at_{K}"]}
    for name, base in reference_recommenders(seed=ctx.spec.split.seed).items():
        with step(f"Baseline {name}", level=logging.DEBUG):
            base.fit(catalogue, ratings=train_ratings)
            brecs, _ = base.recommend_positions(histories, K)
        bm = protocol.ranking_metrics(brecs, splits, n_items, K, targets)
        metrics |= {f"baseline_{name}_{k}": v for k, v in bm.items()}
        summary[name] = bm[f"ndcg_at_{K}"]
    _plot(summary, ctx.artifact("ndcg_vs_baselines.png"))
    per_user = pd.DataFrame({"userId": [s.user for s in splits], "history": [len(s.history) for s in splits],
                             "test": [len(s.test) for s in splits],
                             "hits": targets[np.arange(len(splits))[:, None], recs].sum(axis=1)})
    per_user.to_csv(ctx.artifact("per_user_hits.csv"), index=False)

    final, fit_seconds = model, eval_fit
    if ctx.fit_final:
        with step(f"Fitting the final recommender on all {len(ratings):,} ratings"):
            fit = timed(lambda: ctx.build().fit(catalogue, ratings=ratings))
        final, fit_seconds = fit.result, fit.wall_s
    probe = catalogue["title"].astype(str).head(100).tolist()
    metrics["predict_ms_per_row"] = 1000 * timed(lambda: final.predict(probe)).wall_s / max(len(probe), 1)
    example = pd.DataFrame({"title": catalogue["title"].astype(str).head(3).tolist()})
    return Outcome(metrics=metrics, model=final, input_example=example, fit_seconds=fit_seconds,
                   X_test=catalogue, y_test=None)
