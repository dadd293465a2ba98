"""Streaming JSONL readers (plain or gzip) that validate each line and dead-letter the bad ones.

A file is read one line at a time, so memory does not grow with its size. Blank lines are skipped (they are
not records). Any other line that is not valid UTF-8, not JSON, not an object, or breaks its schema goes to
the dead letter with its line number; with `strict=True` the first such line raises instead.

Damaged input never becomes a traceback: a line nested too deeply for the JSON parser is one dead-letter entry
("nested too deeply"); NaN and Infinity, which Python's parser takes but JSON does not, make a line "not valid
JSON"; invalid UTF-8 is "not valid UTF-8", never replaced; CRLF line ends are read like LF; a UTF-8 byte-order
mark at the start of a file is skipped; a truncated or corrupt `.gz` keeps every whole line before the damage
and then dead-letters the rest as ONE entry (field `<record>`, reason "truncated or corrupt gzip", line = the
first line not read whole) and the file ends there; with `strict=True` that entry is raised instead (naming file
and line). The corpus in tests/data/bad/ goes through every reader (tests/test_bad_corpus.py). See docs/data.md,
"Bad input".
"""

from __future__ import annotations

import codecs
import gzip
import io
import json
import re
import zlib
from collections.abc import Callable, Iterable, Iterator
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


DAMAGED_GZIP = "truncated or corrupt gzip"


def raw_lines(path: str | Path) -> Iterator[tuple[int, bytes | RecordError]]:
    """`(line_no, raw bytes)` for each line of a JSONL(.gz) file (blank lines included, a leading UTF-8 BOM
    dropped). When a `.gz` turns out truncated or corrupt, the whole lines before the damage have been yielded and
    the last item is `(first line not read whole, RecordError(<record>, "truncated or corrupt gzip"))`."""
    line_no = 0
    with open_binary(path) as handle:
        try:
            for line_no, raw in enumerate(handle, start=1):
                if line_no == 1 and raw.startswith(codecs.BOM_UTF8):
                    raw = raw[len(codecs.BOM_UTF8):]
                yield line_no, raw
        except (EOFError, gzip.BadGzipFile, zlib.error) as error:
            yield line_no + 1, RecordError(WHOLE_RECORD, DAMAGED_GZIP,
                                           f"{error}; the lines before it were read, the rest is lost")


def count_lines(path: str | Path) -> int:
    """Newlines in a JSONL(.gz) file, in 1 MiB chunks (constant memory): a progress total. A truncated or corrupt
    `.gz` counts what could be read (the readers then dead-letter the damage)."""
    total = 0
    with open_binary(path) as handle:
        try:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                total += chunk.count(b"\n")
        except (EOFError, gzip.BadGzipFile, zlib.error):
            pass
    return total


class _NotJsonConstant(ValueError):
    """NaN, Infinity or -Infinity: Python's json reads them, but they are not JSON (RFC 8259) and no engine or
    JSON writer downstream takes them back."""


def _refuse_constant(name: str) -> Any:
    raise _NotJsonConstant(name)


