"""Unit tests of the shared layers: parameters, splits, metrics, registry, champion logic."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
import pytest

from common import evaluation, plots, registry, splits
from common.datasets import Dataset
from common.errors import ParameterError, ProjectNotFoundError
from common.params import ParamSpace, coerce
from common.spec import ProjectSpec, SplitSpec

SPEC = ProjectSpec(name="demo", title="demo", task="binary", primary_metric="f1", greater_is_better=True)


@dataclass(frozen=True)
class _Trees:
    depth: int = 3
    loss: Literal["log", "hinge"] = "log"


def _build(alpha: float = 1.0, n: int = 3, flag: bool = False, model: Literal["a", "b"] = "a", opt: Any = None,
           trees: _Trees = _Trees()) -> dict:
    return {"alpha": alpha, "n": n, "flag": flag, "model": model, "opt": opt, "trees": trees}


def _load(data_dir: Any = None, dataset: str = "x", sample: int | None = None) -> None:
    return None


PARAMS = ParamSpace.from_functions(_build, _load)


# ------------------------------------------------------------------------------------------ parameters
def test_params_come_from_the_signatures() -> None:
    assert PARAMS.pipeline == {"alpha": 1.0, "n": 3, "flag": False, "model": "a", "opt": None, "trees.depth": 3,
                               "trees.loss": "log"}
    assert PARAMS.data == {"dataset": "x"}  # data_dir and sample are filled by the generic path
    assert PARAMS.choices == {"model": ("a", "b"), "trees.loss": ("log", "hinge")}


def test_resolve_params_converts_and_routes() -> None:
    pipe, data = PARAMS.resolve({"alpha": "0.5", "n": "7", "flag": "yes", "model": "b", "dataset": "y",
                                 "opt": "3", "trees.depth": "5"})
    assert pipe == {"alpha": 0.5, "n": 7, "flag": True, "model": "b", "opt": 3, "trees.depth": 5, "trees.loss": "log"}
    assert data == {"dataset": "y"}
    built = _build(**PARAMS.build_kwargs(pipe))
    assert built["trees"] == _Trees(depth=5) and built["alpha"] == 0.5


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"nope": "1"}, "Unknown parameter 'nope'.*Known parameters: alpha, dataset, flag, model, n, opt, trees"),
        ({"trees.loss": "l2"}, "must be one of log, hinge"),
        ({"n": "many"}, "expects int"),
        ({"flag": "maybe"}, "expects bool"),
        ({"model": "c"}, "must be one of a, b"),
        ({"alpha": [1]}, "expects float"),
    ],
)
def test_resolve_params_errors(overrides: dict, message: str) -> None:
    with pytest.raises(ParameterError, match=message):
        PARAMS.resolve(overrides, "demo")


def test_coerce_python_values_and_tuples() -> None:
    assert coerce(2, 1.0) == 2.0 and isinstance(coerce(2, 1.0), float)
    assert coerce("1,2", (0,)) == (1, 2)
    assert coerce("none", None) is None and coerce("abc", None) == "abc"


def test_better_respects_direction() -> None:
    low = ProjectSpec("x", "x", "regression", "rmse", greater_is_better=False)
    assert low.better(0.1, 0.2) and not low.better(0.3, 0.2)
    assert SPEC.better(0.9, 0.8)


# ---------------------------------------------------------------------------------------------- splits
def _ds(n: int = 100) -> Dataset:
    X = pd.DataFrame({"t": np.arange(n)})
    y = pd.Series(np.r_[np.zeros(n - n // 5), np.ones(n // 5)].astype(int))
    return Dataset(X=X, y=y)


def test_time_split_keeps_order_and_cv_never_looks_ahead() -> None:
    split = SplitSpec(kind="time", test_size=0.2, cv_folds=4, gap=3)
    X_tr, X_te, _, _ = splits.train_test(_ds(), split)
    assert X_tr["t"].max() < X_te["t"].min() and len(X_te) == 20
    for tr, va in splits.cv_splitter(split).split(np.zeros(80)):
        assert tr.max() + 3 < va.min()


def test_stratified_split_keeps_class_balance() -> None:
    split = SplitSpec(kind="stratified", test_size=0.25)
    _, _, y_tr, y_te = splits.train_test(_ds(), split)
    assert y_tr.mean() == pytest.approx(0.2) and y_te.mean() == pytest.approx(0.2)


def test_given_split_requires_a_test_file() -> None:
    from common.errors import DataError

    with pytest.raises(DataError, match="labelled test file"):
        splits.train_test(_ds(), SplitSpec(kind="given"))


def test_subsample_time_takes_recent_contiguous_rows() -> None:
    ds = splits.subsample(_ds(), 10, SplitSpec(kind="time"))
    assert ds.X["t"].tolist() == list(range(90, 100))
    assert any(n.startswith("sample:") for n in ds.notes)


def test_subsample_changes_fingerprint() -> None:
    a = _ds()
    before = a.sha256
    splits.subsample(a, 50, SplitSpec(kind="stratified"))
    assert a.sha256 != before and a.rows == 50


def test_take_works_on_lists_arrays_frames() -> None:
    idx = np.array([2, 0])
    assert splits.take(["a", "b", "c"], idx) == ["c", "a"]
    assert splits.take(np.arange(3), idx).tolist() == [2, 0]
    assert splits.take(pd.Series([5, 6, 7]), idx).tolist() == [7, 5]


# --------------------------------------------------------------------------------------------- metrics
def test_regression_scores() -> None:
    s = evaluation.regression_scores([100, 200], [110, 180])
    assert s["rmse"] == pytest.approx(np.sqrt((100 + 400) / 2))
    assert s["mae"] == pytest.approx(15)
    assert s["rmsle"] == pytest.approx(np.sqrt(np.mean((np.log1p([110, 180]) - np.log1p([100, 200])) ** 2)))


def test_binary_scores_use_the_positive_label() -> None:
    y = np.array(["spam", "ham", "ham", "spam"])
    p = np.array(["spam", "ham", "spam", "ham"])
    s = evaluation.binary_scores(y, p, proba=[0.9, 0.1, 0.6, 0.4], pos_label="spam")
    assert s["precision"] == 0.5 and s["recall"] == 0.5 and s["accuracy"] == 0.5
    assert s["roc_auc"] == pytest.approx(0.75)


def test_multiclass_scores_have_per_class_names() -> None:
    s = evaluation.multiclass_scores(["a", "b", "c"], ["a", "b", "b"])
    assert {"accuracy", "f1_macro", "f1_a", "recall_c"} <= set(s)
    assert s["recall_c"] == 0


def test_plots_are_written(tmp_path) -> None:
    plots.regression([1, 2, 3], [1.1, 2.2, 2.9], tmp_path / "r.png", "r", log_scale=True)
    plots.confusion([0, 1, 1], [0, 1, 0], tmp_path / "c.png", "c")
    plots.roc_pr([0, 1, 1, 0], [0.1, 0.8, 0.6, 0.3], tmp_path / "p.png", "p")
    assert all((tmp_path / f).stat().st_size > 1000 for f in ("r.png", "c.png", "p.png"))


# -------------------------------------------------------------------------------------------- registry
def test_registry_finds_projects_and_suggests_names() -> None:
    assert "house_prices" in registry.names()
    assert registry.get("house-prices").spec.name == "house_prices"
    with pytest.raises(ProjectNotFoundError, match="Did you mean 'house_prices'"):
        registry.get("house_price")


def test_every_project_spec_is_consistent() -> None:
    for project in registry.all_projects():
        spec = project.spec
        project.resolve_params({})  # defaults pass their own validation
        for variant in spec.variants:
            project.resolve_params({k: str(v) for k, v in variant.items()})
        assert spec.make_target.replace("-", "_") == spec.name


def test_models_are_logged_with_cloudpickle_unless_skops_is_asked_for(monkeypatch: pytest.MonkeyPatch) -> None:
    from sklearn.linear_model import LinearRegression

    from common import tracking
    from common.errors import ParameterError

    model = LinearRegression().fit([[0.0], [1.0]], [0.0, 1.0])
    assert tracking.choose_serialization(model) == ("cloudpickle", None)
    monkeypatch.setenv(tracking.SERIALIZATION_ENV, "skops")
    fmt, trusted = tracking.choose_serialization(model)
    assert fmt == "skops" and trusted is not None
    monkeypatch.setenv(tracking.SERIALIZATION_ENV, "json")
    with pytest.raises(ParameterError, match="cloudpickle"):
        tracking.choose_serialization(model)
