"""Click logs with a column mapping -> events (and pins) in the project's own schema, for the pairs step.

`pintext pairs --events LOG --map query=<col>,pin_id=<col>[,...] --pins PINS [--pins-map id=<col>,title=<col>]`
reads a click log that is not in the events schema (CSV, TSV, Parquet or JSONL, by extension or `--format`),
maps its columns onto event fields, and writes a normalized `events.jsonl` (and, with `--pins-map`, a
`pins.jsonl`) into a work folder; the pairs step then reads those like any other events and pins.

Mapping (`parse_map`): `field=column` pairs, comma-separated. A column is a header name, or, when every column of
a map is a number, a 1-based position in a file without a header line (`id=1,title=2` for a `sku<TAB>name` file).

Defaults for fields the map does not name (docs/data.md, "Click logs"):
- `action`: `--action` (default `click`); a mapped action column must hold impression|click|save|hide.
- `event_id`: a stable hash of the row's line (row number for Parquet) and its mapped values, so a re-run makes
  the same ids (and the pairs step dedupes a file read twice).
- `ts`: the mapped column as ISO-8601 (`YYYY-MM-DD HH:MM:SS[.fff]`, naive = UTC) or epoch seconds (above 1e11:
  milliseconds); without a `ts` column, the row's line number.
- `user_id`: without a column, `anonymous-<line>`: every row is its own user (each click counts once).
- `surface`: `--surface` (search: needs `query`; related: needs `subject_pin_id`).

Every row is used or rejected: a missing or empty mapped value, an unparsable timestamp, a value that breaks the
events schema, or (when the pins are known) an unknown pin goes to the work folder's `rejected.jsonl` with the
log's file, line (CSV/TSV/JSONL line, Parquet row) and field. A map naming a column the file lacks is one
`ClickLogError` naming the column and the columns the file has, raised on the header before any row is read.

Readers: the standard library's `csv` (exact line numbers for the dead letter, streamed, gzip through
`open_binary`) and pyarrow for Parquet (record batches, so memory stays bounded); JSONL line by line.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

from pintext.constants import RELATED, SEARCH
from pintext.ingest.deadletter import DeadLetter
from pintext.ingest.readers import ReportedElsewhere, open_binary, parse_line, read_records
from pintext.schemas import (
    ACTIONS,
    WHOLE_RECORD,
    RecordError,
    parse_timestamp,
    validate_event,
    validate_pin,
)

EVENT_FIELDS = ("query", "pin_id", "user_id", "ts", "action", "event_id", "subject_pin_id")
PIN_FIELDS = ("id", "title", "description", "board", "link")
FORMATS = ("csv", "tsv", "parquet", "jsonl")
SURFACES = (SEARCH, RELATED)
EVENTS_FILE = "events.jsonl"
PINS_FILE = "pins.jsonl"
REJECTED_FILE = "rejected.jsonl"
SUMMARY_FILE = "summary.json"
#: The field each normalized event gets with the log's file and line, so a later rejection can be traced back.
LOG_LINE = "log_line"


class ClickLogError(ValueError):
    """Bad usage or a file that cannot be read as mapped: one line, naming the file and what is wrong."""


@dataclass(frozen=True)
class ColumnMap:
    """`field -> column` (a header name, or a 1-based position when `positional`)."""

    columns: dict[str, str]
    positional: bool = False

    def column_of(self, name: str) -> str | None:
        return self.columns.get(name)


def parse_map(text: str, allowed: Sequence[str], option: str = "--map") -> ColumnMap:
    """`"query=q,pin_id=sku"` -> ColumnMap; unknown fields, repeats and a mix of names and positions are errors."""
    columns: dict[str, str] = {}
    for part in (piece.strip() for piece in text.split(",")):
        if not part:
            continue
        name, sep, column = (item.strip() for item in part.partition("="))
        if not sep or not name or not column:
            raise ClickLogError(f"{option} {text!r}: {part!r} is not FIELD=COLUMN")
        if name not in allowed:
            raise ClickLogError(f"{option}: unknown field {name!r} (fields: {', '.join(allowed)})")
        if name in columns:
            raise ClickLogError(f"{option}: field {name!r} is mapped twice")
        columns[name] = column
    if not columns:
        raise ClickLogError(f"{option} is empty: give FIELD=COLUMN pairs, e.g. query=q,pin_id=sku")
    numeric = [column.isdigit() for column in columns.values()]
    if any(numeric) and not all(numeric):
        raise ClickLogError(f"{option} {text!r}: use either column names (a file with a header) or 1-based "
                            "positions (a file without one), not both")
    if all(numeric) and any(int(column) < 1 for column in columns.values()):
        raise ClickLogError(f"{option} {text!r}: positions start at 1")
    return ColumnMap(columns, positional=all(numeric))


def detect_format(path: Path, forced: str | None = None) -> str:
    """csv, tsv, parquet or jsonl from `forced` or the file name (a `.gz` suffix is looked through)."""
    if forced:
        if forced not in FORMATS:
            raise ClickLogError(f"--format {forced!r}: use one of {', '.join(FORMATS)}")
        return forced
    name = path.name.lower().removesuffix(".gz")
    for suffixes, kind in (((".csv",), "csv"), ((".tsv", ".tab"), "tsv"), ((".parquet", ".pq"), "parquet"),
                           ((".jsonl", ".ndjson", ".json"), "jsonl")):
        if name.endswith(suffixes):
            return kind
    raise ClickLogError(f"{path}: cannot tell the format from the name; pass --format {'|'.join(FORMATS)}")


# ----------------------------------------------------------------------------------------------- readers


def _text_handle(path: Path) -> io.TextIOWrapper:
    # surrogateescape: a byte that is not UTF-8 survives into the value, which is then rejected (never replaced)
    return io.TextIOWrapper(open_binary(path), encoding="utf-8", errors="surrogateescape", newline="")


def _parquet_file(path: Path) -> Any:
    try:
        import pyarrow.parquet as pq
    except ImportError:  # pragma: no cover - pyarrow comes with datasets (the data extra)
        raise ClickLogError("reading Parquet needs pyarrow: pip install 'pintext[data]'") from None
    try:
        return pq.ParquetFile(path)
    except Exception as error:  # pyarrow raises ArrowInvalid / OSError for a file that is not Parquet
        raise ClickLogError(f"{path}: not a Parquet file ({error})") from None


def file_columns(path: Path, kind: str, positional: bool) -> list[str]:
    """The columns a file offers: its header (CSV/TSV), schema (Parquet) or first record's keys (JSONL);
    for a positional map the positions "1".."n" of the first row."""
    if kind in ("csv", "tsv"):
        with _text_handle(path) as handle:
            first = next(csv.reader(handle, delimiter="\t" if kind == "tsv" else ","), None)
        if first is None:
            raise ClickLogError(f"{path}: empty file (no header line)")
        return [str(position) for position in range(1, len(first) + 1)] if positional else first
    if kind == "parquet":
        names = list(_parquet_file(path).schema_arrow.names)
        return [str(position) for position in range(1, len(names) + 1)] if positional else names
    if positional:
        raise ClickLogError(f"{path}: a JSONL file has named fields, not positions: map fields to key names")
    with open_binary(path) as handle:
        for line_no, raw in enumerate(handle, start=1):
            if raw.strip():
                try:
                    record = json.loads(raw)
                except (UnicodeDecodeError, json.JSONDecodeError) as error:
                    raise ClickLogError(f"{path}:{line_no}: the first record is not valid JSON ({error})") from None
                if not isinstance(record, dict):
                    raise ClickLogError(f"{path}:{line_no}: the first record is not a JSON object")
                return list(record)
    raise ClickLogError(f"{path}: empty file (no record)")


def check_columns(path: Path, kind: str, mapping: ColumnMap, option: str = "--map") -> list[str]:
    """The header check: every mapped column is in the file, else one error naming it and the file's columns."""
    have = file_columns(path, kind, mapping.positional)
    missing = [f"{name}={column}" for name, column in mapping.columns.items() if column not in have]
    if missing:
        shown = f"{len(have)} columns" if mapping.positional else "columns: " + ", ".join(have)
        raise ClickLogError(f"{path}: {option} names {'a column' if len(missing) == 1 else 'columns'} the file "
                            f"lacks: {', '.join(missing)} (the file has {shown})")
    return have


