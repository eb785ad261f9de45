"""house_prices' raw-input contract (checked by ``ValidateInput``, the pipeline's first step; common/contract.py).

* Numeric columns (``NUMERIC``: areas, counts, years, ``MSSubClass``/``MoSold`` codes): a number, a
  number sent as text, or missing (imputed inside the pipeline); never negative. Anything else is an
  ``InputError`` naming the row, the column and the value (``HouseFeatures`` refused such values before,
  but named only the column).
* Categorical columns: strings; an unseen level is fine, a number is not. Missing is fine (for
  ``ABSENT_MEANS_NONE`` columns it means "none").
* A row whose every column is missing is refused: nothing in it describes a house.
* Required columns: ``HouseFeatures`` names any missing raw column (all of ``RAW_COLUMNS`` are required).
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from common.contract import ColumnRule, InputContract, rows_frame
from projects.house_prices.features import CATEGORICAL, NUMERIC, as_frame

COLUMNS: dict[str, ColumnRule] = {
    **{c: ColumnRule("number", required=False, min=0) for c in NUMERIC},
    **{c: ColumnRule("category", required=False, max_chars=200) for c in CATEGORICAL},
}


def _rows(X: Any) -> pd.DataFrame:
    """Rows as a frame without the missing-column check: ``HouseFeatures`` makes that, after this step."""
    frame = rows_frame(X)
    return frame if frame is not None else as_frame(X)  # as_frame raises the InputError saying what to pass


CONTRACT = InputContract(
    project="house_prices",
    columns=COLUMNS,
    what="raw Kaggle house columns (like test.csv)",
    all_missing="error",
    as_frame=_rows,
)
