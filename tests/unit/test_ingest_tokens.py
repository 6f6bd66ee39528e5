"""Tokens: one network each, hashed at rest, rotated and revoked without restarting ingest."""

from __future__ import annotations

import hmac
import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

from charter_ingest import tokens
from charter_ingest.ratelimit import RateLimiter
from charter_ingest.tokens import Authenticated, Refused, TokenRegistry
from charter_ops.cli import app

NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)


def test_a_token_authenticates_its_network_and_only_its_hash_is_stored(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    token, record = tokens.new_token("caf", NOW)
    tokens.save(path, tokens.TokenFile(tokens=[record]))
    assert TokenRegistry(path).authenticate(token, NOW) == Authenticated("caf", record.id)
    text = path.read_text()
    assert token not in text
    secret = token.removeprefix(f"{tokens.TOKEN_PREFIX}{record.id}_")  # may itself hold "_"
    assert len(secret) >= 40
    assert secret not in text  # not even the secret part
    assert oct(path.stat().st_mode & 0o777) == "0o600"


def test_unknown_altered_expired_and_revoked_tokens_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    good, record = tokens.new_token("caf", NOW, expires_in=timedelta(days=30))
    revoked, gone = tokens.new_token("caf", NOW)
    gone = gone.model_copy(update={"revoked_at": NOW})
    tokens.save(path, tokens.TokenFile(tokens=[record, gone]))
    registry = TokenRegistry(path)
    assert registry.authenticate(good[:-1] + ("A" if good[-1] != "A" else "B"), NOW) == Refused("invalid token")
    assert registry.authenticate("chrt_000000000000_" + "x" * 43, NOW) == Refused("invalid token")
    assert registry.authenticate("not a token at all", NOW) == Refused("invalid token")
    assert registry.authenticate(revoked, NOW) == Refused(f"token {gone.id} is revoked")
    assert registry.authenticate(good, NOW + timedelta(days=31)) == Refused(f"token {record.id} is expired")


def test_every_check_compares_digests_in_constant_time_even_for_an_unknown_id(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A wrong secret and an unknown id cost the same: both end in one hmac.compare_digest of two
    SHA-256 digests of the same length, never in a lookup that returns early."""
    path = tmp_path / "tokens.json"
    good, record = tokens.new_token("caf", NOW)
    tokens.save(path, tokens.TokenFile(tokens=[record]))
    registry = TokenRegistry(path)
    compared: list[tuple[str, str]] = []

    def recording(a: str, b: str) -> bool:
        compared.append((a, b))
        return hmac.compare_digest(a, b)

    monkeypatch.setattr(tokens, "hmac", SimpleNamespace(compare_digest=recording))

    wrong_secret = good[:-1] + ("A" if good[-1] != "A" else "B")
    unknown_id = "chrt_000000000000_" + good[-43:]
    other_unknown_id = "chrt_ffffffffffff_" + "x" * 43
    for presented in (wrong_secret, unknown_id, other_unknown_id, "not a token at all"):
        compared.clear()
        assert registry.authenticate(presented, NOW) == Refused("invalid token")
        assert len(compared) == 1, presented  # the refusal went through the constant-time comparison
        ((given, expected),) = compared
        assert given == tokens.digest(presented)
        assert len(given) == len(expected) == 64
    dummies = set()
    for presented in (unknown_id, other_unknown_id, "not a token at all"):
        compared.clear()
        registry.authenticate(presented, NOW)
        dummies.add(compared[0][1])
    assert len(dummies) == 1  # an unknown id is compared with one dummy digest, whatever the id
    assert dummies != {record.sha256}

    compared.clear()
    registry.authenticate(wrong_secret, NOW)
    assert compared == [(tokens.digest(wrong_secret), record.sha256)]  # a known id: against its own digest
    compared.clear()
    assert registry.authenticate(good, NOW) == Authenticated("caf", record.id)
    assert compared == [(tokens.digest(good), record.sha256)]


def test_rotation_two_tokens_valid_then_the_old_one_revoked_without_restart(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    old, old_record = tokens.new_token("caf", NOW)
    tokens.save(path, tokens.TokenFile(tokens=[old_record]))
    registry = TokenRegistry(path)
    assert isinstance(registry.authenticate(old, NOW), Authenticated)

    new, new_record = tokens.new_token("caf", NOW)
    tokens.save(path, tokens.TokenFile(tokens=[old_record, new_record]))
    assert isinstance(registry.authenticate(old, NOW), Authenticated)
    assert isinstance(registry.authenticate(new, NOW), Authenticated)

    tokens.save(path, tokens.TokenFile(tokens=[old_record.model_copy(update={"revoked_at": NOW}), new_record]))
    assert isinstance(registry.authenticate(old, NOW), Refused)
    assert isinstance(registry.authenticate(new, NOW), Authenticated)


def test_a_broken_tokens_file_keeps_the_tokens_in_force(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    token, record = tokens.new_token("cpam", NOW)
    tokens.save(path, tokens.TokenFile(tokens=[record]))
    registry = TokenRegistry(path)
    assert isinstance(registry.authenticate(token, NOW), Authenticated)
    path.write_text('{"version": 1, "tokens": [{"id": "half a reco')
    os.utime(path, ns=(1, 1))
    assert registry.authenticate(token, NOW) == Authenticated("cpam", record.id)


def test_charter_tokens_create_list_revoke(tmp_path: Path) -> None:
    path = tmp_path / "conf" / "tokens.json"
    runner = CliRunner()
    created = runner.invoke(app, ["tokens", "create", "--network", "caf", "--note", "CAF SI", "--file", str(path)])
    assert created.exit_code == 0, created.output
    token = created.stdout.strip().splitlines()[0]
    assert token.startswith("chrt_")
    stored = json.loads(path.read_text())["tokens"][0]
    assert (stored["network"], stored["note"], stored["revoked_at"]) == ("caf", "CAF SI", None)
    assert token not in path.read_text()

    listed = runner.invoke(app, ["tokens", "list", "--file", str(path)])
    assert stored["id"] in listed.stdout
    assert "valid" in listed.stdout

    revoked = runner.invoke(app, ["tokens", "revoke", stored["id"], "--file", str(path)])
    assert revoked.exit_code == 0
    assert isinstance(TokenRegistry(path).authenticate(token), Refused)
    assert "revoked" in runner.invoke(app, ["tokens", "list", "--file", str(path)]).stdout

    unknown = runner.invoke(app, ["tokens", "revoke", "0123456789ab", "--file", str(path)])
    assert unknown.exit_code == 2
    bad_network = runner.invoke(app, ["tokens", "create", "--network", "CAF!", "--file", str(path)])
    assert bad_network.exit_code == 2
    assert "network" in bad_network.output


def test_the_rate_limit_counts_events_and_says_how_long_to_wait() -> None:
    now = [0.0]
    limiter = RateLimiter(rate=100, capacity=500, clock=lambda: now[0])
    assert limiter.acquire("t1", 500) == 0.0
    assert limiter.acquire("t1", 50) == 0.5  # empty: 50 events take half a second to come back
    assert limiter.acquire("t2", 10) == 0.0  # another token has its own bucket
    now[0] = 0.5
    assert limiter.acquire("t1", 50) == 0.0
    assert limiter.acquire("t1", 10_000) == 5.0  # more than the burst: waits for a full bucket
    assert RateLimiter(rate=0, capacity=1).acquire("t1", 10**9) == 0.0
