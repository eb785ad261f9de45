"""Concurrent trainings against one store: experiments, runs, versions and @champion stay right.

Separate processes (as several team members or ``make`` jobs would be) train two projects at once against
the embedded sqlite store; ``run_scenario`` is reused by tests/test_server.py against the team server.
The champion repair rule is also tested deterministically, by replaying chosen interleavings.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from common import registry, tracking
from tests.settings import TEST_PARAMS

ROOT = Path(__file__).resolve().parents[1]

# One training in a fresh process: same generated data for one project (so versions are comparable),
# different parameters (so scores differ).
_WORKER = """
import importlib, json, sys
from common import train
name, n, overrides = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3])
ds = importlib.import_module(f"projects.{name}.synthetic").generate(n)
r = train.run(name, overrides, dataset=ds, run_name=sys.argv[4])
print("RESULT " + json.dumps({"version": r.version, "primary": r.primary, "run_id": r.run_id}))
"""

# house_prices (lower rmsle is better): four Lasso strengths give four different scores.
HOUSE_JOBS = [{"model": "linear", "linear_alpha": a} for a in (3e-4, 0.01, 0.1, 1.0)]
CHURN_JOBS = [{**TEST_PARAMS["churn"], "gb_iter": i} for i in (10, 20)]
SCENARIO = [("house_prices", 120, j) for j in HOUSE_JOBS] + [("churn", 200, j) for j in CHURN_JOBS]


def _env(uri: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    return {**env, **(extra or {})}


def run_scenario(uri: str, jobs: list[tuple[str, int, dict]] = SCENARIO, extra_env: dict[str, str] | None = None,
                 timeout: float = 420) -> list[dict]:
    """Start every job at once (one process each) and return their results, in job order."""
    procs = [
        subprocess.Popen([sys.executable, "-c", _WORKER, name, str(n), json.dumps(overrides), f"job{i}"],
                         cwd=ROOT, env=_env(uri, extra_env), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
        for i, (name, n, overrides) in enumerate(jobs)
    ]
    results = []
    for proc, (name, _, overrides) in zip(procs, jobs, strict=True):
        out, err = proc.communicate(timeout=timeout)
        assert proc.returncode == 0, f"{name} {overrides} failed:\n{err[-3000:]}"
        line = next(x for x in out.splitlines() if x.startswith("RESULT "))
        results.append({"project": name, **json.loads(line.removeprefix("RESULT "))})
    return results


def check_scenario(uri: str, results: list[dict], jobs: list[tuple[str, int, dict]] = SCENARIO) -> None:
    """Runs in their project's experiment and FINISHED, versions READY, one champion and it is the best."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    for name in sorted({j[0] for j in jobs}):
        spec = registry.get_spec(name)
        mine = [r for r in results if r["project"] == name]
        exp = client.get_experiment_by_name(name)
        assert exp is not None, f"no experiment {name}"
        runs = client.search_runs([exp.experiment_id])
        assert {r.info.run_id for r in runs} == {r["run_id"] for r in mine}, f"runs of {name} elsewhere"
        assert all(r.info.status == "FINISHED" for r in runs)
        versions = client.search_model_versions(f"name='{name}'")
        assert sorted(int(v.version) for v in versions) == list(range(1, len(mine) + 1))
        assert all(v.status == "READY" for v in versions)
        # An alias names exactly one version by construction; it must exist and be the best one.
        aliases = client.get_registered_model(name).aliases
        assert set(aliases) == {"champion"}, f"{name}: aliases {aliases}"
        holder = client.get_model_version_by_alias(name, "champion")
        scored = sorted(((float(f"{r['primary']:.6g}"), int(r["version"])) for r in mine), key=lambda t: t[1])
        best = scored[0]
        for score, version in scored[1:]:
            if spec.better(score, best[0]):
                best = (score, version)
        assert int(holder.version) == best[1], f"{name}: champion v{holder.version}, best {scored}"
    default_runs = client.search_runs(["0"]) if client.get_experiment("0") else []
    assert not default_runs, "runs landed in the Default experiment"


_LOAD = """
import sys
import numpy as np
from projects import load_pipeline
from projects.house_prices import synthetic
X = synthetic.generate(120).X.iloc[:20]
a = np.asarray(load_pipeline("house_prices").predict(X))
b = np.asarray(load_pipeline("house_prices", version=sys.argv[1]).predict(X))
print("SAME" if np.allclose(a, b) else "DIFFERENT")
"""


