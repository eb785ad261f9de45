"""The one thin MLflow layer: store location, experiments, logging, model registry and champions.

Default store: ``sqlite:///<repo>/mlflow.db`` with artifacts in ``<repo>/mlartifacts``, so no server is
needed; ``MLFLOW_TRACKING_URI`` points everything at a real server instead.
"""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common.datasets import Dataset, repo_root
from common.errors import ModelNotFoundError
from common.spec import ProjectSpec

log = logging.getLogger(__name__)

CHAMPION = "champion"


def tracking_uri() -> str:
    """``$MLFLOW_TRACKING_URI`` when set, else the embedded sqlite store in the checkout."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{repo_root() / 'mlflow.db'}"


def _is_local(uri: str) -> bool:
    return uri.startswith("sqlite:") or uri.startswith("file:") or "://" not in uri


def configure() -> str:
    """Point MLflow at the store (called at the start of each command, never at import)."""
    import mlflow

    uri = tracking_uri()
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return uri


def experiment(spec: ProjectSpec) -> str:
    """The project's experiment id, created on first use (one experiment per project)."""
    import mlflow

    uri = configure()
    client = mlflow.MlflowClient()
    exp = client.get_experiment_by_name(spec.name)
    if exp is None:
        location = None
        if _is_local(uri):
            # Relative artifact roots depend on the working directory; pin them next to the store.
            base = Path(uri.removeprefix("sqlite:///")).parent if uri.startswith("sqlite:") else repo_root()
            location = (base / "mlartifacts" / spec.name).as_uri()
        exp_id = client.create_experiment(spec.name, artifact_location=location, tags={"project": spec.name})
    else:
        exp_id = exp.experiment_id
    mlflow.set_experiment(experiment_id=exp_id)
    return exp_id


def git_commit() -> str:
    """The checkout's commit (with ``-dirty`` when it has uncommitted changes), or ``unknown``."""
    try:
        root = repo_root()
        sha = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root, capture_output=True, text=True, timeout=5,
        ).stdout.strip()
        return (sha + ("-dirty" if dirty else "")) if sha else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def log_dataset(ds: Dataset) -> None:
    """Log where the data came from: variant, fingerprint, row counts and every file's sha256."""
    import mlflow

    mlflow.log_params(
        {
            "dataset.name": ds.name,
            "dataset.sha256": ds.sha256[:16],
            "dataset.rows": ds.rows,
            "dataset.test_rows": ds.test_rows,
        }
    )
    mlflow.set_tags(
        {
            "dataset.sha256": ds.sha256,
            "dataset.files": json.dumps([f.__dict__ for f in ds.files])[:4900],
        }
    )
    if ds.notes:
        mlflow.log_text("\n".join(ds.notes) + "\n", "dataset_notes.txt")
    try:
        from mlflow.data.filesystem_dataset_source import FileSystemDatasetSource
        from mlflow.data.meta_dataset import MetaDataset

        src = ds.files[0].path if ds.files else "generated"
        mlflow.log_input(
            MetaDataset(source=FileSystemDatasetSource(src), name=ds.name, digest=ds.sha256[:16]),
            context="training",
        )
    except Exception as exc:  # dataset entities are a nicety; never fail a run over them
        log.debug("could not log dataset input: %s", exc)


def log_metrics(metrics: Mapping[str, float]) -> None:
    """Log finite metrics (MLflow rejects NaN in some stores)."""
    import math

    import mlflow

    clean = {k: float(v) for k, v in metrics.items() if v is not None and math.isfinite(float(v))}
    mlflow.log_metrics(clean)


def _own_types(data: bytes) -> list[str]:
    from skops.io import get_untrusted_types

    return get_untrusted_types(data=data)


SERIALIZATION_ENV = "MLPROJECTS_MODEL_FORMAT"