def decode_line(raw: bytes) -> str:
    """One line's text; invalid UTF-8 is a `RecordError` (never replaced: a silently changed text is data lost)."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise RecordError(WHOLE_RECORD, "not valid UTF-8", str(error)) from None


def parse_json(raw: bytes) -> Any:
    """Decode and parse one line; not UTF-8, not JSON (NaN/Infinity included) or nested too deeply is a
    `RecordError`."""
    text = decode_line(raw)
    try:
        value = json.loads(text, parse_constant=_refuse_constant)
    except json.JSONDecodeError as error:
        raise RecordError(WHOLE_RECORD, "not valid JSON", str(error)) from None
    except _NotJsonConstant as error:
        raise RecordError(WHOLE_RECORD, "not valid JSON", f"{error} is not a JSON value (write null or a "
                                                          "number)") from None
    except RecursionError:
        raise RecordError(WHOLE_RECORD, "nested too deeply", "JSON nesting beyond the parser's limit") from None
    except ValueError as error:  # an integer of more digits than Python converts (sys.get_int_max_str_digits)
        raise RecordError(WHOLE_RECORD, "number too long", str(error).split(";")[0]) from None
    if _SURROGATE_ESCAPE.search(text):
        _require_no_lone_surrogate(value)
    return value


# A `\ud800`-`\udfff` escape: in a pair it is one character (an emoji), alone it is no character at all.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _require_no_lone_surrogate(value: Any) -> None:
    """JSON may escape half of a UTF-16 pair alone; Python then holds a string no UTF-8 file, tokenizer or engine
    takes (the tokenizer raises a TypeError): a bad line, like invalid UTF-8."""
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as error:
        raise RecordError(WHOLE_RECORD, "not valid UTF-8", f"a lone surrogate escape: {error.reason}") from None


def parse_line(raw: bytes, validate: Validator) -> dict[str, Any]:
    """Decode, parse and validate one line; every failure is a `RecordError`."""
    return validate(parse_json(raw))


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
    for line_no, raw in raw_lines(path):
        if isinstance(raw, bytes) and not raw.strip():
            continue
        try:
            if isinstance(raw, RecordError):
                raise raw
            record = parse_line(raw, validate)
        except RecordError as error:
            if strict:
                raise LocatedRecordError(source, line_no, error.field, error.reason, error.detail) from None
            assert dead_letter is not None
            dead_letter.add(source, line_no, error, raw if isinstance(raw, bytes) else "")
            continue
        yield line_no, record


# ----------------------------------------------------------------------------------------------- folders of parts

# A folder of parts (what `pintext collect --roll-*` writes) is read as all its parts in name order. Hidden names
# (the collector's open part, `.events-*.open`) are never parts: only closed, renamed parts count; nor are dead
# letters kept beside them (`rejected*.jsonl`).
PART_SUFFIXES = (".jsonl", ".jsonl.gz", ".parquet")
# The columns of an events Parquet part; `ts` is epoch seconds (float), `extra` the other fields as a JSON object.
PARQUET_EVENT_COLUMNS = ("event_id", "ts", "user_id", "surface", "action", "pin_id", "query", "subject_pin_id")
PARQUET_EXTRA_COLUMN = "extra"


def record_parts(path: str | Path) -> list[Path]:
    """The files to read for `path`: the file itself, or a folder's `*.jsonl`, `*.jsonl.gz`, `*.parquet` parts in
    name order (not hidden files, not `rejected*` dead letters). A missing path raises FileNotFoundError; a folder
    without parts, ValueError naming it."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(2, "no such file or folder", str(path))
    if not path.is_dir():
        return [path]
    parts = sorted(child for child in path.iterdir() if child.is_file() and child.name.endswith(PART_SUFFIXES)
                   and not child.name.startswith((".", "rejected")))
    if not parts:
        raise ValueError(f"{path}: a folder with no parts ({', '.join('*' + s for s in PART_SUFFIXES)})")
    return parts


def import_pyarrow_parquet() -> Any:
    """`pyarrow.parquet`, or an ImportError naming the extra."""
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise ImportError("Parquet parts need pyarrow: pip install 'pintext[parquet]'") from None
    return pq


def parquet_rows(path: str | Path) -> Iterator[dict[str, Any]]:
    """The rows of an events Parquet part as event dicts (nulls dropped, `extra` merged back), batch by batch."""
    pq = import_pyarrow_parquet()
    for batch in pq.ParquetFile(path).iter_batches(batch_size=8192):
        for row in batch.to_pylist():
            extra = row.pop(PARQUET_EXTRA_COLUMN, None)
            event = {key: value for key, value in row.items() if value is not None}
            if extra:
                event = {**json.loads(extra), **event}
            yield event


def read_located_records(
    path: str | Path,
    validate: Validator,
    dead_letter: DeadLetter | ReportedElsewhere | None,
    strict: bool = False,
) -> Iterator[tuple[str, int, dict[str, Any]]]:
    """Yield `(source, line_no, record)` over a file or every part of a folder (`record_parts`); a Parquet part's
    line is its row number from 1. Bad records go to `dead_letter` as in `read_records`."""
    for part in record_parts(path):
        if part.name.endswith(".parquet"):
            rows: Iterable[tuple[int, dict[str, Any]]] = _validated_rows(part, validate, dead_letter, strict)
        else:
            rows = read_records(part, validate, dead_letter, strict)
        source = str(part)
        for line_no, record in rows:
            yield source, line_no, record


def _validated_rows(
    part: Path, validate: Validator, dead_letter: DeadLetter | ReportedElsewhere | None, strict: bool
) -> Iterator[tuple[int, dict[str, Any]]]:
    if dead_letter is None and not strict:
        raise ValueError("read_located_records needs a dead letter unless strict=True")
    for row_no, row in enumerate(parquet_rows(part), start=1):
        try:
            record = validate(row)
        except RecordError as error:
            if strict:
                raise LocatedRecordError(str(part), row_no, error.field, error.reason, error.detail) from None
            assert dead_letter is not None
            dead_letter.add(str(part), row_no, error, json.dumps(row, ensure_ascii=False))
            continue
        yield row_no, record
