"""The one way tests run `pintext`: `pintext(args, env=..., real_process=...)` (a fixture, and the same function
`run_pintext` for module-level helpers) returns a `Ran` with the exit code, stdout and stderr.

In process (the default) the command runs through typer's CliRunner: fast, and an unexpected exception is kept
in `Ran.exception`. `real_process=True` runs the installed `pintext` executable instead, for what only a real
process shows: its exit status, signals, stdout encoding, a second command running beside the first.
`env` adds to (or, with a None value, removes from) the test's own environment, the same way in both.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

PINTEXT = str(Path(sys.executable).with_name("pintext"))
TIMEOUT_S = 300  # a real process that runs longer is stuck


@dataclass
class Ran:
    """A finished `pintext` command."""

    args: list[str]
    code: int
    stdout: str
    stderr: str
    output: str  # stdout and stderr as the user saw them (interleaved in process; stdout then stderr otherwise)
    exception: BaseException | None = None  # in process: what the command raised (SystemExit on a plain exit)

    @classmethod
    def of_process(cls, args: Sequence[str], done: subprocess.CompletedProcess) -> Ran:
        """A command a test had to start itself (e.g. as another user), in the same shape."""
        return cls(list(args), done.returncode, done.stdout, done.stderr, done.stdout + done.stderr)

    def ok(self) -> str:
        """Assert the command succeeded and printed no traceback; its stdout. An exception the command raised is
        raised again here, with its own traceback."""
        if self.exception is not None and not isinstance(self.exception, SystemExit):
            raise self.exception
        assert self.code == 0, (self.args, self.output)
        assert "Traceback" not in self.output, (self.args, self.output)
        return self.stdout

    def json(self) -> dict:
        """The last line of a successful command's stdout (what `--json` prints), parsed."""
        return json.loads(self.ok().strip().splitlines()[-1])


def run_pintext(args: Sequence[str], *, env: Mapping[str, str | None] | None = None, real_process: bool = False,
                timeout: float = TIMEOUT_S, input: str | None = None) -> Ran:
    """Run `pintext ARGS`: in process, or as the installed executable when `real_process`."""
    args = [str(arg) for arg in args]
    if not real_process:
        from pintext.cli import app

        result = CliRunner().invoke(app, args, env=dict(env or {}), input=input)
        return Ran(args, result.exit_code, result.stdout, result.stderr, result.output, result.exception)
    environment = {**os.environ, **(env or {})}
    done = subprocess.run([PINTEXT, *args], capture_output=True, text=True, timeout=timeout, input=input,
                          env={key: value for key, value in environment.items() if value is not None})
    return Ran.of_process(args, done)


@pytest.fixture(scope="session")
def pintext() -> Callable[..., Ran]:
    """`pintext(args, env=None, real_process=False)`: run a command, get its `Ran`."""
    return run_pintext
