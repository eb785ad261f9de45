"""The churn evaluation: the generic supervised protocol (``common.protocol``) plus churn's hooks.

1. ``parts``: stratified 5-fold CV over every labelled customer (``SplitSpec.cv_on="all"``) and a
   stratified 20% holdout; with both Kaggle files, CV on the training file and the given testing file as
   the test part (nothing is refitted on it).
2. ``on_fold``: each fold's model is fitted once, with ``model="auto"`` fitting both learners and heads
   for the logistic regression, the trees and their blend (their calibration and threshold come from the
   fold's *inner* folds). The hook keeps every candidate's out-of-fold probabilities and decisions and a
   per-fold row (inner choice, thresholds, inner and outer AUCs).
3. ``choose``: with ``model="auto"`` the winner by out-of-fold ROC-AUC among lr/gb/blend becomes the
   logged model (the test-part and final fits use ``model=<winner>``). A fold model's candidate gives the
   very predictions a ``model=<winner>`` pipeline fitted on the same rows gives (same inner folds, same
   learners and head), so the reported ``cv_*`` are the out-of-fold scores of the logged configuration.
   They carry a small selection optimism (the best of three correlated estimates); the fully nested
   alternative, which is what the protocol cross-validated (``ctx.build()`` with ``model="auto"``: each
   fold model choosing on its own inner folds), is kept as ``candidate_auto_cv_*``.
4. ``metrics``: profit per customer, contact rate, lift and gains out of fold and on the test part, the
   tuned thresholds, and the churn-rate shift between the parts with prior-adjusted scores.
5. ``artifacts``: calibration, gains and threshold plots, per-fold table, and explanations of the model
   fitted on the training part, on the test part (``common.explain``): permutation importance of the raw
   columns (drop in ROC-AUC) and per-customer single-column substitution contributions to the churn
   probability for the lowest, middle and highest scored customers.

Baselines (majority class, plain logistic regression) run on the same folds and test part (the protocol).
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from common import evaluation, explain
from common.console import step
from common.protocol import (
    Context,
    Evaluation,
    EvaluationHooks,
    Fold,
    Parts,
    Predictions,
    cv_metrics,
    default_parts,
)
from projects.churn import plots
from projects.churn.pipeline import THRESHOLD_GRID, churner_f1, retention_profit

log = logging.getLogger(__name__)
PRIMARY = "cv_roc_auc"
CANDIDATE_METRICS = ("roc_auc", "pr_auc", "f1", "brier")


def _economics(params: dict[str, Any]) -> dict[str, float]:
    return {"offer_cost": float(params["offer_cost"]), "churn_loss": float(params["churn_loss"]),
            "offer_success": float(params["offer_success"])}


# ------------------------------------------------------------------------------------------------ hooks
def parts(ctx: Context) -> Parts:
    """The Kaggle testing file when the dataset has it, otherwise the spec's stratified holdout."""
    ds = ctx.dataset
    if ds.X_test is not None and ds.y_test is not None:
        return Parts(ds.X, ds.X_test, ds.y, ds.y_test, ds.X, ds.y, test_name="testing file", refit_on_all=False)
    return dataclasses.replace(default_parts(ctx), test_name="holdout")


def on_fold(ctx: Context, fold: Fold, ev: Evaluation) -> None:
    """Every candidate's probabilities and decisions on the fold's validation rows, and a per-fold row."""
    clf = fold.model[-1]
    features = fold.model[:-1].transform(fold.X_valid)
    y_cv = np.asarray(ev.parts.y_cv)
    store = ev.info.setdefault("candidates", {})
    row: dict[str, Any] = {"fold": fold.index, "selected": clf.selected_, "threshold": clf.threshold_}
    for name in clf.heads_:
        kept = store.setdefault(name, {"proba": np.full(len(y_cv), np.nan), "pred": np.zeros(len(y_cv), y_cv.dtype)})
        kept["proba"][fold.valid_idx] = proba = clf.candidate_proba(features, name)
        kept["pred"][fold.valid_idx] = clf.candidate_predict(features, name)
        row[f"threshold_{name}"] = clf.thresholds_[name]
        row[f"inner_auc_{name}"] = clf.inner_auc_[name]
        row[f"auc_{name}"] = float(roc_auc_score(fold.y_valid == ctx.spec.pos_label, proba))
    if ctx.params["model"] == "auto":
        row["auc_auto"] = row[f"auc_{clf.selected_}"]
    ev.info.setdefault("folds", []).append(row)