def iter_rows(path: Path, kind: str, mapping: ColumnMap) -> Iterator[tuple[int, dict[str, Any], str]]:
    """(line or row number, {field: raw value or None}, raw text for the dead letter) for every row."""
    wanted = mapping.columns
    if kind in ("csv", "tsv"):
        with _text_handle(path) as handle:
            reader = csv.reader(handle, delimiter="\t" if kind == "tsv" else ",")
            if mapping.positional:
                index = {name: int(column) - 1 for name, column in wanted.items()}
            else:
                header = next(reader)
                position = {column: i for i, column in reversed(list(enumerate(header)))}
                index = {name: position[column] for name, column in wanted.items()}
            while True:
                try:
                    row = next(reader)
                except StopIteration:
                    break
                except csv.Error as error:  # e.g. a field over csv.field_size_limit(): that row only
                    yield reader.line_num, {WHOLE_RECORD: RecordError(WHOLE_RECORD, "not valid CSV", str(error))}, ""
                    continue
                if not row:
                    continue  # a blank line is not a record
                values = {name: row[i] if i < len(row) else None for name, i in index.items()}
                yield reader.line_num, values, ("\t" if kind == "tsv" else ",").join(row)
        return
    if kind == "parquet":
        parquet = _parquet_file(path)
        names = list(parquet.schema_arrow.names)
        by_name = ({name: names[int(column) - 1] for name, column in wanted.items()} if mapping.positional
                   else dict(wanted))
        number = 0
        for batch in parquet.iter_batches(batch_size=10_000, columns=sorted(set(by_name.values()))):
            for row in batch.to_pylist():
                number += 1
                yield number, {name: row.get(column) for name, column in by_name.items()}, json.dumps(
                    row, ensure_ascii=False, default=str)
        return
    with open_binary(path) as handle:
        for line_no, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                record = parse_line(raw, _json_object)
            except RecordError as error:
                yield line_no, {WHOLE_RECORD: error}, raw.decode("utf-8", errors="replace")
                continue
            yield line_no, {name: record.get(column) for name, column in wanted.items()}, raw.decode("utf-8")


