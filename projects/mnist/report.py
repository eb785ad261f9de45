"""The mnist report: the most confidently misclassified test digits, and what each model learned.

The generic path already logs accuracy, macro-F1, per-digit recall and F1 (``recall_<digit>``) and the
confusion matrix; this adds the image grid of the worst mistakes, the most confused digit pairs
(``confused_pairs.png``/``.csv``, with example images in ``confused_examples.png``) and model-specific
figures. All of them come from the model fitted on the 60k training file, predicting the 10k test file.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np

from common import explain
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


def plot_pair_examples(images: np.ndarray, y_true: np.ndarray, y_pred: np.ndarray, pairs: Any, path: Any,
                       title: str, per_pair: int = 6) -> Path:
    """One row per confused (true, predicted) pair: up to ``per_pair`` of its test images."""
    from common import plots

    pairs = pairs.head(5)
    fig, axes = plots.subplots(max(len(pairs), 1), per_pair, figsize=(per_pair * 1.3, max(len(pairs), 1) * 1.5),
                               squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for r, (t, p, count) in enumerate(zip(pairs["true"], pairs["predicted"], pairs["count"], strict=True)):
        idx = np.flatnonzero((y_true == t) & (y_pred == p))[:per_pair]
        for c, i in enumerate(idx):
            axes[r, c].imshow(images[i], cmap="gray_r", vmin=0, vmax=255)
        axes[r, 0].set_title(f"true {t} → {p} ({count}x)", fontsize=8, loc="left")
    fig.suptitle(title, fontsize=10)
    return plots.save(fig, path, dpi=100)


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
        # The confusions of the model fitted on the training file, on the test file it never saw.
        pairs = explain.confused_pairs(y_true, y_pred, k=10)
        pairs.to_csv(ctx.artifact("confused_pairs.csv"), index=False)
        explain.plot_confused_pairs(pairs, ctx.artifact("confused_pairs.png"),
                                    f"{label}: most confused digit pairs on the test file ({len(wrong)} errors)")
        if len(pairs):
            plot_pair_examples(images, y_true, y_pred, pairs, ctx.artifact("confused_examples.png"),
                               f"{label}: test digits of the most confused pairs")
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
