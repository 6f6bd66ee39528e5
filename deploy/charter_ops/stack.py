"""The whole product on one machine, without Docker (``charter stack``, behind ``make run``).

Starts the local Kafka, the three services, Prometheus and Alertmanager (Debian
packages) and the traffic simulator as child processes, prints where to look and a live
one-screen summary of the three indicators per network, and stops everything it started
on Ctrl-C (or SIGTERM). Children die with the stack even if it is killed outright.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from rich.console import Console, Group
from rich.live import Live
from rich.text import Text

from charter_ops.kafka.local import KafkaLocalError, LocalKafka, port_open
from charter_ops.observability import CHARTER_RULES, SERVICES, alertmanager_config_for, native_prometheus_config
from charter_ops.oncall import OnCallSink
from charter_ops.summary import Summary, read_rows

_PR_SET_PDEATHSIG = 1


class StackError(RuntimeError):
    """The stack cannot start; the message says what to do."""


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass
class Child:
    """One process of the stack, with its log file and how to tell it is ready."""

    name: str
    command: list[str]
    log: Path
    ready_url: str | None = None
    process: subprocess.Popen[bytes] | None = None

    def start(self, env: dict[str, str]) -> None:
        with self.log.open("ab") as handle:
            self.process = subprocess.Popen(  # noqa: S603 - our own entry points and Debian binaries
                self.command,
                env=env,
                stdout=handle,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                preexec_fn=_die_with_parent,  # noqa: PLW1509 - no threads started yet in this process
            )

    def ready(self) -> bool:
        if not self.running():
            return False
        if self.ready_url is None:
            return True
        with contextlib.suppress(httpx.HTTPError):
            return httpx.get(self.ready_url, timeout=1).status_code == 200
        return False

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM to its process group, SIGKILL after ``timeout``."""
        if self.process is None or self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def tail(self, lines: int = 15) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return ""


@dataclass(frozen=True)
class StackConfig:
    """Ports, paths and traffic of one stack."""

    run_dir: Path
    kafka_home: Path
    kafka_port: int = 9092
    kafka_controller_port: int = 29093
    service_ports: dict[str, int] = field(default_factory=lambda: {name: s().http_port for name, s in SERVICES.items()})
    prometheus_port: int = 9090
    alertmanager_port: int = 9093
    oncall_port: int = 9095
    rate: float = 50.0
    seed: int = 1
    degrade: tuple[str, ...] = ("caf",)
    resend: float = 0.001  # networks re-send a few events: the operations board shows ingest's duplicate rejects
    refresh: float = 5.0
    simulate: bool = True

    def url(self, port: int) -> str:
        return f"http://127.0.0.1:{port}"


def _charter() -> str:
    return str(Path(sys.executable).parent / "charter")


def _binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise StackError(
            f"{name} is not installed: run `make setup` (it installs the Debian packages prometheus and "
            "prometheus-alertmanager), or `apt-get install prometheus prometheus-alertmanager`"
        )
    return path


