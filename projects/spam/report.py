"""spam report: ham blocked rate, the learned threshold and model choice, and the top spam/ham n-grams."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd

from common import explain
from common.protocol import Context


def top_ngrams(model: Any, k: int = 30) -> pd.DataFrame:
    """The ``k`` n-grams with the largest spam and ham weights of the fitted pipeline's linear model."""
    names = model.named_steps["features"].get_feature_names_out()
    grams = explain.top_weights(names, model.named_steps["model"].coef(), ("ham", "spam"), k)
    return grams.rename(columns={"feature": "ngram"})[["class", "rank", "kind", "ngram", "weight"]]


def report(ctx: Context, model: Any, X_test: Any, y_test: Any) -> dict[str, float]:
    """Test ham blocked rate and spam caught, plus artifacts: ``top_ngrams.csv``/``.md``/``.png``, ``model_choice.json``."""
    clf = model.named_steps["model"]
    metrics: dict[str, float] = {"decision_threshold": float(clf.threshold_)}
    # Out-of-fold figures on the training rows that chose the threshold.
    metrics |= {f"inner_cv_{k.removeprefix('oof_')}": v for k, v in clf.oof_.items()}
    if X_test is not None and y_test is not None:
        y = np.asarray(y_test)
        pred = np.asarray(model.predict(X_test))
        ham = y != ctx.spec.pos_label
        metrics["ham_blocked_rate"] = float(np.mean(pred[ham] == ctx.spec.pos_label)) if ham.any() else 0.0
        metrics["ham_blocked"] = float(np.sum(pred[ham] == ctx.spec.pos_label))
        metrics["spam_missed"] = float(np.sum(pred[~ham] != ctx.spec.pos_label))
    grams = top_ngrams(model)
    grams.to_csv(ctx.artifact("top_ngrams.csv"), index=False)
    explain.plot_top_weights(grams.rename(columns={"ngram": "feature"}), ctx.artifact("top_ngrams.png"),
                             "spam: strongest n-gram weights of the linear model (final fit)")
    lines = ["| rank | spam n-gram | weight | ham n-gram | weight |", "|---:|---|---:|---|---:|"]
    spam, ham_rows = grams[grams["class"] == "spam"], grams[grams["class"] == "ham"]
    for (_, s), (_, h) in zip(spam.iterrows(), ham_rows.iterrows(), strict=False):
        lines.append(f"| {s['rank']} | `{s['kind']}: {s['ngram']!r}` | {s['weight']:.2f} "
                     f"| `{h['kind']}: {h['ngram']!r}` | {h['weight']:.2f} |")
    ctx.artifact("top_ngrams.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    choice = {"chosen": clf.chosen_, "inner_cv_average_precision": clf.cv_average_precision_,
              "threshold": clf.threshold_, "out_of_fold": clf.oof_}
    ctx.artifact("model_choice.json").write_text(json.dumps(choice, indent=2), encoding="utf-8")
    return metrics
