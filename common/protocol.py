"""The supervised evaluation protocol, once, with hooks where projects add what is theirs.

``evaluate_supervised`` splits, cross-validates (keeping every out-of-fold prediction, probability and
fold id), scores a test part, scores the baselines on the same folds and test part, and fits the model to
log. It returns an ``Evaluation`` holding all of that, so a project adds metrics, plots and decision rules
as ``EvaluationHooks`` that read the result instead of copying the protocol:

* ``parts(ctx)``: the rows (for example a given testing file when a dataset ships one);
* ``on_fold(ctx, fold)``: sees each fitted fold model and its validation rows (per-fold diagnostics);
* ``choose(ctx, ev)``: parameter overrides decided from the cross-validation (a model choice) that the
  test-part and final fits use; when the chosen model's out-of-fold predictions differ from those of the
  model that chose (a nested choice), the hook may put them in ``ev.cv`` and rescore with ``cv_metrics``;
* ``metrics(ctx, ev)``: more metrics from the out-of-fold and test predictions;
* ``artifacts(ctx, ev)``: plots and tables written with ``ctx.artifact(name)``.

Time-ordered data (``SplitSpec.kind="time"``) is never shuffled: walk-forward folds with a gap, a test
part at the end that the scored model stops ``gap`` rows before, and with ``SplitSpec.history`` every
prediction made with all earlier rows in front of it (features that look back).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from sklearn.base import clone

from common import evaluation, splits
from common.console import step
from common.datasets import Dataset
from common.errors import DataError
from common.spec import ProjectSpec, SplitSpec

if TYPE_CHECKING:
    from common.registry import Project

log = logging.getLogger(__name__)


@dataclass
class Context:
    """What a project's hooks receive: the project, the run's parameters, the data and an artifact folder."""

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
        return self.project.build({**self.params, **overrides})

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
class Predictions:
    """One model's predictions on labelled rows.

    Attributes:
        y: the true targets of the rows (a numpy array).
        pred: predictions (class labels, or values for regression).
        proba: the positive-class probability for a binary task (None when the model has none).
        fold: for out-of-fold predictions, the fold that validated each row (-1: never validated, as in
            the first block of a time-series split); None for a test part.
    """

    y: np.ndarray
    pred: np.ndarray
    proba: np.ndarray | None = None
    fold: np.ndarray | None = None

    @property
    def mask(self) -> np.ndarray:
        """Rows that carry a prediction."""
        return np.ones(len(self.y), dtype=bool) if self.fold is None else self.fold >= 0


@dataclass
class Parts:
    """The rows of one evaluation: train/test parts and the rows cross-validation runs over."""

    X_train: Any
    X_test: Any
    y_train: Any
    y_test: Any
    X_cv: Any = None
    y_cv: Any = None
    test_name: str = "test part"
    refit_on_all: bool = True


@dataclass
class Fold:
    """One cross-validation fold as ``on_fold`` sees it (the fitted model and its validation rows)."""

    index: int
    model: Any
    train_idx: np.ndarray
    valid_idx: np.ndarray
    X_valid: Any
    y_valid: np.ndarray


@dataclass
class Evaluation:
    """Everything the protocol produced; hooks read it and add to ``metrics``/``info``.

    Attributes:
        metrics: flat metrics with the collection's stable names.
        parts: the rows used.
        cv: out-of-fold predictions of the model (None when CV is off).
        cv_baselines: out-of-fold predictions of each baseline on the same folds.
        test: the test-part predictions of the model fitted on the training part.
        test_baselines: the same for each baseline.
        model: the model fitted on the training part.
        overrides: parameters ``choose`` decided (used for the test-part and final fits).
        final: the model to log (refitted on all rows when the protocol says so).
        fit_seconds: how long fitting ``final`` took.
        info: anything hooks want to pass on (per-fold tables, chosen thresholds).
        input_example: the raw rows logged with the model (default: the first five training rows).
    """

    metrics: dict[str, float]
    parts: Parts
    cv: Predictions | None = None
    cv_baselines: dict[str, Predictions] = field(default_factory=dict)
    test: Predictions | None = None
    test_baselines: dict[str, Predictions] = field(default_factory=dict)
    model: Any = None
    overrides: dict[str, Any] = field(default_factory=dict)
    final: Any = None
    fit_seconds: float = float("nan")
    info: dict[str, Any] = field(default_factory=dict)
    input_example: Any = None

    def outcome(self) -> Outcome:
        """The ``Outcome`` the training path logs."""
        example = self.input_example
        if example is None:
            X_tr = self.parts.X_train
            example = splits.take(X_tr, np.arange(min(5, splits.n_rows(X_tr))))
        return Outcome(metrics=self.metrics, model=self.final, input_example=example,
                       fit_seconds=self.fit_seconds, X_test=self.parts.X_test, y_test=self.parts.y_test)


@dataclass(frozen=True)
class EvaluationHooks:
    """A project's additions to the protocol (every one optional; see the module docstring)."""

    parts: Callable[[Context], Parts] | None = None
    on_fold: Callable[[Context, Fold, Evaluation], None] | None = None
    choose: Callable[[Context, Evaluation], Mapping[str, Any]] | None = None
    metrics: Callable[[Context, Evaluation], Mapping[str, float]] | None = None
    artifacts: Callable[[Context, Evaluation], None] | None = None


