"""Daily bars of one ticker from the local mirror, the cache or Yahoo Finance (yfinance). Pure: nothing learned.

Resolution order: an explicit ``data_dir`` -> the mirror ``$MLPROJECTS_DATA_DIR/stocks/<TICKER>.csv`` ->
the cache ``<cache>/stocks/<TICKER>.csv`` -> a yfinance download into the cache. Every file has the
mirror's layout: ``Date,Open,High,Low,Close,Adj Close,Volume,Dividends,Stock Splits`` (``auto_adjust=False``:
prices are split-adjusted, ``Adj Close`` is also dividend-adjusted).

The five mirrored files have known sha256 checksums (the mirror's ``SHA256SUMS``) and are verified. A
yfinance download has no fixed content to verify (Yahoo revises history and re-adjusts it after every
split), so its schema is checked instead and its sha256 is recorded in the run's dataset provenance.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from common.datasets import DATA_DIR_ENV, Dataset, FileInfo, cache_dir, check_columns, file_sha256, mirror_dir
from common.errors import DataError, ParameterError
from projects.stocks.features import PRICE_COLUMNS, RAW_COLUMNS

log = logging.getLogger(__name__)

FILE_COLUMNS = ["Date", "Open", "High", "Low", "Close", "Adj Close", "Volume", "Dividends", "Stock Splits"]
# sha256 of the mirror's copies (../shared/data/SHA256SUMS); other tickers and downloads are schema-checked.
MIRROR_SHA256 = {
    "AAPL": "b3e5d4de16a62d1a1a409ac7da522378bcd247cd23062ec98cb74df062b6617e",
    "MSFT": "10faed6f2198e18d66bd1b3d330a5cdfcab1671bc7fc67934cc66529713bfe49",
    "AMZN": "ef8fbc4900f44ff3bc2fbadd921c9a5b95a50c08c04db01bd0c32d0723df8d53",
    "GOOG": "b710beb756f8433c6309a1d5589e0ae61ad9225764c42ccaf6e5abcbcc9e6cf1",
    "SPY": "e4b5c139557cf20fbca4ac6647770116482d3214503caf997f8bbaca6ba36f0b",
}
# US markets never close for more than a week (the longest closure since 1980: 2001-09-11 to 09-17).
MAX_GAP_DAYS = 7
# A file "covers" a requested end when its last bar is at most this many days before it (weekends, holidays).
COVER_SLACK_DAYS = 7
DOWNLOAD_ATTEMPTS = 3
BACKOFF_SECONDS = 5.0
_TICKER = re.compile(r"^[A-Z0-9^][A-Z0-9.\-=^]{0,19}$")


@dataclass
class Bars:
    """A ticker's bars as read from one file, with where they came from."""

    frame: pd.DataFrame
    info: FileInfo
    notes: list[str]


def relative_path(ticker: str) -> str:
    """The file's place in the mirror and cache layout."""
    return f"stocks/{ticker}.csv"


def normalise_ticker(ticker: str) -> str:
    """Upper-case a ticker symbol and reject anything that is not one (it becomes a file name).

    Raises:
        ParameterError: for an empty or malformed symbol.
    """
    symbol = str(ticker).strip().upper()
    if not _TICKER.match(symbol):
        raise ParameterError(
            f"'{ticker}' is not a ticker symbol: use Yahoo Finance's symbol, for example AAPL, MSFT, SPY or ^GSPC."
        )
    return symbol


def parse_day(value: str, name: str) -> pd.Timestamp:
    """A ``YYYY-MM-DD`` parameter as a timestamp.

    Raises:
        ParameterError: when it is not a date.
    """
    try:
        day = pd.Timestamp(str(value).strip())
    except (ValueError, TypeError) as exc:
        raise ParameterError(f"Parameter '{name}' must be a date like 2015-01-01; got {value!r}.") from exc
    if pd.isna(day):
        raise ParameterError(f"Parameter '{name}' must be a date like 2015-01-01; got {value!r}.")
    return day.tz_localize(None) if day.tzinfo else day.normalize()


# ---------------------------------------------------------------------------------------------- reading
def read_bars(path: Path, where: str | None = None) -> pd.DataFrame:
    """Read a bars CSV (mirror/yfinance layout) and check its schema and content.

    Raises:
        DataError: for a missing or non-numeric column, unparsable dates, or bars that fail ``validate``.
    """
    where = where or str(path)
    try:
        frame = pd.read_csv(path)
    except pd.errors.EmptyDataError as exc:
        raise DataError(f"{where} is empty. Delete it and fetch the data again.") from exc
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        raise DataError(f"{where} could not be parsed as CSV: {exc}") from exc
    check_columns(frame, where, required=["Date"], numeric=[*PRICE_COLUMNS, "Volume"])
    try:
        frame["Date"] = pd.to_datetime(frame["Date"], utc=True).dt.tz_localize(None).dt.normalize()
    except (ValueError, TypeError) as exc:
        raise DataError(f"{where}: column Date could not be read as dates ({exc}).") from exc
    return frame


