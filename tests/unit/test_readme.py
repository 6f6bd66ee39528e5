"""The README is what a newcomer reads first: its configuration table must be true."""

from __future__ import annotations

import json
import re
from pathlib import Path

from charter_ingest.domain import Admitted, admit
from charter_ops.config_doc import env_table

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_lists_every_environment_variable_with_its_default() -> None:
    text = README.read_text(encoding="utf-8")
    start = text.index("<!-- env-table:start")
    start = text.index("\n", start) + 1
    end = text.index("<!-- env-table:end -->")
    assert text[start:end] == env_table(), (
        "regenerate with: python -c 'from charter_ops.config_doc import env_table; print(env_table())'"
    )


def test_readme_starts_with_the_two_commands() -> None:
    first_block = README.read_text(encoding="utf-8").split("```")[1]
    assert "make run" in first_block
    assert "make test" in first_block


def test_every_integrator_example_in_the_readme_is_accepted_by_ingest() -> None:
    text = README.read_text(encoding="utf-8")
    page = text[text.index("## For network integrators") : text.index("## Layout")]
    decoder = json.JSONDecoder()
    examples = []
    for match in re.finditer(r'\{"type": ', page):
        event, _ = decoder.raw_decode(page, match.start())
        examples.append(event)
    assert {e["type"] for e in examples} == {"counter_opened", "counter_closed", "call", "case_completed"}
    for event in examples:
        outcome = admit(json.dumps(event), "caf", None)
        assert isinstance(outcome, Admitted), (event, outcome)
    keyed = re.findall(r"^([\w-]+)\|(\{.*\})$", page, flags=re.MULTILINE)  # kcat lines: key|value
    assert len(keyed) == 4
    assert all(key == json.loads(event)["site_id"] for key, event in keyed)
