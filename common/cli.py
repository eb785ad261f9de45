"""``mlprojects``: the one command-line entry point (the Makefile targets are thin wrappers over it)."""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from common.console import console, setup_logging
from common.errors import InputError, MLProjectsError, ParameterError

log = logging.getLogger("mlprojects")


def _params(items: Sequence[str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ParameterError(f"--param expects key=value, got '{item}'.")
        out[key.strip()] = value
    return out


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        return f"{value:.4f}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value)


def _metrics_table(title: str, metrics: dict[str, float], primary: str) -> None:
    from rich.table import Table

    table = Table(title=title, show_lines=False)
    table.add_column("metric")
    table.add_column("model", justify="right")
    table.add_column("baselines", justify="left")
    baseline_rows: dict[str, list[str]] = {}
    for key, value in metrics.items():
        if key.startswith("baseline_"):
            name, _, metric = key.removeprefix("baseline_").partition("_")
            baseline_rows.setdefault(metric, []).append(f"{name} {_fmt(value)}")
    ordered = [primary] + sorted(k for k in metrics if not k.startswith("baseline_") and k != primary)
    for key in ordered:
        if key in metrics and key != "primary_metric":
            style = "bold green" if key == primary else None
            table.add_row(key, _fmt(metrics[key]), ", ".join(baseline_rows.get(key, [])), style=style)
    console.print(table)


def _print_result(result: Any, spec: Any) -> None:
    _metrics_table(f"{spec.name}: {spec.primary_metric} = {_fmt(result.primary)}", result.metrics, spec.primary_metric)
    if result.run_id:
        console.print(f"MLflow run [bold]{result.run_id}[/] in experiment '{spec.name}'")
    if result.version:
        promo = result.promotion
        if promo and promo.promoted:
            console.print(f"Registered [bold]{spec.name}[/] v{result.version} and made it [green]@champion[/] ({promo.reason}).")
        elif promo:
            old = _fmt(promo.old_score) if promo.old_score is not None else "?"
            console.print(
                f"Registered [bold]{spec.name}[/] v{result.version} as a challenger: {spec.primary_metric} "
                f"{_fmt(promo.new_score)} vs champion v{promo.old_version} {old} ({promo.reason})."
            )


# ----------------------------------------------------------------------------------------------- commands
def cmd_list(args: argparse.Namespace) -> int:
    from rich.table import Table

    from common import registry

    table = Table(title="mlprojects")
    for col in ("project", "make target", "task", "primary metric", "description"):
        table.add_column(col)
    broken = []
    for name in registry.names():
        try:
            s = registry.get(name).spec
        except MLProjectsError as exc:
            broken.append(str(exc))
            table.add_row(name, "-", "-", "-", "[red]broken (see below)[/]")
            continue
        arrow = "higher" if s.greater_is_better else "lower"
        table.add_row(s.name, f"make {s.make_target}", s.task, f"{s.primary_metric} ({arrow} is better)", s.title)
    console.print(table)
    for message in broken:
        console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return 2 if broken else 0


def cmd_train(args: argparse.Namespace) -> int:
    from common import registry, train

    spec = registry.get(args.project).spec
    variants = [dict(v) for v in spec.variants] if args.all_variants else [{}]
    for variant in variants:
        overrides = {**{k: str(v) for k, v in variant.items()}, **_params(args.param)}
        result = train.run(spec.name, overrides, sample=args.sample, data_dir=args.data_dir,
                           log_model=args.command == "train", force_promote=getattr(args, "promote", False))
        _print_result(result, spec)
    return 0


def _is_baseline_of(key: str, metric: str) -> bool:
    """``baseline_<name>_<metric>`` exactly (not ``baseline_<name>_cv_<metric>``); names have no underscore."""
    if not (key.startswith("baseline_") and key.endswith("_" + metric)):
        return False
    return "_" not in key.removeprefix("baseline_").removesuffix("_" + metric)


def cmd_train_all(args: argparse.Namespace) -> int:
    import time

    from rich.table import Table

    from common import registry, train

    rows, failed = [], 0
    start_all = time.perf_counter()
    for project in registry.all_projects():
        spec = project.spec
        for variant in spec.variants:
            label = spec.name + ("" if not variant else " " + " ".join(f"{k}={v}" for k, v in variant.items()))
            console.rule(label)
            start = time.perf_counter()
            try:
                result = train.train(spec.name, {k: str(v) for k, v in variant.items()}, sample=args.sample,
                                     data_dir=args.data_dir)
            except MLProjectsError as exc:
                failed += 1
                console.print(f"[bold red]{label} skipped:[/] {exc}", highlight=False)
                rows.append((label, spec.primary_metric, "-", "-", "-", f"skipped: {str(exc)[:60]}"))
                continue
            _print_result(result, spec)
            base = [f"{k.removeprefix('baseline_').removesuffix('_' + spec.primary_metric)} {_fmt(v)}"
                    for k, v in result.metrics.items() if _is_baseline_of(k, spec.primary_metric)]
            champion = "champion" if result.promotion and result.promotion.promoted else "challenger"
            registry_text = f"v{result.version} {champion}" if result.version else "not registered (comparison run)"
            rows.append((label, spec.primary_metric, _fmt(result.primary), ", ".join(base),
                         f"{time.perf_counter() - start:.0f}s", registry_text))
    table = Table(title=f"mlprojects: {len(rows)} runs in {time.perf_counter() - start_all:.0f}s")
    for col in ("run", "primary metric", "model", "baselines", "time", "registry"):
        table.add_column(col)
    for row in rows:
        table.add_row(*row)
    console.print(table)
    return 1 if failed and failed == len(rows) else 0


def cmd_predict(args: argparse.Namespace) -> int:
    from common import predict, stream

    if args.engine == "spark":
        from common import spark_scoring

        done = spark_scoring.score(args.project, args.input, args.output, master=args.master,
                                   driver_memory=args.driver_memory, version=args.version, alias=args.alias,
                                   run_id=args.run_id)
        console.print(f"Wrote {done.rows:,} predictions to {done.output} (Spark {done.master}, "
                      f"{done.seconds:.1f}s)", soft_wrap=True, highlight=False)
        return 0
    if stream.applies(args.project, args.input, args.output, args.batch_size, args.on_error):
        result = stream.score_file(args.project, args.input, args.output,
                                   batch_size=args.batch_size or stream.DEFAULT_BATCH_SIZE, on_error=args.on_error,
                                   rejects_path=args.rejects, version=args.version, alias=args.alias,
                                   run_id=args.run_id)
        console.print(f"Wrote {result.scored:,} predictions to {result.output} "
                      f"({result.rows_per_s:,.0f} rows/s)", soft_wrap=True, highlight=False)
        if result.rejects is not None:
            # soft_wrap: a path cut by a line break cannot be copied
            console.print(f"Refused {result.rejected:,} of {result.rows:,} rows: reasons in {result.rejects}",
                          soft_wrap=True, highlight=False)
        return 0
    frame = predict.predict_cli(
        args.project, input_path=args.input, texts=args.text, version=args.version, alias=args.alias,
        run_id=args.run_id,
    )
    if args.output:
        predict.write_table(frame, Path(args.output))
        console.print(f"Wrote {len(frame)} predictions to {args.output}", soft_wrap=True, highlight=False)
    else:
        sys.stdout.write(frame.to_csv(index=False))
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from common import serve

    serve.serve(args.project, host=args.host, port=args.port, alias=args.alias, version=args.version,
                max_body_mb=args.max_body_mb)
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from common import bench

    report = bench.run(args.project, _params(args.param), sample=args.sample, data_dir=args.data_dir,
                       repeats=args.repeats)
    bench.print_report(report)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2, default=str))
    return 0


