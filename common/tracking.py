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


def configure(create: bool = False) -> str:
    """Point MLflow at the store (called at the start of each command, never at import).

    For an embedded sqlite store the file is checked first (``_check_sqlite_store``): only a writing
    command (``create=True``: train, train-all, evaluate, through ``experiment``) may create a missing
    store, because a mistyped path would otherwise silently start a new, empty store. A file that is not an
    MLflow store, or one a writer keeps locked, raises ``StoreError`` rather than SQLAlchemy's own errors.

    The first time a process opens an embedded sqlite store, it creates (or migrates) the schema under a
    file lock: two processes initialising a brand-new store at once would otherwise race in MLflow's
    migrations. A writing command then marks its host's dead training runs KILLED (``_sweep_once``).
    """
    import mlflow

    uri = tracking_uri()
    if uri.startswith("sqlite:") and uri not in _INITIALISED:
        _check_sqlite_store(uri, create)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    if uri.startswith("sqlite:") and uri not in _INITIALISED:
        try:
            _init_sqlite_store(uri)
        except Exception as exc:  # a lock outlasting the retries, or a file SQLAlchemy cannot open
            error = _store_error(uri, exc)
            if error is exc:
                raise
            raise error from exc
    if create:
        _sweep_once(uri)
    return uri


_PROBE_TIMEOUT = 5.0  # seconds sqlite waits on a writer's lock per probe attempt (then ``_retry`` backs off)
_SQLITE_MAGIC = b"SQLite format 3\x00"
_MLFLOW_TABLES = frozenset({"alembic_version", "experiments", "runs"})
_SWEPT: set[str] = set()


def _store_hint(uri: str) -> str:
    """Where the URI came from, for error messages."""
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return f"MLFLOW_TRACKING_URI={uri}"
    return f"the default store {uri} (MLFLOW_TRACKING_URI is not set)"


def _check_sqlite_store(uri: str, create: bool) -> None:
    """Refuse a missing, foreign or locked sqlite store with a ``StoreError`` that says what to do.

    Nothing is created here: the read-only probe opens the file with ``mode=ro`` (a plain
    ``sqlite3.connect`` would create it), and a missing store is created later by MLflow only when
    ``create`` is true and its folder exists (a missing folder is more likely a typo than a wish).
    """
    from common.errors import StoreError

    raw = uri.removeprefix("sqlite:///")
    if raw == uri or raw.split("?", 1)[0] in ("", ":memory:"):
        return  # in-memory or unusual forms: MLflow decides
    path = _sqlite_file(uri)
    if not path.exists():
        if not create:
            raise StoreError(
                f"No MLflow store at {path}: the file does not exist, and nothing was created. "
                f"This command only reads the store named by {_store_hint(uri)}. If this is a new checkout, "
                "train a project first (`make house-prices` or `mlprojects train house_prices`) to create it; "
                "otherwise fix MLFLOW_TRACKING_URI (a typo in the path?)."
            )
        if not path.parent.is_dir():
            raise StoreError(
                f"Cannot create the MLflow store {path}: the folder {path.parent} does not exist (a typo in "
                f"{_store_hint(uri)}?). Nothing was created. Fix MLFLOW_TRACKING_URI, or create the folder "
                f"first (`mkdir -p {path.parent}`) if a new store there is what you want."
            )
        return
    if path.is_dir():
        raise StoreError(f"{path} is a folder, not an MLflow store ({_store_hint(uri)}). "
                         "Point MLFLOW_TRACKING_URI at the store's .db file.")
    tables = _probe_sqlite(uri, path)
    if not _MLFLOW_TABLES <= tables and not (create and not tables):
        # Another process may be creating the schema right now, under the lock ``_init_sqlite_store``
        # holds: read again once it is done before calling the file foreign.
        try:
            with _file_lock(path.with_name(path.name + ".lock")):
                tables = _probe_sqlite(uri, path)
        except OSError:  # a read-only folder: no lock file, and the first reading stands
            pass
    if not tables and create:
        return  # an empty SQLite file (or database): MLflow creates its tables in it
    if not _MLFLOW_TABLES <= tables:
        what = "an empty file" if not tables and path.stat().st_size == 0 else (
            "a SQLite database without MLflow's tables" if tables else "an empty SQLite database")
        raise StoreError(f"{path} is not an MLflow store: it is {what} ({_store_hint(uri)}). "
                         "Point MLFLOW_TRACKING_URI at an MLflow store's .db file, or at a new path to start one "
                         "by training a project.")


