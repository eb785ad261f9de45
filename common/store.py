"""Store hygiene: find (and repair) what a killed training leaves behind, through MLflow's public API.

A ``kill -9`` (or a crash of the machine) during ``train`` leaves two kinds of debris:

* a run stuck in ``RUNNING``: MLflow only ends a run when the process ends it. Every training run is
  tagged with its process id and host (``owner_tags``), so a RUNNING run of *this* host whose process is
  gone (or whose pid now belongs to another program) is certainly dead and is marked ``KILLED``. A run
  from another host, or one without those tags, is only "possibly stale" once older than ``stale_hours``:
  this machine cannot see its process, so it is repaired only when asked (``include_stale``).
* a registered version without the promotion tags (``primary_score``, ``protocol``, ``dataset_sha256``):
  the kill came between "Created version N" and ``tracking.promote``, so the version is never compared. If
  its run FINISHED with everything ``promote`` needs, the tags are completed by calling ``tracking.promote``
  (the same comparison and champion repair as a training); otherwise the version is archived.

Archiving: MLflow 3 deprecates stages, so an archived version gets the tags ``archived=true``,
``archived_reason`` and ``archived_by`` and is otherwise left in place (its artifacts and lineage stay
inspectable; ``mlflow`` can delete it). It has no score tags, so the champion rule never picks it.

The champion is never harmed: a completed version competes under the usual rule; an untagged version
should never hold ``@champion`` (``promote`` writes tags before the alias), and if one does ``check``
reports it loudly and only ``repair`` moves the alias, to the best scored version, never to nothing.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from common import tracking

log = logging.getLogger(__name__)

PID_TAG = "mlprojects.pid"
HOST_TAG = "mlprojects.host"
KILLED_BY_TAG = "mlprojects.killed_by"
ARCHIVED_TAG = "archived"
SCORE_TAGS = frozenset({"primary_score", "protocol", "dataset_sha256"})

DEAD_RUN = "dead run"
STALE_RUN = "possibly stale run"
UNSCORED = "unscored version"
CHAMPION_UNSCORED = "unscored CHAMPION"
SKIPPED = "left alone"

_START_SLACK_S = 2.0  # /proc start times are rounded (boot time to the second): allow for it


def owner_tags() -> dict[str, str]:
    """Run tags naming the training process, so a later check can tell whether it is still alive."""
    return {PID_TAG: str(os.getpid()), HOST_TAG: socket.gethostname()}


@dataclass
class Finding:
    """One piece of debris (or a notice) found in the store."""

    kind: str
    subject: str
    detail: str
    action: str  # what ``repair`` does about it; "" when nothing
    debris: bool  # True: plain ``repair`` fixes it and ``doctor`` exits 1 until then
    run_id: str | None = None
    model: str | None = None
    version: str | None = None
    promote_args: dict[str, Any] | None = None  # set when the version's tags can be completed from its run


@dataclass
class Report:
    """What ``check`` found in one store."""

    uri: str
    host: str
    stale_hours: float
    findings: list[Finding] = field(default_factory=list)

    @property
    def debris(self) -> list[Finding]:
        """The findings a plain ``repair`` fixes."""
        return [f for f in self.findings if f.debris]


# ------------------------------------------------------------------------------------------ processes
def _boot_time() -> float | None:
    try:
        for line in Path("/proc/stat").read_text().splitlines():
            if line.startswith("btime "):
                return float(line.split()[1])
    except OSError:
        pass
    return None


def process_gone(pid: int, run_start_ms: int | None) -> str | None:
    """Why the process that started a run is no longer running it, or None when it (probably) still is.

    Without ``/proc`` (not Linux) only existence is checked. With it, a zombie counts as gone, and so does a
    pid that now belongs to a process started after the run or that is not Python (the pid was reused).
    """
    if pid == os.getpid():
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return f"process {pid} has exited"
    except PermissionError:
        pass  # it exists and belongs to another user: judge it by /proc below
    except OSError as exc:
        return f"process {pid} cannot be signalled ({exc.strerror})"
    proc = Path("/proc") / str(pid)
    try:
        stat = (proc / "stat").read_text()
        cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return None  # no /proc (or it vanished just now): existence was all we could check
    fields = stat[stat.rindex(")") + 2:].split()
    if fields[0] == "Z":
        return f"process {pid} has exited (zombie)"
    boot = _boot_time()
    if boot is not None and run_start_ms:
        started = boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")
        if started > run_start_ms / 1000 + _START_SLACK_S:
            return f"pid {pid} was reused by a process started after the run"
    if cmdline and "python" not in cmdline and "mlprojects" not in cmdline:
        return f"pid {pid} now belongs to another program ({cmdline.split(' ')[0][:40]})"
    return None


# ------------------------------------------------------------------------------------------- reading
def _client(uri: str) -> Any:
    import mlflow

    return mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)


def _pages(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Iterator[Any]:
    """Every item of a paginated MLflow search (``PagedList`` with a ``token``)."""
    token = None
    while True:
        page = tracking._retry(fn, *args, page_token=token, **kwargs)
        yield from page
        token = getattr(page, "token", None)
        if not token:
            return


def running_runs(client: Any, extra_filter: str = "") -> list[Any]:
    """Every active run in state RUNNING, across experiments (one search per page of runs)."""
    experiments = [e.experiment_id for e in _pages(client.search_experiments, max_results=1000)]
    if not experiments:
        return []
    query = "attributes.status = 'RUNNING'" + (f" and {extra_filter}" if extra_filter else "")
    return list(_pages(client.search_runs, experiments, filter_string=query, max_results=1000))


def _owner(run: Any) -> tuple[str | None, int | None]:
    tags = run.data.tags
    try:
        pid = int(tags[PID_TAG]) if PID_TAG in tags else None
    except ValueError:
        pid = None
    return tags.get(HOST_TAG), pid


def _project_of(run: Any) -> str:
    return run.data.tags.get("project") or run.info.experiment_id


def _hours(ms: int | None) -> float:
    return (time.time() * 1000 - (ms or 0)) / 3.6e6


def _check_runs(client: Any, host: str, stale_hours: float) -> list[Finding]:
    out = []
    for run in running_runs(client):
        run_host, pid = _owner(run)
        subject = f"run {run.info.run_id[:12]} ({_project_of(run)})"
        if run_host == host and pid is not None:
            why = process_gone(pid, run.info.start_time)
            if why:
                out.append(Finding(DEAD_RUN, subject, f"RUNNING, but {why}", "mark KILLED", True,
                                   run_id=run.info.run_id))
            continue
        age = _hours(run.info.start_time)
        if age >= stale_hours:
            where = f"on host {run_host} (pid {pid})" if run_host else "with no mlprojects.pid/host tags"
            out.append(Finding(STALE_RUN, subject, f"RUNNING for {age:.0f} h, started {where}",
                               "mark KILLED with --include-stale", False, run_id=run.info.run_id))
    return out


def _completion(run: Any, spec: Any) -> tuple[dict[str, Any] | None, str]:
    """``tracking.promote``'s arguments from a finished run, or None and why it cannot be completed."""
    if run is None:
        return None, "its run no longer exists"
    status = run.info.status
    if status != "FINISHED":
        return None, f"its run is {status} (the training did not complete)"
    metrics, tags, params = run.data.metrics, run.data.tags, run.data.params
    missing = [n for n, ok in (("metric primary_metric", "primary_metric" in metrics),
                               ("tag protocol", "protocol" in tags), ("tag dataset.sha256", "dataset.sha256" in tags),
                               ("param sample", "sample" in params)) if not ok]
    if missing:
        return None, f"its run lacks {', '.join(missing)}"
    return {"score": float(metrics["primary_metric"]), "protocol": tags["protocol"],
            "dataset_sha256": tags["dataset.sha256"], "sampled": params["sample"] != "all"}, "its run FINISHED"


