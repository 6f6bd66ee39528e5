"""Soak test (``charter soak``): national traffic at a multiple of its peak through the whole stack,
for a long time, with the services' memory and consumer lag under watch.

Kafka, the three services and the simulator run as in ``charter stack`` (children that die with
this process), on a topic prefix of their own. The simulator replays a weekday of the past week
from 08:00 at the national density with event time running ``speed`` times faster than live (by
default ``factor``), so that the wall-clock rate at the day's peak is ``factor`` times the national
peak, and an hour of soak covers a working day: the windows fill, turn over and empty in the run,
which is what shows that memory levels off. Every ``interval`` seconds
the resident memory of each service process and its consumer lag (``/metrics``) are sampled;
at the end the report says the peak RSS, the largest lag, the errors logged, the events
accepted and rejected, and whether memory stayed flat once warmed up.
"""

from __future__ import annotations

import json
import os
import re
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
from prometheus_client.parser import text_string_to_metric_families

from charter_ops.kafka.local import LocalKafka
from charter_ops.process import rss_bytes
from charter_ops.stack import Child, _charter

SERVICES = ("ingest", "indicators", "alerts")
#: Calls and case completions per second at the weekday morning peak, all networks (SPEC: ~70).
NATIONAL_PEAK_RATE = 70.0
#: Memory is judged once warmed up: windows fill and caches reach their size in the first part.
WARM_UP_SHARE = 0.25
#: Growth tolerated between the start and the end of the watched part (relative, and at least this).
FLAT_TOLERANCE = 0.10
FLAT_TOLERANCE_BYTES = 32 * 1024 * 1024
_ERROR_LINE = re.compile(r"^\S+ \S+ (ERROR|CRITICAL) (charter[\w.]*|uvicorn[\w.]*|root):")


@dataclass
class Sample:
    """One look at the services: seconds since start, RSS (bytes) and lag (messages) per service."""

    elapsed: float
    rss: dict[str, int]
    lag: dict[str, float]
    accepted: float


@dataclass
class SoakReport:
    """What ``charter soak`` reports (also written as JSON next to the logs)."""

    duration_seconds: float
    rate: float
    samples: list[Sample] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    died: list[str] = field(default_factory=list)
    rejected: dict[str, float] = field(default_factory=dict)

    def peak_rss(self) -> dict[str, int]:
        return {name: max((s.rss.get(name, 0) for s in self.samples), default=0) for name in SERVICES}

    def max_lag(self) -> dict[str, float]:
        return {name: max((s.lag.get(name, 0.0) for s in self.samples), default=0.0) for name in SERVICES}

    def accepted(self) -> float:
        return self.samples[-1].accepted if self.samples else 0.0

    def memory_growth(self) -> dict[str, int]:
        """RSS at the end minus RSS just after warm-up, per service (medians of a few samples each)."""
        return {name: memory_growth([s.rss.get(name, 0) for s in self.samples]) for name in SERVICES}

    def memory_flat(self) -> bool:
        peaks = self.peak_rss()
        return all(
            growth <= max(FLAT_TOLERANCE * peaks[name], FLAT_TOLERANCE_BYTES)
            for name, growth in self.memory_growth().items()
        )

    def ok(self) -> bool:
        return not self.died and not any(self.errors.values()) and self.memory_flat() and self.accepted() > 0

    def summary(self) -> str:
        mib = 1024 * 1024
        peaks, lags, growth = self.peak_rss(), self.max_lag(), self.memory_growth()
        lines = [
            f"soak: {self.duration_seconds / 60:.1f} min at {self.rate:g} events/s at peak; "
            f"{self.accepted():,.0f} events accepted, rejected {dict(self.rejected) or 'none'}",
            *(
                f"  {name:<11} peak RSS {peaks[name] / mib:7.1f} MiB, growth after warm-up "
                f"{growth[name] / mib:+6.1f} MiB, max lag {lags[name]:,.0f} messages, "
                f"errors logged {self.errors.get(name, 0)}"
                for name in SERVICES
            ),
            f"  memory {'stayed flat' if self.memory_flat() else 'GREW'}; "
            f"{'no process died' if not self.died else 'died: ' + ', '.join(self.died)}",
            f"  verdict: {'OK' if self.ok() else 'FAILED'}",
        ]
        return "\n".join(lines)

    def to_json(self) -> str:
        data = asdict(self)
        data.update(
            peak_rss_bytes=self.peak_rss(),
            max_lag_messages=self.max_lag(),
            memory_growth_bytes=self.memory_growth(),
            memory_flat=self.memory_flat(),
            ok=self.ok(),
        )
        return json.dumps(data, indent=2)


