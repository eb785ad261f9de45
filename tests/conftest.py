"""Shared fixtures: every test gets its own temporary MLflow store and data cache."""

from __future__ import annotations

import os
from pathlib import Path

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
