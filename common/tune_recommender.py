"""The recommender's tuning objective: validation periods carved out of the training ratings only.

The recommender's protocol (``projects/recommender/protocol.py``) holds out, for every eligible user, the
last 20% of their likes in time and drops everything they rated from then on. Tuning repeats the same split
*inside what is left* (``training_ratings``): each user's pre-test likes are split again 80/20 in time, the
model is fitted on the ratings before those validation periods, and NDCG@10 is measured on the validation
films. Test films, and anything rated in a test period, are never read while tuning.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from common.errors import DataError

if TYPE_CHECKING:
    from common.datasets import Dataset
    from common.registry import Project
    from common.tune import TuneData

#: Users are scored in this many groups, reported one by one so the pruner can stop a bad trial early.
USER_GROUPS = 5


def recommender_tune_data(project: Project, ds: Dataset) -> TuneData:
    """Validation users' NDCG@10 with the model fitted on ratings before their validation periods.

    Both reported protocols' test data are removed first: every rating from the global cutoff T on (the
    primary, time-split protocol) and every per-user test period (the secondary protocol). Inside what is
    left, each user's last 20% of likes (``user_splits``) is the validation period, the way the model's own
    blend search carves its validation users (``tune_split="per_user"``), and scored with the same exclusion
    of already-rated films as the protocol.
    """
    from common.tune import FOLD_SEED_OFFSET, TuneData
    from projects.recommender import protocol
    from projects.recommender.evaluate import LIKE_THRESHOLD, MIN_HISTORY, MIN_LIKED, TEST_FRACTION, K

    catalogue, ratings = ds.X, ds.extras.get("ratings")
    if ratings is None or len(ratings) == 0:
        raise DataError("Tuning the recommender needs MovieLens ratings; load it with with_ratings=True.")
    id_pos = {int(i): p for p, i in enumerate(catalogue["id"].to_numpy())}
    split = protocol.tuning_protocol(ratings, id_pos, LIKE_THRESHOLD, MIN_LIKED, TEST_FRACTION, MIN_HISTORY)
    inner, fit_ratings = split.users, split.train
    if not inner:
        raise DataError(f"No user has {MIN_LIKED} liked films before the test data: nothing to tune on.")
    histories = [s.history for s in inner]
    excludes = [s.exclude for s in inner]
    n_items = len(catalogue)
    targets = protocol.target_matrix(inner, n_items)
    rng = np.random.default_rng(project.spec.split.seed + FOLD_SEED_OFFSET)
    groups = np.array_split(rng.permutation(len(inner)), min(USER_GROUPS, len(inner)))

    def score(params: Mapping[str, Any], report: Callable[[int, float], None]) -> float:
        model = project.build(params).fit(catalogue, ratings=fit_ratings)
        recs, _ = model.recommend_positions(histories, K, excludes)
        for i, g in enumerate(groups):
            m = protocol.ranking_metrics(recs[g], [inner[j] for j in g], n_items, K, targets[g])
            report(i, m[f"ndcg_at_{K}"])
        return float(protocol.ranking_metrics(recs, inner, n_items, K, targets)[f"ndcg_at_{K}"])

    return TuneData(f"NDCG@{K} of {len(inner)} users' validation periods (before every test period of both "
                    f"protocols), fitted on {len(fit_ratings):,} ratings", len(groups), score, rows=fit_ratings.index)