def _probe_sqlite(uri: str, path: Path) -> set[str]:
    """The table names in ``path``, read-only; ``StoreError`` when it is not SQLite or stays locked."""
    import sqlite3
    from contextlib import closing

    from common.errors import StoreError

    try:
        with open(path, "rb") as handle:
            head = handle.read(len(_SQLITE_MAGIC))
    except OSError as exc:
        raise StoreError(f"Cannot read the MLflow store {path}: {exc.strerror} ({_store_hint(uri)}).") from exc
    if head and head != _SQLITE_MAGIC:
        raise StoreError(f"{path} is not an MLflow store: it is not a SQLite database ({_store_hint(uri)}). "
                         "Point MLFLOW_TRACKING_URI at the store's .db file.")

    def read() -> set[str]:
        with closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True,
                                     timeout=_PROBE_TIMEOUT)) as con:
            return {row[0] for row in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}

    try:
        return _retry(read)
    except sqlite3.Error as exc:  # reading the table list failed: the file is not usable as a store
        error = _store_error(uri, exc)
        if error is exc:
            error = StoreError(f"Cannot read the MLflow store {path}: {str(exc).splitlines()[0][:120]} "
                               f"({_store_hint(uri)}).")
        raise error from exc


def _store_error(uri: str, exc: BaseException) -> Exception:
    """``StoreError`` for a locked or unreadable sqlite store; any other error is returned unchanged."""
    from common.errors import StoreError

    path = _sqlite_file(uri)
    text = str(exc)
    if _is_locked_error(exc):
        return StoreError(
            f"The MLflow store {path} stayed locked by another process through {_RETRIES} attempts "
            f"({_store_hint(uri)}). Another command is writing to it: try again when it has finished. If none "
            f"is running, a stuck process may hold the file open (`fuser {path}` names it)."
        )
    if any(s in text for s in ("file is not a database", "file is encrypted", "malformed")):
        return StoreError(f"{path} is not an MLflow store: SQLite cannot read it ({text.splitlines()[0][:120]}; "
                          f"{_store_hint(uri)}).")
    return exc if isinstance(exc, Exception) else RuntimeError(text)


def _sweep_once(uri: str) -> None:
    """Mark this host's dead training runs KILLED, once per store and process; never fatal.

    Runs when a writing command opens the store (``configure(create=True)``), so debris from a ``kill -9``
    does not accumulate; ``mlprojects doctor`` does the full check.
    """
    if uri in _SWEPT:
        return
    _SWEPT.add(uri)
    try:
        from common import store

        killed = store.sweep(uri)
    except Exception as exc:  # housekeeping must never stop a training
        log.warning("could not check for dead training runs (%s: %s); `mlprojects doctor` can",
                    type(exc).__name__, str(exc).splitlines()[0][:120] if str(exc) else "")
        return
    if killed:
        log.info("marked %d run(s) KILLED whose training process on this host is gone: %s",
                 len(killed), ", ".join(killed))


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


# The unique-key error of each SQL backend MLflow supports (PostgreSQL, sqlite, MySQL, SQL Server), lower case.
_UNIQUE_MARKERS = ("duplicate key value violates unique constraint", "unique constraint failed",
                   "duplicate entry", "violation of primary key constraint")


def _is_unique_clash(exc: BaseException) -> bool:
    """Whether ``exc`` is a database's unique-key violation (another writer inserted the same key first)."""
    text = str(exc).lower()
    return any(marker in text for marker in _UNIQUE_MARKERS)


