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
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from common.datasets import Dataset, repo_root
from common.errors import ModelNotFoundError
from common.spec import ProjectSpec

log = logging.getLogger(__name__)

CHAMPION = "champion"
T = TypeVar("T")


def tracking_uri() -> str:
    """``$MLFLOW_TRACKING_URI`` when set, else the embedded sqlite store in the checkout."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{repo_root() / 'mlflow.db'}"


def _is_local(uri: str) -> bool:
    return uri.startswith("sqlite:") or uri.startswith("file:") or "://" not in uri


def configure() -> str:
    """Point MLflow at the store (called at the start of each command, never at import).

    The first time a process opens an embedded sqlite store, it creates (or migrates) the schema under a
    file lock: two processes initialising a brand-new store at once would otherwise race in MLflow's
    migrations.
    """
    import mlflow

    uri = tracking_uri()
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    if uri.startswith("sqlite:") and uri not in _INITIALISED:
        _init_sqlite_store(uri)
    return uri


# ------------------------------------------------------------------------------------ concurrency helpers
_INITIALISED: set[str] = set()
_LOCKED_MARKERS = ("database is locked", "database table is locked")
_RETRIES = 12


def _sqlite_file(uri: str) -> Path:
    from urllib.parse import unquote

    return Path(unquote(uri.removeprefix("sqlite:///")).split("?", 1)[0])


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """An exclusive ``flock`` on ``path`` (created if needed), held for the ``with`` block."""
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _init_sqlite_store(uri: str) -> None:
    """Open the tracking and registry stores once under ``<db>.lock``, so the schema is created only once."""
    import mlflow

    with _file_lock(_sqlite_file(uri).with_name(_sqlite_file(uri).name + ".lock")):
        client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
        _retry(client.search_experiments, max_results=1)
        _retry(client.search_registered_models, max_results=1)
    _INITIALISED.add(uri)


def _is_locked_error(exc: BaseException) -> bool:
    text = str(exc)
    return any(marker in text for marker in _LOCKED_MARKERS)


def _retry(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Call ``fn``, retrying with jittered exponential backoff while sqlite says "database is locked".

    MLflow already waits 20 s on a busy sqlite database; many concurrent writers can still exceed that,
    and a training run must not fail over a lock another process is about to release.
    """
    import random
    import time

    delay = 0.05
    for attempt in range(_RETRIES):
        try:
            return fn(*args, **kwargs)
        except Exception as exc:  # sqlite3, SQLAlchemy and MLflow each wrap the same error differently
            if not _is_locked_error(exc) or attempt == _RETRIES - 1:
                raise
            log.debug("store busy (%s); retrying in %.2fs", str(exc).splitlines()[0][:80], delay)
            time.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, 2.0)
    raise AssertionError("unreachable")  # the loop returns or raises


def experiment(spec: ProjectSpec) -> str:
    """The project's experiment id, created on first use (one experiment per project).

    Create-or-get, race-free: try to create it and, when another process created it first (MLflow's
    ``RESOURCE_ALREADY_EXISTS`` or the database's unique constraint), read it by name. Callers log by the
    returned id (``start_run(experiment_id=...)``) rather than by name, so a run never lands in Default.
    """
    import mlflow

    uri = configure()
    client = mlflow.MlflowClient()
    exp = _retry(client.get_experiment_by_name, spec.name)
    if exp is None:
        location = None
        if _is_local(uri):
            # Relative artifact roots depend on the working directory; pin them next to the store.
            base = _sqlite_file(uri).parent if uri.startswith("sqlite:") else repo_root()
            location = (base / "mlartifacts" / spec.name).as_uri()
        exp_id = _create_or_get_experiment(client, spec.name, location)
    else:
        exp_id = exp.experiment_id
    _retry(mlflow.set_experiment, experiment_id=exp_id)  # for callers that log to the active experiment
    return exp_id


def _create_or_get_experiment(client: Any, name: str, location: str | None) -> str:
    """Create experiment ``name``; if a concurrent process won the race, return that one's id."""
    try:
        return _retry(client.create_experiment, name, artifact_location=location, tags={"project": name})
    except Exception as exc:  # MLflow (REST) or SQLAlchemy (embedded store) report the clash differently
        text = str(exc)
        if not any(s in text for s in ("RESOURCE_ALREADY_EXISTS", "already exists", "UNIQUE constraint",
                                       "unique constraint", "IntegrityError", "duplicate key")):
            raise
        exp = _retry(client.get_experiment_by_name, name)
        if exp is None:
            raise
        log.debug("experiment %s was created concurrently; using id %s", name, exp.experiment_id)
        return exp.experiment_id


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