def cmd_load_time(args: argparse.Namespace) -> int:
    from common import bench

    rows = bench.load_times(args.projects or None, runs=args.runs)
    bench.print_load_times(rows)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2, default=str))
    return 1 if any("error" in r for r in rows) else 0


def cmd_report(args: argparse.Namespace) -> int:
    from common import report

    md, page, rows = report.write(Path(args.out) if args.out else None)
    report.print_rows(rows)
    console.print(f"Wrote {md} and {page}")
    return 0


def cmd_server(args: argparse.Namespace) -> int:
    """``mlprojects server start|stop|status``: the team stack (PostgreSQL + MLflow server)."""
    from common import server

    state = Path(args.state_dir).resolve() if args.state_dir else None
    if args.action == "start":
        import time

        began = time.perf_counter()
        stack = server.start(state, port=args.port, pg_port=args.pg_port, artifacts=args.artifacts_destination,
                             s3_endpoint=args.s3_endpoint_url, workers=args.workers, timeout=args.timeout)
        log.info("stack ready in %.1fs", time.perf_counter() - began)
    elif args.action == "stop":
        stack = server.stop(state)
    else:
        stack = server.status(state)
    for note in stack.notes:
        console.print(note, highlight=False)
    mark = {True: "[green]running[/]", False: "[red]stopped[/]"}
    console.print(f"PostgreSQL    {mark[stack.pg_alive]}" + (f" pid {stack.pg_pid}, port {stack.pg_port}"
                                                             if stack.pg_alive else ""))
    console.print(f"MLflow server {mark[stack.mlflow_alive]}" + (f" pid {stack.mlflow_pid}, {stack.uri}"
                                                                if stack.mlflow_alive else ""))
    console.print(f"state folder  {stack.state_dir}", highlight=False)
    if stack.mlflow_alive:
        console.print(f"artifacts     {stack.artifacts}", highlight=False)
        sys.stdout.write(f"export MLFLOW_TRACKING_URI={stack.uri}\n")
    return 0 if args.action != "start" or stack.running else 1


