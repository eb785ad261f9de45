"""stocks: the return model and its Ridge pass every check; the estimators that read raw bars cannot.

``BarFeatures``, ``SameDayBars``, ``Persistence``, ``Drift`` and the whole pipeline take the raw daily bars:
a DataFrame with ``Date, Open, High, Low, Close, Volume`` in time order. The checks feed numeric arrays
(or sparse matrices, lists), which these estimators refuse with an ``InputError`` naming the columns
they need, so every check that fits or transforms data fails for that one reason. The checks that need
no data (parameters, cloning, ``NotFittedError`` before fit, tags) pass.
"""

from projects.stocks.features import BarFeatures, SameDayBars
from projects.stocks.pipeline import Drift, NextCloseFromReturn, Persistence, WalkForwardRidge, build_pipeline

BARS = ("needs dated daily bars (a DataFrame with Date, Open, High, Low, Close and Volume columns, oldest "
        "first), not a numeric array: the input is refused with an InputError naming those columns")

# Checks that fit, transform or predict on generated arrays: all of them fail with BARS.
DATA_CHECKS = (
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
TRANSFORMER_CHECKS = ("check_transformer_data_not_an_array", "check_transformer_general",
                      "check_transformer_preserve_dtypes", "check_transformers_unfitted_stateless")
REGRESSOR_CHECKS = ("check_regressor_data_not_an_array", "check_regressors_int",
                    "check_regressors_no_decision_function", "check_regressors_train", "check_supervised_y_2d",
                    "check_supervised_y_no_nan")


def _bars(*groups: tuple[str, ...]) -> dict[str, str]:
    return {check: BARS for group in (DATA_CHECKS, *groups) for check in group}


CASES = [
    (WalkForwardRidge(), {}),
    (NextCloseFromReturn(), {
        "check_positive_only_tag_during_fit": (
            "learns log(next close / today's close), and today's close (the last column) is negative in every "
            "row of the centred iris data, so no row has a return to learn from: ValueError"),
    }),
    (BarFeatures(), _bars(TRANSFORMER_CHECKS)),
    (SameDayBars(), _bars(TRANSFORMER_CHECKS)),
    (Persistence(), _bars(REGRESSOR_CHECKS, ("check_requires_y_none",))),
    (Drift(), _bars(REGRESSOR_CHECKS, ("check_requires_y_none",))),
    (build_pipeline(), _bars(REGRESSOR_CHECKS)),
]
