"""The churn evaluation protocol.

1. Stratified 5-fold CV over every labelled customer (``SplitSpec.cv_on="all"``; the Kaggle training file
   when both Kaggle files exist). Each fold fits the whole pipeline on its training part, which chooses
   calibration and the decision threshold on *inner* folds, so every out-of-fold decision is honest.
   With ``model="auto"`` each fold fits both learners, and the logistic regression, the trees and their
   blend are all scored on the same outer folds; the winner by CV ROC-AUC becomes the logged model. Its
   numbers carry a small selection optimism (the best of three correlated estimates), so the fully nested
   alternative (the model choosing among the three on its inner folds) is logged beside it as
   ``candidate_auto_cv_*``.
2. A test part: the dataset's own testing file when it has one (Kaggle with both files), otherwise a
   stratified 20% holdout. The model fitted on the rest scores it and gives the permutation importances.
3. Baselines (majority class, plain logistic regression) on the same folds and the same test part.
4. The logged model is refitted on all rows (not on a given testing file).
"""

from __future__ import annotations

import functools
import logging
import time
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.metrics import roc_auc_score

from common import evaluation, splits
from common.console import step
from common.protocol import Context, Outcome, cv_metrics
from common.protocol import cross_val_predict as cross_val_oof  # TEMPORARY: being ported to hooks
from projects.churn import plots
from projects.churn.pipeline import (
    CANDIDATES,
    THRESHOLD_GRID,
    baselines,
    choose_threshold,
    f1_curve,
    profit_per_customer,
)

log = logging.getLogger(__name__)
PRIMARY = "cv_roc_auc"


def _economics(params: dict[str, Any]) -> tuple[float, float, float]:
    return float(params["offer_cost"]), float(params["churn_loss"]), float(params["offer_success"])


def decision_profit(decisions: np.ndarray, y: np.ndarray, params: dict[str, Any]) -> float:
    """Expected profit per customer of contacting the customers flagged as churners."""
    cost, loss, success = _economics(params)
    gain = np.where(y == 1, success * loss, 0.0) - cost
    return float(np.mean((decisions == 1) * gain))


def cross_validate(ctx: Context, X: Any, y: Any, splitter: Any) -> dict[str, Any]:
    """Out-of-fold probabilities and decisions of every candidate (and of the nested choice)."""
    y_arr = np.asarray(y)
    n = len(y_arr)
    names = list(CANDIDATES) if ctx.params["model"] == "auto" else [ctx.params["model"]]
    keys = names + (["auto"] if ctx.params["model"] == "auto" else [])
    proba = {k: np.full(n, np.nan) for k in keys}
    pred = {k: np.zeros(n, dtype=y_arr.dtype) for k in keys}
    fold = np.full(n, -1)
    rows = []
    for i, (tr, va) in enumerate(splitter.split(np.zeros(n), y_arr)):
        with step(f"CV churn: fold {i + 1}/{splitter.get_n_splits()}"):
            model = ctx.build().fit(splits.take(X, tr), y_arr[tr])
        features = model[:-1].transform(splits.take(X, va))
        clf = model[-1]
        for name in names:
            proba[name][va] = clf.candidate_proba(features, name)
            pred[name][va] = clf.candidate_predict(features, name)
        if "auto" in keys:
            proba["auto"][va] = clf.candidate_proba(features)
            pred["auto"][va] = clf.candidate_predict(features)
        fold[va] = i
        rows.append({"fold": i, "selected": clf.selected_, "threshold": clf.threshold_,
                     **{f"threshold_{k}": v for k, v in clf.thresholds_.items()},
                     **{f"inner_auc_{k}": v for k, v in clf.inner_auc_.items()},
                     **{f"auc_{k}": roc_auc_score(y_arr[va], proba[k][va]) for k in keys}})
    return {"names": names, "proba": proba, "pred": pred, "fold": fold, "folds": pd.DataFrame(rows)}


