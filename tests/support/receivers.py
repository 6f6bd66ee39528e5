"""Local receivers for alert notifications: a webhook sink, an SMTP sink, a real Alertmanager.

All listen on 127.0.0.1 on free ports and stop with the test.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import subprocess
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import yaml
from aiosmtpd.controller import Controller

from charter_ops.kafka.local import free_port

ALERTMANAGER = shutil.which("prometheus-alertmanager") or "/usr/bin/prometheus-alertmanager"
ALERTMANAGER_CONFIG = Path(__file__).resolve().parents[2] / "deploy" / "alertmanager" / "alertmanager.yml"


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class WebhookSink:
    """An HTTP server recording every POST; answers 503 while ``failing`` is set."""

    received: list[Request] = field(default_factory=list)
    refused: list[Request] = field(default_factory=list)
    failing: threading.Event = field(default_factory=threading.Event)
    port: int = 0
    _server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> WebhookSink:
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                request = Request(self.path, dict(self.headers.items()), self.rfile.read(length))
                if sink.failing.is_set():
                    sink.refused.append(request)
                    self.send_response(503)
                else:
                    sink.received.append(request)
                    self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return None

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def on(self, path: str) -> list[Request]:
        return [r for r in self.received if r.path == path]


class _Mailbox:
    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(message_from_bytes(envelope.content))
        return "250 Message accepted for delivery"


@contextlib.contextmanager
def smtp_sink() -> Iterator[tuple[int, list[Message]]]:
    """An SMTP server (aiosmtpd) on a free port; yields (port, messages received)."""
    mailbox = _Mailbox()
    port = free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port, mailbox.messages
    finally:
        controller.stop()


def alertmanager_config(webhook_url: str, fast: bool = True) -> dict[str, Any]:
    """The product's Alertmanager configuration with its receivers pointed at ``webhook_url``.

    ``fast`` shortens the group timers (seconds instead of minutes) so a test sees the
    notifications quickly; routes, grouping and receivers are the product's.
    """
    config: dict[str, Any] = yaml.safe_load(ALERTMANAGER_CONFIG.read_text())
    for receiver in config["receivers"]:
        for hook in receiver.get("webhook_configs", []):
            hook["url"] = webhook_url + "/alertmanager/" + hook["url"].rsplit("/", 1)[-1]
    if fast:
        routes = [config["route"], *config["route"].get("routes", [])]
        for route in routes:
            route["group_wait"] = "1s"
            route["group_interval"] = "1s"
    return config


@dataclass
class Alertmanager:
    """A real Alertmanager (Debian's ``prometheus-alertmanager``) on a free port."""

    home: Path
    config: dict[str, Any]
    port: int = 0
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> Alertmanager:
        self.port = free_port()
        config_file = self.home / "alertmanager.yml"
        config_file.write_text(yaml.safe_dump(self.config))
        (self.home / "data").mkdir(exist_ok=True)
        log = (self.home / "alertmanager.log").open("ab")
        self.process = subprocess.Popen(
            [
                ALERTMANAGER,
                f"--config.file={config_file}",
                f"--storage.path={self.home / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--cluster.listen-address=",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"Alertmanager exited: {(self.home / 'alertmanager.log').read_text()[-3000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/-/ready", timeout=1).status_code == 200:
                    return self
            time.sleep(0.2)
        raise AssertionError("Alertmanager not ready")

    def alerts(self) -> list[dict[str, Any]]:
        response = httpx.get(f"{self.url}/api/v2/alerts", timeout=5)
        response.raise_for_status()
        result: list[dict[str, Any]] = response.json()
        return result

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


async def wait_for(condition: Callable[[], bool], what: str, timeout: float = 60.0, every: float = 0.2) -> None:
    """Poll until ``condition()`` holds; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(every)


async def wait_for_async(
    check: Callable[[], Awaitable[bool]], what: str, timeout: float = 60.0, every: float = 0.3
) -> None:
    """Like ``wait_for`` for a condition that must be awaited."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(every)
