"""churn pipeline: raw customer rows in, a calibrated churn probability and a business decision out.

``Pipeline([("validate", ValidateInput(CONTRACT)), ("features", ChurnFeatures()), ("model", ChurnClassifier(...))])``:

* ``validate`` checks the raw rows against churn's input contract (``contract.py``: types, ranges,
  all-missing rows) and passes them on unchanged.
* ``features`` types the raw columns (blank ``TotalCharges`` -> number) and adds stateless engineered
  columns (see ``features.py``).
* ``model`` learns everything else from the rows it is fitted on, with one set of inner folds:

  1. two learners, each behind its own ``ColumnTransformer``: a regularised logistic regression (spline
     basis of the continuous columns, scaled counts, one-hot categories with unseen levels ignored) and
     gradient-boosted trees (native categorical splits, NaN handled natively);
  2. ``sklearn.model_selection.cross_val_predict`` over ``inner_folds`` stratified folds *inside the
     training rows* gives each learner's out-of-fold churn probability (the way ``StackingClassifier``
     builds its second-level features); then the learners are refitted on all the rows;
  3. each candidate (``lr``, ``gb`` and their ``blend``) gets a head learned on those out-of-fold
     probabilities only: ``CalibratedClassifierCV(FrozenEstimator(MemberBlend))`` (Platt scaling on the
     logit of the candidate's score, or isotonic), and ``TunedThresholdClassifierCV(cv="prefit")``
     searching the decision threshold for the objective (churner F1, or the expected profit of a retention
     offer, both ``make_scorer`` scorers; for F1 the threshold applied is half the best F1, see
     ``ChurnClassifier._head``); ``model="auto"`` keeps the candidate with the best out-of-fold ROC-AUC,
     so the choice is part of what outer cross-validation scores;
  4. the class imbalance (26.5% churners in Telco) is handled where it matters for a decision: calibrated
     probabilities and a tuned threshold (``class_weight="balanced"`` re-weights the learners too;
     calibration then undoes the shift of the probabilities).

Why the heads can use ``cv="prefit"`` on the rows their calibrator was fitted on: the scores are out of
fold (no learner saw those rows), and a sigmoid or isotonic calibrator is monotone, so calibrating first
does not change which decisions a threshold can make on those rows; it only makes the threshold a
probability. An inner cross-validation of the heads would cost k x more scorer calls for no honesty gain.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import numpy as np
import pandas as pd
from annotated_types import Ge, Gt, Interval
from sklearn.base import BaseEstimator, ClassifierMixin, OneToOneFeatureMixin, TransformerMixin
from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import ColumnTransformer, make_column_selector
from sklearn.dummy import DummyClassifier
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.frozen import FrozenEstimator
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import make_scorer, roc_auc_score
from sklearn.model_selection import (
    FixedThresholdClassifier,
    StratifiedKFold,
    TunedThresholdClassifierCV,
    cross_val_predict,
)
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, SplineTransformer, StandardScaler
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import check_array, check_is_fitted, column_or_1d, validate_data
from threadpoolctl import threadpool_limits

from common.contract import ValidateInput
from common.errors import DataError, ParameterError
from common.params import Search
from projects.churn.contract import CONTRACT
from projects.churn.features import ChurnFeatures

MODELS = ("auto", "lr", "gb", "blend")
OBJECTIVES = ("f1", "profit")
CALIBRATIONS = ("sigmoid", "isotonic", "none")
# Candidate thresholds on the calibrated probability (the F1 and profit curves are flat at this resolution).
THRESHOLD_GRID = np.round(np.arange(0.01, 1.0, 0.005), 4)
_EPS = 1e-6
# Below this many rows the learners run single-threaded: on a few thousand rows OpenMP/BLAS threads save
# nothing, and on a busy machine their spin-waiting made one boosted-trees fit many times slower.
THREADED_FROM_ROWS = 200_000


class TargetError(DataError, ValueError):
    """The target has not two classes, or too few rows of one: a ``DataError`` for the command line and a
    ``ValueError`` for scikit-learn's conventions."""