def check_fresh_load(uri: str, results: list[dict], extra_env: dict[str, str] | None = None) -> None:
    """A new process loads @champion via ``projects.load_pipeline`` and gets the best version's model."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    champion = client.get_model_version_by_alias("house_prices", "champion").version
    done = subprocess.run([sys.executable, "-c", _LOAD, str(champion)], cwd=ROOT, env=_env(uri, extra_env),
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0 and "SAME" in done.stdout, done.stderr[-3000:]


@pytest.mark.slow
def test_concurrent_trainings_on_embedded_sqlite(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'shared' / 'mlflow.db'}"  # a brand-new store: schema creation races too
    (tmp_path / "shared").mkdir()
    results = run_scenario(uri)
    check_scenario(uri, results)
    check_fresh_load(uri, results)


# --------------------------------------------------------------------------------- the rule, replayed
def _cand(version: int, score: float, data: str = "d", sampled: bool = False, forced: bool = False):
    return tracking._Candidate(version, score, "p", data, sampled, forced)


def test_champion_target_rule() -> None:
    spec = registry.get_spec("house_prices")  # rmsle: lower is better
    c = {1: _cand(1, 0.20), 2: _cand(2, 0.10), 3: _cand(3, 0.10), 4: _cand(4, 0.30)}
    for holder in c:
        assert tracking.champion_target(spec, holder, c) == 2  # best; a tie goes to the lower version
    # Another data group is not comparable: a champion in it stays.
    assert tracking.champion_target(spec, 5, {**c, 5: _cand(5, 0.9, data="other")}) == 5
    # A forced champion stays unless a later version beats it; earlier, better ones do not count.
    forced = {**c, 5: _cand(5, 0.5, forced=True)}
    assert tracking.champion_target(spec, 5, forced) == 5
    assert tracking.champion_target(spec, 5, {**forced, 6: _cand(6, 0.4)}) == 6
    assert tracking.champion_target(spec, 6, {**forced, 6: _cand(6, 0.4)}) == 6
    # A sample-trained champion gives way to the newest full-data version's group.
    sampled = {1: _cand(1, 0.05, data="s", sampled=True), 2: _cand(2, 0.3), 3: _cand(3, 0.2)}
    assert tracking.champion_target(spec, 1, sampled) == 3
    assert tracking.champion_target(spec, None, c) is None
    assert tracking.champion_target(spec, 9, c) == 9  # its tags are not written yet: leave it


def _registered(n: int, tmp_path: Path) -> None:
    import mlflow

    tracking.configure(create=True)
    client = mlflow.MlflowClient()
    client.create_registered_model("house_prices")
    for _ in range(n):
        client.create_model_version("house_prices", source=tmp_path.as_uri())


def _promote(version: int, score: float, force: bool = False) -> tracking.Promotion:
    spec = registry.get_spec("house_prices")
    return tracking.promote(spec, str(version), score, "p", "d", sampled=False, force=force)


def _holder() -> str:
    import mlflow

    return str(mlflow.MlflowClient().get_model_version_by_alias("house_prices", "champion").version)


SCORES = {1: 0.3, 2: 0.1, 3: 0.2}


@pytest.mark.parametrize("order", list(itertools.permutations(SCORES)), ids=lambda o: "-".join(map(str, o)))
def test_any_finishing_order_ends_on_the_best(order: tuple[int, ...], tmp_path: Path) -> None:
    _registered(3, tmp_path)
    for version in order:
        _promote(version, SCORES[version])
    assert _holder() == "2"


def test_a_stale_read_is_repaired(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """v1 (worse) read "no champion" before v2 finished, and writes the alias last: the repair fixes it."""
    _registered(2, tmp_path)
    assert _promote(2, 0.1).promoted
    real = tracking._champion
    calls = iter([None])
    monkeypatch.setattr(tracking, "_champion", lambda client, name: next(calls, real(client, name)))
    result = _promote(1, 0.3)
    assert _holder() == "2"
    assert not result.promoted and result.old_version == "2" and "concurrently" in result.reason


def test_a_late_better_trainer_takes_over(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Sequentially, a better version displaces the champion as before."""
    _registered(2, tmp_path)
    assert _promote(1, 0.3).promoted
    result = _promote(2, 0.1)
    assert result.promoted and _holder() == "2"


