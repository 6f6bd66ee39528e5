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
    serve(
        create_app(settings),
        settings.http_host,
        settings.http_port,
        settings.log_level,
        tls_certfile=settings.tls_certfile or None,
        tls_keyfile=settings.tls_keyfile or None,
    )


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


tokens_app = typer.Typer(
    help="Bearer tokens of ingest's HTTPS endpoint (POST /v1/events): one network each, stored hashed.",
    no_args_is_help=True,
)
app.add_typer(tokens_app, name="tokens")
TokensFileOption = Annotated[
    Path | None,
    typer.Option(
        "--file",
        help="Tokens file [env CHARTER_INGEST_TOKENS_FILE, default ~/.config/charter/ingest-tokens.json].",
    ),
]


def _tokens_path(path: Path | None) -> Path:
    from charter_ingest.settings import DEFAULT_TOKENS_FILE  # noqa: PLC0415

    return (path or Path(os.environ.get("CHARTER_INGEST_TOKENS_FILE") or DEFAULT_TOKENS_FILE)).expanduser()


def _load_tokens(path: Path) -> object:
    from charter_ingest import tokens  # noqa: PLC0415

    try:
        return tokens.load(path)
    except tokens.TokenFileError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc


@tokens_app.command("create")
def tokens_create(
    network: Annotated[str, typer.Option(help="The network the token publishes for, e.g. caf.")],
    expires_in_days: Annotated[
        float | None, typer.Option(help="Days until the token expires; default never (revoke it to end it).")
    ] = None,
    note: Annotated[str, typer.Option(help="Who holds it, what for (shown by `charter tokens list`).")] = "",
    file: TokensFileOption = None,
) -> None:
    """Create a token for a network; it is printed once and only its hash is stored."""
    from datetime import UTC, datetime, timedelta  # noqa: PLC0415

    from pydantic import ValidationError  # noqa: PLC0415

    from charter_ingest import tokens  # noqa: PLC0415

    path = _tokens_path(file)
    content = _load_tokens(path)
    assert isinstance(content, tokens.TokenFile)
    try:
        token, record = tokens.new_token(
            network,
            datetime.now(UTC),
            timedelta(days=expires_in_days) if expires_in_days else None,
            note,
        )
    except ValidationError as exc:
        typer.echo(f"error: {exc.errors()[0]['loc'][0]}: {exc.errors()[0]['msg']}", err=True)
        raise typer.Exit(2) from exc
    content.tokens.append(record)
    tokens.save(path, content)
    typer.echo(token)
    expiry = f"expires {record.expires_at:%Y-%m-%d %H:%M} UTC" if record.expires_at else "does not expire"
    typer.echo(
        f"token {record.id} for {network} ({expiry}) stored hashed in {path}; "
        "copy it now, it cannot be shown again. Running ingest services pick it up by themselves.",
        err=True,
    )


@tokens_app.command("list")
def tokens_list(file: TokensFileOption = None) -> None:
    """List the tokens (ids, networks, state; never the tokens themselves)."""
    from datetime import UTC, datetime  # noqa: PLC0415

    from rich.console import Console  # noqa: PLC0415
    from rich.table import Table  # noqa: PLC0415

    from charter_ingest import tokens  # noqa: PLC0415

    path = _tokens_path(file)
    content = _load_tokens(path)
    assert isinstance(content, tokens.TokenFile)
    now = datetime.now(UTC)
    table = Table("id", "network", "state", "created", "expires", "note", title=str(path))
    for record in content.tokens:
        table.add_row(
            record.id,
            record.network,
            record.state(now),
            f"{record.created_at:%Y-%m-%d %H:%M}",
            f"{record.expires_at:%Y-%m-%d %H:%M}" if record.expires_at else "never",
            record.note,
        )
    Console().print(table)


@tokens_app.command("revoke")
def tokens_revoke(
    token_id: Annotated[str, typer.Argument(help="The token's id (the 12 hex digits after chrt_).")],
    file: TokensFileOption = None,
) -> None:
    """Revoke a token now (running ingest services refuse it within a second)."""
    from datetime import UTC, datetime  # noqa: PLC0415

    from charter_ingest import tokens  # noqa: PLC0415

    path = _tokens_path(file)
    content = _load_tokens(path)
    assert isinstance(content, tokens.TokenFile)
    for index, record in enumerate(content.tokens):
        if record.id == token_id:
            if record.revoked_at is None:
                content.tokens[index] = record.model_copy(update={"revoked_at": datetime.now(UTC)})
                tokens.save(path, content)
            typer.echo(f"token {token_id} ({record.network}) revoked")
            return
    typer.echo(f"error: no token {token_id!r} in {path}", err=True)
    raise typer.Exit(2)


