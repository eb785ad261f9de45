"""sentiment report: the strongest n-grams and lexicon features per class, as an artifact."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from common.protocol import Context


def top_features(model: Any, k: int = 25) -> pd.DataFrame:
    """The ``k`` largest one-vs-rest weights per class (empty when the model has no linear weights)."""
    clf = model.named_steps["model"]
    if not hasattr(clf, "coef_"):
        return pd.DataFrame(columns=["class", "rank", "kind", "feature", "weight"])
    names = np.asarray(model.named_steps["features"].get_feature_names_out(), dtype=object)
    rows = []
    for label, coef in zip(clf.classes_, np.atleast_2d(clf.coef_), strict=True):
        for rank, i in enumerate(np.argsort(coef)[::-1][:k], 1):
            kind, _, feature = str(names[i]).partition("__")
            rows.append({"class": label, "rank": rank, "kind": kind, "feature": feature, "weight": float(coef[i])})
    return pd.DataFrame(rows)


def report(ctx: Context, model: Any, X_test: Any, y_test: Any) -> dict[str, float]:
    """Writes ``top_features.csv``; adds no metrics (accuracy, macro-F1 and per-class F1 are generic)."""
    top_features(model).to_csv(ctx.artifact("top_features.csv"), index=False)
    return {}