def _json_object(obj: Any) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise RecordError(WHOLE_RECORD, "not a JSON object", f"got {type(obj).__name__}")
    return obj


# ---------------------------------------------------------------------------------------------- mapping


def _text_value(values: dict[str, Any], name: str, column: str) -> str:
    """A mapped value as a non-empty string (numbers become their decimal text), else a RecordError."""
    value = values.get(name)
    if value is None:
        raise RecordError(name, "missing", f"no value in column {column!r}")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, (datetime, date)):
        value = value.isoformat()
    text = str(value).strip()
    if not text:
        raise RecordError(name, "empty", f"column {column!r} is empty")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise RecordError(name, "not valid UTF-8", f"column {column!r}") from None
    return text


def timestamp_of(value: Any, column: str) -> float:
    """Epoch seconds from ISO-8601 / `YYYY-MM-DD HH:MM:SS[.fff]` text, a datetime, or epoch seconds (number or
    digits; above 1e11 milliseconds)."""
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=timezone.utc)).timestamp()
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return parse_timestamp(value)
        if not math.isfinite(number):
            raise RecordError("ts", "not a timestamp", f"column {column!r}: got {value!r}")
        return parse_timestamp(number)
    return parse_timestamp(value)


def event_id_of(line: int, values: dict[str, str]) -> str:
    """The default event id: a hash of the row's line/number and its mapped values (same row, same id)."""
    key = "\x1f".join([str(line), *(f"{name}={values[name]}" for name in sorted(values))])
    return "e" + hashlib.blake2b(key.encode("utf-8"), digest_size=10).hexdigest()


