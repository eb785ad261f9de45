"""Generated daily bars with the real schema, for the test harness (no real data, no network)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from common.datasets import Dataset, generated
from projects.stocks.features import RAW_COLUMNS


def bars(n: int = 700, seed: int = 0, reversal: float = -0.3, start: str = "2018-01-02") -> pd.DataFrame:
    """``n`` business days of OHLCV whose next-day return partly reverses today's (so there is a signal).

    Args:
        n: trading days.
        seed: random seed.
        reversal: coefficient of today's return in tomorrow's (0 gives a pure random walk).
        start: the first day.
    """
    rng = np.random.default_rng(seed)
    dates = pd.bdate_range(start, periods=n)
    noise = rng.normal(0.0003, 0.015, n)
    r = np.zeros(n)
    for t in range(1, n):
        r[t] = reversal * r[t - 1] + noise[t]
    close = 100 * np.exp(np.cumsum(r))
    prev = np.r_[close[0], close[:-1]]
    open_ = prev * np.exp(rng.normal(0, 0.003, n))
    high = np.maximum(open_, close) * np.exp(np.abs(rng.normal(0, 0.006, n)))
    low = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0, 0.006, n)))
    volume = np.round(rng.lognormal(17, 0.3, n) * (1 + 20 * np.abs(r)))
    return pd.DataFrame({"Date": dates, "Open": open_, "High": high, "Low": low, "Close": close,
                         "Volume": volume.astype(float)})


def generate(n: int = 700, seed: int = 0) -> Dataset:
    """A dataset shaped like ``data.load``'s: bars of day t -> Close of day t+1, plus every bar to predict."""
    raw = bars(n + 1, seed)
    return Dataset(
        X=raw[RAW_COLUMNS].iloc[:-1].reset_index(drop=True),
        y=pd.Series(raw["Close"].iloc[1:].to_numpy(), name="next_close"),
        X_predict=raw[RAW_COLUMNS],
        predict_ids=raw["Date"].dt.strftime("%Y-%m-%d").rename("Date"),
        files=[generated("stocks", {"n": n, "seed": seed})],
        name="synthetic",
        extras={"ticker": "SYNTH"},
    )


def predict_example(ds: Dataset) -> Any:
    """The last 80 days as a client would send them (enough history for complete features)."""
    from projects.stocks.pipeline import signature_example

    return signature_example(ds.X.iloc[-80:])


