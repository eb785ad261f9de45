"""The team stack (``mlprojects server``): PostgreSQL + MLflow server with proxied artifacts, for real.

One stack (``mlflow_server_stack``) serves the scenario tests; the lifecycle and S3 tests start their own
in their own state folders. Every test is in the xdist group "server", so under
``pytest -n 2 --dist loadgroup`` a single worker runs them all and only one session stack exists.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from common import server
from common.errors import ServerError
from tests.test_concurrency import ROOT, check_fresh_load, check_scenario, race_first_champions, run_scenario

pytestmark = [pytest.mark.server, pytest.mark.xdist_group("server")]


def _postgres_or_skip() -> None:
    try:
        server.pg_bindir()
    except ServerError:
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql); the team-stack tests need it")


def _state_dir(tag: str) -> Path:
    # Not pytest's tmp_path: it lives under a private (0700) folder the postgres user cannot traverse.
    return Path(tempfile.mkdtemp(prefix=f"mlp-{tag}-"))


def _remove(state: Path) -> None:
    try:
        server.stop(state)
    finally:
        shutil.rmtree(state, ignore_errors=True)


# ``mlflow_server_stack`` (one stack for the session) is in conftest.py: tests/test_tune.py uses it too.


@pytest.fixture(scope="session")
def scenario(mlflow_server_stack: server.Stack) -> list[dict]:
    """The 4 + 2 concurrent trainings, run once against the session stack."""
    return run_scenario(mlflow_server_stack.uri)  # type: ignore[arg-type]


@pytest.fixture
def on_server(mlflow_server_stack: server.Stack, monkeypatch: pytest.MonkeyPatch) -> str:
    """This test's MLflow calls go to the session stack."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server_stack.uri)  # type: ignore[arg-type]
    return mlflow_server_stack.uri  # type: ignore[return-value]


# ----------------------------------------------------------------------------------------- lifecycle
def test_start_status_stop_restart_reuses_data() -> None:
    import mlflow

    _postgres_or_skip()
    state = _state_dir("life")
    try:
        first = server.start(state)
        assert first.running and (state / "mlflow.pid").exists() and (state / "postgres.pid").exists()
        again = server.start(state)  # already running: just the status
        assert "already running" in " ".join(again.notes) and again.mlflow_pid == first.mlflow_pid
        client = mlflow.MlflowClient(tracking_uri=first.uri)
        exp_id = client.create_experiment("kept-across-restarts")

        pids = (first.mlflow_pid, first.pg_pid)
        stopped = server.stop(state)
        assert not stopped.mlflow_alive and not stopped.pg_alive
        assert not any(server._alive(p) for p in pids if p)
        assert (state / "pgdata" / "PG_VERSION").exists() and not (state / "mlflow.pid").exists()
        assert not server.status(state).running

        # The old MLflow port is taken now: a new one is picked, and the user is told.
        with socket.socket() as blocker:
            blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # its old connections may linger
            blocker.bind(("127.0.0.1", first.port))
            blocker.listen()
            second = server.start(state)
        assert second.running and second.port != first.port and second.pg_port == first.pg_port
        assert any("taken now" in n for n in second.notes)
        client = mlflow.MlflowClient(tracking_uri=second.uri)
        assert client.get_experiment_by_name("kept-across-restarts").experiment_id == exp_id

        # The server dies hard and leaves its uvicorn worker: status says so, stop ends exactly that group.
        os.kill(second.mlflow_pid, signal.SIGKILL)  # type: ignore[arg-type]
        os.waitpid(second.mlflow_pid, 0)  # type: ignore[arg-type]  # started by this process: reap it
        crashed = server.status(state)
        assert crashed.orphan_group == second.mlflow_pid and not crashed.mlflow_alive
        workers = server._group_members(second.mlflow_pid, ("mlflow", str(second.port)))  # type: ignore[arg-type]
        assert workers and any("died" in n for n in crashed.notes)
        server.stop(state)
        assert not any(server._alive(w) for w in workers) and not (state / "mlflow.pid").exists()
    finally:
        _remove(state)


def test_stale_pid_files_are_cleaned_up_and_nothing_else_is_killed(tmp_path: Path) -> None:
    _postgres_or_skip()
    state = _state_dir("stale")
    try:
        dead = subprocess.Popen([sys.executable, "-c", "pass"])
        dead.wait()
        (state / "mlflow.pid").write_text(f"{dead.pid}\n")
        stack = server.status(state)
        assert not stack.mlflow_alive and not (state / "mlflow.pid").exists()
        assert any("stale pid file" in n for n in stack.notes)
        # A live process that is not ours (this test) is never a server to stop.
        (state / "mlflow.pid").write_text(f"{os.getpid()}\n")
        server.stop(state)
        assert server._alive(os.getpid()) and not (state / "mlflow.pid").exists()
    finally:
        shutil.rmtree(state, ignore_errors=True)


def test_a_requested_port_that_is_taken_is_a_clear_error() -> None:
    _postgres_or_skip()
    state = _state_dir("port")
    try:
        with socket.socket() as blocker:
            blocker.bind(("127.0.0.1", 0))
            blocker.listen()
            port = blocker.getsockname()[1]
            with pytest.raises(ServerError, match=f"Port {port} .* taken"):
                server.start(state, port=port)
            with pytest.raises(ServerError, match=f"Port {port} .* taken"):
                server.start(state, pg_port=port)
        assert not (state / "pgdata").exists()  # refused before creating anything
    finally:
        _remove(state)


