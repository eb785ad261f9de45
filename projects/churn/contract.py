"""churn's raw-input contract (checked by ``ValidateInput``, the pipeline's first step; see common/contract.py).

* Numbers (``tenure``, ``MonthlyCharges``, ``TotalCharges``, ``SeniorCitizen``; the Kaggle counts and
  spend): a number, a string that parses as one, or missing; ``SeniorCitizen`` also takes ``Yes``/``No``
  (as ``features._number`` reads it). Anything else (``tenure='abc'``) is an ``InputError`` naming the row,
  the column and the value (before this contract it was silently read as missing). Numbers may not be
  negative.
* A blank ``TotalCharges`` (Telco's ``' '`` for customers in their first month) is a missing value, which
  ``ChurnFeatures`` fills with ``tenure * MonthlyCharges``: it stays accepted.
* Categories: strings; an unseen level is fine (the encoders ignore it), a number is not.
* A row whose every column is missing is refused (it carries nothing to score).
* Which columns are required depends on the schema (Telco or Kaggle), so ``ChurnFeatures`` names the
  missing ones; the contract checks the columns that are present.
"""

from __future__ import annotations

from common.contract import ColumnRule, InputContract
from projects.churn.features import (
    KAGGLE_CATEGORICAL,
    KAGGLE_NUMERIC,
    TELCO_CATEGORICAL,
    TELCO_NUMERIC,
    as_frame,
)

_NUMBER = ColumnRule("number", required=False, min=0)
_CATEGORY = ColumnRule("category", required=False, max_chars=200)

COLUMNS: dict[str, ColumnRule] = {
    **{c: _NUMBER for c in TELCO_NUMERIC},
    "SeniorCitizen": ColumnRule("number", required=False, min=0, max=1, tokens=("Yes", "No")),
    **{c: _CATEGORY for c in TELCO_CATEGORICAL},
    **{c: _NUMBER for c in KAGGLE_NUMERIC},
    **{c: _CATEGORY for c in KAGGLE_CATEGORICAL},
}

CONTRACT = InputContract(
    project="churn",
    columns=COLUMNS,
    what="raw customer columns (the Telco or Kaggle file without Churn)",
    all_missing="error",
    as_frame=as_frame,
)
