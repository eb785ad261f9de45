"""Load a registered model from the embedded sqlite store without importing MLflow.

For the default local store (``sqlite:///...`` with artifacts on disk) a model version's directory is
found with read-only SQL on MLflow's registry tables and loaded as ``mlflow.sklearn`` would (skops with
the logged trusted types, or cloudpickle). What this saves is measured by ``mlprojects load-time``
(``make load-time``; figures in the README).

The tables are private to MLflow, so they are read only on schema revisions listed in
``VERIFIED_SCHEMA_REVISIONS``, each checked against MLflow by ``tests/test_fastload_contract.py``.
Anything else (another revision, a server URI, a remote artifact store, workspaces, a deleted or
unfinished version, code paths logged with the model) returns ``None`` so the caller falls back to
MLflow itself: this is a fast path, never a second source of truth.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from contextlib import closing
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


def _sqlite_path(uri: str) -> Path | None:
    if not uri.startswith("sqlite:///"):
        return None
    path = Path(unquote(uri.removeprefix("sqlite:///")).split("?", 1)[0])
    if not path.is_absolute():
        path = Path.cwd() / path
    return path if path.is_file() else None


def _local_dir(location: str | None) -> Path | None:
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
                      version: str | int | None) -> str | None:
    """The version's ``storage_location`` where MLflow would serve it, else ``None`` (reason logged)."""
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
    return location


def model_dir(uri: str, project: str, alias: str | None, version: str | int | None) -> Path | None:
    """The local directory of ``project``'s model version (by version, else by alias), or ``None``.

    ``None`` means "not resolvable here" (a missing, deleted or unfinished version or alias, an
    unverified schema revision, a non-local store): the caller falls back to MLflow, which reports it.
    """
    if _workspaces_enabled() or (version is None and (alias is None or alias.lower() == _LATEST)):
        return None
    db = _sqlite_path(uri)
    if db is None:
        return None
    try:
        with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)) as con:
            location = _storage_location(con, project, alias, version)
    except (sqlite3.Error, ValueError, TypeError) as exc:
        log.debug("fast model lookup failed (%s); using MLflow", exc)
        return None
    path = _local_dir(location)
    return path if path is not None and (path / "MLmodel").is_file() else None


def load_sklearn(path: Path) -> Any | None:
    """Load the sklearn flavour of the MLflow model in ``path`` as ``mlflow.sklearn.load_model`` does.

    Returns ``None`` for anything unusual (other flavours, logged code paths, an unknown format, loading
    disabled by ``MLFLOW_ALLOW_PICKLE_DESERIALIZATION``) so that MLflow handles and reports it.
    """
    if os.environ.get("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "true").strip().lower() not in ("true", "1"):
        return None
    import yaml

    try:
        meta = yaml.safe_load((path / "MLmodel").read_text())
        conf = meta["flavors"]["sklearn"]
    except (OSError, KeyError, TypeError, yaml.YAMLError):
        return None
    if conf.get("code"):
        return None
    artifact = path / conf["pickled_model"]
    fmt = conf.get("serialization_format", "cloudpickle")
    if fmt == "skops":
        import skops.io

        return skops.io.load(artifact, trusted=conf.get("skops_trusted_types"))
    if fmt in ("cloudpickle", "pickle"):
        import cloudpickle

        with open(artifact, "rb") as f:
            return cloudpickle.load(f)
    return None
