"""The spam decision: a linear model chosen by CV, calibrated, with a threshold that keeps blocked ham rare.

Everything here is learned from the rows given to ``fit`` (in a CV fold: that fold's training rows only):

1. each candidate (``svc:C`` = linear SVM, ``logreg:C`` = logistic regression) is fitted on ``cv``
   stratified inner folds and scored on the held-out parts by average precision of spam
   (threshold-free); the best candidate is kept;
2. its fold models, each with a sigmoid (Platt) calibration fitted on the fold it did not see, form the
   final model: the calibrated probabilities are averaged over the folds. This is exactly what
   ``CalibratedClassifierCV(method="sigmoid", ensemble=True)`` does, written out so that the fold models
   already fitted in step 1 are reused and prediction is one sparse product for all folds at once (the
   scikit-learn object costs about 7 ms per single-message call on a busy 2-core machine, this 0.1 ms);
3. the decision threshold is the best out-of-fold spam F1 among thresholds that block at most
   ``max_ham_blocked`` of the ham, computed on out-of-fold probabilities of that same kind of averaged
   model (a nested CV), so the threshold is set on the scale the final model predicts in.

``predict_proba`` returns the calibrated probabilities, so a user can choose another threshold;
``predict`` applies the learned one.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.optimize import minimize
from scipy.special import expit
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score
from sklearn.model_selection import StratifiedKFold
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
    # The dual problem: text has far more n-grams than rows, and it is then about 8x faster (same fit).
    return LogisticRegression(C=C, solver="liblinear", dual=True, random_state=seed)


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


def fit_platt(scores: np.ndarray, positive: np.ndarray) -> tuple[float, float]:
    """Platt scaling: ``(a, b)`` with ``P(positive) = expit(a * score + b)``.

    Fitted by maximum likelihood with Platt's smoothed targets (as scikit-learn's sigmoid calibration),
    so a fold without errors does not produce infinite slopes.
    """
    f = np.asarray(scores, dtype=float)
    y = np.asarray(positive, dtype=bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    target = np.where(y, (n_pos + 1.0) / (n_pos + 2.0), 1.0 / (n_neg + 2.0))
    scale = float(np.std(f)) or 1.0
    g = f / scale

    def loss(ab: np.ndarray) -> tuple[float, np.ndarray]:
        z = ab[0] * g + ab[1]
        p = expit(z)
        diff = p - target
        return float(np.sum(np.logaddexp(0.0, z) - target * z)), np.array([diff @ g, diff.sum()])

    prior = np.log((n_pos + 1.0) / (n_neg + 1.0))
    res = minimize(loss, x0=np.array([1.0, prior]), jac=True, method="L-BFGS-B")
    return float(res.x[0] / scale), float(res.x[1])


def fold_ensemble(candidate: str, X: Any, positive: np.ndarray, splitter: Any, seed: int) -> dict[str, np.ndarray]:
    """Fit ``candidate`` on each inner fold and calibrate it on the rows it did not see.

    Returns the weights ``coef`` (features x folds, contiguous so that ``X @ coef`` needs no copy),
    ``intercept``, Platt ``a``/``b`` per fold, and ``oof``: each row's decision value from the fold model
    that did not see it.
    """
    n = positive.shape[0]
    oof = np.empty(n)
    coefs, intercepts, a, b = [], [], [], []
    for train, held in splitter.split(np.zeros(n), positive):
        model = make_linear(candidate, seed).fit(X[train], positive[train])
        oof[held] = model.decision_function(X[held])
        pa, pb = fit_platt(oof[held], positive[held])
        coefs.append(np.ravel(model.coef_))
        intercepts.append(float(np.ravel(model.intercept_)[0]))
        a.append(pa)
        b.append(pb)
    return {"coef": np.ascontiguousarray(np.vstack(coefs).T), "intercept": np.asarray(intercepts), "a": np.asarray(a),
            "b": np.asarray(b), "oof": oof}


def ensemble_proba(members: dict[str, np.ndarray], X: Any) -> np.ndarray:
    """Mean calibrated probability of the fold models: one sparse product for all of them."""
    scores = np.asarray(X @ members["coef"]) + members["intercept"]
    return expit(scores * members["a"] + members["b"]).mean(axis=1)


class CalibratedThresholdClassifier(ClassifierMixin, BaseEstimator):
    """Binary classifier: CV-chosen linear model, Platt-calibrated fold ensemble, constrained threshold.

    Args:
        candidates: linear models to choose from (``svc:C`` / ``logreg:C``).
        max_ham_blocked: largest out-of-fold share of negatives (ham) the threshold may flag.
        pos_label: the positive class (spam).
        cv: folds of the inner CV (choice, calibration ensemble, and the nested CV of the threshold).
        seed: seed of the inner folds and of the linear models.
    """

    def __init__(self, candidates: tuple[str, ...] = ("svc:1",), max_ham_blocked: float = 0.001,
                 pos_label: Any = "spam", cv: int = 5, seed: int = 42) -> None:
        self.candidates = candidates
        self.max_ham_blocked = max_ham_blocked
        self.pos_label = pos_label
        self.cv = cv
        self.seed = seed

    def fit(self, X: Any, y: Any) -> CalibratedThresholdClassifier:
        y_arr = np.asarray(y)
        self.classes_ = np.unique(y_arr)
        if len(self.classes_) != 2 or self.pos_label not in self.classes_:
            raise ValueError(
                f"needs exactly two classes including pos_label={self.pos_label!r}; got {self.classes_.tolist()}"
            )
        X = sp.csr_matrix(X) if not sp.issparse(X) else X.tocsr()
        positive = y_arr == self.pos_label
        raw = self.candidates if isinstance(self.candidates, list | tuple) else [self.candidates]
        candidates = [str(c) for c in raw]
        for c in candidates:
            make_linear(c)  # fail early on a malformed candidate
        splitter = self._splitter(positive)

        fitted = {c: fold_ensemble(c, X, positive, splitter, self.seed) for c in candidates}
        self.cv_average_precision_ = {c: float(average_precision_score(positive, f["oof"]))
                                      for c, f in fitted.items()}
        self.chosen_ = max(candidates, key=lambda c: (self.cv_average_precision_[c], -candidates.index(c)))
        log.debug("spam model chosen by inner CV: %s (%s)", self.chosen_, self.cv_average_precision_)
        self.members_ = {k: v for k, v in fitted[self.chosen_].items() if k != "oof"}

        # Out-of-fold probabilities of the same kind of model (a fold ensemble) for the threshold.
        oof = np.empty(len(positive))
        for train, held in splitter.split(np.zeros(len(positive)), positive):
            inner = self._splitter(positive[train])
            members = fold_ensemble(self.chosen_, X[train], positive[train], inner, self.seed)
            oof[held] = ensemble_proba(members, X[held])
        self.threshold_, self.oof_ = constrained_threshold(oof, positive, self.max_ham_blocked)
        return self

    def _splitter(self, positive: np.ndarray) -> StratifiedKFold:
        folds = max(2, min(self.cv, int(positive.sum()), int((~positive).sum())))
        return StratifiedKFold(n_splits=folds, shuffle=True, random_state=self.seed)

    def _positive_proba(self, X: Any) -> np.ndarray:
        return ensemble_proba(self.members_, X)

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
        """The linear weights averaged over the fold models (for the top n-grams report)."""
        return self.members_["coef"].mean(axis=1)