# ------------------------------------------------------------------------------------------ building blocks
def default_parts(ctx: Context) -> Parts:
    """The split the spec declares: train/test, and CV over all rows or the training part.

    In a time-ordered split the model scored on the test part stops ``gap`` rows before it, as every
    walk-forward fold stops ``gap`` rows before its validation rows (CV still runs over the whole
    training part: ``TimeSeriesSplit`` leaves its own gap).
    """
    split, ds = ctx.spec.split, ctx.dataset
    X_tr, X_te, y_tr, y_te = splits.train_test(ds, split)
    X_cv, y_cv = (ds.X, ds.y) if split.cv_on == "all" else (X_tr, y_tr)
    name = {"given": "given test file", "time": "holdout"}.get(split.kind, "test part")
    if split.kind == "time":
        _check_time_split(splits.n_rows(ds.X), splits.n_rows(X_tr), split)
        keep = np.arange(splits.n_rows(X_tr) - split.gap)
        X_tr, y_tr = splits.take(X_tr, keep), splits.take(y_tr, keep)
    return Parts(X_tr, X_te, y_tr, y_te, X_cv, y_cv, test_name=name,
                 refit_on_all=split.refit_on == "all" and split.kind != "given")


def _check_time_split(n: int, cut: int, split: SplitSpec) -> None:
    """A clear error when a time range is too short for walk-forward folds and a test part."""
    folds = max(split.cv_folds, 1)
    first_fold = cut // (folds + 1) - split.gap
    if first_fold < max(split.history, 2) // 2 + 1 or n - cut < 2:
        raise DataError(
            f"{n} time-ordered rows are too few for {folds} walk-forward folds with a gap of {split.gap} and a "
            f"test part of {split.test_size:.0%}: the first fold would train on {max(first_fold, 0)} rows and the "
            f"test part has {n - cut}. Use a longer range."
        )


def predict_rows(model: Any, X: Any, idx: np.ndarray, history: bool) -> np.ndarray:
    """``model.predict`` for rows ``idx`` of ``X``; with ``history``, every earlier row is passed in front.

    Time-ordered features look back, so a row predicted alone would lack its history; passing rows
    ``0..idx[-1]`` and keeping the positions ``idx`` gives each row exactly what it would have had on
    its day (the features are causal: later rows never reach an earlier one).
    """
    if not history:
        return np.asarray(model.predict(splits.take(X, idx)))
    return np.asarray(model.predict(splits.take(X, np.arange(int(idx[-1]) + 1))))[idx]


