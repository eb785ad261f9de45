"""Parameter ranges: declared once in the signatures (annotated-types), checked before any data is read.

Every numeric parameter of every project must declare a range, and an out-of-range or non-finite value
must fail with the allowed range in the message: from ``ParamSpace.resolve``, from ``train.run`` before the
loader or MLflow is touched, and from the command line as one message without a traceback.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, Any

import mlflow
import pytest
from annotated_types import Ge, Gt, Interval, Le, MultipleOf

from common import cli, registry, tracking, train
from common.errors import ParameterError, ProjectDefinitionError
from common.params import ParamSpace
from tests.settings import TEST_PARAMS

PROJECTS = registry.names()

# (project, overrides, what the message must say): one bad value per kind of rule.
BAD = [
    ("house_prices", {"linear_alpha": "-1"}, "'linear_alpha' of project 'house_prices' must be > 0; got -1.0"),
    ("house_prices", {"svr_c": "nan"}, "'svr_c' of project 'house_prices' must be a finite number > 0; got nan"),
    ("house_prices", {"clip_quantile": 0.5}, "must be >= 0 and < 0.5; got 0.5"),
    ("spam", {"inner_cv": "1"}, "'inner_cv' of project 'spam' must be >= 2; got 1"),
    ("stocks", {"inner_folds": 1}, "'inner_folds' of project 'stocks' must be >= 2; got 1"),
    ("stocks", {"alphas": "10,-1"}, "'alphas' of project 'stocks' must have every item > 0; got -1.0"),
    ("churn", {"inner_folds": "1"}, "'inner_folds' of project 'churn' must be >= 2; got 1"),
    ("churn", {"gb_learning_rate": "0"}, "must be > 0 and <= 1; got 0.0"),
    ("mnist", {"xgboost.max_depth": "0"}, "'xgboost.max_depth' of project 'mnist' must be >= 1; got 0"),
    ("mnist", {"classical.C": "inf"}, "'classical.C' of project 'mnist' must be a finite number > 0; got inf"),
    ("mnist", {"seed": "-1"}, "'seed' of project 'mnist' must be >= 0 and < 4294967296; got -1"),
    ("recommender", {"tune_step": "0"}, "'tune_step' of project 'recommender' must be > 0 and <= 1; got 0.0"),
    ("recommender", {"cf_weight": "-0.5"}, "must be >= 0; got -0.5"),
    ("sentiment", {"char_ngrams": "2"}, "'char_ngrams' of project 'sentiment' must be >= 3; got 2"),
]


def _numeric(value: Any) -> bool:
    def number(v: Any) -> bool:
        return isinstance(v, int | float) and not isinstance(v, bool)

    return number(value) or (isinstance(value, tuple | list) and bool(value) and all(map(number, value)))


# ------------------------------------------------------------------------------------ every parameter
@pytest.mark.parametrize("name", PROJECTS)
def test_every_numeric_parameter_declares_a_range(name: str) -> None:
    """A new numeric parameter without ``Annotated[..., Gt/Ge/Lt/Le/Interval]`` (or ``Literal``) fails here."""
    params = registry.get(name).params
    missing = [key for key, default in {**params.pipeline, **params.data}.items()
               if _numeric(default) and key not in params.bounds and key not in params.choices]
    assert not missing, f"{name}: numeric parameters without a declared range: {missing}"
    for key in params.bounds:
        assert params.range_text(key), key


@pytest.mark.parametrize("name", PROJECTS)
def test_fast_test_settings_and_variants_are_in_range(name: str) -> None:
    project = registry.get(name)
    project.resolve_params(TEST_PARAMS.get(name, {}))
    for variant in project.spec.variants:
        project.resolve_params(variant)


@pytest.mark.parametrize(("name", "overrides", "message"), BAD)
def test_out_of_range_values_name_the_range(name: str, overrides: dict, message: str) -> None:
    with pytest.raises(ParameterError) as info:
        registry.get(name).resolve_params(overrides)
    assert message in str(info.value)


def test_infinity_only_where_the_range_allows_it() -> None:
    project = registry.get("house_prices")
    assert project.resolve_params({"outlier_threshold": "inf"})[0]["outlier_threshold"] == math.inf
    with pytest.raises(ParameterError, match="must be > 0 and <= inf; got -inf"):
        project.resolve_params({"outlier_threshold": "-inf"})
    with pytest.raises(ParameterError, match="finite number >= 0; got inf"):
        registry.get("stocks").resolve_params({"cost_bps": "inf"})


def test_boundaries_are_inclusive_or_exclusive_as_declared() -> None:
    project = registry.get("house_prices")
    assert project.resolve_params({"clip_quantile": "0"})[0]["clip_quantile"] == 0.0  # Ge(0): 0 allowed
    assert registry.get("spam").resolve_params({"inner_cv": "2"})[0]["inner_cv"] == 2
    assert registry.get("churn").resolve_params({"gb_learning_rate": "1"})[0]["gb_learning_rate"] == 1.0


# ---------------------------------------------------------------------------------- the mechanism
@dataclass(frozen=True)
class _Group:
    depth: Annotated[int, Ge(1)] = 3


def _build(alpha: Annotated[float, Gt(0)] = 1.0, share: Annotated[float, Interval(ge=0, le=1)] = 0.5,
           limit: Annotated[float, Gt(0), Le(math.inf)] = 2.0, rates: tuple[Annotated[float, Gt(0)], ...] = (1.0,),
           cap: Annotated[int, Ge(1)] | None = None, free: float = 1.0, group: _Group = _Group()) -> None:
    return None


SPACE = ParamSpace.from_functions(_build)


def test_ranges_are_read_from_annotations_groups_optionals_and_tuple_items() -> None:
    assert {k: SPACE.range_text(k) for k in SPACE.bounds} == {
        "alpha": "> 0", "share": ">= 0 and <= 1", "limit": "> 0 and <= inf", "rates": "each > 0",
        "cap": ">= 1", "group.depth": ">= 1",
    }
    assert SPACE.range_text("free") is None
    pipe, _ = SPACE.resolve({"cap": "none", "limit": "inf", "rates": "0.5,2"})
    assert pipe["cap"] is None and pipe["limit"] == math.inf and pipe["rates"] == (0.5, 2.0)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"alpha": 0}, "'alpha' of project 'demo' must be > 0; got 0.0"),
        ({"share": "1.5"}, "must be >= 0 and <= 1; got 1.5"),
        ({"cap": "0"}, "'cap' of project 'demo' must be >= 1; got 0"),
        ({"rates": (1.0, float("nan"))}, "must have every item a finite number > 0; got nan"),
        ({"group.depth": "0"}, "'group.depth' of project 'demo' must be >= 1; got 0"),
        ({"free": "nan"}, "'free' of project 'demo' must be a finite number; got nan"),  # no range: finite only
    ],
)
def test_resolve_rejects_out_of_range_and_non_finite(overrides: dict, message: str) -> None:
    with pytest.raises(ParameterError) as info:
        SPACE.resolve(overrides, "demo")
    assert message in str(info.value)


def test_a_default_outside_its_own_range_is_a_definition_error() -> None:
    def build(alpha: Annotated[float, Gt(0)] = -1.0) -> None:
        return None

    with pytest.raises(ProjectDefinitionError, match=r"build: the default of 'alpha' must be > 0; got -1.0"):
        ParamSpace.from_functions(build)


def test_an_unsupported_constraint_is_a_definition_error() -> None:
    def build(step: Annotated[int, MultipleOf(2)] = 2) -> None:
        return None

    with pytest.raises(ProjectDefinitionError, match="MultipleOf.*not supported"):
        ParamSpace.from_functions(build)


# ------------------------------------------------------------------ before data, before MLflow
@pytest.fixture
def no_loading(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to read data fails the test: validation must happen first."""
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("data was loaded before the parameters were checked")

    # train.run reads every dataset through load_dataset (the project's loader is only called from there).
    monkeypatch.setattr(train, "load_dataset", refuse)
    # MLflow keeps the store an earlier test pointed it at: point it at this test's own (empty) store, so a
    # run created by mistake would be found by _no_runs.
    tracking.configure(create=True)