def test_cli_server_status_prints_the_uri(mlflow_server_stack: server.Stack) -> None:
    done = subprocess.run([sys.executable, "-m", "common.cli", "server", "status", "--state-dir",
                           str(mlflow_server_stack.state_dir)], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert f"export MLFLOW_TRACKING_URI={mlflow_server_stack.uri}" in done.stdout
    assert "running" in done.stderr


# ---------------------------------------------------------------------------------------- team usage
@pytest.mark.slow
def test_concurrent_trainings_on_the_server(mlflow_server_stack: server.Stack, scenario: list[dict]) -> None:
    check_scenario(mlflow_server_stack.uri, scenario)  # type: ignore[arg-type]


def test_simultaneous_first_champions_on_postgresql(on_server: str) -> None:
    """The race CI hit: two trainers set a model's first @champion at once and PostgreSQL refused one."""
    race_first_champions(on_server)


@pytest.mark.slow
def test_load_pipeline_from_a_fresh_process(mlflow_server_stack: server.Stack, scenario: list[dict]) -> None:
    check_fresh_load(mlflow_server_stack.uri, scenario)  # type: ignore[arg-type]
    artifacts = Path(mlflow_server_stack.artifacts or "")
    assert any(artifacts.rglob("MLmodel")), "models are stored by the server's artifact proxy"


@pytest.mark.slow
def test_cli_predict_and_report_against_the_server(on_server: str, scenario: list[dict], tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    import pandas as pd

    from common import cli
    from projects.house_prices import synthetic

    rows = synthetic.generate(30).X_predict
    rows.insert(0, "Id", range(len(rows)))
    rows.to_csv(tmp_path / "rows.csv", index=False)
    code = cli.main(["predict", "house_prices", "--input", str(tmp_path / "rows.csv"),
                     "--output", str(tmp_path / "pred.csv")])
    assert code == 0, capsys.readouterr().err
    assert len(pd.read_csv(tmp_path / "pred.csv")) == len(rows)
    code = cli.main(["report", "--out", str(tmp_path / "report")])
    assert code == 0, capsys.readouterr().err
    board = (tmp_path / "report" / "leaderboard.md").read_text()
    assert "house_prices" in board and "churn" in board


# ------------------------------------------------------------------------------------- S3 artifacts
@pytest.mark.slow
def test_artifacts_in_an_s3_bucket(monkeypatch: pytest.MonkeyPatch) -> None:
    _postgres_or_skip()
    boto3 = pytest.importorskip("boto3", reason="boto3 is in the server extra (pip install -e '.[server]')")
    moto_server = pytest.importorskip("moto.server", reason="moto[s3] is in the dev extra")

    port = server.free_port()
    s3 = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    s3.start()
    endpoint = f"http://127.0.0.1:{port}"
    creds = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
    for key, value in creds.items():
        monkeypatch.setenv(key, value)
    state = _state_dir("s3")
    try:
        bucket = boto3.client("s3", endpoint_url=endpoint)
        bucket.create_bucket(Bucket="team-models")
        stack = server.start(state, artifacts="s3://team-models/mlflow", s3_endpoint=endpoint)
        assert stack.running and stack.artifacts == "s3://team-models/mlflow"
        job = [("house_prices", 120, {"model": "linear"})]
        results = run_scenario(stack.uri, job)  # type: ignore[arg-type]
        check_scenario(stack.uri, results, job)  # type: ignore[arg-type]
        check_fresh_load(stack.uri, results)  # type: ignore[arg-type]
        keys = [o["Key"] for o in bucket.list_objects_v2(Bucket="team-models", Prefix="mlflow/").get("Contents", [])]
        assert any(k.endswith("MLmodel") for k in keys), keys
        assert not any(state.rglob("MLmodel")), "nothing may be written to the local artifacts folder"
    finally:
        _remove(state)
        s3.stop()


# ------------------------------------------------------------------------------- moving champions
@pytest.mark.slow
def test_docs_snippet_moves_local_champions_to_the_server(mlflow_server_stack: server.Stack, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """docs/team_server.md's Python block, run as written: a local spam champion becomes the server's."""
    import ast

    import mlflow
    import numpy as np

    from common import train
    from projects import load_pipeline
    from projects.spam import synthetic
    from tests.settings import TEST_PARAMS
    from tests.test_docs import fenced_blocks

    local = train.run("spam", TEST_PARAMS["spam"], dataset=synthetic.generate(200))  # into tmp_path/mlflow.db
    texts = ["WINNER!! claim your free prize now", "see you at lunch tomorrow"]
    expected = np.asarray(load_pipeline("spam").predict(texts))

    block = next(b for b in fenced_blocks(ROOT / "docs" / "team_server.md") if b.lang == "python")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server_stack.uri)  # type: ignore[arg-type]
    exec(compile(ast.increment_lineno(ast.parse(block.text), block.line - 1), block.path, "exec"),  # noqa: S102
         {"__name__": "docs"})

    client = mlflow.MlflowClient(mlflow_server_stack.uri, mlflow_server_stack.uri)
    champion = client.get_model_version_by_alias("spam", "champion")
    assert champion.tags["forced"] == "true"
    assert champion.tags["primary_score"] == f"{local.primary:.6g}"
    assert np.array_equal(np.asarray(load_pipeline("spam").predict(texts)), expected)
