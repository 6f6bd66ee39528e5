"""One ``charter <service>`` process, as a user runs it: started, watched through ``/health``,
stopped or killed. The tests and the benchmarks run the services through it, so that what they
measure and prove is the service as shipped, not a harness of their own."""

from __future__ import annotations

import contextlib
import os
import signal
import ssl
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

#: The ``charter`` entry point of the running interpreter's environment.
CHARTER = str(Path(sys.executable).parent / "charter")


class ServiceProcessError(RuntimeError):
    """The service exited, or did not become healthy in time (the message ends with its log)."""


@dataclass
class ServiceProcess:
    """``charter COMMAND`` with ``env`` over this process's environment, its output in ``log_path``."""

    command: list[str]
    env: dict[str, str]
    port: int
    log_path: Path
    scheme: str = "http"
    #: how ``/health`` is checked over HTTPS: a CA file to trust, or False for a throwaway certificate
    verify: str | bool = True
    cwd: Path | None = None
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def start(self, wait_healthy: float = 60.0) -> ServiceProcess:
        """Start it in a session of its own (a signal to the caller's group does not reach it)."""
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(  # noqa: S603 - our own entry point
                [CHARTER, *self.command],
                env={**os.environ, **self.env},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=self.cwd,
            )
        if wait_healthy:
            self.wait_healthy(wait_healthy)
        return self

    def wait_healthy(self, timeout: float) -> None:
        verify: ssl.SSLContext | bool = (
            ssl.create_default_context(cafile=self.verify) if isinstance(self.verify, str) else self.verify
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None, "start() first"
            if self.process.poll() is not None:
                raise ServiceProcessError(f"{self.command} exited {self.process.returncode}:\n{self.log()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/health", timeout=2, verify=verify).status_code == 200:
                    return
            time.sleep(0.25)
        raise ServiceProcessError(f"{self.command} not healthy after {timeout}s:\n{self.log()}")

    def log(self) -> str:
        """The end of its output."""
        return self.log_path.read_text(errors="replace")[-5000:]

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM and wait; the return code (None if it had to be killed)."""
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else None
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return None

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def rss_bytes(self) -> int:
        """Resident memory of the process now (0 once it is gone)."""
        return rss_bytes(self.process.pid) if self.process is not None else 0


def rss_bytes(pid: int) -> int:
    """Resident memory of a process (0 once it is gone)."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0
