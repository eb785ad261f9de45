"""``mlprojects tune``: declared search spaces, the honest tuning rows, workers sharing one study, MLflow records.

The multi-process tests use the stocks project's generated bars (ridge and boosted trees fit in well under a
second) with a budget of a few trials; the PostgreSQL test runs the same study on the team stack.
"""

from __future__ import annotations

import math
import time
from dataclasses import replace
from typing import Annotated, Any, Literal

import mlflow
import numpy as np
import optuna
import pytest
from annotated_types import Ge, Gt

from common import cli, registry, splits, tune
from common.errors import ParameterError, ProjectDefinitionError
from common.params import ParamSpace, Search, violation
from common.protocol import Context, default_parts

PROJECTS = registry.names()
FAST = {"inner_folds": 3}  # stocks: fewer inner walk-forward folds


# --------------------------------------------------------------------------------------------- spaces
@pytest.mark.parametrize("name", PROJECTS)
def test_every_project_declares_a_search_space_within_its_ranges(name: str) -> None:
    space = registry.get(name).params
    assert space.search, f"projects/{name}: declare Search(...) markers on the parameters that matter"
    for key, s in space.search.items():
        assert key in space.pipeline or key in space.data
        tried = (s.low, s.high) if s.numeric else s.choices
        for value in tried:
            assert violation(value, space.bounds.get(key)) is None, (key, value)
            if key in space.choices:
                assert value in space.choices[key]


def test_search_markers_are_checked_against_the_declaration() -> None:
    def outside(alpha: Annotated[float, Gt(0), Search(0.0, 1.0)] = 0.5) -> None: ...

    def bare(alpha: Annotated[float, Gt(0), Search()] = 0.5) -> None: ...

    def log_zero(n: Annotated[int, Ge(0), Search(0, 5, log=True)] = 1) -> None: ...

    def foreign(kind: Annotated[Literal["a", "b"], Search(choices=("a", "c"))] = "a") -> None: ...

    for build, message in ((outside, "the end 0.0 must be > 0"), (bare, "no range and no choices"),
                           (log_zero, "log scale"), (foreign, "'c' is not one of")):
        with pytest.raises(ProjectDefinitionError, match=message):
            ParamSpace.from_functions(build)

    def good(kind: Annotated[Literal["a", "b"], Search()] = "a", flag: Annotated[bool, Search()] = True,
             c: Annotated[float, Gt(0), Search(1e-3, 10, log=True)] = 1.0) -> None: ...

    space = ParamSpace.from_functions(good).search
    assert space["kind"].choices == ("a", "b") and space["flag"].choices == (True, False)
    assert space["c"].log and space["c"].text() == "0.001..10 (log)"


def test_the_space_leaves_out_fixed_parameters_and_other_models_groups() -> None:
    mnist = registry.get("mnist")
    assert set(tune.search_space(mnist, {})) == {"classical.n_components", "classical.C", "classical.shifts"}
    assert set(tune.search_space(mnist, {"model": "xgboost"})) == {"xgboost.learning_rate", "xgboost.max_depth"}
    assert "C" not in tune.search_space(registry.get("churn"), {"C": "0.1"})
    with pytest.raises(ParameterError, match="Unknown parameter 'bogus'"):
        tune.search_space(mnist, {"bogus": "1"})


# ---------------------------------------------------------------------------------------- honest rows
@pytest.mark.parametrize("name", ["house_prices", "churn", "stocks", "sentiment"])
def test_tuning_reads_only_the_training_part_with_other_folds(name: str) -> None:
    project = registry.get(name)
    ds = project.generate()
    params, data_params = project.resolve_params({})
    parts = default_parts(Context(project, params, data_params, ds, None, fit_final=False))  # type: ignore[arg-type]
    data = tune.tune_data(project, ds, data_params)
    if project.spec.split.kind == "given":  # the given test file is a separate frame: never passed in
        assert len(data.rows) == splits.n_rows(ds.X)
    else:
        assert len(data.rows) == splits.n_rows(parts.X_train)
        assert not set(data.rows) & set(parts.X_test.index), "a test-part row reached the tuning folds"
    split = project.spec.split
    inner = tune.tuning_split(split)
    assert (inner.seed, inner.cv_folds) != (split.seed, split.cv_folds)