def log_dataset(ds: Dataset, spec: ProjectSpec | None = None) -> None:
    """Log where the data came from: variant, fingerprint, row counts, every file's sha256, and the MLflow
    dataset entities the run page lists (training part ``train``, a shipped test part ``test``).

    ``spec`` names the target column (``spec.target``); without it the target's own name is used.
    """
    import mlflow

    from common import describe

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
    target = spec.target if spec is not None else getattr(ds.y, "name", None)
    try:
        describe.log_dataset_inputs(ds, target)
    except Exception as exc:  # the entities are for the UI; the params and tags above already identify the data
        log.warning("could not log the dataset %r to MLflow's dataset view: %s: %s", ds.name, type(exc).__name__, exc)


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

    from common.describe import quiet_schema_hint

    with quiet_schema_hint():  # MLflow's integer-column hint: types are the pipeline's job (see above)
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
    model_id: str | None = None  # MLflow 3's LoggedModel id: metrics linked to it show on the model page


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
    return ModelRecord(model_uri=info.model_uri, version=None if version is None else str(version), serialization=fmt,
                       model_id=getattr(info, "model_id", None))


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

    Safe under concurrent trainings (several processes, one store): each trainer writes its version's
    tags, sets the alias if it wins against the champion it reads, then runs a convergent repair
    (``_repair_champion``): it re-reads the alias and every version's tags and moves the alias to the best
    *comparable* version (same ``protocol`` and ``dataset_sha256`` tags as the champion; ``primary_score``
    compared with ``spec.better``; ties go to the lowest version number), repeating until a read shows the
    alias where the rule puts it. The last trainer to finish therefore leaves the right champion for any
    interleaving. Two documented refinements:

    * ``--promote`` tags the version ``forced=true`` and acts as a barrier: within its group only versions
      numbered at or above the latest forced one compete, so a forced champion stays unless a *later*
      version beats it (an earlier one that finished later does not undo it).
    * A sample-trained champion (not forced) gives way to the newest full-data version under the same
      protocol, and then the best version of that version's data group wins.
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
    if force:
        tags["forced"] = "true"
    for key, value in tags.items():
        _retry(client.set_model_version_tag, spec.name, version, key, value)
    current = _champion(client, spec.name)
    decision = _decide(spec, version, score, protocol, dataset_sha256, sampled, force, current)
    if decision.promoted:
        _retry(client.set_registered_model_alias, spec.name, CHAMPION, version)
    final = _repair_champion(client, spec)
    if final is None or final == str(version):
        if final is not None and not decision.promoted:
            decision = Promotion(True, "the best comparable version (after concurrent trainings)", score,
                                 decision.old_score, decision.old_version)
        return decision
    winner = _champion(client, spec.name)
    win_tags = (winner.tags or {}) if winner is not None else {}
    win_score = float(win_tags["primary_score"]) if "primary_score" in win_tags else None
    reason = decision.reason if not decision.promoted else f"v{final}, trained concurrently, is better"
    return Promotion(False, reason, score, win_score, final)


def _champion(client: Any, name: str) -> Any:
    """The version holding ``@champion``, or None."""
    import mlflow

    try:
        return _retry(client.get_model_version_by_alias, name, CHAMPION)
    except mlflow.exceptions.MlflowException:
        return None


def _decide(spec: ProjectSpec, version: str, score: float, protocol: str, dataset_sha256: str,
            sampled: bool, force: bool, current: Any) -> Promotion:
    """Whether ``version`` should take the alias from ``current`` (the sequential rule, no writes)."""
    if force:
        return Promotion(True, "--promote given", score)
    if current is None:
        return Promotion(True, "first model of this project", score)
    old_tags = current.tags or {}
    old_version = str(current.version)
    old_score = float(old_tags["primary_score"]) if "primary_score" in old_tags else None
    comparable = old_tags.get("protocol") == protocol and old_tags.get("dataset_sha256") == dataset_sha256
    if not comparable:
        if old_tags.get("sampled") == "true" and not sampled:
            return Promotion(True, "the champion was trained on a sample; this model used the full data",
                             score, old_score, old_version)
        return Promotion(
            False,
            f"not comparable with champion v{old_version} (different data or protocol); "
            "use --promote to make it champion anyway",
            score, old_score, old_version,
        )
    if old_tags.get("forced") == "true" and int(version) < int(old_version):
        return Promotion(False, f"champion v{old_version} was promoted by hand after this version was "
                         "registered", score, old_score, old_version)
    # Compare at the precision the champion's score was stored with, so that retraining the same model
    # (the same score up to float noise) leaves the champion in place.
    if old_score is None or spec.better(float(f"{score:.6g}"), old_score):
        return Promotion(True, f"beats champion v{old_version}", score, old_score, old_version)
    return Promotion(False, f"does not beat champion v{old_version}", score, old_score, old_version)


