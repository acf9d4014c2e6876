"""The command reference (docs/cli.md), written from the app itself: every command, its usage,
its help and every argument and option, as `--help` shows them. `make docs` writes it and a
test fails when the file and the app disagree."""

from __future__ import annotations

import inspect
from typing import Any

import typer
import typer.main

HEADER = """# Command reference

Generated from the app by `make docs` (`scripts/cli_reference.py`); `tests/test_docs.py` fails
when this file and `panel --help` disagree. Every command also answers `--help`.
"""


def reference_markdown(app: typer.Typer) -> str:
    """Return the Markdown reference of every command of app, in the order --help lists them."""
    root = typer.main.get_command(app)
    sections = [HEADER, *_sections(root, ["panel"])]
    return "\n".join(sections).rstrip("\n") + "\n"


def _sections(command: Any, path: list[str]) -> list[str]:
    """Return the section of command and of each of its subcommands, depth first."""
    found = [_section(command, path)]
    subcommands = getattr(command, "commands", {})
    for name in command.list_commands(_context(command, path)) if subcommands else []:
        found.extend(_sections(subcommands[name], [*path, name]))
    return found


def _section(command: Any, path: list[str]) -> str:
    """Return one command's heading, usage, help text and table of arguments and options."""
    ctx = _context(command, path)
    heading = "## `" + " ".join(path) + "`"
    usage = command.get_usage(ctx).strip()
    text = inspect.cleandoc(command.help or "")
    rows = [record for p in command.get_params(ctx) if (record := p.get_help_record(ctx))]
    lines = [heading, "", "```", usage, "```", ""]
    if text:
        lines += [text, ""]
    if rows:
        lines += ["| argument or option | what it does |", "| --- | --- |"]
        lines += [f"| `{names}` | {_cell(help_text)} |" for names, help_text in rows]
        lines.append("")
    return "\n".join(lines)


def _context(command: Any, path: list[str]) -> Any:
    """Return a click context for command, named by its path (as its usage line shows it)."""
    return command.context_class(command, info_name=" ".join(path))


def _cell(text: str) -> str:
    """Return help text as one Markdown table cell."""
    return " ".join(text.split()).replace("|", "\\|")
