"""`tickml bench api`, `abuse`, `pipeline` and `scoring`: figures go to benchmarks/results/."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated

import typer

from tickml.cli.api import WORKER_CLASSES
from tickml.cli.output import fail
from tickml.config import Settings, get_settings

bench_app = typer.Typer(help="Measure speed; figures go to benchmarks/results/.",
                        no_args_is_help=True)
RunsOption = Annotated[int, typer.Option(
    min=1, help="Run the benchmark this many times; the results file keeps the last run's "
                "figures and, for 2 or more, the spread of each headline figure.")]


def _passive_openmp() -> None:
    """Set before LightGBM first loads, as `tickml serve` does: its OpenMP threads would
    otherwise spin after each prediction and take the CPU from the next call."""
    import os

    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


@bench_app.command("api")
def bench_api(
    requests_per_level: Annotated[int, typer.Option(
        min=10, help="Single-row requests sent at each concurrency level.")] = 600,
    batches: Annotated[int, typer.Option(
        min=2, help="Batches of 1,000 rows sent to the API (and scored in-process).")] = 40,
    workers: Annotated[int, typer.Option(min=1, help="gunicorn workers of the server.")] = 2,
    threads: Annotated[int, typer.Option(min=1, help="Threads per worker.")] = 4,
    worker_class: Annotated[str, typer.Option(
        help="'gevent' (the server's default), 'gthread' or 'sync'.")] = "gevent",
    models_dir: Annotated[Path | None, typer.Option(
        help="Registry whose production model is measured (default: TICKML_MODELS_DIR).")
    ] = None,
    output: Annotated[Path | None, typer.Option(
        help="Results file (default: benchmarks/results/api.json under TICKML_ROOT, "
             "api-vs-mlserver.json with --against mlserver).")
    ] = None,
    runs: RunsOption = 1,
    against: Annotated[str | None, typer.Option(
        help="'mlserver': measure tickml's API beside MLServer (tickml's runtime, the same "
             "model) with the same client in the same run, instead.")] = None,
) -> None:
    """Measure the model API against its floors, measured in the same run.

    In process: predict_proba on 1 and 1,000 rows, and the API's own JSON parsing and
    validation plus scoring of the 1,000-row body. Through the API: GET /health, single
    rows at concurrency 1, 8 and 32 (p50, p99, requests/s), batches of 1,000 rows as
    JSON and as a binary V2 tensor (rows/s). Prints a table and each figure over its
    floor, and writes the figures as JSON. With --against mlserver: one row (p50) and
    1,000-row batches as JSON and binary V2, tickml's API and MLServer side by side.
    """
    _passive_openmp()  # as the server under test does
    from tickml.bench.api import print_results, run_benchmark
    from tickml.bench.runs import format_spread, repeated, write_results
    from tickml.registry import RegistryError

    if against is not None:
        _versus(against, requests_per_level, batches, models_dir, output)
        return
    if worker_class not in WORKER_CLASSES:
        raise fail(f"--worker-class must be one of {', '.join(WORKER_CLASSES)}")
    settings = get_settings()
    if models_dir is not None:
        settings = dataclasses.replace(settings, models_dir=models_dir)
    try:
        results = repeated(lambda: run_benchmark(
            settings, requests_per_level=requests_per_level, batches=batches, workers=workers,
            threads=threads, worker_class=worker_class), runs, "ratios", typer.echo)
    except RegistryError as exc:
        raise fail(str(exc)) from None
    path = output or settings.root / "benchmarks" / "results" / "api.json"
    write_results(results, path)
    print_results(results)
    if "spread" in results:
        typer.echo(format_spread(results["spread"]))
    typer.echo(f"wrote {path}", err=True)


def _versus(against: str, singles: int, batches: int, models_dir: Path | None,
            output: Path | None) -> None:
    """`tickml bench api --against mlserver`."""
    from tickml.bench.runs import write_results
    from tickml.bench.versus import format_table, run_versus_mlserver
    from tickml.registry import RegistryError

    if against != "mlserver":
        raise typer.BadParameter("the one server to measure against is 'mlserver'",
                                 param_hint="--against")
    settings = get_settings()
    if models_dir is not None:
        settings = dataclasses.replace(settings, models_dir=models_dir)
    try:
        results = run_versus_mlserver(settings, singles, batches)
    except RegistryError as exc:
        raise fail(str(exc)) from None
    path = output or settings.root / "benchmarks" / "results" / "api-vs-mlserver.json"
    write_results(results, path)
    typer.echo(format_table(results))
    typer.echo(f"wrote {path}", err=True)


@bench_app.command("abuse")
def bench_abuse(
    requests: Annotated[int, typer.Option(
        min=2, help="Requests to /health and to /predict in each series.")] = 20,
    timeout: Annotated[float, typer.Option(
        min=1, help="Seconds without an answer after which a request counts as blocked.")
    ] = 5.0,
    workers: Annotated[int, typer.Option(min=1, help="gunicorn workers of each server.")] = 2,
    output: Annotated[Path | None, typer.Option(
        help="Results file (default: benchmarks/results/abuse.json under TICKML_ROOT).")
    ] = None,
) -> None:
    """Measure the API under abuse, the earlier deployment and the current one in one run.

    Before: gthread workers, 16 MiB bodies, no cap on large bodies at once. After: the
    current settings (gevent, TICKML_API_MAX_BODY_BYTES, TICKML_API_LARGE_BODIES). For
    each: /health and /predict latency alone and while 16 clients send their headers
    one line a second; worker RSS growth for a 16 MiB body of empty objects, four at
    once, and four at the body limit. Prints the figures and writes them as JSON.
    """
    from tickml.bench.abuse import format_results, run_abuse_benchmark
    from tickml.bench.runs import write_results
    from tickml.stack.bootstrap import ensure_dataset_and_model

    settings = get_settings()
    ensure_dataset_and_model(settings, 50_000, report=typer.echo)
    results = run_abuse_benchmark(settings, requests=requests, timeout=timeout,
                                  workers=workers)
    path = output or settings.root / "benchmarks" / "results" / "abuse.json"
    write_results(results, path)
    typer.echo(format_results(results))
    typer.echo(f"wrote {path}", err=True)


@bench_app.command("pipeline")
def bench_pipeline(
    burst: Annotated[int, typer.Option(
        min=100, help="Transactions written at once to measure the micro-batched capacity.")
    ] = 50_000,
    naive_burst: Annotated[int, typer.Option(
        min=100, help="Burst size for batch size 1 (one HTTP call per point; slower).")
    ] = 3_000,
    rate: Annotated[float, typer.Option(
        min=1, help="Moderate rate (transactions/s) at which latency is measured.")] = 50.0,
    high_rate: Annotated[float, typer.Option(
        min=1, help="High rate (transactions/s) at which latency is measured too.")] = 1000.0,
    seconds: Annotated[float, typer.Option(
        min=1, help="Seconds of paced writing at each rate.")] = 10.0,
    output: Annotated[Path | None, typer.Option(
        help="Results file (default: benchmarks/results/pipeline.json under TICKML_ROOT; "
             "pipeline-scaling-BACKEND.json with --shards or --backend).")
    ] = None,
    runs: RunsOption = 1,
    shards: Annotated[str | None, typer.Option(
        help="Shard counts to measure in turn, e.g. 1,2: capacity and CPU seconds per 1,000 "
             "transactions of each stage, instead of the modes below.")] = None,
    backend: Annotated[str | None, typer.Option(
        help="The model server the agents score against: 'tickml' (its API) or "
             "'mlserver' (MLServer's V2 endpoint); implies the per-stage measurement.")
    ] = None,
) -> None:
    """Measure the whole stream (influxd, kapacitord, agent, API) on this machine.

    Starts its own stack on free ports, then measures in the same run the micro-batched
    agent, the ceiling (the same stream through kapacitord with no UDF) and batch size
    1: burst capacity (transactions/s), CPU per process, the agent's CPU per point and
    peak memory, and latency from the write to the point being readable in InfluxDB
    (p50, p99) at a moderate and a high rate. Writes benchmarks/results/pipeline.json.
    """
    from tickml.bench.pipeline import format_table, run_pipeline_benchmark
    from tickml.bench.runs import format_spread, repeated, write_results
    from tickml.stack.bootstrap import ensure_dataset_and_model

    settings = get_settings()
    ensure_dataset_and_model(settings, 50_000, report=typer.echo)
    if shards is not None or backend is not None:
        _scaling(settings, shards or "1", backend or "tickml", burst, rate, seconds, output)
        return
    results = repeated(lambda: run_pipeline_benchmark(settings, burst, naive_burst, rate,
                                                      high_rate, seconds),
                       runs, "headline", typer.echo)
    path = output or settings.root / "benchmarks" / "results" / "pipeline.json"
    write_results(results, path)
    typer.echo(format_table(results))
    if "spread" in results:
        typer.echo(format_spread(results["spread"]))
    typer.echo(f"written to {path}")


def _scaling(settings: Settings, shards: str, backend: str, burst: int, rate: float, seconds: float,
             output: Path | None) -> None:
    """`tickml bench pipeline --shards ... --backend ...`."""
    from tickml.bench.runs import write_results
    from tickml.bench.scaling import BACKENDS, format_table, run_scaling_benchmark

    if backend not in BACKENDS:
        raise typer.BadParameter(f"one of {', '.join(BACKENDS)}", param_hint="--backend")
    try:
        counts = [int(n) for n in shards.split(",")]
    except ValueError:
        raise typer.BadParameter("shard counts such as 1,2", param_hint="--shards") from None
    if not counts or min(counts) < 1:
        raise typer.BadParameter("shard counts from 1", param_hint="--shards")
    results = run_scaling_benchmark(settings, counts, backend, burst, rate, seconds)
    path = output or settings.root / "benchmarks" / "results" / f"pipeline-scaling-{backend}.json"
    write_results(results, path)
    typer.echo(format_table(results))
    typer.echo(f"written to {path}")


@bench_app.command("scoring")
def bench_scoring(
    rounds: Annotated[int, typer.Option(
        min=1, help="Rounds of measurement; each times both paths, one after the other.")] = 3,
    single_calls: Annotated[int, typer.Option(
        min=10, help="Single-row calls timed per path and round.")] = 2_000,
    batch_calls: Annotated[int, typer.Option(
        min=2, help="Calls with 1,000 rows timed per path and round.")] = 50,
    models_dir: Annotated[Path | None, typer.Option(
        help="Registry whose production model is measured (default: TICKML_MODELS_DIR).")
    ] = None,
    output: Annotated[Path | None, typer.Option(
        help="Results file (default: benchmarks/results/scoring.json under TICKML_ROOT).")
    ] = None,
) -> None:
    """Measure in-process scoring: the pipeline against its compiled fast path.

    Builds the production model's fast path, checks it equal to the pipeline on
    1,000 rows, then times one row (µs) and 1,000 rows (rows/s) through both, in
    turns, for each round. Prints a table and writes the figures as JSON.
    """
    _passive_openmp()
    from tickml.bench.runs import write_results
    from tickml.bench.scoring import format_table, run_scoring_benchmark
    from tickml.registry import RegistryError

    settings = get_settings()
    if models_dir is not None:
        settings = dataclasses.replace(settings, models_dir=models_dir)
    try:
        results = run_scoring_benchmark(settings, rounds=rounds, single_calls=single_calls,
                                        batch_calls=batch_calls)
    except (RegistryError, ValueError) as exc:
        raise fail(str(exc)) from None
    path = output or settings.root / "benchmarks" / "results" / "scoring.json"
    write_results(results, path)
    typer.echo(format_table(results))
    typer.echo(f"wrote {path}", err=True)


@bench_app.command("soak")
def bench_soak(
    minutes: Annotated[float, typer.Option(min=1, help="How long the generator runs.")] = 5.0,
    rate: Annotated[float, typer.Option(min=1, help="Transactions per second.")] = 200.0,
    seed: Annotated[int, typer.Option(help="Seed of the fault schedule.")] = 1,
    faults_per_minute: Annotated[float, typer.Option(
        min=0.1, help="Faults per minute on average; every kind comes at least once.")] = 3.0,
    fault: Annotated[list[str] | None, typer.Option(
        help="Only these fault kinds (repeat the option); default: all of them.")] = None,
    output: Annotated[Path | None, typer.Option(
        help="Results file (default: benchmarks/results/soak.json under TICKML_ROOT).")
    ] = None,
    docker: Annotated[bool, typer.Option(
        "--docker", help="Soak the Docker Compose stack (a throw-away copy of the project "
        "under the Compose project tickml-soak) instead of the native one.")] = False,
) -> None:
    """Run the stack (native, or Docker with --docker) under the generator with faults,
    and judge it.

    Faults from a seeded schedule, several overlapping: SIGKILL of the agent, kapacitord,
    one API worker, the whole API and influxd; SIGSTOP of the API for 20 s; the scoring
    task disabled, enabled and saved as Chronograf does; the stack started again
    (`tickml up`, or `./up.sh` with --docker); another model promoted; malformed points
    among good ones. Then, by transaction id: every transaction scored exactly once,
    every malformed point marked with its reason, the live share outside fault windows
    (at least 99 %), the time to live scoring after each fault kind (p50, max), one UDF
    connection, no panic or traceback in any log, no memory growth trend. Uses the
    project's dataset and a copy of its models. Exits 1 when the verdict fails.
    """
    from tickml.bench.faults import FAULTS
    from tickml.bench.runs import write_results
    from tickml.bench.soak import SoakOptions, format_summary, run_soak
    from tickml.stack.bootstrap import ensure_dataset_and_model

    unknown = sorted(set(fault or ()) - set(FAULTS))
    if unknown:
        raise typer.BadParameter(f"unknown fault {', '.join(unknown)}; the kinds are "
                                 f"{', '.join(FAULTS)}", param_hint="--fault")
    if docker:
        from tickml.stack.compose import ComposeUnavailable, check_compose

        try:
            check_compose()
        except ComposeUnavailable as exc:
            typer.echo(f"tickml bench soak --docker: {exc}; or run the native soak "
                       "without --docker", err=True)
            raise typer.Exit(2) from None
    settings = get_settings()
    ensure_dataset_and_model(settings, 50_000, report=typer.echo)
    options = SoakOptions(minutes=minutes, rate=rate, seed=seed,
                          faults_per_minute=faults_per_minute,
                          kinds=tuple(fault or FAULTS))
    results = run_soak(settings, options, report=typer.echo, docker=docker)
    path = output or settings.root / "benchmarks" / "results" / "soak.json"
    write_results(results, path)
    typer.echo(format_summary(results))
    typer.echo(f"written to {path}")
    if not results["verdict"]["passed"]:
        raise typer.Exit(1)