def cross_val_predict(
    build: Callable[[], Any], X: Any, y: Any, splitter: Any, task: str, pos_label: Any = 1,
    label: str = "model", on_fold: Callable[[Fold], None] | None = None, history: bool = False,
) -> Predictions:
    """Out-of-fold predictions: every row is predicted by a model that never saw it.

    ``on_fold`` sees each fitted fold model with its validation rows (for per-fold diagnostics). With
    ``history`` (time-ordered rows whose features look back) each validation row is predicted with
    every earlier row in front of it (``predict_rows``).
    """
    n = splits.n_rows(X)
    y_arr = np.asarray(y)
    pred: np.ndarray = np.empty(n, dtype=object if y_arr.dtype.kind in "OUS" else float)
    proba = np.full(n, np.nan) if task == "binary" else None
    fold = np.full(n, -1)
    folds = list(splitter.split(np.zeros(n), y_arr if task in ("binary", "multiclass") else None))
    for i, (tr, va) in enumerate(folds):
        with step(f"CV {label}: fold {i + 1}/{len(folds)}", level=logging.INFO if label == "model" else logging.DEBUG):
            model = build().fit(splits.take(X, tr), splits.take(y, tr))
            Xv = splits.take(X, va)
            pred[va] = predict_rows(model, X, va, history)
            if proba is not None and not history:
                p = evaluation.positive_proba(model, Xv, pos_label)
                if p is not None:
                    proba[va] = p
        fold[va] = i
        if on_fold is not None:
            on_fold(Fold(i, model, tr, va, Xv, y_arr[va]))
    if proba is not None and np.isnan(proba[fold >= 0]).all():
        proba = None
    if task in ("regression", "forecast"):
        pred = pred.astype(float)
    elif y_arr.dtype.kind not in "OUS":
        pred = pred.astype(y_arr.dtype) if (fold >= 0).all() else pred
    return Predictions(y_arr, pred, proba, fold)


def cv_metrics(task: str, oof: Predictions, primary: str, pos_label: Any, prefix: str = "cv_") -> dict[str, float]:
    """Scores over all out-of-fold predictions, plus the fold-to-fold spread of the primary metric."""
    mask = oof.mask
    pr = None if oof.proba is None else oof.proba[mask]
    out = {f"{prefix}{k}": v for k, v in evaluation.score(task, oof.y[mask], oof.pred[mask], pr,
                                                           pos_label=pos_label).items()}
    base = primary.removeprefix("cv_")
    per_fold = []
    for f in np.unique(oof.fold[mask]):
        m = oof.fold == f
        s = evaluation.score(task, oof.y[m], oof.pred[m], None if oof.proba is None else oof.proba[m],
                             pos_label=pos_label)
        if base in s:
            per_fold.append(s[base])
    if per_fold:
        out[f"{prefix}{base}_std"] = float(np.std(per_fold))
    return out


def test_predictions(task: str, model: Any, X: Any, y: Any, pos_label: Any, history: Any = None) -> Predictions:
    """A fitted model's predictions (and positive-class probabilities) on a labelled part.

    ``history``: all rows of a time-ordered dataset whose last rows are ``X``; they are predicted with
    the earlier rows in front of them (``predict_rows``).
    """
    if history is not None:
        total, n = splits.n_rows(history), splits.n_rows(X)
        pred = predict_rows(model, history, np.arange(total - n, total), True)
        return Predictions(np.asarray(y), pred)
    pred = np.asarray(model.predict(X))
    proba = evaluation.positive_proba(model, X, pos_label) if task == "binary" else None
    return Predictions(np.asarray(y), pred, proba)


def score(task: str, p: Predictions, pos_label: Any) -> dict[str, float]:
    """The stable metrics of a set of predictions."""
    return evaluation.score(task, p.y, p.pred, p.proba, pos_label=pos_label)


