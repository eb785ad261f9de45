"""``mlprojects report``: a leaderboard of the champions, as Markdown and a self-contained HTML page."""

from __future__ import annotations

import base64
import html
import logging
import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common import registry, tracking
from common.datasets import repo_root
from common.errors import MLProjectsError

log = logging.getLogger(__name__)

# The plots worth showing on the page, in order of preference (the first few found are embedded).
KEY_PLOTS = (
    "cv_predicted_vs_actual.png", "test_predicted_vs_actual.png", "confusion_matrix.png", "roc_pr.png",
    "equity_curve.png", "predicted_vs_actual.png", "calibration.png", "gains.png", "misclassified.png",
)


@dataclass
class Row:
    """One project's champion, as shown in the leaderboard."""

    project: str
    metric: str
    greater_is_better: bool
    value: float | None = None
    baselines: dict[str, float] = field(default_factory=dict)
    seed: float | None = None
    fit_seconds: float | None = None
    predict_ms_per_row: float | None = None
    model_size_mb: float | None = None
    version: str | None = None
    run_id: str | None = None
    git_commit: str | None = None
    plots: dict[str, bytes] = field(default_factory=dict)
    explanations: dict[str, bytes] = field(default_factory=dict)
    note: str = ""


def _fmt(v: float | None, digits: int = 4) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return f"{v:.{digits}f}" if abs(v) < 1000 else f"{v:,.0f}"


def collect(with_plots: bool = True) -> list[Row]:
    """Read every project's champion (version, run metrics and key plots) from the tracking store."""
    import mlflow

    tracking.configure()
    client = mlflow.MlflowClient()
    rows = []
    for name in registry.names():
        try:
            spec = registry.get(name).spec
        except MLProjectsError as exc:
            rows.append(Row(name, "-", True, note=f"broken project: {exc}"))
            continue
        row = Row(name, spec.primary_metric, spec.greater_is_better)
        seed_key = spec.primary_metric.removeprefix("cv_")
        row.seed = spec.seed_scores.get(spec.primary_metric, spec.seed_scores.get(seed_key))
        try:
            mv = client.get_model_version_by_alias(name, tracking.CHAMPION)
        except mlflow.exceptions.MlflowException:
            row.note = f"no champion yet: run `make {spec.make_target}`"
            rows.append(row)
            continue
        row.version, row.run_id = str(mv.version), mv.run_id
        run = client.get_run(mv.run_id)
        m = run.data.metrics
        row.value = m.get(spec.primary_metric)
        row.fit_seconds = m.get("fit_seconds")
        row.predict_ms_per_row = m.get("predict_ms_per_row")
        row.model_size_mb = m.get("model_size_mb")
        row.git_commit = run.data.tags.get("git_commit")
        suffix = "_" + spec.primary_metric
        row.baselines = {
            k.removeprefix("baseline_").removesuffix(suffix): v
            for k, v in m.items()
            if k.startswith("baseline_") and k.endswith(suffix)
            and "_" not in k.removeprefix("baseline_").removesuffix(suffix)
        }
        if with_plots:
            row.plots, row.explanations = _plots(client, mv.run_id)
        rows.append(row)
    return rows


def _plots(client: Any, run_id: str, limit: int = 3) -> tuple[dict[str, bytes], dict[str, bytes]]:
    """(the first ``limit`` key plots, every explanation plot) of a run, as PNG bytes.

    Explanation plots (``common.explain.PLOTS``) are shown in their own labelled section, so they never
    compete with the key plots for a slot; one listing and one download per plot keeps the report fast.
    """
    from common.explain import PLOTS

    try:
        names = [a.path for a in client.list_artifacts(run_id) if a.path.endswith(".png")]
    except Exception as exc:  # an unreachable artifact store must not break the report
        log.warning("cannot list artifacts of run %s: %s", run_id, exc)
        return {}, {}
    others = [n for n in names if n not in PLOTS]
    chosen = [n for n in KEY_PLOTS if n in others][:limit] or others[:limit]
    explained = [n for n in PLOTS if n in names]
    out: dict[str, bytes] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in [*chosen, *explained]:
            try:
                out[name] = Path(client.download_artifacts(run_id, name, tmp)).read_bytes()
            except Exception as exc:
                log.warning("cannot download %s of run %s: %s", name, run_id, exc)
    return ({n: out[n] for n in chosen if n in out}, {n: out[n] for n in explained if n in out})


def _figures(plots: dict[str, bytes], captions: dict[str, str] | None = None) -> str:
    """``<figure>`` elements with the PNGs embedded as data URIs, captioned by label and file name."""
    captions = captions or {}
    return "".join(
        f'<figure><img alt="{html.escape(captions.get(n, n))}" '
        f'src="data:image/png;base64,{base64.b64encode(b).decode()}">'
        f"<figcaption>{html.escape(captions[n]) + ' &middot; ' if n in captions else ''}"
        f"<code>{html.escape(n)}</code></figcaption></figure>"
        for n, b in plots.items()
    )


