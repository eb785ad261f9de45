"""Check that the MLflow UI really shows the projects, as a person would see them: start `mlflow ui` on the
store, load pages in headless Chromium (Debian's `chromium` package) and look for text in the rendered DOM.

Pages: the experiments list (every project's experiment name) and one house_prices run page (its dataset
and its description). ``--screenshots DIR`` also saves PNGs of the experiments list, that run page and the
compare view of the experiment's latest runs.

Usage: .venv/bin/python scripts/check_ui.py [--screenshots reports/ui] [--projects house_prices spam]
Exit code 0 when everything expected appears in the rendered pages.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage",
]
# MLflow 3 opens in its GenAI layout; classical training runs read better in the "Model training" one.
ML_LAYOUT = "workflowType=machine_learning"
RUN_PAGE_BUDGET_MS = 40000  # the run page fetches metrics, inputs, models and artifacts one after another


@dataclass
class PageCheck:
    """One rendered page: its URL, the texts it must show and those it did not."""

    name: str
    url: str
    expected: list[str]
    missing: list[str] = field(default_factory=list)


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
            subprocess.run([chromium, *flags, f"--screenshot={screenshot}", "--window-size=1600,1000", url],
                           capture_output=True, timeout=180)
    return dom


@contextmanager
def serve(tracking_uri: str) -> Iterator[str]:
    """Run ``mlflow ui`` on ``tracking_uri`` for the duration of the block; yields its base URL.

    A tracking server (``http(s)://``) serves its own UI: it is used as it is.
    """
    if tracking_uri.startswith(("http://", "https://")):
        yield tracking_uri.rstrip("/")
        return
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
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def _norm(text: str) -> str:
    """Whitespace collapsed and none before closing punctuation: element boundaries add spaces."""
    import re

    return re.sub(r"\(\s+", "(", re.sub(r"\s+([:;,.)])", r"\1", " ".join(text.split())))


def _text(dom: str) -> str:
    """The visible text of a DOM dump (markdown descriptions are split over elements), normalised."""
    import html
    import re

    dom = re.sub(r"<(script|style)\b.*?</\1>", " ", dom, flags=re.S)
    return _norm(html.unescape(re.sub(r"<[^>]+>", " ", dom)))


def _plain(markdown: str) -> str:
    return _norm(markdown.replace("`", "").replace("**", ""))


def experiment_note(project: str, tracking_uri: str | None = None) -> str | None:
    """The first line of ``project``'s experiment description (what the experiments list shows), if any."""
    import mlflow

    exp = mlflow.MlflowClient(tracking_uri=tracking_uri).get_experiment_by_name(project)
    note = (exp.tags.get("mlflow.note.content") or "").strip() if exp else ""
    return _plain(note.split("\n")[0]) or None


def run_page_checks(project: str = "house_prices", tracking_uri: str | None = None) -> list[PageCheck]:
    """The run page and compare view of ``project``'s latest runs, with what the run page must show.

    The run page must name the run's dataset (name and digest, as in its "Datasets" box) and show its
    description; the compare view has no expectations (it is for the screenshot).
    """
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=tracking_uri)
    exp = client.get_experiment_by_name(project)
    if exp is None:
        return []
    runs = client.search_runs([exp.experiment_id], order_by=["attributes.start_time DESC"], max_results=5)
    described = [r for r in runs if r.data.tags.get("mlflow.note.content") and r.inputs.dataset_inputs]
    if not described:
        return []
    run = described[0]
    dataset = run.inputs.dataset_inputs[0].dataset
    # The last paragraph of the run's description (score and fate of the model: what only this run says);
    # its markdown marks are not part of the rendered text.
    description = _plain(run.data.tags["mlflow.note.content"].strip().split("\n")[-1])
    checks = [PageCheck("run", f"#/experiments/{exp.experiment_id}/runs/{run.info.run_id}?{ML_LAYOUT}",
                        [f"{dataset.name} ({dataset.digest})", description])]
    version = next((v for v in client.search_model_versions(f"run_id='{run.info.run_id}'")), None)
    if version is not None and version.description:
        # The model version page shows the version's description (its scores, data and commit).
        checks.append(PageCheck("model_version", f"#/models/{version.name}/versions/{version.version}?{ML_LAYOUT}",
                                [_plain(version.description.split("\n")[0])]))
    outputs = run.outputs.model_outputs if run.outputs else []
    primary = run.data.tags.get("primary_metric", "primary_metric")
    if outputs and primary in run.data.metrics:
        # The logged model's page lists the metrics linked to it, at full precision (its description rounds).
        checks.append(PageCheck("logged_model",
                                f"#/experiments/{exp.experiment_id}/models/{outputs[0].model_id}?{ML_LAYOUT}",
                                [str(run.data.metrics[primary])]))
    ids = json.dumps([r.info.run_id for r in runs[:3]])
    compare = f"#/compare-runs?runs={urllib.parse.quote(ids)}&experiments={urllib.parse.quote(json.dumps([exp.experiment_id]))}"
    checks.append(PageCheck("compare", f"{compare}&{ML_LAYOUT}", []))
    return checks


