"""``mlprojects bench stocks``: the whole protocol's time, then forecast latency and throughput.

The generic bench predicts single rows drawn at random; a forecaster needs each row's history, so here a
"single prediction" is the forecast for the day after the last of ``HISTORY`` consecutive bars. Timing
goes through ``common.bench`` like every other project.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from common import tracking
from common.bench import latency, load_average, throughput, timed
from common.console import step
from common.errors import ParameterError
from common.protocol import Context
from projects.stocks.evaluate import evaluate
from projects.stocks.spec import SPEC

HISTORY = SPEC.split.history  # the days one forecast needs (the logged input example)
REPEATS = 100


def bench(ctx: Context) -> dict[str, Any]:
    """Time the full walk-forward evaluation plus the final fit, one-day forecasts and a batch forecast."""
    X = ctx.dataset.X
    dates = X["Date"]
    load = load_average()
    with step(f"Bench: walk-forward evaluation and final fit on {len(X)} days"):
        run = timed(lambda: evaluate(ctx))
    outcome = run.result
    model = outcome.model
    if model is None:
        raise ParameterError("model=seed cannot forecast (it needs the day's own High and Low): bench another model.")
    # Windows of history ending on random days, cut before any timing.
    ends = np.random.default_rng(0).integers(HISTORY, len(X) + 1, size=REPEATS)
    windows = [X.iloc[end - HISTORY: end] for end in ends]
    return {
        "days": len(X),
        "years": float((dates.iloc[-1] - dates.iloc[0]).days / 365.25),
        "load_average_1m": load,
        "evaluate_and_fit_seconds": run.wall_s,
        "evaluate_and_fit_cpu_seconds": run.cpu_s,
        "fit_seconds": outcome.fit_seconds,
        "mase": outcome.metrics.get("mase", float("nan")),
        **latency(model.predict, windows, prefix="forecast"),
        **throughput(model.predict, X, repeats=3, prefix="batch"),
        "model_size_mb": tracking.model_size_mb(model),
    }
