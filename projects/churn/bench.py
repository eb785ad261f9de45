"""churn benchmark: full fit (inner CV, model choice, calibration, threshold), latency, 100k-row batches.

The issue's bar is a Telco fit under 30 s and a 100,000-row batch scored in under 2 s on 2 cores, so the
batch here is 100,000 raw rows (customers resampled with replacement), not the generic 10,000. Timing goes
through ``common.bench`` (wall and CPU seconds; the load average to read them against).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from common import bench as timing
from common import splits, tracking
from common.console import step
from common.protocol import Context

BATCH_ROWS = 100_000


def bench(ctx: Context, repeats: int = 200) -> dict[str, Any]:
    """Fit on every labelled row with the run's parameters, then time single rows and a 100k batch."""
    ds = ctx.dataset
    load = timing.load_average()
    with step(f"Bench: fitting churn on {ds.rows} rows"):
        fit = timing.timed(lambda: ctx.build().fit(ds.X, ds.y))
    model = fit.result
    clf = model[-1]
    pool = ds.X_test if ds.X_test is not None else ds.X
    rows = np.random.default_rng(0).integers(0, splits.n_rows(pool), size=BATCH_ROWS)
    batch = splits.take(pool, rows).reset_index(drop=True)
    return {
        "load_average_1m": load,
        "fit_seconds": fit.wall_s,
        "fit_cpu_seconds": fit.cpu_s,
        "selected_model": clf.selected_,
        "threshold": float(clf.threshold_),
        **timing.latency(model.predict, timing.single_rows(pool, repeats)),
        **timing.throughput(model.predict_proba, batch, repeats=3),
        "model_size_mb": tracking.model_size_mb(model),
    }
