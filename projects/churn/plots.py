"""Churn figures: reliability (calibration) diagram, cumulative gains with lift, threshold curves.

Drawn on ``common.plots`` Figures (no pyplot, no backend switch).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from common import plots


def calibration_table(y: np.ndarray, proba: np.ndarray, bins: int = 10) -> pd.DataFrame:
    """Mean predicted probability vs observed churn rate in equal-count bins of the prediction."""
    order = np.argsort(proba, kind="stable")
    groups = np.array_split(order, bins)
    return pd.DataFrame({
        "mean_predicted": [float(proba[g].mean()) for g in groups],
        "observed_rate": [float(y[g].mean()) for g in groups],
        "rows": [len(g) for g in groups],
    })


def plot_calibration(curves: Mapping[str, tuple[np.ndarray, np.ndarray]], path: Path, title: str) -> Path:
    """Reliability diagram (equal-count bins) plus the distribution of predicted probabilities."""
    fig, axes = plots.subplots(1, 2, figsize=(11, 4.5))
    axes[0].plot([0, 1], [0, 1], color="grey", lw=0.8, ls="--", label="perfect")
    for label, (y, proba) in curves.items():
        table = calibration_table(np.asarray(y), np.asarray(proba))
        axes[0].plot(table["mean_predicted"], table["observed_rate"], marker="o", label=label)
        axes[1].hist(proba, bins=40, range=(0, 1), histtype="step", density=True, label=label)
    axes[0].set_xlabel("mean predicted churn probability (decile)")
    axes[0].set_ylabel("observed churn rate")
    axes[0].set_title("calibration")
    axes[0].legend(loc="upper left")
    axes[1].set_xlabel("predicted churn probability")
    axes[1].set_ylabel("density")
    axes[1].set_title("predictions")
    axes[1].legend()
    fig.suptitle(title)
    return plots.save(fig, path)


def gains(y: np.ndarray, proba: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative gains: share of customers contacted (riskiest first) vs share of churners reached."""
    order = np.argsort(-np.asarray(proba), kind="stable")
    hits = np.cumsum(np.asarray(y)[order])
    share = np.arange(1, len(order) + 1) / len(order)
    return np.r_[0.0, share], np.r_[0.0, hits / max(hits[-1], 1)]


def lift_at(y: np.ndarray, proba: np.ndarray, fraction: float) -> float:
    """How many times the base churn rate the riskiest ``fraction`` of customers churn at."""
    share, reached = gains(y, proba)
    k = max(1, int(round(fraction * len(y))))
    return float(reached[k] / share[k])


def plot_gains(curves: Mapping[str, tuple[np.ndarray, np.ndarray]], path: Path, title: str,
               threshold_share: float | None = None) -> Path:
    """Cumulative-gains chart and lift curve; the chosen threshold's contact share is marked."""
    fig, axes = plots.subplots(1, 2, figsize=(11, 4.5))
    for label, (y, proba) in curves.items():
        share, reached = gains(np.asarray(y), np.asarray(proba))
        axes[0].plot(share, reached, label=label)
        lift = np.divide(reached[1:], share[1:])
        axes[1].plot(share[1:], lift, label=label)
    first = next(iter(curves.values()))
    rate = float(np.mean(first[0]))
    axes[0].plot([0, rate, 1], [0, 1, 1], color="black", lw=0.8, ls=":", label="perfect")
    axes[0].plot([0, 1], [0, 1], color="grey", lw=0.8, ls="--", label="random")
    axes[1].axhline(1.0, color="grey", lw=0.8, ls="--")
    if threshold_share is not None:
        for ax in axes:
            ax.axvline(threshold_share, color="red", lw=0.8, ls="-.", label="chosen threshold")
    axes[0].set_xlabel("share of customers contacted (highest risk first)")
    axes[0].set_ylabel("share of churners reached")
    axes[0].set_title("cumulative gains")
    axes[0].legend(loc="lower right")
    axes[1].set_xlabel("share of customers contacted")
    axes[1].set_ylabel("lift (churn rate / base rate)")
    axes[1].set_title("lift")
    axes[1].set_xlim(0.01, 1)
    fig.suptitle(title)
    return plots.save(fig, path)


def plot_threshold(grid: np.ndarray, f1: np.ndarray, profit: np.ndarray, chosen: Mapping[str, float],
                   path: Path, title: str) -> Path:
    """Churner F1 and expected profit per customer across thresholds (out of fold), choices marked."""
    fig, ax = plots.subplots(figsize=(7.5, 4.5))
    ax.plot(grid, f1, color="tab:blue", label="churner F1")
    ax.set_xlabel("decision threshold on the calibrated churn probability")
    ax.set_ylabel("F1 of churners", color="tab:blue")
    right = ax.twinx()
    right.plot(grid, profit, color="tab:green", label="profit per customer")
    right.axhline(0, color="grey", lw=0.6)
    right.set_ylabel("expected profit per customer", color="tab:green")
    styles = iter([("red", "-"), ("tab:blue", ":"), ("tab:green", ":"), ("grey", "--")])
    for label, t in chosen.items():
        color, ls = next(styles, ("grey", "--"))
        ax.axvline(t, ls=ls, lw=1.2, color=color, label=f"{label}: {t:.3f}")
    handles = ax.get_legend_handles_labels()[0] + right.get_legend_handles_labels()[0]
    ax.legend(handles=handles, loc="upper right", fontsize=8)
    ax.set_title(title)
    return plots.save(fig, path)
