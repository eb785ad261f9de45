"""Causal features of daily OHLCV bars, as transformers that live inside the Pipeline.

Every feature of row ``t`` is computed from rows ``<= t`` only (trailing rolling windows, recursive EWMs,
lags; never a centred window, a back-fill or a full-sample statistic), so it is information a trader has
at the close of day ``t``. ``tests/test_stocks.py`` proves it: changing any row after ``t`` leaves row
``t``'s features and prediction unchanged.

The input is the raw frame as ``data.load`` returns it: one row per trading day, in time order, with
``Date, Open, High, Low, Close, Volume`` (extra columns such as ``Adj Close`` are ignored).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin

from common.errors import InputError

log = logging.getLogger(__name__)

PRICE_COLUMNS = ["Open", "High", "Low", "Close"]
RAW_COLUMNS = ["Date", *PRICE_COLUMNS, "Volume"]
# The column the model step uses as "today's close" to turn a predicted return into a price.
BASE = "close_t"

RETURN_LAGS = 5
MOMENTUM = (5, 10, 21, 63)
VOLATILITY = (5, 21, 63)
FEATURES = (
    [f"ret_lag{i}" for i in range(RETURN_LAGS)]
    + [f"mom_{w}" for w in MOMENTUM]
    + [f"vol_{w}" for w in VOLATILITY]
    + ["vol_ratio", "range", "range_5", "gap", "intraday", "close_loc", "volume_z", "volume_chg",
       "rsi_14", "macd", "macd_signal", "macd_hist", "sma_21_dist", "sma_63_dist",
       "dow_0", "dow_1", "dow_2", "dow_3", "dow_4", "month_sin", "month_cos"]
)
# The longest trailing window: rows before this many days of history have incomplete features.
WARMUP = max(*MOMENTUM, *VOLATILITY) + 1
# A longer hole between two consecutive bars is logged as a warning (9/11 closed the NYSE for 4 days).
MAX_GAP_BUSINESS_DAYS = 5


def as_frame(X: Any, where: str = "stocks input", ordered: bool = True) -> pd.DataFrame:
    """Accept a DataFrame of raw daily bars (or a list of row dicts) and check it.

    ``Date`` may be a column or a DatetimeIndex. Rows must be in time order (``ordered``): the features of a
    row are built from the rows above it.

    Raises:
        InputError: for a missing column, unparsable values, or rows out of time order.
    """
    if isinstance(X, pd.DataFrame):
        frame = X
    elif isinstance(X, list | tuple) and X and isinstance(X[0], dict):
        frame = pd.DataFrame(list(X))
    elif isinstance(X, dict):
        frame = pd.DataFrame(X if all(np.ndim(v) for v in X.values()) else [X])
    elif isinstance(X, list | tuple | np.ndarray) and len(X) == 0:
        # The message every project gives for empty input (common.contract), not "got list".
        raise InputError(f"no rows to predict: stocks expects at least one row of daily bars with columns "
                         f"{', '.join(RAW_COLUMNS)}.")
    else:
        raise InputError(
            f"{where}: expected a DataFrame of daily bars with columns {', '.join(RAW_COLUMNS)} "
            f"(one row per trading day, oldest first); got {type(X).__name__}."
        )
    if "Date" not in frame.columns and isinstance(frame.index, pd.DatetimeIndex):
        frame = frame.rename_axis("Date").reset_index()
    missing = [c for c in RAW_COLUMNS if c not in frame.columns]
    if missing:
        raise InputError(
            f"{where} is missing column(s) {', '.join(missing)}. Pass daily bars with {', '.join(RAW_COLUMNS)} "
            "(as in the yfinance/mirror CSV), one row per trading day, oldest first."
        )
    try:
        dates = pd.to_datetime(frame["Date"], utc=False)
    except (ValueError, TypeError) as exc:
        raise InputError(f"{where}: column Date could not be read as dates ({exc}).") from exc
    if getattr(dates.dt, "tz", None) is not None:
        dates = dates.dt.tz_localize(None)
    columns: dict[str, Any] = {"Date": dates.to_numpy()}
    for col in [*PRICE_COLUMNS, "Volume"]:
        values = frame[col]
        if not pd.api.types.is_float_dtype(values):
            values = pd.to_numeric(values, errors="coerce")
            bad = values.isna() & frame[col].notna()
            if bad.any():
                raise InputError(f"{where}: column {col} has non-numeric values like {frame[col][bad].iloc[0]!r}.")
        columns[col] = values.to_numpy(dtype=float)
    out = pd.DataFrame(columns)
    if len(out) == 0:
        raise InputError(f"no rows to predict: stocks expects at least one row of daily bars "
                         f"({', '.join(RAW_COLUMNS)}), oldest first.")
    for col in PRICE_COLUMNS:
        # A missing, zero or negative price has no log return: it would silently blank the features of the
        # next 63 rows, so it is refused, naming the bar.
        values = out[col].to_numpy()
        bad = np.flatnonzero(~(values > 0))
        if len(bad):
            raise InputError(f"{where} {_bar(out, int(bad[0]))}, column {col!r}: got {_number(frame[col].iloc[bad[0]])};"
                             " expected a positive price.")
    if out["Date"].isna().any():
        raise InputError(f"{where} {_bar(out, int(np.flatnonzero(out['Date'].isna())[0]))}, column 'Date': "
                         "got a missing date; expected a date (YYYY-MM-DD).")
    duplicated = np.flatnonzero(out["Date"].duplicated().to_numpy())
    if len(duplicated):
        raise InputError(f"{where} {_bar(out, int(duplicated[0]))}, column 'Date': this date is already in an "
                         "earlier row; expected one row per trading day.")
    if ordered and len(out) > 1 and not out["Date"].is_monotonic_increasing:
        raise InputError(
            f"{where}: rows are not in time order. Sort the bars by Date, oldest first: each row's features "
            "are built from the rows above it."
        )
    if ordered and len(out) > 1:
        days = out["Date"].to_numpy().astype("datetime64[D]")
        gaps = np.busday_count(days[:-1], days[1:])
        if gaps.max() > MAX_GAP_BUSINESS_DAYS:
            row = int(np.argmax(gaps)) + 1
            # A warning, not an error: exchanges do close for days (2001, 2012), but a long hole in the bars
            # usually means missing data, and the trailing windows then span more time than they say.
            log.warning("%s: %d business days between %s and %s (row %d); the trailing windows span that gap",
                        where, int(gaps.max()), _day(out, row - 1), _day(out, row), row)
    return out


def _day(frame: pd.DataFrame, row: int) -> str:
    return pd.Timestamp(frame["Date"].iloc[row]).strftime("%Y-%m-%d")


def _bar(frame: pd.DataFrame, row: int) -> str:
    """'row 3 (Date 2020-01-06)'."""
    date = frame["Date"].iloc[row]
    return f"row {row}" + ("" if pd.isna(date) else f" (Date {_day(frame, row)})")


def _number(value: Any) -> str:
    value = value.item() if isinstance(value, np.generic) else value
    return repr(value)


def _rsi(close: pd.Series, window: int = 14) -> pd.Series:
    """Wilder's RSI from trailing gains and losses (a recursive EWM: causal)."""
    delta = close.diff()
    gain = delta.clip(lower=0).ewm(alpha=1 / window, adjust=False, min_periods=window).mean()
    loss = (-delta.clip(upper=0)).ewm(alpha=1 / window, adjust=False, min_periods=window).mean()
    rs = gain / loss.replace(0.0, np.nan)
    rsi = 100 - 100 / (1 + rs)
    return rsi.where(loss > 0, 100.0).where(gain.notna())


