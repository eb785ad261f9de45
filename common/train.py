"""The only training path: load raw data, evaluate honestly, fit the final pipeline, log it all to MLflow.

``train`` and ``evaluate`` work for every project. A project with an unusual protocol (time series,
recommender) provides its own ``evaluate(ctx)``; everything else (parameters, dataset provenance,
metrics, plots, model logging, registry and champion) stays here.
"""

from __future__ import annotations

import inspect
import logging
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from common import evaluation, splits, tracking
from common.console import step
from common.datasets import Dataset
from common.registry import Project, get
from common.spec import ProjectSpec

log = logging.getLogger(__name__)


@dataclass
class Context:
    """What a project's ``evaluate``/``report`` hooks receive."""

    project: Project
    params: dict[str, Any]
    data_params: dict[str, Any]
    dataset: Dataset
    workdir: Path
    fit_final: bool = True

    @property
    def spec(self) -> ProjectSpec:
        return self.project.spec

    def build(self, **overrides: Any) -> Any:
        """A fresh, unfitted pipeline with the run's parameters (plus ``overrides``)."""
        return self.project.build_pipeline(**{**self.params, **overrides})

    def artifact(self, name: str) -> Path:
        """A path in the run's artifact folder (logged to MLflow at the end of the run)."""
        path = self.workdir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        return path


@dataclass
class Outcome:
    """What an evaluation produced: flat metrics and the model to log (None when evaluating only)."""

    metrics: dict[str, float]
    model: Any = None
    input_example: Any = None
    fit_seconds: float = float("nan")
    X_test: Any = None
    y_test: Any = None


@dataclass
class RunResult:
    """What ``train``/``evaluate`` return to the caller (and the CLI prints)."""

    project: str
    run_id: str | None
    metrics: dict[str, float]
    params: dict[str, Any]
    model_uri: str | None = None
    version: str | None = None
    promotion: tracking.Promotion | None = None
    notes: list[str] = field(default_factory=list)
    model: Any = field(default=None, repr=False)

    @property
    def primary(self) -> float:
        return self.metrics.get("primary_metric", float("nan"))


# ------------------------------------------------------------------------------------------------ data
def load_dataset(project: Project, data_params: Mapping[str, Any], sample: int | None = None,
                 data_dir: str | Path | None = None) -> Dataset:
    """Call the project's loader (pure: parse, join, define target) and apply ``--sample``."""
    kwargs = dict(data_params)
    accepted = inspect.signature(project.load).parameters
    if "data_dir" in accepted:
        kwargs["data_dir"] = data_dir
    if sample and "sample" in accepted:
        kwargs["sample"] = sample
    with step(f"Loading {project.name} data"):
        ds = project.load(**kwargs)
    if sample and "sample" not in accepted:
        ds = splits.subsample(ds, sample, project.spec.split)
    for note in ds.notes:
        log.info("%s: %s", project.name, note)
    return ds


