"""The Quix Streams peer on the same topics and events as the indicators."""

from __future__ import annotations

import json
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

from benchmarks.harness import ROOT
from charter_contracts.topics import TopicNames

QUIX_PYTHON = ROOT / ".venv-quix" / "bin" / "python"
APP = ROOT / "benchmarks" / "quix" / "app.py"


@dataclass
class PeerRun:
    events: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0


def available() -> bool:
    return QUIX_PYTHON.exists()


def run(bootstrap: str, names: TopicNames, events: int, work: Path, timeout: float = 900) -> PeerRun:
    """Quix Streams through the first ``events`` events of the loaded topics (its own consumer group)."""
    group = f"{names.prefix}quix-{uuid.uuid4().hex[:6]}"
    log = work / f"quix-{names.prefix}log"
    with log.open("wb") as out:
        done = subprocess.run(
            [str(QUIX_PYTHON), str(APP), bootstrap, names.prefix, group, str(events)],
            stdout=subprocess.PIPE,
            stderr=out,
            timeout=timeout,
            check=False,
            cwd=work,
        )
    lines = [line for line in done.stdout.decode().splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"Quix Streams run failed ({done.returncode}):\n{log.read_text()[-3000:]}")
    figures = json.loads(lines[-1])
    return PeerRun(int(figures["events"]), float(figures["seconds"]))