class Stack:
    """Starts, watches and stops the processes of the native stack."""

    def __init__(self, config: StackConfig, console: Console | None = None) -> None:
        self.config = config
        self.console = console or Console()
        self.logs = config.run_dir / "logs"
        self.kafka = LocalKafka(
            home=config.kafka_home, port=config.kafka_port, controller_port=config.kafka_controller_port
        )
        self.children: list[Child] = []
        self._kafka_started = False
        self.oncall = OnCallSink(config.oncall_port, self.logs / "notifications.log")

    def _check_ports(self, kafka_running: bool) -> None:
        wanted = {
            **{f"{name} (CHARTER_{name.upper()}_HTTP_PORT)": port for name, port in self.config.service_ports.items()},
            "Prometheus (CHARTER_PROMETHEUS_PORT)": self.config.prometheus_port,
            "Alertmanager (CHARTER_ALERTMANAGER_PORT)": self.config.alertmanager_port,
            "on-call sink (CHARTER_ONCALL_PORT)": self.config.oncall_port,
        }
        if not kafka_running:
            wanted["Kafka (CHARTER_KAFKA_PORT)"] = self.config.kafka_port
            wanted["Kafka controller (CHARTER_KAFKA_CONTROLLER_PORT)"] = self.config.kafka_controller_port
        taken = [f"{what}: {port}" for what, port in wanted.items() if port_open("127.0.0.1", port)]
        if taken:
            raise StackError(
                "ports already in use (another charter stack, or a system Prometheus?): "
                + "; ".join(taken)
                + ". Stop what uses them or choose other ports with the variables named."
            )

    def _prepare_children(self) -> list[Child]:
        cfg = self.config
        prometheus_dir = cfg.run_dir / "prometheus"
        prometheus_dir.mkdir(parents=True, exist_ok=True)
        alertmanager_dir = cfg.run_dir / "alertmanager"
        alertmanager_dir.mkdir(parents=True, exist_ok=True)
        config_file = prometheus_dir / "prometheus.yml"
        config_file.write_text(
            native_prometheus_config(cfg.service_ports, cfg.alertmanager_port, cfg.prometheus_port), encoding="utf-8"
        )
        alertmanager_file = alertmanager_dir / "alertmanager.yml"
        alertmanager_file.write_text(alertmanager_config_for(self.oncall.url), encoding="utf-8")
        children = [
            Child(
                "prometheus",
                [
                    _binary("prometheus"),
                    f"--config.file={config_file}",
                    f"--storage.tsdb.path={prometheus_dir / 'data'}",
                    f"--web.listen-address=127.0.0.1:{cfg.prometheus_port}",
                    f"--web.external-url={cfg.url(cfg.prometheus_port)}",
                    "--storage.tsdb.retention.time=15d",
                ],
                self.logs / "prometheus.log",
                f"{cfg.url(cfg.prometheus_port)}/-/ready",
            ),
            Child(
                "alertmanager",
                [
                    _binary("prometheus-alertmanager"),
                    f"--config.file={alertmanager_file}",
                    f"--storage.path={alertmanager_dir / 'data'}",
                    f"--web.listen-address=127.0.0.1:{cfg.alertmanager_port}",
                    f"--web.external-url={cfg.url(cfg.alertmanager_port)}",
                    "--cluster.listen-address=",  # a single instance: no gossip port to collide with
                ],
                self.logs / "alertmanager.log",
                f"{cfg.url(cfg.alertmanager_port)}/-/ready",
            ),
        ]
        children += [
            Child(name, [_charter(), name], self.logs / f"{name}.log", f"{cfg.url(port)}/health")
            for name, port in cfg.service_ports.items()
        ]
        if cfg.simulate:
            command = [_charter(), "simulate", "live", "--rate", str(cfg.rate), "--seed", str(cfg.seed)]
            command += ["--resend", str(cfg.resend)]
            for scenario in cfg.degrade:
                command += ["--degrade", scenario]
            children.append(Child("simulator", command, self.logs / "simulator.log"))
        return children

    def environment(self) -> dict[str, str]:
        env = {**os.environ, "CHARTER_KAFKA_BOOTSTRAP_SERVERS": self.kafka.bootstrap_servers}
        for name, port in self.config.service_ports.items():
            env[f"CHARTER_{name.upper()}_HTTP_PORT"] = str(port)
        # the alerts service notifies the stack's Alertmanager and reads the rules file (edit it: it reloads)
        env.setdefault("CHARTER_ALERTS_ALERTMANAGER_URL", self.config.url(self.config.alertmanager_port))
        env.setdefault("CHARTER_ALERTS_RULES_FILE", str(CHARTER_RULES))
        return env

    def start(self, stopping: Callable[[], bool], timeout: float = 180.0) -> bool:
        """Start everything; False if interrupted. Raises StackError when something cannot start."""
        self.logs.mkdir(parents=True, exist_ok=True)
        running = self.kafka.status().running
        self._check_ports(running)
        children = self._prepare_children()  # fails early when Prometheus or Alertmanager is missing
        if not running:
            self.console.print(f"Starting Apache Kafka (KRaft) at {self.kafka.bootstrap_servers}...")
            try:
                self.kafka.up(tie_to_parent=True, say=self.console.print)
            except KafkaLocalError as exc:
                raise StackError(str(exc)) from exc
            self._kafka_started = True
        env = self.environment()
        services = [c for c in children if c.name != "simulator"]
        self.console.print("Starting " + ", ".join(c.name for c in services) + "...")
        for child in services:
            child.start(env)
            self.children.append(child)
        deadline = time.monotonic() + timeout
        while not all(child.ready() for child in services):
            if stopping():
                return False
            dead = [child for child in services if not child.running()]
            if dead:
                raise StackError("\n".join(f"{c.name} exited; the end of {c.log}:\n{c.tail()}" for c in dead))
            if time.monotonic() > deadline:
                late = [c.name for c in services if not c.ready()]
                raise StackError(f"not ready after {timeout:.0f}s: {', '.join(late)}; see {self.logs}")
            time.sleep(0.5)
        for child in children:
            if child.name == "simulator":
                child.start(env)
                self.children.append(child)
        self.oncall.start()  # a thread: only once every child is started (fork and threads do not mix)
        return True

    def stop(self) -> None:
        """Stop every child, newest first, then Kafka if this stack started it."""
        for child in reversed(self.children):
            child.stop()
        self.oncall.stop()
        if self._kafka_started:
            self.kafka.down()
            self._kafka_started = False

    def pids(self) -> list[int]:
        found = [c.pid for c in self.children if c.pid is not None]
        kafka = self.kafka.status().pid if self._kafka_started else None
        return found + ([kafka] if kafka else [])

    def banner(self) -> str:
        cfg = self.config
        service_lines = {
            "ingest": "/docs (OpenAPI)  /asyncapi  /metrics  /health",
            "indicators": "/metrics  /asyncapi  /health",
            "alerts": "/metrics  /asyncapi  /health",
        }
        lines = [
            "",
            "charter is running. Where to look:",
            f"  Kafka          {self.kafka.bootstrap_servers}",
            *(
                f"  {name:<14} {cfg.url(port)}   {service_lines.get(name, '')}"
                for name, port in cfg.service_ports.items()
            ),
            f"  Prometheus     {cfg.url(cfg.prometheus_port)}   (alerts: {cfg.url(cfg.prometheus_port)}/alerts)",
            f"  Alertmanager   {cfg.url(cfg.alertmanager_port)}   (its webhooks go to {self.oncall.url}: "
            f"{self.oncall.log_file})",
            f"  charter rules  {self.environment()['CHARTER_ALERTS_RULES_FILE']}   (alerts reloads it on change)",
            "  Grafana        not in the native stack: `docker compose up` has it, with the boards",
        ]
        if cfg.simulate:
            scenarios = ", ".join(cfg.degrade) or "none"
            lines.append(f"  simulator      peak {cfg.rate:g} events/s, seed {cfg.seed}, degraded: {scenarios}")
        lines += [f"  logs           {self.logs}", "Ctrl-C stops everything.", ""]
        return "\n".join(lines)

    def dead_children(self) -> list[Child]:
        return [child for child in self.children if not child.running()]

    def status_line(self) -> Text:
        cfg = self.config
        parts = [Text("kafka ", style="bold"), self._mark(self.kafka.status().running)]
        for child in self.children:
            parts += [Text(f"  {child.name} ", style="bold"), self._mark(child.running())]
        active = active_alerts(cfg.url(cfg.alertmanager_port))
        if active is not None:
            parts.append(Text(f"   Alertmanager: {active} active alert{'s' if active != 1 else ''}"))
        for notification in self.oncall.last():
            parts.append(
                Text(
                    "\n  on-call ← " + notification.describe(),
                    style="bold red" if notification.status == "firing" else "green",
                )
            )
        return Text.assemble(*parts)

    @staticmethod
    def _mark(ok: bool) -> Text:
        return Text("up", style="green") if ok else Text("down", style="bold red")

    def metrics_text(self, service: str) -> str:
        port = self.config.service_ports[service]
        with contextlib.suppress(httpx.HTTPError):
            response = httpx.get(f"{self.config.url(port)}/metrics", timeout=2)
            if response.status_code == 200:
                return response.text
        return ""


