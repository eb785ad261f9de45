"""The team stack: one MLflow tracking server on a private PostgreSQL cluster, with proxied artifacts.

``mlprojects server start`` keeps everything in one git-ignored folder (``.mlprojects-server/`` in the
checkout, or ``$MLPROJECTS_SERVER_DIR``):

* ``pgdata/``: the PostgreSQL cluster (``initdb`` once; database and role ``mlflow``, password auth on
  127.0.0.1 only, trust on the private socket in ``run/``);
* ``artifacts/``: the default ``--artifacts-destination`` (an ``s3://bucket/prefix`` may replace it);
* ``server.json``: ports, the generated database password and the artifact destination (mode 600);
* ``mlflow.pid``, ``postgres.pid``, ``mlflow.log``, ``postgres.log``.

Both processes listen on 127.0.0.1 only. ``stop`` ends exactly the processes ``start`` started (pid file
plus a command-line check) and keeps the data; a second ``start`` reuses the cluster, the database and,
when they are still free, the ports.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from common.datasets import repo_root
from common.errors import ServerError

log = logging.getLogger(__name__)

STATE_ENV = "MLPROJECTS_SERVER_DIR"
ARTIFACTS_ENV = "MLPROJECTS_SERVER_ARTIFACTS"
S3_ENDPOINT_ENV = "MLFLOW_S3_ENDPOINT_URL"
DB_NAME = "mlflow"
HOST = "127.0.0.1"
SETTINGS = "server.json"


@dataclass
class Stack:
    """What ``start``/``status``/``stop`` found: ports, pids, liveness and messages for the user."""

    state_dir: Path
    port: int | None = None
    pg_port: int | None = None
    artifacts: str | None = None
    mlflow_pid: int | None = None
    pg_pid: int | None = None
    notes: list[str] = field(default_factory=list)
    orphan_group: int | None = None  # a dead server's process group whose workers still run

    @property
    def mlflow_alive(self) -> bool:
        return self.mlflow_pid is not None

    @property
    def pg_alive(self) -> bool:
        return self.pg_pid is not None

    @property
    def running(self) -> bool:
        return self.mlflow_alive and self.pg_alive

    @property
    def uri(self) -> str | None:
        return f"http://{HOST}:{self.port}" if self.port else None


# --------------------------------------------------------------------------------------------- locations
def state_dir() -> Path:
    """``$MLPROJECTS_SERVER_DIR`` or ``.mlprojects-server/`` in the checkout."""
    env = os.environ.get(STATE_ENV)
    return Path(env).expanduser().resolve() if env else repo_root() / ".mlprojects-server"


def pg_bindir() -> Path:
    """The folder with ``initdb`` and ``pg_ctl``: ``pg_config --bindir``, else the newest Debian install."""
    candidates: list[Path] = []
    if shutil.which("pg_config"):
        try:
            out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, timeout=10)
            candidates.append(Path(out.stdout.strip()))
        except (OSError, subprocess.SubprocessError):
            pass

    def major(p: Path) -> float:
        try:
            return float(p.parent.name)
        except ValueError:
            return 0.0

    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=major, reverse=True)
    for name in ("initdb", "pg_ctl"):
        found = shutil.which(name)
        if found:
            candidates.append(Path(found).resolve().parent)
    for folder in candidates:
        if (folder / "initdb").exists() and (folder / "pg_ctl").exists():
            return folder
    raise ServerError(
        "PostgreSQL is not installed (no initdb/pg_ctl found via pg_config or /usr/lib/postgresql/*/bin). "
        "Install it with `sudo apt-get install postgresql` (Debian/Ubuntu) and run the command again."
    )


def _as_root() -> bool:
    return os.geteuid() == 0


def _as_pg(cmd: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: run its tools as the ``postgres`` system user then."""
    return ["runuser", "-u", "postgres", "--", *cmd] if _as_root() else cmd