def _check_versions(client: Any, runs: list[Finding]) -> list[Finding]:
    import mlflow

    from common import registry
    from common.errors import MLProjectsError

    dead = {f.run_id for f in runs if f.kind == DEAD_RUN}
    stale = {f.run_id for f in runs if f.kind == STALE_RUN}
    champions: dict[str, str | None] = {}
    out = []
    for mv in _pages(client.search_model_versions, max_results=1000):
        tags = mv.tags or {}
        if mv.status != "READY" or SCORE_TAGS <= tags.keys() or tags.get(ARCHIVED_TAG) == "true":
            continue
        subject = f"{mv.name} v{mv.version}"
        kwargs = {"model": mv.name, "version": str(mv.version), "run_id": mv.run_id}
        try:
            spec = registry.get_spec(mv.name)
        except MLProjectsError:
            out.append(Finding(SKIPPED, subject, "no promotion tags, but not an mlprojects project", "", False,
                               **kwargs))
            continue
        run = None
        if mv.run_id:
            try:
                run = tracking._retry(client.get_run, mv.run_id)
            except mlflow.exceptions.MlflowException:
                run = None
        if mv.name not in champions:  # searches do not fill in aliases: ask once per model
            holder = tracking._champion(client, mv.name)
            champions[mv.name] = None if holder is None else str(holder.version)
        holds_champion = champions[mv.name] == str(mv.version)
        if run is not None and run.info.status == "RUNNING" and mv.run_id not in dead:
            if mv.run_id in stale:
                out.append(Finding(UNSCORED, subject, "no promotion tags; its run looks stale",
                                   "archive with --include-stale", False, **kwargs))
            continue  # its training is still running and will tag it itself
        args, why = _completion(run, spec) if mv.run_id not in dead else (None, "its training process died")
        if args is not None:
            out.append(Finding(UNSCORED, subject, f"no promotion tags; {why}",
                               "complete the tags from its run and compare with @champion", True,
                               promote_args=args, **kwargs))
        elif holds_champion:
            log.error("%s holds @champion but has no promotion tags (%s)", subject, why)
            out.append(Finding(CHAMPION_UNSCORED, subject, f"holds @champion with no promotion tags; {why}",
                               "move @champion to the best scored version, then archive", True, **kwargs))
        else:
            out.append(Finding(UNSCORED, subject, f"no promotion tags; {why}", "archive", True, **kwargs))
    return out


