"""The command line explains itself: every option of every subcommand has a help text, required options do
not print a meaningless default, and `ddubench --version` names the installed version."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from ddubench import __version__
from ddubench.cli import build_parser


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices


@pytest.mark.parametrize("name", sorted(_subcommands()))
def test_every_option_has_help_and_no_meaningless_default(name: str) -> None:
    parser = _subcommands()[name]
    missing = [action.option_strings[0] if action.option_strings else action.dest
               for action in parser._actions if not isinstance(action, argparse._HelpAction) and not action.help]
    assert missing == []
    text = parser.format_help()
    assert "(default: None)" not in text and "(default: False)" not in text


def test_defaults_are_shown_where_they_say_something() -> None:
    text = " ".join(_subcommands()["train"].format_help().split())
    assert "Adam learning rate (default: 0.008)" in text
    assert "where to write the training summary JSON --lr" in text  # required: no default


def test_version() -> None:
    result = subprocess.run([sys.executable, "-m", "ddubench", "--version"], capture_output=True, text=True)
    assert (result.returncode, result.stdout.strip()) == (0, f"ddubench {__version__}")
