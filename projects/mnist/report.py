"""The mnist report: the most confidently misclassified test digits, and what each model learned.

The generic path already logs accuracy, macro-F1, per-digit recall and F1 (``recall_<digit>``) and the
confusion matrix; this adds the image grid of the worst mistakes and model-specific figures.
"""

from __future__ import annotations

import csv
from typing import Any

import numpy as np

from common.protocol import Context
from projects.mnist.features import as_images


def confidence(model: Any, X: Any) -> tuple[np.ndarray, np.ndarray, str]:
    """(predicted class, confidence, what the confidence is) from probabilities or decision scores."""
    classes = np.asarray(model.classes_)
    if hasattr(model, "predict_proba"):
        scores, kind = np.asarray(model.predict_proba(X)), "probability"
    else:
        scores, kind = np.asarray(model.decision_function(X)), "SVM score"
    best = np.argmax(scores, axis=1)
    return classes[best], scores[np.arange(len(best)), best], kind


def plot_mistakes(images: np.ndarray, y_true: np.ndarray, y_pred: np.ndarray, conf: np.ndarray, kind: str,
                  path: Any, title: str, n: int = 25) -> int:
    """A grid of the ``n`` misclassified images the model was most sure about; returns how many it drew."""
    from common import plots

    wrong = np.flatnonzero(y_pred != y_true)
    worst = wrong[np.argsort(-conf[wrong], kind="stable")][:n]
    cols = 5
    rows = max(1, int(np.ceil(len(worst) / cols)))
    fig, axes = plots.subplots(rows, cols, figsize=(cols * 1.9, rows * 2.1))
    for ax in np.atleast_1d(axes).ravel():
        ax.axis("off")
    for ax, i in zip(np.atleast_1d(axes).ravel(), worst, strict=False):
        ax.imshow(images[i], cmap="gray_r", vmin=0, vmax=255)
        ax.set_title(f"true {y_true[i]} -> {y_pred[i]}\n{conf[i]:.3g}", fontsize=9)
    fig.suptitle(f"{title}: most confident mistakes ({kind}); {len(wrong)} errors in {len(y_true)}", fontsize=10)
    plots.save(fig, path, dpi=100)
    return len(worst)


def report(ctx: Context, model: Any, X_test: Any, y_test: Any) -> dict[str, float]:
    """Mistake grid and table, plus model-specific figures (early-stopping round, support vectors, epochs)."""
    out: dict[str, float] = {}
    inner = model.named_steps.get("model") if hasattr(model, "named_steps") else model
    if X_test is not None and y_test is not None:
        images = as_images(X_test)
        y_true = np.asarray(y_test)
        y_pred, conf, kind = confidence(model, X_test)
        label = f"mnist {ctx.params.get('model', '')}".strip()
        plot_mistakes(images, y_true, y_pred, conf, kind, ctx.artifact("misclassified.png"), label)
        wrong = np.flatnonzero(y_pred != y_true)
        with open(ctx.artifact("misclassified.csv"), "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["test_index", "true", "predicted", kind.replace(" ", "_")])
            for i in wrong[np.argsort(-conf[wrong], kind="stable")]:
                writer.writerow([int(i), int(y_true[i]), int(y_pred[i]), f"{conf[i]:.6g}"])
        out["test_errors"] = float(len(wrong))
    if hasattr(inner, "best_iteration_"):
        out["xgb_best_round"] = float(inner.best_iteration_ + 1)
    if hasattr(inner, "svm_"):
        out["svm_support_vectors"] = float(inner.svm_.support_vectors_.shape[0])
    if hasattr(inner, "epoch_seconds_"):
        seconds = inner.epoch_seconds_
        out["cnn_seconds_per_epoch"] = float(np.mean(seconds)) if seconds else float("nan")
        with open(ctx.artifact("cnn_history.csv"), "w", newline="") as fh:
            writer = csv.writer(fh)
            keys = list(inner.history_)
            writer.writerow(["epoch", "seconds", *keys])
            for e, secs in enumerate(seconds):
                writer.writerow([e + 1, f"{secs:.2f}", *(f"{inner.history_[k][e]:.5f}" for k in keys)])
    return out