def markdown(rows: list[Row]) -> str:
    """The leaderboard as a Markdown table."""
    lines = [
        "# mlprojects leaderboard",
        "",
        "Champion of each project on its primary metric, beside its baselines and the seed tutorial's score.",
        "",
        "| project | metric | champion | baselines | seed | fit s | predict ms/row | size MB | version | run | commit |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        arrow = "↑" if r.greater_is_better else "↓"
        base = ", ".join(f"{k} {_fmt(v)}" for k, v in sorted(r.baselines.items())) or "-"
        if r.note and r.value is None:
            lines.append(f"| {r.project} | {r.metric} {arrow} | {r.note} | | | | | | | | |")
            continue
        lines.append(
            f"| {r.project} | {r.metric} {arrow} | **{_fmt(r.value)}** | {base} | {_fmt(r.seed)} | "
            f"{_fmt(r.fit_seconds, 1)} | {_fmt(r.predict_ms_per_row, 3)} | {_fmt(r.model_size_mb, 2)} | "
            f"v{r.version} | `{(r.run_id or '')[:8]}` | `{r.git_commit or '-'}` |"
        )
    return "\n".join(lines) + "\n"


def page(rows: list[Row]) -> str:
    """A self-contained HTML page: the table plus each champion's key plots embedded as data URIs."""
    md_rows = []
    for r in rows:
        base = ", ".join(f"{html.escape(k)} {_fmt(v)}" for k, v in sorted(r.baselines.items())) or "-"
        value = _fmt(r.value) if r.value is not None else html.escape(r.note)
        md_rows.append(
            f"<tr><td>{html.escape(r.project)}</td><td>{html.escape(r.metric)} "
            f"{'&uarr;' if r.greater_is_better else '&darr;'}</td><td><b>{value}</b></td><td>{base}</td>"
            f"<td>{_fmt(r.seed)}</td><td>{_fmt(r.fit_seconds, 1)}</td><td>{_fmt(r.predict_ms_per_row, 3)}</td>"
            f"<td>{_fmt(r.model_size_mb, 2)}</td><td>{'v' + r.version if r.version else '-'}</td>"
            f"<td><code>{html.escape((r.run_id or '')[:8])}</code></td><td><code>{html.escape(r.git_commit or '-')}</code></td></tr>"
        )
    from common.explain import PLOTS

    sections = []
    for r in rows:
        if not r.plots and not r.explanations:
            continue
        body = f"<div class='plots'>{_figures(r.plots)}</div>" if r.plots else ""
        if r.explanations:
            body += f"<h3>Explanations</h3><div class='plots explanations'>{_figures(r.explanations, PLOTS)}</div>"
        sections.append(f"<h2>{html.escape(r.project)}</h2>{body}")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>mlprojects leaderboard</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem; color: #222; }}
table {{ border-collapse: collapse; }} td, th {{ border: 1px solid #ccc; padding: .3rem .6rem; }}
th {{ background: #f3f3f3; }} .plots {{ display: flex; flex-wrap: wrap; gap: 1rem; }}
figure {{ margin: 0; }} img {{ max-width: 560px; border: 1px solid #ddd; }}
figcaption {{ max-width: 560px; font-size: .9rem; }}
</style></head><body>
<h1>mlprojects leaderboard</h1>
<p>Champion of each project on its primary metric (&uarr; higher is better, &darr; lower), beside its
baselines and the seed tutorial's score.</p>
<table><tr><th>project</th><th>metric</th><th>champion</th><th>baselines</th><th>seed</th><th>fit s</th>
<th>predict ms/row</th><th>size MB</th><th>version</th><th>run</th><th>commit</th></tr>
{''.join(md_rows)}
</table>
{''.join(sections)}
</body></html>
"""


def write(out_dir: Path | None = None) -> tuple[Path, Path, list[Row]]:
    """Write ``reports/leaderboard.md`` and ``reports/index.html``; returns their paths and the rows."""
    out = out_dir or repo_root() / "reports"
    rows = collect()  # first: a missing store must not leave an empty report folder behind
    out.mkdir(parents=True, exist_ok=True)
    md, page_path = out / "leaderboard.md", out / "index.html"
    md.write_text(markdown(rows))
    page_path.write_text(page(rows))
    return md, page_path, rows


def print_rows(rows: list[Row]) -> None:
    """The leaderboard as a terminal table."""
    from rich.table import Table

    from common.console import console

    table = Table(title="mlprojects leaderboard (champions)")
    for col in ("project", "metric", "champion", "baselines", "seed", "fit s", "ms/row", "MB", "version"):
        table.add_column(col)
    for r in rows:
        base = ", ".join(f"{k} {_fmt(v)}" for k, v in sorted(r.baselines.items())) or "-"
        value = _fmt(r.value) if r.value is not None else r.note
        table.add_row(r.project, r.metric + (" ↑" if r.greater_is_better else " ↓"), value, base, _fmt(r.seed),
                      _fmt(r.fit_seconds, 1), _fmt(r.predict_ms_per_row, 3), _fmt(r.model_size_mb, 2),
                      f"v{r.version}" if r.version else "-")
    console.print(table)
