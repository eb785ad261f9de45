"""`make ui`: the MLflow UI on the project store renders the experiments page with the projects in it."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from common import tracking, train

pytestmark = [pytest.mark.serve, pytest.mark.slow]

_spec = importlib.util.spec_from_file_location("check_ui", Path(__file__).parents[1] / "scripts" / "check_ui.py")
check_ui = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(check_ui)


@pytest.mark.skipif(check_ui.find_chromium() is None, reason="Chromium is not installed (apt-get install chromium)")
def test_mlflow_ui_lists_project_experiments(tmp_path: Path) -> None:
    from projects.house_prices import synthetic

    train.run("house_prices", {"model": "linear"}, dataset=synthetic.generate(80))
    ok, missing = check_ui.check(["house_prices"], tracking.tracking_uri(), tmp_path / "ui.png")
    assert ok, f"not rendered: {missing}"
    assert (tmp_path / "ui.png").stat().st_size > 10_000
