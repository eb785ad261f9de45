"""Load a registered model from the embedded sqlite store without importing MLflow.

For the default local store (``sqlite:///...`` with artifacts on disk) a model version's directory is
found with read-only SQL on MLflow's registry tables and loaded as ``mlflow.sklearn`` would (skops with
the logged trusted types, or cloudpickle). What this saves is measured by ``mlprojects load-time``
(``make load-time``; figures in the README). The same read-only SQL reads the version's ``model_sha256``
tag, and the model file is checked against it before it is unpickled (``verify_file``, shared with the
MLflow path in ``common.tracking``).

The tables are private to MLflow, so they are read only on schema revisions listed in
``VERIFIED_SCHEMA_REVISIONS``, each checked against MLflow by ``tests/test_fastload_contract.py``.
Anything else (another revision, a server URI, a remote artifact store, workspaces, a deleted or
unfinished version, code paths logged with the model) returns ``None`` so the caller falls back to
MLflow itself: this is a fast path, never a second source of truth.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sqlite3
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

log = logging.getLogger(__name__)

#: Alembic revisions (``alembic_version.version_num``) of the MLflow stores this module's queries were
#: verified on by ``tests/test_fastload_contract.py``. Add one only after those tests pass on it.
VERIFIED_SCHEMA_REVISIONS: frozenset[str] = frozenset({
    "dc11669786a5",  # MLflow 3.17.2 (head: add_job_executor_persistence_model)
})

_READY = "READY"  # ModelVersionStatus.READY
_DELETED = "Deleted_Internal"  # STAGE_DELETED_INTERNAL: delete_model_version keeps the row, status READY
_DEFAULT_WORKSPACE = "default"
_LATEST = "latest"  # a reserved alias MLflow resolves to the newest version, never a table row

#: Model-version (and run) tag holding the sha256 of the serialized model file, set when it is logged.
DIGEST_TAG = "model_sha256"


def _sqlite_path(uri: str) -> Path | None:
    if not uri.startswith("sqlite:///"):
        return None
    path = Path(unquote(uri.removeprefix("sqlite:///")).split("?", 1)[0])
    if not path.is_absolute():
        path = Path.cwd() / path
    return path if path.is_file() else None


def local_dir(location: str | None) -> Path | None:
    """The local folder a ``file:`` URI or absolute path names; ``None`` for remote locations."""
    if not location:
        return None
    parsed = urlparse(location)
    if parsed.scheme == "file":
        return Path(unquote(parsed.path))
    if parsed.scheme == "" and location.startswith("/"):
        return Path(location)
    return None


def _workspaces_enabled() -> bool:
    return os.environ.get("MLFLOW_ENABLE_WORKSPACES", "").strip().lower() not in ("", "false", "0")


def _storage_location(con: sqlite3.Connection, project: str, alias: str | None,
                      version: str | int | None) -> tuple[str, str, str | None] | None:
    """The version's number, ``storage_location`` and ``model_sha256`` tag where MLflow would serve it, else
    ``None`` (reason logged)."""
    revisions = [r[0] for r in con.execute("SELECT version_num FROM alembic_version").fetchall()]
    if len(revisions) != 1 or revisions[0] not in VERIFIED_SCHEMA_REVISIONS:
        log.debug("fast model lookup skipped: schema revision %s is not in VERIFIED_SCHEMA_REVISIONS %s; "
                  "using MLflow", revisions, sorted(VERIFIED_SCHEMA_REVISIONS))
        return None
    # Without workspaces MLflow refuses a store holding models outside the default workspace.
    if con.execute("SELECT 1 FROM registered_models WHERE workspace != ? LIMIT 1",
                   (_DEFAULT_WORKSPACE,)).fetchone():
        log.debug("fast model lookup skipped: registered models outside the default workspace; using MLflow")
        return None
    # Exactly one row or MLflow decides.
    if version is None:
        rows = con.execute(
            "SELECT version FROM registered_model_aliases WHERE name = ? AND alias = ?", (project, alias)
        ).fetchall()
        if len(rows) != 1:
            return None
        version = rows[0][0]
    rows = con.execute(
        "SELECT storage_location, status, current_stage FROM model_versions WHERE name = ? AND version = ?",
        (project, int(version)),
    ).fetchall()
    if len(rows) != 1:
        return None
    location, status, stage = rows[0]
    # MLflow hides deleted versions (and aliases to them) with `current_stage != 'Deleted_Internal'`,
    # which SQL also makes false for a NULL stage; anything not READY is left to MLflow as well.
    if stage is None or stage == _DELETED or status != _READY:
        log.debug("fast model lookup skipped: %s v%s has stage %s, status %s; using MLflow",
                  project, version, stage, status)
        return None
    # Read in the same connection (one snapshot) as the location, so the digest belongs to that version.
    tags = con.execute(
        "SELECT value FROM model_version_tags WHERE name = ? AND version = ? AND key = ?",
        (project, int(version), DIGEST_TAG),
    ).fetchall()
    return str(version), location, (tags[0][0] if tags else None)


@dataclass(frozen=True)
class ModelLocation:
    """A registered version as the registry tables describe it."""

    version: str
    path: Path  # the version's artifact folder, holding the MLmodel file
    sha256: str | None  # the ``model_sha256`` tag: None for versions logged before digests were recorded


def locate(uri: str, project: str, alias: str | None, version: str | int | None) -> ModelLocation | None:
    """``project``'s model version (by version, else by alias) with its local folder and recorded digest.

    ``None`` means "not resolvable here" (a missing, deleted or unfinished version or alias, an
    unverified schema revision, a non-local store, a folder without an MLmodel file): the caller falls back
    to MLflow, which reports it.
    """
    if _workspaces_enabled() or (version is None and (alias is None or alias.lower() == _LATEST)):
        return None
    db = _sqlite_path(uri)
    if db is None:
        return None
    try:
        with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)) as con:
            found = _storage_location(con, project, alias, version)
    except (sqlite3.Error, ValueError, TypeError) as exc:
        log.debug("fast model lookup failed (%s); using MLflow", exc)
        return None
    if found is None:
        return None
    number, location, digest = found
    path = local_dir(location)
    if path is None or not (path / "MLmodel").is_file():
        return None
    return ModelLocation(number, path, digest)


def model_dir(uri: str, project: str, alias: str | None, version: str | int | None) -> Path | None:
    """The local directory of ``project``'s model version (by version, else by alias), or ``None``.

    ``None`` means "not resolvable here" (see ``locate``): the caller falls back to MLflow.
    """
    found = locate(uri, project, alias, version)
    return found.path if found is not None else None


# ------------------------------------------------------------------ checked loading (shared with MLflow's path)
@dataclass(frozen=True)
class LoadTarget:
    """What is being loaded, for log lines and error messages."""

    label: str  # e.g. "champion v3 of house_prices"
    where: str  # the artifact folder as the store names it (not a temporary download)
    store: str  # the tracking URI the version was found in
    remedy: str  # how to get a good model again


def pickle_allowed() -> bool:
    """MLflow's switch: ``MLFLOW_ALLOW_PICKLE_DESERIALIZATION`` (default true) gates every sklearn format."""
    return os.environ.get("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "true").strip().lower() in ("true", "1")


def read_flavor(path: Path, target: LoadTarget) -> dict[str, Any]:
    """The ``sklearn`` flavor of the MLmodel file in ``path``.

    Raises:
        ModelLoadError: the MLmodel file is missing, is not valid YAML, or has no sklearn flavor.
    """
    import yaml

    from common.errors import ModelLoadError

    shown = f"{target.where}/MLmodel"
    try:
        meta = yaml.safe_load((path / "MLmodel").read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ModelLoadError(f"{target.label} is registered but its MLmodel file {shown} cannot be read "
                             f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}). "
                             f"{target.remedy}") from exc
    flavors = meta.get("flavors") if isinstance(meta, dict) else None
    conf = flavors.get("sklearn") if isinstance(flavors, dict) else None
    if not isinstance(conf, dict) or not isinstance(conf.get("pickled_model"), str):
        raise ModelLoadError(f"{target.label} is registered but its MLmodel file {shown} has no valid sklearn "
                             f"flavor (flavors.sklearn.pickled_model). {target.remedy}")
    return conf


