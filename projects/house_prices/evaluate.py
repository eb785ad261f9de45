"""house_prices evaluation: the generic protocol (``common.protocol``) plus explanation artifacts.

The ``artifacts`` hook explains the model fitted on the training part on the 20% holdout it never saw
(never on the out-of-fold rows that give the reported ``cv_rmsle``):

* ``permutation_importance.png``/``.csv``: the increase in RMSLE when each raw Kaggle column of the holdout
  is shuffled (``sklearn.inspection.permutation_importance`` on the whole pipeline, 3 shuffles);
* ``row_contributions.png``/``.csv``: for the holdout houses with the lowest, middle and highest predicted
  price, the change in predicted SalePrice when each raw column alone is set to its training median/mode.
"""

from __future__ import annotations

from common import explain
from common.console import step
from common.protocol import Context, Evaluation, EvaluationHooks

# Shuffles per column: 79 raw columns x 3 predictions of the 292 holdout rows cost about 5 CPU-seconds on
# the mirror (5 shuffles cost 9), enough for a readable spread at a small share of the run's time.
REPEATS = 3


def artifacts(ctx: Context, ev: Evaluation) -> None:
    """Permutation importances and per-house substitution contributions on the holdout."""
    with step("Explaining the model on the holdout (permutation importance, per-house contributions)"):
        explain.explain_tabular(ctx, ev, ev.model.predict, explain.rmsle_scorer(),
                                "increase in RMSLE when the raw column is shuffled", "predicted SalePrice",
                                fmt="{:,.0f}", repeats=REPEATS)


HOOKS = EvaluationHooks(artifacts=artifacts)
