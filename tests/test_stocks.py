"""stocks: causality of the features and forecasts, the data layer (mirror, cache, yfinance), statistics,
the protocol (the generic one with the stocks hooks, checked against a plain walk-forward), the bench, and
the seed's leaky mode never becoming champion."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.model_selection import TimeSeriesSplit

from common import registry, train
from common.errors import DataError, InputError, ParameterError
from common.protocol import Context, evaluate_supervised
from projects.stocks import data, evaluate, synthetic
from projects.stocks.features import BASE, FEATURES, WARMUP, BarFeatures, as_frame, bar_features
from projects.stocks.pipeline import (
    Drift,
    NextCloseFromReturn,
    Persistence,
    WalkForwardRidge,
    build_pipeline,
    signature_example,
)
from projects.stocks.spec import SPEC
from tests.settings import TEST_PARAMS

FILE_COLUMNS = data.FILE_COLUMNS


def _file_frame(raw: pd.DataFrame) -> pd.DataFrame:
    """Bars in the mirror's file layout."""
    out = raw.copy()
    out["Date"] = out["Date"].dt.strftime("%Y-%m-%d")
    out["Adj Close"] = out["Close"]
    out["Dividends"] = 0.0
    out["Stock Splits"] = 0.0
    return out[FILE_COLUMNS]


def _write(folder: Path, ticker: str, raw: pd.DataFrame) -> Path:
    path = folder / "stocks" / f"{ticker}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    _file_frame(raw).to_csv(path, index=False)
    return path


# ------------------------------------------------------------------------------------------- no look-ahead
@pytest.mark.parametrize("t", [WARMUP - 10, WARMUP + 5, 200, 398])
def test_changing_the_future_leaves_features_and_forecast_of_day_t_unchanged(t: int) -> None:
    raw = synthetic.bars(400, seed=1)
    future = raw.copy()
    rng = np.random.default_rng(t)
    after = np.arange(t + 1, len(raw))
    for col in ("Open", "High", "Low", "Close"):
        future.loc[after, col] = future.loc[after, col] * rng.uniform(0.5, 2.0, len(after))
    future.loc[after, "Volume"] = rng.uniform(1, 1e9, len(after))

    base = bar_features(as_frame(raw))
    changed = bar_features(as_frame(future))
    pd.testing.assert_frame_equal(base.iloc[: t + 1], changed.iloc[: t + 1])
    # Dropping the future entirely is the same as not knowing it.
    pd.testing.assert_frame_equal(base.iloc[: t + 1], bar_features(as_frame(raw.iloc[: t + 1])))

    ds = synthetic.generate(500, seed=2)
    model = build_pipeline(inner_folds=3).fit(ds.X, ds.y)
    np.testing.assert_allclose(model.predict(raw)[: t + 1], model.predict(future)[: t + 1], rtol=0, atol=0)
    if t + 1 >= WARMUP:
        np.testing.assert_allclose(model.predict(raw)[: t + 1], model.predict(raw.iloc[: t + 1]), rtol=0, atol=0)
    else:  # less history than the longest window: refused (projects/stocks/features.py, BarFeatures)
        with pytest.raises(InputError, match=f"at least {WARMUP}"):
            model.predict(raw.iloc[: t + 1])
    if t + 1 < len(raw):
        assert not np.allclose(base.iloc[t + 1:].to_numpy(), changed.iloc[t + 1:].to_numpy(), equal_nan=True)


def test_changing_the_past_does_change_day_t() -> None:
    """The causality test above is not vacuous: features really depend on the days up to t."""
    raw = synthetic.bars(300, seed=3)
    past = raw.copy()
    past.loc[250, "Close"] *= 1.05
    a, b = bar_features(as_frame(raw)), bar_features(as_frame(past))
    assert not np.allclose(a.iloc[251][FEATURES].to_numpy(), b.iloc[251][FEATURES].to_numpy(), equal_nan=True)


def test_features_are_complete_after_warmup_and_finite() -> None:
    feats = bar_features(as_frame(synthetic.bars(200)))
    assert list(feats.columns) == [*FEATURES, BASE]
    later = feats.iloc[WARMUP:][FEATURES]
    assert later.notna().all().all()
    assert np.isfinite(later.to_numpy()).all()