def choose(ctx: Context, ev: Evaluation) -> dict[str, Any]:
    """``model="auto"``: the candidate with the best out-of-fold ROC-AUC; ``cv_*`` become its scores.

    Works around the protocol, whose ``cv_*`` describe ``ctx.build()`` (here the nested choice): those are
    moved to ``candidate_auto_cv_*``, and ``ev.cv`` and ``cv_*`` are replaced by the winner's out-of-fold
    predictions (see the module docstring for why they are the logged configuration's).
    """
    candidates = ev.info.get("candidates", {})
    ev.info["winner"] = ctx.params["model"]
    if ev.cv is None or ctx.params["model"] != "auto" or not candidates:
        return {}
    pos = ctx.spec.pos_label
    oof = {name: Predictions(ev.cv.y, kept["pred"], kept["proba"], ev.cv.fold) for name, kept in candidates.items()}
    scored = {name: cv_metrics("binary", p, PRIMARY, pos) for name, p in oof.items()}
    winner = max(scored, key=lambda name: scored[name][PRIMARY])
    scored["auto"] = dict(ev.metrics)
    for name, s in scored.items():
        for m in CANDIDATE_METRICS:
            ev.metrics[f"candidate_{name}_cv_{m}"] = s[f"cv_{m}"]
    ev.info |= {"winner": winner, "cv_nested_auto": ev.cv}
    ev.cv = oof[winner]
    ev.metrics |= scored[winner]
    log.info("churn CV ROC-AUC by candidate: %s; logged model: %s",
             {k: round(s[PRIMARY], 4) for k, s in scored.items()}, winner)
    return {"model": winner}


def metrics(ctx: Context, ev: Evaluation) -> dict[str, float]:
    """Business metrics out of fold (``cv_*``) and on the test part, thresholds and the prior shift."""
    econ, pos = _economics(ctx.params), ctx.spec.pos_label
    out: dict[str, float] = {}
    if ev.cv is not None and ev.cv.proba is not None:
        m = ev.cv.mask
        y, p, d = (ev.cv.y[m] == pos).astype(int), ev.cv.proba[m], (ev.cv.pred[m] == pos).astype(int)
        out["cv_profit_per_customer"] = retention_profit(y, d, **econ)
        out["cv_profit_contact_all"] = retention_profit(y, np.ones_like(y), **econ)
        out["cv_contact_rate"] = float(np.mean(d))
        out["cv_lift_at_10pct"] = plots.lift_at(y, p, 0.10)
        out["cv_gain_at_20pct"] = float(plots.gains(y, p)[1][int(round(0.2 * len(y)))])
        folds = pd.DataFrame(ev.info.get("folds", []))
        column = f"threshold_{ev.info['winner']}"
        if column in folds:
            out["cv_threshold_mean"] = float(folds[column].mean())
    y_te, d_te = (ev.test.y == pos).astype(int), (ev.test.pred == pos).astype(int)
    out["profit_per_customer"] = retention_profit(y_te, d_te, **econ)
    out["contact_rate"] = float(np.mean(d_te))
    out["lift_at_10pct"] = plots.lift_at(y_te, ev.test.proba, 0.10)
    y_tr = (np.asarray(ev.parts.y_train) == pos).astype(int)
    out |= shift_metrics(y_tr, y_te, ev.test.proba, ev.model[-1].threshold_)
    out["threshold"] = float(ev.final[-1].threshold_)
    return out