def validate(frame: pd.DataFrame, where: str) -> tuple[pd.DataFrame, list[str]]:
    """Check bars are usable: unique sorted dates, positive prices, no unexplained gaps.

    Rows with a missing price are dropped (yfinance occasionally returns them) and reported in the notes.

    Returns:
        The bars without such rows, and notes for the user (dropped rows, suspicious bars).

    Raises:
        DataError: naming the offending dates.
    """
    notes: list[str] = []
    dates = frame["Date"]
    if dates.isna().any():
        raise DataError(f"{where}: {int(dates.isna().sum())} row(s) have no Date.")
    dup = dates[dates.duplicated()]
    if len(dup):
        raise DataError(f"{where}: duplicate dates, e.g. {', '.join(dup.dt.date.astype(str).head(3))}. "
                        "Each trading day must appear once.")
    if not dates.is_monotonic_increasing:
        raise DataError(f"{where}: rows are not sorted by Date. Sort the file oldest first.")
    missing = frame[PRICE_COLUMNS].isna().any(axis=1)
    if missing.any():
        notes.append(f"dropped {int(missing.sum())} bar(s) with a missing price ({where})")
    ok = frame.loc[~missing]
    nonpos = (ok[PRICE_COLUMNS] <= 0).any(axis=1)
    if nonpos.any():
        raise DataError(f"{where}: non-positive prices on {', '.join(ok['Date'][nonpos].dt.date.astype(str).head(3))}. "
                        "Prices must be positive.")
    if (ok["Volume"] < 0).any():
        raise DataError(f"{where}: negative volume on {ok['Date'][ok['Volume'] < 0].dt.date.iloc[0]}.")
    inverted = ok["High"] < ok["Low"]
    if inverted.any():
        raise DataError(f"{where}: High is below Low on {', '.join(ok['Date'][inverted].dt.date.astype(str).head(3))}.")
    outside = (ok["Close"] > ok["High"] * 1.001) | (ok["Close"] < ok["Low"] * 0.999)
    if outside.any():
        notes.append(f"{int(outside.sum())} bar(s) have Close outside [Low, High] ({where})")
    gaps = ok["Date"].diff().dt.days
    big = gaps > MAX_GAP_DAYS
    if big.any():
        i = int(np.flatnonzero(big.to_numpy())[0])
        before, after = ok["Date"].iloc[i - 1].date(), ok["Date"].iloc[i].date()
        raise DataError(
            f"{where}: {int(big.sum())} gap(s) longer than {MAX_GAP_DAYS} calendar days between trading days, the "
            f"first from {before} to {after}. Markets do not close that long: the file is missing bars. "
            "Fetch the ticker again (delete the cached file) or choose a range without the gap."
        )
    return ok.reset_index(drop=True), notes


def _covers(frame: pd.DataFrame, end: pd.Timestamp) -> bool:
    today = pd.Timestamp.today().normalize()
    return bool(frame["Date"].iloc[-1] >= min(end, today) - pd.Timedelta(days=COVER_SLACK_DAYS + 1))


def _from_file(path: Path, ticker: str, origin: str) -> Bars:
    digest = file_sha256(path)
    known = MIRROR_SHA256.get(ticker)
    if origin in ("mirror", "explicit") and known and digest != known:
        raise DataError(
            f"Checksum mismatch for {path} ({origin}): expected the mirror's sha256 {known}, got {digest}. "
            f"The file is corrupt or not the mirror's copy; restore it, or put your own download at "
            f"{cache_dir() / relative_path(ticker)} (cached files are schema-checked instead)."
        )
    frame, notes = validate(read_bars(path), str(path))
    return Bars(frame, FileInfo(path=str(path), sha256=digest, origin=origin), notes)


