"""Fixtures shared by the streaming and Spark tests: one store of small champions trained once per module.

Training four champions per test would dominate the run, so a module-scoped store is trained once and each
test points ``MLFLOW_TRACKING_URI`` at it (after conftest's per-test store). The tests only read it.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from tests.settings import TEST_PARAMS

PROJECTS = ("house_prices", "churn", "spam", "mnist")
PARAMS = {**TEST_PARAMS, "house_prices": {"model": "linear"}}


@pytest.fixture(scope="module")
def champion_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A sqlite store with a champion of each project in ``PROJECTS``, trained on generated data."""
    from common import train

    root = tmp_path_factory.mktemp("champions")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow.db'}")
        mp.setenv("MLPROJECTS_CACHE_DIR", str(root / "cache"))
        mp.setenv("MLPROJECTS_OFFLINE", "1")
        mp.setenv("MPLBACKEND", "Agg")
        for project in PROJECTS:
            synthetic = importlib.import_module(f"projects.{project}.synthetic")
            train.run(project, dict(PARAMS[project]), dataset=synthetic.generate())
    yield root


@pytest.fixture
def champions(champion_store: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point this test at the module's store of champions."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{champion_store / 'mlflow.db'}")
    monkeypatch.setenv("MLPROJECTS_CACHE_DIR", str(champion_store / "cache"))
    return champion_store


def raw_rows(project: str, n: int, seed: int = 7) -> pd.DataFrame:
    """``n`` generated raw input rows of a project, with an id column where the real data has one."""
    synthetic = importlib.import_module(f"projects.{project}.synthetic")
    if project == "house_prices":
        frame = synthetic.generate(n, seed=seed).X.reset_index(drop=True)
        frame.insert(0, "Id", range(100_000, 100_000 + len(frame)))
        return frame
    if project == "churn":
        frame = synthetic.generate(n, seed=seed).X.reset_index(drop=True)
        frame.insert(0, "customerID", [f"c-{i}" for i in range(len(frame))])
        return frame
    if project == "spam":
        texts: list[str] = []
        while len(texts) < n:
            texts += [str(t) for t in synthetic.generate(seed=seed + len(texts)).X]
        return pd.DataFrame({"text": texts[:n]})
    if project == "mnist":
        images = synthetic.generate(n=10, n_test=n, seed=seed).X_test.reshape(n, -1)
        frame = pd.DataFrame(images, columns=[f"pixel{i}" for i in range(images.shape[1])])
        frame.insert(0, "id", range(len(frame)))  # an id column is kept in the output, never fed as a pixel
        return frame
    raise ValueError(project)
