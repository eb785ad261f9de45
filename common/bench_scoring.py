"""Scoring benchmark (``mlprojects bench-scoring``): rows/s and peak memory of one-shot, streaming and Spark
scoring on generated raw rows of 1M and 10M rows.

Inputs are generated chunk by chunk with each project's ``synthetic.generate`` straight into a Parquet file
(row groups of 100k rows), so the benchmark never holds the whole input. Each measurement runs in its own
child process (``python -m common.bench_scoring child ...``); the parent samples the resident memory of the
child's whole process tree from /proc (for Spark: the driver, its JVM and the Python workers) every 0.1 s,
and reads the child's own peak (``ru_maxrss``) from ``os.wait4``. A tree that grows past ``max_rss_gb`` is
stopped and reported as such rather than taking a shared machine down. Linux only (/proc).
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from common.console import console, log
from common.errors import InputError

MODES = ("oneshot", "stream", "spark")
PROJECTS = ("house_prices", "churn", "spam")
ROW_GROUP = 100_000
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


@dataclass
class Measurement:
    """One (project, rows, mode) run."""

    project: str
    rows: int
    mode: str
    seconds: float | None
    rows_per_s: float | None
    peak_rss_mb: float | None  # the whole process tree, sampled
    child_maxrss_mb: float | None  # the child process alone, exact (ru_maxrss)
    status: str  # ok, killed: over the memory cap, failed: the message


def generate_input(project: str, rows: int, path: Path, seed: int = 0) -> Path:
    """Write ``rows`` generated raw input rows of ``project`` to a Parquet file, 100k rows at a time."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    synthetic = importlib.import_module(f"projects.{project}.synthetic")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.part-{os.getpid()}")
    writer = None
    schema = None
    try:
        for start in range(0, rows, ROW_GROUP):
            n = min(ROW_GROUP, rows - start)
            chunk = _chunk(project, synthetic, n, seed + start // ROW_GROUP)
            chunk.insert(0, _ID.get(project, "row"), range(start, start + n))
            table = pa.Table.from_pandas(chunk, preserve_index=False, schema=schema)
            if writer is None:
                schema = table.schema.remove_metadata()
                table = table.cast(schema)
                writer = pq.ParquetWriter(tmp, schema)
            writer.write_table(table)
        if writer is not None:
            writer.close()
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


_ID = {"house_prices": "Id", "churn": "customerID", "spam": "row"}


def _chunk(project: str, synthetic: Any, n: int, seed: int) -> pd.DataFrame:
    """``n`` raw rows of the real schema from the project's generator (texts: a ``text`` column)."""
    if project == "spam":
        texts: list[str] = []
        while len(texts) < n:
            texts += [str(t) for t in synthetic.generate(n=min(n, 20_000), seed=seed * 1000 + len(texts)).X]
        return pd.DataFrame({"text": texts[:n]})
    frame = synthetic.generate(n, seed=seed).X.reset_index(drop=True).iloc[:n]
    if project == "churn" and "customerID" in frame.columns:
        frame = frame.drop(columns=["customerID"])
    return frame


def _tree_rss(root: int) -> int:
    """Resident bytes of ``root`` and all its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                stat = fh.read()
            ppid = int(stat[stat.rindex(b")") + 2:].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        todo.extend(children.get(pid, []))
        try:
            with open(f"/proc/{pid}/statm", "rb") as fh:
                total += int(fh.read().split()[1]) * _PAGE
        except (OSError, ValueError, IndexError):
            continue
    return total


def measure(mode: str, project: str, src: Path, dst: Path, rows: int, batch_size: int, master: str,
            max_rss_gb: float, timeout_s: float) -> Measurement:
    """Run one mode in a child process and measure it (rows/s from the child's own scoring time)."""
    result_file = dst.with_name(dst.name + ".result.json")
    result_file.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "common.bench_scoring", "child", mode, project, str(src), str(dst),
           str(batch_size), master, str(result_file)]
    proc = subprocess.Popen(cmd, start_new_session=True)  # its own group: stopping it stops Spark's JVM too
    peak, status, start = 0, "ok", time.monotonic()
    cap = max_rss_gb * 1024**3
    rusage = None
    while True:
        pid, wait_status, rusage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(wait_status)
            break
        peak = max(peak, _tree_rss(proc.pid))
        if peak > cap or time.monotonic() - start > timeout_s:
            status = f"stopped: over {max_rss_gb:g} GiB" if peak > cap else f"stopped: over {timeout_s:.0f}s"
            os.killpg(proc.pid, signal.SIGKILL)
            _, _, rusage = os.wait4(proc.pid, 0)
            break
        time.sleep(0.1)
    maxrss = rusage.ru_maxrss / 1024 if rusage else None  # KiB on Linux
    seconds = None
    if status == "ok":
        if proc.returncode != 0 or not result_file.exists():
            status = f"failed (exit {proc.returncode})"
        else:
            seconds = json.loads(result_file.read_text())["seconds"]
    result_file.unlink(missing_ok=True)
    return Measurement(project, rows, mode, seconds, rows / seconds if seconds else None, peak / 1024**2,
                       maxrss, status)


def child(mode: str, project: str, src: str, dst: str, batch_size: int, master: str, result_file: str) -> None:
    """The measured work: one scoring run of ``mode``; writes its own scoring time to ``result_file``."""
    from common import predict, stream

    start = time.perf_counter()
    if mode == "oneshot":  # today's `mlprojects predict --input F --output out.csv`: whole file in memory
        frame = predict.predict_cli(project, input_path=src)
        predict.write_table(frame, Path(dst))
    elif mode == "stream":
        stream.score_file(project, src, dst, batch_size=batch_size, progress=False)
    elif mode == "spark":
        from common import spark_scoring

        spark_scoring.score(project, src, dst, master=master, driver_memory="2g")
    else:
        raise InputError(f"Unknown mode {mode!r}; use one of {', '.join(MODES)}.")
    Path(result_file).write_text(json.dumps({"seconds": time.perf_counter() - start}))


def run(projects: Sequence[str] = PROJECTS, sizes: Sequence[int] = (1_000_000,), modes: Sequence[str] = MODES,
        workdir: Path | None = None, batch_size: int = 50_000, master: str = "local[2]",
        max_rss_gb: float = 8.0, timeout_s: float = 3600.0, keep: bool = False,
        results: Path | None = None) -> list[Measurement]:
    """Measure every (project, size, mode); generated inputs are reused when they exist (``keep``).

    Args:
        workdir: where inputs and outputs go (default ``<tmp>/mlprojects-bench-scoring``: a 10M-row input is
            about 1 GB).
        results: a JSON file rewritten after each measurement.
    """
    import tempfile

    workdir = Path(workdir) if workdir else Path(tempfile.gettempdir()) / "mlprojects-bench-scoring"
    out: list[Measurement] = []
    for project in projects:
        for rows in sizes:
            src = workdir / f"{project}-{rows}.parquet"
            if not src.exists():
                with console.status(f"generating {rows:,} {project} rows"):
                    generate_input(project, rows, src)
            for mode in modes:
                dst = workdir / f"{project}-{rows}-{mode}" if mode == "spark" else \
                    workdir / f"{project}-{rows}-{mode}.{'csv' if mode == 'oneshot' else 'parquet'}"
                with console.status(f"{project} {rows:,} rows: {mode}"):
                    m = measure(mode, project, src, dst, rows, batch_size, master, max_rss_gb, timeout_s)
                log.info("%s", m)
                out.append(m)
                _remove(dst)
                if results is not None:  # after each measurement: a long run stopped half-way keeps its numbers
                    results.parent.mkdir(parents=True, exist_ok=True)
                    results.write_text(json.dumps([asdict(x) for x in out], indent=2))
            if not keep:
                _remove(src)
    return out


def _remove(path: Path) -> None:
    import shutil

    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def table(rows: Sequence[Measurement]) -> str:
    """The results as a Markdown table (the one docs/scoring.md shows)."""
    lines = ["| project | rows | mode | rows/s | peak RSS (tree) | peak RSS (child) | status |",
             "|---|---:|---|---:|---:|---:|---|"]
    for m in rows:
        lines.append(f"| {m.project} | {m.rows:,} | {m.mode} | "
                     f"{'-' if m.rows_per_s is None else f'{m.rows_per_s:,.0f}'} | "
                     f"{'-' if m.peak_rss_mb is None else f'{m.peak_rss_mb:,.0f} MB'} | "
                     f"{'-' if m.child_maxrss_mb is None else f'{m.child_maxrss_mb:,.0f} MB'} | {m.status} |")
    return "\n".join(lines)


if __name__ == "__main__" and len(sys.argv) == 9 and sys.argv[1] == "child":
    _, _, mode_, project_, src_, dst_, batch_, master_, result_ = sys.argv
    child(mode_, project_, src_, dst_, int(batch_), master_, result_)
