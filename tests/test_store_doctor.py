"""The store's health: a missing or foreign store is a clear error, and ``doctor`` cleans up killed trainings.

Readers (predict, ``load_pipeline``, report, doctor) never create a store; writers (train) create one only
in an existing folder. A training killed with SIGKILL leaves a RUNNING run that ``doctor --repair`` (and the
next training's start-up sweep) marks KILLED; versions never scored are completed from their run or archived,
and the champion is never moved by a check.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest

from common import cli, store, tracking, train
from common.errors import StoreError
from projects import load_pipeline
from projects.house_prices import synthetic

ROOT = Path(__file__).resolve().parents[1]

# A "training" that opens the store, starts a run tagged like train.run's, says its run id and waits to be
# killed: the state a `kill -9` during a real training leaves (the run never ends).
_VICTIM = """
import time, mlflow
from common import registry, store, tracking
exp = tracking.experiment(registry.get_spec("house_prices"), create=True)
run = mlflow.start_run(experiment_id=exp)
mlflow.set_tags({"project": "house_prices", **store.owner_tags()})
print("RUN", run.info.run_id, flush=True)
time.sleep(600)
"""


@pytest.fixture
def synthetic_house(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the house_prices loader return generated data (no real data in unit tests)."""
    real = train.load_dataset

    def fake(project, data_params, sample=None, data_dir=None):
        if project.name == "house_prices":
            return synthetic.generate(120, seed=1)
        return real(project, data_params, sample, data_dir)

    monkeypatch.setattr(train, "load_dataset", fake)


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = cli.main(list(argv))
    out = capsys.readouterr()
    return code, out.out + out.err


def _db() -> Path:
    return Path(os.environ["MLFLOW_TRACKING_URI"].removeprefix("sqlite:///"))


def _client():
    import mlflow

    uri = tracking.configure()
    return mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)


# ------------------------------------------------------------------------------------------ store path
def test_readers_never_create_a_missing_store(capsys, tmp_path: Path) -> None:
    db = _db()
    assert not db.exists()
    with pytest.raises(StoreError, match="nothing was created") as err:
        load_pipeline("house_prices")
    assert str(db) in str(err.value) and "mlprojects train" in str(err.value)
    for argv in (["predict", "spam", "--text", "hello"], ["report", "--out", str(tmp_path / "r")], ["doctor"],
                 ["load-time"], ["bench", "house_prices"]):
        code, text = _run(capsys, *argv)
        assert code == 2, (argv, text)
        assert "No MLflow store at" in text and "Traceback" not in text, (argv, text)
    assert not db.exists() and not db.with_name(db.name + ".lock").exists()
    assert not (tmp_path / "r").exists()


def test_training_into_a_missing_folder_is_an_error(capsys, tmp_path: Path, synthetic_house: None,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    typo = tmp_path / "no-such-folder" / "mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{typo}")
    code, text = _run(capsys, "train", "house_prices", "--param", "model=linear")
    assert code == 2 and "does not exist" in text and str(typo.parent) in text and "Traceback" not in text
    assert not typo.parent.exists()


def test_a_file_that_is_not_an_mlflow_store(capsys, tmp_path: Path, synthetic_house: None) -> None:
    db = _db()
    db.write_text("these are my notes, not a database\n")
    with pytest.raises(StoreError, match="not an MLflow store") as err:
        load_pipeline("house_prices")
    assert str(db) in str(err.value)
    code, text = _run(capsys, "train", "house_prices", "--param", "model=linear")  # a writer refuses it too
    assert code == 2 and "not an MLflow store" in text and "Traceback" not in text
    assert db.read_text().startswith("these are my notes")

    db.unlink()
    with closing(sqlite3.connect(db)) as con, con:
        con.execute("CREATE TABLE mine (x INTEGER)")
    with pytest.raises(StoreError, match="not an MLflow store: it is a SQLite database without MLflow's tables"):
        tracking.configure()
    with pytest.raises(StoreError, match="not an MLflow store"):
        tracking.configure(create=True)


def test_a_locked_store_is_retried_then_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    uri = tracking.configure(create=True)
    tracking._INITIALISED.discard(uri)  # as a new process would, check the file again
    monkeypatch.setattr(tracking, "_RETRIES", 2)
    monkeypatch.setattr(tracking, "_PROBE_TIMEOUT", 0.05)
    with closing(sqlite3.connect(_db(), isolation_level=None)) as writer:
        writer.execute("BEGIN EXCLUSIVE")
        with pytest.raises(StoreError, match="stayed locked by another process") as err:
            tracking.configure()
        assert str(_db()) in str(err.value)
        writer.execute("ROLLBACK")
    assert tracking.configure() == uri