@app.command()
def publish(
    path: Annotated[Path, typer.Argument(help="File of events: .json (array), .ndjson/.jsonl or .csv.")],
    network: Annotated[str, typer.Option(help="Your network: events of another network are refused.")],
    url: Annotated[
        str | None, typer.Option(help="Ingest's HTTPS URL (e.g. https://ingest.example.gouv.fr); default: Kafka.")
    ] = None,
    token: Annotated[
        str | None, typer.Option(envvar="CHARTER_TOKEN", help="Bearer token of your network (with --url).")
    ] = None,
    file_format: Annotated[
        str | None, typer.Option("--format", help="json, ndjson or csv; default: from the suffix.")
    ] = None,
    wait: Annotated[float, typer.Option(help="Kafka: seconds to wait for ingest's verdicts (0: do not wait).")] = 60.0,
    rejects: Annotated[Path | None, typer.Option(help="Write every reject to this file (NDJSON).")] = None,
    cacert: Annotated[Path | None, typer.Option(help="CA certificate to trust for --url (PEM).")] = None,
    bootstrap_servers: Annotated[
        str, typer.Option(envvar="CHARTER_KAFKA_BOOTSTRAP_SERVERS", help="Kafka bootstrap servers.")
    ] = "127.0.0.1:9092",
    topic_prefix: Annotated[str, typer.Option(envvar="CHARTER_KAFKA_TOPIC_PREFIX", help="Topic prefix.")] = "",
    ingest_group: Annotated[
        str, typer.Option(envvar="CHARTER_INGEST_GROUP_ID", help="Ingest's consumer group (to read its verdicts).")
    ] = "charter-ingest",
) -> None:
    """Publish a file of events over Kafka (raw topics) or HTTPS (--url, --token); summarise the rejects.

    Exit code 0 when every event was accepted, 1 when some were rejected (or not judged in
    time), 2 when the file, the token or the connection is the problem.
    """
    from rich.console import Console  # noqa: PLC0415
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn  # noqa: PLC0415

    from charter_contracts.topics import TopicNames  # noqa: PLC0415
    from charter_ops import publish as publishing  # noqa: PLC0415

    console = Console(stderr=True)
    if url and not token:
        typer.echo("error: --url needs --token (or CHARTER_TOKEN)", err=True)
        raise typer.Exit(2)
    if not path.is_file():
        typer.echo(f"error: {path} is not a file", err=True)
        raise typer.Exit(2)
    try:
        fmt = publishing.detect_format(path, file_format)
    except publishing.PublishError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[counts]}"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task(f"{path.name} -> {url or 'Kafka'}", total=path.stat().st_size, counts="")

        def progress(item: publishing.Item, ok: int, rejected: int) -> None:
            verb = "accepted" if url else "sent"
            bar.update(task, advance=item.size, counts=f"{ok} {verb}, {rejected} rejected")

        items = publishing.read_items(path, fmt)
        try:
            if url:
                summary = asyncio.run(
                    publishing.publish_https(items, url, token or "", progress, cafile=str(cacert) if cacert else None)
                )
            else:
                summary = asyncio.run(
                    publishing.publish_kafka(
                        items, network, bootstrap_servers, TopicNames(topic_prefix), ingest_group, wait, progress
                    )
                )
        except publishing.PublishError as exc:
            bar.stop()
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from exc
        bar.update(task, completed=path.stat().st_size)
    _print_summary(console, network, path, summary)
    if rejects is not None:
        publishing.write_rejects(rejects, summary)
        console.print(f"every reject written to {rejects}")
    if summary.rejects or summary.unconfirmed:
        raise typer.Exit(1)


def _print_summary(console: object, network: str, path: Path, summary: object) -> None:
    from rich.console import Console  # noqa: PLC0415
    from rich.table import Table  # noqa: PLC0415

    from charter_ops.publish import Summary  # noqa: PLC0415

    assert isinstance(console, Console)
    assert isinstance(summary, Summary)
    console.print(
        f"{network}: {summary.read} events read from {path}: [green]{summary.accepted} accepted[/green], "
        f"[red]{len(summary.rejects)} rejected[/red]",
        soft_wrap=True,
    )
    if summary.unconfirmed:
        console.print(
            f"[yellow]{summary.unconfirmed} sent to Kafka but not judged by ingest yet[/yellow] "
            "(is ingest running? raise --wait); their verdicts will be on charter.dead-letter.",
            soft_wrap=True,
        )
    if not summary.rejects:
        return
    reasons = Table("reason", "events", title="rejects by reason")
    for reason, count in summary.by_reason.most_common():
        reasons.add_row(reason, str(count))
    console.print(reasons)
    first = Table("where", "event_id", "reason", "detail", title="first rejects")
    for reject in summary.rejects[:20]:
        first.add_row(reject.where, reject.event_id or "", reject.reason, reject.detail)
    console.print(first)


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
