"""The stocks protocol: walk-forward CV on the first 80% in time, a final holdout on the last 20%, a backtest.

Every forecast of day ``t + 1`` comes from a model fitted only on pairs (day ``s``, close of ``s + 1``) that
end ``gap`` trading days before the first forecast day, and it sees the bars up to day ``t`` (the features
are causal, so handing the model the earlier bars only supplies history). Scores are in price units of
the next-day Close, beside two naive forecasts: persistence (tomorrow = today) and drift.

``model=seed`` instead reproduces the seed tutorial's leaky protocol on the same bars (same-day
Open/High/Low -> same-day Close, shuffled split) and logs its numbers under the same names, so both runs
can be compared in the MLflow UI. Its model is not registered: it needs the day's own High and Low, so
it cannot forecast anything and must never become the champion.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.base import clone
from sklearn.model_selection import TimeSeriesSplit, train_test_split

from common.console import step
from common.errors import DataError
from common.evaluation import regression_scores
from common.protocol import Context, Outcome
from projects.stocks.features import WARMUP
from projects.stocks.pipeline import baselines

log = logging.getLogger(__name__)

TRADING_DAYS = 252
EXAMPLE_ROWS = 80  # enough history that the logged input example gives complete features


# -------------------------------------------------------------------------------------------- statistics
def wilson_interval(successes: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """95% Wilson score interval of a proportion (well-behaved near 0 and 1, unlike the normal one)."""
    if n == 0:
        return float("nan"), float("nan")
    p = successes / n
    denom = 1 + z**2 / n
    centre = (p + z**2 / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / denom
    return centre - half, centre + half


def diebold_mariano(err_model: np.ndarray, err_base: np.ndarray, power: int = 1, horizon: int = 1) -> tuple[float, float]:
    """Diebold-Mariano test of equal accuracy, with the Harvey-Leybourne-Newbold small-sample correction.

    Args:
        err_model, err_base: forecast errors of the two methods on the same days.
        power: loss ``|e|**power`` (1: absolute error, the loss MASE uses; 2: squared error).
        horizon: forecast horizon in days (autocovariances up to ``horizon - 1`` enter the variance).

    Returns:
        (statistic, two-sided p-value from Student's t with n-1 degrees of freedom). A negative statistic
        means the model's loss is lower. NaN when the two forecasts are identical.
    """
    d = np.abs(err_model) ** power - np.abs(err_base) ** power
    d = d[np.isfinite(d)]
    n = len(d)
    if n < 3:
        return float("nan"), float("nan")
    centred = d - d.mean()
    var = np.dot(centred, centred) / n
    for k in range(1, horizon):
        var += 2 * np.dot(centred[k:], centred[:-k]) / n
    if var <= 0:
        return float("nan"), float("nan")
    dm = d.mean() / math.sqrt(var / n)
    hln = math.sqrt((n + 1 - 2 * horizon + horizon * (horizon - 1) / n) / n)
    stat = float(dm * hln)
    return stat, float(2 * stats.t.sf(abs(stat), df=n - 1))


def forecast_scores(actual: np.ndarray, today: np.ndarray, pred: np.ndarray, persistence_mae: float,
                    persistence_err: np.ndarray | None = None) -> dict[str, float]:
    """Scores of next-day close forecasts: MAE, RMSE, MASE, directional accuracy (+95% CI), DM vs persistence.

    MASE here divides by the persistence forecast's MAE over the same days, so persistence scores exactly
    1.00 and a value below 1 means the forecast beat "tomorrow = today".
    """
    out = {k: v for k, v in regression_scores(actual, pred).items() if k in ("mae", "rmse")}
    out["mase"] = out["mae"] / persistence_mae if persistence_mae > 0 else float("nan")
    up_pred, up_true = pred > today, actual > today
    hits = int(np.sum(up_pred == up_true))
    out["directional_accuracy"] = hits / len(actual)
    out["directional_accuracy_ci_low"], out["directional_accuracy_ci_high"] = wilson_interval(hits, len(actual))
    if persistence_err is not None:
        out["dm_stat"], out["dm_pvalue"] = diebold_mariano(actual - pred, persistence_err)
    return out


def backtest(pred: np.ndarray, today: np.ndarray, actual: np.ndarray, cost_bps: float,
             long_only: np.ndarray | None = None) -> tuple[dict[str, float], np.ndarray, np.ndarray]:
    """Long/flat on the predicted direction, held close to close, paying ``cost_bps`` per position change.

    The position for day ``t -> t+1`` is decided at the close of ``t`` from the forecast made then; the
    account starts flat, so entering counts as a trade. ``long_only`` overrides the positions (buy and hold).

    Returns:
        (figures, daily strategy returns, positions). Figures: total and annualised return, annualised
        Sharpe ratio (no risk-free rate), maximum drawdown (largest peak-to-trough loss, a fraction),
        number of trades and the fraction of days invested.
    """
    position = (pred > today).astype(float) if long_only is None else long_only.astype(float)
    market = actual / today - 1
    changes = np.abs(np.diff(np.r_[0.0, position]))
    daily = position * market - changes * cost_bps / 1e4
    equity = np.cumprod(1 + daily)
    peak = np.maximum.accumulate(np.r_[1.0, equity])[1:]
    total = float(equity[-1] - 1) if len(equity) else 0.0
    sd = float(np.std(daily, ddof=1)) if len(daily) > 1 else 0.0
    figures = {
        "backtest_total_return": total,
        "backtest_annual_return": float((1 + total) ** (TRADING_DAYS / max(len(daily), 1)) - 1),
        "backtest_sharpe": float(np.sqrt(TRADING_DAYS) * np.mean(daily) / sd) if sd > 0 else float("nan"),
        "backtest_max_drawdown": float(np.max(1 - equity / peak)) if len(equity) else 0.0,
        "backtest_trades": float(changes.sum()),
        "backtest_exposure": float(position.mean()) if len(position) else 0.0,
    }
    return figures, daily, position


# ------------------------------------------------------------------------------------------------ helpers
def forecast(model: Any, X: pd.DataFrame, idx: np.ndarray) -> np.ndarray:
    """Forecasts for rows ``idx`` (contiguous), given all bars up to the last of them as history."""
    return np.asarray(model.predict(X.iloc[: int(idx[-1]) + 1]), dtype=float)[idx]


def _prefixed(prefix: str, scores: dict[str, float]) -> dict[str, float]:
    return {f"{prefix}{k}": v for k, v in scores.items()}


def _candidates(ctx: Context) -> dict[str, Callable[[], Any]]:
    made = {"model": ctx.build}
    for name, est in baselines().items():
        made[name] = lambda est=est: clone(est)
    return made


def _check_size(n: int, cut: int, gap: int, folds: int) -> None:
    first_fold = cut // (folds + 1) - gap
    if first_fold < WARMUP // 2 or n - cut < 10:
        raise DataError(
            f"{n} trading days are too few for walk-forward evaluation with {folds} folds (the first fold would "
            f"train on {max(first_fold, 0)} days, the holdout has {n - cut}). Use a longer range: two years or more."
        )


# --------------------------------------------------------------------------------------------- protocol
def evaluate(ctx: Context) -> Outcome:
    """Walk-forward CV, holdout scores beside persistence and drift, a costed backtest, and the final fit."""
    if ctx.params.get("model") == "seed":
        return evaluate_seed(ctx)
    split = ctx.spec.split
    X = ctx.dataset.X.reset_index(drop=True)
    y = pd.Series(np.asarray(ctx.dataset.y, dtype=float))
    n = len(X)
    cut = int(round(n * (1 - split.test_size)))
    gap = split.gap
    _check_size(n, cut, gap, split.cv_folds)
    today, actual = X["Close"].to_numpy(dtype=float), y.to_numpy()
    makers = _candidates(ctx)
    metrics: dict[str, float] = {}

    # Walk-forward on the first part: expanding training window, `gap` days left out before each fold.
    oof = {name: np.full(n, np.nan) for name in makers}
    fold = np.full(n, -1)
    folds = list(TimeSeriesSplit(n_splits=split.cv_folds, gap=gap).split(np.arange(cut)))
    for i, (tr, va) in enumerate(folds):
        with step(f"Walk-forward fold {i + 1}/{len(folds)}: fit on {len(tr)} days, forecast {len(va)}"):
            for name, make in makers.items():
                est = make().fit(X.iloc[tr], y.iloc[tr])
                oof[name][va] = forecast(est, X, va)
        fold[va] = i
    cv = fold >= 0
    pers_mae_cv = float(np.mean(np.abs(actual[cv] - oof["persistence"][cv])))
    per_fold = {name: [] for name in makers}
    for name in makers:
        s = forecast_scores(actual[cv], today[cv], oof[name][cv], pers_mae_cv)
        keep = {k: s[k] for k in ("mae", "rmse", "mase", "directional_accuracy")}
        metrics |= _prefixed("cv_" if name == "model" else f"baseline_{name}_cv_", keep)
        for f in range(len(folds)):
            m = fold == f
            per_fold[name].append(np.mean(np.abs(actual[m] - oof[name][m])) /
                                  np.mean(np.abs(actual[m] - oof["persistence"][m])))
    metrics["cv_mase_std"] = float(np.std(per_fold["model"]))

    # Final holdout: fit on the first part (less the gap), forecast the last 20% day by day.
    te = np.arange(cut, n)
    fitted: dict[str, Any] = {}
    preds: dict[str, np.ndarray] = {}
    seconds: dict[str, float] = {}
    for name, make in makers.items():
        with step(f"Holdout: fitting {name} on {cut - gap} days"):
            t0 = time.perf_counter()
            fitted[name] = make().fit(X.iloc[: cut - gap], y.iloc[: cut - gap])
            t1 = time.perf_counter()
            preds[name] = forecast(fitted[name], X, te)
            seconds[name] = t1 - t0
        if name == "model":
            metrics["predict_ms_per_row"] = 1000 * (time.perf_counter() - t1) / len(te)
    pers_err = actual[te] - preds["persistence"]
    pers_mae = float(np.mean(np.abs(pers_err)))
    for name, pred in preds.items():
        s = forecast_scores(actual[te], today[te], pred, pers_mae, None if name == "persistence" else pers_err)
        metrics |= s if name == "model" else _prefixed(f"baseline_{name}_", s)
    metrics["holdout_days"] = float(len(te))

    # Backtest on the holdout, against buying and holding.
    cost = float(ctx.params.get("cost_bps", 5.0))
    strat, strat_daily, position = backtest(preds["model"], today[te], actual[te], cost)
    hold, hold_daily, _ = backtest(preds["model"], today[te], actual[te], cost, long_only=np.ones(len(te)))
    metrics |= strat | _prefixed("baseline_buyhold_", hold)

    dates = pd.to_datetime(X["Date"]).to_numpy()
    table = pd.DataFrame({
        "date": pd.to_datetime(dates[te]).strftime("%Y-%m-%d"), "close": today[te], "next_close": actual[te],
        "predicted": preds["model"], "persistence": preds["persistence"], "drift": preds["drift"],
        "position": position, "strategy_equity": np.cumprod(1 + strat_daily),
        "buyhold_equity": np.cumprod(1 + hold_daily),
    })
    table.to_csv(ctx.artifact("holdout_predictions.csv"), index=False)
    title = f"{ctx.dataset.extras.get('ticker', '')} {ctx.params.get('model')}".strip()
    plot_equity(table, strat, hold, cost, ctx.artifact("equity_curve.png"), title)
    plot_predictions(table, metrics, ctx.artifact("predicted_vs_actual.png"), title)
    plot_walk_forward(per_fold, ctx.artifact("walk_forward_mase.png"), title)
    log.info("stocks holdout: MASE %.4f (drift %.4f), directional accuracy %.3f, DM p=%.3f; strategy %.1f%% vs "
             "buy-and-hold %.1f%%", metrics["mase"], metrics["baseline_drift_mase"], metrics["directional_accuracy"],
             metrics.get("dm_pvalue", float("nan")), 100 * strat["backtest_total_return"],
             100 * hold["backtest_total_return"])

    final, fit_seconds = fitted["model"], seconds["model"]
    if ctx.fit_final:
        with step(f"Fitting the final stocks model on all {n} days"):
            t0 = time.perf_counter()
            final = ctx.build().fit(X, y)
            fit_seconds = time.perf_counter() - t0
    return Outcome(metrics=metrics, model=final, input_example=X.iloc[-EXAMPLE_ROWS:].reset_index(drop=True),
                   fit_seconds=fit_seconds, X_test=X.iloc[te], y_test=y.iloc[te])


def evaluate_seed(ctx: Context) -> Outcome:
    """The seed tutorial's protocol on the same bars: same-day Open/High/Low -> same-day Close, shuffled split.

    Logged under the honest run's metric names (``mae``, ``rmse``, ``mase``) so the MLflow UI puts them side
    by side. ``honest_*`` shows the same regression used the only way it could forecast: on day ``t``'s bars
    for day ``t + 1``'s close, fitted on the first 80% in time and scored on the last 20%.
    """
    split = ctx.spec.split
    X = ctx.dataset.X.reset_index(drop=True)
    close = X["Close"].to_numpy(dtype=float)
    n = len(X)
    idx = np.arange(1, n)  # from the second day, so every row has a previous close for persistence
    tr, te = train_test_split(idx, test_size=split.test_size, random_state=split.seed, shuffle=True)
    t0 = time.perf_counter()
    model = ctx.build(model="seed").fit(X.iloc[tr], close[tr])
    fit_seconds = time.perf_counter() - t0
    pred = np.asarray(model.predict(X.iloc[te]), dtype=float)
    prev = close[te - 1]
    metrics = {k: v for k, v in regression_scores(close[te], pred).items() if k in ("mae", "rmse", "r2")}
    pers = regression_scores(close[te], prev)
    metrics["mase"] = metrics["mae"] / pers["mae"]
    metrics |= {"baseline_persistence_mae": pers["mae"], "baseline_persistence_rmse": pers["rmse"],
                "baseline_persistence_mase": 1.0}

    # The same model, used honestly: bars of day t -> Close of day t+1, chronological split with the gap.
    y_next = np.asarray(ctx.dataset.y, dtype=float)
    cut = int(round(n * (1 - split.test_size)))
    honest = ctx.build(model="seed")
    honest.fit(X.iloc[: cut - split.gap], y_next[: cut - split.gap])
    h_pred = np.asarray(honest.predict(X.iloc[cut:]), dtype=float)
    h_pers = np.mean(np.abs(y_next[cut:] - close[cut:]))
    metrics["honest_mae"] = float(np.mean(np.abs(y_next[cut:] - h_pred)))
    metrics["honest_mase"] = float(metrics["honest_mae"] / h_pers)

    from common.evaluation import plot_regression

    plot_regression(close[te], pred, ctx.artifact("seed_predicted_vs_actual.png"),
                    "seed protocol (leaky: same-day High/Low, shuffled split)")
    log.warning(
        "stocks seed protocol: MAE %.3f and MASE %.3f look far better than persistence only because the same "
        "day's High/Low bound the Close and the shuffled split trains on the future; used honestly the same "
        "model scores MASE %.3f. This run is logged for comparison and its model is not registered.",
        metrics["mae"], metrics["mase"], metrics["honest_mase"],
    )
    return Outcome(metrics=metrics, model=None, fit_seconds=fit_seconds)


# ------------------------------------------------------------------------------------------------- plots
def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def plot_equity(table: pd.DataFrame, strat: dict[str, float], hold: dict[str, float], cost_bps: float,
                path: Any, title: str) -> None:
    """Equity of the long/flat strategy and of buy-and-hold over the holdout, with drawdowns."""
    plt = _plt()
    dates = pd.to_datetime(table["date"])
    fig, axes = plt.subplots(2, 1, figsize=(10, 6.5), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    for col, label, figs in (("strategy_equity", "long/flat on predicted sign", strat),
                             ("buyhold_equity", "buy and hold", hold)):
        eq = table[col].to_numpy()
        axes[0].plot(dates, eq, label=f"{label}: {100 * figs['backtest_total_return']:+.1f}%, "
                                      f"Sharpe {figs['backtest_sharpe']:.2f}, max DD {100 * figs['backtest_max_drawdown']:.1f}%")
        axes[1].plot(dates, eq / np.maximum.accumulate(np.r_[1.0, eq])[1:] - 1)
    axes[0].axhline(1.0, color="grey", lw=0.8)
    axes[0].set_ylabel("equity (start = 1)")
    axes[0].set_title(f"{title}: holdout backtest, {cost_bps:g} bp per trade")
    axes[0].legend(loc="upper left", fontsize=8)
    axes[1].set_ylabel("drawdown")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_predictions(table: pd.DataFrame, metrics: dict[str, float], path: Any, title: str) -> None:
    """Predicted vs actual next-day close over the holdout, and predicted vs actual next-day return."""
    plt = _plt()
    dates = pd.to_datetime(table["date"])
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.8), gridspec_kw={"width_ratios": [2, 1]})
    ax = axes[0]
    ax.plot(dates, table["next_close"], lw=1.0, label="actual next-day close")
    ax.plot(dates, table["predicted"], lw=1.0, alpha=0.8, label=f"model (MASE {metrics['mase']:.4f})")
    ax.plot(dates, table["persistence"], lw=0.8, alpha=0.6, ls="--", label="persistence (MASE 1)")
    ax.set_title(f"{title}: next-day close on the holdout")
    ax.legend(fontsize=8)
    ax = axes[1]
    actual_r = table["next_close"] / table["close"] - 1
    pred_r = table["predicted"] / table["close"] - 1
    ax.scatter(pred_r, actual_r, s=5, alpha=0.5)
    ax.axhline(0, color="grey", lw=0.8)
    ax.axvline(0, color="grey", lw=0.8)
    ax.set_xlabel("predicted next-day return")
    ax.set_ylabel("actual next-day return")
    ax.set_title(f"direction right {100 * metrics['directional_accuracy']:.1f}% "
                 f"[{100 * metrics['directional_accuracy_ci_low']:.1f}, {100 * metrics['directional_accuracy_ci_high']:.1f}]")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_walk_forward(per_fold: dict[str, list[float]], path: Any, title: str) -> None:
    """MASE of the model and the drift baseline in each walk-forward fold (1 = persistence)."""
    plt = _plt()
    folds = np.arange(1, len(per_fold["model"]) + 1)
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.bar(folds - 0.2, per_fold["model"], width=0.4, label="model")
    ax.bar(folds + 0.2, per_fold["drift"], width=0.4, label="drift")
    ax.axhline(1.0, color="black", lw=1, label="persistence")
    lo = min(min(per_fold["model"]), min(per_fold["drift"]), 1.0)
    hi = max(max(per_fold["model"]), max(per_fold["drift"]), 1.0)
    ax.set_ylim(lo - 0.2 * (hi - lo) - 1e-3, hi + 0.2 * (hi - lo) + 1e-3)
    ax.set_xlabel("walk-forward fold")
    ax.set_ylabel("MASE")
    ax.set_title(f"{title}: walk-forward MASE per fold")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