def test_pipeline_forecasts_every_row_from_raw_bars() -> None:
    ds = synthetic.generate(400)
    model = build_pipeline(inner_folds=3).fit(ds.X, ds.y)
    pred = model.predict(ds.X)
    assert pred.shape == (len(ds.X),) and np.isfinite(pred).all()
    # A client's frame: dates as text, extra columns, a full window of history.
    client = signature_example(ds.X.iloc[-WARMUP:]).assign(**{"Adj Close": 1.0})
    few = model.predict(client)
    assert few.shape == (WARMUP,) and np.isfinite(few).all()
    # Fewer bars than the longest window: refused (every feature would be imputed).
    with pytest.raises(InputError, match="has 3 daily bar"):
        model.predict(client.iloc[-3:])
    # Next-day close stays close to today's close (a return model, not a price-level model).
    assert np.all(np.abs(pred / ds.X["Close"].to_numpy() - 1) < 0.2)


def test_bad_input_is_an_input_error() -> None:
    ds = synthetic.generate(200)
    model = build_pipeline(inner_folds=3).fit(ds.X, ds.y)
    with pytest.raises(InputError, match="missing column"):
        model.predict(ds.X.drop(columns=["High"]))
    with pytest.raises(InputError, match="time order"):
        model.predict(ds.X.iloc[::-1])
    with pytest.raises(InputError, match="non-numeric"):
        model.predict(ds.X.astype({"Close": object}).assign(Close="n/a"))
    with pytest.raises(InputError, match="DataFrame"):
        model.predict("AAPL")
    with pytest.raises(InputError):
        BarFeatures().fit(ds.X.drop(columns=["Date"]).reset_index(drop=True))


def test_walk_forward_ridge_equals_sklearn_ridge_on_standardised_features() -> None:
    from sklearn.linear_model import Ridge
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 6)) * [1, 10, 0.1, 5, 1, 2]
    y = X @ [0.5, 0.01, 3, 0, 0, -0.2] + rng.normal(size=300)
    for alpha in (0.1, 100.0):
        ours = WalkForwardRidge(alphas=(alpha,)).fit(X, y)
        scaler = StandardScaler().fit(X)
        ref = Ridge(alpha=alpha).fit(scaler.transform(X), y)
        np.testing.assert_allclose(ours.predict(X), ref.predict(scaler.transform(X)), atol=1e-10)
    chosen = WalkForwardRidge(alphas=(1e-2, 1e6), n_splits=3).fit(X, y)
    assert chosen.alpha_ == 1e-2  # a real signal: the weak penalty wins the inner walk-forward
    flat = WalkForwardRidge(alphas=(1e-2, 1e6), n_splits=3).fit(X, np.full(300, 0.25))
    np.testing.assert_allclose(flat.predict(X), 0.25)  # a constant target: the intercept alone
    few = WalkForwardRidge(alphas=(1e-2, 1e6)).fit(X[:8], y[:8])  # too few rows for 5 inner folds
    assert few.alpha_ == 1e6 and not few.cv_errors_.any()  # nothing validated: the cautious penalty


def test_return_model_reads_todays_close_by_name_or_as_the_last_column() -> None:
    ds = synthetic.generate(300)
    F = BarFeatures().transform(ds.X)
    by_name = NextCloseFromReturn().fit(F, ds.y)
    moved = F[[BASE, *FEATURES]]  # close_t first: found by its name
    np.testing.assert_allclose(NextCloseFromReturn().fit(moved, ds.y).predict(moved), by_name.predict(F))
    as_array = NextCloseFromReturn().fit(F.to_numpy(), ds.y)  # a plain array: today's close is the last column
    np.testing.assert_allclose(as_array.predict(F.to_numpy()), by_name.predict(F))


def test_baselines() -> None:
    ds = synthetic.generate(100)
    close = ds.X["Close"].to_numpy()
    np.testing.assert_allclose(Persistence().fit(ds.X, ds.y).predict(ds.X), close)
    drift = Drift().fit(ds.X, ds.y)
    assert drift.mu_ == pytest.approx(np.mean(np.log(ds.y.to_numpy() / close)))
    np.testing.assert_allclose(drift.predict(ds.X), close * np.exp(drift.mu_))


