"""churn benchmark: full fit (inner CV, model choice, calibration, threshold), latency, 100k-row batches.

The issue's bar is a Telco fit under 30 s and a 100,000-row batch scored in under 2 s on 2 cores, so the
batch here is 100,000 raw rows (customers resampled with replacement), not the generic 10,000.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from common import splits, tracking
from common.console import step
from common.protocol import Context

BATCH_ROWS = 100_000


def bench(ctx: Context, repeats: int = 200) -> dict[str, Any]:
    """Fit on every labelled row with the run's parameters, then time single rows and a 100k batch."""
    ds = ctx.dataset
    with step(f"Bench: fitting churn on {ds.rows} rows"):
        t0 = time.perf_counter()
        model = ctx.build().fit(ds.X, ds.y)
        fit = time.perf_counter() - t0
    clf = model[-1]
    pool = ds.X_test if ds.X_test is not None else ds.X
    n = splits.n_rows(pool)
    rng = np.random.default_rng(0)
    model.predict(splits.take(pool, np.array([0])))  # warm-up (lazy imports, caches)
    latencies = []
    for i in rng.integers(0, n, size=repeats):
        t0 = time.perf_counter()
        model.predict(splits.take(pool, np.array([i])))
        latencies.append((time.perf_counter() - t0) * 1000)
    batch = splits.take(pool, rng.integers(0, n, size=BATCH_ROWS)).reset_index(drop=True)
    timings = []
    for _ in range(3):
        t0 = time.perf_counter()
        model.predict_proba(batch)
        timings.append(time.perf_counter() - t0)
    batch_s = float(np.median(timings))
    return {
        "fit_seconds": fit,
        "selected_model": clf.selected_,
        "threshold": float(clf.threshold_),
        "predict_p50_ms": float(np.percentile(latencies, 50)),
        "predict_p95_ms": float(np.percentile(latencies, 95)),
        "batch_rows": BATCH_ROWS,
        "batch_seconds": batch_s,
        "batch_rows_per_s": BATCH_ROWS / batch_s,
        "model_size_mb": tracking.model_size_mb(model),
    }