@dataclass
class ClickLogOptions:
    """How a click log's rows become events (defaults for what the map does not name)."""

    mapping: ColumnMap
    surface: str = SEARCH
    action: str = "click"
    format: str | None = None

    def __post_init__(self) -> None:
        if self.surface not in SURFACES:
            raise ClickLogError(f"--surface {self.surface!r}: a click log maps to search or related "
                                "(homefeed needs a users file)")
        if self.action not in ACTIONS:
            raise ClickLogError(f"--action {self.action!r}: use one of {'|'.join(ACTIONS)}")
        needed = ["pin_id", "query" if self.surface == SEARCH else "subject_pin_id"]
        absent = [name for name in needed if name not in self.mapping.columns]
        if absent:
            raise ClickLogError(f"--map needs {' and '.join(absent)} for --surface {self.surface} "
                                f"(e.g. --map {'query=q' if self.surface == SEARCH else 'subject_pin_id=from'},"
                                "pin_id=sku)")


def map_event(line: int, values: dict[str, Any], options: ClickLogOptions, source: str) -> dict[str, Any]:
    """One row -> one event in the events schema (validated), or a RecordError naming the field."""
    if WHOLE_RECORD in values:
        raise values[WHOLE_RECORD]
    columns = options.mapping.columns
    text = {name: _text_value(values, name, column) for name, column in columns.items() if name != "ts"}
    event: dict[str, Any] = {
        "event_id": text.get("event_id") or event_id_of(line, text | {"ts": str(values.get("ts"))}),
        "ts": float(line),
        "user_id": text.get("user_id") or f"anonymous-{line}",
        "surface": options.surface,
        "action": text.get("action", options.action).lower(),
        "pin_id": text["pin_id"],
    }
    if "ts" in columns:
        raw = values.get("ts")
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            raise RecordError("ts", "missing" if raw is None else "empty", f"no value in column {columns['ts']!r}")
        event["ts"] = timestamp_of(raw, columns["ts"])
    if options.surface == SEARCH:
        event["query"] = text["query"]
    else:
        event["subject_pin_id"] = text["subject_pin_id"]
        if "query" in text:
            event["query"] = text["query"]
    event[LOG_LINE] = f"{source}:{line}"
    return validate_event(event)


def map_pin(values: dict[str, Any], mapping: ColumnMap) -> dict[str, Any]:
    pin: dict[str, Any] = {"id": _text_value(values, "id", mapping.columns["id"])}
    for name in PIN_FIELDS[1:]:
        if name in mapping.columns and values.get(name) not in (None, ""):
            pin[name] = _text_value(values, name, mapping.columns[name])
    return validate_pin(pin)


# ---------------------------------------------------------------------------------------------- the job


@dataclass
class Converted:
    """What `convert_click_log` wrote: the files the pairs step reads, and the counts of every row."""

    events: Path
    pins: Path
    work: Path
    counters: Counter[str] = field(default_factory=Counter)
    rejected_by_reason: dict[str, int] = field(default_factory=dict)
    defaults: list[str] = field(default_factory=list)

    def summary_line(self) -> str:
        c = self.counters
        pins = f"; pins {c['pin_rows']} rows, {c['pins_written']} written, {c['pin_rows_rejected']} rejected" \
            if c["pin_rows"] else ""
        defaults = f" (defaults: {'; '.join(self.defaults)})" if self.defaults else ""
        return (f"click log: {c['rows']} rows, {c['events_written']} events, {c['rows_rejected']} rejected{pins} "
                f"-> {self.work / REJECTED_FILE}{defaults}")


def _default_notes(options: ClickLogOptions) -> list[str]:
    columns = options.mapping.columns
    notes = []
    if "action" not in columns:
        notes.append(f"action={options.action}")
    if "event_id" not in columns:
        notes.append("event_id=hash of line and values")
    if "ts" not in columns:
        notes.append("ts=line number")
    if "user_id" not in columns:
        notes.append("user_id=anonymous-<line> (each row its own user)")
    return notes


