"""Terminal output for long work: one stderr console, a timed ``step`` and logging setup for the CLI."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console

console = Console(stderr=True)
log = logging.getLogger("mlprojects")


@contextmanager
def step(message: str, level: int = logging.INFO) -> Iterator[None]:
    """Show a spinner while a long step runs (on a terminal) and log how long it took."""
    start = time.perf_counter()
    if console.is_terminal:
        with console.status(f"{message}..."):
            yield
    else:
        yield
    log.log(level, "%s: done in %.1fs", message, time.perf_counter() - start)


def setup_logging(verbose: bool = False) -> None:
    """Route library logging through rich; called by the CLI only, never at import."""
    import os

    from rich.logging import RichHandler

    if not verbose:
        # MLflow configures its own INFO-level logger on import ("Creating a new version of this model...");
        # our own lines already say what happened. A user's MLFLOW_LOGGING_LEVEL wins.
        os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console.width = 140  # a log file or CI: rich's 80-column default would fold every table

    handler = RichHandler(console=console, show_path=False, show_time=False, markup=False)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    logging.getLogger("mlprojects").setLevel(logging.DEBUG if verbose else logging.INFO)
    logging.getLogger("common").setLevel(logging.DEBUG if verbose else logging.INFO)
    logging.getLogger("projects").setLevel(logging.DEBUG if verbose else logging.INFO)
    for noisy in ("mlflow", "alembic", "urllib3", "matplotlib", "git"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
