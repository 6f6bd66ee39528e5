"""What each receiver is sent, as pure functions of an ``AlertEvent``.

The idempotency key (fingerprint, episode, status) names one notification: a receiver
that sees the same key twice is seeing the same notification again, never a new breach.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime, timedelta
from email.message import EmailMessage
from typing import Any

from charter_alerts.domain.text import INDICATOR_EN, INDICATOR_FR, WINDOW_EN, pct_en, when, where
from charter_contracts import AlertEvent

SIGNATURE_HEADER = "X-Charter-Signature"
TIMESTAMP_HEADER = "X-Charter-Timestamp"
IDEMPOTENCY_HEADER = "Idempotency-Key"


def idempotency_key(event: AlertEvent) -> str:
    """``<fingerprint>-<episode>-<status>``: the same for every re-delivery of one notification."""
    return f"{event.fingerprint}-{event.episode}-{event.status}"


# -- Alertmanager (API v2) ---------------------------------------------------------------


def alertmanager_alert(event: AlertEvent, now: datetime, resend: timedelta, severity: str) -> dict[str, Any]:
    """One postable alert of Alertmanager's v2 API.

    Alertmanager resolves an alert at ``endsAt``: a firing alert gets ``now + 4 x resend``
    (as Prometheus does) and is re-sent before that; a resolved one gets ``now``.
    Labels identify the alert (same labels = same alert for Alertmanager); everything else
    is an annotation.
    """
    labels = {
        "alertname": event.rule,
        "network": event.network,
        "indicator": event.indicator,
        "window": event.window,
        "kind": event.kind,
        "severity": severity,
        "fingerprint": event.fingerprint,
    }
    if event.department is not None:
        labels["department"] = event.department
    starts = min(event.since, now)
    ends = now + 4 * resend if event.status == "firing" else now
    return {
        "labels": labels,
        "annotations": {
            "summary": event.summary_en,
            "summary_fr": event.summary_fr,
            "value": "" if event.value is None else f"{event.value:.4f}",
            "threshold": f"{event.threshold:.4f}",
            "since": event.since.isoformat(),
            "episode": str(event.episode),
            "dashboard": event.dashboard_url,
        },
        "startsAt": _rfc3339(starts),
        "endsAt": _rfc3339(max(ends, starts)),
        "generatorURL": event.dashboard_url,
    }


def _rfc3339(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


# -- webhook ----------------------------------------------------------------------------


def webhook_body(event: AlertEvent) -> bytes:
    """The alert as JSON, exactly the ``AlertEvent`` contract (``contracts/schemas/alert.schema.json``)."""
    return event.model_dump_json().encode()


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """``sha256=<hex>`` of HMAC-SHA256(secret, ``<timestamp>.<body>``); the timestamp defeats replays."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


def verify(secret: str, timestamp: str, body: bytes, signature: str) -> bool:
    """What a receiver runs to check a webhook came from us (constant-time comparison)."""
    try:
        expected = sign(secret, int(timestamp), body)
    except ValueError:
        return False
    return hmac.compare_digest(expected, signature)


# -- e-mail -----------------------------------------------------------------------------


def email_message(event: AlertEvent, sender: str, recipients: list[str], domain: str = "charter.local") -> EmailMessage:
    """A bilingual e-mail; the resolved mail answers the firing one (same thread)."""
    status = {"firing": "ALERTE / FIRING", "resolved": "RÉSOLU / RESOLVED", "pending": "EN ATTENTE / PENDING"}
    place = where(event.network, event.department)
    message = EmailMessage()
    message["Subject"] = (
        f"[charter] {status[event.status]} {place}: {INDICATOR_EN[event.indicator]} "
        f"{WINDOW_EN[event.window]} {pct_en(event.value)} (threshold {pct_en(event.threshold)})"
    )
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    message["Message-ID"] = f"<{idempotency_key(event)}@{domain}>"
    if event.status == "resolved":
        firing = f"<{event.fingerprint}-{event.episode}-firing@{domain}>"
        message["In-Reply-To"] = firing
        message["References"] = firing
    message["X-Charter-Fingerprint"] = event.fingerprint
    message["X-Charter-Episode"] = str(event.episode)
    message["X-Charter-Status"] = event.status
    message.set_content(
        "\n".join(
            [
                event.summary_fr,
                "",
                f"Indicateur : {INDICATOR_FR[event.indicator]} — réseau {event.network}"
                + (f", département {event.department}" if event.department else ""),
                f"Depuis : {when(event.since)}",
                f"Tableau de bord : {event.dashboard_url}",
                "",
                "-- ",
                "",
                event.summary_en,
                "",
                f"Indicator: {INDICATOR_EN[event.indicator]} — network {event.network}"
                + (f", department {event.department}" if event.department else ""),
                f"Since: {when(event.since)}",
                f"Board: {event.dashboard_url}",
                "",
                f"Alert {event.fingerprint}, episode {event.episode}, rule {event.rule} ({event.kind}).",
            ]
        )
    )
    return message
