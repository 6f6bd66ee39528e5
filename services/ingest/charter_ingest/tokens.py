"""Bearer tokens of the HTTPS endpoint: one network each, stored hashed, rotated without downtime.

A token reads ``chrt_<id>_<secret>``: the id (12 hex digits) is public and names the
token in lists and logs; the secret is 32 random bytes. The tokens file keeps only the
SHA-256 of each token: a fast hash is enough because the secret has 256 bits of entropy
(slow password hashes exist for guessable passwords), and nobody who reads the file can
publish. Verification looks the record up by id and compares digests in constant time.

Rotation: a network may hold several valid tokens; create the new one, install it on the
network's side, then revoke the old one (or let it expire). The service re-reads the file
when it changes, so none of this needs a restart.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from charter_contracts.types import NetworkCode

log = logging.getLogger(__name__)

TOKEN_PREFIX = "chrt_"  # noqa: S105 - the public prefix of every token, not a secret
_TOKEN = re.compile(r"^chrt_(?P<id>[0-9a-f]{12})_(?P<secret>[A-Za-z0-9_-]{43})$")
#: Compared against when the id is unknown, so that a miss costs what a hit costs.
_DUMMY_DIGEST = hashlib.sha256(b"charter: no such token").hexdigest()


class TokenRecord(BaseModel):
    """One token as stored: never the token itself, only its digest."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(pattern=r"^[0-9a-f]{12}$")
    network: NetworkCode
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="SHA-256 of the whole token, hex.")
    created_at: datetime
    expires_at: datetime | None = None
    revoked_at: datetime | None = None
    note: str = Field(default="", max_length=200)

    def state(self, now: datetime) -> Literal["valid", "expired", "revoked"]:
        if self.revoked_at is not None and self.revoked_at <= now:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        return "valid"


class TokenFile(BaseModel):
    """The tokens file: JSON, readable by the service only (mode 0600)."""

    model_config = ConfigDict(extra="forbid")

    version: Literal[1] = 1
    tokens: list[TokenRecord] = Field(default_factory=list)


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token(
    network: str, now: datetime, expires_in: timedelta | None = None, note: str = ""
) -> tuple[str, TokenRecord]:
    """A fresh token (shown once) and the record to store."""
    token_id = secrets.token_hex(6)
    token = f"{TOKEN_PREFIX}{token_id}_{secrets.token_urlsafe(32)}"
    record = TokenRecord(
        id=token_id,
        network=network,
        sha256=digest(token),
        created_at=now,
        expires_at=now + expires_in if expires_in else None,
        note=note,
    )
    return token, record


class TokenFileError(RuntimeError):
    """The tokens file cannot be read or written; the message says which and why."""


def load(path: Path) -> TokenFile:
    """Read the tokens file; a missing file holds no tokens."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return TokenFile()
    except OSError as exc:
        raise TokenFileError(f"cannot read tokens file {path}: {exc}") from exc
    try:
        return TokenFile.model_validate_json(text)
    except ValidationError as exc:
        raise TokenFileError(f"tokens file {path} is not valid: {exc.errors()[0]['msg']}") from exc


def save(path: Path, content: TokenFile) -> None:
    """Write atomically (a reader never sees half a file), readable by the owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = json.dumps(content.model_dump(mode="json"), indent=2) + "\n"
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(data)
        os.chmod(temporary, 0o600)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


@dataclass(frozen=True, slots=True)
class Authenticated:
    """Who is calling: the network the token belongs to."""

    network: str
    token_id: str


@dataclass(frozen=True, slots=True)
class Refused:
    """Why a token is not accepted (said to the caller, who holds the token anyway)."""

    detail: str


class TokenRegistry:
    """The service's view of the tokens file, re-read whenever the file changes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: tuple[int, int] | None = None
        self._by_id: dict[str, TokenRecord] = {}

    def _refresh(self) -> None:
        try:
            stat = self.path.stat()
            stamp = (stat.st_mtime_ns, stat.st_size)
        except FileNotFoundError:
            stamp = (0, -1)
        if stamp == self._stamp:
            return
        try:
            content = load(self.path)
        except TokenFileError as exc:  # keep the tokens in force rather than lock every network out
            log.error("%s; keeping the %d tokens read before", exc, len(self._by_id))
            return
        self._by_id = {record.id: record for record in content.tokens}
        self._stamp = stamp
        log.info("tokens file %s: %d tokens", self.path, len(self._by_id))

    def authenticate(self, token: str, now: datetime | None = None) -> Authenticated | Refused:
        """Check a presented bearer token."""
        self._refresh()
        now = now or datetime.now(UTC)
        match = _TOKEN.match(token)
        record = self._by_id.get(match["id"]) if match else None
        expected = record.sha256 if record is not None else _DUMMY_DIGEST
        if not hmac.compare_digest(digest(token), expected) or record is None:
            return Refused("invalid token")
        state = record.state(now)
        if state != "valid":
            return Refused(f"token {record.id} is {state}")
        return Authenticated(record.network, record.id)
