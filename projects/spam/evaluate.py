"""spam evaluation: the generic protocol, plus the share of ham the filter blocks out of fold."""

from __future__ import annotations

import numpy as np

from common.protocol import Context, Evaluation, EvaluationHooks


def ham_blocked(ctx: Context, ev: Evaluation) -> dict[str, float]:
    """``cv_ham_blocked_rate``: the share of training ham flagged as spam by the out-of-fold predictions."""
    if ev.cv is None:
        return {}
    m = ev.cv.mask
    pos = ctx.spec.pos_label
    ham = ev.cv.y[m] != pos
    if not ham.any():
        return {}
    return {"cv_ham_blocked_rate": float(np.mean(ev.cv.pred[m][ham] == pos))}


HOOKS = EvaluationHooks(metrics=ham_blocked)
