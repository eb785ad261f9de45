"""stocks evaluation: the generic walk-forward protocol, plus forecast scores, a backtest and plots.

``common.protocol.evaluate_supervised`` runs the protocol ``spec.py`` declares: the last 20% of days are
the holdout (the test part), 5 expanding walk-forward folds with a 5-day gap run over the first 80%,
persistence and drift (``pipeline.baselines``) are scored on the same folds and holdout, and the logged
model is refit on every day so that it forecasts the day after the range. ``HOOKS`` add what belongs
to forecasting prices:

* ``metrics``: the protocol already predicts every validation day and every holdout day with all
  earlier bars in front of it (``SplitSpec.history``), and stops the holdout model ``gap`` days before
  the holdout. The hook adds MASE (against persistence over the same days), directional accuracy with a
  95% Wilson interval, the Diebold-Mariano test against persistence, and the costed long/flat backtest
  against buy-and-hold.
* ``artifacts``: ``holdout_predictions.csv``, ``equity_curve.png``, ``predicted_vs_actual.png`` and
  ``walk_forward_mase.png``.

``model="seed"`` reproduces the seed tutorial's leaky protocol instead (same-day Open/High/Low to the
same day's Close, a shuffled split) and logs its numbers under the same names, so that both runs can be
compared in the MLflow UI. It is a separate small function, ``evaluate_seed``, reached from
``evaluate``, rather than a ``parts`` hook, because the generic protocol would work against it at every
step. Its target is the same day's Close, so the protocol's persistence baseline would be the target
itself (MAE 0). It has no walk-forward CV. Its model must be neither refit on next-day targets nor
registered: it needs the day's own High and Low, so it cannot forecast and must never become champion
(``Outcome.model`` is None).
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.model_selection import train_test_split

from common import plots, protocol, splits
from common.bench import timed
from common.evaluation import regression_scores
from common.protocol import Context, Evaluation, EvaluationHooks, Outcome

log = logging.getLogger(__name__)

TRADING_DAYS = 252
CV_SCORES = ("mae", "rmse", "mase", "directional_accuracy")


# -------------------------------------------------------------------------------------------- statistics
def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion (well-behaved near 0 and 1, unlike the normal one)."""
    if n == 0:
        return float("nan"), float("nan")
    ci = stats.binomtest(successes, n).proportion_ci(confidence_level=confidence, method="wilson")
    return float(ci.low), float(ci.high)


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
def _prefixed(prefix: str, scores: dict[str, float]) -> dict[str, float]:
    return {f"{prefix}{k}": v for k, v in scores.items()}


def _holdout_rows(ctx: Context, ev: Evaluation) -> np.ndarray:
    """Positions of the holdout days in the dataset (the protocol's time split keeps the last ones)."""
    n = splits.n_rows(ctx.dataset.X)
    return np.arange(n - len(ev.test.y), n)


