"""Load a registered model from the embedded sqlite store without importing MLflow.

A new process that loads a champion through ``mlflow.sklearn.load_model`` took 5.8-7.1 s on 2 cores; once
scikit-learn is imported, finding and unpickling the pipeline itself takes under 0.2 s. For the default local store (``sqlite:///...`` with
artifacts on disk) the model's directory can be found with one read-only SQL query and loaded exactly as
``mlflow.sklearn`` would (skops with the logged trusted types, or cloudpickle).

Anything this module does not recognise (a server URI, a remote artifact store, an older schema, code
paths logged with the model) returns ``None`` so the caller falls back to MLflow itself: this is a fast
path, never a second source of truth.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

log = logging.getLogger(__name__)


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


def model_dir(uri: str, project: str, alias: str | None, version: str | int | None) -> Path | None:
    """The local directory of ``project``'s model version (by version, else by alias), or ``None``.

    ``None`` means "not resolvable here": a missing version or alias is left for MLflow to report.
    """
    db = _sqlite_path(uri)
    if db is None:
        return None
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as con:
            # Exactly one row or MLflow decides: several would mean workspaces sharing a model name.
            if version is None:
                rows = con.execute(
                    "SELECT version FROM registered_model_aliases WHERE name = ? AND alias = ?",
                    (project, alias),
                ).fetchall()
                if len(rows) != 1:
                    return None
                version = rows[0][0]
            rows = con.execute(
                "SELECT storage_location, status FROM model_versions WHERE name = ? AND version = ?",
                (project, int(version)),
            ).fetchall()
    except (sqlite3.Error, ValueError) as exc:
        log.debug("fast model lookup failed (%s); using MLflow", exc)
        return None
    if len(rows) != 1 or rows[0][1] != "READY":
        return None
    row = rows[0]
    path = _local_dir(row[0])
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