def signed_log1p(X: Any) -> np.ndarray:
    """sign(x) * log(1 + |x|): tames the long tails of charges and spend before the spline basis."""
    arr = np.asarray(X, dtype=float)
    return np.sign(arr) * np.log1p(np.abs(arr))


# ------------------------------------------------------------------------------------------ objectives
def retention_profit(y_true: Any, y_pred: Any, *, offer_cost: float, churn_loss: float,
                     offer_success: float) -> float:
    """Expected profit per customer of a retention offer to every customer predicted to churn (label 1).

    A targeted churner is kept with probability ``offer_success`` (saving ``churn_loss``); every offer
    costs ``offer_cost``. Customers who are not targeted cost nothing extra (the baseline is "no campaign").
    """
    y, targeted = np.asarray(y_true) == 1, np.asarray(y_pred) == 1
    gain = np.where(y, offer_success * churn_loss, 0.0) - offer_cost
    return float(np.sum(gain[targeted]) / max(len(y), 1))


def churner_f1(y_true: Any, y_pred: Any) -> float:
    """F1 of the churners (label 1), 0 when none is predicted or present.

    Equal to ``sklearn.metrics.f1_score(y_true, y_pred, pos_label=1, zero_division=0)`` (a test checks it);
    the threshold search calls it once per candidate threshold, where f1_score's input validation made
    every fit several times slower (docs/churn.md).
    """
    y, pred = np.asarray(y_true) == 1, np.asarray(y_pred) == 1
    tp = np.count_nonzero(y & pred)
    wrong = np.count_nonzero(y != pred)
    return float(2 * tp / (2 * tp + wrong)) if tp else 0.0


def objective_scorer(objective: str = "f1", offer_cost: float = 50.0, churn_loss: float = 500.0,
                     offer_success: float = 0.5) -> Any:
    """The scorer the decision threshold maximises: churner F1, or the retention profit per customer."""
    if objective == "profit":
        return make_scorer(retention_profit, offer_cost=offer_cost, churn_loss=churn_loss,
                           offer_success=offer_success)
    return make_scorer(churner_f1)


# ------------------------------------------------------------------------------------------ encoding
class CategoryCodes(OneToOneFeatureMixin, TransformerMixin, BaseEstimator):
    """Category strings -> integer codes of the levels seen in ``fit`` (as floats; NaN = missing or unseen).

    Levels seen fewer than ``min_frequency`` times are not kept (they become NaN like unseen ones), so a
    level too rare to learn from is treated the same in training and at prediction. Encoding goes through
    a pandas hash table instead of scikit-learn's per-value lookups on object arrays (see docs/churn.md);
    the one-hot and tree steps after it then work on numbers.

    Args:
        min_frequency: the fewest training rows a level needs to get its own code.
    """

    def __init__(self, min_frequency: int = 10) -> None:
        self.min_frequency = min_frequency

    def _frame(self, X: Any, reset: bool) -> pd.DataFrame:
        if not isinstance(X, pd.DataFrame):
            X = check_array(X, dtype=None, ensure_all_finite="allow-nan")
        validate_data(self, X, reset=reset, skip_check_array=True)
        return pd.DataFrame(X)

    def fit(self, X: Any, y: Any = None) -> CategoryCodes:
        frame = self._frame(X, reset=True)
        self.levels_ = []
        for col in frame.columns:
            counts = frame[col].dropna().astype(str).str.strip().value_counts()
            self.levels_.append(sorted(str(v) for v in counts.index[counts >= self.min_frequency]))
        return self

    def transform(self, X: Any) -> np.ndarray:
        check_is_fitted(self)
        frame = self._frame(X, reset=False)
        out = np.empty((len(frame), len(self.levels_)), dtype=float)
        for j, (col, levels) in enumerate(zip(frame.columns, self.levels_, strict=True)):
            values = frame[col]
            if isinstance(values.dtype, pd.CategoricalDtype):
                # Map the column's few categories onto the learned levels, then index by the row codes.
                position = {level: i for i, level in enumerate(levels)}
                lookup = [position.get(str(c).strip(), -1) for c in values.cat.categories]
                codes = np.asarray([*lookup, -1])[values.cat.codes.to_numpy()]
            else:
                text = values.astype(object).where(values.notna(), None).map(
                    lambda v: v if v is None else str(v).strip())
                codes = pd.Index(levels, dtype=object).get_indexer(text.to_numpy())
            out[:, j] = np.where(codes < 0, np.nan, codes)
        return out

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        tags.input_tags.string = True
        tags.input_tags.categorical = True
        return tags