def _chown_pg(path: Path) -> None:
    if _as_root():
        shutil.chown(path, "postgres", "postgres")


# ------------------------------------------------------------------------------------------- processes
def port_free(port: int) -> bool:
    """Whether nothing listens on ``127.0.0.1:port`` (a bind test)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As the servers do: connections of a stopped server lingering in TIME_WAIT do not make it taken.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (exited, not yet reaped by its parent) is not running
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _group_members(pgid: int, must_contain: tuple[str, ...]) -> list[int]:
    """Live processes of process group ``pgid`` whose command line has every one of ``must_contain``."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        pid = int(stat.parent.name)
        if int(fields[2]) == pgid and fields[0] != "Z" and all(m in _cmdline(pid) for m in must_contain):
            members.append(pid)
    return members


def _checked_pid(pid_file: Path, must_contain: tuple[str, ...], notes: list[str]) -> int | None:
    """The pid in ``pid_file`` if that process runs and is ours; a stale file is removed with a note."""
    if not pid_file.exists():
        return None
    try:
        pid = int(pid_file.read_text().split()[0])
    except (ValueError, IndexError, OSError):
        pid = -1
    if pid > 0 and _alive(pid) and all(s in _cmdline(pid) for s in must_contain):
        return pid
    pid_file.unlink(missing_ok=True)
    notes.append(f"Removed stale pid file {pid_file.name} (process {pid} is not running or is not ours).")
    return None


