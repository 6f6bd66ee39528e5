"""The README is what a newcomer reads first: its configuration table must be true."""

from __future__ import annotations

from pathlib import Path

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
