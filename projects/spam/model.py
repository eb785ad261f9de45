"""The spam decision: a linear model chosen by CV, calibrated, with a threshold that keeps blocked ham rare.

Everything is learned from the rows given to ``fit`` (in a CV fold: that fold's training rows only), with
scikit-learn's own classes:

1. **choice**: each candidate (``svc:C`` = ``LinearSVC``, ``logreg:C`` = ``LogisticRegression``) is
   scored by the average precision of its out-of-fold decision values (``cross_val_predict`` over
   ``cv`` stratified folds; threshold-free); the best candidate is kept;
2. **calibration**: ``CalibratedClassifierCV(method="sigmoid", ensemble=True)`` fits the chosen model on
   each inner fold and a Platt sigmoid on the rows that fold did not see; ``predict_proba`` is the mean of
   the fold models' calibrated probabilities;
3. **threshold**: ``cross_val_predict`` gives every training row a probability from that same calibrated
   ensemble fitted without it (a nested CV, so the threshold is set on the scale the final model predicts
   in). The threshold is the best spam F1 among those that block at most ``max_ham_blocked`` of the ham,
   counted over all rows at once with ``roc_curve`` (``constrained_threshold``); the final model is a
   ``FixedThresholdClassifier`` at that threshold. ``TunedThresholdClassifierCV`` is not used because it
   averages a score per fold: with 0.1% of about 580 ham per inner fold, a cap per fold allows no blocked
   message at all, which lowered spam F1 (docs/spam.md has the measurement).

The fitted scikit-learn objects are kept (``fixed_``) as the reference. After fit they are **compiled**
(``compile_ensemble``) into one stacked weight matrix, the fold intercepts and each fold's sigmoid, so that
prediction is one sparse product for all folds instead of one scikit-learn call per fold; ``fit`` checks
that the compiled probabilities equal the reference's to 1e-8 on the training rows.

``predict_proba`` returns the calibrated probabilities, so a user can choose another threshold;
``predict`` applies the learned one.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.special import expit
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.calibration import CalibratedClassifierCV
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, roc_curve
from sklearn.model_selection import FixedThresholdClassifier, StratifiedKFold, cross_val_predict
from sklearn.svm import LinearSVC
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import check_is_fitted, validate_data

from common.errors import ParameterError

log = logging.getLogger(__name__)

MODELS = ("svc", "logreg")
# The compiled ensemble must reproduce scikit-learn's calibrated probabilities to this absolute tolerance.
PARITY_ATOL = 1e-8


def make_linear(candidate: str, seed: int = 0) -> Any:
    """A linear model from its short name: ``svc:1`` (LinearSVC, C=1) or ``logreg:30``.

    Raises:
        ParameterError: for a malformed candidate.
    """
    kind, _, value = str(candidate).partition(":")
    try:
        C = float(value)
    except ValueError:
        C = -1.0
    if kind not in MODELS or not C > 0:
        raise ParameterError(
            f"Model candidate '{candidate}' is not understood: write '<model>:<C>' with model in "
            f"{', '.join(MODELS)} and C > 0, for example 'svc:1' or 'logreg:30'."
        )
    if kind == "svc":
        return LinearSVC(C=C, random_state=seed)
    # The dual problem: text has far more n-grams than rows, and liblinear then solves it faster (same fit).
    return LogisticRegression(C=C, solver="liblinear", dual=True, random_state=seed)


def constrained_threshold(proba: Any, positive: Any, max_neg_rate: float) -> tuple[float, dict[str, float]]:
    """The threshold with the best F1 among those that flag at most ``max_neg_rate`` of the negatives.

    Every distinct score is a candidate (``roc_curve`` counts the true and false positives at each). The
    threshold is placed halfway between the chosen score and the next lower one, so it does not sit on a
    training score. Returns the threshold and its figures on these rows.
    """
    p = np.asarray(proba, dtype=float)
    pos = np.asarray(positive, dtype=bool)
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError("constrained_threshold needs positive and negative rows.")
    fpr, tpr, scores = roc_curve(pos, p, drop_intermediate=False)
    # Index 0 is roc_curve's +inf (nothing flagged); then the distinct scores, highest first.
    tp, fp = np.rint(tpr * n_pos), np.rint(fpr * n_neg)
    f1 = 2 * tp / (tp + fp + n_pos)
    feasible = fp <= max_neg_rate * n_neg
    feasible[0] = False
    if not feasible.any() or f1[feasible].max() <= 0:
        return float(np.nextafter(scores[1], np.inf)), {"oof_f1": 0.0, "oof_recall": 0.0, "oof_ham_blocked_rate": 0.0}
    best = int(np.argmax(np.where(feasible, f1, -1.0)))
    below = scores[best + 1] if best + 1 < len(scores) else 0.0
    return float((scores[best] + below) / 2), {
        "oof_f1": float(f1[best]),
        "oof_recall": float(tp[best] / n_pos),
        "oof_ham_blocked_rate": float(fp[best] / n_neg),
    }


def _sigmoid_of(pair: Any, coef: np.ndarray, intercept: float) -> tuple[float, float]:
    """``(slope, offset)`` with ``pair.predict_proba(X)[:, 1] == expit(slope * decision(X) + offset)``.

    Read through the calibrated pair's own ``predict_proba`` (scikit-learn keeps the sigmoid's parameters
    on a private class): rows with known decision values are probed and the logit of the answer is a
    straight line in the decision value. Only probabilities up to 0.5 are used, where the logit is exact
    (above, the positive column is computed as ``1 - p`` and loses digits).
    """
    j = int(np.argmax(np.abs(coef)))
    if coef[j] == 0:  # a constant model: probe with the intercept alone
        p = float(pair.predict_proba(sp.csr_matrix((1, coef.size)))[0, 1])
        return 0.0, float(np.log(p) - np.log1p(-p))
    decision = np.linspace(-50.0, 50.0, 201)
    rows = sp.csr_matrix(((decision - intercept) / coef[j], (np.arange(decision.size), np.full(decision.size, j))),
                         shape=(decision.size, coef.size))
    p = pair.predict_proba(rows)[:, 1]
    usable = (p > 0) & (p <= 0.5)
    if np.count_nonzero(usable) < 2:
        usable = (p > 0) & (p < 1)
    slope, offset = np.polyfit(decision[usable], np.log(p[usable]) - np.log1p(-p[usable]), 1)
    return float(slope), float(offset)


def compile_ensemble(calibrated: CalibratedClassifierCV) -> dict[str, np.ndarray]:
    """A fitted sigmoid ``CalibratedClassifierCV`` of linear models as arrays for one sparse product.

    Returns ``coef`` (features x folds, contiguous so that ``X @ coef`` needs no copy), ``intercept``, and
    each fold's sigmoid ``a``/``b`` (``P = expit(a * decision + b)``); ``ensemble_proba`` averages them.
    """
    pairs = calibrated.calibrated_classifiers_
    coefs = [np.ravel(pair.estimator.coef_).astype(float) for pair in pairs]
    intercepts = [float(np.ravel(pair.estimator.intercept_)[0]) for pair in pairs]
    sigmoids = [_sigmoid_of(pair, c, b) for pair, c, b in zip(pairs, coefs, intercepts, strict=True)]
    return {"coef": np.ascontiguousarray(np.vstack(coefs).T), "intercept": np.asarray(intercepts),
            "a": np.asarray([s[0] for s in sigmoids]), "b": np.asarray([s[1] for s in sigmoids])}


def ensemble_proba(members: dict[str, np.ndarray], X: Any) -> np.ndarray:
    """Mean calibrated probability of the fold models: one sparse product for all of them."""
    scores = np.asarray(X @ members["coef"]) + members["intercept"]
    return expit(scores * members["a"] + members["b"]).mean(axis=1)


class CalibratedThresholdClassifier(ClassifierMixin, BaseEstimator):
    """Binary classifier: CV-chosen linear model, Platt-calibrated fold ensemble, constrained threshold.

    Args:
        candidates: linear models to choose from (``svc:C`` / ``logreg:C``).
        max_ham_blocked: largest out-of-fold share of negatives (ham) the threshold may flag.
        pos_label: the positive class (spam); None takes the greater of the two labels.
        cv: folds of the inner CV (choice, calibration ensemble, and the nested CV of the threshold).
        seed: seed of the inner folds and of the linear models.

    Attributes:
        classes_: the two labels.
        chosen_: the candidate the inner CV chose; ``cv_average_precision_`` scores every candidate.
        fixed_: the fitted ``FixedThresholdClassifier`` (its ``estimator_`` is the calibrated ensemble; it
            predicts 1 for spam), the reference the compiled prediction reproduces.
        threshold_: the learned threshold on the calibrated spam probability.
        oof_: out-of-fold spam F1, recall and ham blocked rate at that threshold (inner CV).
        members_: the compiled ensemble (see ``compile_ensemble``).
    """

    def __init__(self, candidates: tuple[str, ...] = ("svc:1",), max_ham_blocked: float = 0.001,
                 pos_label: Any = None, cv: int = 5, seed: int = 42) -> None:
        self.candidates = candidates
        self.max_ham_blocked = max_ham_blocked
        self.pos_label = pos_label
        self.cv = cv
        self.seed = seed

    def fit(self, X: Any, y: Any) -> CalibratedThresholdClassifier:
        """Choose, calibrate, set the threshold, then compile the fitted ensemble for prediction."""
        candidates = self._candidates()
        X, y = validate_data(self, X, y, accept_sparse="csr", dtype=np.float64)
        check_classification_targets(y)
        y_type = type_of_target(y, input_name="y")
        if y_type != "binary":
            raise ValueError(f"Only binary classification is supported. The type of the target is {y_type}.")
        self.classes_ = np.unique(y)
        if len(self.classes_) != 2:
            raise ValueError(f"{type(self).__name__} needs two classes in y; got 1 class, {self.classes_.tolist()}.")
        pos = self._pos_label()
        if pos not in self.classes_:
            raise ValueError(f"pos_label={pos!r} is not one of the classes {self.classes_.tolist()}.")
        positive = (y == pos).astype(int)
        outer, inner = self._folds(positive)

        self.cv_average_precision_ = {
            c: float(average_precision_score(positive, cross_val_predict(
                make_linear(c, self.seed), X, positive, cv=outer, method="decision_function")))
            for c in candidates
        }
        self.chosen_ = max(candidates, key=lambda c: (self.cv_average_precision_[c], -candidates.index(c)))
        log.debug("spam model chosen by inner CV: %s (%s)", self.chosen_, self.cv_average_precision_)

        calibrated = CalibratedClassifierCV(make_linear(self.chosen_, self.seed), method="sigmoid", ensemble=True,
                                            cv=inner)
        oof = cross_val_predict(calibrated, X, positive, cv=outer, method="predict_proba")[:, 1]
        self.threshold_, self.oof_ = constrained_threshold(oof, positive == 1, self.max_ham_blocked)
        self.fixed_ = FixedThresholdClassifier(calibrated, threshold=self.threshold_, pos_label=1,
                                               response_method="predict_proba").fit(X, positive)
        self.members_ = compile_ensemble(self.fixed_.estimator_)
        self._check_parity(X[: min(X.shape[0], 2000)])
        return self

    def _candidates(self) -> list[str]:
        raw = self.candidates if isinstance(self.candidates, list | tuple) else [self.candidates]
        candidates = [str(c) for c in raw]
        if not candidates:
            raise ParameterError("candidates is empty: give at least one model, for example 'svc:1'.")
        for c in candidates:
            make_linear(c)  # fail early on a malformed candidate
        return candidates

    def _pos_label(self) -> Any:
        return self.classes_[1] if self.pos_label is None else self.pos_label

    def _folds(self, positive: np.ndarray) -> tuple[StratifiedKFold, StratifiedKFold]:
        """Outer folds (choice, out-of-fold probabilities) and inner folds (calibration, also inside them)."""
        smallest = int(min(positive.sum(), positive.size - positive.sum()))
        outer = min(self.cv, smallest)
        # A training part of an outer fold keeps at least this many of the rarer class.
        inner = min(self.cv, smallest - math.ceil(smallest / max(outer, 1)))
        if outer < 2 or inner < 2:
            raise ValueError(f"{type(self).__name__} needs at least 3 examples of each class for its nested "
                             f"cross-validation; the rarer class has {smallest}.")
        return (StratifiedKFold(outer, shuffle=True, random_state=self.seed),
                StratifiedKFold(inner, shuffle=True, random_state=self.seed))

    def _check_parity(self, X: Any) -> None:
        """The compiled probabilities must equal scikit-learn's (else the compile step is wrong: fail loudly)."""
        reference = self.fixed_.predict_proba(X)[:, 1]
        gap = float(np.max(np.abs(ensemble_proba(self.members_, X) - reference), initial=0.0))
        if gap > PARITY_ATOL:
            raise RuntimeError(f"the compiled spam ensemble differs from CalibratedClassifierCV by {gap:.2e} "
                               f"(tolerance {PARITY_ATOL:.0e}): scikit-learn's calibration changed.")

    def _positive_proba(self, X: Any) -> np.ndarray:
        check_is_fitted(self)
        X = validate_data(self, X, accept_sparse="csr", reset=False)
        return ensemble_proba(self.members_, X)

    def predict_proba(self, X: Any) -> np.ndarray:
        """Calibrated probabilities, columns in ``classes_`` order."""
        p = self._positive_proba(X)
        out = np.empty((len(p), 2))
        pos_col = int(np.flatnonzero(self.classes_ == self._pos_label())[0])
        out[:, pos_col] = p
        out[:, 1 - pos_col] = 1.0 - p
        return out

    def predict(self, X: Any) -> np.ndarray:
        """The positive label where the calibrated probability reaches the learned threshold."""
        p = self._positive_proba(X)
        pos = self._pos_label()
        neg = self.classes_[self.classes_ != pos][0]
        return np.where(p >= self.threshold_, pos, neg).astype(self.classes_.dtype)

    def coef(self) -> np.ndarray:
        """The linear weights averaged over the fold models (for the top n-grams report)."""
        return self.members_["coef"].mean(axis=1)

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        tags.classifier_tags.multi_class = False
        return tags
