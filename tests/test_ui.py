"""`make ui`: the MLflow UI on the project store renders the experiments page with the projects in it."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from common import tracking, train

pytestmark = [pytest.mark.serve, pytest.mark.slow]

_spec = importlib.util.spec_from_file_location("check_ui", Path(__file__).parents[1] / "scripts" / "check_ui.py")
check_ui = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("check_ui", check_ui)  # its dataclasses look their module up there
_spec.loader.exec_module(check_ui)


@pytest.mark.skipif(check_ui.find_chromium() is None, reason="Chromium is not installed (apt-get install chromium)")
def test_mlflow_ui_lists_project_experiments(tmp_path: Path) -> None:
    from projects.house_prices import synthetic

    train.run("house_prices", {"model": "linear"}, dataset=synthetic.generate(80))
    ok, missing = check_ui.check(["house_prices"], tracking.tracking_uri(), tmp_path / "ui.png")
    assert ok, f"not rendered: {missing}"
    assert (tmp_path / "ui.png").stat().st_size > 10_000


@pytest.mark.skipif(check_ui.find_chromium() is None, reason="Chromium is not installed (apt-get install chromium)")
def test_run_page_shows_dataset_and_descriptions(tmp_path: Path) -> None:
    from projects.house_prices import synthetic

    ds = synthetic.generate(80)
    train.run("house_prices", {"model": "linear"}, dataset=ds)
    result = train.run("house_prices", {"model": "linear"}, dataset=ds)
    checks = check_ui.run_page_checks("house_prices")
    assert [c.name for c in checks] == ["run", "model_version", "logged_model", "compare"]
    run_check = checks[0]
    assert result.run_id in run_check.url
    assert f"synthetic ({ds.sha256[:16]})" in run_check.expected  # the "Datasets" box: name (digest)
    assert any("Registered as version 2" in want for want in run_check.expected)  # the run's description
    note = check_ui.experiment_note("house_prices")
    assert note and note.startswith("Kaggle House Prices")
    experiments = check_ui.PageCheck("experiments", f"#/experiments?{check_ui.ML_LAYOUT}", ["house_prices", note])

    shots = tmp_path / "ui"
    done = check_ui.check_pages([experiments, *checks], tracking.tracking_uri(), shots)
    assert all(not c.missing for c in done), {c.name: c.missing for c in done if c.missing}
    for name in ("experiments", "run", "compare"):
        assert (shots / f"{name}.png").stat().st_size > 10_000
