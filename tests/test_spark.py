"""Scoring on Spark (``mlprojects predict --engine spark``): a real local[2] SparkSession on 127.0.0.1 scores
through ``mlflow.pyfunc.spark_udf`` and gives the in-process predictions, probabilities included; the same
command also runs against a real standalone cluster (a master and one worker started on 127.0.0.1)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from common import predict, spark_scoring
from common.cli import main
from common.errors import InputError
from tests.scoring_fixtures import champion_store, champions, raw_rows  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.spark, pytest.mark.usefixtures("champions"), pytest.mark.xdist_group("spark")]


def _skip_without_spark() -> None:
    pytest.importorskip("pyspark", reason="pyspark is not installed (the spark extra)")
    if spark_scoring.java_executable() is None:
        pytest.skip("no Java runtime: Spark needs one (`.ci/run` installs default-jre-headless)")


@pytest.fixture(scope="module")
def spark() -> Iterator[Any]:
    """One local[2] session for the module (starting one takes about 10 s), bound to 127.0.0.1."""
    _skip_without_spark()
    with spark_scoring.session("local[2]", driver_memory="1g") as session:
        assert session.conf.get("spark.driver.host") == "127.0.0.1"
        yield session


@pytest.mark.parametrize("project", ["house_prices", "spam", "churn", "mnist"])
def test_spark_equals_in_process(spark, tmp_path: Path, project: str) -> None:
    frame = raw_rows(project, 400)
    src = tmp_path / "rows.parquet"
    frame.to_parquet(src, index=False)
    expected = predict.predict_cli(project, input_path=str(src))
    out = tmp_path / "scored"
    result = spark_scoring.score(project, str(src), str(out), spark=spark)
    assert result.rows == len(frame) and result.master == "local[2]"
    got = pd.read_parquet(out)  # Spark keeps the input order across its part files
    assert list(got.columns) == list(expected.columns)
    pd.testing.assert_frame_equal(got, expected, check_dtype=False, check_exact=False, rtol=1e-12)
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]


def test_spark_reads_a_parquet_folder_and_replaces_the_output(spark, tmp_path: Path) -> None:
    folder = tmp_path / "rows"
    folder.mkdir()
    frame = raw_rows("churn", 300)
    frame.iloc[:150].to_parquet(folder / "part-0.parquet", index=False)
    frame.iloc[150:].to_parquet(folder / "part-1.parquet", index=False)
    out = tmp_path / "scored"
    out.mkdir()
    (out / "old.txt").write_text("previous")
    spark_scoring.score("churn", str(folder), str(out), spark=spark)
    got = pd.read_parquet(out)
    assert sorted(got["customerID"]) == sorted(frame["customerID"]) and not (out / "old.txt").exists()


def test_spark_bad_row_is_a_clear_error_and_leaves_the_output(spark, tmp_path: Path) -> None:
    frame = raw_rows("churn", 50).astype({"tenure": str})  # a text column: numbers as strings are accepted
    frame.loc[7, "tenure"] = "abc"
    src = tmp_path / "rows.parquet"
    frame.to_parquet(src, index=False)
    out = tmp_path / "scored"
    with pytest.raises(spark_scoring.SparkScoringError) as err:
        spark_scoring.score("churn", str(src), str(out), spark=spark)
    assert "column 'tenure'" in str(err.value) and "'abc'" in str(err.value)
    assert not out.exists() and not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]


def test_spark_missing_input_is_a_clear_error(spark, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        spark_scoring.score("churn", str(tmp_path / "nowhere.parquet"), str(tmp_path / "out"), spark=spark)


def test_cli_engine_spark_end_to_end(tmp_path: Path, capsys) -> None:
    """The command a user runs: its own session on local[2], started and stopped."""
    _skip_without_spark()
    frame = raw_rows("house_prices", 200)
    src = tmp_path / "rows.parquet"
    frame.to_parquet(src, index=False)
    out = tmp_path / "scored"
    code = main(["predict", "house_prices", "--engine", "spark", "--master", "local[2]", "--driver-memory", "1g",
                 "--input", str(src), "--output", str(out)])
    assert code == 0, capsys.readouterr().err
    assert "Wrote 200 predictions" in capsys.readouterr().err
    assert pd.read_parquet(out)["Id"].tolist() == frame["Id"].tolist()


def test_missing_java_says_how_to_install_it(monkeypatch, tmp_path: Path) -> None:
    pytest.importorskip("pyspark", reason="pyspark is not installed (the spark extra)")
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "no-jdk"))
    with pytest.raises(spark_scoring.SparkUnavailableError, match="default-jre-headless"):
        spark_scoring.require_spark()


def test_spark_reads_a_table_by_name(spark, tmp_path: Path) -> None:
    frame = raw_rows("churn", 120)
    src = tmp_path / "rows.parquet"
    frame.to_parquet(src, index=False)
    spark.read.parquet(str(src)).createOrReplaceTempView("churn_rows")
    expected = predict.predict_cli("churn", input_path=str(src))
    spark_scoring.score("churn", "churn_rows", str(tmp_path / "scored"), spark=spark)
    got = pd.read_parquet(tmp_path / "scored")
    pd.testing.assert_frame_equal(got, expected, check_dtype=False, check_exact=False, rtol=1e-12)


# --------------------------------------------------------------------------------- standalone cluster
STARTUP_S = 120  # a master and a worker JVM on a loaded 2-core machine
JOB_S = 420  # the driver's start, the executor's start on the worker and the job


@dataclass(frozen=True)
class Cluster:
    """A standalone master and one worker on 127.0.0.1."""

    master: str  # spark://127.0.0.1:<port>
    webui: str  # the master's web UI (its /json lists workers and applications)
    logs: Path


def _free_ports(n: int) -> list[int]:
    """``n`` distinct free TCP ports on 127.0.0.1 (held together so they differ)."""
    with ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(n)]
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in socks]


def _master_state(webui: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{webui}/json", timeout=5) as reply:
        return json.load(reply)


def _tail(path: Path, lines: int = 15) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""


def _stop(proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    """Terminate the process this test started, then kill it if it has not exited after ``timeout``."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout)


