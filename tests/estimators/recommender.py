"""The recommender's estimators under scikit-learn's checks, and why most of the checks cannot run here.

The model (``MovieRecommender``), its text-cleaning step (``MovieText``), the four catalogue baselines and
the three collaborative anchors (``Popularity``, ``ItemKNN``, ``EASE``) are all fitted on a film catalogue: a DataFrame with ``id``, ``title`` and text columns (see
``projects.recommender.features.as_catalogue``), plus optional ratings. scikit-learn's checks fit on
generated numeric matrices, which a catalogue estimator refuses at once with ``NotACatalogueError`` (a
``TypeError``). So:

* the checks that need no fit pass: clone, repr, get/set_params, nothing done in ``__init__``, valid tags,
  ``NotFittedError`` before fit, and a clear error for sparse input;
* checks of how a numeric X is validated (dtypes, NaN, complex numbers, 1-D input, one column, memmaps)
  do not apply to a table of text; they are declared under ``NUMERIC_X``;
* checks of general contracts that do apply (fit returns self and leaves the parameters alone, a refit or
  a clone gives the same answers, pickling keeps them, answering does not change the estimator, one query
  at a time answers as the batch does) fail here only for want of a catalogue; they are declared under
  ``ON_A_CATALOGUE`` and run on a generated catalogue by ``test_sklearn_contracts_on_a_catalogue`` in
  tests/test_recommender.py.

``FieldTfidf`` is a ``TfidfVectorizer`` and keeps its tags (1-D text input, no 2-D arrays), under which
scikit-learn runs only the clone check; tests/test_recommender.py tests what it adds.
"""

from __future__ import annotations

from projects.recommender.baselines import MostVoted, RandomRecommender, SeedTfidf, WeightedRatingRanker
from projects.recommender.collab import EASE, ItemKNN, Popularity
from projects.recommender.features import FieldTfidf, MovieText
from projects.recommender.model import MovieRecommender

_REFUSED = "fit refuses the check's numeric array: it takes a catalogue DataFrame (id, title, text columns)"
_ELSEWHERE = "run on a catalogue by tests/test_recommender.py::test_sklearn_contracts_on_a_catalogue"

# What each check is about, when it is about validating a numeric X (not applicable to a catalogue).
NUMERIC_X = {
    "check_estimators_dtypes": "fits float32/int32/int64 matrices",
    "check_complex_data": "wants 'Complex data not supported' for a complex matrix",
    "check_dtype_object": "fits an object array of numbers and of dicts",
    "check_estimators_empty_data_messages": (
        "wants a ValueError for a (0, 3) array and for 0 columns; an empty catalogue is refused with an "
        "InputError, tested by test_fit_checks_its_input"),
    "check_fit1d": "wants a ValueError for a 1-D array",
    "check_fit2d_1sample": "fits a 1 x 10 matrix",
    "check_fit2d_1feature": "fits a 10 x 1 matrix",
    "check_fit2d_predict1d": "predicts on a 1-D array",
    "check_f_contiguous_array_estimator": "fits a Fortran-ordered matrix",
    "check_readonly_memmap_input": "fits a read-only memory-mapped matrix",
    "check_positive_only_tag_during_fit": "fits negative numbers to test the positive_only tag",
    "check_n_features_in": (
        "wants n_features_in_, the column count later calls must match; predict takes titles, not "
        "catalogue rows, so it is not set"),
    "check_n_features_in_after_fitting": "wants n_features_in_ (see check_n_features_in)",
}
# What each check is about, when the contract applies and is tested on a catalogue instead.
ON_A_CATALOGUE = {
    "check_fit_score_takes_y": "fit's signature starts (X, y)",
    "check_estimators_fit_returns_self": "fit returns self",
    "check_estimators_overwrite_params": "fit leaves the parameters alone",
    "check_dont_overwrite_parameters": "fit adds only attributes ending in _",
    "check_fit_check_is_fitted": "check_is_fitted fails before fit and passes after",
    "check_fit_idempotent": "a second fit gives the same answers",
    "check_pipeline_consistency": "a clone fitted on the same data gives the same answers",
    "check_estimators_pickle": "a pickled copy gives the same answers",
    "check_estimators_pickle(readonly_memmap=True)": "a pickled copy gives the same answers",
    "check_dict_unchanged": "answering does not change the estimator's state",
    "check_methods_subset_invariance": "one query at a time answers as the batch does",
    "check_methods_sample_order_invariance": "reordered queries give reordered answers",
}
TRANSFORMER_ON_A_CATALOGUE = {
    "check_transformer_general": "transform's rows match the input's (fit_transform equals fit + transform)",
    "check_transformer_general(readonly_memmap=True)": "as check_transformer_general",
    "check_transformer_data_not_an_array": "as check_transformer_general, on list-like input",
}
STATELESS_ON_A_CATALOGUE = {
    "check_transformers_unfitted_stateless": "a stateless transformer transforms before fit",
}


def expected(*groups: dict[str, str]) -> dict[str, str]:
    """{check: reason} for the given groups, each reason saying what the check does and why it fails here."""
    out: dict[str, str] = {}
    for group in groups:
        tail = "not applicable to a table of text" if group is NUMERIC_X else _ELSEWHERE
        out |= {check: f"{what}; {_REFUSED}; {tail}" for check, what in group.items()}
    return out


CASES = [
    (MovieRecommender(), expected(NUMERIC_X, ON_A_CATALOGUE, TRANSFORMER_ON_A_CATALOGUE)),
    (MovieText(), expected(NUMERIC_X, ON_A_CATALOGUE, TRANSFORMER_ON_A_CATALOGUE, STATELESS_ON_A_CATALOGUE)),
    (FieldTfidf(), {}),
    (RandomRecommender(), expected(NUMERIC_X, ON_A_CATALOGUE)),
    (MostVoted(), expected(NUMERIC_X, ON_A_CATALOGUE)),
    (WeightedRatingRanker(), expected(NUMERIC_X, ON_A_CATALOGUE)),
    (SeedTfidf(), expected(NUMERIC_X, ON_A_CATALOGUE)),
    (Popularity(), expected(NUMERIC_X, ON_A_CATALOGUE)),
    (ItemKNN(), expected(NUMERIC_X, ON_A_CATALOGUE)),
    (EASE(), expected(NUMERIC_X, ON_A_CATALOGUE)),
]