def convert_pins(path: Path, mapping: ColumnMap, kind: str | None, out: Path, dead_letter: DeadLetter,
                 counters: Counter[str], strict: bool = False) -> dict[str, dict[str, Any]]:
    """A product file (CSV/TSV/Parquet/JSONL) -> pins.jsonl through `--pins-map`; returns the pins by id."""
    if "id" not in mapping.columns or not {"title", "description"} & set(mapping.columns):
        raise ClickLogError("--pins-map needs id and title (or description), e.g. id=sku,title=name or id=1,title=2")
    kind = detect_format(path, kind)
    check_columns(path, kind, mapping, "--pins-map")
    pins: dict[str, dict[str, Any]] = {}
    for line, values, raw in iter_rows(path, kind, mapping):
        counters["pin_rows"] += 1
        try:
            pin = map_pin(values, mapping)
        except RecordError as error:
            if strict:
                raise error.located(str(path), line) from None
            dead_letter.add(str(path), line, error, raw)
            counters["pin_rows_rejected"] += 1
            continue
        if pin["id"] in pins:
            counters["pins_duplicate_id"] += 1
        pins[pin["id"]] = pin
    with out.open("w", encoding="utf-8") as handle:
        for pin in pins.values():
            handle.write(json.dumps(pin, ensure_ascii=False) + "\n")
    counters["pins_written"] = len(pins)
    return pins


def convert_click_log(log: Path, pins: Path, work: Path, options: ClickLogOptions,
                      pins_map: ColumnMap | None = None, pins_format: str | None = None,
                      strict: bool = False) -> Converted:
    """Write `work/events.jsonl` (and `work/pins.jsonl` with a pins map) from a mapped click log.

    Both header checks run before any row is read. Pins are known here (from the mapped product file, or the
    pins JSONL given), so an unknown pin is rejected with the log's own file and line. `work/rejected.jsonl` is
    rewritten; `work/summary.json` counts every row.
    """
    log, pins = Path(log), Path(pins)
    for path in (log, pins):
        if not path.is_file():
            raise FileNotFoundError(2, "no such file", str(path))
    kind = detect_format(log, options.format)
    check_columns(log, kind, options.mapping)
    if pins_map is not None:
        pins_kind = detect_format(pins, pins_format)
        check_columns(pins, pins_kind, pins_map, "--pins-map")
    work.mkdir(parents=True, exist_ok=True)
    (work / REJECTED_FILE).unlink(missing_ok=True)
    result = Converted(work / EVENTS_FILE, work / PINS_FILE if pins_map else pins, work,
                       defaults=_default_notes(options))
    counters = result.counters
    with DeadLetter(work / REJECTED_FILE) as dead_letter:
        if pins_map is not None:
            known: set[str] = set(convert_pins(pins, pins_map, pins_format, work / PINS_FILE, dead_letter, counters,
                                               strict))
        else:
            known = {pin["id"] for _, pin in read_records(pins, validate_pin, ReportedElsewhere())}
        source = str(log)
        partial = work / (EVENTS_FILE + ".partial")
        with partial.open("w", encoding="utf-8") as handle:
            for line, values, raw in iter_rows(log, kind, options.mapping):
                counters["rows"] += 1
                try:
                    event = map_event(line, values, options, source)
                    for name in ("pin_id", "subject_pin_id"):
                        if name in event and event[name] not in known:
                            raise RecordError(name, "unknown pin", f"got {event[name]!r}")
                except RecordError as error:
                    if strict:
                        raise error.located(source, line) from None
                    dead_letter.add(source, line, error, raw)
                    counters["rows_rejected"] += 1
                    continue
                handle.write(json.dumps(event, ensure_ascii=False) + "\n")
                counters["events_written"] += 1
        partial.replace(result.events)
        result.rejected_by_reason = dict(dead_letter.by_reason)
    summary = {"log": source, "format": kind, "map": options.mapping.columns, "surface": options.surface,
               "defaults": result.defaults, "pins": str(pins), "pins_map": pins_map.columns if pins_map else None,
               "counters": dict(counters), "rejected_by_reason": result.rejected_by_reason,
               "rejected_file": str(work / REJECTED_FILE), "events_file": str(result.events)}
    (work / SUMMARY_FILE).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return result


def work_folder(out: Path) -> Path:
    """Where the normalized files go: next to the pairs folder (which is swapped in whole), `<out>.clicklog/`."""
    out = Path(out)
    return out.parent / f"{out.name}.clicklog"


__all__ = ["ClickLogError", "ClickLogOptions", "ColumnMap", "Converted", "EVENT_FIELDS", "PIN_FIELDS", "FORMATS",
           "parse_map", "detect_format", "check_columns", "iter_rows", "map_event", "convert_click_log",
           "work_folder", "event_id_of", "timestamp_of"]
