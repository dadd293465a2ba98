"""One way for every `pintext` command to fail: `error: <message>` on stderr, then exit with a code that says whose
fault it was (FAILURE: the work or a server failed; USAGE: the command line or the environment is wrong)."""

from __future__ import annotations

from typing import NoReturn

import typer
from rich.console import Console
from rich.markup import escape

FAILURE = 1
USAGE = 2

_stderr = Console(stderr=True, highlight=False, soft_wrap=True)


def fail(message: str, code: int = FAILURE) -> NoReturn:
    """Print `error: message` on stderr (markup in the message is shown as typed) and exit with `code`."""
    _stderr.print(f"[red]error:[/red] {escape(message)}")
    raise typer.Exit(code)