def _read_pid(pid_file: Path) -> int | None:
    try:
        return int(pid_file.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _write_atomic(path: Path, text: str, mode: int = 0o644) -> None:
    """Write via a temporary file and rename, so a crash never leaves a half-written file under its name."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    tmp.chmod(mode)
    os.replace(tmp, path)


# -------------------------------------------------------------------------------------------- settings
def _load_settings(state: Path) -> dict:
    try:
        return json.loads((state / SETTINGS).read_text())
    except (OSError, ValueError):
        return {}


def _save_settings(state: Path, settings: dict) -> None:
    _write_atomic(state / SETTINGS, json.dumps(settings, indent=2), mode=0o600)


def _choose_port(what: str, requested: int | None, stored: int | None, notes: list[str]) -> int:
    if requested:
        if not port_free(requested):
            raise ServerError(f"Port {requested} for {what} is taken on {HOST}. Choose another one, or omit the "
                              "option to let mlprojects pick a free port.")
        return requested
    if stored and port_free(stored):
        return stored
    port = free_port()
    if stored:
        notes.append(f"{what} port {stored} is taken now; using {port} instead.")
    return port


# -------------------------------------------------------------------------------------------- postgres
def _pgdata(state: Path) -> Path:
    return state / "pgdata"


def _socket_dir(state: Path) -> Path:
    return state / "run"


def _pg_status(bindir: Path, state: Path, notes: list[str]) -> int | None:
    """The postmaster's pid when the cluster in ``state`` runs (``pg_ctl status`` plus the pid file)."""
    pgdata = _pgdata(state)
    if not (pgdata / "PG_VERSION").exists():
        (state / "postgres.pid").unlink(missing_ok=True)
        return None
    done = subprocess.run(_as_pg([str(bindir / "pg_ctl"), "status", "-D", str(pgdata)]),
                          capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        _checked_pid(state / "postgres.pid", ("postgres",), notes)
        return None
    try:
        pid = int((pgdata / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    _write_atomic(state / "postgres.pid", f"{pid}\n")
    return pid


def _check_traversable(state: Path) -> None:
    if not _as_root():
        return
    done = subprocess.run(_as_pg(["test", "-x", str(state)]), capture_output=True, timeout=30)
    if done.returncode != 0:
        raise ServerError(
            f"The postgres system user cannot reach {state} (a parent folder is private). Set "
            f"{STATE_ENV} to a folder every user can traverse (for example under /srv or /var/tmp)."
        )


def _init_cluster(bindir: Path, state: Path) -> None:
    pgdata = _pgdata(state)
    pgdata.mkdir(mode=0o700, exist_ok=True)
    _chown_pg(pgdata)
    log.info("creating the PostgreSQL cluster in %s", pgdata)
    done = subprocess.run(
        _as_pg([str(bindir / "initdb"), "-D", str(pgdata), "-U", "postgres", "-E", "UTF8", "--no-locale",
                "--auth-local=trust", "--auth-host=scram-sha-256"]),
        capture_output=True, text=True, timeout=300,
    )
    if done.returncode != 0:
        raise ServerError(f"initdb failed in {pgdata}:\n{(done.stdout + done.stderr)[-2000:]}")


def _start_postgres(bindir: Path, state: Path, port: int) -> None:
    sockets, logfile = _socket_dir(state), state / "postgres.log"
    if len(str(sockets / ".s.PGSQL.65535.lock")) > 107:  # the kernel's limit on a Unix socket's path
        raise ServerError(f"The state folder {state} is too deep for PostgreSQL's socket path (107 characters "
                          f"at most). Set {STATE_ENV} to a shorter folder, for example /var/tmp/mlprojects-server.")
    sockets.mkdir(exist_ok=True)
    _chown_pg(sockets)
    logfile.touch()
    _chown_pg(logfile)
    options = f"-p {port} -k {sockets} -c listen_addresses={HOST}"
    done = subprocess.run(
        _as_pg([str(bindir / "pg_ctl"), "start", "-D", str(_pgdata(state)), "-l", str(logfile), "-w", "-t", "60",
                "-o", options]),
        capture_output=True, text=True, timeout=120,
    )
    if done.returncode != 0:
        raise ServerError(f"PostgreSQL did not start on port {port}:\n{(done.stdout + done.stderr)[-1000:]}\n"
                          f"Last lines of {logfile}:\n{_tail(logfile)}")


def _ensure_database(state: Path, port: int, password: str) -> None:
    """Create (or update the password of) role ``mlflow`` and database ``mlflow`` over the private socket."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(host=str(_socket_dir(state)), port=port, user="postgres", dbname="postgres",
                         autocommit=True, connect_timeout=30) as con:
        exists = con.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (DB_NAME,)).fetchone()
        verb = "ALTER" if exists else "CREATE"
        con.execute(sql.SQL(verb + " ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(DB_NAME),
                                                                       sql.Literal(password)))
        if not con.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DB_NAME,)).fetchone():
            con.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(DB_NAME),
                                                                      sql.Identifier(DB_NAME)))


# --------------------------------------------------------------------------------------------- mlflow
def _mlflow_marks(port: int | None) -> tuple[str, ...]:
    return ("mlflow", "server", str(port)) if port else ("mlflow", "server")


def _wait_healthy(proc: subprocess.Popen, port: int, logfile: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    url = f"http://{HOST}:{port}/health"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ServerError(f"mlflow server exited with code {proc.returncode} before answering {url}. "
                              f"Last lines of {logfile}:\n{_tail(logfile)}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 - our own 127.0.0.1 server
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.3)
    _kill_group(proc.pid)
    raise ServerError(f"mlflow server did not answer {url} within {timeout:.0f}s (stopped it). "
                      f"Last lines of {logfile}:\n{_tail(logfile)}")


def _kill_orphans(pgid: int, marks: tuple[str, ...], grace: float = 15.0) -> None:
    """End the leftover members of a dead server's process group (checked again just before each signal)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if not _group_members(pgid, marks):
            return
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and _group_members(pgid, marks):
            time.sleep(0.1)


def _kill_group(pid: int, grace: float = 15.0) -> None:
    """SIGTERM the process group ``start`` created (the server and its workers), SIGKILL after ``grace``."""
    try:
        # start_new_session made the server a group leader; anything else gets only its own signal
        group = os.getpgid(pid) == pid
        (os.killpg if group else os.kill)(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.1)
    if _alive(pid):
        try:
            (os.killpg if group else os.kill)(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    try:  # reap it when this process is its parent (tests start and stop in one process)
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def _start_mlflow(state: Path, settings: dict, workers: int, timeout: float) -> int:
    port, logfile = settings["port"], state / "mlflow.log"
    backend = f"postgresql+psycopg://{DB_NAME}:{settings['password']}@{HOST}:{settings['pg_port']}/{DB_NAME}"
    env = dict(os.environ)
    # The password stays out of the process list: MLflow reads the store URI from its own variable.
    env["MLFLOW_BACKEND_STORE_URI"] = backend
    env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"  # no job runner: nothing here uses MLflow jobs
    env.pop("MLFLOW_TRACKING_URI", None)
    if settings.get("s3_endpoint"):
        env[S3_ENDPOINT_ENV] = settings["s3_endpoint"]
    cmd = [sys.executable, "-m", "mlflow", "server", "--host", HOST, "--port", str(port),
           "--workers", str(workers), "--serve-artifacts", "--artifacts-destination", settings["artifacts"]]
    with open(logfile, "ab") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                cwd=state, env=env, start_new_session=True)
    _write_atomic(state / "mlflow.pid", f"{proc.pid}\n")
    try:
        _wait_healthy(proc, port, logfile, timeout)
    except ServerError:
        (state / "mlflow.pid").unlink(missing_ok=True)
        raise
    return proc.pid


# ----------------------------------------------------------------------------------------------- public
def status(state: Path | None = None) -> Stack:
    """What runs now (pid files checked against live processes; stale ones are removed with a note)."""
    state = state or state_dir()
    settings = _load_settings(state)
    stack = Stack(state, settings.get("port"), settings.get("pg_port"), settings.get("artifacts"))
    if not state.exists():
        return stack
    recorded = _read_pid(state / "mlflow.pid")
    if (recorded and stack.port and not _alive(recorded)
            and _group_members(recorded, ("mlflow", str(stack.port)))):
        # The server died but left its workers (they share the process group start created): ours to stop,
        # so the pid file stays until they are gone.
        stack.orphan_group = recorded
        stack.notes.append(f"The MLflow server (pid {recorded}) died but its workers still run; "
                           "`mlprojects server stop` or `start` ends them.")
    else:
        stack.mlflow_pid = _checked_pid(state / "mlflow.pid", _mlflow_marks(stack.port), stack.notes)
    if (_pgdata(state) / "PG_VERSION").exists():
        stack.pg_pid = _pg_status(pg_bindir(), state, stack.notes)
    return stack


def start(state: Path | None = None, port: int | None = None, pg_port: int | None = None,
          artifacts: str | None = None, s3_endpoint: str | None = None, workers: int = 1,
          timeout: float = 120.0) -> Stack:
    """Start (or reuse) PostgreSQL and the MLflow server; returns the running stack.

    Args:
        state: the state folder (default ``state_dir()``).
        port / pg_port: ports to use; an explicitly requested port that is taken is an error.
        artifacts: ``--artifacts-destination`` (default ``$MLPROJECTS_SERVER_ARTIFACTS``, then what the
            last start used, then ``<state>/artifacts``); ``s3://bucket/prefix`` for S3-compatible stores.
        s3_endpoint: ``MLFLOW_S3_ENDPOINT_URL`` for the server (default: the environment's).
        workers: server worker processes.
        timeout: seconds to wait for ``GET /health``.

    Raises:
        ServerError: PostgreSQL missing, a port taken, or a process that does not come up (with its log).
    """
    state = (state or state_dir()).resolve()
    bindir = pg_bindir()
    state.mkdir(parents=True, exist_ok=True)
    if _as_root():
        state.chmod(0o711)  # postgres must traverse it; server.json itself stays private (0600)
    _check_traversable(state)
    current = status(state)
    if current.running and not (port and port != current.port):
        current.notes.append("The stack is already running.")
        if artifacts and artifacts != current.artifacts:
            current.notes.append(f"It stores artifacts in {current.artifacts}; stop it first to use {artifacts}.")
        return current
    # Refuse a taken port before touching anything (ports this stack already holds are not "taken").
    for what, wanted, ours in (("MLflow server", port, current.port if current.mlflow_alive else None),
                               ("PostgreSQL", pg_port, current.pg_port if current.pg_alive else None)):
        if wanted and wanted != ours and not port_free(wanted):
            raise ServerError(f"Port {wanted} for {what} is taken on {HOST}. Choose another one, or omit the "
                              "option to let mlprojects pick a free port.")
    if current.orphan_group is not None:
        _kill_orphans(current.orphan_group, ("mlflow", str(current.port)))
        current.notes.append(f"Stopped the dead MLflow server's remaining workers (group {current.orphan_group}).")
    if current.mlflow_alive:  # a different port was asked for: restart the server on it
        _kill_group(current.mlflow_pid)  # type: ignore[arg-type]
        (state / "mlflow.pid").unlink(missing_ok=True)
    notes = current.notes
    settings = _load_settings(state)
    settings.setdefault("password", secrets.token_urlsafe(24))
    if not (_pgdata(state) / "PG_VERSION").exists():
        _init_cluster(bindir, state)
    pg_pid = current.pg_pid
    if pg_pid is None:
        settings["pg_port"] = _choose_port("PostgreSQL", pg_port, settings.get("pg_port"), notes)
        _start_postgres(bindir, state, settings["pg_port"])
    elif pg_port and pg_port != settings.get("pg_port"):
        notes.append(f"PostgreSQL already runs on port {settings.get('pg_port')}; --pg-port ignored.")
    _ensure_database(state, settings["pg_port"], settings["password"])
    settings["port"] = _choose_port("MLflow server", port, settings.get("port"), notes)
    settings["artifacts"] = (artifacts or os.environ.get(ARTIFACTS_ENV) or settings.get("artifacts")
                             or str(state / "artifacts"))
    if not settings["artifacts"].startswith(("s3://", "gs://", "wasbs://", "abfss://")):
        Path(settings["artifacts"]).mkdir(parents=True, exist_ok=True)
    endpoint = s3_endpoint or os.environ.get(S3_ENDPOINT_ENV) or settings.get("s3_endpoint")
    settings["s3_endpoint"] = endpoint if settings["artifacts"].startswith("s3://") else None
    _save_settings(state, settings)
    _start_mlflow(state, settings, workers, timeout)
    stack = status(state)
    stack.notes = notes + stack.notes
    return stack


def stop(state: Path | None = None) -> Stack:
    """Stop the MLflow server and PostgreSQL that ``start`` started; the data stays for the next start."""
    state = (state or state_dir()).resolve()
    stack = status(state)
    if stack.mlflow_pid is not None:
        _kill_group(stack.mlflow_pid)
        stack.notes.append(f"Stopped the MLflow server (pid {stack.mlflow_pid}).")
        stack.mlflow_pid = None
    if stack.orphan_group is not None:
        _kill_orphans(stack.orphan_group, ("mlflow", str(stack.port)))
        stack.notes.append(f"Stopped the dead MLflow server's remaining workers (group {stack.orphan_group}).")
    (state / "mlflow.pid").unlink(missing_ok=True)
    if stack.pg_pid is not None:
        bindir = pg_bindir()
        done = subprocess.run(_as_pg([str(bindir / "pg_ctl"), "stop", "-D", str(_pgdata(state)), "-m", "fast",
                                      "-w", "-t", "60"]), capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise ServerError(f"pg_ctl stop failed:\n{(done.stdout + done.stderr)[-1000:]}")
        stack.notes.append(f"Stopped PostgreSQL (pid {stack.pg_pid}).")
        stack.pg_pid = None
    (state / "postgres.pid").unlink(missing_ok=True)
    return stack