# ------------------------------------------------------------------------------------------------ protocol
def evaluate_supervised(ctx: Context, hooks: EvaluationHooks | None = None) -> Evaluation:
    """The generic protocol: CV, a held-out test score, baselines beside the model, and the model to log.

    Every learned step is inside the pipeline, so each fold and the test split refit it from scratch on
    their own training rows. See the module docstring for the hooks.
    """
    hooks = hooks or ctx.project.hooks or EvaluationHooks()
    spec = ctx.spec
    task, pos = spec.task, spec.pos_label
    parts = hooks.parts(ctx) if hooks.parts else default_parts(ctx)
    ev = Evaluation(metrics={}, parts=parts)
    baselines = ctx.project.baselines() if ctx.project.baselines else evaluation.default_baselines(task)

    split = spec.split
    history = split.kind == "time" and split.history > 0
    if parts.X_cv is not None and split.cv_on != "none" and split.cv_folds > 1:
        splitter = splits.cv_splitter(split)
        on_fold = (lambda fold: hooks.on_fold(ctx, fold, ev)) if hooks.on_fold else None
        t0 = time.perf_counter()
        ev.cv = cross_val_predict(ctx.build, parts.X_cv, parts.y_cv, splitter, task, pos, on_fold=on_fold,
                                  history=history)
        ev.metrics["cv_seconds"] = time.perf_counter() - t0
        ev.metrics |= cv_metrics(task, ev.cv, spec.primary_metric, pos)
        for name, est in baselines.items():
            ev.cv_baselines[name] = cross_val_predict(lambda est=est: clone(est), parts.X_cv, parts.y_cv, splitter,
                                                      task, pos, label=name, history=history)
            ev.metrics |= cv_metrics(task, ev.cv_baselines[name], spec.primary_metric, pos,
                                     prefix=f"baseline_{name}_cv_")

    if hooks.choose is not None:
        ev.overrides = dict(hooks.choose(ctx, ev) or {})

    with step(f"Fitting {spec.name} on the training part ({splits.n_rows(parts.X_train)} rows)"):
        t0 = time.perf_counter()
        ev.model = ctx.build(**ev.overrides).fit(parts.X_train, parts.y_train)
        train_fit = time.perf_counter() - t0
    context = ctx.dataset.X if history else None
    t0 = time.perf_counter()
    ev.test = test_predictions(task, ev.model, parts.X_test, parts.y_test, pos, history=context)
    ev.metrics["predict_ms_per_row"] = 1000 * (time.perf_counter() - t0) / max(splits.n_rows(parts.X_test), 1)
    ev.metrics |= score(task, ev.test, pos)
    for name, est in baselines.items():
        fitted = clone(est).fit(parts.X_train, parts.y_train)
        ev.test_baselines[name] = test_predictions(task, fitted, parts.X_test, parts.y_test, pos, history=context)
        ev.metrics |= {f"baseline_{name}_{k}": v for k, v in score(task, ev.test_baselines[name], pos).items()}

    if history:
        # One forecast needs its history: the example is the last ``history`` rows, as a user would send.
        X_all = ctx.dataset.X
        total = splits.n_rows(X_all)
        ev.input_example = splits.take(X_all, np.arange(max(total - split.history, 0), total))
        if hasattr(ev.input_example, "reset_index"):
            ev.input_example = ev.input_example.reset_index(drop=True)
    ev.final, ev.fit_seconds = ev.model, train_fit
    if ctx.fit_final and parts.refit_on_all:
        ds = ctx.dataset
        with step(f"Fitting the final {spec.name} model on all {ds.rows} labelled rows"):
            t0 = time.perf_counter()
            ev.final = ctx.build(**ev.overrides).fit(ds.X, ds.y)
            ev.fit_seconds = time.perf_counter() - t0

    if hooks.metrics is not None:
        ev.metrics |= dict(hooks.metrics(ctx, ev) or {})
    standard_plots(ctx, ev)
    if hooks.artifacts is not None:
        hooks.artifacts(ctx, ev)
    return ev


def standard_plots(ctx: Context, ev: Evaluation) -> None:
    """Predicted-vs-actual for regression; confusion matrix and ROC/PR for classification."""
    from common import plots

    spec, title = ctx.spec, f"{ctx.spec.name} ({ev.parts.test_name})"
    if spec.task in ("regression", "forecast"):
        if ev.cv is not None:
            m = ev.cv.mask
            plots.regression(ev.cv.y[m], ev.cv.pred[m], ctx.artifact("cv_predicted_vs_actual.png"),
                             f"{spec.name} (out of fold)", log_scale=True)
        plots.regression(ev.test.y, ev.test.pred, ctx.artifact("test_predicted_vs_actual.png"), title, log_scale=True)
        return
    plots.confusion(ev.test.y, ev.test.pred, ctx.artifact("confusion_matrix.png"), title)
    if ev.test.proba is not None:
        plots.roc_pr(ev.test.y, ev.test.proba, ctx.artifact("roc_pr.png"), title, spec.pos_label)