# ------------------------------------------------------------------------------------------------- hooks
def forecast_metrics(ctx: Context, ev: Evaluation) -> dict[str, float]:
    """MASE, directional accuracy, the Diebold-Mariano test and the backtest, for CV and the holdout."""
    X = ctx.dataset.X
    te = _holdout_rows(ctx, ev)
    cv_mask = ev.cv.mask
    out: dict[str, float] = {}

    # Walk-forward: scores over all validated days, and MASE per fold (each against persistence).
    today = ev.parts.X_cv["Close"].to_numpy(dtype=float)
    cv = {"model": ev.cv, **ev.cv_baselines}
    actual, persistence = ev.cv.y, ev.cv_baselines["persistence"].pred
    pers_mae = float(np.mean(np.abs(actual[cv_mask] - persistence[cv_mask])))
    fold_mase: dict[str, list[float]] = {}
    for name, p in cv.items():
        s = forecast_scores(actual[cv_mask], today[cv_mask], p.pred[cv_mask], pers_mae)
        out |= _prefixed("cv_" if name == "model" else f"baseline_{name}_cv_", {k: s[k] for k in CV_SCORES})
        fold_mase[name] = [float(np.mean(np.abs(actual[m] - p.pred[m])) / np.mean(np.abs(actual[m] - persistence[m])))
                           for m in (ev.cv.fold == f for f in np.unique(ev.cv.fold[cv_mask]))]
    out["cv_mase_std"] = float(np.std(fold_mase["model"]))

    # Holdout: the model and the baselines beside persistence on the same days.
    today = X["Close"].to_numpy(dtype=float)[te]
    actual = ev.test.y.astype(float)
    pers_err = actual - ev.test_baselines["persistence"].pred
    pers_mae = float(np.mean(np.abs(pers_err)))
    for name, p in {"model": ev.test, **ev.test_baselines}.items():
        s = forecast_scores(actual, today, p.pred, pers_mae, None if name == "persistence" else pers_err)
        out |= s if name == "model" else _prefixed(f"baseline_{name}_", s)
    out["holdout_days"] = float(len(te))

    # Backtest on the holdout, against buying and holding.
    cost = float(ctx.params["cost_bps"])
    strat, strat_daily, position = backtest(ev.test.pred, today, actual, cost)
    hold, hold_daily, _ = backtest(ev.test.pred, today, actual, cost, long_only=np.ones(len(te)))
    out |= strat | _prefixed("baseline_buyhold_", hold)
    ev.info |= {"fold_mase": fold_mase, "strategy": (strat, strat_daily, position), "buyhold": (hold, hold_daily)}
    return out


def forecast_artifacts(ctx: Context, ev: Evaluation) -> None:
    """The holdout table, the equity curve, the predicted path and the MASE of each walk-forward fold."""
    m, X = ev.metrics, ctx.dataset.X
    te = _holdout_rows(ctx, ev)
    (strat, strat_daily, position), (hold, hold_daily) = ev.info["strategy"], ev.info["buyhold"]
    table = pd.DataFrame({
        "date": pd.to_datetime(X["Date"].iloc[te]).dt.strftime("%Y-%m-%d").to_numpy(),
        "close": X["Close"].to_numpy(dtype=float)[te], "next_close": ev.test.y, "predicted": ev.test.pred,
        "persistence": ev.test_baselines["persistence"].pred, "drift": ev.test_baselines["drift"].pred,
        "position": position, "strategy_equity": np.cumprod(1 + strat_daily),
        "buyhold_equity": np.cumprod(1 + hold_daily),
    })
    table.to_csv(ctx.artifact("holdout_predictions.csv"), index=False)
    title = f"{ctx.dataset.extras.get('ticker', '')} {ctx.params.get('model')}".strip()
    plot_equity(table, strat, hold, float(ctx.params["cost_bps"]), ctx.artifact("equity_curve.png"), title)
    plot_predictions(table, m, ctx.artifact("predicted_vs_actual.png"), title)
    plot_walk_forward(ev.info["fold_mase"], ctx.artifact("walk_forward_mase.png"), title)
    log.info("stocks holdout: MASE %.4f (drift %.4f), directional accuracy %.3f, DM p=%.3f; strategy %.1f%% vs "
             "buy-and-hold %.1f%%", m["mase"], m["baseline_drift_mase"], m["directional_accuracy"],
             m.get("dm_pvalue", float("nan")), 100 * strat["backtest_total_return"],
             100 * hold["backtest_total_return"])


HOOKS = EvaluationHooks(metrics=forecast_metrics, artifacts=forecast_artifacts)


# --------------------------------------------------------------------------------------------- protocol
def evaluate(ctx: Context) -> Outcome:
    """The generic protocol with ``HOOKS``; the seed tutorial's leaky protocol for ``model=seed``."""
    if ctx.params.get("model") == "seed":
        return evaluate_seed(ctx)
    return protocol.evaluate_supervised(ctx, HOOKS).outcome()


