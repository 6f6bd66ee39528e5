"""The ``charter`` command: the one entry point operators and integrators type (SPEC section 8)."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from charter_ops.kafka.local import KafkaLocalError, LocalKafka, default_home

if TYPE_CHECKING:
    from charter_runtime.kafka import KafkaAuth

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


BootstrapOption = Annotated[
    str, typer.Option(envvar="CHARTER_KAFKA_BOOTSTRAP_SERVERS", help="Kafka bootstrap servers.")
]
PrefixOption = Annotated[str, typer.Option(envvar="CHARTER_KAFKA_TOPIC_PREFIX", help="Topic prefix.")]
PartitionsOption = Annotated[
    int, typer.Option(envvar="CHARTER_KAFKA_PARTITIONS", help="Partitions of the topics it creates if missing.")
]


def _kafka_auth() -> KafkaAuth:
    """The principal of a command that talks to Kafka, from the services' own variables
    (``CHARTER_KAFKA_SECURITY_PROTOCOL``, ``CHARTER_KAFKA_SASL_*``): a password never goes on a command line."""
    from pydantic import ValidationError  # noqa: PLC0415

    from charter_runtime.settings import KafkaClientSettings  # noqa: PLC0415

    try:
        return KafkaClientSettings().kafka_auth
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        typer.echo(f"error: Kafka settings: {problems}", err=True)
        raise typer.Exit(2) from exc


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


simulate_app = typer.Typer(
    help=(
        "Seeded, deterministic traffic of the networks (France services over the real 2,845 sites, "
        "CAF, CPAM, France Travail, DGFiP, CNAV, MSA, ANTS over synthetic sites): live, or history as fast as possible."
    ),
    no_args_is_help=True,
)
app.add_typer(simulate_app, name="simulate")

SeedOption = Annotated[int, typer.Option(help="Random seed: the same seed gives the same events, byte for byte.")]
RateOption = Annotated[
    float,
    typer.Option(help="Calls and case completions per second at the weekday morning peak, all networks together."),
]
DegradeOption = Annotated[
    list[str] | None,
    typer.Option(
        "--degrade",
        help="Scenario NETWORK\\[@START]\\[+DURATION]: pickup collapses, counters close, cases run late "
        "(e.g. caf, caf@10m, caf@2024-03-04T09:00:00+01:00+2h). Repeatable.",
    ),
]
NetworksOption = Annotated[str | None, typer.Option(help="Networks to simulate, comma-separated (default: all eight).")]
SitesFileOption = Annotated[
    Path | None, typer.Option(help="France services open data CSV (default: the file shipped in data/).")
]
DisorderOption = Annotated[float, typer.Option(help="Share of events published minutes late (out of order).")]
LateOption = Annotated[float, typer.Option(help="Share of events published hours late (beyond any grace period).")]
ResendOption = Annotated[
    float,
    typer.Option(help="Share of events published twice (a re-send after a timeout): ingest rejects the copies."),
]


def _simulation(
    seed: int,
    rate: float,
    degrade: list[str] | None,
    networks: str | None,
    sites_file: Path | None,
    disorder: float,
    late: float,
    closures: tuple[datetime, datetime],
    resend: float = 0.0,
) -> tuple[Any, Any]:
    from charter_ops.simulator import NETWORKS, Degradation, TrafficConfig, TrafficGenerator, build_registry  # noqa: PLC0415
    from charter_ops.simulator.networks import span_days  # noqa: PLC0415
    from charter_ops.sites import DEFAULT_SITES_FILE, read_france_services_csv  # noqa: PLC0415

    try:
        scenarios = tuple(Degradation.parse(text) for text in degrade or ())
        wanted = [n.strip() for n in networks.split(",") if n.strip()] if networks else list(NETWORKS)
        registry = build_registry(
            read_france_services_csv(sites_file or DEFAULT_SITES_FILE).sites, wanted, span_days(*closures)
        )
        config = TrafficConfig(
            seed=seed,
            rate=rate,
            degradations=scenarios,
            disorder_fraction=disorder,
            late_fraction=late,
            resend_fraction=resend,
        )
        return registry, TrafficGenerator(registry, config)
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc


def _instant(text: str | None, option: str) -> datetime | None:
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError as exc:
        typer.echo(f"error: {option} {text!r} is not an RFC 3339 instant (e.g. 2024-03-04T09:00:00+01:00)", err=True)
        raise typer.Exit(2) from exc
    if value.tzinfo is None:
        typer.echo(f"error: {option} {text!r} needs a UTC offset (e.g. +01:00 or Z)", err=True)
        raise typer.Exit(2)
    return value


def _duration(text: str | None, option: str) -> timedelta | None:
    from charter_ops.simulator import parse_duration  # noqa: PLC0415

    if text is None:
        return None
    try:
        return parse_duration(text)
    except ValueError as exc:
        typer.echo(f"error: {option}: {exc}", err=True)
        raise typer.Exit(2) from exc


@simulate_app.command("live")
def simulate_live(
    rate: RateOption = 20.0,
    seed: SeedOption = 1,
    degrade: DegradeOption = None,
    networks: NetworksOption = None,
    start: Annotated[
        str | None,
        typer.Option(help="Simulated time at launch, RFC 3339 (default: now). Ingest refuses far-off times."),
    ] = None,
    speed: Annotated[float, typer.Option(help="Simulated seconds per real second.")] = 1.0,
    backfill: Annotated[
        str,
        typer.Option(
            help="First publish this much past traffic at once, in event-time order, so windows do not start empty."
        ),
    ] = "15m",
    duration: Annotated[
        str | None, typer.Option(help="Simulated time to run, e.g. 10m, 2h (default: until Ctrl-C).")
    ] = None,
    disorder: DisorderOption = 0.02,
    late: LateOption = 0.002,
    resend: ResendOption = 0.0,
    sites_file: SitesFileOption = None,
    bootstrap_servers: BootstrapOption = "127.0.0.1:9092",
    topic_prefix: PrefixOption = "",
    partitions: PartitionsOption = 6,
) -> None:
    """Publish traffic to the raw topics as it happens, and the site registry to charter.sites; Ctrl-C stops."""
    from charter_contracts.topics import TopicNames  # noqa: PLC0415
    from charter_ops.simulator.publish import KafkaSink, SimulatedClock, run_live, stderr_report  # noqa: PLC0415

    if speed <= 0:
        typer.echo("error: --speed must be positive", err=True)
        raise typer.Exit(2)
    begin = _instant(start, "--start") or datetime.now(UTC).replace(microsecond=0)
    run_for = _duration(duration, "--duration")
    past = _duration(backfill, "--backfill")
    assert past is not None
    registry, generator = _simulation(
        seed,
        rate,
        degrade,
        networks,
        sites_file,
        disorder,
        late,
        (begin - past, begin + timedelta(days=60)),
        resend,
    )
    scenarios = ", ".join(d.describe() for d in generator.config.degradations) or "none"
    stderr_report(
        f"simulate: {len(registry)} sites of {', '.join(generator.networks)}; peak {rate:g} events/s; "
        f"seed {seed}; scenarios: {scenarios}; Kafka {bootstrap_servers}"
    )
    sink = KafkaSink(bootstrap_servers, TopicNames(topic_prefix), partitions, _kafka_auth())
    try:
        tally = asyncio.run(
            run_live(
                generator, registry, sink, SimulatedClock(begin, speed), run_for, report=stderr_report, backfill=past
            )
        )
    except KafkaLocalError as exc:  # pragma: no cover - defensive
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    stderr_report(f"simulate: stopped after {tally.summary()}")


@simulate_app.command("history")
def simulate_history(
    out: Annotated[
        Path | None, typer.Option(help="Directory for <network>.ndjson files and sites.ndjson (for replay).")
    ] = None,
    kafka: Annotated[bool, typer.Option("--kafka", help="Publish to the raw topics instead of files.")] = False,
    start: Annotated[str | None, typer.Option(help="First instant, RFC 3339 (default: --span before --end).")] = None,
    end: Annotated[str | None, typer.Option(help="End instant, RFC 3339 (default: --start + --span, or now).")] = None,
    span: Annotated[
        str, typer.Option(help="Length of history when --start or --end is missing: 1d, 30d, 365d.")
    ] = "1d",
    rate: RateOption = 20.0,
    seed: SeedOption = 1,
    degrade: DegradeOption = None,
    networks: NetworksOption = None,
    disorder: DisorderOption = 0.02,
    late: LateOption = 0.002,
    resend: ResendOption = 0.0,
    gzip_files: Annotated[bool, typer.Option("--gzip", help="Compress the files (.ndjson.gz).")] = False,
    sites_file: SitesFileOption = None,
    bootstrap_servers: BootstrapOption = "127.0.0.1:9092",
    topic_prefix: PrefixOption = "",
    partitions: PartitionsOption = 6,
) -> None:
    """Generate a span of history (up to a year) as fast as possible, to files or Kafka, with a progress bar."""
    from charter_contracts.topics import TopicNames  # noqa: PLC0415
    from charter_ops.simulator.publish import FileSink, KafkaSink, Sink, describe_span, run_history  # noqa: PLC0415

    if (out is None) == (not kafka):
        typer.echo("error: say where the history goes: --out DIRECTORY or --kafka (one of them)", err=True)
        raise typer.Exit(2)
    length = _duration(span, "--span")
    assert length is not None
    first, last = _instant(start, "--start"), _instant(end, "--end")
    if first is None and last is None:
        last = datetime.now(UTC).replace(second=0, microsecond=0)
    if first is None:
        assert last is not None
        first = last - length
    if last is None:
        last = first + length
    if last <= first:
        typer.echo("error: the end must come after the start", err=True)
        raise typer.Exit(2)
    if last - first > timedelta(days=366):
        typer.echo("error: at most a year (366 days) at a time", err=True)
        raise typer.Exit(2)
    registry, generator = _simulation(seed, rate, degrade, networks, sites_file, disorder, late, (first, last), resend)
    sink: Sink = (
        KafkaSink(bootstrap_servers, TopicNames(topic_prefix), partitions, _kafka_auth())
        if kafka
        else FileSink(out or Path(), compress=gzip_files)
    )
    typer.echo(
        f"simulate: {describe_span(first, last)}, {len(registry)} sites, peak {rate:g} events/s, seed {seed} -> "
        + (f"Kafka {bootstrap_servers}" if kafka else str(out)),
        err=True,
    )
    tally = asyncio.run(run_history(generator, registry, sink, first, last, _progress_bar(first, last)))
    typer.echo(f"simulate: wrote {tally.summary()}", err=True)
    if isinstance(sink, FileSink):
        for path in sink.paths():
            typer.echo(str(path))


def _progress_bar(first: datetime, last: datetime) -> Callable[[float, Any], None]:
    """A rich progress bar over simulated time on a terminal; a line every 10 % otherwise."""
    from rich.console import Console  # noqa: PLC0415
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn  # noqa: PLC0415

    console = Console(stderr=True)
    started = time.monotonic()
    if not console.is_terminal:
        reported = [-1]

        def plain(done: float, tally: Any) -> None:
            step = int(done * 10)
            if step > reported[0]:
                reported[0] = step
                rate = tally.events / max(1e-9, time.monotonic() - started)
                console.print(f"simulate: {done:4.0%}  {tally.events} events  {rate:,.0f} events/s")

        return plain
    bar = Progress(
        TextColumn("[bold]history"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TextColumn("{task.fields[at]}"),
        TextColumn("{task.fields[events]} events, {task.fields[rate]}/s"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
    )
    task = bar.add_task("history", total=1.0, at="", events=0, rate="0")
    bar.start()
    span = last - first

    def update(done: float, tally: Any) -> None:
        at = (first + span * done).strftime("%Y-%m-%d %H:%M")
        rate = tally.events / max(1e-9, time.monotonic() - started)
        bar.update(task, completed=done, at=at, events=f"{tally.events:,}", rate=f"{rate:,.0f}")
        if done >= 1.0:
            bar.stop()

    return update


@simulate_app.command("sites")
def simulate_sites(
    out: Annotated[Path, typer.Option(help="File to write: one Site JSON per line (NDJSON).")],
    networks: NetworksOption = None,
    sites_file: SitesFileOption = None,
) -> None:
    """Write the simulated site registry (every network's sites and call centres) to a file."""
    registry, _ = _simulation(1, 1.0, None, networks, sites_file, 0.0, 0.0, _today())
    from charter_ops.simulator.publish import site_records  # noqa: PLC0415

    with out.open("wb") as handle:
        for _, value in site_records(registry):
            handle.write(value + b"\n")
    typer.echo(f"{len(registry)} sites written to {out}", err=True)


def _today() -> tuple[datetime, datetime]:
    now = datetime.now(UTC)
    return now, now + timedelta(days=60)


@sites_app.command("load")
def sites_load(
    path: Annotated[Path, typer.Argument(help="France services CSV (as published), the product's CSV or JSON.")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Read and report only; publish nothing.")] = False,
    bootstrap_servers: BootstrapOption = "127.0.0.1:9092",
    topic_prefix: PrefixOption = "",
    partitions: PartitionsOption = 6,
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
    auth = _kafka_auth()
    logging.getLogger("aiokafka").setLevel(logging.ERROR)  # retries on a fresh topic are not news

    async def load() -> int:
        await ensure_topics(bootstrap_servers, contract_topics(names, partitions), auth=auth)
        with Progress(transient=True) as bar:
            task = bar.add_task(f"publishing to {names.sites}", total=len(report.sites))
            return await publish_sites(
                report.sites, bootstrap_servers, names, progress=lambda n: bar.advance(task, n), auth=auth
            )

    try:
        published = asyncio.run(load())
    except Exception as exc:  # Kafka unreachable, topic errors: say so plainly
        typer.echo(f"error: publishing to {names.sites} at {bootstrap_servers} failed: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"published {published} sites to {names.sites}")


@app.command()
def stack(
    rate: Annotated[float, typer.Option(help="Simulated calls and cases per second at the weekday peak.")] = 50.0,
    seed: SeedOption = 1,
    degrade: Annotated[
        list[str] | None,
        typer.Option(help="Scenario NETWORK\\[@START]\\[+DURATION] for the simulator (repeatable; default: caf)."),
    ] = None,
    no_simulator: Annotated[bool, typer.Option("--no-simulator", help="Start no simulated traffic.")] = False,
    prometheus_port: Annotated[int, typer.Option(envvar="CHARTER_PROMETHEUS_PORT", help="Prometheus port.")] = 9090,
    alertmanager_port: Annotated[
        int, typer.Option(envvar="CHARTER_ALERTMANAGER_PORT", help="Alertmanager port.")
    ] = 9093,
    oncall_port: Annotated[
        int, typer.Option(envvar="CHARTER_ONCALL_PORT", help="Port of the local sink of Alertmanager's webhooks.")
    ] = 9095,
    refresh: Annotated[float, typer.Option(help="Seconds between two refreshes of the summary.")] = 5.0,
    run_dir: Annotated[Path, typer.Option(help="Where logs, Prometheus data and generated configs go.")] = Path(".run"),
) -> None:
    """Run the whole product locally (what `make run` does): Kafka, the three services, Prometheus,
    Alertmanager and the simulator, with a live summary; Ctrl-C stops everything.

    Ports come from CHARTER_KAFKA_PORT, CHARTER_KAFKA_CONTROLLER_PORT, CHARTER_<SERVICE>_HTTP_PORT,
    CHARTER_PROMETHEUS_PORT, CHARTER_ALERTMANAGER_PORT and CHARTER_ONCALL_PORT; Kafka's data from
    CHARTER_KAFKA_HOME.
    """
    from charter_ops.stack import config_from_environment, run_stack  # noqa: PLC0415

    if degrade:
        from charter_ops.simulator import Degradation  # noqa: PLC0415

        for scenario in degrade:
            try:
                Degradation.parse(scenario)
            except ValueError as exc:
                typer.echo(f"error: {exc}", err=True)
                raise typer.Exit(2) from exc
    config = config_from_environment(
        run_dir.resolve(),
        rate,
        seed,
        degrade if degrade is not None else ["caf"],
        prometheus_port,
        alertmanager_port,
        oncall_port,
        simulate=not no_simulator,
        refresh=refresh,
    )
    raise typer.Exit(run_stack(config))


@app.command()
def soak(
    duration: Annotated[str, typer.Option(help="How long to run, e.g. 10m, 1h.")] = "1h",
    factor: Annotated[float, typer.Option(help="Traffic as a multiple of the national weekday peak (~70/s).")] = 10.0,
    interval: Annotated[float, typer.Option(help="Seconds between two samples of memory and lag.")] = 10.0,
    speed: Annotated[
        float | None,
        typer.Option(
            help="Simulated seconds per real second (default: FACTOR, i.e. the national density, time FACTOR "
            "times faster; 1 packs FACTOR times the density into live time)."
        ),
    ] = None,
    seed: SeedOption = 1,
    home: HomeOption = None,
    port: PortOption = None,
    controller_port: ControllerOption = None,
    run_dir: Annotated[Path, typer.Option(help="Where logs and soak-report.json go.")] = Path(".run/soak"),
) -> None:
    """Soak test: simulated national traffic at FACTOR times its peak through Kafka and the three
    services for DURATION, reporting peak RSS, max consumer lag, errors, and whether memory stayed flat.

    Exit code 1 if a service died, logged an error, or its memory kept growing. Kafka comes from
    CHARTER_KAFKA_PORT / CHARTER_KAFKA_CONTROLLER_PORT / CHARTER_KAFKA_HOME (started if not running);
    the services listen on CHARTER_<SERVICE>_HTTP_PORT; topics get a prefix of their own.
    """
    from charter_ops.soak import SERVICES, SoakConfig, run_soak  # noqa: PLC0415

    length = _duration(duration, "--duration")
    if (
        length is None
        or length.total_seconds() <= 0
        or factor <= 0
        or interval <= 0
        or (speed is not None and speed <= 0)
    ):
        typer.echo("error: --duration, --factor, --interval and --speed must be positive", err=True)
        raise typer.Exit(2)
    defaults = {"ingest": 8001, "indicators": 8002, "alerts": 8003}
    ports = {name: int(os.environ.get(f"CHARTER_{name.upper()}_HTTP_PORT", defaults[name])) for name in SERVICES}
    config = SoakConfig(
        run_dir=run_dir.resolve(),
        kafka=_local_kafka(home, port, controller_port),
        ports=ports,
        duration=length,
        factor=factor,
        interval=interval,
        seed=seed,
        speed=speed,
    )
    report = run_soak(config, say=typer.echo)
    typer.echo(report.summary())
    typer.echo(f"report: {config.run_dir / 'soak-report.json'}")
    raise typer.Exit(0 if report.ok() else 1)


@app.command()
def oncall(
    host: Annotated[str, typer.Option(help="Address to listen on (0.0.0.0 in a container).")] = "127.0.0.1",
    port: Annotated[
        int, typer.Option(envvar="CHARTER_ONCALL_PORT", help="Port Alertmanager's webhooks are sent to.")
    ] = 9095,
    log_file: Annotated[Path, typer.Option(help="Where each notification is appended (one JSON per line).")] = Path(
        "notifications.log"
    ),
) -> None:
    """Receive Alertmanager's webhook notifications and print them: an on-call stand-in for trials
    (docker compose runs it; `charter stack` runs its own). Ctrl-C stops it."""
    import threading  # noqa: PLC0415

    from charter_ops.oncall import OnCallSink  # noqa: PLC0415

    sink = OnCallSink(port, log_file, host=host, on_notification=lambda n: typer.echo(n.describe()))
    try:
        sink.start()
    except OSError as exc:
        typer.echo(f"error: cannot listen on {host}:{port}: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"on-call sink on http://{host}:{port}/alertmanager/<receiver>, notifications in {log_file}")
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        sink.stop()


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
    bootstrap_servers: BootstrapOption = "127.0.0.1:9092",
    topic_prefix: PrefixOption = "",
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
    auth = _kafka_auth()
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
                        items,
                        network,
                        bootstrap_servers,
                        TopicNames(topic_prefix),
                        ingest_group,
                        wait,
                        progress,
                        auth=auth,
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
    if summary.verdicts_unreadable:
        console.print(
            f"[yellow]{summary.unconfirmed} sent to Kafka; ingest's verdicts could not be read back with this "
            f"principal[/yellow] ({summary.verdicts_unreadable}). A network's principal may write its raw topics "
            "but read nothing: publish with --wait 0, or over HTTPS (--url) to get the verdicts in the answer.",
            soft_wrap=True,
        )
    elif summary.unconfirmed:
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


@app.command()
def dashboards(
    rules: Annotated[
        Path | None,
        typer.Option(help="Charter rules file the thresholds come from (default deploy/config/charter-rules.yaml)."),
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Where to write (default deploy/grafana/dashboards).")] = None,
    check: Annotated[
        bool, typer.Option("--check", help="Write nothing; exit 1 if a board file differs from the code.")
    ] = False,
) -> None:
    """Regenerate the Grafana boards from code: national overview, network board, operations board."""
    from charter_alerts.domain.rules import RulesError  # noqa: PLC0415
    from charter_ops import dashboards as boards  # noqa: PLC0415
    from charter_ops.observability import CHARTER_RULES  # noqa: PLC0415

    directory = out or boards.DASHBOARDS_DIR
    try:
        ruleset = boards.rules_from(rules or CHARTER_RULES)
        if check:
            stale = boards.check(ruleset, directory)
            for path in stale:
                typer.echo(f"out of date: {path}", err=True)
            if stale:
                typer.echo("run `charter dashboards` to regenerate them", err=True)
                raise typer.Exit(1)
            typer.echo(f"the boards in {directory} are up to date")
            return
        for path in boards.write(ruleset, directory):
            typer.echo(str(path))
    except (OSError, RulesError, boards.BoardsError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc


def main() -> None:
    """Console-script entry point."""
    app()