def upsert(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Call one of MLflow's ``set_*`` methods (an alias, an experiment tag), safe against a concurrent writer.

    MLflow's SQL stores set these by select-then-insert (``session.merge``), so two processes that set the
    same new key at the same moment both insert, and one gets the table's unique-key error (seen on
    PostgreSQL behind ``mlflow server`` when four trainings set a model's first ``@champion``). The row
    exists by then, so setting it again updates it.
    """
    for attempt in range(_RETRIES):
        try:
            return _retry(fn, *args, **kwargs)
        except Exception as exc:  # RestException (server) or MlflowException (embedded store)
            if not _is_unique_clash(exc) or attempt == _RETRIES - 1:
                raise
            log.debug("%s: another process inserted the same key first; setting it again",
                      getattr(fn, "__name__", fn))
    raise AssertionError("unreachable")  # the loop returns or raises


def set_champion(client: Any, name: str, version: str | int) -> None:
    """Point ``@champion`` of model ``name`` at ``version`` (concurrent writers: see ``upsert``).

    Which version ends up holding it when several trainers race is settled by ``_repair_champion``.
    """
    upsert(client.set_registered_model_alias, name, CHAMPION, str(version))


def experiment(spec: ProjectSpec, create: bool = False) -> str:
    """The project's experiment id, created on first use (one experiment per project).

    ``create=True`` (the training path) may also create a missing sqlite store; see ``configure``.

    Create-or-get, race-free: try to create it and, when another process created it first (MLflow's
    ``RESOURCE_ALREADY_EXISTS`` or the database's unique constraint), read it by name. Callers log by the
    returned id (``start_run(experiment_id=...)``) rather than by name, so a run never lands in Default.
    """
    import mlflow

    uri = configure(create=create)
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
        if not (_is_unique_clash(exc) or any(s in text for s in ("RESOURCE_ALREADY_EXISTS", "already exists",
                                                                "IntegrityError"))):
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


class _CautionOnce(logging.Filter):
    """Lets MLflow's pickle caution through once per process: ``make all`` registers 13 models, and the same
    paragraph 13 times buries the rest of the output, while hiding it entirely would hide a real warning."""

    def __init__(self) -> None:
        super().__init__()
        self.shown = False

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.getMessage().startswith("Saving scikit-learn models in the pickle or cloudpickle"):
            return True
        if self.shown:
            return False
        self.shown = True
        return True


_CAUTION_ONCE = _CautionOnce()


def log_model(model: Any, spec: ProjectSpec, input_example: Any, output_example: Any) -> ModelRecord:
    """Log the whole fitted pipeline as ``model`` with signature and input example, and register it.

    MLflow's own caution about pickle formats stays visible, once per process (``_CautionOnce``). The sha256
    of the serialized model file is recorded as the ``model_sha256`` tag of the version and of the run
    (``record_digest``) before the version can be promoted; loading checks it before unpickling.
    """
    import mlflow

    logging.getLogger("mlflow.sklearn").addFilter(_CAUTION_ONCE)  # a set: adding it again is a no-op
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
    version = None if version is None else str(version)
    record_digest(spec.name, version, info.run_id, info.model_uri)
    return ModelRecord(model_uri=info.model_uri, version=version, serialization=fmt,
                       model_id=getattr(info, "model_id", None))


def record_digest(project: str, version: str | None, run_id: str | None, logged_uri: str) -> str:
    """Hash the model file as the store now holds it and tag the version (and the run) with it.

    The folder is read back through ``mlflow.artifacts.download_artifacts`` (the public API; a local store
    copies it into a temporary folder), so the same code serves a local store and a server with proxied
    artifacts: the digest is of the bytes a later load will read, not of a second serialization here.
    """
    import tempfile

    import mlflow

    from common import fastload

    source = f"models:/{project}/{version}" if version is not None else logged_uri
    with tempfile.TemporaryDirectory(prefix="mlprojects-digest-") as tmp:
        local = Path(_retry(mlflow.artifacts.download_artifacts, artifact_uri=source, dst_path=tmp))
        target = fastload.LoadTarget(f"the new version of {project}", source, tracking_uri(), "")
        conf = fastload.read_flavor(local, target)
        digest = fastload.file_sha256(local / conf["pickled_model"])
    client = mlflow.MlflowClient()
    if version is not None:
        _retry(client.set_model_version_tag, project, version, fastload.DIGEST_TAG, digest)
    if run_id:
        _retry(client.set_tag, run_id, fastload.DIGEST_TAG, digest)
    log.debug("recorded %s=%s for %s v%s", fastload.DIGEST_TAG, digest, project, version)
    return digest


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
        set_champion(client, spec.name, version)
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
        set_champion(client, spec.name, target)
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

    The model file is checked against the sha256 recorded when it was logged (tag ``model_sha256``) before
    it is unpickled; versions logged before digests were recorded load with a warning.

    Raises:
        ModelNotFoundError: no such version, alias or run (saying which ``make`` target trains one).
        ModelIntegrityError: the model file differs from the one that was logged.
        ModelLoadError: the version exists but its artifacts are missing or damaged, or loading is disabled.
    """
    remedy = _remedy(project, make_target)
    if run_id is None:
        from common import fastload

        found = fastload.locate(tracking_uri(), project, alias or CHAMPION, version)
        if found is not None:
            target = fastload.LoadTarget(_version_label(project, alias, version, found.version), str(found.path),
                                         tracking_uri(), remedy)
            model = fastload.load_sklearn(found.path, found.sha256, target)
            if model is not None:
                log.debug("loaded %s from %s without MLflow", project, found.path)
                return model
    return _load_with_mlflow(project, alias, version, run_id, make_target, remedy)


def _remedy(project: str, make_target: str | None) -> str:
    target = make_target or project.replace("_", "-")
    return (f"Retrain it (`make {target}` or `mlprojects train {project}`), or re-register the model from a "
            "store you trust.")


def _version_label(project: str, alias: str | None, version: str | int | None, number: str | None,
                   run_id: str | None = None) -> str:
    """How messages name what is loaded: "champion v3 of house_prices", "v2 of spam", "the model of run …"."""
    if run_id:
        return f"the model of run {run_id} ({project})"
    if version is not None:
        return f"v{number} of {project}"
    return f"{alias or CHAMPION} v{number} of {project}"


def _load_with_mlflow(project: str, alias: str | None, version: str | int | None, run_id: str | None,
                      make_target: str | None, remedy: str) -> Any:
    """The MLflow path (any store): resolve the version, download its folder, verify the file, then load it.

    The alias is resolved once and the resolved version is downloaded, so the digest and the bytes belong
    to the same version even if the alias moves meanwhile; ``mlflow.sklearn.load_model`` then loads that
    local folder, so the bytes verified are the bytes loaded.
    """
    import tempfile

    import mlflow

    from common.errors import ModelLoadError

    with tempfile.TemporaryDirectory(prefix="mlprojects-load-") as tmp:
        local, conf, label, where = _download_verified(project, alias, version, run_id, make_target, remedy,
                                                       Path(tmp))
        try:
            return mlflow.sklearn.load_model(str(local))
        except Exception as exc:  # a damaged pickle raises almost anything; MLflow wraps some of it
            raise ModelLoadError(
                f"{label} is registered but its model file {where}/{conf['pickled_model']} could not be loaded "
                f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else 'no detail'}): it is "
                f"damaged or was written with incompatible library versions. {remedy}"
            ) from exc