def cmd_bench_store(args: argparse.Namespace) -> int:
    """``mlprojects bench-store``: sqlite vs the team server under K concurrent clients."""
    from common import bench_store

    report = bench_store.run(args.clients, runs=args.runs, uri=args.uri, sqlite=not args.server_only,
                             server_stack=not args.sqlite_only)
    bench_store.print_report(report)
    bench_store.write_json(report, Path(args.json))
    console.print(f"Wrote {args.json}")
    return 0


def cmd_bench_scoring(args: argparse.Namespace) -> int:
    """``mlprojects bench-scoring``: rows/s and peak RSS of one-shot, streaming and Spark scoring."""
    from common import bench_scoring

    rows = bench_scoring.run(args.projects, sizes=args.rows, modes=args.modes,
                             workdir=Path(args.workdir) if args.workdir else None, batch_size=args.batch_size,
                             master=args.master, max_rss_gb=args.max_rss_gb, keep=args.keep,
                             results=Path(args.json))
    sys.stdout.write(bench_scoring.table(rows) + "\n")
    console.print(f"Wrote {args.json}")
    return 1 if any(m.status.startswith("failed") for m in rows) else 0


def cmd_doctor(args: argparse.Namespace) -> int:
    """``mlprojects doctor [--repair]``: debris of killed trainings (dead runs, unscored versions)."""
    from rich.table import Table

    from common import store, tracking

    report = store.check(tracking.configure(), stale_hours=args.stale_hours)
    if not report.findings:
        console.print(f"The store is clean: no dead runs and no unscored versions in {report.uri}.", highlight=False)
        return 0
    table = Table(title=f"mlprojects doctor: {report.uri} (this host: {report.host})")
    for col in ("finding", "where", "detail", "repair does"):
        table.add_column(col)
    for f in report.findings:
        table.add_row(f.kind, f.subject, f.detail, f.action or "-", style="bold red" if f.debris else None)
    console.print(table)
    if not args.repair:
        if report.debris:
            console.print(f"{len(report.debris)} finding(s) to repair: run `mlprojects doctor --repair`.")
        return 1 if report.debris else 0
    for line in store.repair(report, include_stale=args.include_stale) or ["nothing to repair"]:
        console.print(line, highlight=False)
    return 0