# ------------------------------------------------------------------------------------------ evaluation
def cross_val_oof(
    build: Callable[[], Any], X: Any, y: Any, splitter: Any, task: str, pos_label: Any = 1,
    label: str = "model",
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """Out-of-fold predictions: every row is predicted by a model that never saw it.

    Returns (predictions, positive-class probabilities or None, fold id per row; -1 = never validated,
    which happens for the first block of a time-series split).
    """
    n = splits.n_rows(X)
    y_arr = np.asarray(y)
    pred: np.ndarray = np.empty(n, dtype=object if y_arr.dtype.kind in "OUS" else float)
    proba = np.full(n, np.nan) if task == "binary" else None
    fold = np.full(n, -1)
    folds = list(splitter.split(np.zeros(n), y_arr if task in ("binary", "multiclass") else None))
    for i, (tr, va) in enumerate(folds):
        with step(f"CV {label}: fold {i + 1}/{len(folds)}", level=logging.DEBUG if label != "model" else logging.INFO):
            model = build().fit(splits.take(X, tr), splits.take(y, tr))
            Xv = splits.take(X, va)
            pred[va] = np.asarray(model.predict(Xv))
            if proba is not None:
                p = evaluation.positive_proba(model, Xv, pos_label)
                if p is not None:
                    proba[va] = p
        fold[va] = i
    if proba is not None and np.isnan(proba[fold >= 0]).all():
        proba = None
    return pred, proba, fold


def cv_metrics(task: str, y: Any, pred: np.ndarray, proba: np.ndarray | None, fold: np.ndarray,
               primary: str, pos_label: Any, prefix: str = "cv_") -> dict[str, float]:
    """Scores over all out-of-fold predictions, plus the fold-to-fold spread of the primary metric."""
    mask = fold >= 0
    y_arr = np.asarray(y)
    yv, pv = y_arr[mask], pred[mask]
    if task in ("regression", "forecast"):
        pv = pv.astype(float)
    pr = None if proba is None else proba[mask]
    out = {f"{prefix}{k}": v for k, v in evaluation.score(task, yv, pv, pr, pos_label=pos_label).items()}
    base = primary.removeprefix("cv_")
    per_fold = []
    for f in np.unique(fold[mask]):
        m = fold == f
        s = evaluation.score(task, y_arr[m], pred[m].astype(float) if task in ("regression", "forecast") else pred[m],
                             None if proba is None else proba[m], pos_label=pos_label)
        if base in s:
            per_fold.append(s[base])
    if per_fold:
        out[f"{prefix}{base}_std"] = float(np.std(per_fold))
    return out


def evaluate_supervised(ctx: Context) -> Outcome:
    """The generic protocol: CV (on all rows or the training part), a held-out test score, baselines.

    Every learned step is inside the pipeline, so each fold and the test split refit it from scratch on
    their own training rows.
    """
    spec, ds = ctx.spec, ctx.dataset
    split = spec.split
    X_tr, X_te, y_tr, y_te = splits.train_test(ds, split)
    metrics: dict[str, float] = {}
    baselines = ctx.project.baselines() if ctx.project.baselines else evaluation.default_baselines(spec.task)

    if split.cv_on != "none" and split.cv_folds > 1:
        X_cv, y_cv = (ds.X, ds.y) if split.cv_on == "all" else (X_tr, y_tr)
        splitter = splits.cv_splitter(split)
        pred, proba, fold = cross_val_oof(ctx.build, X_cv, y_cv, splitter, spec.task, spec.pos_label)
        metrics |= cv_metrics(spec.task, y_cv, pred, proba, fold, spec.primary_metric, spec.pos_label)
        if spec.task in ("regression", "forecast"):
            evaluation.plot_regression(y_cv, pred.astype(float), ctx.artifact("cv_predicted_vs_actual.png"),
                                       f"{spec.name} (out of fold)", log_scale=True)
        for bname, est in baselines.items():
            bp, bpr, bf = cross_val_oof(lambda est=est: _clone(est), X_cv, y_cv, splitter, spec.task,
                                        spec.pos_label, label=bname)
            metrics |= cv_metrics(spec.task, y_cv, bp, bpr, bf, spec.primary_metric, spec.pos_label,
                                  prefix=f"baseline_{bname}_cv_")

    with step(f"Fitting {spec.name} on the training part ({splits.n_rows(X_tr)} rows)"):
        t0 = time.perf_counter()
        model = ctx.build().fit(X_tr, y_tr)
        train_fit = time.perf_counter() - t0
    t0 = time.perf_counter()
    test_metrics, pred, proba = evaluation.score_model(spec.task, model, X_te, y_te, spec.pos_label)
    metrics["predict_ms_per_row"] = 1000 * (time.perf_counter() - t0) / max(splits.n_rows(X_te), 1)
    metrics |= test_metrics
    for bname, est in baselines.items():
        b = _clone(est).fit(X_tr, y_tr)
        bm, _, _ = evaluation.score_model(spec.task, b, X_te, y_te, spec.pos_label)
        metrics |= {f"baseline_{bname}_{k}": v for k, v in bm.items()}

    if spec.task in ("regression", "forecast"):
        evaluation.plot_regression(y_te, pred, ctx.artifact("test_predicted_vs_actual.png"),
                                   f"{spec.name} (test part)", log_scale=True)
    else:
        evaluation.plot_confusion(y_te, pred, ctx.artifact("confusion_matrix.png"), f"{spec.name} (test part)")
        if proba is not None:
            evaluation.plot_roc_pr(y_te, proba, ctx.artifact("roc_pr.png"), spec.name, spec.pos_label)

    final, fit_seconds = model, train_fit
    if ctx.fit_final and split.refit_on == "all" and split.kind != "given":
        with step(f"Fitting the final {spec.name} model on all {ds.rows} labelled rows"):
            t0 = time.perf_counter()
            final = ctx.build().fit(ds.X, ds.y)
            fit_seconds = time.perf_counter() - t0
    return Outcome(metrics=metrics, model=final, input_example=splits.take(X_tr, np.arange(min(5, splits.n_rows(X_tr)))),
                   fit_seconds=fit_seconds, X_test=X_te, y_test=y_te)


def _clone(est: Any) -> Any:
    from sklearn.base import clone

    return clone(est)


# --------------------------------------------------------------------------------------------- running
def _signature_example(project: Project, example: Any) -> Any:
    if project.signature_example is not None:
        return project.signature_example(example)
    if isinstance(example, list):
        return pd.DataFrame({"text": example})
    return example


def _write_predictions(ctx: Context, model: Any) -> None:
    ds = ctx.dataset
    if ds.X_predict is None or model is None:
        return
    with step(f"Predicting {splits.n_rows(ds.X_predict)} unlabelled rows"):
        pred = np.asarray(model.predict(ds.X_predict))
    ids = ds.predict_ids if ds.predict_ids is not None else pd.RangeIndex(len(pred), name="row")
    name = getattr(ids, "name", None) or "row"
    pd.DataFrame({name: np.asarray(ids), ctx.spec.target: pred}).to_csv(ctx.artifact("submission.csv"), index=False)


def run(
    name: str,
    overrides: Mapping[str, Any] | None = None,
    sample: int | None = None,
    data_dir: str | Path | None = None,
    log_model: bool = True,
    force_promote: bool = False,
    run_name: str | None = None,
    dataset: Dataset | None = None,
) -> RunResult:
    """Evaluate a project and (when ``log_model``) fit, log, register and maybe promote its pipeline.

    Args:
        name: project name.
        overrides: ``build_pipeline``/``load`` parameters to change (strings are converted).
        sample: use only this many rows (quick runs, tests).
        data_dir: an explicit data folder (mirror layout) instead of the usual resolution.
        log_model: False evaluates only: metrics and plots are logged, no model is registered.
        force_promote: make the new version champion regardless of its score.
        run_name: the MLflow run name.
        dataset: use this already-loaded dataset instead of calling the loader (tests, notebooks).
    """
    import mlflow

    project = get(name)
    spec = project.spec
    params, data_params = spec.resolve_params(overrides)
    if dataset is None:
        ds = load_dataset(project, data_params, sample=sample, data_dir=data_dir)
    else:
        ds = splits.subsample(dataset, sample, spec.split) if sample else dataset
    tracking.experiment(spec)
    variant = "-".join(f"{v}" for k, v in sorted((overrides or {}).items())) or "default"
    with tempfile.TemporaryDirectory(prefix=f"mlprojects-{spec.name}-") as tmp, mlflow.start_run(
        run_name=run_name or f"{spec.name}-{variant}" + ("" if log_model else "-eval")
    ) as active:
        ctx = Context(project, params, data_params, ds, Path(tmp), fit_final=log_model)
        mlflow.set_tags({"project": spec.name, "task": spec.task, "git_commit": tracking.git_commit(),
                         "mode": "train" if log_model else "evaluate", "protocol": spec.split.fingerprint(),
                         "primary_metric": spec.primary_metric})
        mlflow.log_params({**params, **data_params, "sample": sample or "all"})
        tracking.log_dataset(ds)
        evaluate = project.evaluate or evaluate_supervised
        outcome = evaluate(ctx)
        metrics = dict(outcome.metrics)
        if project.report is not None and outcome.model is not None:
            with step(f"Writing the {spec.name} report"):
                metrics |= project.report(ctx, outcome.model, outcome.X_test, outcome.y_test) or {}
        metrics["fit_seconds"] = outcome.fit_seconds
        metrics["primary_metric"] = metrics.get(spec.primary_metric, float("nan"))
        result = RunResult(spec.name, active.info.run_id, metrics, {**params, **data_params}, notes=list(ds.notes),
                           model=outcome.model)
        if log_model and outcome.model is not None:
            metrics["model_size_mb"] = tracking.model_size_mb(outcome.model)
            _write_predictions(ctx, outcome.model)
            example = _signature_example(project, outcome.input_example)
            with step(f"Logging and registering the {spec.name} model"):
                out = outcome.model.predict(example)
                # A table output (the recommender's top-k) keeps its column types in the signature.
                out = out if isinstance(out, pd.DataFrame) else np.asarray(out)
                record = tracking.log_model(outcome.model, spec, example, out)
            result.model_uri, result.version = record.model_uri, record.version
            mlflow.set_tag("serialization", record.serialization)
        tracking.log_metrics(metrics)
        mlflow.log_artifacts(tmp)
        if result.version is not None:
            result.promotion = tracking.promote(
                spec, result.version, metrics["primary_metric"], spec.split.fingerprint(), ds.sha256,
                sampled=bool(sample), force=force_promote,
            )
            mlflow.set_tag("champion", str(result.promotion.promoted).lower())
        result.metrics = metrics
    return result


def train(name: str, overrides: Mapping[str, Any] | None = None, sample: int | None = None,
          data_dir: str | Path | None = None, promote: bool = False) -> RunResult:
    """Evaluate, fit the final pipeline, log and register it; promote it when it beats the champion."""
    return run(name, overrides, sample=sample, data_dir=data_dir, log_model=True, force_promote=promote)


def evaluate(name: str, overrides: Mapping[str, Any] | None = None, sample: int | None = None,
             data_dir: str | Path | None = None) -> RunResult:
    """Run the evaluation protocol and log metrics and plots, without registering a model."""
    return run(name, overrides, sample=sample, data_dir=data_dir, log_model=False)
