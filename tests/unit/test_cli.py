"""The ``fhir-server`` command line: every command and option is documented in the README."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from fhir_server.cli import _parser

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def _commands() -> dict[str, argparse.ArgumentParser]:
    parser = _parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def _options() -> list[tuple[str, str]]:
    return [(name, option) for name, command in _commands().items()
            for action in command._actions for option in action.option_strings
            if option.startswith("--") and option != "--help"]


def test_the_commands_are_those_of_the_interface() -> None:
    assert set(_commands()) >= {"serve", "migrate", "import"}


@pytest.mark.parametrize("command", sorted(_commands()))
def test_every_command_is_documented(command: str) -> None:
    assert f"`fhir-server {command}" in README


@pytest.mark.parametrize(("command", "option"), _options())
def test_every_option_is_documented(command: str, option: str) -> None:
    lines = [line for line in README.splitlines() if f"fhir-server {command}" in line]
    assert any(option in line for line in lines), f"{command} {option}"
