"""The only training path: load raw data, evaluate honestly, fit the final pipeline, log it all to MLflow.

``train`` and ``evaluate`` work for every project. Supervised projects run ``common.protocol``'s
``evaluate_supervised`` and add their own metrics, plots and decision rules as hooks; a project whose task
is not supervised prediction (the recommender) provides its own ``evaluate(ctx)``. Everything else
(parameters, dataset provenance, metrics, model logging, registry and champion) stays here.
"""

from __future__ import annotations

import inspect
import logging
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from common import describe, splits, store, tracking
from common.console import step
from common.datasets import Dataset
from common.errors import ParameterError
from common.protocol import Context, evaluate_supervised
from common.registry import Project, get

log = logging.getLogger(__name__)


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

    if sample is not None and sample < 1:  # checked before anything is loaded or logged
        raise ParameterError(f"sample must be a whole number >= 1 (rows to use); got {sample}.")
    project = get(name)
    spec = project.spec
    params, data_params = project.resolve_params(overrides)
    if dataset is None:
        ds = load_dataset(project, data_params, sample=sample, data_dir=data_dir)
    else:
        ds = splits.subsample(dataset, sample, spec.split) if sample else dataset
    exp_id = tracking.experiment(spec, create=True)  # the one command that may create a new store
    variant = "-".join(f"{v}" for k, v in sorted((overrides or {}).items())) or "default"
    with tempfile.TemporaryDirectory(prefix=f"mlprojects-{spec.name}-") as tmp, mlflow.start_run(
        experiment_id=exp_id, run_name=run_name or f"{spec.name}-{variant}" + ("" if log_model else "-eval")
    ) as active:
        ctx = Context(project, params, data_params, ds, Path(tmp), fit_final=log_model)
        mlflow.set_tags({"project": spec.name, "task": spec.task, "git_commit": tracking.git_commit(),
                         "mode": "train" if log_model else "evaluate", "protocol": spec.split.fingerprint(),
                         "primary_metric": spec.primary_metric})
        mlflow.set_tags(store.owner_tags())  # pid and host: `mlprojects doctor` finds runs whose process died
        mlflow.log_params({**params, **data_params, "sample": sample or "all"})
        tracking.log_dataset(ds, spec)
        outcome = project.evaluate(ctx) if project.evaluate else evaluate_supervised(ctx).outcome()
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
        describe.describe(spec, ds, active.info.run_id, metrics, result.params, result.version, result.promotion)
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