def choose_serialization(model: Any, preferred: str | None = None) -> tuple[str, list[str] | None]:
    """The format to log ``model`` in: cloudpickle by default, skops when asked for and it round-trips.

    cloudpickle is the default because loading is the hot path (a new process loads a champion and
    predicts one row): skops imports a large trusted-type table and rebuilds containers item by item, which
    is slow for large vocabularies (figures in the README, "Loading a champion"). skops is no safety boundary here either: MLflow reads the trusted-type list from the model's own
    MLmodel file. Load models only from stores you trust. ``MLPROJECTS_MODEL_FORMAT=skops`` (or
    ``preferred="skops"``) still logs skops files for tools that audit them; the trusted types are exactly
    the ones found in this model, which this process just trained.
    """
    fmt = (preferred or os.environ.get(SERIALIZATION_ENV) or "cloudpickle").strip().lower()
    if fmt not in ("cloudpickle", "skops"):
        from common.errors import ParameterError

        raise ParameterError(f"{SERIALIZATION_ENV} must be 'cloudpickle' or 'skops'; got {fmt!r}.")
    if fmt == "cloudpickle":
        return "cloudpickle", None
    try:
        from skops.io import dumps, loads

        data = dumps(model)
        trusted = _own_types(data)
        loads(data, trusted=trusted)
        return "skops", trusted
    except Exception as exc:  # skops raises many kinds of errors for unsupported objects
        log.warning("skops cannot serialise this model (%s); using cloudpickle", exc)
        return "cloudpickle", None


def model_size_mb(model: Any) -> float:
    """Size of the pickled model in MiB."""
    import cloudpickle

    buf = io.BytesIO()
    cloudpickle.dump(model, buf)
    return buf.tell() / 2**20


def requirements() -> list[str]:
    """Pinned requirements of the running environment for the logged model (no slow inference)."""
    from importlib.metadata import PackageNotFoundError, version

    reqs = []
    for pkg in ("mlflow", "scikit-learn", "pandas", "numpy", "scipy", "xgboost", "skops", "cloudpickle"):
        try:
            reqs.append(f"{pkg}=={version(pkg)}")
        except PackageNotFoundError:
            continue
    return reqs


def signature_for(input_example: Any, output_example: Any) -> Any:
    """The model signature. Raw tables name every column as required but accept any value type.

    Raw data is messy by nature: an integer column read from a small CSV can be float (a NaN) and a text
    column that happens to be empty reads as float. The pipeline itself converts and imputes, so the schema
    checks presence of columns (a missing one is a clear client error) and leaves types to the pipeline.
    """
    import pandas as pd
    from mlflow.models import ModelSignature, infer_signature
    from mlflow.types import ColSpec, Schema
    from mlflow.types.schema import AnyType

    if isinstance(input_example, pd.DataFrame):
        inputs = Schema([ColSpec(AnyType(), str(c), required=True) for c in input_example.columns])
        return ModelSignature(inputs=inputs, outputs=infer_signature(output_example).inputs)
    return infer_signature(input_example, output_example)


@dataclass
class ModelRecord:
    """What logging a model produced."""

    model_uri: str
    version: str | None
    serialization: str