def cmd_tune(args: argparse.Namespace) -> int:
    """``mlprojects tune <project>``: an Optuna study (W local workers), then the best parameters trained."""
    import optuna
    from rich.table import Table

    from common import tune

    _quiet_mlflow_registry()  # tune registers the trained best parameters, as train does
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # the progress bar and our log lines say it
    config = tune.TuneConfig(project=args.project, trials=args.trials, timeout=args.timeout or None,
                             workers=args.workers, storage=args.storage, study=args.study, sample=args.sample,
                             fixed=_params(args.param), data_dir=args.data_dir, train=not args.no_train)
    result = tune.tune(config)
    table = Table(title=f"{result.project}: study {result.study} ({result.storage})")
    table.add_column("")
    table.add_column("value", justify="right")
    table.add_row("trials", ", ".join(f"{v} {k}" for k, v in result.counts.items()) or "none")
    table.add_row("wall time", f"{result.wall_s:.0f} s")
    if result.default_inner_score is not None:
        table.add_row(f"inner tuning score ({result.metric}, the defaults)", _fmt(result.default_inner_score))
    table.add_row(f"inner tuning score ({result.metric}, best of the study)", _fmt(result.inner_score))
    if result.champion_before is not None:
        table.add_row(f"champion before ({result.metric})", _fmt(result.champion_before))
    if result.protocol_score is not None:
        table.add_row(f"best parameters, unchanged protocol ({result.metric})", _fmt(result.protocol_score))
        table.add_row("champion now", "yes" if result.promoted else "no (did not beat the champion)")
    console.print(table)
    if result.best_params:
        console.print("best parameters: " + " ".join(f"{k}={v}" for k, v in sorted(result.best_params.items())),
                      highlight=False, soft_wrap=True)
    if result.interrupted:
        console.print("[yellow]interrupted[/]: finished trials are kept; run the same command to resume.")
        return 130
    return 0