def bar_features(raw: pd.DataFrame) -> pd.DataFrame:
    """The feature table of checked raw bars (``as_frame`` output), one row per input row.

    Returns:
        ``FEATURES`` columns plus ``BASE`` (today's close); rows without enough history hold NaN.
    """
    c, o, h, lo = raw["Close"], raw["Open"], raw["High"], raw["Low"]
    logc = np.log(c.where(c > 0))
    r = logc.diff()
    f: dict[str, Any] = {}
    for i in range(RETURN_LAGS):
        f[f"ret_lag{i}"] = r.shift(i)
    for w in MOMENTUM:
        f[f"mom_{w}"] = logc - logc.shift(w)
    for w in VOLATILITY:
        f[f"vol_{w}"] = r.rolling(w, min_periods=w).std()
    with np.errstate(divide="ignore", invalid="ignore"):
        f["vol_ratio"] = np.log(f["vol_5"] / f["vol_21"])
        spread = (h - lo).clip(lower=0)
        f["range"] = spread / c
        f["range_5"] = f["range"].rolling(5, min_periods=5).mean()
        f["gap"] = np.log(o / c.shift(1))
        f["intraday"] = np.log(c / o)
        f["close_loc"] = ((c - lo) / spread).clip(0, 1) - 0.5
        logv = np.log1p(raw["Volume"].clip(lower=0))
        mean_v, std_v = logv.rolling(21, min_periods=21).mean(), logv.rolling(21, min_periods=21).std()
        f["volume_z"] = (logv - mean_v) / std_v
        f["volume_chg"] = logv.diff()
        f["rsi_14"] = (_rsi(c) - 50) / 50
        ema12 = c.ewm(span=12, adjust=False, min_periods=12).mean()
        ema26 = c.ewm(span=26, adjust=False, min_periods=26).mean()
        macd = (ema12 - ema26) / c
        f["macd"] = macd
        f["macd_signal"] = macd.ewm(span=9, adjust=False, min_periods=9).mean()
        f["macd_hist"] = f["macd"] - f["macd_signal"]
        f["sma_21_dist"] = c / c.rolling(21, min_periods=21).mean() - 1
        f["sma_63_dist"] = c / c.rolling(63, min_periods=63).mean() - 1
    dow = raw["Date"].dt.day_of_week.to_numpy()
    for d in range(5):
        f[f"dow_{d}"] = (dow == d).astype(float)
    month = raw["Date"].dt.month.to_numpy()
    f["month_sin"] = np.sin(2 * np.pi * month / 12)
    f["month_cos"] = np.cos(2 * np.pi * month / 12)
    values = np.column_stack([np.asarray(f[name], dtype=float) for name in FEATURES])
    values[~np.isfinite(values)] = np.nan  # a zero range or volatility divides by zero: missing, not infinite
    out = pd.DataFrame(values, columns=FEATURES)
    out[BASE] = c.to_numpy(dtype=float)
    return out


