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
from tests.estimators import TRANSFORMER_ARRAY_CHECKS, refuses_arrays

IMAGES = "needs 28 x 28 digit images ((n, 28, 28) or (n, 784) grey values); the check passes generic arrays"

TRANSFORMER_CHECKS = (
    *TRANSFORMER_ARRAY_CHECKS,
    # stateless: transforming before fit is allowed, and that check also passes generic arrays
    "check_transformers_unfitted_stateless",
)
CLASSIFIER_CHECKS = (
    "check_classifier_data_not_an_array", "check_classifiers_one_label", "check_classifiers_classes",
    "check_classifiers_train", "check_classifiers_regression_target", "check_supervised_y_no_nan",
    "check_supervised_y_2d", "check_requires_y_none",
)


def _images(checks: tuple[str, ...]) -> dict[str, str]:
    return refuses_arrays(IMAGES, checks)


CASES: list[tuple[Any, dict[str, str]]] = [
    (Deskew(), _images(TRANSFORMER_CHECKS)),
    (PixelScaler(), _images(TRANSFORMER_CHECKS)),
    (EarlyStoppingXGB(n_estimators=10, early_stopping_rounds=3, subsample=1.0, colsample_bytree=1.0, n_jobs=1), {}),
    (VirtualSVC(n_components=5, shifts=0, cache_mb=20), {}),
    (KerasCNN(epochs=1, batch_size=8, width=2, augment=False), _images(CLASSIFIER_CHECKS)),
]
