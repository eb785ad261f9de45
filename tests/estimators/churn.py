"""churn's estimators for scikit-learn's checks (see tests/estimators/__init__.py)."""

from __future__ import annotations

from projects.churn.features import ChurnFeatures
from projects.churn.pipeline import CategoryCodes, ChurnClassifier, MemberBlend
from tests.estimators import TRANSFORMER_ARRAY_CHECKS, refuses_arrays

# ChurnFeatures reads the raw Telco or Kaggle customer table by column name (tenure, Contract, ...); a
# numeric array has neither the names nor the columns, so fitting it raises InputError by design, and every
# check that fits on generated arrays fails before it tests anything.
_RAW_COLUMNS = ("needs a DataFrame with the raw Telco or Kaggle customer columns (tenure, Contract, ...); "
                "the checks fit generated numeric arrays, which it rejects with InputError by design")

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
    (ChurnFeatures(), refuses_arrays(_RAW_COLUMNS, TRANSFORMER_ARRAY_CHECKS)),
]
