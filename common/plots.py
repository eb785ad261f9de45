"""Plots as PNG files, drawn on ``matplotlib.figure.Figure`` objects.

No pyplot and no backend switch: a ``Figure`` renders to a file by itself, so training from a notebook
or a GUI session leaves the user's matplotlib backend and open figures alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sklearn import metrics as skm


def subplots(nrows: int = 1, ncols: int = 1, figsize: tuple[float, float] = (6.4, 4.8), **kwargs: Any) -> tuple[Any, Any]:
    """A new ``Figure`` and its axes, like ``pyplot.subplots`` but registered with no pyplot state."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    axes = fig.subplots(nrows, ncols, **kwargs)
    return fig, axes


def save(fig: Any, path: Path, dpi: int = 110) -> Path:
    """Lay out ``fig`` and write it to ``path`` (the format follows the suffix)."""
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    return path


def regression(y_true: Any, y_pred: Any, path: Path, title: str, log_scale: bool = False) -> Path:
    """Predicted-vs-actual scatter and residual histogram in one PNG."""
    yt = np.asarray(y_true, dtype=float)
    yp = np.asarray(y_pred, dtype=float)
    fig, axes = subplots(1, 2, figsize=(11, 4.5))
    ax = axes[0]
    ax.scatter(yt, yp, s=6, alpha=0.5)
    lo, hi = float(min(yt.min(), yp.min())), float(max(yt.max(), yp.max()))
    ax.plot([lo, hi], [lo, hi], color="black", lw=1)
    if log_scale and lo > 0:
        ax.set_xscale("log")
        ax.set_yscale("log")
    ax.set_xlabel("actual")
    ax.set_ylabel("predicted")
    ax.set_title(f"{title}: predicted vs actual")
    resid = np.log(yp / yt) if log_scale and lo > 0 else yp - yt
    axes[1].hist(resid, bins=50)
    axes[1].set_xlabel("log(predicted / actual)" if log_scale and lo > 0 else "predicted - actual")
    axes[1].set_title("residuals")
    return save(fig, path)


def confusion(y_true: Any, y_pred: Any, path: Path, title: str, labels: Sequence[Any] | None = None) -> Path:
    """Confusion matrix with counts and row-normalised shading."""
    yt, yp = np.asarray(y_true), np.asarray(y_pred)
    labels = list(labels) if labels is not None else sorted(set(yt.tolist()) | set(yp.tolist()), key=str)
    cm = skm.confusion_matrix(yt, yp, labels=labels)
    norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    size = max(4.0, 0.55 * len(labels) + 2.5)
    fig, ax = subplots(figsize=(size, size))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(labels)):
        for j in range(len(labels)):
            ax.text(j, i, str(cm[i, j]), ha="center", va="center", color="white" if norm[i, j] > 0.5 else "black")
    ax.set_xticks(range(len(labels)), [str(lab) for lab in labels], rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), [str(lab) for lab in labels])
    ax.set_xlabel("predicted")
    ax.set_ylabel("actual")
    ax.set_title(title)
    return save(fig, path)


def roc_pr(y_true: Any, proba: Any, path: Path, title: str, pos_label: Any = 1) -> Path:
    """ROC and precision-recall curves of the positive class."""
    pos = np.asarray(y_true) == pos_label
    fpr, tpr, _ = skm.roc_curve(pos, proba)
    prec, rec, _ = skm.precision_recall_curve(pos, proba)
    fig, axes = subplots(1, 2, figsize=(10, 4.5))
    axes[0].plot(fpr, tpr)
    axes[0].plot([0, 1], [0, 1], color="grey", lw=0.8, ls="--")
    axes[0].set_xlabel("false positive rate")
    axes[0].set_ylabel("true positive rate")
    axes[0].set_title(f"ROC (AUC {skm.roc_auc_score(pos, proba):.3f})")
    axes[1].plot(rec, prec)
    axes[1].axhline(pos.mean(), color="grey", lw=0.8, ls="--")
    axes[1].set_xlabel("recall")
    axes[1].set_ylabel("precision")
    axes[1].set_title(f"precision-recall (AP {skm.average_precision_score(pos, proba):.3f})")
    fig.suptitle(title)
    return save(fig, path)