def evaluate(ctx: Context) -> Outcome:
    """Run the protocol above; see the module docstring."""
    spec, ds, params = ctx.spec, ctx.dataset, ctx.params
    split = spec.split
    given = ds.X_test is not None and ds.y_test is not None
    if given:
        X_tr, X_te, y_tr, y_te = ds.X, ds.X_test, ds.y, ds.y_test
        X_cv, y_cv = ds.X, ds.y
    else:
        X_tr, X_te, y_tr, y_te = splits.train_test(ds, split)
        X_cv, y_cv = (ds.X, ds.y) if split.cv_on == "all" else (X_tr, y_tr)
    y_cv_arr, y_te_arr = np.asarray(y_cv), np.asarray(y_te)
    metrics: dict[str, float] = {}
    splitter = splits.cv_splitter(split)

    # 1. cross-validation of the candidates (one set of fits) -----------------------------------------
    t0 = time.perf_counter()
    cv = cross_validate(ctx, X_cv, y_cv, splitter)
    cv_seconds = time.perf_counter() - t0
    scored = {k: cv_metrics("binary", y_cv_arr, cv["pred"][k], cv["proba"][k], cv["fold"], PRIMARY, 1)
              for k in cv["proba"]}
    names = cv["names"]
    winner = max(names, key=lambda k: scored[k][PRIMARY])
    metrics |= scored[winner]
    if params["model"] == "auto":
        for k, s in scored.items():
            for m in ("roc_auc", "pr_auc", "f1", "brier"):
                metrics[f"candidate_{k}_cv_{m}"] = s[f"cv_{m}"]
    oof_p, oof_d = cv["proba"][winner], cv["pred"][winner]
    metrics["cv_profit_per_customer"] = decision_profit(oof_d, y_cv_arr, params)
    metrics["cv_profit_contact_all"] = decision_profit(np.ones_like(y_cv_arr), y_cv_arr, params)
    metrics["cv_contact_rate"] = float(np.mean(oof_d == 1))
    metrics["cv_lift_at_10pct"] = plots.lift_at(y_cv_arr, oof_p, 0.10)
    metrics["cv_gain_at_20pct"] = float(plots.gains(y_cv_arr, oof_p)[1][int(round(0.2 * len(y_cv_arr)))])
    metrics["cv_seconds"] = cv_seconds
    folds = cv["folds"]
    metrics["cv_threshold_mean"] = float(folds[f"threshold_{winner}"].mean())
    folds.to_csv(ctx.artifact("cv_folds.csv"), index=False)
    log.info("churn CV ROC-AUC by candidate: %s; logged model: %s",
             {k: round(s[PRIMARY], 4) for k, s in scored.items()}, winner)

    # 2. baselines on the same folds ------------------------------------------------------------------
    bases = baselines()
    for name, est in bases.items():
        bp, bpr, bf = cross_val_oof(functools.partial(clone, est), X_cv, y_cv, splitter, "binary", 1, label=name)
        metrics |= cv_metrics("binary", y_cv_arr, bp, bpr, bf, PRIMARY, 1, prefix=f"baseline_{name}_cv_")

    # 3. the test part --------------------------------------------------------------------------------
    overrides = {"model": winner} if params["model"] == "auto" else {}
    with step(f"Fitting churn ({winner}) on the training part ({splits.n_rows(X_tr)} rows)"):
        t0 = time.perf_counter()
        model = ctx.build(**overrides).fit(X_tr, y_tr)
        train_fit = time.perf_counter() - t0
    t0 = time.perf_counter()
    test_metrics, pred, proba = evaluation.score_model("binary", model, X_te, y_te, 1)
    metrics["predict_ms_per_row"] = 1000 * (time.perf_counter() - t0) / max(splits.n_rows(X_te), 1)
    metrics |= test_metrics
    metrics["profit_per_customer"] = decision_profit(np.asarray(pred), y_te_arr, params)
    metrics["contact_rate"] = float(np.mean(np.asarray(pred) == 1))
    metrics["lift_at_10pct"] = plots.lift_at(y_te_arr, proba, 0.10)
    metrics |= _shift_metrics(np.asarray(y_tr), y_te_arr, proba, model[-1].threshold_)
    for name, est in bases.items():
        fitted = clone(est).fit(X_tr, y_tr)
        bm, _, _ = evaluation.score_model("binary", fitted, X_te, y_te, 1)
        metrics |= {f"baseline_{name}_{k}": v for k, v in bm.items()}

    part = "testing file" if given else "holdout"
    evaluation.plot_confusion(y_te, pred, ctx.artifact("confusion_matrix.png"), f"churn ({part})")
    evaluation.plot_roc_pr(y_te, proba, ctx.artifact("roc_pr.png"), f"churn ({part})", 1)
    curves = {"out of fold (CV)": (y_cv_arr, oof_p), part: (y_te_arr, proba)}
    plots.plot_calibration(curves, ctx.artifact("calibration.png"), f"churn: calibration ({winner})")
    plots.calibration_table(y_cv_arr, oof_p).to_csv(ctx.artifact("calibration_cv.csv"), index=False)
    plots.plot_gains(curves, ctx.artifact("gains.png"), f"churn: cumulative gains ({winner})",
                     threshold_share=metrics["cv_contact_rate"])
    with step("Permutation importances of the raw columns"):
        importances = raw_importances(model, X_te, y_te_arr)
    importances.to_csv(ctx.artifact("permutation_importance.csv"), index=False)
    plots.plot_importances(importances, ctx.artifact("permutation_importance.png"),
                           f"churn: permutation importance on the {part}")

    # 4. the logged model -----------------------------------------------------------------------------
    final, fit_seconds = model, train_fit
    if ctx.fit_final and split.refit_on == "all" and not given:
        with step(f"Fitting the final churn model ({winner}) on all {ds.rows} labelled rows"):
            t0 = time.perf_counter()
            final = ctx.build(**overrides).fit(ds.X, ds.y)
            fit_seconds = time.perf_counter() - t0
    clf = final[-1]
    metrics["threshold"] = float(clf.threshold_)
    cost, loss, success = _economics(params)
    chosen = {"logged model's threshold": clf.threshold_,
              "F1 rule on CV predictions": choose_threshold(oof_p, y_cv_arr, "f1"),
              "profit-best on CV predictions": choose_threshold(oof_p, y_cv_arr, "profit", cost, loss, success)}
    plots.plot_threshold(THRESHOLD_GRID, f1_curve(oof_p, y_cv_arr, THRESHOLD_GRID),
                         profit_per_customer(oof_p, y_cv_arr, THRESHOLD_GRID, cost, loss, success), chosen,
                         ctx.artifact("threshold.png"),
                         f"churn: objective {params['objective']} (offer {cost:g}, loss {loss:g}, success {success:g})")
    _tag({"churn.model": winner, "churn.objective": params["objective"], "churn.test_part": part,
          "churn.top_column": str(importances.iloc[0]["column"])})
    return Outcome(metrics=metrics, model=final, input_example=splits.take(X_tr, np.arange(min(5, splits.n_rows(X_tr)))),
                   fit_seconds=fit_seconds, X_test=X_te, y_test=y_te)