# ------------------------------------------------------------------------------------------ candidates
class MemberBlend(ClassifierMixin, BaseEstimator):
    """A fixed weighted average of member churn probabilities, as a binary classifier.

    Its input is one column per member (the members' positive-class probabilities, out of fold when the
    heads are fitted); its ``decision_function`` is the logit of the average, which is what
    ``CalibratedClassifierCV`` calibrates. It learns nothing from the rows but the classes.

    Args:
        weights: one non-negative weight per input column (None: equal weights); normalised to sum to 1.
    """

    def __init__(self, weights: tuple[float, ...] | None = None) -> None:
        self.weights = weights

    def _weights(self, n: int) -> np.ndarray:
        w = np.ones(n) if self.weights is None else np.asarray(self.weights, dtype=float)
        if w.shape != (n,) or (w < 0).any() or w.sum() <= 0:
            raise ValueError(f"MemberBlend: weights must be {n} non-negative numbers, not all zero; got {self.weights}.")
        return w / w.sum()

    def fit(self, X: Any, y: Any) -> MemberBlend:
        X, y = validate_data(self, X, y)
        check_classification_targets(y)
        kind = type_of_target(y, input_name="y", raise_unknown=True)
        if kind != "binary":
            raise ValueError(f"Only binary classification is supported. The type of the target is {kind}.")
        self.classes_ = np.unique(y)
        if len(self.classes_) != 2:
            raise ValueError("MemberBlend can't be fitted when only one class is present.")
        self.weights_ = self._weights(X.shape[1])
        return self

    def _score(self, X: Any) -> np.ndarray:
        check_is_fitted(self)
        X = validate_data(self, X, reset=False)
        return np.clip(X @ self.weights_, 0.0, 1.0)

    def predict_proba(self, X: Any) -> np.ndarray:
        p = self._score(X)
        return np.column_stack([1 - p, p])

    def decision_function(self, X: Any) -> np.ndarray:
        p = np.clip(self._score(X), _EPS, 1 - _EPS)
        return np.log(p / (1 - p))

    def predict(self, X: Any) -> np.ndarray:
        p = self._score(X)
        return self.classes_[(p >= 0.5).astype(int)]

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = False
        return tags