# --------------------------------------------------------------------------------------------- download
def download(ticker: str, dest: Path) -> FileInfo:
    """Download the ticker's whole daily history with yfinance into ``dest`` (atomically).

    ``auto_adjust=False`` keeps the mirror's layout (split-adjusted OHLC plus ``Adj Close``); the columns
    are single-level. Rate limits and network errors are retried with back-off.

    Raises:
        DataError: when yfinance is not installed, Yahoo cannot be reached, rate-limits us, or has no data.
    """
    try:
        import yfinance as yf
    except ImportError as exc:
        raise DataError(
            f"{ticker} is not in the mirror or the cache and yfinance is not installed to download it. "
            "yfinance is a core dependency: pip install -e . (or `make venv`) installs it (or set "
            f"{DATA_DIR_ENV} to a mirror holding {relative_path(ticker)})."
        ) from exc
    rate_limit = getattr(getattr(yf, "exceptions", None), "YFRateLimitError", None)
    missing_err = getattr(getattr(yf, "exceptions", None), "YFTickerMissingError", None)
    last: str = ""
    for attempt in range(1, DOWNLOAD_ATTEMPTS + 1):
        retry = True
        try:
            hist = _history(yf, ticker)
            break
        except Exception as exc:  # yfinance raises its own, curl's and requests' errors
            if rate_limit is not None and isinstance(exc, rate_limit):
                last = ("Yahoo Finance is rate-limiting requests (HTTP 429 'Too Many Requests'); wait a few "
                        "minutes and try again")
            elif missing_err is not None and isinstance(exc, missing_err):
                last, retry = f"Yahoo Finance has no data for {ticker} ({exc})", False
            elif isinstance(exc, OSError | TimeoutError | ConnectionError):
                last = f"Yahoo Finance could not be reached ({type(exc).__name__}: {str(exc)[:160]}); no network?"
            else:
                last = f"yfinance failed: {type(exc).__name__}: {str(exc)[:200]}"
            if not retry or attempt == DOWNLOAD_ATTEMPTS:
                raise DataError(f"Downloading {ticker} failed after {attempt} attempt(s): {last}.") from exc
            wait = BACKOFF_SECONDS * 2 ** (attempt - 1)
            log.warning("download of %s failed (%s); retrying in %.0fs", ticker, last, wait)
            time.sleep(wait)
    frame = _tidy(hist, ticker)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    os.close(fd)
    try:
        frame.to_csv(tmp, index=False, date_format="%Y-%m-%d")
        os.replace(tmp, dest)
    finally:
        Path(tmp).unlink(missing_ok=True)
    log.info("downloaded %d bars of %s to %s", len(frame), ticker, dest)
    return FileInfo(path=str(dest), sha256=file_sha256(dest), origin="download")


def _history(yf: Any, ticker: str) -> pd.DataFrame:
    """``Ticker.history`` with yfinance's exceptions raised (by default it logs them and returns nothing)."""
    config = getattr(yf, "config", None)
    debug = getattr(config, "debug", None)
    previous = getattr(debug, "hide_exceptions", None)
    if debug is not None:
        debug.hide_exceptions = False
    try:
        return yf.Ticker(ticker).history(period="max", interval="1d", auto_adjust=False, actions=True, timeout=30)
    finally:
        if debug is not None and previous is not None:
            debug.hide_exceptions = previous


def _tidy(hist: pd.DataFrame, ticker: str) -> pd.DataFrame:
    """yfinance's frame -> the mirror's layout (Date column, single-level columns, mirror column order)."""
    if hist is None or len(hist) == 0:
        raise DataError(
            f"Yahoo Finance returned no bars for '{ticker}': the symbol is unknown or delisted. Check it on "
            f"https://finance.yahoo.com/quote/{ticker}."
        )
    frame = hist.copy()
    if isinstance(frame.columns, pd.MultiIndex):  # yf.download-style frames; Ticker.history is single-level
        frame.columns = frame.columns.get_level_values(0)
    index = pd.DatetimeIndex(frame.index)
    if index.tz is not None:
        index = index.tz_localize(None)
    frame.index = index.normalize()
    frame = frame.rename_axis("Date").reset_index()
    for col in ("Dividends", "Stock Splits"):
        if col not in frame.columns:
            frame[col] = 0.0
    if "Adj Close" not in frame.columns:
        frame["Adj Close"] = frame.get("Close")
    check_columns(frame, f"yfinance data for {ticker}", required=FILE_COLUMNS, numeric=[*PRICE_COLUMNS, "Volume"])
    return frame[FILE_COLUMNS]


