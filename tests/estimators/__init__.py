"""Every custom estimator of the collection, with the scikit-learn checks it is known to fail and why.

One module per project (``tests/estimators/<project>.py``) defines ``CASES``: a list of
``(estimator instance, {check name: reason})``. ``tests/test_estimator_checks.py`` runs scikit-learn's
``parametrize_with_checks`` over all of them, with the declared failures as strict expected failures, so a
check that starts passing (or a new failure) shows up instead of being skipped silently.
"""

# Checks that fit, transform or predict on generated numeric arrays (plain, sparse, 1-D, empty, object,
# NaN, one row...). An estimator that reads a domain-specific raw input (named columns, dated bars, digit
# images) refuses those arrays by design, so each of these fails before it tests anything.
ARRAY_CHECKS = (
    "check_complex_data", "check_dict_unchanged", "check_dont_overwrite_parameters", "check_dtype_object",
    "check_estimator_sparse_array", "check_estimator_sparse_matrix", "check_estimator_sparse_tag",
    "check_estimators_dtypes", "check_estimators_empty_data_messages", "check_estimators_fit_returns_self",
    "check_estimators_nan_inf", "check_estimators_overwrite_params", "check_estimators_pickle",
    "check_f_contiguous_array_estimator", "check_fit1d", "check_fit2d_1feature", "check_fit2d_1sample",
    "check_fit2d_predict1d", "check_fit_check_is_fitted", "check_fit_idempotent", "check_fit_score_takes_y",
    "check_methods_sample_order_invariance", "check_methods_subset_invariance", "check_n_features_in",
    "check_n_features_in_after_fitting", "check_pipeline_consistency", "check_positive_only_tag_during_fit",
    "check_readonly_memmap_input",
)
TRANSFORMER_ARRAY_CHECKS = ("check_transformer_data_not_an_array", "check_transformer_general",
                            "check_transformer_preserve_dtypes")


def refuses_arrays(reason: str, *groups: tuple[str, ...]) -> dict[str, str]:
    """Expected failures of an estimator whose raw input is not a numeric array: ``ARRAY_CHECKS`` plus
    ``groups``, each with ``reason`` (what the estimator needs instead)."""
    return {check: reason for group in (ARRAY_CHECKS, *groups) for check in group}
