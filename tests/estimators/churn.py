"""churn's estimators for scikit-learn's checks (see tests/estimators/__init__.py)."""

from __future__ import annotations

from projects.churn.features import ChurnFeatures
from projects.churn.pipeline import CategoryCodes, ChurnClassifier, MemberBlend

# ChurnFeatures reads the raw Telco or Kaggle customer table by column name (tenure, Contract, ...); a
# numeric array has neither the names nor the columns, so fitting it raises InputError by design, and every
# check that fits on generated arrays fails before it tests anything.
_RAW_COLUMNS = ("needs a DataFrame with the raw Telco or Kaggle customer columns (tenure, Contract, ...); "
                "the checks fit generated numeric arrays, which it rejects with InputError by design")
_FEATURES_FAIL = [
    "check_complex_data", "check_dict_unchanged", "check_dont_overwrite_parameters", "check_dtype_object",
    "check_estimator_sparse_array", "check_estimator_sparse_matrix", "check_estimator_sparse_tag",
    "check_estimators_dtypes", "check_estimators_empty_data_messages", "check_estimators_fit_returns_self",
    "check_estimators_nan_inf", "check_estimators_overwrite_params", "check_estimators_pickle",
    "check_f_contiguous_array_estimator", "check_fit1d", "check_fit2d_1feature", "check_fit2d_1sample",
    "check_fit2d_predict1d", "check_fit_check_is_fitted", "check_fit_idempotent", "check_fit_score_takes_y",
    "check_methods_sample_order_invariance", "check_methods_subset_invariance", "check_n_features_in",
    "check_n_features_in_after_fitting", "check_pipeline_consistency", "check_positive_only_tag_during_fit",
    "check_readonly_memmap_input", "check_transformer_data_not_an_array", "check_transformer_general",
    "check_transformer_preserve_dtypes",
]

CASES = [
    (CategoryCodes(min_frequency=1), {}),
    (MemberBlend(), {
        "check_classifiers_train": "a fixed average of member probabilities: it learns no weights from y, so "
                                   "on the check's blobs (features, not probabilities) it cannot reach the "
                                   "accuracy the check asks; CalibratedClassifierCV learns the mapping after it",
    }),
    (ChurnClassifier(model="auto", inner_folds=2, gb_iter=5, gb_min_leaf=5), {
        "check_class_weight_classifiers": "class_weight takes only 'none' or 'balanced' (a build_pipeline "
                                          "choice), and the calibration and tuned threshold learned after "
                                          "the learners undo any re-weighting by design, so a dict of weights "
                                          "cannot move the decisions the way the check expects",
    }),
    (ChurnFeatures(), dict.fromkeys(_FEATURES_FAIL, _RAW_COLUMNS)),
]
