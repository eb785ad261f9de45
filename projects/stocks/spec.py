"""stocks: scored on the last 20% in time (MASE against persistence); walk-forward CV on the first 80%."""

from common.spec import ProjectSpec, SplitSpec

SPEC = ProjectSpec(
    name="stocks",
    title="Daily stock bars (yfinance): next-day Close forecast, walk-forward, MASE vs persistence, backtest",
    task="forecast",
    primary_metric="mase",
    greater_is_better=False,
    # Time order is never shuffled: 5 expanding walk-forward folds on the first 80% with a one-week gap, the
    # last 20% as the final holdout; the logged model is refit on every day so it forecasts the next one.
    # Each forecast sees every earlier bar (the features look back up to 64 days); the logged example is
    # the last 80 days, enough for one complete forecast.
    split=SplitSpec(kind="time", test_size=0.2, cv_folds=5, cv_on="train", refit_on="all", gap=5, seed=42,
                    history=80),
    # `make stocks` trains the honest model and re-runs the seed's leaky protocol beside it (not registered).
    variants=({}, {"model": "seed"}),
    # The seed tutorial: same-day Open/High/Low -> Close with a shuffled split, "MAE $0.88" on AAPL 2020-2024.
    seed_scores={"mae": 0.88},
    input_kind="frame",
    target="next_close",
)