# ------------------------------------------------------------------------------------------------ statistics
def test_wilson_interval() -> None:
    lo, hi = evaluate.wilson_interval(50, 100)
    assert lo == pytest.approx(0.4038, abs=1e-3) and hi == pytest.approx(0.5962, abs=1e-3)
    lo, hi = evaluate.wilson_interval(0, 10)
    assert lo == pytest.approx(0.0, abs=1e-12) and 0 < hi < 0.35


def test_diebold_mariano() -> None:
    rng = np.random.default_rng(0)
    e = rng.normal(size=500)
    assert np.isnan(evaluate.diebold_mariano(e, e)[0])
    stat, p = evaluate.diebold_mariano(0.5 * e, e)
    assert stat < -5 and p < 1e-6
    stat, p = evaluate.diebold_mariano(rng.normal(size=500), rng.normal(size=500))
    assert abs(stat) < 3 and p > 0.001


def test_backtest_arithmetic_with_costs() -> None:
    today = np.array([100.0, 110.0, 99.0, 99.0])
    actual = np.array([110.0, 99.0, 99.0, 108.9])
    pred = np.array([105.0, 100.0, 100.0, 120.0])  # long, flat, long, long
    figs, daily, pos = evaluate.backtest(pred, today, actual, cost_bps=10)
    np.testing.assert_array_equal(pos, [1, 0, 1, 1])
    np.testing.assert_allclose(daily, [0.10 - 0.001, -0.001, 0.0 - 0.001, 0.10])
    assert figs["backtest_trades"] == 3
    assert figs["backtest_total_return"] == pytest.approx(np.prod(1 + daily) - 1)
    assert figs["backtest_max_drawdown"] == pytest.approx(1 - (1.099 * 0.999 * 0.999) / 1.099)
    hold, hold_daily, _ = evaluate.backtest(pred, today, actual, 10, long_only=np.ones(4))
    np.testing.assert_allclose(hold_daily, [0.099, -0.1, 0.0, 0.1])
    assert hold["backtest_trades"] == 1 and hold["backtest_exposure"] == 1


# -------------------------------------------------------------------------------------------------- protocol
METRICS = (
    "mae", "rmse", "mase", "directional_accuracy", "directional_accuracy_ci_low", "directional_accuracy_ci_high",
    "dm_stat", "dm_pvalue", "cv_mae", "cv_rmse", "cv_mase", "cv_mase_std", "cv_directional_accuracy",
    "holdout_days", "predict_ms_per_row", "fit_seconds",
    "backtest_total_return", "backtest_annual_return", "backtest_sharpe", "backtest_max_drawdown",
    "backtest_trades", "backtest_exposure",
    "baseline_persistence_mae", "baseline_persistence_rmse", "baseline_persistence_mase",
    "baseline_persistence_directional_accuracy", "baseline_persistence_cv_mase",
    "baseline_drift_mase", "baseline_drift_dm_stat", "baseline_drift_dm_pvalue", "baseline_drift_cv_mase",
    "baseline_drift_cv_directional_accuracy",
    "baseline_buyhold_backtest_total_return", "baseline_buyhold_backtest_sharpe",
)


def test_protocol_metrics_on_generated_data() -> None:
    result = train.run("stocks", TEST_PARAMS["stocks"], dataset=synthetic.generate(), log_model=False)
    m = result.metrics
    for key in METRICS:
        assert np.isfinite(m[key]), key
    assert m["baseline_persistence_mase"] == pytest.approx(1.0)
    assert m["baseline_persistence_cv_mase"] == pytest.approx(1.0)
    assert m["directional_accuracy_ci_low"] <= m["directional_accuracy"] <= m["directional_accuracy_ci_high"]
    # The generated series has a real one-day reversal: the model must find it.
    assert m["mase"] < 1.0 and m["directional_accuracy"] > 0.55
    assert result.version is None  # evaluate-only: nothing registered