def test_recommender_tunes_on_validation_periods_before_the_test_periods() -> None:
    from projects.recommender import protocol
    from projects.recommender.evaluate import LIKE_THRESHOLD, MIN_HISTORY, MIN_LIKED, TEST_FRACTION

    project = registry.get("recommender")
    ds = project.generate()
    ratings = ds.extras["ratings"]
    catalogue_pos = {int(i): p for p, i in enumerate(ds.X["id"])}
    # Neither protocol's test data: nothing from the global cutoff T on, no per-user test period.
    primary = protocol.time_splits(ratings, catalogue_pos, LIKE_THRESHOLD, MIN_HISTORY, TEST_FRACTION)
    secondary = protocol.per_user_protocol(ratings, catalogue_pos, LIKE_THRESHOLD, MIN_LIKED, TEST_FRACTION)
    allowed = set(primary.train.index) & set(secondary.train.index)
    data = tune.tune_data(project, ds)
    assert len(data.rows) and set(data.rows) <= allowed, "a test-period rating reached the tuning fit"
    assert ratings.loc[list(data.rows), "timestamp"].max() < primary.cutoff
    assert len(data.rows) < len(allowed)  # the validation periods are held out of the fit as well
    seen: list[float] = []
    data.score(project.resolve_params({"tune_step": 0.25})[0], lambda i, v: seen.append(v))
    assert len(seen) == data.n_folds and all(0 <= v <= 1 for v in seen)


def test_stocks_mase_objective_reports_every_fold() -> None:
    project = registry.get("stocks")
    data = tune.tune_data(project, project.generate())
    seen: list[tuple[int, float]] = []
    value = data.score(project.resolve_params(FAST)[0], lambda i, v: seen.append((i, v)))
    assert [i for i, _ in seen] == list(range(data.n_folds))
    assert math.isclose(value, float(np.mean([v for _, v in seen])))


def test_passwords_never_appear_in_urls_or_errors() -> None:
    url = "postgresql+psycopg://mlflow:s3cret-pw@127.0.0.1:1/mlflow"
    assert "s3cret-pw" not in tune.safe_url(url) and "***" in tune.safe_url(url)
    config = tune.TuneConfig("stocks", storage=url)
    assert "s3cret-pw" not in repr(config)
    with pytest.raises(tune.TuneError) as err:
        tune.open_storage(url)
    assert "s3cret-pw" not in str(err.value)


@pytest.mark.filterwarnings("ignore:Heartbeat of storage", "ignore::optuna.exceptions.ExperimentalWarning")
def test_a_dead_workers_trial_is_marked_failed_and_retried(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tune, "HEARTBEAT_S", 1)
    monkeypatch.setattr(tune, "GRACE_S", 1)
    storage = tune.open_storage(f"sqlite:///{tmp_path / 'optuna.db'}")
    study = optuna.create_study(storage=storage, study_name="dead")
    trial = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    storage.record_heartbeat(trial._trial_id)  # what a running worker's heartbeat thread writes
    time.sleep(2.5)  # the worker died: no heartbeat for longer than the grace period
    optuna.storages.fail_stale_trials(study)  # what the next worker does before each trial
    states = [t.state.name for t in study.trials]
    assert states[0] == "FAIL" and "WAITING" in states[1:], states  # retried once with the same parameters
    assert study.trials[1].params == study.trials[0].params


# --------------------------------------------------------------------------------------- a real study
def _children(parent_run_id: str) -> list[Any]:
    return mlflow.search_runs(search_all_experiments=True, output_format="list",
                              filter_string=f"tags.mlflow.parentRunId = '{parent_run_id}'")


def _check_shared_study(result: tune.TuneResult, storage: str, trials: int) -> None:
    study = optuna.load_study(study_name=result.study, storage=storage)
    done = [t for t in study.trials if t.state.is_finished()]
    assert len(done) >= trials  # MaxTrialsCallback: at most workers - 1 more, started before the study filled
    workers = {t.user_attrs.get("worker") for t in done}
    assert len(workers - {None}) == 2, f"both workers must have run trials: {workers}"
    numbers = {w: sorted(t.number for t in done if t.user_attrs.get("worker") == w) for w in workers}
    assert all(numbers.values()), "each worker finished trials of the one shared study"
    children = _children(result.parent_run_id)
    assert len(children) >= len(done)
    states = {c.data.tags.get("trial_state") for c in children}
    assert states <= {"complete", "pruned", "failed"} and "complete" in states
    complete = [c for c in children if c.data.tags.get("trial_state") == "complete"]
    assert all("duration_s" in c.data.metrics and "inner_score" in c.data.metrics for c in complete)
    parent = mlflow.get_run(result.parent_run_id)
    assert parent.data.params["study"] == result.study and parent.data.params["workers"] == "2"
    assert "password" not in parent.data.params["storage"]
    assert any(k.startswith("best.") for k in parent.data.params)


