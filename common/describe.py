"""What a person reads in the MLflow UI: dataset entities, and the descriptions of experiments, models and runs.

Everything here is idempotent (a repeated run overwrites the same descriptions) and never fails a training
run: a store that refuses a description costs a logged warning, not the model.
"""

from __future__ import annotations

import json
import logging
import math
import os
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from common.datasets import Dataset, FileInfo, repo_root
from common.spec import ProjectSpec

log = logging.getLogger(__name__)

DOCS_URL_ENV = "MLPROJECTS_DOCS_URL"
NOTE_TAG = "mlflow.note.content"  # the tag the MLflow UI shows as an experiment's or a run's description
KIND_TAG = "mlflow.experimentKind"
PROFILE_ROWS = 10_000  # tables larger than this are profiled and schema-inferred on their first rows
_MAX_TEXT = 4900  # MLflow stores descriptions and tag values in columns of 5000 characters
_TIMING = ("_seconds", "_ms_per_row", "_mb")


# ------------------------------------------------------------------------------------------------ datasets
@contextmanager
def quiet_schema_hint() -> Iterator[None]:
    """Silence MLflow's integer-column hint: raw tables are typed by the pipeline, not the schema."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer column")
        yield


def _source_file(ds: Dataset, part: str) -> FileInfo | None:
    if not ds.files:
        return None
    if part == "test":
        # Loaders list files without saying which part each holds; test files say so in their names.
        named = [f for f in ds.files if any(m in Path(f.path).name.lower() for m in ("test", "t10k"))]
        if named:
            return named[0]
    return ds.files[0]


def dataset_source(ds: Dataset, part: str = "train") -> Any:
    """The MLflow source of a part of ``ds``: its file (local path or URL), or the generator of synthetic data.

    ``part="test"`` picks the first file named like a test file (``test.csv``, ``t10k-images``), else the first.
    """
    from mlflow.data.code_dataset_source import CodeDatasetSource
    from mlflow.data.http_dataset_source import HTTPDatasetSource
    from mlflow.data.sources import LocalArtifactDatasetSource

    first = _source_file(ds, part)
    if first is None or first.origin == "generated":
        # Synthetic data has no file; the code source names the generator and how it was called.
        return CodeDatasetSource(tags={"mlflow.source.name": first.path if first else "generated",
                                       "mlflow.source.type": "generated"})
    if first.path.startswith(("http://", "https://")):
        return HTTPDatasetSource(first.path)
    # Built directly: resolving a path string makes MLflow warn that it "can be interpreted in multiple ways".
    return LocalArtifactDatasetSource(first.path)


def _head(x: Any, n: int) -> Any:
    return x.iloc[:n] if isinstance(x, pd.DataFrame | pd.Series) else x[:n]


def _table(X: Any, y: Any, target: str | None) -> pd.DataFrame:
    """A DataFrame of raw inputs (texts as a ``text`` column) with the target as a column."""
    if isinstance(X, pd.DataFrame):
        frame = X.reset_index(drop=True)
    elif isinstance(X, pd.Series):
        frame = X.rename(X.name or "text").reset_index(drop=True).to_frame()
    else:
        frame = pd.DataFrame({"text": list(X)})
    if y is not None and target:
        frame = frame.assign(**{target: np.asarray(y)})
    return frame


def _pandas_dataset(X: Any, y: Any, *, rows: int, target: str | None, name: str, digest: str, source: Any) -> Any:
    """A ``PandasDataset`` (``mlflow.data.from_pandas``) of at most ``PROFILE_ROWS`` rows; a larger table's
    profile still counts every row, only its schema comes from the first rows."""
    import mlflow
    from mlflow.data.pandas_dataset import PandasDataset

    frame = _table(_head(X, PROFILE_ROWS), None if y is None else _head(y, PROFILE_ROWS), target)
    # Only a target that was added names one (the recommender's catalogue has a "title" column of its own).
    target = target if y is not None and target in frame.columns else None
    if rows <= PROFILE_ROWS:
        return mlflow.data.from_pandas(frame, source=source, targets=target, name=name, digest=digest)

    class _Bounded(PandasDataset):
        """The profile names the real size; only the schema comes from the first rows."""

        @property
        def profile(self) -> Any:
            return {"num_rows": rows, "num_elements": rows * self.df.shape[1], "profiled_rows": len(self.df)}

    return _Bounded(df=frame, source=source, targets=target, name=name, digest=digest)


def mlflow_dataset(X: Any, y: Any, *, name: str, digest: str, source: Any, target: str | None) -> Any:
    """An ``mlflow.data`` dataset of one part of the data: numpy arrays as they are, anything else as a table.

    ``digest`` is the project's fingerprint of the real data, so it is the same however the profile was made.
    """
    import mlflow

    if isinstance(X, np.ndarray):
        # A NumpyDataset profiles shapes and sizes only: cheap even for 70,000 images.
        return mlflow.data.from_numpy(X, source=source, targets=None if y is None else np.asarray(y),
                                      name=name, digest=digest)
    rows = int(X.shape[0]) if hasattr(X, "shape") else len(X)
    return _pandas_dataset(X, y, rows=rows, target=target, name=name, digest=digest, source=source)


def dataset_inputs(ds: Dataset, target: str | None = None) -> list[tuple[Any, str]]:
    """(MLflow dataset, context) pairs: the training part as ``train`` and a shipped test part as ``test``.

    MLflow keeps one dataset per (name, digest) in an experiment and one input per dataset in a run, so the
    test part is named ``<name>-test``.
    """
    digest = ds.sha256[:16]
    parts = [(mlflow_dataset(ds.X, ds.y, name=ds.name, digest=digest, source=dataset_source(ds), target=target),
              "train")]
    if ds.X_test is not None:
        parts.append((mlflow_dataset(ds.X_test, ds.y_test, name=f"{ds.name}-test", digest=digest,
                                     source=dataset_source(ds, "test"), target=target), "test"))
    return parts


def log_dataset_inputs(ds: Dataset, target: str | None = None) -> None:
    """Log the dataset entities of the active run (the run page's "Datasets used")."""
    import mlflow

    with quiet_schema_hint():  # the schema of a table is inferred when it is logged
        parts = dataset_inputs(ds, target)
        mlflow.log_inputs([d for d, _ in parts], contexts=[c for _, c in parts], tags_list=[None] * len(parts))


# ------------------------------------------------------------------------------------------- descriptions
def docs_url(project: str) -> str:
    """The link to ``docs/<project>.md``.

    ``$MLPROJECTS_DOCS_URL`` is the base when set (for example
    ``https://github.com/<owner>/mlprojects/blob/main/docs``); otherwise a ``file://`` URI of the checkout's
    own ``docs`` folder, which a browser on the same machine opens (copy it: browsers do not follow
    ``file://`` links from an ``http://`` page).
    """
    base = os.environ.get(DOCS_URL_ENV, "").strip().rstrip("/")
    if base:
        return f"{base}/{project}.md"
    return (repo_root() / "docs" / f"{project}.md").as_uri()


def _direction(spec: ProjectSpec) -> str:
    return "higher is better" if spec.greater_is_better else "lower is better"


def _data_line(ds: Dataset | None) -> str:
    if ds is None:
        return "unknown"
    origin = ds.files[0].path if ds.files else "generated"
    test = f" + {ds.test_rows:,} test rows" if ds.test_rows else ""
    return f"`{ds.name}` ({ds.rows:,} rows{test}; from `{origin}`; sha256 `{ds.sha256[:16]}`)"


def project_description(spec: ProjectSpec, ds: Dataset | None = None) -> str:
    """Markdown shown on the experiment and the registered model: what the project is and how it is scored."""
    url = docs_url(spec.name)
    lines = [
        spec.title,  # plain: the experiments list shows the start of the description as raw text
        "",
        f"- Task: {spec.task}",
        f"- Primary metric: `{spec.primary_metric}` ({_direction(spec)}); the `@champion` alias is the best "
        "version under the same data and protocol",
        f"- Data (latest run): {_data_line(ds)}",
        f"- Docs: [docs/{spec.name}.md]({url})",
    ]
    return "\n".join(lines)[:_MAX_TEXT]


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "-" if not math.isfinite(value) else f"{value:.6g}"
    return str(value)


def key_metrics(spec: ProjectSpec, metrics: Mapping[str, float], limit: int = 12) -> dict[str, float]:
    """The primary metric first, then the model's own scores (no baselines, timings or the alias copy)."""
    keys = [spec.primary_metric] + sorted(
        k for k in metrics
        if k not in (spec.primary_metric, "primary_metric") and not k.startswith("baseline_")
        and not k.endswith(_TIMING)
    )
    return {k: metrics[k] for k in keys[:limit] if k in metrics}


def version_description(spec: ProjectSpec, metrics: Mapping[str, float], params: Mapping[str, Any],
                        ds: Dataset | None, run_id: str | None, commit: str) -> str:
    """Markdown for one model version: its scores, data, code and parameters."""
    rows = "\n".join(f"| `{k}` | {_fmt(v)} |" for k, v in key_metrics(spec, metrics).items())
    params_json = json.dumps({k: params[k] for k in sorted(params)}, default=str)
    text = "\n".join([
        f"**{spec.name}**: `{spec.primary_metric}` = {_fmt(metrics.get(spec.primary_metric, float('nan')))} "
        f"({_direction(spec)})",
        "",
        "| metric | value |",
        "|---|---|",
        rows,
        "",
        f"- Data: {_data_line(ds)}",
        f"- Git commit: `{commit}`",
        f"- Run: `{run_id}`",
        f"- Parameters: `{params_json}`",
    ])
    return text[:_MAX_TEXT]


def run_description(spec: ProjectSpec, metrics: Mapping[str, float], ds: Dataset | None,
                    version: str | None, promotion: Any = None) -> str:
    """Markdown for a run: what was trained on which data, its score and what became of the model."""
    score = _fmt(metrics.get(spec.primary_metric, float("nan")))
    text = f"{spec.title}.\n\nData: {_data_line(ds)}.\n\n`{spec.primary_metric}` = {score} ({_direction(spec)})."
    if version is None:
        text += " Evaluated only: no model was registered."
    elif promotion is not None:
        state = "made `@champion`" if promotion.promoted else "kept as a challenger"
        text += f" Registered as version {version}, {state} ({promotion.reason})."
    else:
        text += f" Registered as version {version}."
    return text[:_MAX_TEXT]


def _version_tags(ds: Dataset | None, commit: str, model_id: str | None) -> dict[str, str]:
    tags = {"git_commit": commit}  # the score is already there: ``tracking.promote`` tags ``primary_score``
    if ds is not None:
        tags |= {"dataset": ds.name, "dataset_digest": ds.sha256[:16]}
    if model_id:
        tags["model_id"] = model_id
    return tags


def model_ids(run_id: str) -> list[str]:
    """The ids of the models (MLflow 3 ``LoggedModel``) the run logged."""
    import mlflow

    outputs = mlflow.MlflowClient().get_run(run_id).outputs
    return [o.model_id for o in (outputs.model_outputs if outputs else [])]


def link_metrics(model_id: str, metrics: Mapping[str, float]) -> None:
    """Make the model page show ``metrics``.

    MLflow 3 already attaches metrics logged after ``log_model`` in the same run to that model; this only
    logs them with ``model_id`` when the model has none (so a repeated call adds nothing).
    """
    import mlflow

    model = mlflow.get_logged_model(model_id)
    if model.metrics:
        return
    clean = {k: float(v) for k, v in metrics.items() if v is not None and math.isfinite(float(v))}
    # The model's own run, never a new one: this may be called after that run ended.
    mlflow.log_metrics(clean, model_id=model_id, run_id=model.source_run_id)


def describe(spec: ProjectSpec, ds: Dataset | None, run_id: str, metrics: Mapping[str, float],
             params: Mapping[str, Any], version: str | None = None, promotion: Any = None,
             model_id: str | None = None) -> None:
    """Write every description of a finished training: experiment, run, registered model and version.

    Failures are logged as warnings; descriptions never fail a run.
    """
    import mlflow

    from common import tracking

    client = mlflow.MlflowClient()
    try:
        run = client.get_run(run_id)
        commit = run.data.tags.get("git_commit") or tracking.git_commit()
        # Concurrent trainings of one project set the same experiment tags: see tracking.upsert.
        tracking.upsert(client.set_experiment_tag, run.info.experiment_id, NOTE_TAG, project_description(spec, ds))
        if KIND_TAG not in client.get_experiment(run.info.experiment_id).tags:
            # Without it, MLflow 3's UI opens an experiment on its GenAI overview instead of the runs.
            tracking.upsert(client.set_experiment_tag, run.info.experiment_id, KIND_TAG, "custom_model_development")
        client.set_tag(run_id, NOTE_TAG, run_description(spec, metrics, ds, version, promotion))
        if version is None:
            return
        ids = [model_id] if model_id else model_ids(run_id)
        text = version_description(spec, metrics, params, ds, run_id, commit)
        for mid in ids:
            link_metrics(mid, metrics)
            mlflow.set_logged_model_tags(mid, {NOTE_TAG: text})  # the logged model page's description
        client.update_registered_model(spec.name, description=project_description(spec, ds))
        client.update_model_version(spec.name, version, description=text)
        for key, value in _version_tags(ds, commit, ids[0] if ids else None).items():
            client.set_model_version_tag(spec.name, version, key, value)
    except Exception as exc:  # the UI text is a courtesy; the run and its model are already logged
        log.warning("could not write the MLflow descriptions of %s (run %s): %s", spec.name, run_id, exc)
