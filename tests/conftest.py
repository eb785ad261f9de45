"""Shared fixtures: every test gets its own temporary MLflow store and data cache."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REAL_DATA = os.environ.get("MLPROJECTS_DATA_DIR")


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A fresh sqlite tracking store and cache per test; the real mirror only for realdata tests."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.setenv("MLPROJECTS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.delenv("MLPROJECTS_DATA_DIR", raising=False)
    # Tests never reach the network; the download tests re-enable downloads against a local server.
    monkeypatch.setenv("MLPROJECTS_OFFLINE", "1")


@pytest.fixture(scope="session")
def mlflow_server_stack() -> Iterator[Any]:
    """A running team stack (``common.server.Stack``) in a temporary state folder for the whole session;
    stopped and removed at the end. Tests using it belong to the xdist group "server" (see test_server.py)."""
    from common import server
    from tests.test_server import _postgres_or_skip, _remove, _state_dir

    _postgres_or_skip()
    state = _state_dir("server")
    try:
        stack = server.start(state, timeout=180)
        assert stack.running and stack.uri
        yield stack
    finally:
        _remove(state)


@pytest.fixture
def real_data_dir(monkeypatch: pytest.MonkeyPatch) -> Path:
    """The local mirror of the real datasets; skips the test when MLPROJECTS_DATA_DIR is not set."""
    if not REAL_DATA:
        pytest.skip("MLPROJECTS_DATA_DIR is not set (point it at a mirror such as ../shared/data)")
    path = Path(REAL_DATA).resolve()
    if not path.is_dir():
        pytest.skip(f"MLPROJECTS_DATA_DIR={REAL_DATA} does not exist")
    monkeypatch.setenv("MLPROJECTS_DATA_DIR", str(path))
    return path
