"""The declarative part of a project: what it predicts, how it is split and scored.

Parameters are not declared here: their one source is the ``build_pipeline``/``load`` signatures
(see ``common.params``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Task = Literal["regression", "binary", "multiclass", "forecast", "recommendation"]
SplitKind = Literal["random", "stratified", "time", "given", "per_user_time"]
InputKind = Literal["frame", "text", "array", "titles"]


@dataclass(frozen=True)
class SplitSpec:
    """How a project's rows are divided for honest evaluation.

    Attributes:
        kind: ``random``/``stratified`` hold out ``test_size`` of the rows; ``time`` holds out the last
            ``test_size`` in time order; ``given`` uses the dataset's own labelled test file;
            ``per_user_time`` is left to the project's own ``evaluate`` (ratings).
        test_size: fraction held out when the split is not given.
        cv_folds: folds of cross-validation (0 turns CV off).
        cv_on: ``all`` cross-validates over every labelled row (every row scored out of fold),
            ``train`` only over the training part, ``none`` skips CV.
        refit_on: which rows the logged model is fitted on: ``train`` (the model that was scored on the
            test part) or ``all`` (train + test, for the model that predicts truly unseen data).
        gap: rows left out between train and validation in time-ordered splits (and between the training
            part and the test part).
        seed: random seed of every split.
        history: time-ordered data whose features look back: every prediction is made with all earlier
            rows in front of it (validation folds and the test part alike), and the logged input example
            is the last ``history`` rows, enough for one complete forecast. 0 = rows stand alone.
    """

    kind: SplitKind = "random"
    test_size: float = 0.2
    cv_folds: int = 5
    cv_on: Literal["all", "train", "none"] = "train"
    refit_on: Literal["all", "train"] = "train"
    gap: int = 0
    seed: int = 42
    history: int = 0

    def fingerprint(self) -> str:
        """A short stable hash, so runs are only compared under the same protocol."""
        fields = asdict(self)
        # ``history`` names how stocks always predicted; leaving it out keeps every existing
        # champion comparable with new runs.
        fields.pop("history")
        return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:12]


@dataclass(frozen=True)
class ProjectSpec:
    """Everything the generic train/evaluate/predict path needs to know about a project.

    Attributes:
        name: python-style identifier, also the folder, the MLflow experiment and registered model name.
        title: one line shown by ``mlprojects list``.
        task: the kind of problem; selects default metrics, baselines and plots.
        primary_metric: the metric name that decides the champion (for example ``cv_rmsle``).
        greater_is_better: direction of ``primary_metric``.
        split: the evaluation protocol.
        variants: the parameter sets ``make <project>`` trains (one run each).
        seed_scores: the score the seed tutorial's method reaches, for the report.
        input_kind: what the trained pipeline takes: a raw DataFrame, texts, an array or titles.
        target: the name of the predicted column, for prediction output.
        pos_label: the positive class of a binary task.
    """

    name: str
    title: str
    task: Task
    primary_metric: str
    greater_is_better: bool
    split: SplitSpec = field(default_factory=SplitSpec)
    variants: tuple[Mapping[str, Any], ...] = ({},)
    seed_scores: Mapping[str, float] = field(default_factory=dict)
    input_kind: InputKind = "frame"
    target: str = "prediction"
    pos_label: Any = 1

    @property
    def make_target(self) -> str:
        """The Makefile target that trains this project."""
        return self.name.replace("_", "-")

    def better(self, new: float, old: float) -> bool:
        """True when ``new`` beats ``old`` on the primary metric."""
        return new > old if self.greater_is_better else new < old