def check(uri: str, stale_hours: float = 24.0) -> Report:
    """Find dead or stale RUNNING runs and registered versions that were never scored; changes nothing."""
    client = _client(uri)
    report = Report(uri, socket.gethostname(), stale_hours)
    report.findings = _check_runs(client, report.host, stale_hours)
    report.findings += _check_versions(client, report.findings)
    return report


# -------------------------------------------------------------------------------------------- writing
def _who(what: str) -> str:
    return f"{what} (pid {os.getpid()} on {socket.gethostname()}, {datetime.now(UTC):%Y-%m-%dT%H:%M:%SZ})"


def _kill(client: Any, run_id: str, who: str, reason: str) -> None:
    tracking._retry(client.set_terminated, run_id, "KILLED")
    tracking._retry(client.set_tag, run_id, KILLED_BY_TAG, who)
    tracking._retry(client.set_tag, run_id, "mlprojects.killed_reason", reason[:500])


def _archive(client: Any, name: str, version: str, who: str, reason: str) -> None:
    for key, value in ((ARCHIVED_TAG, "true"), ("archived_reason", reason[:500]), ("archived_by", who)):
        tracking._retry(client.set_model_version_tag, name, version, key, value)


def _move_champion(client: Any, name: str, away_from: str) -> str | None:
    """Give ``@champion`` to the best scored version (the usual rule); None when none is scored."""
    from common import registry

    spec = registry.get_spec(name)
    versions = [mv for mv in _pages(client.search_model_versions, f"name='{name}'", max_results=1000)
                if (mv.tags or {}).get(ARCHIVED_TAG) != "true" and str(mv.version) != away_from]
    candidates = tracking._candidates(versions)
    if not candidates:
        return None
    # Start from the newest full-data version (else the newest); the repair rule then picks its group's best.
    full = [c for c in candidates.values() if not c.sampled] or list(candidates.values())
    start = max(full, key=lambda c: c.version)
    tracking.set_champion(client, name, start.version)
    return tracking._repair_champion(client, spec)


def repair(report: Report, include_stale: bool = False) -> list[str]:
    """Fix the report's debris (and its stale runs with ``include_stale``); returns one line per action.

    ``report.uri`` becomes MLflow's current store, because ``tracking.promote`` uses it.
    """
    import mlflow

    from common import registry

    mlflow.set_tracking_uri(report.uri)
    mlflow.set_registry_uri(report.uri)
    client = _client(report.uri)
    who = _who("mlprojects doctor --repair")
    done: list[str] = []
    chosen = [f for f in report.findings if f.debris or (include_stale and f.kind in (STALE_RUN, UNSCORED))]
    for f in [f for f in chosen if f.kind in (DEAD_RUN, STALE_RUN)]:
        _kill(client, f.run_id, who, f.detail)
        done.append(f"{f.subject}: marked KILLED")
    for f in [f for f in chosen if f.kind in (UNSCORED, CHAMPION_UNSCORED)]:
        if f.promote_args is not None:
            outcome = tracking.promote(registry.get_spec(f.model), f.version, **f.promote_args)
            tracking._retry(client.set_model_version_tag, f.model, f.version, "completed_by", who)
            state = "now @champion" if outcome.promoted else "challenger"
            done.append(f"{f.subject}: tags completed from its run, compared: {state} ({outcome.reason})")
            continue
        if f.kind == CHAMPION_UNSCORED:
            holder = _move_champion(client, f.model, f.version)
            if holder is None:
                done.append(f"{f.subject}: NOT archived: it holds @champion and no scored version can take it")
                continue
            done.append(f"{f.subject}: @champion moved to v{holder}")
        _archive(client, f.model, f.version, who, f.detail)
        done.append(f"{f.subject}: archived ({f.detail})")
    return done


def sweep(uri: str) -> list[str]:
    """Mark this host's RUNNING runs whose process is gone KILLED (cheap: one filtered search); their ids.

    Called when a training command opens the store. Only runs tagged with this host are looked at, so a
    run of another machine, or one still in progress here, is never touched.
    """
    client = _client(uri)
    host = socket.gethostname()
    killed = []
    for run in running_runs(client, f"tags.`{HOST_TAG}` = '{host}'"):
        run_host, pid = _owner(run)
        if run_host != host or pid is None:
            continue
        why = process_gone(pid, run.info.start_time)
        if why:
            _kill(client, run.info.run_id, _who("mlprojects train (start-up sweep)"), f"RUNNING, but {why}")
            killed.append(run.info.run_id[:12])
    return killed
