"""Small generated customers with the real Telco schema, for the test harness (no real data needed)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from common.datasets import Dataset, generated

_ADDONS = ["OnlineSecurity", "OnlineBackup", "DeviceProtection", "TechSupport", "StreamingTV", "StreamingMovies"]


def telco_frame(n: int, rng: np.random.Generator) -> tuple[pd.DataFrame, np.ndarray]:
    """``n`` Telco-like customers and their churn probability (month-to-month, new, fibre, e-check churn)."""
    contract = rng.choice(["Month-to-month", "One year", "Two year"], n, p=[0.55, 0.21, 0.24])
    tenure = np.where(contract == "Month-to-month", rng.integers(0, 40, n), rng.integers(5, 73, n))
    internet = rng.choice(["DSL", "Fiber optic", "No"], n, p=[0.34, 0.44, 0.22])
    phone = rng.choice(["Yes", "No"], n, p=[0.9, 0.1])
    frame = pd.DataFrame({
        "SeniorCitizen": rng.choice([0, 1], n, p=[0.84, 0.16]),
        "Partner": rng.choice(["Yes", "No"], n),
        "Dependents": rng.choice(["Yes", "No"], n, p=[0.3, 0.7]),
        "tenure": tenure,
        "PhoneService": phone,
        "MultipleLines": np.where(phone == "No", "No phone service", rng.choice(["Yes", "No"], n)),
        "InternetService": internet,
    })
    for col in _ADDONS:
        frame[col] = np.where(internet == "No", "No internet service", rng.choice(["Yes", "No"], n))
    frame["Contract"] = contract
    frame["PaperlessBilling"] = rng.choice(["Yes", "No"], n, p=[0.6, 0.4])
    frame["PaymentMethod"] = rng.choice(
        ["Electronic check", "Mailed check", "Bank transfer (automatic)", "Credit card (automatic)"], n)
    addons = sum((frame[c] == "Yes").astype(int) for c in _ADDONS)
    monthly = (20 + 25 * (internet == "DSL") + 50 * (internet == "Fiber optic") + 5 * addons
               + rng.normal(0, 2, n)).round(2)
    frame["MonthlyCharges"] = monthly
    total = (monthly * tenure * rng.uniform(0.9, 1.1, n)).round(2)
    frame["TotalCharges"] = np.where(tenure == 0, np.nan, total)
    logit = (-1.2 + 1.3 * (contract == "Month-to-month") - 0.9 * (contract == "Two year")
             - 0.045 * tenure + 0.8 * (internet == "Fiber optic") + 0.6 * (frame["PaymentMethod"] == "Electronic check")
             - 0.5 * (frame["TechSupport"] == "Yes") + 0.4 * frame["SeniorCitizen"])
    return frame, 1 / (1 + np.exp(-logit.to_numpy(dtype=float)))


def generate(n: int = 500, seed: int = 0) -> Dataset:
    """``n`` labelled Telco-schema customers (about a quarter churn)."""
    rng = np.random.default_rng(seed)
    X, p = telco_frame(n, rng)
    y = pd.Series((rng.random(n) < p).astype(int), name="Churn")
    return Dataset(X=X, y=y, files=[generated("churn", {"n": n, "seed": seed})], name="synthetic")


def predict_example(ds: Dataset) -> pd.DataFrame:
    """Three raw rows, one of them messy: blank TotalCharges, an unseen payment method, an extra column."""
    rows = ds.X.iloc[:3].copy().astype({"TotalCharges": object, "PaymentMethod": object})
    rows.iloc[1, rows.columns.get_loc("TotalCharges")] = " "
    rows.iloc[2, rows.columns.get_loc("PaymentMethod")] = "Crypto"
    rows.insert(0, "customerID", ["A-1", "B-2", "C-3"])
    return rows


