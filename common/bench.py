"""``mlprojects bench``: fit time, single-row latency, batch throughput, peak memory and model size.

Benchmarks are measured and reported (and logged to MLflow as a ``mode=bench`` run), never asserted by
tests: machines are noisy.
"""

from __future__ import annotations

import platform
import resource
import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from common import splits, tracking
from common.console import console, step
from common.registry import get
from common.train import Context, load_dataset


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run(name: str, overrides: Mapping[str, Any] | None = None, sample: int | None = None,
        data_dir: str | None = None, repeats: int = 200) -> dict[str, Any]:
    """Measure a project's default (or overridden) pipeline on its full data (or a sample)."""
    import tempfile
    from pathlib import Path

    import mlflow

    project = get(name)
    spec = project.spec
    params, data_params = spec.resolve_params(overrides)
    ds = load_dataset(project, data_params, sample=sample, data_dir=data_dir)
    rss_before = _peak_rss_mb()
    report: dict[str, Any] = {"project": spec.name, "rows": ds.rows, "params": params,
                              "machine": f"{platform.machine()} {platform.processor() or ''}".strip()}
    with tempfile.TemporaryDirectory() as tmp:
        ctx = Context(project, params, data_params, ds, Path(tmp))
        if project.bench is not None:
            report |= project.bench(ctx)
        else:
            report |= supervised_bench(ctx, repeats)
    report["peak_rss_mb"] = _peak_rss_mb()
    report["data_rss_mb"] = rss_before
    tracking.experiment(spec)
    with mlflow.start_run(run_name=f"{spec.name}-bench"):
        mlflow.set_tags({"project": spec.name, "mode": "bench", "git_commit": tracking.git_commit()})
        mlflow.log_params({**params, "sample": sample or "all"})
        tracking.log_metrics({f"bench_{k}": v for k, v in report.items() if isinstance(v, int | float)})
    return report


def supervised_bench(ctx: Context, repeats: int) -> dict[str, Any]:
    """Full fit on every labelled row, then single-row and batch prediction timings."""
    ds = ctx.dataset
    X, y = ds.X, ds.y
    with step(f"Bench: fitting {ctx.spec.name} on {ds.rows} rows"):
        t0 = time.perf_counter()
        model = ctx.build().fit(X, y)
        fit = time.perf_counter() - t0
    pool = ds.X_test if ds.X_test is not None else X
    n = splits.n_rows(pool)
    rng = np.random.default_rng(0)
    rows = rng.integers(0, n, size=repeats)
    model.predict(splits.take(pool, rows[:1]))  # warm-up (lazy imports, caches)
    lat = []
    for i in rows:
        t0 = time.perf_counter()
        model.predict(splits.take(pool, np.array([i])))
        lat.append((time.perf_counter() - t0) * 1000)
    batch_idx = np.resize(np.arange(n), max(n, 10_000))
    batch = splits.take(pool, batch_idx)
    t0 = time.perf_counter()
    model.predict(batch)
    batch_s = time.perf_counter() - t0
    return {
        "fit_seconds": fit,
        "predict_p50_ms": float(np.percentile(lat, 50)),
        "predict_p95_ms": float(np.percentile(lat, 95)),
        "batch_rows": len(batch_idx),
        "batch_rows_per_s": len(batch_idx) / batch_s,
        "model_size_mb": tracking.model_size_mb(model),
    }


def print_report(report: Mapping[str, Any]) -> None:
    """The bench figures as a table."""
    from rich.table import Table

    table = Table(title=f"bench: {report.get('project')}")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for key, value in report.items():
        if key in ("project", "params"):
            continue
        text = f"{value:,.3f}" if isinstance(value, float) else str(value)
        table.add_row(key, text)
    console.print(table)