class BarFeatures(TransformerMixin, BaseEstimator):
    """Raw daily bars -> causal features of each day (stateless: nothing is learned here).

    The output keeps one row per input row, so predictions line up with the input; rows at the start of
    the frame (less than ``WARMUP`` days of history) have NaN features, which the model step imputes with
    values learned on its training rows. A frame shorter than ``WARMUP`` rows is an ``InputError``.
    """

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.requires_fit = False  # stateless: transform needs no fit
        return tags

    def fit(self, X: Any, y: Any = None) -> BarFeatures:
        as_frame(X)
        return self

    def fit_transform(self, X: Any, y: Any = None, **fit_params: Any) -> pd.DataFrame:
        # Training frames may be short (early walk-forward folds): the model step leaves their warm-up rows
        # out of the fit. Only a forecast needs a full window of history.
        return bar_features(as_frame(X))

    def transform(self, X: Any) -> pd.DataFrame:
        frame = as_frame(X)
        if len(frame) < WARMUP:
            # With less history than the longest window, every feature of every row would be imputed: the
            # forecast would be the same whatever the bars say.
            raise InputError(
                f"stocks input has {len(frame)} daily bar(s); the features need at least {WARMUP} (the longest "
                f"trailing window is {WARMUP - 1} days). Send the last {WARMUP} or more trading days, oldest first."
            )
        return bar_features(frame)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        return np.asarray([*FEATURES, BASE], dtype=object)


class SameDayBars(TransformerMixin, BaseEstimator):
    """The seed tutorial's inputs: the same day's Open, High and Low (leaky: the Close lies between them)."""

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.requires_fit = False  # stateless: transform needs no fit
        return tags

    def fit(self, X: Any, y: Any = None) -> SameDayBars:
        as_frame(X, ordered=False)
        return self

    def transform(self, X: Any) -> pd.DataFrame:
        return as_frame(X, ordered=False)[["Open", "High", "Low"]].reset_index(drop=True)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        return np.asarray(["Open", "High", "Low"], dtype=object)
