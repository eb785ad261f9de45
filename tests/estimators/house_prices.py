"""house_prices estimators for scikit-learn's checks (see tests/estimators/__init__.py).

The feature steps read named columns of the Ames data (``HouseFeatures`` the raw Kaggle columns, the
later steps the columns ``HouseFeatures`` makes), so every check that fits them on scikit-learn's generic
numeric arrays fails for that reason alone; the checks that do not fit them (parameters, cloning, tags,
repr) run and pass. ``OutlierFilteredBlend`` and ``RBFSVR`` take any numeric rows and pass the checks.
"""

from __future__ import annotations

from typing import Any

from sklearn.linear_model import Ridge

from projects.house_prices.features import (
    GroupMedianImputer,
    HouseFeatures,
    LinearDesign,
    NeighborhoodLevel,
    TreeDesign,
)
from projects.house_prices.pipeline import RBFSVR, OutlierFilteredBlend
from tests.estimators import TRANSFORMER_ARRAY_CHECKS, refuses_arrays


def _needs(columns: str, extra: tuple[str, ...] = ()) -> dict[str, str]:
    return refuses_arrays(f"needs {columns}; the check fits it on generic numeric arrays",
                          TRANSFORMER_ARRAY_CHECKS, extra)


RAW = "a DataFrame of the raw Kaggle Ames columns (train.csv without SalePrice)"
FEATURES = "a DataFrame of the named columns HouseFeatures makes"

CASES: list[tuple[Any, dict[str, str]]] = [
    # stateless: transforming before fit is allowed, and the stateless variant of that check also needs columns
    (HouseFeatures(), _needs(RAW, ("check_transformers_unfitted_stateless",))),
    (GroupMedianImputer(), _needs(f"{FEATURES} (LotFrontage, cat_Neighborhood)")),
    (NeighborhoodLevel(), _needs(f"{FEATURES} (cat_Neighborhood, GrLivArea, TotalSF, OverallQual)")),
    (LinearDesign(), _needs(f"{FEATURES} plus NeighborhoodLevel's")),
    (TreeDesign(), _needs(f"{FEATURES} plus NeighborhoodLevel's")),
    (OutlierFilteredBlend([("ridge", Ridge())], detector=Ridge()), {}),
    (RBFSVR(), {"check_sample_weight_equivalence_on_dense_data":
                "libsvm's sample weights scale C per row, which is not the same as repeating rows "
                "(scikit-learn declares the same expected failure for SVR)"}),
]
