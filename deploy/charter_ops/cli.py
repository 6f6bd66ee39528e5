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
    from charter_indicators.settings import IndicatorsSettings  # noqa: PLC0415
    from charter_runtime.http import serve  # noqa: PLC0415

    _configure_logging()
    settings = IndicatorsSettings()
    serve(create_app(settings), settings.http_host, settings.http_port, settings.log_level)


@app.command()
def alerts() -> None:
    """Run the alerts service (charter.indicators -> charter.alerts). Configured by CHARTER_* env."""
    from charter_alerts.app import create_app  # noqa: PLC0415
    from charter_alerts.domain.rules import RulesError  # noqa: PLC0415
    from charter_alerts.settings import AlertsSettings  # noqa: PLC0415
    from charter_runtime.http import serve  # noqa: PLC0415

    _configure_logging()
    try:
        settings = AlertsSettings()
        app_ = create_app(settings)
    except (RulesError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    serve(app_, settings.http_host, settings.http_port, settings.log_level)


@app.command("check-rules")
def check_rules(path: Annotated[Path, typer.Argument(help="A charter rules file (YAML).")]) -> None:
    """Validate a charter rules file as the alerts service would, and list the rules it defines."""
    from charter_alerts.domain.rules import RulesError, parse_rules  # noqa: PLC0415

    try:
        rules = parse_rules(path.read_text(encoding="utf-8"), str(path))
    except (OSError, RulesError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    for name in rules.names():
        typer.echo(f"{name}: {rules.defaults[name].kind} on {rules.defaults[name].indicator}")
    typer.echo(f"{path}: {len(rules.names())} rules, {len(rules.document.overrides)} overrides: valid")


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