def download_verified_model(project: str, dst: Path, alias: str | None = None, version: str | int | None = None,
                            run_id: str | None = None, make_target: str | None = None) -> tuple[Path, str]:
    """Download a model's MLflow folder into ``dst`` and check its model file against the recorded sha256.

    For engines that load the model themselves from a local folder (``mlflow.pyfunc.spark_udf``): they get
    the bytes that were verified, as ``load_model`` does. Returns the folder and a label for messages
    ("champion v3 of churn").

    Raises:
        ModelNotFoundError, ModelIntegrityError, ModelLoadError: as ``load_model``.
    """
    local, _, label, _ = _download_verified(project, alias, version, run_id, make_target,
                                            _remedy(project, make_target), Path(dst))
    return local, label


def _download_verified(project: str, alias: str | None, version: str | int | None, run_id: str | None,
                       make_target: str | None, remedy: str, dst: Path) -> tuple[Path, dict[str, Any], str, str]:
    """Resolve the version once, download its folder into ``dst`` and verify the model file's digest.

    Returns (local folder, the sklearn flavor's configuration, label for messages, where it is stored).
    """
    import mlflow

    from common import fastload
    from common.errors import ModelLoadError

    uri = model_uri(project, alias, version, run_id)
    try:
        configure()  # opening the store can fail too (an out-of-date schema): the same clear error
        client = mlflow.MlflowClient()
        if run_id:
            expected = _retry(client.get_run, run_id).data.tags.get(fastload.DIGEST_TAG)
            number, source, location = None, uri, uri
        else:
            if version is not None:
                # First the call mlflow.sklearn.load_model makes for a version URI, so errors read the same.
                _retry(client.get_model_version_download_uri, project, str(version))
                mv = _retry(client.get_model_version, project, str(version))
            else:
                mv = _retry(client.get_model_version_by_alias, project, alias or CHAMPION)
            number, expected = str(mv.version), (mv.tags or {}).get(fastload.DIGEST_TAG)
            source = f"models:/{project}/{number}"
            location = _retry(client.get_model_version_download_uri, project, number)
    except mlflow.exceptions.MlflowException as exc:
        target = make_target or project.replace("_", "-")
        what = "no champion" if not (version or run_id or alias) else f"no model at {uri}"
        raise ModelNotFoundError(
            f"There is {what} for project '{project}' in {tracking_uri()} ({exc.message.splitlines()[0]}). "
            f"Train one with `make {target}` (or `mlprojects train {project}`)."
        ) from exc
    label = _version_label(project, alias, version, number, run_id)
    folder = fastload.local_dir(location)
    where = str(folder) if folder is not None else location  # for messages: a path where the store is local
    if not fastload.pickle_allowed():
        raise ModelLoadError(
            f"{label} was not loaded: MLFLOW_ALLOW_PICKLE_DESERIALIZATION is set to "
            f"{os.environ.get('MLFLOW_ALLOW_PICKLE_DESERIALIZATION')!r}, which disables loading pickled and "
            "skops models (loading them runs code). Set it to 'true' only for stores you trust."
        )
    try:
        local = Path(_retry(mlflow.artifacts.download_artifacts, artifact_uri=source, dst_path=str(dst)))
    except Exception as exc:  # MLflow, HTTP and OS errors all mean "the folder cannot be read"
        state = "is missing" if _missing_locally(where) else "could not be downloaded"
        raise ModelLoadError(
            f"{label} is registered in {tracking_uri()} but its artifact folder {where} {state} "
            f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else 'no detail'}). {remedy}"
        ) from exc
    # MLflow "downloads" a missing folder as an empty one rather than failing: say which it is.
    if not (local / "MLmodel").exists() and (_missing_locally(where) or not any(local.iterdir())):
        state = "is missing" if _missing_locally(where) else "is empty or missing"
        raise ModelLoadError(f"{label} is registered in {tracking_uri()} but its artifact folder {where} "
                             f"{state}. {remedy}")
    target = fastload.LoadTarget(label, where, tracking_uri(), remedy)
    conf = fastload.read_flavor(local, target)
    fastload.verify_file(local / conf["pickled_model"], expected, target)
    fastload.announce(local / conf["pickled_model"], conf.get("serialization_format", "pickle"), target)
    return local, conf, label, where


def _missing_locally(where: str) -> bool:
    return where.startswith("/") and not Path(where).exists()