def positive_int(text: str) -> int:
    """An argparse type for row counts: a whole number >= 1 (argparse turns the error into a usage message)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1; got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1; got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for the docs and tests)."""
    parser = argparse.ArgumentParser(
        prog="mlprojects",
        description="Train, evaluate, benchmark and use the mlprojects collection. Runs are logged to MLflow "
        "($MLFLOW_TRACKING_URI, default sqlite:///mlflow.db in the checkout).",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="more log output")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sub.add_parser("list", help="list the projects").set_defaults(func=cmd_list)

    def common_run_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("project", help="project name (see `mlprojects list`)")
        p.add_argument("--param", "-p", action="append", metavar="KEY=VALUE",
                       help="override a build_pipeline/load parameter (repeatable)")
        p.add_argument("--sample", type=positive_int, default=None, metavar="N", help="use only N rows (quick runs)")
        p.add_argument("--data-dir", default=None, help="folder in mirror layout to read data from")

    p = sub.add_parser("train", help="evaluate, fit, log and register a project's pipeline")
    common_run_args(p)
    p.add_argument("--promote", action="store_true", help="make the new version @champion regardless of score")
    p.add_argument("--all-variants", action="store_true", help="train every variant the project declares")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="run the evaluation protocol and log metrics, without registering")
    common_run_args(p)
    p.add_argument("--all-variants", action="store_true", help="evaluate every variant the project declares")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("train-all", help="train every project's variants and print a summary (make all)")
    p.add_argument("--sample", type=positive_int, default=None, metavar="N", help="use only N rows per project")
    p.add_argument("--data-dir", default=None, help="folder in mirror layout to read data from")
    p.set_defaults(func=cmd_train_all)

    p = sub.add_parser("predict", help="predict with a registered pipeline (the champion by default)")
    p.add_argument("project")
    p.add_argument("--input", "-i", default=None, help="CSV, JSON lines, JSON or Parquet file of raw input")
    p.add_argument("--text", "-t", action="append", default=None, help="a raw text to classify (repeatable)")
    p.add_argument("--output", "-o", default=None,
                   help="write predictions here (Parquet, CSV or JSONL by suffix; with --input, streamed in batches)")
    p.add_argument("--version", default=None, help="registered model version")
    p.add_argument("--alias", default=None, help="registered model alias (default champion)")
    p.add_argument("--run-id", default=None, help="use the model logged by this run")
    p.add_argument("--batch-size", type=positive_int, default=None, metavar="N",
                   help="rows read, scored and written at a time when streaming (default 50000)")
    p.add_argument("--on-error", choices=["raise", "skip"], default="raise",
                   help="a row the input contract refuses: stop with its row and column (raise), or write it "
                        "to the rejects file and go on (skip)")
    p.add_argument("--rejects", default=None, help="with --on-error skip: the rejects CSV (default <output>.rejects.csv)")
    p.add_argument("--engine", choices=["local", "spark"], default="local",
                   help="local: this process, streamed; spark: mlflow.pyfunc.spark_udf on a Spark cluster")
    p.add_argument("--master", default="local[2]", help="with --engine spark: the Spark master URL")
    p.add_argument("--driver-memory", default="2g", help="with --engine spark: spark.driver.memory")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("report", help="write reports/leaderboard.md and reports/index.html from the champions")
    p.add_argument("--out", default=None, help="output folder (default reports/ in the checkout)")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("bench", help="measure fit time, predict latency, throughput, memory and model size")
    common_run_args(p)
    p.add_argument("--repeats", type=int, default=200, help="single-row predictions to time")
    p.add_argument("--json", default=None, help="also write the figures to this JSON file")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("load-time", help="time a new process that loads each champion and predicts one row")
    p.add_argument("projects", nargs="*", help="projects to time (default: all with a champion)")
    p.add_argument("--runs", type=int, default=3, help="timed runs per project after one warm-up (median shown)")
    p.add_argument("--json", default=None, help="also write the figures to this JSON file")
    p.set_defaults(func=cmd_load_time)

    p = sub.add_parser("server", help="the team stack: MLflow server on PostgreSQL (start|stop|status)")
    p.add_argument("action", choices=["start", "stop", "status"])
    p.add_argument("--state-dir", default=None,
                   help="state folder (default $MLPROJECTS_SERVER_DIR or .mlprojects-server/ in the checkout)")
    p.add_argument("--port", type=int, default=None, help="MLflow server port (default: last one if free)")
    p.add_argument("--pg-port", type=int, default=None, help="PostgreSQL port (default: last one if free)")
    p.add_argument("--artifacts-destination", default=None,
                   help="where the server stores artifacts: a folder or s3://bucket/prefix "
                        "(default $MLPROJECTS_SERVER_ARTIFACTS, else <state>/artifacts)")
    p.add_argument("--s3-endpoint-url", default=None,
                   help="S3-compatible endpoint for the server (default $MLFLOW_S3_ENDPOINT_URL)")
    p.add_argument("--workers", type=int, default=1, help="server worker processes")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for the server's /health")
    p.set_defaults(func=cmd_server)

    p = sub.add_parser("bench-store", help="tracking-store throughput: embedded sqlite vs the team server")
    p.add_argument("--clients", type=int, nargs="+", default=[1, 2, 4, 8], metavar="K",
                   help="concurrent client processes to try (default 1 2 4 8)")
    p.add_argument("--runs", type=int, default=10, help="runs each client logs")
    p.add_argument("--uri", default=None, help="an already running server (default: start a temporary stack)")
    p.add_argument("--sqlite-only", action="store_true", help="measure only the embedded sqlite store")
    p.add_argument("--server-only", action="store_true", help="measure only the server")
    p.add_argument("--json", default="bench/store.json", help="write the figures here")
    p.set_defaults(func=cmd_bench_store)

    p = sub.add_parser("bench-scoring", help="rows/s and peak memory of one-shot, streaming and Spark scoring")
    p.add_argument("--projects", nargs="+", default=["house_prices", "churn", "spam"],
                   help="projects to score (their champions in the current store)")
    p.add_argument("--rows", type=positive_int, nargs="+", default=[1_000_000], metavar="N",
                   help="generated input sizes (default 1000000)")
    p.add_argument("--modes", nargs="+", choices=["oneshot", "stream", "spark"], default=["oneshot", "stream", "spark"],
                   help="what to measure (default all three)")
    p.add_argument("--batch-size", type=positive_int, default=50_000, metavar="N", help="streaming batch size")
    p.add_argument("--master", default="local[2]", help="Spark master for the spark mode")
    p.add_argument("--max-rss-gb", type=float, default=8.0,
                   help="stop a measurement whose process tree grows past this (default 8 GiB)")
    p.add_argument("--workdir", default=None, help="inputs and outputs (default <tmp>/mlprojects-bench-scoring)")
    p.add_argument("--keep", action="store_true", help="keep the generated inputs for the next run")
    p.add_argument("--json", default="bench/scoring.json", help="write the figures here")
    p.set_defaults(func=cmd_bench_scoring)

    p = sub.add_parser("serve", help="serve a registered pipeline over REST (MLflow's scoring server, clean errors)")
    p.add_argument("project")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=5001, help="port (default 5001)")
    p.add_argument("--version", default=None, help="registered model version")
    p.add_argument("--alias", default=None, help="registered model alias (default champion)")
    p.add_argument("--max-body-mb", type=float, default=None,
                   help="largest request body in MiB, else 413 (default $MLPROJECTS_SERVE_MAX_BODY_MB or 10)")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("doctor", help="find (and with --repair fix) runs and versions left by killed trainings")
    p.add_argument("--repair", action="store_true",
                   help="mark dead runs KILLED, complete or archive unscored versions")
    p.add_argument("--include-stale", "--include-remote", dest="include_stale", action="store_true",
                   help="with --repair, also end RUNNING runs of other hosts (or untagged) older than --stale-hours")
    p.add_argument("--stale-hours", type=float, default=24.0,
                   help="age after which another host's RUNNING run is reported as possibly stale (default 24)")
    p.set_defaults(func=cmd_doctor)

    p = sub.add_parser("tune", help="tune a project with Optuna (workers share one study), then train the best")
    common_run_args(p)
    p.add_argument("--trials", type=positive_int, default=50, metavar="N",
                   help="the study ends at N finished trials; a re-run resumes it (default 50)")
    p.add_argument("--timeout", type=float, default=1800.0, metavar="S",
                   help="seconds each worker optimises at most (default 1800; 0 = no limit)")
    p.add_argument("--workers", type=positive_int, default=1, metavar="W",
                   help="worker processes here, each with its share of the cores (default 1)")
    p.add_argument("--storage", default=None, metavar="URL",
                   help="Optuna storage shared by the workers (default sqlite optuna.db beside the MLflow store; "
                        "postgresql+psycopg://... or 'team' (the team stack's PostgreSQL) lets other machines join)")
    p.add_argument("--study", default=None, metavar="NAME",
                   help="study name (default: the project, plus --param and --sample values)")
    p.add_argument("--no-train", action="store_true",
                   help="only search (a worker joining from another machine); do not train the best parameters")
    p.set_defaults(func=cmd_tune)
    return parser


