"""The hybrid's margin over EASE on validation periods that never touch either protocol's test data.

The per-user protocol's bar (hybrid above EASE by a paired-bootstrap interval that excludes 0) is decided
once, on the test periods. This command measures the same margin where a model may be iterated on: each
protocol's *training* ratings are split again the way the per-user protocol splits everything (users with
at least ``MIN_LIKED`` likes; each one's last 20% of likes is a validation period; their ratings from then
on are dropped), the hybrid (with its own inner tuning) and the EASE baseline (lambda tuned on validation
users, as in the evaluation) are fitted on what is left, and both are scored on the validation periods with
the protocol's exclusions. A third set repeats the primary protocol inside its own training ratings (a
global time split of the ratings before ``T``: no cross-user leak, but few users), and a fourth is the
Optuna objective's (``common/tune_recommender.py``): ratings before both protocols' test data.

    python -m projects.recommender.margin [--markdown margin.md] [--json margin.json] [--data-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from common.console import step
from common.errors import DataError, MLProjectsError
from projects.recommender import protocol
from projects.recommender.evaluate import (
    LIKE_THRESHOLD,
    MIN_HISTORY,
    MIN_LIKED,
    N_BOOT,
    TEST_FRACTION,
    K,
    collaborative_baselines,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Margin:
    """The hybrid minus EASE (NDCG@K, paired over the validation users of one test-free set)."""

    name: str
    users: int
    fit_ratings: int
    hybrid: float
    ease: float
    ease_lambda: float
    margin: float
    ci_low: float
    ci_high: float


def _score(name: str, build: Callable[[], Any], catalogue: pd.DataFrame, split: protocol.ProtocolSplit,
           seed: int) -> Margin:
    """Fit the hybrid and the tuned EASE baseline on ``split.train``; compare them on ``split.users``."""
    users, fit_ratings = split.users, split.train
    if not users:
        raise DataError(f"{name}: no user qualifies (a per-user split needs {MIN_LIKED} liked films; a time split "
                        f"a like after the cutoff and {MIN_HISTORY} rated film(s) before it); nothing to compare on.")
    n_items = len(catalogue)
    targets = protocol.target_matrix(users, n_items)
    per_user = {}
    anchors, chosen = collaborative_baselines(catalogue, fit_ratings)
    with step(f"[{name}] hybrid and EASE on {len(fit_ratings):,} ratings, {len(users)} validation users"):
        for label, est in (("hybrid", build()), ("ease", anchors["ease"])):
            est.fit(catalogue, ratings=fit_ratings)
            recs, _ = est.recommend_positions(split.histories, K, split.excludes)
            per_user[label] = protocol.per_user_ndcg(recs, users, n_items, K, targets)
    mean, lo, hi = protocol.paired_bootstrap(per_user["hybrid"], per_user["ease"], N_BOOT, seed=seed)
    return Margin(name, len(users), len(fit_ratings), float(per_user["hybrid"].mean()),
                  float(per_user["ease"].mean()), chosen["ease_lambda"], mean, lo, hi)


def validation_margins(catalogue: pd.DataFrame, ratings: pd.DataFrame, params: Mapping[str, Any] | None = None,
                       seed: int = 0) -> list[Margin]:
    """The hybrid's margin over EASE on four test-free validation sets (see the module docstring)."""
    from projects.recommender.pipeline import build_pipeline

    def build() -> Any:
        return build_pipeline(**dict(params or {}))

    id_pos = {int(i): p for p, i in enumerate(catalogue["id"].to_numpy())}
    args = (LIKE_THRESHOLD, MIN_LIKED, TEST_FRACTION, MIN_HISTORY)
    train = {kind: protocol.make_protocol(kind, ratings, id_pos, *args).train for kind in ("per_user", "time")}
    sets = {
        "per-user split's training ratings": protocol.make_protocol("per_user", train["per_user"], id_pos, *args),
        "time split's training ratings": protocol.make_protocol("per_user", train["time"], id_pos, *args),
        # The primary protocol's own construction one level down: a global time split of the ratings before T.
        # Leak-free like the primary protocol, and as small (few users have history before both cutoffs).
        "time split of the time split's training ratings": protocol.make_protocol("time", train["time"], id_pos,
                                                                                   *args),
        "tuning objective (before both protocols' test data)": protocol.tuning_protocol(ratings, id_pos, *args),
    }
    return [_score(name, build, catalogue, split, seed) for name, split in sets.items()]


def markdown(rows: Sequence[Margin]) -> str:
    """The margins as a Markdown table."""
    lines = ["| validation set (test-free) | users | fit ratings | hybrid | EASE (lambda) | hybrid minus EASE | "
             "95% bootstrap interval |", "|---|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        lines.append(f"| {r.name} | {r.users} | {r.fit_ratings:,} | {r.hybrid:.4f} | {r.ease:.4f} "
                     f"({r.ease_lambda:g}) | {r.margin:+.4f} | [{r.ci_low:+.4f}, {r.ci_high:+.4f}] |")
    return "\n".join(lines)


def _write(path: str, text: str) -> None:
    """Write through a temporary file and a rename: an interrupted run never leaves half a table."""
    dest = Path(path)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m projects.recommender.margin``: the margins on the real data (``MLPROJECTS_DATA_DIR``)."""
    from common import registry, train

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--markdown", default=None, help="also write the table to this file")
    parser.add_argument("--json", default=None, help="also write the rows to this JSON file")
    parser.add_argument("--data-dir", default=None, help="a local mirror (default: $MLPROJECTS_DATA_DIR, then data/)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    project = registry.get("recommender")
    try:
        ds = train.load_dataset(project, {}, data_dir=args.data_dir)
        ratings = ds.extras.get("ratings")
        if ratings is None or len(ratings) == 0:
            raise DataError("The margins need MovieLens ratings; the recommender's loader found none.")
        rows = validation_margins(ds.X, ratings, seed=project.spec.split.seed)
    except MLProjectsError as exc:  # a clear message, not a traceback, as on the mlprojects command line
        sys.stderr.write(f"error: {exc}\n")
        return 2
    table = markdown(rows)
    sys.stdout.write(table + "\n")
    outputs = {args.markdown: table + "\n", args.json: json.dumps([asdict(r) for r in rows], indent=2) + "\n"}
    for path, text in outputs.items():
        if not path:
            continue
        try:
            _write(path, text)
        except OSError as exc:
            sys.stderr.write(f"error: cannot write {path}: {exc.strerror or exc}\n")
            return 2
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
