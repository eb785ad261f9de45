"""house_prices benchmark: the standard figures, plus CPU time beside every wall-clock figure.

Wall-clock latency on a shared machine measures the neighbours as much as the model, so each figure is
also given in CPU seconds of this process (``time.process_time``), which a busy machine distorts least, and
the load average at the start is reported so the two can be read together.
"""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np

from common import splits, tracking
from common.console import step
from common.protocol import Context


def _timed(fn: Any) -> tuple[Any, float, float]:
    """(result, wall seconds, CPU seconds) of ``fn()``."""
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - t0, time.process_time() - c0


def bench(ctx: Context, repeats: int = 200) -> dict[str, Any]:
    """Full fit on all labelled rows, single-row latency (p50/p95), batch throughput and model size."""
    ds = ctx.dataset
    X, y = ds.X, ds.y
    load_1m = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    with step(f"Bench: fitting {ctx.spec.name} on {ds.rows} rows"):
        model, fit_wall, fit_cpu = _timed(lambda: ctx.build().fit(X, y))
    n = splits.n_rows(X)
    rows = np.random.default_rng(0).integers(0, n, size=repeats)
    singles = [splits.take(X, np.array([i])) for i in rows]  # built outside the timed calls
    model.predict(singles[0])  # warm-up (lazy imports, caches)
    wall, cpu = np.empty(repeats), np.empty(repeats)
    for k, row in enumerate(singles):
        _, wall[k], cpu[k] = _timed(lambda row=row: model.predict(row))
    batch = splits.take(X, np.resize(np.arange(n), max(n, 10_000)))
    _, batch_wall, batch_cpu = _timed(lambda: model.predict(batch))
    return {
        "load_average_1m": load_1m,
        "fit_seconds": fit_wall,
        "fit_cpu_seconds": fit_cpu,
        "predict_p50_ms": float(np.percentile(wall, 50) * 1000),
        "predict_p95_ms": float(np.percentile(wall, 95) * 1000),
        "predict_cpu_p50_ms": float(np.percentile(cpu, 50) * 1000),
        "predict_cpu_p95_ms": float(np.percentile(cpu, 95) * 1000),
        "batch_rows": splits.n_rows(batch),
        "batch_rows_per_s": splits.n_rows(batch) / batch_wall,
        "batch_cpu_rows_per_s": splits.n_rows(batch) / batch_cpu,
        "model_size_mb": tracking.model_size_mb(model),
    }
