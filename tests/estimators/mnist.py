"""mnist estimators for scikit-learn's checks (see tests/estimators/__init__.py).

``Deskew``, ``PixelScaler`` and ``KerasCNN`` take digit images: (n, 28, 28), or (n, 784) pixel rows. Every
check that fits them on scikit-learn's generic arrays (a few columns, sparse, 1-D, object...) meets the
input check that names the expected shape, and fails for that reason alone; the checks that do not fit
them (parameters, cloning, tags, NotFittedError before fit) run and pass. The input check runs before
Keras is imported, so the CNN's checks never train a network. ``EarlyStoppingXGB`` and ``VirtualSVC`` (without
shifts, which move pixels on the 28 x 28 grid) take any numeric rows and pass every check.
"""

from __future__ import annotations

from typing import Any

from projects.mnist.cnn import KerasCNN
from projects.mnist.features import Deskew, PixelScaler
from projects.mnist.pipeline import EarlyStoppingXGB, VirtualSVC

IMAGES = "needs 28 x 28 digit images ((n, 28, 28) or (n, 784) grey values); the check passes generic arrays"

# The checks that fit an estimator on generic arrays (plain, sparse, 1-D, empty, object, NaN, one row...).
FITTING_CHECKS = (
    "check_fit_score_takes_y", "check_estimators_overwrite_params", "check_dont_overwrite_parameters",
    "check_estimators_fit_returns_self", "check_readonly_memmap_input", "check_n_features_in_after_fitting",
    "check_positive_only_tag_during_fit", "check_estimators_dtypes", "check_complex_data",
    "check_dtype_object", "check_estimators_empty_data_messages", "check_pipeline_consistency",
    "check_estimators_nan_inf", "check_estimator_sparse_tag", "check_estimator_sparse_array",
    "check_estimator_sparse_matrix", "check_estimators_pickle", "check_f_contiguous_array_estimator",
    "check_methods_sample_order_invariance", "check_methods_subset_invariance", "check_fit2d_1sample",
    "check_fit2d_1feature", "check_dict_unchanged", "check_fit_idempotent", "check_fit_check_is_fitted",
    "check_n_features_in", "check_fit1d", "check_fit2d_predict1d",
)
TRANSFORMER_CHECKS = (
    "check_transformer_data_not_an_array", "check_transformer_general", "check_transformer_preserve_dtypes",
    # stateless: transforming before fit is allowed, and that check also passes generic arrays
    "check_transformers_unfitted_stateless",
)
CLASSIFIER_CHECKS = (
    "check_classifier_data_not_an_array", "check_classifiers_one_label", "check_classifiers_classes",
    "check_classifiers_train", "check_classifiers_regression_target", "check_supervised_y_no_nan",
    "check_supervised_y_2d", "check_requires_y_none",
)


def _images(checks: tuple[str, ...]) -> dict[str, str]:
    return {check: IMAGES for check in checks}


CASES: list[tuple[Any, dict[str, str]]] = [
    (Deskew(), _images(FITTING_CHECKS + TRANSFORMER_CHECKS)),
    (PixelScaler(), _images(FITTING_CHECKS + TRANSFORMER_CHECKS)),
    (EarlyStoppingXGB(n_estimators=10, early_stopping_rounds=3, subsample=1.0, colsample_bytree=1.0, n_jobs=1), {}),
    (VirtualSVC(n_components=5, shifts=0, cache_mb=20), {}),
    (KerasCNN(epochs=1, batch_size=8, width=2, augment=False), _images(FITTING_CHECKS + CLASSIFIER_CHECKS)),
]