def test_forced_champion_is_kept_against_earlier_versions(tmp_path: Path) -> None:
    _registered(3, tmp_path)
    _promote(1, 0.1)
    assert _promote(2, 0.5, force=True).promoted  # --promote: v2 although worse
    # v1 finishing its repair again (or any earlier version) does not undo the forced choice
    assert not _promote(1, 0.1).promoted and _holder() == "2"
    assert _promote(3, 0.4).promoted and _holder() == "3"  # a later version that beats it takes over


def test_locked_database_is_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    import sqlite3

    monkeypatch.setattr(tracking, "_RETRIES", 5)
    calls = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise sqlite3.OperationalError("database is locked")
        return "ok"

    assert tracking._retry(flaky) == "ok" and len(calls) == 3
    with pytest.raises(ValueError):
        tracking._retry(lambda: (_ for _ in ()).throw(ValueError("other")))


def test_first_open_of_a_new_store_is_serialised(tmp_path: Path) -> None:
    """Several processes opening a brand-new sqlite store at once all succeed (schema under a file lock)."""
    uri = f"sqlite:///{tmp_path / 'new.db'}"
    code = "from common import tracking; tracking.configure(create=True); print('ok')"
    procs = [subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=_env(uri), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(3)]
    for proc in procs:
        out, err = proc.communicate(timeout=180)
        assert proc.returncode == 0 and "ok" in out, err[-2000:]
    assert (tmp_path / "new.db.lock").exists()


def test_an_alias_created_concurrently_is_set_again() -> None:
    """MLflow sets an alias by select-then-insert: the loser of two first writers gets the unique-key error
    (PostgreSQL's words below, from a CI run) and ``set_champion`` sets it again instead of failing."""
    from mlflow.exceptions import RestException

    clash = RestException({"error_code": "BAD_REQUEST", "message": (
        '(psycopg.errors.UniqueViolation) duplicate key value violates unique constraint '
        '"registered_model_alias_pk"\nDETAIL:  Key (workspace, name, alias)=(default, house_prices, champion) '
        'already exists.')})
    calls: list[tuple] = []

    class Client:
        def set_registered_model_alias(self, *args: str) -> None:
            calls.append(args)
            if len(calls) == 1:
                raise clash

    tracking.set_champion(Client(), "house_prices", 2)
    assert calls == [("house_prices", "champion", "2")] * 2

    class Broken:
        def set_registered_model_alias(self, *args: str) -> None:
            raise RestException({"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "no version 9"})

    with pytest.raises(RestException, match="no version 9"):  # any other error is not retried
        tracking.set_champion(Broken(), "house_prices", 9)


def race_first_champions(uri: str, models: int = 6, writers: int = 4) -> None:
    """``writers`` threads set the first ``@champion`` of each of ``models`` new models (and one new
    experiment tag) at the same moment; every call must succeed and the alias must end on one of the
    writers' versions."""
    import threading

    import mlflow

    def new_client() -> mlflow.MlflowClient:
        # Explicit URIs: mlflow's process-wide tracking URI may still name an earlier test's store.
        return mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)

    client = new_client()
    tag = f"race-{uuid.uuid4().hex[:12]}"
    # A server accepts a version's source only inside the run that made it.
    exp_id = client.create_experiment(tag)
    run = client.create_run(exp_id)
    client.set_terminated(run.info.run_id)
    names = [f"{tag}-{i}" for i in range(models)]
    for name in names:
        client.create_registered_model(name)
        for _ in range(writers):
            client.create_model_version(name, source=f"{run.info.artifact_uri}/model", run_id=run.info.run_id)
    errors: list[BaseException] = []
    for name in names:
        barrier = threading.Barrier(writers)

        def write(version: int, name: str = name, barrier: threading.Barrier = barrier) -> None:
            barrier.wait()
            try:
                own = new_client()
                tracking.set_champion(own, name, version)
                tracking.upsert(own.set_experiment_tag, exp_id, f"note-{name}", str(version))  # the same race
            except BaseException as exc:  # noqa: BLE001 - collected and reported below
                errors.append(exc)

        threads = [threading.Thread(target=write, args=(v,)) for v in range(1, writers + 1)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert not errors, errors[0]
        assert int(client.get_model_version_by_alias(name, "champion").version) in range(1, writers + 1)


def test_simultaneous_first_champions_on_embedded_sqlite(tmp_path: Path) -> None:
    race_first_champions(tracking.configure(create=True))
