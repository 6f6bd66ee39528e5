"""A local on-call sink for the native stack: Alertmanager's webhook notifications, kept and shown.

Without an on-call tool on a developer's machine, the stack points Alertmanager's
webhook receivers here: each notification is appended to a log file (one JSON per line)
and summarised in the terminal, so one sees the page arrive when a network breaches.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Notification:
    """One webhook call of Alertmanager: a group of alerts of one network, firing or resolved."""

    received_at: float
    receiver: str
    status: str
    network: str
    alerts: tuple[str, ...]

    @classmethod
    def from_webhook(cls, receiver: str, body: dict[str, Any], at: float) -> Notification:
        labels = body.get("groupLabels") or body.get("commonLabels") or {}
        names = tuple(
            str(alert.get("labels", {}).get("alertname", "?")) + ("" if alert.get("status") != "resolved" else " ✓")
            for alert in body.get("alerts", [])
        )
        return cls(at, receiver, str(body.get("status", "?")), str(labels.get("network", "")), names)

    def describe(self) -> str:
        at = time.strftime("%H:%M:%S", time.localtime(self.received_at))
        return f"{at} {self.receiver} {self.status}: {self.network or '(no network)'} {', '.join(self.alerts)}"


@dataclass
class OnCallSink:
    """HTTP server recording Alertmanager webhook POSTs (GET /health answers 200)."""

    port: int
    log_file: Path
    host: str = "127.0.0.1"
    #: Called with each notification as it comes (``charter oncall`` prints them).
    on_notification: Callable[[Notification], None] | None = None
    received: list[Notification] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> OnCallSink:
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    payload = json.loads(body)
                except ValueError:
                    self.send_response(400)
                    self.end_headers()
                    return
                sink.record(self.path.rstrip("/").rsplit("/", 1)[-1], payload)
                self.send_response(200)
                self.end_headers()

            def do_GET(self) -> None:
                self.send_response(200 if self.path == "/health" else 404)
                self.end_headers()

            def log_message(self, *args: Any) -> None:  # quiet: the log file says what came
                return

        self._server = ThreadingHTTPServer((self.host, self.port), Handler)
        threading.Thread(target=self._server.serve_forever, name="on-call sink", daemon=True).start()
        return self

    def record(self, receiver: str, payload: dict[str, Any]) -> None:
        notification = Notification.from_webhook(receiver, payload, time.time())
        with self._lock:
            self.received.append(notification)
            with self.log_file.open("a", encoding="utf-8") as handle:
                handle.write(json.dumps({"receiver": receiver, **payload}, ensure_ascii=False) + "\n")
        if self.on_notification is not None:
            self.on_notification(notification)

    def last(self, count: int = 3) -> list[Notification]:
        with self._lock:
            return self.received[-count:]

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
