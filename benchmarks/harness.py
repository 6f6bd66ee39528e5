"""Plumbing shared by the benchmarks: the machine, a broker, service processes, /metrics reading."""

from __future__ import annotations

import contextlib
import os
import platform
import shutil
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx

from charter_contracts.topics import TopicNames
from charter_ops.kafka.local import LocalKafka, free_port
from charter_ops.process import ServiceProcess

ROOT = Path(__file__).resolve().parent.parent


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


def launcher(command: list[str], log_path: Path) -> ServiceProcess:
    """A ``charter`` service process on a free port, run from the repository root."""
    return ServiceProcess(command, {}, free_port(), log_path, cwd=ROOT)


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
