"""The declarative part of a project: what it predicts, how it is split and scored, and its parameters."""

from __future__ import annotations

import ast
import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from common.errors import ParameterError

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
        gap: rows left out between train and validation in time-ordered splits.
        seed: random seed of every split.
    """

    kind: SplitKind = "random"
    test_size: float = 0.2
    cv_folds: int = 5
    cv_on: Literal["all", "train", "none"] = "train"
    refit_on: Literal["all", "train"] = "train"
    gap: int = 0
    seed: int = 42

    def fingerprint(self) -> str:
        """A short stable hash, so runs are only compared under the same protocol."""
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:12]


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
        params: ``build_pipeline`` keyword arguments and their defaults (types come from the defaults).
        data_params: ``load`` keyword arguments and their defaults.
        choices: allowed values of string parameters.
        variants: the parameter sets ``make <project>`` trains (one run each).
        seed_scores: the score the seed tutorial's method reaches, for the report.
        input_kind: what the trained pipeline takes: a raw DataFrame, texts, an array or titles.
        target: the name of the predicted column, for prediction output.
        pos_label: the positive class of a binary task.
        extra: the pip extra a project needs beyond the core install, if any.
    """

    name: str
    title: str
    task: Task
    primary_metric: str
    greater_is_better: bool
    split: SplitSpec = field(default_factory=SplitSpec)
    params: Mapping[str, Any] = field(default_factory=dict)
    data_params: Mapping[str, Any] = field(default_factory=dict)
    choices: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)
    variants: tuple[Mapping[str, Any], ...] = ({},)
    seed_scores: Mapping[str, float] = field(default_factory=dict)
    input_kind: InputKind = "frame"
    target: str = "prediction"
    pos_label: Any = 1
    extra: str | None = None

    @property
    def make_target(self) -> str:
        """The Makefile target that trains this project."""
        return self.name.replace("_", "-")

    def better(self, new: float, old: float) -> bool:
        """True when ``new`` beats ``old`` on the primary metric."""
        return new > old if self.greater_is_better else new < old

    def resolve_params(self, overrides: Mapping[str, Any] | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
        """Split and type-check user overrides into (pipeline params, data params).

        Strings (as they come from ``--param key=value``) are converted to the type of the default.

        Raises:
            ParameterError: for an unknown key, a value of the wrong type, or a value not in ``choices``.
        """
        pipeline = dict(self.params)
        data = dict(self.data_params)
        for key, raw in (overrides or {}).items():
            if key in pipeline:
                target = pipeline
            elif key in data:
                target = data
            else:
                known = ", ".join(sorted([*pipeline, *data])) or "(none)"
                raise ParameterError(
                    f"Unknown parameter '{key}' for project '{self.name}'. Known parameters: {known}."
                )
            value = coerce(raw, target[key], key)
            allowed = self.choices.get(key)
            if allowed is not None and value not in allowed:
                raise ParameterError(
                    f"Parameter '{key}' of project '{self.name}' must be one of "
                    f"{', '.join(map(str, allowed))}; got {value!r}."
                )
            target[key] = value
        return pipeline, data


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def coerce(raw: Any, default: Any, key: str = "value") -> Any:
    """Convert ``raw`` to the type of ``default`` (strings from the command line, or Python values).

    Raises:
        ParameterError: when the conversion is impossible.
    """
    if not isinstance(raw, str):
        if default is None or isinstance(raw, type(default)) or (
            isinstance(default, float) and isinstance(raw, int) and not isinstance(raw, bool)
        ):
            return float(raw) if isinstance(default, float) else raw
        raise ParameterError(f"Parameter '{key}' expects {type(default).__name__}; got {raw!r}.")
    text = raw.strip()
    try:
        if isinstance(default, bool):
            low = text.lower()
            if low in _TRUE:
                return True
            if low in _FALSE:
                return False
            raise ValueError(text)
        if isinstance(default, int):
            return int(text)
        if isinstance(default, float):
            return float(text)
        if isinstance(default, tuple | list):
            items = [s.strip() for s in text.split(",") if s.strip()]
            kind = type(default[0]) if default else str
            return type(default)(coerce(item, kind(), key) if kind is not str else item for item in items)
        if default is None:
            if text.lower() in {"none", "null", ""}:
                return None
            try:
                return ast.literal_eval(text)
            except (ValueError, SyntaxError):
                return text
    except ValueError:
        raise ParameterError(
            f"Parameter '{key}' expects {type(default).__name__} (default {default!r}); got {raw!r}."
        ) from None
    return text
