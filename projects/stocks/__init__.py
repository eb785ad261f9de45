"""Stocks: next-day Close forecasting from daily bars (yfinance), walk-forward evaluated, with a costed backtest."""