def memory_growth(series: Sequence[int]) -> int:
    """End of the series minus its start once warmed up; medians of five samples damp the GC's saw-tooth."""
    watched = list(series[int(len(series) * WARM_UP_SHARE) :])
    if len(watched) < 2:
        return 0
    width = max(1, min(5, len(watched) // 3))
    return int(statistics.median(watched[-width:]) - statistics.median(watched[:width]))


def metric_sums(text: str, names: Sequence[str], by: str | None = None) -> dict[str, float]:
    """Sum of the samples of each metric in ``names`` (per value of label ``by`` if given)."""
    sums: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in names:
                key = sample.labels.get(by, "") if by else sample.name
                sums[key] = sums.get(key, 0.0) + sample.value
    return sums


def count_errors(log: Path) -> int:
    """ERROR lines of the service's own loggers (the Kafka client's reconnection chatter aside)."""
    try:
        return sum(1 for line in log.read_text(errors="replace").splitlines() if _ERROR_LINE.match(line))
    except OSError:
        return 0


def day_start(now: datetime) -> datetime:
    """08:00 in Paris on the latest weekday before today: a working day of the past week, from its opening."""
    day = now.astimezone(ZoneInfo("Europe/Paris")).date() - timedelta(days=1)
    while day.weekday() >= 5:
        day -= timedelta(days=1)
    return datetime(day.year, day.month, day.day, 8, 0, tzinfo=ZoneInfo("Europe/Paris")).astimezone(UTC)


@dataclass(frozen=True)
class SoakConfig:
    run_dir: Path
    kafka: LocalKafka
    ports: dict[str, int]
    duration: timedelta
    factor: float = 10.0
    interval: float = 10.0
    seed: int = 1
    #: simulated seconds per real second (None: ``factor``, i.e. the national density, time ``factor`` x faster)
    speed: float | None = None

    @property
    def time_speed(self) -> float:
        return self.speed if self.speed is not None else self.factor

    @property
    def rate(self) -> float:
        """Events per wall-clock second at the day's peak."""
        return NATIONAL_PEAK_RATE * self.factor

    @property
    def simulated_rate(self) -> float:
        """The simulator's ``--rate``: events per simulated second at the peak."""
        return self.rate / self.time_speed


def run_soak(config: SoakConfig, say: Callable[[str], None] = print, stopping: Callable[[], bool] = bool) -> SoakReport:
    """Run the soak and return its report; every child process is stopped on the way out."""
    logs = config.run_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    prefix = f"soak{int(time.time())}."
    report = SoakReport(duration_seconds=config.duration.total_seconds(), rate=config.rate)
    kafka_started = not config.kafka.status().running
    if kafka_started:
        say(f"soak: starting Kafka at {config.kafka.bootstrap_servers}")
        config.kafka.up(tie_to_parent=True, say=say)
    env = {
        "CHARTER_KAFKA_BOOTSTRAP_SERVERS": config.kafka.bootstrap_servers,
        "CHARTER_KAFKA_TOPIC_PREFIX": prefix,
        "CHARTER_INDICATORS_IDLE_SECONDS": "0",  # traffic of the past week: time passes with the events
        "CHARTER_INGEST_LAG_INTERVAL_SECONDS": str(min(config.interval, 15.0)),
        **{f"CHARTER_{name.upper()}_HTTP_PORT": str(port) for name, port in config.ports.items()},
    }
    env = {**os.environ, **env}
    services = {name: Child(name, [_charter(), name], logs / f"{name}.log", None) for name in SERVICES}
    start = day_start(datetime.now(UTC))
    simulate = [_charter(), "simulate", "live", "--rate", f"{config.simulated_rate:g}", "--seed", str(config.seed)]
    simulate += ["--start", start.isoformat(), "--speed", f"{config.time_speed:g}"]
    simulate += ["--backfill", "1m", "--resend", "0.001"]
    simulator = Child("simulator", simulate, logs / "simulator.log", None)
    children = [*services.values(), simulator]
    try:
        for child in services.values():
            child.start(env)
        _wait_healthy(config.ports, children, timeout=180)
        say(
            f"soak: services up; simulating {start.isoformat()} onwards, {config.time_speed:g}x live, "
            f"{config.rate:g} events/s at the peak"
        )
        simulator.start(env)
        began = time.monotonic()
        end = began + config.duration.total_seconds()
        while time.monotonic() < end and not stopping():
            time.sleep(min(config.interval, max(0.0, end - time.monotonic())))
            sample = _sample(config.ports, services, time.monotonic() - began)
            report.samples.append(sample)
            dead = [c.name for c in children if not c.running()]
            say(
                f"soak: {sample.elapsed / 60:5.1f} min  accepted {sample.accepted:>10,.0f}  "
                + "  ".join(
                    f"{n} {sample.rss.get(n, 0) / 2**20:.0f} MiB lag {sample.lag.get(n, 0):,.0f}" for n in SERVICES
                )
                + (f"  DIED: {', '.join(dead)}" if dead else "")
            )
            if dead:
                report.died = dead
                break
        with_rejects = _metrics(config.ports["ingest"])
        report.rejected = metric_sums(with_rejects, ["charter_ingest_events_rejected_total"], by="reason")
    finally:
        for child in reversed(children):
            child.stop()
        if kafka_started:
            config.kafka.down()
    report.errors = {name: count_errors(child.log) for name, child in services.items()}
    (config.run_dir / "soak-report.json").write_text(report.to_json())
    return report


def _metrics(port: int) -> str:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    except httpx.HTTPError:
        return ""


def _sample(ports: dict[str, int], services: dict[str, Child], elapsed: float) -> Sample:
    rss = {name: rss_bytes(child.pid) if child.pid else 0 for name, child in services.items()}
    lag: dict[str, float] = {}
    accepted = 0.0
    for name, port in ports.items():
        text = _metrics(port)
        lag[name] = sum(metric_sums(text, ["charter_kafka_consumer_lag_messages"]).values())
        if name == "ingest":
            accepted = sum(metric_sums(text, ["charter_ingest_events_accepted_total"]).values())
    return Sample(elapsed, rss, lag, accepted)


def _wait_healthy(ports: dict[str, int], children: Sequence[Child], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        dead = [c for c in children if c.process is not None and not c.running()]
        if dead:
            raise RuntimeError("\n".join(f"{c.name} exited; the end of {c.log}:\n{c.tail()}" for c in dead))
        codes = []
        for port in ports.values():
            try:
                codes.append(httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code)
            except httpx.HTTPError:
                codes.append(0)
        if all(code == 200 for code in codes):
            return
        time.sleep(0.5)
    raise RuntimeError(f"services not healthy after {timeout:.0f}s; see their logs")