def evaluate_seed(ctx: Context) -> Outcome:
    """The seed tutorial's protocol on the same bars: same-day Open/High/Low -> same-day Close, shuffled split.

    Logged under the honest run's metric names (``mae``, ``rmse``, ``mase``) so the MLflow UI puts them side
    by side. ``honest_*`` shows the same regression used the only way it could forecast: on day ``t``'s bars
    for day ``t + 1``'s close, fitted on the first 80% in time (less the gap) and scored on the last 20%.
    Nothing is registered.
    """
    split = ctx.spec.split
    X = ctx.dataset.X.reset_index(drop=True)
    close = X["Close"].to_numpy(dtype=float)
    n = len(X)
    idx = np.arange(1, n)  # from the second day, so every row has a previous close for persistence
    tr, te = train_test_split(idx, test_size=split.test_size, random_state=split.seed, shuffle=True)
    fit = timed(lambda: ctx.build().fit(X.iloc[tr], close[tr]))
    pred = np.asarray(fit.result.predict(X.iloc[te]), dtype=float)
    metrics = {k: v for k, v in regression_scores(close[te], pred).items() if k in ("mae", "rmse", "r2")}
    pers = regression_scores(close[te], close[te - 1])
    metrics["mase"] = metrics["mae"] / pers["mae"]
    metrics |= {"baseline_persistence_mae": pers["mae"], "baseline_persistence_rmse": pers["rmse"],
                "baseline_persistence_mase": 1.0}

    # The same model, used honestly: bars of day t -> Close of day t+1, chronological split with the gap.
    y_next = np.asarray(ctx.dataset.y, dtype=float)
    cut = int(round(n * (1 - split.test_size)))
    honest = ctx.build().fit(X.iloc[: cut - split.gap], y_next[: cut - split.gap])
    h_pred = np.asarray(honest.predict(X.iloc[cut:]), dtype=float)
    metrics["honest_mae"] = float(np.mean(np.abs(y_next[cut:] - h_pred)))
    metrics["honest_mase"] = float(metrics["honest_mae"] / np.mean(np.abs(y_next[cut:] - close[cut:])))

    plots.regression(close[te], pred, ctx.artifact("seed_predicted_vs_actual.png"),
                     "seed protocol (leaky: same-day High/Low, shuffled split)")
    log.warning(
        "stocks seed protocol: MAE %.3f and MASE %.3f look far better than persistence only because the same "
        "day's High/Low bound the Close and the shuffled split trains on the future; used honestly the same "
        "model scores MASE %.3f. This run is logged for comparison and its model is not registered.",
        metrics["mae"], metrics["mase"], metrics["honest_mase"],
    )
    return Outcome(metrics=metrics, model=None, fit_seconds=fit.wall_s)


# ------------------------------------------------------------------------------------------------- plots
def plot_equity(table: pd.DataFrame, strat: dict[str, float], hold: dict[str, float], cost_bps: float,
                path: Any, title: str) -> None:
    """Equity of the long/flat strategy and of buy-and-hold over the holdout, with drawdowns."""
    dates = pd.to_datetime(table["date"])
    fig, axes = plots.subplots(2, 1, figsize=(10, 6.5), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
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
    plots.save(fig, path)


def plot_predictions(table: pd.DataFrame, metrics: dict[str, float], path: Any, title: str) -> None:
    """Predicted vs actual next-day close over the holdout, and predicted vs actual next-day return."""
    dates = pd.to_datetime(table["date"])
    fig, axes = plots.subplots(1, 2, figsize=(13, 4.8), gridspec_kw={"width_ratios": [2, 1]})
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
    plots.save(fig, path)


def plot_walk_forward(per_fold: dict[str, list[float]], path: Any, title: str) -> None:
    """MASE of the model and the drift baseline in each walk-forward fold (1 = persistence)."""
    folds = np.arange(1, len(per_fold["model"]) + 1)
    fig, ax = plots.subplots(figsize=(7, 4))
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
    plots.save(fig, path)