def _shift_metrics(y_train: np.ndarray, y_test: np.ndarray, proba: np.ndarray, threshold: float) -> dict[str, float]:
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


def raw_importances(model: Any, X: pd.DataFrame, y: np.ndarray, max_rows: int = 4000, repeats: int = 5,
                    seed: int = 0) -> pd.DataFrame:
    """Permutation importance of each raw input column: the drop in ROC-AUC when it is shuffled.

    Same definition as ``sklearn.inspection.permutation_importance(scoring="roc_auc")``, but every shuffled
    copy is stacked into one frame and scored with a single ``predict_proba`` call: the pipeline's fixed
    per-call cost would otherwise dominate (columns x repeats calls).
    """
    rng = np.random.default_rng(seed)
    if len(y) > max_rows:
        idx = np.sort(rng.choice(len(y), size=max_rows, replace=False))
        X, y = X.iloc[idx], y[idx]
    X = X.reset_index(drop=True)
    n = len(y)
    copies = [X]
    for col in X.columns:
        for _ in range(repeats):
            shuffled = X.copy()
            shuffled[col] = X[col].to_numpy()[rng.permutation(n)]
            copies.append(shuffled)
    proba = evaluation.positive_proba(model, pd.concat(copies, ignore_index=True), 1)
    base = roc_auc_score(y, proba[:n])
    drops = np.array([base - roc_auc_score(y, proba[(k + 1) * n:(k + 2) * n]) for k in range(len(copies) - 1)])
    drops = drops.reshape(len(X.columns), repeats)
    table = pd.DataFrame({"column": list(X.columns), "importance_mean": drops.mean(axis=1),
                          "importance_std": drops.std(axis=1)})
    return table.sort_values("importance_mean", ascending=False).reset_index(drop=True)


def _tag(tags: dict[str, str]) -> None:
    import mlflow

    if mlflow.active_run() is not None:
        mlflow.set_tags(tags)