# ------------------------------------------------------------------------------------------- dead runs
def _killed_training() -> str:
    """Start ``_VICTIM`` in a new process, SIGKILL it once its run exists; the run's id."""
    proc = subprocess.Popen([sys.executable, "-c", _VICTIM], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        line = proc.stdout.readline()
        assert line.startswith("RUN "), proc.stderr.read()[-2000:] if not line else line
        run_id = line.split()[1]
        alive = store.check(tracking.configure())
        assert not [f for f in alive.findings if f.run_id == run_id], "a live training is not debris"
    finally:
        proc.kill()
        proc.wait(timeout=30)
    return run_id


def test_doctor_finds_and_repairs_a_killed_training(capsys) -> None:
    run_id = _killed_training()
    client = _client()
    assert client.get_run(run_id).info.status == "RUNNING"

    report = store.check(tracking.configure())
    (finding,) = report.debris
    assert finding.kind == store.DEAD_RUN and finding.run_id == run_id and "exited" in finding.detail
    code, text = _run(capsys, "doctor")
    assert code == 1 and "dead run" in text and "doctor --repair" in text
    assert client.get_run(run_id).info.status == "RUNNING"  # the check alone changes nothing

    code, text = _run(capsys, "doctor", "--repair")
    assert code == 0 and "marked KILLED" in text
    run = client.get_run(run_id)
    assert run.info.status == "KILLED" and "mlprojects doctor --repair" in run.data.tags[store.KILLED_BY_TAG]
    code, text = _run(capsys, "doctor")
    assert code == 0 and "clean" in text


def test_training_start_sweeps_dead_local_runs(capsys, synthetic_house: None) -> None:
    run_id = _killed_training()
    tracking._SWEPT.clear()  # this process already swept the store when _killed_training opened it
    code, text = _run(capsys, "train", "house_prices", "--param", "model=linear")  # the CLI logs to stderr
    assert code == 0, text
    assert "marked 1 run(s) KILLED" in text and run_id[:12] in text
    run = _client().get_run(run_id)
    assert run.info.status == "KILLED" and "sweep" in run.data.tags[store.KILLED_BY_TAG]


def test_sweep_leaves_other_hosts_and_live_runs_alone() -> None:
    import mlflow

    from common import registry

    exp = tracking.experiment(registry.get_spec("house_prices"), create=True)
    client = _client()
    remote = client.create_run(exp, tags={store.HOST_TAG: "another-machine", store.PID_TAG: "999999"})
    mine = client.create_run(exp, tags=store.owner_tags())  # this very process: alive
    assert store.sweep(mlflow.get_tracking_uri()) == []
    assert store.check(mlflow.get_tracking_uri()).findings == []  # the remote run is younger than 24 h
    report = store.check(mlflow.get_tracking_uri(), stale_hours=0)
    (stale,) = report.findings
    assert stale.kind == store.STALE_RUN and stale.run_id == remote.info.run_id and not stale.debris
    store.repair(report)
    assert client.get_run(remote.info.run_id).info.status == "RUNNING"  # only with --include-stale
    store.repair(report, include_stale=True)
    assert client.get_run(remote.info.run_id).info.status == "KILLED"
    assert client.get_run(mine.info.run_id).info.status == "RUNNING"


# ------------------------------------------------------------------------------------ unscored versions
_SCORE_TAGS = ("primary_metric", "primary_score", "protocol", "dataset_sha256", "sampled")


def _champion(client) -> str:
    return str(client.get_model_version_by_alias("house_prices", "champion").version)


def _unscore(client, version: str) -> None:
    for key in _SCORE_TAGS:
        client.delete_model_version_tag("house_prices", version, key)


def test_unscored_versions_are_completed_or_archived_and_the_champion_kept(capsys, tmp_path: Path) -> None:
    ds = synthetic.generate(120, seed=1)
    best = train.run("house_prices", {"model": "linear"}, dataset=ds)
    weak = train.run("house_prices", {"model": "linear", "linear_alpha": "1e6"}, dataset=ds)
    killed = train.run("house_prices", {"model": "linear", "linear_alpha": "1e5"}, dataset=ds)
    client = _client()
    assert _champion(client) == best.version == "1"
    protocol = client.get_model_version("house_prices", "1").tags["protocol"]
    _unscore(client, weak.version)  # finished run: the tags can be completed from it
    _unscore(client, killed.version)  # killed before promote: archived
    client.set_terminated(killed.run_id, "KILLED")
    orphan = str(client.create_model_version("house_prices", source=tmp_path.as_uri()).version)  # no run

    report = store.check(tracking.configure())
    actions = {f.version: f.action for f in report.debris}
    assert actions == {"2": "complete the tags from its run and compare with @champion", "3": "archive",
                       orphan: "archive"}
    code, text = _run(capsys, "doctor")
    assert code == 1 and "unscored version" in text
    assert _champion(client) == "1"

    code, text = _run(capsys, "doctor", "--repair")
    assert code == 0, text
    completed = client.get_model_version("house_prices", "2").tags
    assert float(completed["primary_score"]) == pytest.approx(weak.primary, rel=1e-5)
    assert completed["protocol"] == protocol and completed["dataset_sha256"] == ds.sha256
    assert completed["sampled"] == "false" and "doctor" in completed["completed_by"]
    for version in ("3", orphan):
        tags = client.get_model_version("house_prices", version).tags
        assert tags["archived"] == "true" and tags["archived_reason"] and "primary_score" not in tags
    assert _champion(client) == "1"
    assert store.check(tracking.configure()).debris == []

    # An unscored champion (never made by our code) is reported loudly and moved only by --repair.
    _unscore(client, "1")
    client.set_terminated(best.run_id, "KILLED")
    report = store.check(tracking.configure())
    (finding,) = report.debris
    assert finding.kind == store.CHAMPION_UNSCORED and finding.version == "1"
    assert _run(capsys, "doctor")[0] == 1
    assert _champion(client) == "1"
    lines = store.repair(report)
    assert any("@champion moved to v2" in line for line in lines), lines
    assert _champion(client) == "2"
    assert client.get_model_version("house_prices", "1").tags["archived"] == "true"