def active_alerts(alertmanager_url: str) -> int | None:
    """How many alerts Alertmanager holds active (None if it does not answer)."""
    with contextlib.suppress(httpx.HTTPError, ValueError):
        response = httpx.get(f"{alertmanager_url}/api/v2/alerts", params={"active": "true"}, timeout=2)
        if response.status_code == 200:
            return len(response.json())
    return None


def run_stack(config: StackConfig, console: Console | None = None) -> int:
    """Run until interrupted (Ctrl-C, SIGTERM) or until a process dies; returns the exit code."""
    if console is None:
        console = Console()
        if not console.is_terminal:  # a log file: room for the whole table, no wrapped URLs
            console = Console(width=140)
    stack = Stack(config, console)
    stopping = False

    def on_signal(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    # Explicit handlers: a stack started from a script may inherit SIGINT as ignored.
    previous = {signum: signal.signal(signum, on_signal) for signum in (signal.SIGTERM, signal.SIGINT)}
    code = 0
    try:
        if not stack.start(lambda: stopping):
            return 130
        console.print(stack.banner(), soft_wrap=True, highlight=False)
        code = _watch(stack, console, lambda: stopping)
    except StackError as exc:
        console.print(f"[bold red]error:[/] {exc}", highlight=False)
        code = 1
    finally:
        console.print("Stopping...")
        stack.stop()
        console.print("Stopped: nothing left running.")
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return code


def _summary_view(stack: Stack, summary: Summary) -> Group:
    rows = read_rows(stack.metrics_text("indicators"), stack.metrics_text("alerts"), stack.metrics_text("ingest"))
    title = f"charter — {time.strftime('%H:%M:%S')} — Ctrl-C stops everything"
    return Group(summary.table(rows, time.monotonic(), title), stack.status_line())


def _watch(stack: Stack, console: Console, stopping: Callable[[], bool]) -> int:
    summary = Summary()
    refresh = stack.config.refresh

    def check() -> int | None:
        dead = stack.dead_children()
        if dead:
            for child in dead:
                console.print(f"[bold red]error:[/] {child.name} stopped; the end of {child.log}:\n{child.tail()}")
            return 1
        return None

    if console.is_terminal:
        with Live(_summary_view(stack, summary), console=console, refresh_per_second=2, transient=False) as live:
            next_at = time.monotonic() + refresh
            while not stopping():
                time.sleep(0.2)
                if time.monotonic() >= next_at:
                    if (code := check()) is not None:
                        return code
                    live.update(_summary_view(stack, summary))
                    next_at = time.monotonic() + refresh
        return 0
    next_at = time.monotonic() + max(refresh, 30.0)
    while not stopping():
        time.sleep(0.2)
        if time.monotonic() >= next_at:
            if (code := check()) is not None:
                return code
            console.print(_summary_view(stack, summary))
            next_at = time.monotonic() + max(refresh, 30.0)
    return 0


def config_from_environment(
    run_dir: Path,
    rate: float,
    seed: int,
    degrade: Sequence[str],
    prometheus_port: int,
    alertmanager_port: int,
    oncall_port: int = 9095,
    simulate: bool = True,
    refresh: float = 5.0,
) -> StackConfig:
    """Ports from the same variables the services and ``charter kafka`` read."""
    from charter_ops.kafka.local import default_home  # noqa: PLC0415

    return StackConfig(
        run_dir=run_dir,
        kafka_home=default_home(),
        kafka_port=int(os.environ.get("CHARTER_KAFKA_PORT", "9092")),
        kafka_controller_port=int(os.environ.get("CHARTER_KAFKA_CONTROLLER_PORT", "29093")),
        prometheus_port=prometheus_port,
        alertmanager_port=alertmanager_port,
        oncall_port=oncall_port,
        rate=rate,
        seed=seed,
        degrade=tuple(degrade),
        refresh=refresh,
        simulate=simulate,
    )