def _context(tmp_path: Path, ds, **overrides) -> Context:
    project = registry.get("stocks")
    params, data_params = project.resolve_params({**TEST_PARAMS["stocks"], **overrides})
    return Context(project, params, data_params, ds, tmp_path)


def test_hooks_keep_the_walk_forward_rows_gap_and_history(tmp_path: Path) -> None:
    """The generic protocol with the stocks hooks is exactly this plain walk-forward, written out."""
    ds = synthetic.generate(600)
    ev = evaluate_supervised(_context(tmp_path, ds), evaluate.HOOKS)
    X, y, close = ds.X, ds.y.to_numpy(), ds.X["Close"].to_numpy()
    n, gap = len(X), 5
    cut = int(round(n * 0.8))
    assert len(ev.parts.X_cv) == cut and len(ev.parts.X_train) == cut - gap and len(ev.parts.X_test) == n - cut

    def make():
        return build_pipeline(**TEST_PARAMS["stocks"])

    # Walk-forward on the first 80% (5 folds, a 5-day gap), each day forecast from all bars up to it.
    oof, fold = np.full(cut, np.nan), np.full(cut, -1)
    for i, (tr, va) in enumerate(TimeSeriesSplit(n_splits=5, gap=gap).split(np.arange(cut))):
        oof[va] = make().fit(X.iloc[tr], y[tr]).predict(X.iloc[: va[-1] + 1])[va]
        fold[va] = i
    np.testing.assert_array_equal(ev.cv.fold, fold)
    np.testing.assert_allclose(ev.cv.pred[fold >= 0], oof[fold >= 0], rtol=1e-12)
    # Holdout: fitted on the first 80% less the gap, forecasting the last 20% with their history.
    holdout = make().fit(X.iloc[: cut - gap], y[: cut - gap]).predict(X)[cut:]
    np.testing.assert_allclose(ev.test.pred, holdout, rtol=1e-12)

    v = fold >= 0
    cv_mase = np.mean(np.abs(y[:cut][v] - oof[v])) / np.mean(np.abs(y[:cut][v] - close[:cut][v]))
    mase = np.mean(np.abs(y[cut:] - holdout)) / np.mean(np.abs(y[cut:] - close[cut:]))
    assert ev.metrics["cv_mase"] == pytest.approx(cv_mase, rel=1e-12)
    assert ev.metrics["mase"] == pytest.approx(mase, rel=1e-12)
    assert ev.metrics["mae"] == pytest.approx(np.mean(np.abs(y[cut:] - holdout)), rel=1e-12)
    # The logged model is refit on every day.
    np.testing.assert_allclose(ev.final.predict(X), make().fit(X, y).predict(X), rtol=1e-12)
    for name in ("holdout_predictions.csv", "equity_curve.png", "predicted_vs_actual.png", "walk_forward_mase.png"):
        assert (tmp_path / name).stat().st_size > 0, name
    table = pd.read_csv(tmp_path / "holdout_predictions.csv")
    np.testing.assert_allclose(table["predicted"], holdout, rtol=1e-12)


def test_logged_example_has_enough_history(tmp_path: Path) -> None:
    ds = synthetic.generate(400)
    outcome = evaluate.evaluate(_context(tmp_path, ds))
    assert len(outcome.input_example) == SPEC.split.history
    pd.testing.assert_frame_equal(outcome.input_example, ds.X.iloc[-SPEC.split.history:].reset_index(drop=True))
    assert np.isfinite(outcome.fit_seconds) and outcome.model is not None


def test_too_short_a_range_is_a_data_error() -> None:
    with pytest.raises(DataError, match="too few"):
        train.run("stocks", dataset=synthetic.generate(120), log_model=False)


