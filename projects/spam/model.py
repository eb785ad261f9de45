"""The spam decision: a linear model chosen by CV, calibrated, with a threshold that keeps blocked ham rare.

Everything here is learned from the rows given to ``fit`` (in a CV fold: that fold's training rows only):

1. each candidate (``svc:C`` = linear SVM, ``logreg:C`` = logistic regression) is scored by stratified
   inner CV on average precision of spam (threshold-free), and the best one is kept;
2. out-of-fold calibrated probabilities of that model give the decision threshold: the highest spam F1
   among thresholds whose out-of-fold ham blocked rate is at most ``max_ham_blocked``;
3. the calibrated model (sigmoid, ``CalibratedClassifierCV``) is refitted on all the rows.

``predict_proba`` returns the calibrated probabilities, so a user can choose another threshold;
``predict`` applies the learned one.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.svm import LinearSVC

from common.errors import ParameterError

log = logging.getLogger(__name__)

MODELS = ("svc", "logreg")


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
    if kind not in MODELS or C <= 0:
        raise ParameterError(
            f"Model candidate '{candidate}' is not understood: write '<model>:<C>' with model in "
            f"{', '.join(MODELS)} and C > 0, for example 'svc:1' or 'logreg:30'."
        )
    if kind == "svc":
        return LinearSVC(C=C, random_state=seed)
    return LogisticRegression(C=C, solver="liblinear", random_state=seed)


def constrained_threshold(proba: np.ndarray, positive: np.ndarray, max_neg_rate: float) -> tuple[float, dict[str, float]]:
    """The threshold with the best F1 among those that flag at most ``max_neg_rate`` of the negatives.

    The threshold is placed halfway between the chosen score and the next lower one, so it does not sit
    on a training score. Returns the threshold and its out-of-fold figures.
    """
    p = np.asarray(proba, dtype=float)
    pos = np.asarray(positive, dtype=bool)
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    order = np.argsort(-p, kind="stable")
    ps, ys = p[order], pos[order]
    tp = np.cumsum(ys)
    fp = np.cumsum(~ys)
    # Cut only between distinct scores: the last index of each run of equal scores.
    last = np.r_[ps[1:] != ps[:-1], True]
    tp, fp, cut_scores = tp[last], fp[last], ps[last]
    feasible = fp <= max_neg_rate * max(n_neg, 1)
    f1 = np.where(feasible, 2 * tp / np.maximum(tp + n_pos + fp, 1), -1.0)
    if not feasible.any() or f1.max() <= 0:
        threshold = float(np.nextafter(ps[0], np.inf)) if len(ps) else 0.5
        return threshold, {"oof_f1": 0.0, "oof_recall": 0.0, "oof_ham_blocked_rate": 0.0}
    best = int(np.argmax(f1))
    below = cut_scores[best + 1] if best + 1 < len(cut_scores) else 0.0
    threshold = float((cut_scores[best] + below) / 2)
    return threshold, {
        "oof_f1": float(f1[best]),
        "oof_recall": float(tp[best] / max(n_pos, 1)),
        "oof_ham_blocked_rate": float(fp[best] / max(n_neg, 1)),
    }


class CalibratedThresholdClassifier(ClassifierMixin, BaseEstimator):
    """Binary classifier: CV-chosen linear model, sigmoid-calibrated, with a constrained decision threshold.

    Args:
        candidates: linear models to choose from (``svc:C`` / ``logreg:C``); one candidate skips the choice.
        max_ham_blocked: largest out-of-fold share of negatives (ham) the threshold may flag.
        pos_label: the positive class (spam).
        cv: folds of the inner CV used for the choice and the threshold.
        calibration_cv: folds of ``CalibratedClassifierCV``.
        seed: seed of the inner folds.
    """

    def __init__(self, candidates: tuple[str, ...] = ("svc:1",), max_ham_blocked: float = 0.001,
                 pos_label: Any = "spam", cv: int = 5, calibration_cv: int = 5, seed: int = 42) -> None:
        self.candidates = candidates
        self.max_ham_blocked = max_ham_blocked
        self.pos_label = pos_label
        self.cv = cv
        self.calibration_cv = calibration_cv
        self.seed = seed

    def fit(self, X: Any, y: Any) -> CalibratedThresholdClassifier:
        y_arr = np.asarray(y)
        self.classes_ = np.unique(y_arr)
        if len(self.classes_) != 2 or self.pos_label not in self.classes_:
            raise ValueError(
                f"needs exactly two classes including pos_label={self.pos_label!r}; got {self.classes_.tolist()}"
            )
        positive = y_arr == self.pos_label
        minority = int(min(positive.sum(), (~positive).sum()))
        folds = max(2, min(self.cv, minority))
        splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=self.seed)
        calib_folds = max(2, min(self.calibration_cv, minority // folds or 2))
        candidates = [str(c) for c in (self.candidates if isinstance(self.candidates, list | tuple) else [self.candidates])]
        for c in candidates:
            make_linear(c)  # fail early on a malformed candidate

        self.cv_average_precision_: dict[str, float] = {}
        if len(candidates) > 1:
            for c in candidates:
                scores = cross_val_predict(make_linear(c, self.seed), X, positive, cv=splitter,
                                           method="decision_function")
                self.cv_average_precision_[c] = float(average_precision_score(positive, scores))
            self.chosen_ = max(candidates, key=lambda c: (self.cv_average_precision_[c], -candidates.index(c)))
        else:
            self.chosen_ = candidates[0]
        log.debug("spam model chosen by inner CV: %s (%s)", self.chosen_, self.cv_average_precision_)

        calibrated = CalibratedClassifierCV(make_linear(self.chosen_, self.seed), method="sigmoid", cv=calib_folds)
        oof = cross_val_predict(clone(calibrated), X, positive, cv=splitter, method="predict_proba")[:, 1]
        self.threshold_, self.oof_ = constrained_threshold(oof, positive, self.max_ham_blocked)
        self.calibrated_ = calibrated.fit(X, positive)
        return self

    def _positive_proba(self, X: Any) -> np.ndarray:
        return self.calibrated_.predict_proba(X)[:, 1]

    def predict_proba(self, X: Any) -> np.ndarray:
        """Calibrated probabilities, columns in ``classes_`` order."""
        p = self._positive_proba(X)
        out = np.empty((len(p), 2))
        pos_col = int(np.flatnonzero(self.classes_ == self.pos_label)[0])
        out[:, pos_col] = p
        out[:, 1 - pos_col] = 1.0 - p
        return out

    def predict(self, X: Any) -> np.ndarray:
        """The positive label where the calibrated probability reaches the learned threshold."""
        p = self._positive_proba(X)
        neg = self.classes_[self.classes_ != self.pos_label][0]
        return np.where(p >= self.threshold_, self.pos_label, neg).astype(self.classes_.dtype)

    def coef(self) -> np.ndarray:
        """The linear weights averaged over the calibration folds (for the top n-grams report)."""
        coefs = [np.ravel(cc.estimator.coef_) for cc in self.calibrated_.calibrated_classifiers_]
        return np.mean(coefs, axis=0)
