"""`mlprojects report`: the leaderboard shows each champion beside its baselines, with plots embedded."""

from __future__ import annotations

from pathlib import Path

from common import report, train
from projects.house_prices import synthetic


def test_report_lists_champion_and_projects_without_one(tmp_path: Path) -> None:
    result = train.run("house_prices", {"model": "linear"}, dataset=synthetic.generate(100))
    md, page, rows = report.write(tmp_path)
    text = md.read_text()
    row = next(r for r in rows if r.project == "house_prices")
    assert row.version == "1" and row.run_id == result.run_id
    assert row.value == result.metrics["cv_rmsle"]
    assert "median" in row.baselines and row.seed == 0.145
    assert "| house_prices | cv_rmsle ↓ |" in text and result.run_id[:8] in text
    html = page.read_text()
    assert "data:image/png;base64," in html and "<h2>house_prices</h2>" in html
    others = [r for r in rows if r.project != "house_prices"]
    assert all(r.value is None and r.note for r in others)
