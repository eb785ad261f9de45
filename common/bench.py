"""``mlprojects bench``: fit time, single-row latency, batch throughput, peak memory and model size.

Benchmarks are measured and reported (and logged to MLflow as a ``mode=bench`` run), never asserted by
tests: machines are noisy.
"""

from __future__ import annotations

import os
import platform
import resource
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from common import splits, tracking
from common.console import console, step
from common.protocol import Context
from common.registry import get
from common.train import load_dataset


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run(name: str, overrides: Mapping[str, Any] | None = None, sample: int | None = None,
        data_dir: str | None = None, repeats: int = 200) -> dict[str, Any]:
    """Measure a project's default (or overridden) pipeline on its full data (or a sample)."""
    import tempfile
    from pathlib import Path

    import mlflow

    project = get(name)
    spec = project.spec
    params, data_params = project.resolve_params(overrides)
    # The figures are logged to an existing store, never a new one: check it before measuring, not after
    # (only the file, so that opening the store does not count in the memory figures).
    tracking._check_sqlite_store(tracking.tracking_uri(), create=False)
    ds = load_dataset(project, data_params, sample=sample, data_dir=data_dir)
    rss_before = _peak_rss_mb()
    report: dict[str, Any] = {"project": spec.name, "rows": ds.rows, "params": params,
                              "machine": f"{platform.machine()} {platform.processor() or ''}".strip()}
    with tempfile.TemporaryDirectory() as tmp:
        ctx = Context(project, params, data_params, ds, Path(tmp))
        if project.bench is not None:
            report |= project.bench(ctx)
        else:
            report |= supervised_bench(ctx, repeats)
    report["peak_rss_mb"] = _peak_rss_mb()
    report["data_rss_mb"] = rss_before
    tracking.experiment(spec)
    with mlflow.start_run(run_name=f"{spec.name}-bench"):
        mlflow.set_tags({"project": spec.name, "mode": "bench", "git_commit": tracking.git_commit()})
        mlflow.log_params({**params, "sample": sample or "all"})
        tracking.log_metrics({f"bench_{k}": v for k, v in report.items() if isinstance(v, int | float)})
    return report


@dataclass
class Timed:
    """A call's result with its wall-clock and CPU seconds (CPU time is what a busy machine distorts least)."""

    result: Any
    wall_s: float
    cpu_s: float


def timed(fn: Callable[[], Any]) -> Timed:
    """Run ``fn()`` once and time it."""
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return Timed(out, time.perf_counter() - t0, time.process_time() - c0)


def latency(fn: Callable[[Any], Any], inputs: Sequence[Any], prefix: str = "predict") -> dict[str, float]:
    """p50/p95 milliseconds (wall and CPU) of ``fn(x)`` over ``inputs``, after one untimed warm-up call.

    Build the inputs before calling this, so that slicing rows is not part of what is timed.
    """
    if not inputs:
        return {}
    fn(inputs[0])  # warm-up: lazy imports and caches
    wall, cpu = np.empty(len(inputs)), np.empty(len(inputs))
    for k, x in enumerate(inputs):
        t = timed(lambda x=x: fn(x))
        wall[k], cpu[k] = t.wall_s * 1000, t.cpu_s * 1000
    return {f"{prefix}_p50_ms": float(np.percentile(wall, 50)), f"{prefix}_p95_ms": float(np.percentile(wall, 95)),
            f"{prefix}_cpu_p50_ms": float(np.percentile(cpu, 50)),
            f"{prefix}_cpu_p95_ms": float(np.percentile(cpu, 95))}


def throughput(fn: Callable[[Any], Any], batch: Any, repeats: int = 1, prefix: str = "batch") -> dict[str, float]:
    """Rows per second of ``fn(batch)`` (median of ``repeats`` calls), wall and CPU."""
    rows = splits.n_rows(batch)
    runs = [timed(lambda: fn(batch)) for _ in range(repeats)]
    wall = float(np.median([r.wall_s for r in runs]))
    cpu = float(np.median([r.cpu_s for r in runs]))
    return {f"{prefix}_rows": rows, f"{prefix}_seconds": wall, f"{prefix}_rows_per_s": rows / max(wall, 1e-12),
            f"{prefix}_cpu_rows_per_s": rows / max(cpu, 1e-12)}


def single_rows(X: Any, repeats: int, seed: int = 0) -> list[Any]:
    """``repeats`` one-row inputs drawn at random from ``X`` (built before any timing)."""
    n = splits.n_rows(X)
    return [splits.take(X, np.array([i])) for i in np.random.default_rng(seed).integers(0, n, size=repeats)]


def load_average() -> float:
    """The 1-minute load average, to read wall-clock figures against (NaN where the OS has none)."""
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")