@dataclass(frozen=True)
class _Candidate:
    version: int
    score: float
    protocol: str
    dataset: str
    sampled: bool
    forced: bool


def _candidates(versions: Any) -> dict[int, _Candidate]:
    """Versions whose trainer has finished writing the promotion tags, by version number."""
    out: dict[int, _Candidate] = {}
    for mv in versions:
        tags = mv.tags or {}
        if not {"primary_score", "protocol", "dataset_sha256"} <= tags.keys():
            continue
        try:
            score = float(tags["primary_score"])
        except ValueError:
            continue
        out[int(mv.version)] = _Candidate(int(mv.version), score, tags["protocol"], tags["dataset_sha256"],
                                          tags.get("sampled") == "true", tags.get("forced") == "true")
    return out


def champion_target(spec: ProjectSpec, champion: int | None, candidates: Mapping[int, _Candidate]) -> int | None:
    """Where the repair rule puts ``@champion`` given the current holder and all tagged versions.

    Pure function (the rule documented in ``promote``): the group is the champion's protocol and dataset
    (or, for a sample-trained champion that was not forced, the newest full-data version's); within it,
    versions from the latest forced one onwards compete; best ``primary_score`` wins, ties to the lowest
    version. None (leave the alias alone) when there is no champion or it carries no tags yet.
    """
    base = candidates.get(champion) if champion is not None else None
    if base is None:
        return champion
    if base.sampled and not base.forced:
        full = [c for c in candidates.values() if not c.sampled and c.protocol == base.protocol]
        if full:
            base = max(full, key=lambda c: c.version)
    group = [c for c in candidates.values() if c.protocol == base.protocol and c.dataset == base.dataset]
    barrier = max((c.version for c in group if c.forced), default=0)
    group = [c for c in group if c.version >= barrier]
    best = None
    for cand in sorted(group, key=lambda c: c.version):  # ascending: an equal score never displaces
        if best is None or spec.better(cand.score, best.score):
            best = cand
    return best.version if best is not None else champion


def _repair_champion(client: Any, spec: ProjectSpec, rounds: int = 10) -> str | None:
    """Move ``@champion`` until a fresh read agrees with ``champion_target``; returns the final holder.

    Every trainer runs this after writing its own tags, and always re-reads after its own write, so the
    last reader sees every version's tags and any stale write is corrected by its writer's next read.
    """
    holder: str | None = None
    for _ in range(rounds):
        current = _champion(client, spec.name)
        holder = None if current is None else str(current.version)
        versions = _retry(client.search_model_versions, f"name='{spec.name}'")
        target = champion_target(spec, None if holder is None else int(holder), _candidates(versions))
        if target is None or str(target) == holder:
            return holder
        log.info("moving @champion of %s from v%s to v%s (concurrent trainings)", spec.name, holder, target)
        _retry(client.set_registered_model_alias, spec.name, CHAMPION, str(target))
    log.warning("@champion of %s did not settle after %d rounds; it is v%s", spec.name, rounds, holder)
    return holder


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

    uri = model_uri(project, alias, version, run_id)
    try:
        configure()  # opening the store can fail too (an out-of-date schema): the same clear error
        return mlflow.sklearn.load_model(uri)
    except mlflow.exceptions.MlflowException as exc:
        target = make_target or project.replace("_", "-")
        what = "no champion" if not (version or run_id or alias) else f"no model at {uri}"
        raise ModelNotFoundError(
            f"There is {what} for project '{project}' in {tracking_uri()} ({exc.message.splitlines()[0]}). "
            f"Train one with `make {target}` (or `mlprojects train {project}`)."
        ) from exc
