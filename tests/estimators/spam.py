"""spam's model step: a binary classifier on numeric (sparse) features, so scikit-learn's checks apply in full.

Three inner folds instead of five keep the nested cross-validation of each check's fit short.
"""

from projects.spam.model import CalibratedThresholdClassifier

CASES = [
    (CalibratedThresholdClassifier(cv=3), {
        "check_classifiers_train": (
            "predict applies the threshold learned under the ham-blocked cap, not probability 0.5, so it "
            "can disagree with argmax(predict_proba) (scikit-learn declares the same for "
            "FixedThresholdClassifier)"
        ),
    }),
]