def artifacts(ctx: Context, ev: Evaluation) -> None:
    """Calibration, gains and threshold plots, the per-fold table, and the explanations on the test part."""
    params, pos = ctx.params, ctx.spec.pos_label
    winner, part = ev.info.get("winner", params["model"]), ev.parts.test_name
    y_te = (ev.test.y == pos).astype(int)
    curves = {part: (y_te, ev.test.proba)}
    if ev.cv is not None and ev.cv.proba is not None:
        m = ev.cv.mask
        y_cv, p_cv = (ev.cv.y[m] == pos).astype(int), ev.cv.proba[m]
        curves = {"out of fold (CV)": (y_cv, p_cv), **curves}
        pd.DataFrame(ev.info.get("folds", [])).to_csv(ctx.artifact("cv_folds.csv"), index=False)
        plots.calibration_table(y_cv, p_cv).to_csv(ctx.artifact("calibration_cv.csv"), index=False)
        econ = _economics(params)
        f1 = np.array([churner_f1(y_cv, p_cv >= t) for t in THRESHOLD_GRID])
        profit = np.array([retention_profit(y_cv, p_cv >= t, **econ) for t in THRESHOLD_GRID])
        chosen = {"logged model's threshold": float(ev.final[-1].threshold_),
                  "F1-best on CV predictions": float(THRESHOLD_GRID[np.argmax(f1)]),
                  "profit-best on CV predictions": float(THRESHOLD_GRID[np.argmax(profit)])}
        title = (f"churn: objective {params['objective']} (offer {econ['offer_cost']:g}, "
                 f"loss {econ['churn_loss']:g}, success {econ['offer_success']:g})")
        plots.plot_threshold(THRESHOLD_GRID, f1, profit, chosen, ctx.artifact("threshold.png"), title)
    plots.plot_calibration(curves, ctx.artifact("calibration.png"), f"churn: calibration ({winner})")
    share = float(np.mean(ev.cv.pred[ev.cv.mask] == pos)) if ev.cv is not None else None
    plots.plot_gains(curves, ctx.artifact("gains.png"), f"churn: cumulative gains ({winner})", threshold_share=share)
    with step("Explaining the model on the test part (permutation importance, per-customer contributions)"):
        importances = explain.explain_tabular(
            ctx, ev, lambda X: evaluation.positive_proba(ev.model, X, pos), "roc_auc",
            "drop in ROC-AUC when the raw column is shuffled", "churn probability", y_test=y_te)
    _tag({"churn.model": winner, "churn.objective": params["objective"], "churn.test_part": part,
          "churn.top_column": str(importances.iloc[0]["column"])})


HOOKS = EvaluationHooks(parts=parts, on_fold=on_fold, choose=choose, metrics=metrics, artifacts=artifacts)


# -------------------------------------------------------------------------------------------- helpers
def shift_metrics(y_train: np.ndarray, y_test: np.ndarray, proba: np.ndarray, threshold: float) -> dict[str, float]:
    """Churn rates of the two parts, the mean prediction, and scores after correcting for the prior shift.

    With a given testing file whose churn rate differs from training, calibrated probabilities are off by
    the prior ratio. Re-weighting the odds by (test rate / train rate) shows how much of the metric change
    is the shift alone (it uses the test churn rate, known only in hindsight: a diagnosis, not a model).
    """
    train_rate, test_rate = float(np.mean(y_train)), float(np.mean(y_test))
    out = {"train_churn_rate": train_rate, "test_churn_rate": test_rate, "test_mean_predicted": float(np.mean(proba))}
    if abs(train_rate - test_rate) > 0.005 and 0 < train_rate < 1 and 0 < test_rate < 1:
        odds = (proba / np.clip(1 - proba, 1e-9, None)) * (test_rate / (1 - test_rate)) / (train_rate / (1 - train_rate))
        adjusted = odds / (1 + odds)
        scores = evaluation.binary_scores(y_test, (adjusted >= threshold).astype(int), adjusted, 1)
        out |= {f"{k}_prior_adjusted": scores[k] for k in ("accuracy", "precision", "recall", "f1", "brier")}
    return out


def _tag(tags: dict[str, str]) -> None:
    import mlflow

    if mlflow.active_run() is not None:
        mlflow.set_tags(tags)
