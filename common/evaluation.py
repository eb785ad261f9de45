"""Scoring with stable metric names, trivial baselines, and the standard plots.

Every project reports through ``score`` so the same name always means the same thing in the MLflow UI:
``rmse``, ``mae``, ``rmsle``, ``r2`` for regression; ``accuracy``, ``f1``, ``precision``, ``recall``,
``roc_auc``, ``pr_auc``, ``mcc``, ``brier`` for binary (positive class); ``accuracy``, ``f1_macro`` and
``f1_<class>``/``recall_<class>`` for multiclass.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn import metrics as skm
from sklearn.base import BaseEstimator
from sklearn.dummy import DummyClassifier, DummyRegressor

from common.spec import Task


def regression_scores(y_true: Any, y_pred: Any) -> dict[str, float]:
    """rmse, mae, r2, and rmsle (RMSE of log1p values, computed when every value is positive)."""
    yt = np.asarray(y_true, dtype=float)
    yp = np.asarray(y_pred, dtype=float)
    out = {
        "rmse": float(np.sqrt(np.mean((yt - yp) ** 2))),
        "mae": float(np.mean(np.abs(yt - yp))),
        "r2": float(skm.r2_score(yt, yp)) if len(yt) > 1 else float("nan"),
    }
    if (yt > -1).all() and (yp > -1).all():
        out["rmsle"] = float(np.sqrt(np.mean((np.log1p(yt) - np.log1p(yp)) ** 2)))
    return out


def binary_scores(y_true: Any, y_pred: Any, proba: Any | None = None, pos_label: Any = 1) -> dict[str, float]:
    """Scores of the positive class, plus ranking scores when probabilities are given."""
    yt = np.asarray(y_true)
    yp = np.asarray(y_pred)
    pos_t = yt == pos_label
    pos_p = yp == pos_label
    out = {
        "accuracy": float(np.mean(yt == yp)),
        "precision": float(skm.precision_score(pos_t, pos_p, zero_division=0)),
        "recall": float(skm.recall_score(pos_t, pos_p, zero_division=0)),
        "f1": float(skm.f1_score(pos_t, pos_p, zero_division=0)),
        "f1_macro": float(skm.f1_score(pos_t, pos_p, average="macro", zero_division=0)),
        "mcc": float(skm.matthews_corrcoef(pos_t, pos_p)) if len(np.unique(pos_t)) > 1 else 0.0,
    }
    if proba is not None and len(np.unique(pos_t)) > 1:
        p = np.asarray(proba, dtype=float)
        out["roc_auc"] = float(skm.roc_auc_score(pos_t, p))
        out["pr_auc"] = float(skm.average_precision_score(pos_t, p))
        out["brier"] = float(skm.brier_score_loss(pos_t, p))
    return out


def multiclass_scores(y_true: Any, y_pred: Any, labels: Sequence[Any] | None = None) -> dict[str, float]:
    """accuracy, f1_macro, and per-class f1/recall named ``f1_<class>``/``recall_<class>``."""
    yt = np.asarray(y_true)
    yp = np.asarray(y_pred)
    labels = list(labels) if labels is not None else sorted(set(yt.tolist()) | set(yp.tolist()), key=str)
    out = {
        "accuracy": float(np.mean(yt == yp)),
        "f1_macro": float(skm.f1_score(yt, yp, labels=labels, average="macro", zero_division=0)),
    }
    f1 = skm.f1_score(yt, yp, labels=labels, average=None, zero_division=0)
    rec = skm.recall_score(yt, yp, labels=labels, average=None, zero_division=0)
    for lab, f, r in zip(labels, f1, rec, strict=True):
        out[f"f1_{metric_safe(lab)}"] = float(f)
        out[f"recall_{metric_safe(lab)}"] = float(r)
    return out


def metric_safe(label: Any) -> str:
    """A class label as it may appear in a metric name."""
    text = str(label).strip().lower()
    return "".join(ch if ch.isalnum() or ch in "_-." else "_" for ch in text) or "empty"


def positive_proba(model: Any, X: Any, pos_label: Any) -> np.ndarray | None:
    """The positive-class column of ``predict_proba``, or None when the model has none."""
    if not hasattr(model, "predict_proba"):
        return None
    proba = np.asarray(model.predict_proba(X))
    classes = list(getattr(model, "classes_", [0, 1]))
    col = classes.index(pos_label) if pos_label in classes else proba.shape[1] - 1
    return proba[:, col]


def score_model(
    task: Task, model: Any, X: Any, y: Any, pos_label: Any = 1, labels: Sequence[Any] | None = None
) -> tuple[dict[str, float], np.ndarray, np.ndarray | None]:
    """Predict with ``model`` and score by task. Returns (metrics, predictions, positive-class proba)."""
    pred = np.asarray(model.predict(X))
    proba = positive_proba(model, X, pos_label) if task == "binary" else None
    return score(task, y, pred, proba, pos_label=pos_label, labels=labels), pred, proba


def score(
    task: Task,
    y_true: Any,
    y_pred: Any,
    proba: Any | None = None,
    pos_label: Any = 1,
    labels: Sequence[Any] | None = None,
) -> dict[str, float]:
    """Score predictions by task with the collection's stable metric names."""
    if task in ("regression", "forecast"):
        return regression_scores(y_true, y_pred)
    if task == "binary":
        return binary_scores(y_true, y_pred, proba, pos_label=pos_label)
    if task == "multiclass":
        return multiclass_scores(y_true, y_pred, labels)
    raise ValueError(f"no generic scores for task {task!r}; the project must evaluate itself")


def default_baselines(task: Task) -> dict[str, BaseEstimator]:
    """A trivial baseline beside every model: the median for regression, the majority class otherwise."""
    if task in ("regression", "forecast"):
        return {"median": DummyRegressor(strategy="median")}
    return {"majority": DummyClassifier(strategy="most_frequent")}