# ------------------------------------------------------------------------------------------------- load
def locate(ticker: str, end: pd.Timestamp, data_dir: str | os.PathLike[str] | None = None) -> Bars:
    """Find the ticker's bars: explicit folder, mirror, cache, then a yfinance download.

    A mirror or cached file that ends before ``end`` is used only when no download is possible (with a note).

    Raises:
        DataError: when no source has the ticker, saying how to get it.
    """
    rel = relative_path(ticker)
    if data_dir is not None:
        base = Path(data_dir).expanduser()
        for cand in ([base] if base.is_file() else [base / rel, base / f"{ticker}.csv"]):
            if cand.is_file():
                bars = _from_file(cand, ticker, "explicit")
                if not _covers(bars.frame, end):
                    bars.notes.append(f"{cand} ends on {bars.frame['Date'].iloc[-1].date()}, before {end.date()}")
                return bars
        raise DataError(f"{rel} was not found in {base}. Put the file there, or leave --data-dir out to use the "
                        f"mirror, the cache or a yfinance download.")
    partial: list[Bars] = []
    looked: list[str] = []
    mirror = mirror_dir()
    for origin, path in (("mirror", mirror / rel if mirror else None), ("cache", cache_dir() / rel)):
        if path is None:
            looked.append(f"${DATA_DIR_ENV} (unset)")
            continue
        looked.append(str(path))
        if path.is_file():
            bars = _from_file(path, ticker, origin)
            if _covers(bars.frame, end):
                return bars
            partial.append(bars)
    try:
        info = download(ticker, cache_dir() / rel)
    except DataError as exc:
        if partial:
            best = max(partial, key=lambda b: b.frame["Date"].iloc[-1])
            note = (f"{best.info.path} ends on {best.frame['Date'].iloc[-1].date()}, before the requested end "
                    f"{end.date()}, and no newer data could be downloaded ({exc})")
            log.warning("%s", note)
            best.notes.append(note)
            return best
        raise DataError(
            f"No daily bars for {ticker}: not found in {' or '.join(looked)}, and {exc} Offline, set "
            f"{DATA_DIR_ENV} to a mirror holding {rel} (the shared mirror has AAPL, MSFT, AMZN, GOOG and SPY)."
        ) from exc
    frame, notes = validate(read_bars(Path(info.path)), info.path)
    return Bars(frame, info, [*notes, f"downloaded {ticker} with yfinance to {info.path}"])


def load(data_dir: str | Path | None = None, ticker: str = "AAPL", start: str = "2015-01-01",
         end: str = "2024-01-01") -> Dataset:
    """One ticker's daily bars in ``[start, end)`` as (raw bars of day t, Close of the next trading day).

    Args:
        data_dir: an explicit folder in mirror layout (``stocks/<TICKER>.csv``), else the usual order.
        ticker: Yahoo Finance symbol.
        start: first day (inclusive), ``YYYY-MM-DD``.
        end: last day (exclusive, like yfinance), ``YYYY-MM-DD``.

    Returns:
        ``X``: the raw bars (``Date, Open, High, Low, Close, Volume``) of every day that has a next day in
        the range, oldest first; ``y``: that next day's Close; ``X_predict``: every bar, so the last row's
        prediction is the forecast for the first trading day after the range.

    Raises:
        DataError: unknown ticker, no bars in the range, or bars that fail validation.
        ParameterError: malformed ticker or dates.
    """
    symbol = normalise_ticker(ticker)
    first, stop = parse_day(start, "start"), parse_day(end, "end")
    if first >= stop:
        raise DataError(f"The range start={first.date()} to end={stop.date()} is empty: end is exclusive and must "
                        "be after start.")
    bars = locate(symbol, stop, data_dir)
    frame = bars.frame
    span = f"{frame['Date'].iloc[0].date()} to {frame['Date'].iloc[-1].date()}"
    rows = frame[(frame["Date"] >= first) & (frame["Date"] < stop)].reset_index(drop=True)
    if len(rows) < 2:
        raise DataError(
            f"{symbol} has {len(rows)} trading day(s) between {first.date()} and {stop.date()} (end exclusive); "
            f"{bars.info.path} spans {span}. Choose a range inside it."
        )
    notes = list(bars.notes)
    if rows["Date"].iloc[0] > first + pd.Timedelta(days=COVER_SLACK_DAYS):
        notes.append(f"{symbol} data starts on {rows['Date'].iloc[0].date()}, after start={first.date()}")
    raw = rows[RAW_COLUMNS].copy()
    raw[[*PRICE_COLUMNS, "Volume"]] = raw[[*PRICE_COLUMNS, "Volume"]].astype(float)
    X = raw.iloc[:-1].reset_index(drop=True)
    y = pd.Series(raw["Close"].iloc[1:].to_numpy(), name="next_close")
    notes.append(f"{symbol}: {len(raw)} trading days {raw['Date'].iloc[0].date()} .. {raw['Date'].iloc[-1].date()} "
                 f"from {bars.info.origin} ({bars.info.path})")
    return Dataset(
        X=X, y=y, X_predict=raw, predict_ids=raw["Date"].dt.strftime("%Y-%m-%d").rename("Date"),
        files=[bars.info], name=f"{symbol}:{first.date()}..{stop.date()}", notes=notes,
        extras={"ticker": symbol},
    )
