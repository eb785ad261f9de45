"""spam evaluation: the generic protocol, plus the out-of-fold ham blocked rate."""

from __future__ import annotations

import numpy as np

from common import splits
from common.train import Context, Outcome, evaluate_supervised


def evaluate(ctx: Context) -> Outcome:
    """Generic CV + test evaluation; adds ``cv_ham_blocked_rate`` (share of ham flagged out of fold).

    It is exact algebra on the generic CV figures: with ``P`` spam rows, recall ``r`` and precision
    ``p``, the model flagged ``r*P`` spam correctly and ``r*P*(1-p)/p`` ham wrongly.
    """
    outcome = evaluate_supervised(ctx)
    m = outcome.metrics
    _, _, y_train, _ = splits.train_test(ctx.dataset, ctx.spec.split)
    positive = np.asarray(y_train) == ctx.spec.pos_label
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    p, r = m.get("cv_precision"), m.get("cv_recall")
    if p is not None and r is not None and p > 0 and n_neg:
        true_pos = r * n_pos
        m["cv_ham_blocked_rate"] = float(round(true_pos * (1 - p) / p) / n_neg)
    return outcome
