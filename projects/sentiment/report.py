"""sentiment report: the strongest n-grams and lexicon features per class, as a table and a plot.

The weights are read from the logged model (``common.explain.top_weights``, shared with spam): they show
what it learned, not a score, so no held-out rows are involved.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from common import explain
from common.protocol import Context


def top_features(model: Any, k: int = 25) -> pd.DataFrame:
    """The ``k`` largest one-vs-rest weights per class (empty when the model has no linear weights)."""
    clf = model.named_steps["model"]
    if not hasattr(clf, "coef_"):
        return pd.DataFrame(columns=["class", "rank", "kind", "feature", "weight"])
    names = model.named_steps["features"].get_feature_names_out()
    return explain.top_weights(names, clf.coef_, clf.classes_, k)


def report(ctx: Context, model: Any, X_test: Any, y_test: Any) -> dict[str, float]:
    """Writes ``top_features.csv`` and ``top_ngrams.png``; adds no metrics (the scores are generic)."""
    table = top_features(model)
    table.to_csv(ctx.artifact("top_features.csv"), index=False)
    if len(table):
        explain.plot_top_weights(table, ctx.artifact("top_ngrams.png"),
                                 "sentiment: strongest n-gram and lexicon weights per class (one-vs-rest)")
    return {}
