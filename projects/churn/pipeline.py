"""churn pipeline: raw customer rows in, a calibrated churn probability and a business decision out.

``Pipeline([("features", ChurnFeatures()), ("model", ChurnClassifier(...))])``:

* ``features`` types the raw columns (blank ``TotalCharges`` -> number) and adds stateless engineered
  columns (see ``features.py``).
* ``model`` learns everything else from the rows it is fitted on, in this order:

  1. two learners, each behind its own ``ColumnTransformer``: a regularised logistic regression (spline
     basis of the continuous columns, scaled counts, one-hot categories with unseen levels ignored) and
     gradient-boosted trees (native categorical splits, NaN handled natively);
  2. ``inner_folds``-fold cross-validation *inside the training rows* gives out-of-fold scores of the
     logistic regression, the trees and their blend; ``model="auto"`` keeps the one with the best
     out-of-fold ROC-AUC (so the choice is part of what outer cross-validation scores);
  3. a calibrator fitted on those out-of-fold scores turns them into probabilities;
  4. the class imbalance (26.5% churners in Telco) is handled where it matters for a decision: the
     threshold that maximises the objective (churner F1, or expected profit of a retention offer) on the
     calibrated out-of-fold probabilities is stored and used by ``predict`` (``class_weight="balanced"``
     re-weights the learners too; calibration then undoes the shift of the probabilities);
  5. the learners are refitted on all the rows.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin, clone
from sklearn.compose import ColumnTransformer, make_column_selector
from sklearn.dummy import DummyClassifier
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, SplineTransformer, StandardScaler
from threadpoolctl import threadpool_limits

from common.errors import DataError, ParameterError
from projects.churn.features import ChurnFeatures

MODELS = ("auto", "lr", "gb", "blend")
CANDIDATES = ("lr", "gb", "blend")
OBJECTIVES = ("f1", "profit")
CALIBRATIONS = ("sigmoid", "isotonic", "none")
_EPS = 1e-6
# Below this many rows the learners run single-threaded: on a few thousand rows OpenMP/BLAS threads save
# nothing, and on a busy machine their spin-waiting made one boosted-trees fit ~25x slower (measured).
THREADED_FROM_ROWS = 200_000


def signed_log1p(X: Any) -> np.ndarray:
    """sign(x) * log(1 + |x|): tames the long tails of charges and spend before the spline basis."""
    arr = np.asarray(X, dtype=float)
    return np.sign(arr) * np.log1p(np.abs(arr))


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=float), _EPS, 1 - _EPS)
    return np.log(p / (1 - p))


# ------------------------------------------------------------------------------------------ encoding
class CategoryCodes(TransformerMixin, BaseEstimator):
    """Category strings -> integer codes of the levels seen in ``fit`` (as floats; NaN = missing or unseen).

    Levels seen fewer than ``min_frequency`` times are not kept (they become NaN like unseen ones), so a
    level too rare to learn from is treated the same in training and at prediction. Encoding goes through
    a pandas hash table, which is ~10x faster than scikit-learn's per-value dictionary lookups on object
    arrays (100k-row batches); the one-hot and tree steps after it then work on numbers.

    Args:
        min_frequency: the fewest training rows a level needs to get its own code.
    """

    def __init__(self, min_frequency: int = 10) -> None:
        self.min_frequency = min_frequency

    def fit(self, X: Any, y: Any = None) -> CategoryCodes:
        frame = pd.DataFrame(X)
        self.feature_names_in_ = np.asarray([str(c) for c in frame.columns], dtype=object)
        self.n_features_in_ = frame.shape[1]
        self.levels_ = []
        for col in frame.columns:
            counts = frame[col].dropna().astype(str).value_counts()
            self.levels_.append(sorted(str(v) for v in counts.index[counts >= self.min_frequency]))
        return self

    def transform(self, X: Any) -> np.ndarray:
        frame = pd.DataFrame(X)
        out = np.empty((len(frame), len(self.levels_)), dtype=float)
        for j, (col, levels) in enumerate(zip(frame.columns, self.levels_, strict=True)):
            values = frame[col]
            if isinstance(values.dtype, pd.CategoricalDtype):
                # Map the column's few categories onto the learned levels, then index by the row codes.
                position = {level: i for i, level in enumerate(levels)}
                lookup = [position.get(str(c), -1) for c in values.cat.categories]
                codes = np.asarray([*lookup, -1])[values.cat.codes.to_numpy()]
            else:
                text = values.astype(object).where(values.notna(), None).map(
                    lambda v: v if v is None else str(v).strip())
                codes = pd.Index(levels, dtype=object).get_indexer(text.to_numpy())
            out[:, j] = np.where(codes < 0, np.nan, codes)
        return out

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        return self.feature_names_in_.copy()


# ---------------------------------------------------------------------------------------- calibration
class ScoreCalibrator(BaseEstimator):
    """Maps a score in [0, 1] to a probability: Platt scaling on the logit, isotonic, or identity.

    Args:
        method: ``sigmoid`` (two parameters, smooth; the default for a few thousand rows), ``isotonic``
            (monotone step function, needs more rows) or ``none``.
    """

    def __init__(self, method: str = "sigmoid") -> None:
        self.method = method

    def fit(self, score: np.ndarray, y: np.ndarray) -> ScoreCalibrator:
        s = np.asarray(score, dtype=float)
        if self.method == "sigmoid":
            self.map_ = LogisticRegression(C=1e4, max_iter=1000).fit(_logit(s).reshape(-1, 1), y)
        elif self.method == "isotonic":
            self.map_ = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(s, y)
        else:
            self.map_ = None
        return self

    def transform(self, score: np.ndarray) -> np.ndarray:
        s = np.asarray(score, dtype=float)
        if self.map_ is None:
            return s
        if isinstance(self.map_, LogisticRegression):
            return self.map_.predict_proba(_logit(s).reshape(-1, 1))[:, 1]
        return np.asarray(self.map_.predict(s), dtype=float)


# ------------------------------------------------------------------------------------------- thresholds
def f1_curve(proba: np.ndarray, y: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """F1 of the positive class when predicting ``proba >= t`` for every ``t`` in ``grid``."""
    pred = proba[None, :] >= grid[:, None]
    tp = (pred & (y[None, :] == 1)).sum(axis=1)
    fp = (pred & (y[None, :] == 0)).sum(axis=1)
    fn = (y == 1).sum() - tp
    return np.where(tp > 0, 2 * tp / np.maximum(2 * tp + fp + fn, 1), 0.0)


def profit_per_customer(proba: np.ndarray, y: np.ndarray, threshold: float | np.ndarray, offer_cost: float,
                        churn_loss: float, offer_success: float) -> np.ndarray:
    """Expected profit per customer of offering retention to everyone with ``proba >= threshold``.

    A targeted churner is kept with probability ``offer_success`` (saving ``churn_loss``); every offer
    costs ``offer_cost``. Customers who are not targeted cost nothing extra (the baseline is "no campaign").
    """
    t = np.atleast_1d(np.asarray(threshold, dtype=float))
    targeted = proba[None, :] >= t[:, None]
    gain = np.where(y == 1, offer_success * churn_loss, 0.0) - offer_cost
    out = (targeted * gain[None, :]).sum(axis=1) / max(len(y), 1)
    return out if np.ndim(threshold) else out[0]


THRESHOLD_GRID = np.round(np.arange(0.01, 1.0, 0.005), 4)


def choose_threshold(proba: np.ndarray, y: np.ndarray, objective: str = "f1", offer_cost: float = 0.0,
                     churn_loss: float = 0.0, offer_success: float = 1.0, calibrated: bool = True) -> float:
    """The decision threshold for the objective, from (out-of-fold, calibrated) probabilities.

    ``profit``: the threshold with the highest expected profit per customer on these rows.

    ``f1``: for calibrated probabilities the F1-optimal threshold is half the best achievable F1 (Lipton,
    Elkan & Narayanaswamy 2014, "Optimal thresholding of classifiers to maximize F1"), so the rows are used
    to measure that best F1 and the threshold is half of it. The raw arg-max of a noisy F1 curve moves by
    +-0.05 between folds; half the maximum barely moves (Telco: 0.317-0.323 over five folds, and 0.635
    instead of 0.630 churner F1 out of fold). Uncalibrated scores fall back to the middle of the arg-max
    plateau.
    """
    proba, y = np.asarray(proba, dtype=float), np.asarray(y, dtype=int)
    if objective == "profit":
        values = profit_per_customer(proba, y, THRESHOLD_GRID, offer_cost, churn_loss, offer_success)
    else:
        values = f1_curve(proba, y, THRESHOLD_GRID)
        if calibrated and values.max() > 0:
            return float(values.max() / 2)
    best = np.flatnonzero(values >= values.max() - 1e-12)
    return float(THRESHOLD_GRID[best[len(best) // 2]])


# ----------------------------------------------------------------------------------------------- model
class ChurnClassifier(ClassifierMixin, BaseEstimator):
    """Logistic regression, boosted trees or their blend; calibrated; with a business decision threshold.

    Takes the prefixed columns of ``ChurnFeatures`` (``cont_``, ``num_``, ``cat_``). See the module
    docstring for the fitting procedure.

    Args:
        model: ``auto`` (the best of lr/gb/blend by inner cross-validated ROC-AUC), ``lr``, ``gb`` or ``blend``.
        C: inverse L2 strength of the logistic regression.
        spline_knots: knots of the cubic spline basis of each continuous column (quantile-placed).
        gb_iter, gb_learning_rate, gb_depth, gb_min_leaf: the boosted trees.
        blend_weight: the logistic regression's share of the blended score.
        class_weight: ``none`` (default: the imbalance is handled by calibrated probabilities and the tuned
            threshold, which on Telco scores slightly higher) or ``balanced`` (churners weighted up while
            learning; calibration then undoes the shift in probabilities).
        calibration: ``sigmoid``, ``isotonic`` or ``none``.
        objective: ``f1`` (churner F1) or ``profit`` (expected profit of a retention offer).
        offer_cost, churn_loss, offer_success: the profit objective's economics per customer.
        inner_folds: folds of the inner cross-validation (model choice, calibration and threshold).
        random_state: seed of the inner folds and the trees.
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
        num = [c for c in columns if c.startswith("num_")]
        cat = [c for c in columns if c.startswith("cat_")]
        encode = ColumnTransformer(
            [
                ("continuous", Pipeline([
                    ("impute", SimpleImputer(strategy="median")),
                    ("log", FunctionTransformer(signed_log1p, feature_names_out="one-to-one")),
                    ("spline", SplineTransformer(n_knots=self.spline_knots, degree=3, knots="quantile",
                                                 extrapolation="constant")),
                ]), cont),
                ("counts", Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())]), num),
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
        numeric = [c for c in columns if c.startswith(("cont_", "num_"))]
        cat = [c for c in columns if c.startswith("cat_")]
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

    def _combine(self, scores: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        out = dict(scores)
        if "lr" in scores and "gb" in scores:
            out["blend"] = self.blend_weight * scores["lr"] + (1 - self.blend_weight) * scores["gb"]
        return out

    def _check_params(self) -> None:
        for name, value, allowed in (("model", self.model, MODELS), ("objective", self.objective, OBJECTIVES),
                                     ("calibration", self.calibration, CALIBRATIONS),
                                     ("class_weight", self.class_weight, ("balanced", "none"))):
            if value not in allowed:
                raise ParameterError(f"churn: {name} must be one of {', '.join(allowed)}; got {value!r}.")
        if not 0.0 <= self.blend_weight <= 1.0:
            raise ParameterError(f"churn: blend_weight must be between 0 and 1; got {self.blend_weight}.")

    # -- fitting -------------------------------------------------------------------------------------
    def fit(self, X: pd.DataFrame, y: Any) -> ChurnClassifier:
        with threadpool_limits(limits=1 if len(X) < THREADED_FROM_ROWS else None):
            return self._fit(X, y)

    def _fit(self, X: pd.DataFrame, y: Any) -> ChurnClassifier:
        self._check_params()
        y_arr = np.asarray(y)
        self.classes_ = np.unique(y_arr)
        if len(self.classes_) != 2:
            raise DataError(f"churn needs churners and non-churners in the training rows; got classes {self.classes_}.")
        target = (y_arr == self.classes_[1]).astype(int)
        columns = list(X.columns)
        self.feature_names_in_ = np.asarray(columns, dtype=object)
        builders = {"lr": self._lr, "gb": self._gb}
        members = self._members()

        folds = min(self.inner_folds, int(np.bincount(target).min()))
        if folds < 2:
            raise DataError("churn needs at least two churners and two non-churners to fit.")
        oof = {m: np.zeros(len(target)) for m in members}
        splitter = StratifiedKFold(folds, shuffle=True, random_state=self.random_state)
        for tr, va in splitter.split(np.zeros(len(target)), target):
            for m in members:
                est = builders[m](columns).fit(X.iloc[tr], target[tr])
                oof[m][va] = est.predict_proba(X.iloc[va])[:, 1]
        candidates = self._combine(oof)
        self.inner_auc_ = {name: float(roc_auc_score(target, s)) for name, s in candidates.items()}
        self.selected_ = max(self.inner_auc_, key=self.inner_auc_.get) if self.model == "auto" else self.model
        self.calibrators_ = {name: ScoreCalibrator(self.calibration).fit(s, target) for name, s in candidates.items()}
        self.thresholds_ = {
            name: choose_threshold(self.calibrators_[name].transform(s), target, self.objective, self.offer_cost,
                                   self.churn_loss, self.offer_success, calibrated=self.calibration != "none")
            for name, s in candidates.items()
        }
        self.threshold_ = self.thresholds_[self.selected_]
        self.members_ = {m: builders[m](columns).fit(X, target) for m in members}
        return self

    # -- prediction ----------------------------------------------------------------------------------
    def candidate_proba(self, X: pd.DataFrame, name: str | None = None) -> np.ndarray:
        """Calibrated churn probability of one candidate (``lr``, ``gb``, ``blend``; default the selected)."""
        name = name or self.selected_
        with threadpool_limits(limits=1 if len(X) < THREADED_FROM_ROWS else None):
            raw = {m: est.predict_proba(X)[:, 1] for m, est in self.members_.items()
                   if name == m or name == "blend"}
        return self.calibrators_[name].transform(self._combine(raw)[name])

    def candidate_predict(self, X: pd.DataFrame, name: str | None = None) -> np.ndarray:
        """Decisions of one candidate at its own threshold (default the selected one)."""
        name = name or self.selected_
        hit = self.candidate_proba(X, name) >= self.thresholds_[name]
        return np.where(hit, self.classes_[1], self.classes_[0])

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        p = self.candidate_proba(X)
        return np.column_stack([1 - p, p])

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """The business decision: churner when the calibrated probability reaches ``threshold_``."""
        return self.candidate_predict(X)


# ---------------------------------------------------------------------------------------------- builders
def build_pipeline(model: Literal["auto", "lr", "gb", "blend"] = "auto", C: float = 0.03, spline_knots: int = 7, gb_iter: int = 80,
                   gb_learning_rate: float = 0.1, gb_depth: int = 2, gb_min_leaf: int = 50,
                   blend_weight: float = 0.6, class_weight: Literal["none", "balanced"] = "none",
                   calibration: Literal["sigmoid", "isotonic", "none"] = "sigmoid",
                   objective: Literal["f1", "profit"] = "f1", offer_cost: float = 50.0, churn_loss: float = 500.0,
                   offer_success: float = 0.5, inner_folds: int = 5) -> Pipeline:
    """An unfitted pipeline from raw customer columns (Telco or Kaggle schema) to churn decisions.

    Args: see ``ChurnClassifier``.
    """
    return Pipeline([
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


def clone_pipeline(est: Any) -> Any:
    """A fresh unfitted copy (module-level so callers need no lambda)."""
    return clone(est)
