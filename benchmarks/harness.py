"""Plumbing shared by the benchmarks: the machine, a broker, service processes, /metrics reading."""

from __future__ import annotations

import contextlib
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from charter_contracts.topics import TopicNames
from charter_ops.kafka.local import LocalKafka, free_port

ROOT = Path(__file__).resolve().parent.parent
CHARTER = str(Path(sys.executable).parent / "charter")


def machine() -> str:
    """CPU model, cores and Python: every figure is printed with it."""
    model = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"{model}, {os.cpu_count()} cores, Python {platform.python_version()} ({platform.system()})"


def port(variable: str) -> int:
    """A port from the environment (manual runs in a reserved range), else a free one."""
    value = os.environ.get(variable)
    return int(value) if value else free_port()


@contextlib.contextmanager
def broker(home: Path) -> Iterator[str]:
    """A LocalKafka of its own for the run (CHARTER_KAFKA_PORT / _CONTROLLER_PORT, else free ports)."""
    kafka = LocalKafka(
        home=home / "kafka",
        port=port("CHARTER_KAFKA_PORT"),
        controller_port=port("CHARTER_KAFKA_CONTROLLER_PORT"),
        heap="768m",
    )
    kafka.up(tie_to_parent=True, say=lambda text: print(text, file=sys.stderr))
    try:
        yield kafka.bootstrap_servers
    finally:
        kafka.down()


def fresh_names() -> TopicNames:
    """Topic names private to one measurement (a prefix), so measurements never read each other's records."""
    return TopicNames(prefix=f"b{uuid.uuid4().hex[:6]}.")


@dataclass
class Service:
    """One `charter <service>` process, as a user runs it."""

    command: list[str]
    env: dict[str, str]
    log_path: Path
    port: int = field(default_factory=free_port)
    scheme: str = "http"
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def start(self, timeout: float = 90.0) -> Service:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [CHARTER, *self.command],
            env={**os.environ, **self.env},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=ROOT,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.command} exited {self.process.returncode}:\n{self.log()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/health", timeout=2, verify=False).status_code == 200:
                    return self
            time.sleep(0.1)
        raise RuntimeError(f"{self.command} not healthy after {timeout}s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def kill(self) -> None:
        """SIGKILL, as a crash."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.kill()

    def rss_bytes(self) -> int:
        """Resident memory of the process now."""
        assert self.process is not None
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return 0


@contextlib.contextmanager
def running(service: Service) -> Iterator[Service]:
    try:
        yield service.start()
    finally:
        service.stop()


def service_env(bootstrap: str, names: TopicNames, partitions: int, **extra: object) -> dict[str, str]:
    env = {
        "CHARTER_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "CHARTER_KAFKA_TOPIC_PREFIX": names.prefix,
        "CHARTER_KAFKA_PARTITIONS": str(partitions),
    }
    env.update({key: str(value) for key, value in extra.items()})
    return env


def metric_sum(text: str, name: str) -> float | None:
    """Sum of every sample of one metric in a Prometheus text exposition (None if absent)."""
    total = None
    prefix = name
    for line in text.splitlines():
        if line.startswith(prefix) and line[len(prefix) : len(prefix) + 1] in ("{", " "):
            total = (total or 0.0) + float(line.rsplit(" ", 1)[1])
    return total


def metrics(client: httpx.Client, url: str) -> str:
    """The /metrics page; a service busy for a while (a long flush on a loaded machine) is waited for."""
    for _ in range(5):
        try:
            return client.get(f"{url}/metrics", timeout=30).text
        except httpx.TimeoutException:
            continue
    return client.get(f"{url}/metrics", timeout=60).text


def have_py_spy() -> str | None:
    return shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
