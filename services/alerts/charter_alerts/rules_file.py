"""The rules file on disk: loaded at start, reloaded on change and on SIGHUP.

A file that does not parse or validate is refused: the error is logged, shown on
``/v1/rules`` and in ``charter_alerts_rules_last_reload_successful``, and the rules in
force stay as they were.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass
from pathlib import Path

from charter_alerts.domain.rules import RulesError, RuleSet, default_rules, parse_rules

log = logging.getLogger(__name__)


@dataclass
class RulesStatus:
    """The rules in force and the outcome of the last load."""

    rules: RuleSet
    source: str
    sha256: str
    loaded_at: float
    last_error: str | None = None
    last_error_at: float | None = None


class RulesFile:
    """One rules file; ``check`` reloads it if its content changed."""

    def __init__(self, path: str) -> None:
        self.path = Path(path) if path else None
        self._refused_sha: str | None = None
        self.status = self._first_load()

    def _first_load(self) -> RulesStatus:
        if self.path is None:
            return RulesStatus(default_rules(), "built-in defaults", "", time.time())
        text, sha = self._read()
        return RulesStatus(parse_rules(text, str(self.path)), str(self.path), sha, time.time())

    def _read(self) -> tuple[str, str]:
        assert self.path is not None
        try:
            data = self.path.read_bytes()
        except OSError as exc:
            raise RulesError(f"{self.path}: cannot read the rules file: {exc.strerror or exc}") from None
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise RulesError(f"{self.path}: not UTF-8 text") from None
        return text, hashlib.sha256(data).hexdigest()

    def check(self, force: bool = False) -> tuple[str, RuleSet | None]:
        """``("loaded", rules)`` if the file changed and is valid, ``("refused", None)`` if it
        changed and is not (the error is in ``status``), ``("unchanged", None)`` otherwise."""
        if self.path is None:
            return "unchanged", None
        try:
            text, sha = self._read()
            if not force and sha == self.status.sha256 and self.status.last_error:
                log.info("rules file %s is back to the rules in force", self.path)
                self.status.last_error = self.status.last_error_at = None
                self._refused_sha = None
                return "unchanged", None
            if not force and sha in (self.status.sha256, self._refused_sha):
                return "unchanged", None
            self._refused_sha = sha
            rules = parse_rules(text, str(self.path))
        except RulesError as exc:
            if self.status.last_error == str(exc) and not force:
                return "unchanged", None
            log.error("rules refused, the previous rules stay in force: %s", exc)
            self.status.last_error, self.status.last_error_at = str(exc), time.time()
            return "refused", None
        self._refused_sha = None
        self.status = RulesStatus(rules, str(self.path), sha, time.time())
        log.info("rules reloaded from %s (%d rules, sha256 %s)", self.path, len(rules.names()), sha[:12])
        return "loaded", rules
