"""Recommender benchmark: fit time, memory and query latency on TMDB 5000, and a scaling run to 1M films.

``mlprojects bench recommender`` measures the real catalogue (fit, peak RSS, single-title query latency,
model size, the dense N x N matrix it avoids) and then a scaling series on generated catalogues, exact
search beside the approximate index (``ann.py``: build time, peak RSS, query latency, recall@10 of the
approximate top 10 against the exact one). Each scaling size runs in a fresh subprocess, so its peak
memory is its own. Choose the sizes with
``RECOMMENDER_BENCH_SIZES=10000,100000`` (default 10k, 100k and 1M; empty skips the series), or run the
series alone: ``python -m projects.recommender.bench --sizes 10000,100000,1000000 --markdown scaling.md``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import subprocess
import sys
from collections.abc import Sequence
from functools import partial
from typing import Any

import numpy as np

from common import tracking
from common.bench import latency, load_average, throughput, timed
from common.console import step
from common.protocol import Context

log = logging.getLogger(__name__)

SIZES_ENV = "RECOMMENDER_BENCH_SIZES"
DEFAULT_SIZES = (10_000, 100_000, 1_000_000)


def peak_rss_mb() -> float:
    """This process's peak resident memory so far (MiB).

    Linux's ``VmHWM`` is used where it exists: ``ru_maxrss`` of a freshly started subprocess starts at its
    parent's peak (it survives fork and exec), which would hide a small child's own peak.
    """
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except (OSError, ValueError, IndexError):
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def current_rss_mb() -> float:
    """This process's resident memory now (MiB; Linux /proc, else the peak)."""
    try:
        with open("/proc/self/statm") as fh:
            pages = int(fh.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return peak_rss_mb()


def matrix_mb(m: Any) -> float:
    """Memory of a dense or sparse matrix (MiB)."""
    if hasattr(m, "indptr"):
        return (m.data.nbytes + m.indices.nbytes + m.indptr.nbytes) / 2**20
    return np.asarray(m).nbytes / 2**20


def query_latency(model: Any, repeats: int = 200, seed: int = 0) -> dict[str, float]:
    """p50/p95 (wall and CPU) of one top-10 query for a random catalogue film, three ways, and for a profile.

    ``query_*`` times the similarity search by catalogue position, ``recommend_title_*`` a title (lookup,
    search and the result table) and ``recommend_typo_*`` a title with a typo (the fuzzy lookup).
    ``profile_*`` times one list of 20 liked films (what the hybrid's reranker orders, when it has one).
    """
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, model.n_items_, repeats)
    # Inputs are built before timing, so only the call is measured.
    histories = [[np.array([p])] for p in picks]
    profiles = [[rng.choice(model.n_items_, min(20, model.n_items_ - 1), replace=False)]
                for _ in range(max(repeats // 4, 1))]
    titles = [model.titles_[p] for p in picks]
    typos = [t.lower()[:-1] for t in titles[: max(repeats // 4, 1)]]
    return {
        **latency(lambda h: model.recommend_positions(h, 10), histories, prefix="query"),
        **latency(lambda h: model.recommend_positions(h, 10), profiles, prefix="profile"),
        **latency(lambda t: model.recommend(t, k=10), titles, prefix="recommend_title"),
        **latency(lambda t: model.recommend(t, k=10), typos, prefix="recommend_typo"),
    }


def bench(ctx: Context) -> dict[str, Any]:
    """Benchmark the real catalogue, then the scaling series (sizes from ``RECOMMENDER_BENCH_SIZES``)."""
    ds = ctx.dataset
    catalogue, ratings = ds.X, ds.extras.get("ratings")
    n = len(catalogue)
    out: dict[str, Any] = {"load_average_1m": load_average(), "rss_before_fit_mb": current_rss_mb()}
    with step(f"Bench: content-only fit on {n} films"):
        fit = timed(lambda: ctx.build(mode="content").fit(catalogue))
    content = fit.result
    out |= {"fit_content_seconds": fit.wall_s, "fit_content_cpu_seconds": fit.cpu_s}
    with step(f"Bench: default ({ctx.params.get('mode')}) fit on {n} films"
              + (f" and {len(ratings):,} ratings" if ratings is not None else "")):
        fit = timed(lambda: ctx.build().fit(catalogue, ratings=ratings))
    model = fit.result
    out |= {"fit_seconds": fit.wall_s, "fit_cpu_seconds": fit.cpu_s}
    out["fit_peak_rss_mb"] = peak_rss_mb()
    with step("Bench: query latency"):
        out |= query_latency(model)
        out |= {f"content_{k}": v for k, v in query_latency(content, repeats=100).items() if k.startswith("query")}
    with step(f"Bench: all {n} films' top 10 in batches"):
        # What kneighbors() does for the whole catalogue: every film is one query.
        every = [np.array([p]) for p in range(n)]
        batch = throughput(lambda h: model.recommend_positions(h, 10), every, prefix="batch")
    out |= batch
    out["batch_queries_per_s"] = batch["batch_rows_per_s"]
    out["model_size_mb"] = tracking.model_size_mb(model)
    out["item_matrix_mb"] = matrix_mb(model.item_vectors_)
    out["dense_nxn_float64_mb"] = n * n * 8 / 2**20  # what the seed's cosine_similarity matrix takes
    sizes = sizes_from_env()
    if sizes:
        rows = scaling(sizes)
        for row in rows:
            for key, value in row.items():
                if key != "n" and isinstance(value, int | float):
                    out[f"scale_{row['n']}_{key}"] = value
        table = scaling_markdown(rows) + "\n\n" + ann_markdown(rows)
        ctx.artifact("scaling.md").write_text(table + "\n")
        log.info("scaling benchmark:\n%s", table)
    return out


def sizes_from_env() -> list[int]:
    """Catalogue sizes of the scaling series (``RECOMMENDER_BENCH_SIZES``, comma separated; empty skips)."""
    raw = os.environ.get(SIZES_ENV)
    if raw is None:
        return list(DEFAULT_SIZES)
    return [int(float(s)) for s in raw.replace(" ", "").split(",") if s]


# --------------------------------------------------------------------------------------------- scaling
def recall_at_k(approx: np.ndarray, exact: np.ndarray) -> float:
    """Mean share of each exact top-k row found in the approximate row."""
    k = exact.shape[1]
    return float(np.mean([len(set(a[a >= 0]) & set(e[e >= 0])) / k for a, e in zip(approx, exact, strict=True)]))


def measure_ann(model: Any, repeats: int = 50, recall_queries: int = 500, seed: int = 0) -> dict[str, Any]:
    """Build the approximate index on a fitted content model and measure it against exact search.

    The numba compilation of pynndescent is paid once per process; it is timed apart (a build on 2,000
    random vectors) so ``ann_build_seconds`` is the build itself.
    """
    from scipy import sparse

    from projects.recommender.ann import ContentIndex

    rng = np.random.default_rng(seed)
    picks = rng.integers(0, model.n_items_, min(recall_queries, model.n_items_))
    # Small batches: a batch of exact queries holds a (batch x N) score matrix.
    exact = np.vstack([model.recommend_positions([np.array([p]) for p in picks[i:i + 16]], 10)[0]
                       for i in range(0, len(picks), 16)])
    warm = timed(lambda: ContentIndex(n_neighbors=10).fit(sparse.random(2000, 50, density=0.1, format="csr",
                                                                          random_state=seed, dtype=np.float32)))
    before = current_rss_mb()
    build = timed(lambda: ContentIndex(n_neighbors=max(20, model.n_recommendations + 1)).fit(model.item_vectors_))
    model.ann_index_ = build.result
    approx, _ = model.recommend_positions([np.array([p]) for p in picks], 10)
    lat = query_latency(model, repeats=repeats, seed=seed + 1)
    return {
        "ann_jit_seconds": warm.wall_s,
        "ann_build_seconds": build.wall_s,
        "ann_build_cpu_seconds": build.cpu_s,
        "ann_peak_rss_mb": peak_rss_mb(),
        "ann_index_mb": build.result.graph_.nbytes / 2**20,
        "ann_extra_rss_mb": current_rss_mb() - before,
        "ann_recall_at_10": recall_at_k(approx, exact),
        **{f"ann_{k}": v for k, v in lat.items() if k.startswith(("query", "recommend_title"))},
    }


def measure_one(n: int, seed: int = 0, repeats: int = 50, ann: bool = True) -> dict[str, Any]:
    """Fit the content recommender on a generated catalogue of ``n`` films and measure it (run in a fresh process).

    Exact search first (``ann="exact"``), then, with ``ann``, the approximate index on the same model.
    """
    from projects.recommender import synthetic
    from projects.recommender.pipeline import build_pipeline

    gen = timed(lambda: synthetic.catalogue(n, seed=seed))
    cat, gen_s = gen.result, gen.wall_s
    rss_data = current_rss_mb()
    fit = timed(partial(build_pipeline(mode="content", ann="exact").fit, cat))
    model = fit.result
    rss_fit_peak = peak_rss_mb()
    del cat, gen  # the generated catalogue is not part of the model: free it before the queries
    lat = query_latency(model, repeats=repeats, seed=seed)
    index = model.title_index_
    exact_peak = max(rss_fit_peak, peak_rss_mb())
    extra = measure_ann(model, repeats=repeats, seed=seed) if ann else {}
    return {
        "n": n,
        "generate_seconds": gen_s,
        "fit_seconds": fit.wall_s,
        "fit_cpu_seconds": fit.cpu_s,
        "rss_data_mb": rss_data,
        "peak_rss_mb": exact_peak,
        "fit_extra_rss_mb": rss_fit_peak - rss_data,
        "item_matrix_mb": matrix_mb(model.item_vectors_),
        "item_nnz": int(getattr(model.item_vectors_, "nnz", np.asarray(model.item_vectors_).size)),
        "title_index_mb": matrix_mb(index.grams_) + sum(len(k) for k in index.keys_) / 2**20,
        "dense_nxn_float32_gb": n * n * 4 / 2**30,
        **lat,
        **extra,
    }


def scaling(sizes: Sequence[int], timeout: float = 3600) -> list[dict[str, Any]]:
    """Run ``measure_one`` for each size in its own subprocess (clean peak memory per size)."""
    rows = []
    for n in sizes:
        with step(f"Bench: scaling, generated catalogue of {n:,} films"):
            proc = subprocess.run([sys.executable, "-m", "projects.recommender.bench", "--one", str(n)],
                                  capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0:
            log.warning("scaling run for %d films failed: %s", n, proc.stderr.strip()[-800:])
            continue
        rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    return rows


def ann_markdown(rows: Sequence[dict[str, Any]]) -> str:
    """Exact search beside the approximate index, as a Markdown table (rows measured with the index)."""
    head = ("| films | exact: fit (s) | exact: query p50 / CPU p50 / p95 (ms) | exact: peak RSS (MiB) "
            "| approximate: build (s) | approximate: peak RSS (MiB) | graph (MiB) "
            "| approximate: query p50 / CPU p50 / p95 (ms) | approximate: by title p50 (ms) | recall@10 |")
    lines = [head, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        if "ann_recall_at_10" not in r:
            continue
        lines.append(
            f"| {r['n']:,} | {r['fit_seconds']:.1f} "
            f"| {r['query_p50_ms']:.2f} / {r['query_cpu_p50_ms']:.2f} / {r['query_p95_ms']:.2f} "
            f"| {r['peak_rss_mb']:,.0f} | {r['ann_build_seconds']:.1f} | {r['ann_peak_rss_mb']:,.0f} "
            f"| {r['ann_index_mb']:,.0f} "
            f"| {r['ann_query_p50_ms']:.2f} / {r['ann_query_cpu_p50_ms']:.2f} / {r['ann_query_p95_ms']:.2f} "
            f"| {r['ann_recommend_title_p50_ms']:.2f} | {r['ann_recall_at_10']:.3f} |"
        )
    return "\n".join(lines)


def scaling_markdown(rows: Sequence[dict[str, Any]]) -> str:
    """The scaling series as a Markdown table."""
    head = ("| films | fit (s) | peak RSS (MiB) | of which fit (MiB) | item matrix (MiB) | title index (MiB) "
            "| query p50 (ms) | query CPU p50 (ms) | query p95 (ms) | by title p50 (ms) | dense N x N float32 |")
    lines = [head, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        dense = r["dense_nxn_float32_gb"]
        dense_txt = f"{dense * 1024:,.0f} MiB" if dense < 1 else f"{dense:,.0f} GiB"
        lines.append(
            f"| {r['n']:,} | {r['fit_seconds']:.1f} | {r['peak_rss_mb']:,.0f} | {r['fit_extra_rss_mb']:,.0f} "
            f"| {r['item_matrix_mb']:,.0f} | {r['title_index_mb']:,.0f} | {r['query_p50_ms']:.1f} "
            f"| {r.get('query_cpu_p50_ms', float('nan')):.1f} "
            f"| {r['query_p95_ms']:.1f} | {r['recommend_title_p50_ms']:.1f} | {dense_txt} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m projects.recommender.bench``: the scaling series (or one size, as JSON, with --one)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--one", type=int, default=None, help="measure one size and write JSON to stdout")
    parser.add_argument("--sizes", default=",".join(map(str, DEFAULT_SIZES)), help="comma-separated sizes")
    parser.add_argument("--markdown", default=None, help="write the table to this file")
    parser.add_argument("--json", default=None, help="write the rows to this JSON file")
    args = parser.parse_args(argv)
    if args.one is not None:
        sys.stdout.write(json.dumps(measure_one(args.one)) + "\n")
        return 0
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    rows = scaling([int(float(s)) for s in args.sizes.split(",") if s])
    table = scaling_markdown(rows) + "\n\n" + ann_markdown(rows)
    if args.markdown:
        with open(args.markdown, "w") as fh:
            fh.write(table + "\n")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=2)
    sys.stdout.write(table + "\n")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
