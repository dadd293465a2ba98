"""The errors of PinText's Python API: one type per kind of fault, each with one clear message (never a credential).

`exit_code` says whose fault it was, and is what the `pintext` command exits with after printing the message:
FAILURE (1) when the work or a server failed, USAGE (2) when the call, its inputs or the environment are wrong.
"""

from __future__ import annotations

FAILURE = 1
USAGE = 2


class PinTextError(Exception):
    """Every error `pintext.open(...)`, `pintext.train(...)` and `pintext.pairs(...)` raise on purpose."""

    exit_code = FAILURE

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class UsageError(PinTextError):
    """The call, its options or the environment are wrong (a bad argument, a missing model, a foreign index)."""

    exit_code = USAGE


class ModelError(UsageError):
    """The model folder is missing, unreadable, or not a PinText model."""


class BadInput(UsageError):
    """An input file or record is malformed; the message names the file, line and field."""


class IndexMissing(UsageError):
    """The index (or the pin asked for) does not exist."""


class IndexMismatch(UsageError):
    """The index was built for another model, token family or dimension, or not by PinText."""


class Unsupported(UsageError):
    """The engine cannot do what was asked (e.g. BM25 on the local engine)."""


class EngineUnavailable(PinTextError):
    """No engine answers, it answers too slowly, or it refuses our credentials."""


class WriteFailed(PinTextError):
    """A write to disk failed (no space, read-only, denied); what was done so far is kept."""

    def __init__(self, message: str, usage_fault: bool = False) -> None:
        super().__init__(message)
        if usage_fault:
            self.exit_code = USAGE