def file_sha256(path: Path) -> str:
    """The hex sha256 of a file, read in chunks (models can be large)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_file(file: Path, expected: str | None, target: LoadTarget) -> None:
    """Check ``file`` against the digest recorded at logging time, before anything unpickles it.

    Versions logged before digests were recorded have none: they load, with a warning naming the version.

    Raises:
        ModelLoadError: the file is missing.
        ModelIntegrityError: its sha256 differs from ``expected``.
    """
    from common.errors import ModelIntegrityError, ModelLoadError

    shown = f"{target.where}/{file.name}"
    if not file.is_file():
        raise ModelLoadError(f"{target.label} is registered but its model file {shown} is missing. {target.remedy}")
    if expected is None:
        log.warning("%s has no recorded sha256 (tag %s; it was logged before digests were recorded), so %s is "
                    "loaded unverified. Retrain it to record one.", target.label, DIGEST_TAG, shown)
        return
    actual = file_sha256(file)
    if actual != expected.strip().lower():
        raise ModelIntegrityError(
            f"{target.label}: {shown} has sha256 {actual}, but {expected} was recorded when it was logged "
            f"(tag {DIGEST_TAG}). The file changed after logging (tampered with or damaged), so it was not "
            f"loaded. {target.remedy}"
        )


def announce(file: Path, fmt: str, target: LoadTarget) -> None:
    """Say, once per load and before the bytes run, where the model comes from and that loading runs code.

    A pickle runs code when it is loaded, and so can a skops file, whose trusted types come from the same
    MLmodel file: the digest only proves the file is the one that was logged, not that the store is honest.
    """
    log.info("loading %s from %s (%s/%s, format %s): loading it runs code from the file; only load models "
             "from stores you trust (MLFLOW_ALLOW_PICKLE_DESERIALIZATION=false refuses to load any)",
             target.label, target.store, target.where, file.name, fmt)


def deserialize(file: Path, conf: dict[str, Any], target: LoadTarget) -> Any:
    """Unpickle (or skops-load) a verified model file exactly as ``mlflow.sklearn`` does.

    Raises:
        ModelLoadError: the file cannot be deserialized (damaged, or written by incompatible libraries).
    """
    from common.errors import ModelLoadError

    fmt = conf.get("serialization_format", "pickle")
    announce(file, fmt, target)
    try:
        if fmt == "skops":
            import skops.io

            return skops.io.load(file, trusted=conf.get("skops_trusted_types"))
        with open(file, "rb") as f:
            if fmt == "cloudpickle":
                import cloudpickle

                return cloudpickle.load(f)
            import pickle

            return pickle.load(f)
    except Exception as exc:  # a damaged pickle can raise almost anything (EOFError, UnpicklingError, ...)
        raise ModelLoadError(
            f"{target.label} is registered but its model file {target.where}/{file.name} could not be loaded "
            f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else 'no detail'}): it is damaged "
            f"or was written with incompatible library versions. {target.remedy}"
        ) from exc


def load_sklearn(path: Path, expected_sha256: str | None = None, target: LoadTarget | None = None) -> Any | None:
    """Load the sklearn flavour of the MLflow model in ``path`` as ``mlflow.sklearn.load_model`` does.

    With ``target`` the model file is first checked against ``expected_sha256`` (``verify_file``), and a
    damaged file raises a ``ModelLoadError`` naming it. Returns ``None`` for anything unusual (an unreadable
    MLmodel file, other flavours, logged code paths, an unknown format, loading disabled by
    ``MLFLOW_ALLOW_PICKLE_DESERIALIZATION``) so that the MLflow path handles and reports it.
    """
    if not pickle_allowed():
        return None
    from common.errors import ModelLoadError

    checked = target is not None
    target = target or LoadTarget(f"the model in {path}", str(path), "a local store", "")
    try:
        conf = read_flavor(path, target)
    except ModelLoadError:
        return None
    if conf.get("code"):
        return None
    fmt = conf.get("serialization_format", "cloudpickle")
    if fmt not in ("skops", "cloudpickle", "pickle"):
        return None
    # ``pickle`` stays ``pickle``: mlflow.sklearn reads files written by plain pickle with pickle.load.
    conf = {**conf, "serialization_format": fmt}
    artifact = path / conf["pickled_model"]
    if checked:
        verify_file(artifact, expected_sha256, target)
    return deserialize(artifact, conf, target)
