"""``mlprojects bench-store``: tracking-store throughput, embedded sqlite vs the team server.

K client processes each log R small runs (params, metrics, a small text artifact) at the same moment;
reported are runs/s over all clients and the p95 latency of each MLflow call. The sqlite store is a fresh
temporary one; the server is a fresh stack in a temporary state folder unless ``--uri`` names one.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from common.datasets import repo_root

log = logging.getLogger(__name__)

CALLS = ("start_run", "log_params", "log_metrics", "log_text", "end_run")
_CLIENT = "from common.bench_store import _client; import sys; _client(*sys.argv[1:])"


def _client(uri: str, exp_id: str, runs: str, ready: str, go: str, out: str) -> None:
    """One benchmark client (a separate process): log ``runs`` runs once ``go`` exists; write timings."""
    import mlflow
    from mlflow.entities import Metric, Param

    from common.tracking import _retry

    mlflow.set_tracking_uri(uri)
    client = mlflow.MlflowClient(uri)
    # Connect and import the artifact code (a one-off second) before the clock starts: one untimed run.
    warm = _retry(client.create_run, exp_id, run_name=f"warm-up-{os.getpid()}").info.run_id
    _retry(client.log_text, warm, "warm-up\n", "notes.txt")
    _retry(client.set_terminated, warm)
    Path(ready).touch()
    while not Path(go).exists():
        time.sleep(0.01)
    lat: dict[str, list[float]] = {c: [] for c in CALLS}

    def timed(name: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        value = _retry(fn, *args, **kwargs)
        lat[name].append(time.perf_counter() - t0)
        return value

    began = time.time()
    for i in range(int(runs)):
        run = timed("start_run", client.create_run, exp_id, run_name=f"bench-{os.getpid()}-{i}")
        rid = run.info.run_id
        timed("log_params", client.log_batch, rid, params=[Param(f"p{j}", str(j * i)) for j in range(5)])
        now = int(time.time() * 1000)
        timed("log_metrics", client.log_batch, rid,
              metrics=[Metric(f"m{j}", float(i + j), now, 0) for j in range(5)])
        timed("log_text", client.log_text, rid, f"run {i} of client {os.getpid()}\n", "notes.txt")
        timed("end_run", client.set_terminated, rid)
    Path(out).write_text(json.dumps({"began": began, "ended": time.time(), "latency": lat}))


def _p95(values: list[float]) -> float:
    import numpy as np

    return float(np.percentile(values, 95)) * 1000 if values else float("nan")


def measure(uri: str, clients: int, runs: int, work: Path, artifact_root: str | None = None) -> dict[str, Any]:
    """Run ``clients`` concurrent clients logging ``runs`` runs each against ``uri``."""
    import mlflow

    from common.tracking import _retry

    client = mlflow.MlflowClient(uri)
    name = f"bench-store-{clients}x{runs}-{int(time.time() * 1000)}"
    exp_id = _retry(client.create_experiment, name, artifact_location=artifact_root and f"{artifact_root}/{name}")
    folder = Path(tempfile.mkdtemp(prefix=f"k{clients}-", dir=work))
    go = folder / "go"
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "PYTHONPATH": str(repo_root())}
    procs = [subprocess.Popen([sys.executable, "-c", _CLIENT, uri, exp_id, str(runs), str(folder / f"ready{i}"),
                               str(go), str(folder / f"out{i}.json")], env=env, cwd=repo_root(),
                              stdout=subprocess.DEVNULL)  # MLflow prints a "View run" link per run
             for i in range(clients)]
    deadline = time.monotonic() + 300
    while sum((folder / f"ready{i}").exists() for i in range(clients)) < clients:
        if time.monotonic() > deadline or any(p.poll() not in (None, 0) for p in procs):
            for p in procs:
                p.kill()
            raise RuntimeError(f"benchmark clients did not start against {uri}")
        time.sleep(0.05)
    start = time.time()
    go.touch()
    for p in procs:
        if p.wait(timeout=1800) != 0:
            raise RuntimeError(f"a benchmark client failed against {uri} (exit {p.returncode})")
    results = [json.loads((folder / f"out{i}.json").read_text()) for i in range(clients)]
    seconds = max(r["ended"] for r in results) - start
    lat = {c: [x for r in results for x in r["latency"][c]] for c in CALLS}
    return {"clients": clients, "runs_per_client": runs, "runs": clients * runs, "seconds": round(seconds, 3),
            "runs_per_s": round(clients * runs / seconds, 2),
            "p95_ms": {c: round(_p95(v), 1) for c, v in lat.items()}}


def run(clients: Sequence[int] = (1, 2, 4, 8), runs: int = 10, uri: str | None = None,
        sqlite: bool = True, server_stack: bool = True) -> dict[str, Any]:
    """Benchmark the embedded sqlite store and the server; returns rows per store and client count."""
    from common import server, tracking

    rows: list[dict[str, Any]] = []
    work = Path(tempfile.mkdtemp(prefix="mlp-bench-store-"))
    state: Path | None = None
    info: dict[str, Any] = {"runs_per_client": runs, "cpus": os.cpu_count()}
    try:
        if sqlite:
            db = work / "mlflow.db"
            sqlite_uri = f"sqlite:///{db}"
            tracking._init_sqlite_store(sqlite_uri)  # create the schema once, as `configure()` does
            for k in clients:
                rows.append({"store": "sqlite", **measure(sqlite_uri, k, runs, work, (work / "art").as_uri())})
                log.info("sqlite, %d clients: %.1f runs/s", k, rows[-1]["runs_per_s"])
        if uri or server_stack:
            target = uri
            if target is None:
                state = Path(tempfile.mkdtemp(prefix="mlp-bench-server-"))
                began = time.perf_counter()
                target = server.start(state).uri
                info["server_start_s"] = round(time.perf_counter() - began, 1)
            for k in clients:
                rows.append({"store": "server", **measure(target, k, runs, work)})  # type: ignore[arg-type]
                log.info("server, %d clients: %.1f runs/s", k, rows[-1]["runs_per_s"])
    finally:
        if state is not None:
            server.stop(state)
            shutil.rmtree(state, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)
    return {**info, "rows": rows}


def print_report(report: dict[str, Any]) -> None:
    """The rows as a rich table."""
    from rich.table import Table

    from common.console import console

    table = Table(title=f"tracking store: K clients x {report['runs_per_client']} runs "
                        f"({report.get('cpus')} CPUs)")
    for col in ("store", "K", "runs", "s", "runs/s", *(f"p95 {c} ms" for c in CALLS)):
        table.add_column(col, justify="left" if col == "store" else "right")
    for row in report["rows"]:
        table.add_row(row["store"], str(row["clients"]), str(row["runs"]), f"{row['seconds']:.1f}",
                      f"{row['runs_per_s']:.1f}", *(f"{row['p95_ms'][c]:.0f}" for c in CALLS))
    console.print(table)


def write_json(report: dict[str, Any], path: Path) -> None:
    """Write the report (via a temporary file, so a half-written file never has the final name)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(report, indent=2))
    os.replace(tmp, path)