def test_seed_mode_is_logged_but_never_champion() -> None:
    import mlflow

    ds = synthetic.generate(500)
    seed = train.run("stocks", {"model": "seed"}, dataset=ds)
    assert seed.version is None and seed.model is None  # not registered
    for key in ("mae", "rmse", "r2", "mase", "baseline_persistence_mae", "baseline_persistence_rmse",
                "baseline_persistence_mase", "honest_mae", "honest_mase", "fit_seconds"):
        assert np.isfinite(seed.metrics[key]), key
    assert seed.metrics["mase"] < 0.6  # the leak makes it look far better than persistence ...
    assert seed.metrics["honest_mase"] > 2 * seed.metrics["mase"]  # ... used honestly it is not
    honest = train.run("stocks", dataset=ds)
    assert honest.version == "1" and honest.promotion and honest.promotion.promoted
    # The two runs share metric names, so the MLflow UI shows the leak beside the honest numbers.
    assert {"mae", "rmse", "mase", "baseline_persistence_mae"} <= set(seed.metrics) & set(honest.metrics)
    assert honest.metrics["mase"] > 2 * seed.metrics["mase"]
    again = train.run("stocks", {"model": "seed"}, dataset=ds)
    assert again.version is None
    client = mlflow.MlflowClient()
    assert str(client.get_model_version_by_alias("stocks", "champion").version) == "1"
    runs = mlflow.search_runs(experiment_names=["stocks"])
    assert set(runs["params.model"]) == {"seed", "ridge"}


def test_bench_times_forecasts_through_the_common_helpers(tmp_path: Path) -> None:
    from projects.stocks import bench

    report = bench.bench(_context(tmp_path, synthetic.generate(400)))
    for key in ("evaluate_and_fit_seconds", "fit_seconds", "mase", "forecast_p50_ms", "forecast_p95_ms",
                "forecast_cpu_p50_ms", "batch_rows_per_s", "model_size_mb", "load_average_1m"):
        assert key in report, key
    assert report["forecast_p50_ms"] > 0 and report["batch_rows"] == 400
    with pytest.raises(ParameterError, match="seed"):
        bench.bench(_context(tmp_path, synthetic.generate(400), model="seed"))


# ------------------------------------------------------------------------------------------------ data layer
def test_load_from_an_explicit_folder(tmp_path: Path) -> None:
    raw = synthetic.bars(300, start="2019-01-01")
    _write(tmp_path, "TEST", raw)
    ds = data.load(data_dir=tmp_path, ticker="test", start="2019-02-01", end="2019-06-03")
    assert ds.X["Date"].iloc[0] == pd.Timestamp("2019-02-01")
    last = ds.X_predict["Date"].iloc[-1]
    assert last == pd.Timestamp("2019-05-31")  # end is exclusive (2019-06-03 is a Monday)
    np.testing.assert_allclose(ds.y.to_numpy(), ds.X_predict["Close"].to_numpy()[1:])
    np.testing.assert_allclose(ds.X["Close"].to_numpy(), ds.X_predict["Close"].to_numpy()[:-1])
    assert list(ds.X.columns) == ["Date", "Open", "High", "Low", "Close", "Volume"]
    assert ds.files[0].origin == "explicit" and ds.name == "TEST:2019-02-01..2019-06-03"


def test_mirror_copy_must_match_its_checksum(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write(tmp_path, "AAPL", synthetic.bars(300, start="2015-01-01"))
    monkeypatch.setenv("MLPROJECTS_DATA_DIR", str(tmp_path))
    with pytest.raises(DataError, match="Checksum mismatch"):
        data.load(end="2015-12-01")


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda f: pd.concat([f, f.iloc[[5]]]).sort_values("Date", kind="stable"), "duplicate dates"),
        (lambda f: f.iloc[::-1], "not sorted"),
        (lambda f: f.assign(Low=f["Low"].where(f.index != 7, -1.0)), "non-positive"),
        (lambda f: f.drop(index=range(50, 60)), "gap"),
        (lambda f: f.assign(High=f["High"].where(f.index != 9, 0.001)), "High is below Low"),
        (lambda f: f.drop(columns=["Volume"]), "Volume"),
    ],
)
def test_bad_files_are_data_errors(tmp_path: Path, edit, message: str) -> None:
    raw = edit(synthetic.bars(200, start="2019-01-01").reset_index(drop=True))
    path = tmp_path / "stocks" / "BAD.csv"
    path.parent.mkdir(parents=True)
    frame = raw.assign(Date=raw["Date"].dt.strftime("%Y-%m-%d"))
    frame.to_csv(path, index=False)
    with pytest.raises(DataError, match=message):
        data.load(data_dir=tmp_path, ticker="BAD", start="2019-01-01", end="2020-01-01")


