"""The ``charter`` command: the one entry point operators and integrators type (SPEC section 8)."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from charter_ops.kafka.local import KafkaLocalError, LocalKafka, default_home

app = typer.Typer(
    name="charter",
    help="Live charter-indicator streaming for French public services.",
    no_args_is_help=True,
    add_completion=False,
)
kafka_app = typer.Typer(
    help="A local single-node Apache Kafka (KRaft) for development and tests.", no_args_is_help=True
)
app.add_typer(kafka_app, name="kafka")
sites_app = typer.Typer(help="The site registry (the compacted charter.sites topic).", no_args_is_help=True)
app.add_typer(sites_app, name="sites")


def _local_kafka(home: Path | None, port: int | None, controller_port: int | None) -> LocalKafka:
    return LocalKafka(
        home=home or default_home(),
        port=port or int(os.environ.get("CHARTER_KAFKA_PORT", "9092")),
        controller_port=controller_port or int(os.environ.get("CHARTER_KAFKA_CONTROLLER_PORT", "29093")),
    )


HomeOption = Annotated[Path | None, typer.Option(help="Data, log and pid directory [env CHARTER_KAFKA_HOME].")]
PortOption = Annotated[int | None, typer.Option(help="Client port [env CHARTER_KAFKA_PORT, default 9092].")]
ControllerOption = Annotated[
    int | None,
    typer.Option(help="KRaft controller port [env CHARTER_KAFKA_CONTROLLER_PORT, default 29093]."),
]


@kafka_app.command("up")
def kafka_up(home: HomeOption = None, port: PortOption = None, controller_port: ControllerOption = None) -> None:
    """Fetch Kafka from Maven Central if needed, start it, wait until it answers (idempotent)."""
    kafka = _local_kafka(home, port, controller_port)
    try:
        status = kafka.up(say=lambda m: typer.echo(m, err=True))
    except KafkaLocalError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"Kafka running (pid {status.pid}) at {status.bootstrap_servers}; log: {status.log_file}")


@kafka_app.command("down")
def kafka_down(home: HomeOption = None, port: PortOption = None, controller_port: ControllerOption = None) -> None:
    """Stop the local Kafka started by ``charter kafka up``."""
    stopped = _local_kafka(home, port, controller_port).down()
    typer.echo("Kafka stopped" if stopped else "Kafka was not running")


@kafka_app.command("status")
def kafka_status(home: HomeOption = None, port: PortOption = None, controller_port: ControllerOption = None) -> None:
    """Say whether the local Kafka runs; exit code 1 when it does not."""
    status = _local_kafka(home, port, controller_port).status()
    if status.running:
        typer.echo(f"Kafka running (pid {status.pid}) at {status.bootstrap_servers}; log: {status.log_file}")
    else:
        typer.echo(f"Kafka not running (home {status.home})")
        raise typer.Exit(1)


def _configure_logging() -> None:
    logging.basicConfig(
        level=os.environ.get("CHARTER_LOG_LEVEL", "INFO").upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("aiokafka").setLevel(logging.WARNING)


@app.command()
def ingest() -> None:
    """Run the ingest service (raw.<network>.* -> charter.*, dead letters). Configured by CHARTER_* env."""
    from charter_ingest.app import create_app  # noqa: PLC0415 - each service loads only its own code
    from charter_ingest.settings import IngestSettings  # noqa: PLC0415
    from charter_runtime.http import serve  # noqa: PLC0415

    _configure_logging()
    settings = IngestSettings()
    serve(create_app(settings), settings.http_host, settings.http_port, settings.log_level)


@app.command()
def indicators() -> None:
    """Run the indicators service (charter.* -> charter.indicators, /metrics). Configured by CHARTER_* env."""
    from charter_indicators.app import create_app  # noqa: PLC0415
    from charter_indicators.procedures import ProceduresFileError  # noqa: PLC0415
    from charter_indicators.settings import IndicatorsSettings  # noqa: PLC0415
    from charter_runtime.http import serve  # noqa: PLC0415

    _configure_logging()
    settings = IndicatorsSettings()
    try:
        app = create_app(settings)
    except ProceduresFileError as exc:
        typer.echo(f"error: {exc} (CHARTER_INDICATORS_PROCEDURES_FILE)", err=True)
        raise typer.Exit(1) from exc
    serve(app, settings.http_host, settings.http_port, settings.log_level)


@app.command()
def alerts() -> None:
    """Run the alerts service (charter.indicators -> charter.alerts). Configured by CHARTER_* env."""
    from charter_alerts.app import create_app  # noqa: PLC0415
    from charter_alerts.settings import AlertsSettings  # noqa: PLC0415
    from charter_runtime.http import serve  # noqa: PLC0415

    _configure_logging()
    settings = AlertsSettings()
    serve(create_app(settings), settings.http_host, settings.http_port, settings.log_level)


@app.command()
def simulate(
    rate: Annotated[float, typer.Option(help="Events per second.")] = 20.0,
    seed: Annotated[int, typer.Option(help="Random seed: the same seed gives the same traffic.")] = 1,
    duration: Annotated[float | None, typer.Option(help="Seconds to run; default until Ctrl-C.")] = None,
    degrade: Annotated[list[str] | None, typer.Option(help="Network whose pickup rate collapses (repeatable).")] = None,
    bootstrap_servers: Annotated[
        str, typer.Option(envvar="CHARTER_KAFKA_BOOTSTRAP_SERVERS", help="Kafka bootstrap servers.")
    ] = "127.0.0.1:9092",
    topic_prefix: Annotated[str, typer.Option(envvar="CHARTER_KAFKA_TOPIC_PREFIX", help="Topic prefix.")] = "",
) -> None:
    """Publish seeded network traffic over the real France services sites to the raw topics."""
    from charter_contracts.topics import TopicNames  # noqa: PLC0415
    from charter_ops.simulator import Simulator, run_live  # noqa: PLC0415
    from charter_ops.sites import read_france_services_csv  # noqa: PLC0415

    sites = read_france_services_csv().sites
    simulator = Simulator(sites, seed=seed, degraded=frozenset(degrade or ()))
    typer.echo(f"simulate: {len(sites)} sites, {rate:g} events/s, degraded: {sorted(simulator.degraded) or 'none'}")
    try:
        asyncio.run(run_live(simulator, bootstrap_servers, TopicNames(topic_prefix), rate, duration))
    except KeyboardInterrupt:
        typer.echo("simulate: stopped")


@sites_app.command("load")
def sites_load(
    path: Annotated[Path, typer.Argument(help="France services CSV (as published), the product's CSV or JSON.")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Read and report only; publish nothing.")] = False,
    bootstrap_servers: Annotated[
        str, typer.Option(envvar="CHARTER_KAFKA_BOOTSTRAP_SERVERS", help="Kafka bootstrap servers.")
    ] = "127.0.0.1:9092",
    topic_prefix: Annotated[str, typer.Option(envvar="CHARTER_KAFKA_TOPIC_PREFIX", help="Topic prefix.")] = "",
    partitions: Annotated[
        int, typer.Option(envvar="CHARTER_KAFKA_PARTITIONS", help="Partitions of the charter.* topics if created.")
    ] = 6,
) -> None:
    """Load a site registry file into charter.sites; rows that cannot be read are reported, never fatal."""
    from rich.progress import Progress  # noqa: PLC0415

    from charter_contracts.topics import TopicNames  # noqa: PLC0415
    from charter_ops.sites import SitesFileError, publish_sites, read_sites_file  # noqa: PLC0415
    from charter_runtime.kafka import contract_topics, ensure_topics  # noqa: PLC0415

    try:
        kind, report = read_sites_file(path)
    except SitesFileError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    skipped = report.skipped
    partial = [p for p in report.problems if not p.skipped]
    typer.echo(
        f"{path}: {kind} format, {len(report.sites)} sites read, {len(skipped)} rows not read, "
        f"{len(partial)} read in part"
    )
    for problem in report.problems:
        what = "not read" if problem.skipped else "read in part"
        typer.echo(f"  row {problem.row} ({problem.site_id or 'no id'}), {what}: {problem.message}")
    if dry_run or not report.sites:
        if not report.sites:
            typer.echo("nothing to publish", err=True)
            raise typer.Exit(1)
        return
    names = TopicNames(topic_prefix)
    logging.getLogger("aiokafka").setLevel(logging.ERROR)  # retries on a fresh topic are not news

    async def load() -> int:
        await ensure_topics(bootstrap_servers, contract_topics(names, partitions))
        with Progress(transient=True) as bar:
            task = bar.add_task(f"publishing to {names.sites}", total=len(report.sites))
            return await publish_sites(report.sites, bootstrap_servers, names, progress=lambda n: bar.advance(task, n))

    try:
        published = asyncio.run(load())
    except Exception as exc:  # Kafka unreachable, topic errors: say so plainly
        typer.echo(f"error: publishing to {names.sites} at {bootstrap_servers} failed: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"published {published} sites to {names.sites}")


@app.command()
def stack(
    rate: Annotated[float, typer.Option(help="Simulated events per second.")] = 50.0,
    degrade: Annotated[
        list[str] | None, typer.Option(help="Network whose service collapses, to see an alert fire (repeatable).")
    ] = None,
    run_dir: Annotated[Path, typer.Option(help="Where logs go.")] = Path(".run"),
) -> None:
    """Run the whole product locally: Kafka, the three services and the simulator (what `make run` does)."""
    from charter_ops.stack import run_stack  # noqa: PLC0415

    raise typer.Exit(run_stack(rate, degrade if degrade is not None else ["france-services"], run_dir))


@app.command()
def schemas(
    directory: Annotated[Path | None, typer.Option(help="Where to write; default contracts/schemas.")] = None,
) -> None:
    """Export the JSON Schema of every contract model."""
    from charter_contracts.schemas import SCHEMA_DIR, export  # noqa: PLC0415

    for path in export(directory or SCHEMA_DIR):
        typer.echo(str(path))


def main() -> None:
    """Console-script entry point."""
    app()