# Commands that register model versions. Only these pay for importing MLflow up front (about 1.5 s), so
# that ``predict``'s MLflow-free fast path and ``list`` stay quick.
_REGISTERING_COMMANDS = ("train", "train-all")


def _quiet_mlflow_registry() -> None:
    """Route MLflow's registry prints ("Registered model 'x' already exists. Creating a new version...",
    "Created version 'n' of model 'x'") to DEBUG records of their module's logger.

    MLflow 3 writes them with ``eprint`` (a plain print to stderr), which no logger level reaches; our own
    summary already says which version was registered. ``-v`` does not bring them back: setup_logging keeps
    the ``mlflow`` loggers at ERROR.
    """
    try:
        from mlflow.tracking._model_registry import fluent
    except ImportError:  # a different MLflow layout: keep its messages rather than fail
        return
    if hasattr(fluent, "eprint"):
        registry_log = logging.getLogger(fluent.__name__)
        fluent.eprint = lambda *parts, **_: registry_log.debug(" ".join(str(p) for p in parts))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (0 ok, 2 user error, 1 unexpected failure)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    if getattr(args, "command", None) in _REGISTERING_COMMANDS:
        _quiet_mlflow_registry()
    try:
        return int(args.func(args) or 0)
    except MLProjectsError as exc:
        console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        if args.debug:
            traceback.print_exc()
        return exc.exit_code
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/]")
        return 130
    except Exception as exc:  # the last line of defence: a message, and the traceback on request
        if args.debug:
            raise
        console.print(
            f"[bold red]unexpected error:[/] {type(exc).__name__}: {exc}\n"
            "Run again with --debug for the full traceback.", highlight=False, soft_wrap=True,
        )
        return 1


def _entry() -> None:  # pragma: no cover
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())


__all__ = ["main", "build_parser", "InputError"]