def test_missing_prices_are_dropped_with_a_note(tmp_path: Path) -> None:
    raw = synthetic.bars(200, start="2019-01-01")
    raw.loc[20, "Close"] = np.nan
    _write(tmp_path, "GAPPY", raw)
    ds = data.load(data_dir=tmp_path, ticker="GAPPY", start="2019-01-01", end="2020-01-01")
    assert ds.rows == 198 and any("missing price" in n for n in ds.notes)


def test_empty_ranges_and_bad_parameters(tmp_path: Path) -> None:
    _write(tmp_path, "TEST", synthetic.bars(200, start="2019-01-01"))
    with pytest.raises(DataError, match="empty"):
        data.load(data_dir=tmp_path, ticker="TEST", start="2020-01-01", end="2019-01-01")
    with pytest.raises(DataError, match="trading day"):
        data.load(data_dir=tmp_path, ticker="TEST", start="2030-01-01", end="2031-01-01")
    with pytest.raises(ParameterError, match="date"):
        data.load(data_dir=tmp_path, ticker="TEST", start="yesterday-ish")
    with pytest.raises(ParameterError, match="ticker"):
        data.load(data_dir=tmp_path, ticker="../etc/passwd")
    with pytest.raises(DataError, match="not found"):
        data.load(data_dir=tmp_path, ticker="NOPE")


# -------------------------------------------------------------------------------------------- yfinance (fake)
class _RateLimit(Exception):
    pass


class _Missing(Exception):
    pass


def _fake_yfinance(monkeypatch: pytest.MonkeyPatch, behaviour) -> dict[str, int]:
    """Install a stand-in ``yfinance`` module whose ``Ticker(t).history`` runs ``behaviour(t)``."""
    calls = {"n": 0}
    module = types.ModuleType("yfinance")
    module.exceptions = types.SimpleNamespace(YFRateLimitError=_RateLimit, YFTickerMissingError=_Missing)
    module.config = types.SimpleNamespace(debug=types.SimpleNamespace(hide_exceptions=True))

    class Ticker:
        def __init__(self, symbol: str) -> None:
            self.symbol = symbol

        def history(self, **kwargs) -> pd.DataFrame:
            calls["n"] += 1
            assert kwargs["auto_adjust"] is False and kwargs["actions"] is True
            assert module.config.debug.hide_exceptions is False  # errors raised, not just logged
            return behaviour(self.symbol)

    module.Ticker = Ticker
    monkeypatch.setitem(sys.modules, "yfinance", module)
    monkeypatch.setattr(data, "BACKOFF_SECONDS", 0.0)
    return calls


def _yahoo_frame(n: int = 300, start: str = "2021-01-04") -> pd.DataFrame:
    raw = synthetic.bars(n, start=start)
    index = pd.DatetimeIndex(raw["Date"]).tz_localize("America/New_York").rename("Date")
    frame = raw.drop(columns=["Date"]).set_index(index)
    return frame.assign(**{"Adj Close": frame["Close"] * 0.99, "Dividends": 0.0, "Stock Splits": 0.0})


def test_download_caches_in_mirror_layout_then_reuses_the_cache(tmp_path: Path, monkeypatch) -> None:
    calls = _fake_yfinance(monkeypatch, lambda t: _yahoo_frame())
    ds = data.load(ticker="FAKE", start="2021-01-01", end="2021-12-01")
    cached = tmp_path / "cache" / "stocks" / "FAKE.csv"
    assert ds.files[0].origin == "download" and Path(ds.files[0].path) == cached
    assert list(pd.read_csv(cached).columns) == FILE_COLUMNS
    assert ds.files[0].sha256 == data.file_sha256(cached)
    again = data.load(ticker="FAKE", start="2021-01-01", end="2021-12-01")
    assert calls["n"] == 1 and again.files[0].origin == "cache"
    pd.testing.assert_frame_equal(ds.X, again.X)


def test_rate_limit_is_retried_then_reported(monkeypatch) -> None:
    def limited(t):
        raise _RateLimit("Too Many Requests")

    calls = _fake_yfinance(monkeypatch, limited)
    with pytest.raises(DataError, match="rate-limiting"):
        data.load(ticker="FAKE")
    assert calls["n"] == data.DOWNLOAD_ATTEMPTS