def _no_runs() -> None:
    tracking.configure(create=True)
    assert mlflow.search_runs(search_all_experiments=True).empty, "an MLflow run was created"


@pytest.mark.parametrize(("name", "overrides", "message"), [BAD[0], BAD[1], BAD[3], BAD[8]])
def test_run_rejects_before_loading_and_before_mlflow(no_loading: None, name: str, overrides: dict,
                                                      message: str) -> None:
    with pytest.raises(ParameterError) as info:
        train.run(name, overrides)
    assert message in str(info.value)
    _no_runs()


@pytest.mark.parametrize("sample", [0, -5])
def test_run_rejects_a_non_positive_sample(no_loading: None, sample: int) -> None:
    with pytest.raises(ParameterError, match=f"sample must be a whole number >= 1.*got {sample}"):
        train.run("house_prices", sample=sample)
    _no_runs()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "house_prices", "--param", "linear_alpha=-1"], "must be > 0; got -1.0"),
        (["evaluate", "house_prices", "-p", "svr_c=nan"], "must be a finite number > 0; got nan"),
        (["train", "spam", "--param", "inner_cv=1"], "'inner_cv' of project 'spam' must be >= 2; got 1"),
        (["train", "mnist", "--param", "xgboost.max_depth=0"], "must be >= 1; got 0"),
    ],
)
def test_cli_reports_the_range_without_traceback(capsys: pytest.CaptureFixture[str], no_loading: None,
                                                 argv: list[str], message: str) -> None:
    code = cli.main(argv)
    out = capsys.readouterr()
    text = out.out + out.err
    assert code == 2, text
    assert message in " ".join(text.split())  # the console may wrap long lines
    assert "Traceback" not in text and "unexpected error" not in text
    _no_runs()


@pytest.mark.parametrize("argv", [["train", "house_prices", "--sample", "-5"],
                                  ["evaluate", "spam", "--sample", "0"],
                                  ["train-all", "--sample", "many"]])
def test_cli_sample_must_be_a_positive_whole_number(capsys: pytest.CaptureFixture[str], no_loading: None,
                                                    argv: list[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    err = capsys.readouterr().err
    assert info.value.code == 2
    assert "argument --sample: must be a whole number >= 1" in err and "Traceback" not in err
    _no_runs()
