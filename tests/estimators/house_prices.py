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

# The checks that fit an estimator on generic arrays (plain, sparse, 1-D, empty, object, NaN, one row...).
FITTING_CHECKS = (
    "check_fit_score_takes_y", "check_estimators_overwrite_params", "check_dont_overwrite_parameters",
    "check_estimators_fit_returns_self", "check_readonly_memmap_input", "check_n_features_in_after_fitting",
    "check_positive_only_tag_during_fit", "check_estimators_dtypes", "check_complex_data",
    "check_dtype_object", "check_estimators_empty_data_messages", "check_pipeline_consistency",
    "check_estimators_nan_inf", "check_estimator_sparse_tag", "check_estimator_sparse_array",
    "check_estimator_sparse_matrix", "check_estimators_pickle", "check_f_contiguous_array_estimator",
    "check_transformer_data_not_an_array", "check_transformer_general", "check_transformer_preserve_dtypes",
    "check_methods_sample_order_invariance", "check_methods_subset_invariance", "check_fit2d_1sample",
    "check_fit2d_1feature", "check_dict_unchanged", "check_fit_idempotent", "check_fit_check_is_fitted",
    "check_n_features_in", "check_fit1d", "check_fit2d_predict1d",
)


def _needs(columns: str, extra: tuple[str, ...] = ()) -> dict[str, str]:
    reason = f"needs {columns}; the check fits it on generic numeric arrays"
    return {check: reason for check in FITTING_CHECKS + extra}


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
