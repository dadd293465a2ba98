"""Streaming JSONL readers (plain or gzip) that validate each line and dead-letter the bad ones.

A file is read one line at a time, so memory does not grow with its size. Blank lines are skipped (they are
not records). Any other line that is not valid UTF-8, not JSON, not an object, or breaks its schema goes to
the dead letter with its line number; with `strict=True` the first such line raises instead.
"""

from __future__ import annotations

import gzip
import io
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from pintext.ingest.deadletter import DeadLetter
from pintext.schemas import WHOLE_RECORD, LocatedRecordError, RecordError

Validator = Callable[[Any], dict[str, Any]]


class ReportedElsewhere:
    """A dead letter that drops what it is given: for a second read of a file whose bad lines another pass
    dead-letters and counts (so they are not reported twice)."""

    def add(self, source: str, line: Any, error: RecordError, raw: str | bytes) -> None:
        return None


def open_binary(path: str | Path) -> io.BufferedIOBase:
    """Open a file for reading bytes, transparently un-gzipping `.gz` files."""
    path = Path(path)
    if path.suffix == ".gz":
        return gzip.open(path, "rb")
    return path.open("rb")


def parse_line(raw: bytes, validate: Validator) -> dict[str, Any]:
    """Decode, parse and validate one line; every failure is a `RecordError`."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise RecordError(WHOLE_RECORD, "not valid UTF-8", str(error)) from None
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as error:
        raise RecordError(WHOLE_RECORD, "not valid JSON", str(error)) from None
    return validate(obj)


def read_records(
    path: str | Path,
    validate: Validator,
    dead_letter: DeadLetter | ReportedElsewhere | None,
    strict: bool = False,
) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield `(line_no, record)` for each valid line of a JSONL(.gz) file; line numbers start at 1.

    Invalid lines go to `dead_letter` (source = the file path). With `strict=True` the first invalid line
    raises `LocatedRecordError` naming the file, line, field and reason. A dead letter is required unless
    strict, so that no bad line can be silently dropped.
    """
    if dead_letter is None and not strict:
        raise ValueError("read_records needs a dead letter unless strict=True")
    source = str(path)
    with open_binary(path) as handle:
        for line_no, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                record = parse_line(raw, validate)
            except RecordError as error:
                if strict:
                    raise LocatedRecordError(source, line_no, error.field, error.reason, error.detail) from None
                assert dead_letter is not None
                dead_letter.add(source, line_no, error, raw)
                continue
            yield line_no, record
