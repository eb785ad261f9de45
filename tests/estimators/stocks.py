"""stocks: the return model and its Ridge pass every check; the estimators that read raw bars cannot.

``BarFeatures``, ``SameDayBars``, ``Persistence``, ``Drift`` and the whole pipeline take the raw daily bars:
a DataFrame with ``Date, Open, High, Low, Close, Volume`` in time order. The checks feed numeric arrays
(or sparse matrices, lists), which these estimators refuse with an ``InputError`` naming the columns
they need, so every check that fits or transforms data fails for that one reason. The checks that need
no data (parameters, cloning, ``NotFittedError`` before fit, tags) pass.
"""

from projects.stocks.features import BarFeatures, SameDayBars
from projects.stocks.pipeline import Drift, NextCloseFromReturn, Persistence, WalkForwardRidge, build_pipeline
from tests.estimators import refuses_arrays

BARS = ("needs dated daily bars (a DataFrame with Date, Open, High, Low, Close and Volume columns, oldest "
        "first), not a numeric array: the input is refused with an InputError naming those columns")

TRANSFORMER_CHECKS = ("check_transformer_data_not_an_array", "check_transformer_general",
                      "check_transformer_preserve_dtypes", "check_transformers_unfitted_stateless")
REGRESSOR_CHECKS = ("check_regressor_data_not_an_array", "check_regressors_int",
                    "check_regressors_no_decision_function", "check_regressors_train", "check_supervised_y_2d",
                    "check_supervised_y_no_nan")


def _bars(*groups: tuple[str, ...]) -> dict[str, str]:
    return refuses_arrays(BARS, *groups)


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
