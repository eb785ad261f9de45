"""Check that the MLflow UI really renders the projects: start `mlflow ui` on the store, load the experiments
page in headless Chromium (Debian's `chromium` package) and look for every project's experiment name.

Usage: .venv/bin/python scripts/check_ui.py [--screenshot reports/mlflow_ui.png]
Exit code 0 when every expected experiment appears in the rendered page.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def find_chromium() -> str | None:
    """Path of a Chromium binary, or None."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def render(url: str, chromium: str, screenshot: Path | None = None, budget_ms: int = 20000) -> str:
    """The DOM of ``url`` after its JavaScript ran (and optionally a screenshot)."""
    with tempfile.TemporaryDirectory() as profile:
        flags = [*CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--virtual-time-budget={budget_ms}"]
        dom = subprocess.run([chromium, *flags, "--dump-dom", url], capture_output=True, text=True, timeout=180).stdout
        if screenshot is not None:
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            subprocess.run([chromium, *flags, f"--screenshot={screenshot}", "--window-size=1400,900", url],
                           capture_output=True, timeout=180)
    return dom


def check(expected: list[str], tracking_uri: str, screenshot: Path | None = None) -> tuple[bool, list[str]]:
    """Serve the UI for ``tracking_uri`` and return (all found, missing names)."""
    chromium = find_chromium()
    if chromium is None:
        raise RuntimeError("Chromium is not installed: `apt-get install chromium` (Debian) and run again.")
    port = _free_port()
    mlflow_bin = Path(sys.executable).with_name("mlflow")
    env = {**os.environ, "PATH": f"{mlflow_bin.parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    proc = subprocess.Popen(
        [str(mlflow_bin), "ui", "--backend-store-uri", tracking_uri, "--host", "127.0.0.1", "--port", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.time() + 300
        while True:
            try:
                with urllib.request.urlopen(base + "/health", timeout=2):
                    break
            except OSError:
                if time.time() > deadline or proc.poll() is not None:
                    raise RuntimeError("the MLflow UI did not start") from None
                time.sleep(0.5)
        dom = render(base + "/#/experiments", chromium, screenshot)
        missing = [name for name in expected if name not in dom]
        return not missing, missing
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def main() -> int:
    from common import registry, tracking

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--screenshot", type=Path, default=None)
    parser.add_argument("--projects", nargs="*", default=None, help="experiment names to look for")
    args = parser.parse_args()
    import mlflow

    tracking.configure()
    names = args.projects or [e.name for e in mlflow.MlflowClient().search_experiments() if e.name in registry.names()]
    if not names:
        sys.stderr.write("No project experiments in the store yet: run `make all` or `make <project>` first.\n")
        return 2
    ok, missing = check(names, tracking.tracking_uri(), args.screenshot)
    sys.stdout.write(("UI OK: found " if ok else "UI check FAILED, missing: ") + ", ".join(missing or names) + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