@pytest.fixture(scope="module")
def standalone(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A real Spark standalone master and one worker (1 core, 1 GiB) from pyspark's ``spark-class``, bound
    to 127.0.0.1 on free ports; yielded once the worker has registered, stopped by the pids started here."""
    _skip_without_spark()
    import pyspark

    home = Path(pyspark.__file__).parent
    root = tmp_path_factory.mktemp("standalone")
    port, webui_port, worker_webui_port = _free_ports(3)
    env = {**os.environ, "SPARK_HOME": str(home), "SPARK_LOCAL_IP": "127.0.0.1", "SPARK_DAEMON_MEMORY": "512m",
           "SPARK_LOCAL_DIRS": str(root), "PYSPARK_PYTHON": sys.executable,
           "SPARK_MASTER_OPTS": "-Dspark.master.rest.enabled=false"}  # else a REST server on fixed port 6066
    master, webui = f"spark://127.0.0.1:{port}", f"http://127.0.0.1:{webui_port}"
    spark_class = str(home / "bin" / "spark-class")
    commands = {
        "master": [spark_class, "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
                   "--port", str(port), "--webui-port", str(webui_port)],
        "worker": [spark_class, "org.apache.spark.deploy.worker.Worker", master, "--host", "127.0.0.1",
                   "--cores", "1", "--memory", "1g", "--webui-port", str(worker_webui_port),
                   "--work-dir", str(root / "work")],
    }
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for name, command in commands.items():
            with open(root / f"{name}.log", "wb") as log_file:
                procs.append(subprocess.Popen(command, env=env, stdout=log_file, stderr=subprocess.STDOUT,
                                              stdin=subprocess.DEVNULL, cwd=root))
        deadline = time.monotonic() + STARTUP_S
        while True:
            try:
                if _master_state(webui).get("aliveworkers", 0) >= 1:
                    break
            except OSError:
                pass  # the master's web UI is not up yet
            exited = [name for name, proc in zip(commands, procs, strict=True) if proc.poll() is not None]
            if exited or time.monotonic() > deadline:
                why = f"{', '.join(exited)} exited" if exited else f"no worker registered within {STARTUP_S} s"
                pytest.fail(f"standalone cluster did not start ({why}).\nmaster log:\n{_tail(root / 'master.log')}"
                            f"\nworker log:\n{_tail(root / 'worker.log')}")
            time.sleep(1)
        yield Cluster(master=master, webui=webui, logs=root)
    finally:
        for proc in reversed(procs):  # the worker first: it stops its executors
            _stop(proc)


def test_loopback_masters_keep_the_driver_on_127_0_0_1() -> None:
    assert spark_scoring.is_loopback_master("local[2]")
    assert spark_scoring.is_loopback_master("spark://127.0.0.1:7077")
    assert spark_scoring.is_loopback_master("spark://localhost:7077")
    assert not spark_scoring.is_loopback_master("spark://spark-master:7077")
    assert not spark_scoring.is_loopback_master("yarn")


def test_cli_engine_spark_on_a_standalone_cluster(standalone: Cluster, tmp_path: Path) -> None:
    """``mlprojects predict churn --engine spark --master spark://127.0.0.1:<port>`` on a real master and
    worker gives the in-process predictions. The command runs in its own process: a process holds one
    SparkContext, and this module's local[2] session may be active here."""
    frame = raw_rows("churn", 40)
    src = tmp_path / "rows.parquet"
    frame.to_parquet(src, index=False)
    expected = predict.predict_cli("churn", input_path=str(src))
    out = tmp_path / "scored"
    # The executors on the worker run this interpreter (this environment, this package); the driver's own
    # address comes from spark_scoring's loopback settings, not from SPARK_LOCAL_IP.
    env = {k: v for k, v in os.environ.items() if k != "SPARK_LOCAL_IP"} | {"PYSPARK_PYTHON": sys.executable}
    code = "import sys; from common.cli import main; sys.exit(main(sys.argv[1:]))"
    done = subprocess.run(
        [sys.executable, "-c", code, "predict", "churn", "--engine", "spark", "--master", standalone.master,
         "--driver-memory", "1g", "--input", str(src), "--output", str(out)],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=JOB_S, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, f"{done.stderr[-4000:]}\nworker log:\n{_tail(standalone.logs / 'worker.log')}"
    assert f"Wrote {len(frame)} predictions" in done.stderr and standalone.master in done.stderr
    got = pd.read_parquet(out)
    assert list(got.columns) == list(expected.columns)
    pd.testing.assert_frame_equal(got, expected, check_dtype=False, check_exact=False, rtol=1e-12)
    apps = _master_state(standalone.webui)  # the job ran on the cluster, not in a local session
    assert [app["name"] for app in apps.get("completedapps", []) + apps.get("activeapps", [])] == \
        ["mlprojects-predict"]
    launches = [path.read_text(errors="replace") for path in (standalone.logs / "work").glob("app-*/*/stderr")]
    assert launches and all("CoarseGrainedScheduler@127.0.0.1:" in text for text in launches)  # driver on loopback