# ----------------------------------------------------------------------------------------------- model
class ChurnClassifier(ClassifierMixin, BaseEstimator):
    """Logistic regression, boosted trees or their blend; calibrated; with a business decision threshold.

    Takes the prefixed columns of ``ChurnFeatures`` (``cont_`` continuous, ``cat_`` categorical; any other
    column, ``num_`` ones included, is a number). See the module docstring for the fitting procedure.

    Args:
        model: ``auto`` (the best of lr/gb/blend by inner cross-validated ROC-AUC), ``lr``, ``gb`` or ``blend``.
        C: inverse L2 strength of the logistic regression.
        spline_knots: knots of the cubic spline basis of each continuous column (quantile-placed).
        gb_iter, gb_learning_rate, gb_depth, gb_min_leaf: the boosted trees.
        blend_weight: the logistic regression's share of the blended score.
        class_weight: ``none`` (default: the imbalance is handled by calibrated probabilities and the tuned
            threshold) or ``balanced`` (churners weighted up while learning; calibration then undoes the
            shift in probabilities).
        calibration: ``sigmoid``, ``isotonic`` or ``none`` (``CalibratedClassifierCV``'s methods).
        objective: ``f1`` (churner F1) or ``profit`` (expected profit of a retention offer).
        offer_cost, churn_loss, offer_success: the profit objective's economics per customer.
        inner_folds: folds of the inner cross-validation (model choice, calibration and threshold).
        random_state: seed of the inner folds and the trees.

    Attributes:
        members_: the learners refitted on all rows (``lr`` and/or ``gb``).
        heads_: per candidate, its fitted head on the members' probabilities: calibration and threshold, a
            ``FixedThresholdClassifier`` at half the best F1 (``objective="f1"``, calibrated) or else the
            ``TunedThresholdClassifierCV`` itself.
        inner_auc_: per candidate, the ROC-AUC of its out-of-fold score on the inner folds.
        thresholds_: per candidate, the decision threshold on its calibrated probability.
        selected_, threshold_: the candidate ``predict`` uses and its threshold.
    """

    def __init__(self, model: str = "auto", C: float = 0.03, spline_knots: int = 7, gb_iter: int = 80,
                 gb_learning_rate: float = 0.1, gb_depth: int = 2, gb_min_leaf: int = 50,
                 blend_weight: float = 0.6, class_weight: str = "none", calibration: str = "sigmoid",
                 objective: str = "f1", offer_cost: float = 50.0, churn_loss: float = 500.0,
                 offer_success: float = 0.5, inner_folds: int = 5, random_state: int = 0) -> None:
        self.model = model
        self.C = C
        self.spline_knots = spline_knots
        self.gb_iter = gb_iter
        self.gb_learning_rate = gb_learning_rate
        self.gb_depth = gb_depth
        self.gb_min_leaf = gb_min_leaf
        self.blend_weight = blend_weight
        self.class_weight = class_weight
        self.calibration = calibration
        self.objective = objective
        self.offer_cost = offer_cost
        self.churn_loss = churn_loss
        self.offer_success = offer_success
        self.inner_folds = inner_folds
        self.random_state = random_state

    # -- learners ------------------------------------------------------------------------------------
    def _weight(self) -> str | None:
        return "balanced" if self.class_weight == "balanced" else None

    def _lr(self, columns: list[str]) -> Pipeline:
        cont = [c for c in columns if c.startswith("cont_")]
        cat = [c for c in columns if c.startswith("cat_")]
        num = [c for c in columns if c not in cont and c not in cat]
        encode = ColumnTransformer(
            [
                ("continuous", Pipeline([
                    ("impute", SimpleImputer(strategy="median")),
                    ("log", FunctionTransformer(signed_log1p, feature_names_out="one-to-one")),
                    ("spline", SplineTransformer(n_knots=self.spline_knots, degree=3, knots="quantile",
                                                 extrapolation="constant")),
                ]), cont),
                ("counts", Pipeline([("impute", SimpleImputer(strategy="median")),
                                     ("scale", StandardScaler())]), num),
                ("categories", Pipeline([
                    ("codes", CategoryCodes(min_frequency=10)),
                    # rare, unseen and missing levels share the code -1 (all zeros when never seen in training)
                    ("impute", SimpleImputer(strategy="constant", fill_value=-1)),
                    ("onehot", OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
                ]), cat),
            ],
            sparse_threshold=0.0,
        )
        return Pipeline([("columns", encode),
                         ("model", LogisticRegression(C=self.C, max_iter=5000, class_weight=self._weight()))])

    def _gb(self, columns: list[str]) -> Pipeline:
        cat = [c for c in columns if c.startswith("cat_")]
        numeric = [c for c in columns if c not in cat]
        encode = ColumnTransformer(
            [
                ("numbers", "passthrough", numeric),
                ("categories", CategoryCodes(min_frequency=10), cat),
            ]
        )
        trees = HistGradientBoostingClassifier(
            learning_rate=self.gb_learning_rate, max_iter=self.gb_iter, max_depth=self.gb_depth,
            min_samples_leaf=self.gb_min_leaf, l2_regularization=1.0, early_stopping=False,
            categorical_features=np.r_[np.zeros(len(numeric), bool), np.ones(len(cat), bool)],
            class_weight=self._weight(), random_state=self.random_state,
        )
        return Pipeline([("columns", encode), ("model", trees)])

    def _members(self) -> list[str]:
        return ["lr", "gb"] if self.model in ("auto", "blend") else [self.model]

    def _candidates(self) -> dict[str, tuple[list[str], tuple[float, ...]]]:
        """Candidate name -> (the members it reads, their weights)."""
        members = self._members()
        out = {m: ([m], (1.0,)) for m in members}
        if members == ["lr", "gb"]:
            out["blend"] = (["lr", "gb"], (self.blend_weight, 1.0 - self.blend_weight))
        return out

    def _head(self, weights: tuple[float, ...], scores: np.ndarray, target: np.ndarray) -> Any:
        """Calibration and threshold for one candidate, learned on its members' out-of-fold probabilities.

        ``TunedThresholdClassifierCV`` searches ``THRESHOLD_GRID`` for the objective. For churner F1 on
        calibrated probabilities the threshold is then half the best F1 it found (Lipton, Elkan &
        Narayanaswamy 2014: the F1-optimal threshold of calibrated probabilities is F1*/2), applied by a
        ``FixedThresholdClassifier``: the arg-max of the noisy F1 curve moves between folds, half its
        maximum barely does, and it scores higher out of fold (docs/churn.md).
        """
        score: Any = FrozenEstimator(MemberBlend(weights).fit(scores, target))
        if self.calibration != "none":
            # The frozen blend is never refitted, so the folds only split its predicting: any valid split
            # gives the same calibrator, and two folds need the fewest rows per class.
            calibrated = CalibratedClassifierCV(score, method=self.calibration, cv=2)
            score = FrozenEstimator(calibrated.fit(scores, target))
        scorer = objective_scorer(self.objective, self.offer_cost, self.churn_loss, self.offer_success)
        tuned = TunedThresholdClassifierCV(score, scoring=scorer, response_method="predict_proba",
                                           thresholds=THRESHOLD_GRID, cv="prefit", refit=False).fit(scores, target)
        if self.objective == "f1" and self.calibration != "none" and tuned.best_score_ > 0:
            return FixedThresholdClassifier(score, threshold=float(tuned.best_score_) / 2,
                                            response_method="predict_proba").fit(scores, target)
        return tuned

    def _check_params(self) -> None:
        for name, value, allowed in (("model", self.model, MODELS), ("objective", self.objective, OBJECTIVES),
                                     ("calibration", self.calibration, CALIBRATIONS),
                                     ("class_weight", self.class_weight, ("balanced", "none"))):
            if value not in allowed:
                raise ParameterError(f"churn: {name} must be one of {', '.join(allowed)}; got {value!r}.")
        if not 0.0 <= self.blend_weight <= 1.0:
            raise ParameterError(f"churn: blend_weight must be between 0 and 1; got {self.blend_weight}.")

    def _frame(self, X: Any, reset: bool) -> pd.DataFrame:
        """The input as a DataFrame: ChurnFeatures' frame as is, a plain array as numbered number columns."""
        if not isinstance(X, pd.DataFrame):
            X = check_array(X, ensure_all_finite="allow-nan")
            validate_data(self, X, reset=reset, skip_check_array=True)
            return pd.DataFrame(X, columns=[f"x{i}" for i in range(X.shape[1])])
        validate_data(self, X, reset=reset, skip_check_array=True)
        if not all(isinstance(c, str) for c in X.columns):  # the encoders select columns by name
            X = X.set_axis([str(c) for c in X.columns], axis=1)
        return X

    # -- fitting -------------------------------------------------------------------------------------
    def fit(self, X: Any, y: Any) -> ChurnClassifier:
        self._check_params()
        frame = self._frame(X, reset=True)
        with threadpool_limits(limits=1 if len(frame) < THREADED_FROM_ROWS else None):
            return self._fit(frame, y)

    def _fit(self, frame: pd.DataFrame, y: Any) -> ChurnClassifier:
        y_arr = check_array(column_or_1d(y, warn=True), ensure_2d=False, dtype=None, input_name="y")
        check_classification_targets(y_arr)
        self.classes_ = np.unique(y_arr)
        if len(self.classes_) > 2:
            raise TargetError(f"Only binary classification is supported. churn got classes {self.classes_}.")
        if len(self.classes_) < 2:
            raise TargetError("Classifier can't train when only one class is present: churn needs churners and "
                              f"non-churners in the training rows; got only {self.classes_}.")
        target = (y_arr == self.classes_[1]).astype(int)
        folds = min(self.inner_folds, int(np.bincount(target).min()))
        if folds < 2:
            raise TargetError("churn needs at least two churners and two non-churners to fit.")
        columns = [str(c) for c in frame.columns]
        builders = {"lr": self._lr, "gb": self._gb}
        splitter = StratifiedKFold(folds, shuffle=True, random_state=self.random_state)
        # One set of inner folds: every learner's out-of-fold probability, then the learner on all rows.
        oof = {m: cross_val_predict(builders[m](columns), frame, target, cv=splitter, method="predict_proba")[:, 1]
               for m in self._members()}
        self.members_ = {m: builders[m](columns).fit(frame, target) for m in self._members()}
        self.inner_auc_, self.heads_ = {}, {}
        for name, (members, weights) in self._candidates().items():
            scores = np.column_stack([oof[m] for m in members])
            w = np.asarray(weights) / np.sum(weights)
            self.inner_auc_[name] = float(roc_auc_score(target, scores @ w))
            self.heads_[name] = self._head(weights, scores, target)
        self.selected_ = max(self.inner_auc_, key=self.inner_auc_.get) if self.model == "auto" else self.model
        self.thresholds_ = {name: float(head.threshold if isinstance(head, FixedThresholdClassifier)
                                        else head.best_threshold_) for name, head in self.heads_.items()}
        self.threshold_ = self.thresholds_[self.selected_]
        return self

    # -- prediction ----------------------------------------------------------------------------------
    def _member_scores(self, X: Any, name: str) -> np.ndarray:
        if name not in self.heads_:
            raise ParameterError(f"churn: no candidate {name!r}; this model has {', '.join(self.heads_)}.")
        frame = self._frame(X, reset=False)
        members = self._candidates()[name][0]
        with threadpool_limits(limits=1 if len(frame) < THREADED_FROM_ROWS else None):
            return np.column_stack([self.members_[m].predict_proba(frame)[:, 1] for m in members])

    def candidate_proba(self, X: Any, name: str | None = None) -> np.ndarray:
        """Calibrated churn probability of one candidate (``lr``, ``gb``, ``blend``; default the selected)."""
        check_is_fitted(self)
        name = name or self.selected_
        return self.heads_[name].predict_proba(self._member_scores(X, name))[:, 1]

    def candidate_predict(self, X: Any, name: str | None = None) -> np.ndarray:
        """Decisions of one candidate at its own tuned threshold (default the selected one)."""
        check_is_fitted(self)
        name = name or self.selected_
        hit = self.heads_[name].predict(self._member_scores(X, name))
        return self.classes_[hit]

    def predict_proba(self, X: Any) -> np.ndarray:
        p = self.candidate_proba(X)
        return np.column_stack([1 - p, p])

    def predict(self, X: Any) -> np.ndarray:
        """The business decision: churner when the calibrated probability reaches ``threshold_``."""
        return self.candidate_predict(X)

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = False
        tags.input_tags.allow_nan = True
        return tags


# ---------------------------------------------------------------------------------------------- builders
def build_pipeline(model: Literal["auto", "lr", "gb", "blend"] = "auto",
                   C: Annotated[float, Gt(0), Search(1e-3, 1.0, log=True)] = 0.03,
                   spline_knots: Annotated[int, Ge(2), Search(4, 12)] = 7,
                   gb_iter: Annotated[int, Ge(1), Search(40, 400, log=True)] = 80,
                   gb_learning_rate: Annotated[float, Interval(gt=0, le=1), Search(0.02, 0.3, log=True)] = 0.1,
                   gb_depth: Annotated[int, Ge(1), Search(1, 5)] = 2,
                   gb_min_leaf: Annotated[int, Ge(1), Search(10, 200, log=True)] = 50,
                   blend_weight: Annotated[float, Interval(ge=0, le=1), Search(0.0, 1.0)] = 0.6,
                   class_weight: Annotated[Literal["none", "balanced"], Search()] = "none",
                   calibration: Literal["sigmoid", "isotonic", "none"] = "sigmoid",
                   objective: Literal["f1", "profit"] = "f1", offer_cost: Annotated[float, Ge(0)] = 50.0,
                   churn_loss: Annotated[float, Ge(0)] = 500.0,
                   offer_success: Annotated[float, Interval(ge=0, le=1)] = 0.5,
                   inner_folds: Annotated[int, Ge(2)] = 5) -> Pipeline:
    """An unfitted pipeline from raw customer columns (Telco or Kaggle schema) to churn decisions.

    Args: see ``ChurnClassifier``; the ranges are in the annotations (``C > 0``, ``spline_knots >= 2``,
    ``gb_iter >= 1``, ``gb_learning_rate`` in (0, 1], ``gb_depth >= 1``, ``gb_min_leaf >= 1``,
    ``blend_weight`` and ``offer_success`` in [0, 1], ``offer_cost`` and ``churn_loss >= 0``,
    ``inner_folds >= 2``).
    """
    return Pipeline([
        ("validate", ValidateInput(CONTRACT)),
        ("features", ChurnFeatures()),
        ("model", ChurnClassifier(
            model=model, C=C, spline_knots=spline_knots, gb_iter=gb_iter, gb_learning_rate=gb_learning_rate,
            gb_depth=gb_depth, gb_min_leaf=gb_min_leaf, blend_weight=blend_weight, class_weight=class_weight,
            calibration=calibration, objective=objective, offer_cost=offer_cost, churn_loss=churn_loss,
            offer_success=offer_success, inner_folds=inner_folds,
        )),
    ])


def plain_logistic() -> Pipeline:
    """The textbook model: raw columns typed, scaled numbers, one-hot categories, logistic regression at 0.5."""
    encode = ColumnTransformer(
        [
            ("numbers", Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())]),
             make_column_selector(pattern="^cont_")),
            ("categories", Pipeline([("impute", SimpleImputer(strategy="constant", fill_value="missing")),
                                     ("onehot", OneHotEncoder(handle_unknown="ignore"))]),
             make_column_selector(pattern="^cat_")),
        ]
    )
    return Pipeline([("features", ChurnFeatures(engineer=False)), ("columns", encode),
                     ("model", LogisticRegression(max_iter=2000))])


def baselines() -> dict[str, Any]:
    """The majority class (never predicts churn) and a plain logistic regression, beside the model."""
    return {"majority": DummyClassifier(strategy="most_frequent"), "logreg": plain_logistic()}
