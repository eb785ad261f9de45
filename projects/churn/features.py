"""Raw customer columns -> typed and engineered columns, for either churn dataset (stateless).

Two raw schemas are supported: IBM Telco (``tenure``, ``Contract``, ``TotalCharges``...) and the Kaggle
"Customer Churn Dataset" (``Tenure``, ``Contract Length``, ``Total Spend``...). ``ChurnFeatures`` learns
only *which* schema it was fitted on; every engineered column is a fixed formula of one row (domain rules,
no statistics), so applying it before a cross-validation split leaks nothing. Everything estimated from
rows (imputation values, spline knots, category levels, scales) is learned later, inside the model step,
on training rows only.

Output columns carry a prefix that tells the model step how to encode them:
``cont_`` continuous (splines for the linear model), ``num_`` counts and 0/1 flags (scaled), ``cat_``
nominal values as pandas ``Categorical`` (one-hot for the linear model, native categorical splits for the
trees).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from common.contract import rows_frame
from common.errors import InputError

# ----------------------------------------------------------------------------------------------- schemas
TELCO_NUMERIC = ["SeniorCitizen", "tenure", "MonthlyCharges", "TotalCharges"]
TELCO_CATEGORICAL = [
    "Partner", "Dependents", "PhoneService", "MultipleLines", "InternetService", "OnlineSecurity",
    "OnlineBackup", "DeviceProtection", "TechSupport", "StreamingTV", "StreamingMovies", "Contract",
    "PaperlessBilling", "PaymentMethod",
]
# ``gender`` is in the file but not used: it carries no churn signal here (26.9% vs 26.2%) and a retention
# offer should not depend on it, so it is not required either (extra columns are ignored).
TELCO_COLUMNS = [
    "SeniorCitizen", "Partner", "Dependents", "tenure", "PhoneService", "MultipleLines",
    "InternetService", "OnlineSecurity", "OnlineBackup", "DeviceProtection", "TechSupport", "StreamingTV",
    "StreamingMovies", "Contract", "PaperlessBilling", "PaymentMethod", "MonthlyCharges", "TotalCharges",
]
KAGGLE_NUMERIC = ["Age", "Tenure", "Usage Frequency", "Support Calls", "Payment Delay", "Total Spend",
                  "Last Interaction"]
KAGGLE_CATEGORICAL = ["Gender", "Subscription Type", "Contract Length"]
KAGGLE_COLUMNS = ["Age", "Gender", "Tenure", "Usage Frequency", "Support Calls", "Payment Delay",
                  "Subscription Type", "Contract Length", "Total Spend", "Last Interaction"]

SCHEMAS: dict[str, list[str]] = {"telco": TELCO_COLUMNS, "kaggle": KAGGLE_COLUMNS}
NUMERIC: dict[str, list[str]] = {"telco": TELCO_NUMERIC, "kaggle": KAGGLE_NUMERIC}

# Telco add-on services: "Yes" means the customer pays for it ("No internet service" counts as no).
_ADDONS = ["OnlineSecurity", "OnlineBackup", "DeviceProtection", "TechSupport", "StreamingTV", "StreamingMovies"]
_PROTECTION = ["OnlineSecurity", "OnlineBackup", "DeviceProtection", "TechSupport"]
_CONTRACT_MONTHS = {"Month-to-month": 1.0, "One year": 12.0, "Two year": 24.0}
_KAGGLE_CONTRACT_MONTHS = {"Monthly": 1.0, "Quarterly": 3.0, "Annual": 12.0}
# Tenure buckets in months: the first year is where most Telco churn happens.
TENURE_EDGES = (-np.inf, 6, 12, 24, 48, np.inf)
TENURE_LABELS = ("0-6", "7-12", "13-24", "25-48", "49+")


def as_frame(X: Any) -> pd.DataFrame:
    """Accept a DataFrame, a list of row dicts or one row dict of raw columns."""
    frame = rows_frame(X)
    if frame is not None:
        return frame
    raise InputError(
        f"churn expects a DataFrame of raw customer columns (like the Telco or Kaggle CSV without Churn); "
        f"got {type(X).__name__}."
    )


def detect_schema(frame: pd.DataFrame) -> str:
    """``telco`` or ``kaggle``: the raw schema whose columns the frame has.

    Raises:
        InputError: naming the missing columns of the closer schema.
    """
    missing = {name: [c for c in cols if c not in frame.columns] for name, cols in SCHEMAS.items()}
    for name, miss in missing.items():
        if not miss:
            return name
    closest = min(missing, key=lambda n: len(missing[n]))
    raise InputError(_missing_message(closest, missing[closest]))


def _missing_message(schema: str, missing: list[str]) -> str:
    return (
        f"churn input is missing required {schema} column(s): {', '.join(missing)}. Pass every raw column of "
        f"the {schema} file except the target (extra columns such as customer ids are ignored): "
        f"{', '.join(SCHEMAS[schema])}."
    )


def _number(raw: pd.Series) -> pd.Series:
    """Numbers from a raw column; blanks and junk (Telco's ' ' TotalCharges) become NaN."""
    if pd.api.types.is_bool_dtype(raw):
        return raw.astype(float)
    if pd.api.types.is_numeric_dtype(raw):
        return pd.to_numeric(raw, errors="coerce").astype(float)
    text = raw.astype("string").str.strip().replace({"Yes": "1", "No": "0"})
    return pd.to_numeric(text, errors="coerce").astype(float)


class Cat:
    """A raw categorical column as integer codes into its (few) distinct stripped strings.

    Comparisons and crosses work on the codes, and the output is a pandas ``Categorical`` built from the
    codes: no per-row Python string work, which matters for 100k-row batches.

    Attributes:
        codes: per row, the index into ``levels``; -1 for missing or blank.
        levels: the distinct non-blank stripped strings, in order of appearance.
    """

    def __init__(self, raw: pd.Series | np.ndarray, index: pd.Index | None = None) -> None:
        codes, uniques = pd.factorize(raw, use_na_sentinel=True)
        stripped = [str(u).strip() for u in uniques]
        level_codes, levels = pd.factorize(np.asarray([v or None for v in stripped], dtype=object),
                                           use_na_sentinel=True)
        # Index -1 picks the appended slot, which stands for "missing" in every lookup table below.
        self.codes = np.append(level_codes, -1)[codes]
        self.levels = np.asarray(levels, dtype=object)
        self.index = raw.index if isinstance(raw, pd.Series) else index

    def _lookup(self, table: list[Any], missing: Any) -> np.ndarray:
        return np.asarray([*table, missing])[self.codes]

    def isin(self, *values: str) -> np.ndarray:
        """0/1 floats: the value is one of ``values`` (missing is 0)."""
        return self._lookup([float(lv in values) for lv in self.levels], 0.0)

    def map(self, mapping: dict[str, float]) -> np.ndarray:
        return self._lookup([mapping.get(lv, np.nan) for lv in self.levels], np.nan).astype(float)

    def categorical(self) -> pd.Categorical:
        """The column as a pandas Categorical (missing = NaN)."""
        return pd.Categorical.from_codes(self.codes, categories=pd.Index(self.levels, dtype=object))

    def objects(self) -> np.ndarray:
        """The column as an object array of strings with NaN for missing."""
        return self._lookup(list(self.levels), np.nan).astype(object)

    def cross(self, other: Cat) -> pd.Categorical:
        """``a|b`` as one category (missing when either is), so a linear model can learn the interaction."""
        k = len(other.levels)
        pair = np.where((self.codes >= 0) & (other.codes >= 0), self.codes * k + other.codes, -1)
        used, codes = np.unique(pair, return_inverse=True)
        names = [f"{self.levels[u // k]}|{other.levels[u % k]}" for u in used if u >= 0]
        codes = codes - int((used < 0).any())  # -1 (missing) sorts first
        return pd.Categorical.from_codes(codes.reshape(-1), categories=pd.Index(names, dtype=object))


def _bucket(tenure: pd.Series) -> Cat:
    edges = np.asarray(TENURE_EDGES)
    slot = np.searchsorted(edges, tenure.to_numpy(dtype=float), side="left") - 1
    labels = np.asarray([*TENURE_LABELS, None], dtype=object)
    slot = np.where(np.isnan(tenure.to_numpy(dtype=float)), len(TENURE_LABELS), slot)
    return Cat(labels[slot], index=tenure.index)


def telco_features(raw: pd.DataFrame) -> pd.DataFrame:
    """Typed and engineered Telco columns (see the module docstring for the prefixes)."""
    num = {c: _number(raw[c]).to_numpy(dtype=float) for c in TELCO_NUMERIC}
    cat = {c: Cat(raw[c]) for c in TELCO_CATEGORICAL}
    tenure = np.clip(num["tenure"], 0, None)
    monthly = num["MonthlyCharges"]
    # TotalCharges is blank only for customers in their first month (tenure 0): they have paid nothing yet.
    total = np.where(np.isnan(num["TotalCharges"]), tenure * monthly, num["TotalCharges"])
    with np.errstate(divide="ignore", invalid="ignore"):
        avg = np.where(tenure > 0, total / tenure, monthly)
    n_addons = sum(cat[c].isin("Yes") for c in _ADDONS)
    n_services = (n_addons + cat["InternetService"].isin("DSL", "Fiber optic") + cat["PhoneService"].isin("Yes")
                  + cat["MultipleLines"].isin("Yes"))
    contract_months = cat["Contract"].map(_CONTRACT_MONTHS)
    bucket = _bucket(pd.Series(tenure, index=raw.index))
    out: dict[str, Any] = {
        "cont_tenure": tenure,
        "cont_MonthlyCharges": monthly,
        "cont_TotalCharges": total,
        "cont_avg_monthly": avg,
        # Paying more now than on average over the customer's life: a recent price rise or upgrade.
        "cont_charge_delta": monthly - avg,
        "cont_charge_per_service": monthly / np.clip(n_services, 1, None),
        "num_SeniorCitizen": num["SeniorCitizen"],
        "num_n_services": n_services,
        "num_n_protection": sum(cat[c].isin("Yes") for c in _PROTECTION),
        "num_n_streaming": cat["StreamingTV"].isin("Yes") + cat["StreamingMovies"].isin("Yes"),
        "num_contract_months": contract_months,
        # Where in the contract the customer is: renewals are when month-to-month and yearly customers leave.
        "num_tenure_over_contract": tenure / contract_months,
        "num_log_tenure": np.log1p(tenure),
    }
    for c in TELCO_CATEGORICAL:
        if c != "PhoneService":  # implied by MultipleLines ("No phone service")
            out["cat_" + c] = cat[c].categorical()
    out["cat_tenure_bucket"] = bucket.categorical()
    out["cat_contract_x_tenure"] = cat["Contract"].cross(bucket)
    out["cat_internet_x_contract"] = cat["InternetService"].cross(cat["Contract"])
    out["cat_payment_x_contract"] = cat["PaymentMethod"].cross(cat["Contract"])
    return pd.DataFrame(out, index=raw.index)


def kaggle_features(raw: pd.DataFrame) -> pd.DataFrame:
    """Typed and engineered columns of the Kaggle Customer Churn Dataset."""
    num = {c: _number(raw[c]).to_numpy(dtype=float) for c in KAGGLE_NUMERIC}
    cat = {c: Cat(raw[c]) for c in KAGGLE_CATEGORICAL}
    out: dict[str, Any] = {"cont_" + c.replace(" ", "_"): num[c] for c in KAGGLE_NUMERIC}
    tenure = np.clip(num["Tenure"], 0, None)
    out["cont_spend_per_month"] = num["Total Spend"] / np.clip(tenure, 1, None)
    out["cont_calls_per_use"] = num["Support Calls"] / (num["Usage Frequency"] + 1)
    out["num_contract_months"] = cat["Contract Length"].map(_KAGGLE_CONTRACT_MONTHS)
    for c in KAGGLE_CATEGORICAL:
        out["cat_" + c.replace(" ", "_")] = cat[c].categorical()
    out["cat_subscription_x_contract"] = cat["Subscription Type"].cross(cat["Contract Length"])
    return pd.DataFrame(out, index=raw.index)


def typed_raw(raw: pd.DataFrame, schema: str) -> pd.DataFrame:
    """The raw columns only, typed (numbers as floats, the rest as strings): what a plain model sees."""
    out = pd.DataFrame(index=raw.index)
    for c in SCHEMAS[schema]:
        out[("cont_" if c in NUMERIC[schema] else "cat_") + c.replace(" ", "_")] = (
            _number(raw[c]) if c in NUMERIC[schema] else Cat(raw[c]).objects()
        )
    return out


class ChurnFeatures(TransformerMixin, BaseEstimator):
    """Raw customer rows -> prefixed typed (and, by default, engineered) columns.

    Fitting only records the raw schema (``telco`` or ``kaggle``); later inputs must carry that schema's
    columns (extra columns are ignored, a missing one raises ``InputError`` naming it).

    Args:
        engineer: add the engineered columns (False gives the typed raw columns, for the plain baseline).
    """

    def __init__(self, engineer: bool = True) -> None:
        self.engineer = engineer

    def fit(self, X: Any, y: Any = None) -> ChurnFeatures:
        self.schema_ = detect_schema(as_frame(X))
        return self

    def transform(self, X: Any) -> pd.DataFrame:
        check_is_fitted(self)
        frame = as_frame(X)
        missing = [c for c in SCHEMAS[self.schema_] if c not in frame.columns]
        if missing:
            raise InputError(_missing_message(self.schema_, missing))
        if not self.engineer:
            return typed_raw(frame, self.schema_)
        return telco_features(frame) if self.schema_ == "telco" else kaggle_features(frame)