class _KnownFormatWarning(logging.Filter):
    """Drops MLflow's per-run cloudpickle caution: the format is a documented choice (``choose_serialization``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Saving scikit-learn models in the pickle or cloudpickle")


_FORMAT_FILTER = _KnownFormatWarning()


def log_model(model: Any, spec: ProjectSpec, input_example: Any, output_example: Any) -> ModelRecord:
    """Log the whole fitted pipeline as ``model`` with signature and input example, and register it."""
    import mlflow

    logging.getLogger("mlflow.sklearn").addFilter(_FORMAT_FILTER)  # a set: adding it again is a no-op

    fmt, trusted = choose_serialization(model)
    signature = signature_for(input_example, output_example)
    info = mlflow.sklearn.log_model(
        model,
        name="model",
        signature=signature,
        input_example=input_example,
        registered_model_name=spec.name,
        serialization_format=fmt,
        skops_trusted_types=trusted,
        pip_requirements=requirements(),
    )
    version = getattr(info, "registered_model_version", None)
    return ModelRecord(model_uri=info.model_uri, version=None if version is None else str(version), serialization=fmt)


# ---------------------------------------------------------------------------------------------- champion
@dataclass
class Promotion:
    """The outcome of comparing a new model version with the champion."""

    promoted: bool
    reason: str
    new_score: float
    old_score: float | None = None
    old_version: str | None = None


def promote(
    spec: ProjectSpec,
    version: str,
    score: float,
    protocol: str,
    dataset_sha256: str,
    sampled: bool,
    force: bool = False,
) -> Promotion:
    """Make ``version`` the ``@champion`` if it beats the current one under the same protocol and data.

    A model trained on a ``--sample`` never displaces a full-data champion unless forced, and a full-data
    model always displaces a sample-trained one.
    """
    import mlflow

    client = mlflow.MlflowClient()
    tags = {
        "primary_metric": spec.primary_metric,
        "primary_score": f"{score:.6g}",
        "protocol": protocol,
        "dataset_sha256": dataset_sha256,
        "sampled": str(sampled).lower(),
    }
    for key, value in tags.items():
        client.set_model_version_tag(spec.name, version, key, value)
    try:
        current = client.get_model_version_by_alias(spec.name, CHAMPION)
    except mlflow.exceptions.MlflowException:
        current = None

    def make_champion(reason: str, old: Any = None, old_score: float | None = None) -> Promotion:
        client.set_registered_model_alias(spec.name, CHAMPION, version)
        return Promotion(True, reason, score, old_score, None if old is None else str(old.version))

    if force:
        return make_champion("--promote given")
    if current is None:
        return make_champion("first model of this project")
    old_tags = current.tags or {}
    old_score = float(old_tags["primary_score"]) if "primary_score" in old_tags else None
    comparable = old_tags.get("protocol") == protocol and old_tags.get("dataset_sha256") == dataset_sha256
    if not comparable:
        if old_tags.get("sampled") == "true" and not sampled:
            return make_champion("the champion was trained on a sample; this model used the full data", current, old_score)
        return Promotion(
            False,
            f"not comparable with champion v{current.version} (different data or protocol); "
            "use --promote to make it champion anyway",
            score, old_score, str(current.version),
        )
    # Compare at the precision the champion's score was stored with, so that retraining the same model
    # (the same score up to float noise) leaves the champion in place.
    if old_score is None or spec.better(float(f"{score:.6g}"), old_score):
        return make_champion(f"beats champion v{current.version}", current, old_score)
    return Promotion(
        False, f"does not beat champion v{current.version}", score, old_score, str(current.version)
    )


def model_uri(project: str, alias: str | None = None, version: str | int | None = None,
              run_id: str | None = None) -> str:
    """The MLflow URI of a project's model: by run, by version, or by alias (``champion`` by default)."""
    if run_id:
        return f"runs:/{run_id}/model"
    if version is not None:
        return f"models:/{project}/{version}"
    return f"models:/{project}@{alias or CHAMPION}"


def load_model(project: str, alias: str | None = None, version: str | int | None = None,
               run_id: str | None = None, make_target: str | None = None) -> Any:
    """Load a registered pipeline (the champion by default) as the fitted Python object.

    Raises:
        ModelNotFoundError: saying which ``make`` target trains one.
    """
    if run_id is None:
        from common import fastload

        path = fastload.model_dir(tracking_uri(), project, alias or CHAMPION, version)
        model = fastload.load_sklearn(path) if path is not None else None
        if model is not None:
            log.debug("loaded %s from %s without MLflow", project, path)
            return model

    import mlflow

    configure()
    uri = model_uri(project, alias, version, run_id)
    try:
        return mlflow.sklearn.load_model(uri)
    except mlflow.exceptions.MlflowException as exc:
        target = make_target or project.replace("_", "-")
        what = "no champion" if not (version or run_id or alias) else f"no model at {uri}"
        raise ModelNotFoundError(
            f"There is {what} for project '{project}' in {tracking_uri()} ({exc.message.splitlines()[0]}). "
            f"Train one with `make {target}` (or `mlprojects train {project}`)."
        ) from exc