def test_two_workers_share_one_study_and_log_every_trial(tmp_path: Any) -> None:
    ds = registry.get("stocks").generate()
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    config = tune.TuneConfig("stocks", trials=6, timeout=120, workers=2, storage=storage, fixed=FAST,
                             dataset=ds, train=False)
    result = tune.tune(config, progress=False)
    assert result.study == "stocks-inner_folds=3" and result.best_params
    _check_shared_study(result, storage, 6)

    # A re-run resumes the full study (no new trials); another search under the same name is refused.
    again = tune.tune(config, progress=False)
    assert sum(again.counts.values()) == sum(result.counts.values())
    with pytest.raises(tune.TuneError, match="made for another search"):
        tune.tune(tune.TuneConfig("stocks", trials=6, workers=1, storage=storage, study=result.study,
                                  fixed={"inner_folds": 4}, dataset=ds), progress=False)


def test_the_best_parameters_are_trained_under_the_unchanged_protocol(tmp_path: Any) -> None:
    ds = registry.get("stocks").generate()
    result = tune.tune(tune.TuneConfig("stocks", trials=3, timeout=120, workers=1, fixed=FAST, dataset=ds),
                       progress=False)
    assert result.protocol_score is not None and result.train_run_id
    run = mlflow.get_run(result.train_run_id)
    assert run.data.tags["tuned_by_study"] == result.study and run.data.tags["mode"] == "train"
    assert run.data.metrics["primary_metric"] == pytest.approx(result.protocol_score)
    for key, value in result.best_params.items():
        assert run.data.params[key] == str(value)
    parent = mlflow.get_run(result.parent_run_id)
    assert parent.data.metrics["best_inner_score"] == pytest.approx(result.inner_score)
    assert "protocol_mase" in parent.data.metrics
    plots = {a.path for a in mlflow.MlflowClient().list_artifacts(result.parent_run_id, "tuning")}
    assert "tuning/optimization_history.png" in plots
    assert result.promoted is True  # the first model of a fresh store is champion


def test_a_new_study_scores_the_defaults_first(tmp_path: Any) -> None:
    """The first trial of a new study is the project's defaults, so its best is read beside them."""
    project = registry.get("stocks")
    space = tune.search_space(project, FAST)
    defaults = tune.default_trial(project, space, FAST)
    pipeline, _ = project.resolve_params(FAST)
    assert defaults and defaults == {k: pipeline[k] for k in space}
    ds = project.generate()
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    result = tune.tune(tune.TuneConfig("stocks", trials=2, timeout=120, workers=1, storage=storage, fixed=FAST,
                                       dataset=ds, train=False), progress=False)
    first = optuna.load_study(study_name=result.study, storage=storage).trials[0]
    assert first.params == defaults and first.user_attrs[tune.DEFAULTS_ATTR] is True
    assert result.default_inner_score == pytest.approx(first.value)
    assert mlflow.get_run(result.parent_run_id).data.metrics["defaults_inner_score"] == pytest.approx(first.value)
    # A default outside its declared search range is not enqueued (the trial would not be the defaults).
    key = next(k for k, s in space.items() if s.numeric)
    above = pipeline[key] + 1
    outside = {**space, key: replace(space[key], low=above, high=above + 1)}
    assert tune.default_trial(project, outside, FAST) == {}


def test_without_a_defaults_trial_the_best_is_still_logged(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tune, "default_trial", lambda *a: {})
    result = tune.tune(tune.TuneConfig("stocks", trials=2, timeout=120, workers=1,
                                       storage=f"sqlite:///{tmp_path / 'optuna.db'}", fixed=FAST,
                                       dataset=registry.get("stocks").generate(), train=False), progress=False)
    assert result.default_inner_score is None and result.best_params
    parent = mlflow.get_run(result.parent_run_id).data
    assert "defaults_inner_score" not in parent.metrics and "best_inner_score" in parent.metrics
    assert {f"best.{k}" for k in result.best_params} <= set(parent.params)


def test_cli_tune_rejects_bad_arguments_without_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["tune", "stocks", "--param", "bogus=1", "--trials", "1"]) == 2
    assert "Unknown parameter 'bogus'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["tune", "stocks", "--workers", "0"])
    assert "--workers" in capsys.readouterr().err


# ----------------------------------------------------------------------------------- the team's PostgreSQL
@pytest.mark.server
@pytest.mark.xdist_group("server")
def test_two_workers_on_the_team_servers_postgresql(mlflow_server_stack: Any, monkeypatch: pytest.MonkeyPatch
                                                    ) -> None:
    storage = tune.team_storage_url(mlflow_server_stack.state_dir)
    assert storage.startswith("postgresql+psycopg://") and "search_path" in storage
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server_stack.uri)  # the runs go to the team server too
    config = tune.TuneConfig("stocks", trials=4, timeout=180, workers=2, storage=storage, study="stocks-pg",
                             fixed=FAST, dataset=registry.get("stocks").generate(), train=False)
    result = tune.tune(config, progress=False)
    assert "***" in result.storage
    _check_shared_study(result, storage, 4)
