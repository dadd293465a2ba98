"""One way for every `pintext` command to fail: `error: <message>` on stderr, then exit with a code that says whose
fault it was (FAILURE: the work or a server failed; USAGE: the command line or the environment is wrong)."""

from __future__ import annotations

from typing import NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from pintext.errors import FAILURE, USAGE, PinTextError

__all__ = ["FAILURE", "USAGE", "fail", "fail_at_once", "fail_with"]

_stderr = Console(stderr=True, highlight=False, soft_wrap=True)


def fail_at_once(message: str, code: int = FAILURE) -> NoReturn:
    """`fail`, then leave the process without the interpreter's shutdown: for when a library thread is still
    blocked on a server that is gone (Kafka's close), which the shutdown would wait for."""
    import os
    import sys

    _stderr.print(f"[red]error:[/red] {escape(message)}")
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def fail(message: str, code: int = FAILURE) -> NoReturn:
    """Print `error: message` on stderr (markup in the message is shown as typed) and exit with `code`."""
    _stderr.print(f"[red]error:[/red] {escape(message)}")
    raise typer.Exit(code)


def fail_with(error: PinTextError) -> NoReturn:
    """`fail` with a Python API error's message and exit code."""
    fail(str(error), error.exit_code)
