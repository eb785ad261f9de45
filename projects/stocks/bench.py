"""``mlprojects bench stocks``: the whole protocol's time, then forecast latency and throughput.

The generic bench predicts single rows drawn at random; a forecaster needs each row's history, so here a
"single prediction" is the forecast for the day after the last of ``HISTORY`` consecutive bars.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from common import tracking
from common.console import step
from common.protocol import Context
from projects.stocks.evaluate import evaluate

HISTORY = 80
REPEATS = 100


def bench(ctx: Context) -> dict[str, Any]:
    """Time the full walk-forward evaluation plus the final fit, one-day forecasts and a batch forecast."""
    X = ctx.dataset.X
    dates = X["Date"]
    with step(f"Bench: walk-forward evaluation and final fit on {len(X)} days"):
        t0 = time.perf_counter()
        outcome = evaluate(ctx)
        total = time.perf_counter() - t0
    model = outcome.model
    rng = np.random.default_rng(0)
    ends = rng.integers(HISTORY, len(X) + 1, size=REPEATS)
    model.predict(X.iloc[ends[0] - HISTORY: ends[0]])  # warm-up
    lat = []
    for end in ends:
        window = X.iloc[end - HISTORY: end]
        t0 = time.perf_counter()
        model.predict(window)
        lat.append(1000 * (time.perf_counter() - t0))
    t0 = time.perf_counter()
    model.predict(X)
    batch = time.perf_counter() - t0
    return {
        "days": len(X),
        "years": float((dates.iloc[-1] - dates.iloc[0]).days / 365.25),
        "evaluate_and_fit_seconds": total,
        "fit_seconds": outcome.fit_seconds,
        "mase": outcome.metrics.get("mase", float("nan")),
        "forecast_p50_ms": float(np.percentile(lat, 50)),
        "forecast_p95_ms": float(np.percentile(lat, 95)),
        "batch_rows_per_s": len(X) / batch,
        "model_size_mb": tracking.model_size_mb(model),
    }