def check_pages(checks: list[PageCheck], tracking_uri: str, screenshots: Path | None = None) -> list[PageCheck]:
    """Render every page of ``checks`` on one UI server; fills each check's ``missing``."""
    chromium = find_chromium()
    if chromium is None:
        raise RuntimeError("Chromium is not installed: `apt-get install chromium` (Debian) and run again.")
    with serve(tracking_uri) as base:
        for check in checks:
            shot = None if screenshots is None else screenshots / f"{check.name}.png"
            budget = RUN_PAGE_BUDGET_MS if check.name != "experiments" else 20000
            text = _text(render(f"{base}/{check.url}", chromium, shot, budget_ms=budget))
            check.missing = [want for want in check.expected if _norm(want) not in text]
    return checks


def check(expected: list[str], tracking_uri: str, screenshot: Path | None = None) -> tuple[bool, list[str]]:
    """Serve the UI for ``tracking_uri`` and look for ``expected`` experiment names: (all found, missing)."""
    chromium = find_chromium()
    if chromium is None:
        raise RuntimeError("Chromium is not installed: `apt-get install chromium` (Debian) and run again.")
    with serve(tracking_uri) as base:
        dom = render(f"{base}/#/experiments?{ML_LAYOUT}", chromium, screenshot)
    missing = [name for name in expected if name not in dom]
    return not missing, missing


def main() -> int:
    from common import registry, tracking

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--screenshots", type=Path, default=None, help="folder for PNGs of the pages")
    parser.add_argument("--projects", nargs="*", default=None, help="experiment names to look for")
    args = parser.parse_args()
    import mlflow

    tracking.configure()
    names = args.projects or [e.name for e in mlflow.MlflowClient().search_experiments() if e.name in registry.names()]
    if not names:
        sys.stderr.write("No project experiments in the store yet: run `make all` or `make <project>` first.\n")
        return 2
    notes = [note for note in [experiment_note("house_prices")] if note]
    checks = [PageCheck("experiments", f"#/experiments?{ML_LAYOUT}", [*names, *notes]), *run_page_checks()]
    if len(checks) == 1:
        sys.stderr.write("No described house_prices run to open: run `make house-prices` first.\n")
    check_pages(checks, tracking.tracking_uri(), args.screenshots)
    ok = True
    for page in checks:
        found = [w for w in page.expected if w not in page.missing]
        sys.stdout.write(f"{page.name}: " + ("OK" if not page.missing else "MISSING " + "; ".join(page.missing))
                         + (f" (found: {'; '.join(found)})" if found else "") + "\n")
        ok = ok and not page.missing
    if args.screenshots is not None:
        sys.stdout.write(f"screenshots in {args.screenshots}/\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