def test_rate_limit_then_success(monkeypatch) -> None:
    state = {"left": 1}

    def flaky(t):
        if state["left"]:
            state["left"] -= 1
            raise _RateLimit("Too Many Requests")
        return _yahoo_frame()

    calls = _fake_yfinance(monkeypatch, flaky)
    ds = data.load(ticker="FAKE", start="2021-01-01", end="2021-12-01")
    assert calls["n"] == 2 and ds.rows > 100


def test_unknown_ticker_and_no_network(monkeypatch) -> None:
    _fake_yfinance(monkeypatch, lambda t: pd.DataFrame())
    with pytest.raises(DataError, match="unknown or delisted"):
        data.load(ticker="NOSUCH")

    def missing(t):
        raise _Missing(f"${t}: possibly delisted; no timezone found")

    calls = _fake_yfinance(monkeypatch, missing)
    with pytest.raises(DataError, match="no data for NOSUCH"):
        data.load(ticker="NOSUCH")
    assert calls["n"] == 1  # not retried

    def offline(t):
        raise OSError("Could not resolve host: query2.finance.yahoo.com")

    _fake_yfinance(monkeypatch, offline)
    with pytest.raises(DataError, match="could not be reached"):
        data.load(ticker="FAKE")


def test_yfinance_not_installed(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "yfinance", None)
    with pytest.raises(DataError, match=r"yfinance is a core dependency: pip install -e \. "):
        data.load(ticker="FAKE")


def test_stale_cache_is_used_offline_with_a_note(tmp_path: Path, monkeypatch) -> None:
    _write(tmp_path / "cache", "OLD", synthetic.bars(300, start="2019-01-01"))

    def offline(t):
        raise OSError("no network")

    calls = _fake_yfinance(monkeypatch, offline)
    ds = data.load(ticker="OLD", start="2019-01-01", end="2024-01-01")
    assert calls["n"] == data.DOWNLOAD_ATTEMPTS
    assert ds.files[0].origin == "cache" and any("before the requested end" in n for n in ds.notes)


# ------------------------------------------------------------------------------------------------- real data
@pytest.mark.realdata
@pytest.mark.slow
def test_aapl_default_meets_the_bar_and_reloads(real_data_dir: Path) -> None:
    from projects import load_pipeline

    result = train.run("stocks")
    m = result.metrics
    assert m["mase"] <= 1.0, m["mase"]  # no worse than persistence on the 2022-2023 holdout
    assert m["baseline_persistence_mase"] == pytest.approx(1.0)
    assert m["holdout_days"] > 400 and 0.4 < m["directional_accuracy"] < 0.6
    for key in ("dm_pvalue", "backtest_sharpe", "baseline_buyhold_backtest_total_return", "cv_mase"):
        assert np.isfinite(m[key])
    raw = pd.read_csv(real_data_dir / "stocks" / "AAPL.csv")  # the raw file, extra columns and all
    window = raw[(raw["Date"] >= "2023-09-01") & (raw["Date"] < "2024-01-01")]
    pred = load_pipeline("stocks").predict(window)
    assert pred.shape == (len(window),)
    assert abs(pred[-1] / window["Close"].iloc[-1] - 1) < 0.02


@pytest.mark.realdata
@pytest.mark.slow
@pytest.mark.parametrize("ticker", ["MSFT", "SPY"])
def test_other_mirrored_tickers_work_unchanged(real_data_dir: Path, ticker: str) -> None:
    result = train.run("stocks", {"ticker": ticker}, log_model=False)
    assert 0.97 < result.metrics["mase"] < 1.03  # next-day prices: nobody is far from persistence
    assert result.params["ticker"] == ticker


@pytest.mark.realdata
@pytest.mark.slow
def test_seed_protocol_on_real_data_is_leaky(real_data_dir: Path) -> None:
    result = train.run("stocks", {"model": "seed"}, log_model=False)
    assert result.metrics["mase"] < 0.5 < 1.0 < result.metrics["honest_mase"]