def supervised_bench(ctx: Context, repeats: int) -> dict[str, Any]:
    """Full fit on every labelled row, then single-row latency and batch throughput (wall and CPU)."""
    ds = ctx.dataset
    load = load_average()
    with step(f"Bench: fitting {ctx.spec.name} on {ds.rows} rows"):
        fit = timed(lambda: ctx.build().fit(ds.X, ds.y))
    model = fit.result
    pool = ds.X_test if ds.X_test is not None else ds.X
    batch = splits.take(pool, np.resize(np.arange(splits.n_rows(pool)), max(splits.n_rows(pool), 10_000)))
    return {"load_average_1m": load, "fit_seconds": fit.wall_s, "fit_cpu_seconds": fit.cpu_s,
            **latency(model.predict, single_rows(pool, repeats)), **throughput(model.predict, batch),
            "model_size_mb": tracking.model_size_mb(model)}


def print_report(report: Mapping[str, Any]) -> None:
    """The bench figures as a table."""
    from rich.table import Table

    table = Table(title=f"bench: {report.get('project')}")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for key, value in report.items():
        if key in ("project", "params"):
            continue
        text = f"{value:,.3f}" if isinstance(value, float) else str(value)
        table.add_row(key, text)
    console.print(table)


# ------------------------------------------------------------------------------------ cold load time
_LOAD_AND_PREDICT = r"""
import json, pickle, sys, time
start = time.perf_counter()
from projects import load_pipeline
model = load_pipeline(sys.argv[1], version=sys.argv[2])
with open(sys.argv[3], "rb") as fh:
    example = pickle.load(fh)
loaded = time.perf_counter()
pred = model.predict(example)
done = time.perf_counter()
sys.stdout.write(json.dumps({"load_s": loaded - start, "predict_s": done - loaded, "rows": len(pred),
                             "mlflow": "mlflow" in sys.modules, "tensorflow": "tensorflow" in sys.modules}) + "\n")
"""


def load_times(names: list[str] | None = None, runs: int = 3) -> list[dict[str, Any]]:
    """Wall time of a new Python process that loads each champion and predicts one row (issue bar: < 3 s).

    The row is the first row of the input example logged with the model; for time-ordered projects
    (``stocks``) it is the whole example, because one forecast needs a window of history. One untimed run warms the file cache, then ``runs``
    timed runs; the median is reported. The child reports whether it imported MLflow or TensorFlow.
    """
    import json
    import os
    import pickle
    import statistics
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    import mlflow

    from common.registry import get_spec
    from common.registry import names as all_names

    tracking.configure()
    client = mlflow.MlflowClient()
    rows = []
    for name in names or all_names():
        spec = get_spec(name)
        try:
            version = client.get_model_version_by_alias(spec.name, tracking.CHAMPION)
        except mlflow.exceptions.MlflowException:
            rows.append({"project": spec.name, "skipped": f"no champion: run `make {spec.make_target}`"})
            continue
        uri = f"models:/{spec.name}/{version.version}"
        with tempfile.TemporaryDirectory() as tmp:
            local = mlflow.artifacts.download_artifacts(uri, dst_path=tmp)
            example = mlflow.models.Model.load(local).load_input_example(local)
            if hasattr(example, "iloc") and spec.split.kind != "time":
                example = example.iloc[:1]
            elif isinstance(example, list | np.ndarray):
                example = example[:1]
            path = Path(tmp) / "example.pkl"
            path.write_bytes(pickle.dumps(example))
            cmd = [sys.executable, "-c", _LOAD_AND_PREDICT, spec.name, str(version.version), str(path)]
            env = {**os.environ, "MLFLOW_TRACKING_URI": tracking.tracking_uri()}
            walls, child = [], {}
            for i in range(runs + 1):
                with step(f"{spec.name} v{version.version}: new process {i}/{runs}" + (" (warm-up)" if i == 0 else "")):
                    t0 = time.perf_counter()
                    out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=os.getcwd())
                    wall = time.perf_counter() - t0
                if out.returncode != 0:
                    rows.append({"project": spec.name, "error": out.stderr.strip().splitlines()[-1][:200]})
                    break
                child = json.loads(out.stdout.strip().splitlines()[-1])
                if i:
                    walls.append(wall)
            else:
                rows.append({"project": spec.name, "version": version.version,
                             "median_s": statistics.median(walls), "runs_s": walls, **child})
    return rows


def print_load_times(rows: list[dict[str, Any]]) -> None:
    """The load-time figures as a table."""
    from rich.table import Table

    table = Table(title="new process: import, load the champion, predict one row (wall seconds)")
    for col in ("project", "version", "median s", "runs s", "load s", "predict s", "mlflow", "tensorflow"):
        table.add_column(col, justify="left" if col == "project" else "right")
    for r in rows:
        if "error" in r or "skipped" in r:
            table.add_row(r["project"], "-", "-", r.get("error") or r["skipped"], "", "", "", "")
            continue
        table.add_row(r["project"], str(r["version"]), f"{r['median_s']:.2f}",
                      " ".join(f"{w:.2f}" for w in r["runs_s"]), f"{r['load_s']:.2f}", f"{r['predict_s']:.3f}",
                      "yes" if r["mlflow"] else "no", "yes" if r["tensorflow"] else "no")
    console.print(table)
