"""The two-pass pairs job that the DuckDB and Spark engines share (docs/data.md, "Pairs at any size").

1. A streaming Python pass validates each event with the very validator of the in-memory path
   (`pintext.schemas.validate_event`, so a bad line is dead-lettered with the same file, line, field, reason and
   raw text), classifies it with the shared rules (`pintext.ingest.pairs.rules.classify_engagement`) and writes
   one compact row per valid event to Parquet parts in a work folder, 100,000 rows at a time. Nothing grows with
   the log but the pins and users (the catalogue, held as the in-memory path holds them).
2. An engine's `Aggregation` (DuckDB: `duckdb_engine`, Spark: `spark_engine`) does the part whose state grows
   with the log: the dedupe by `event_id` (first seen), the strongest action per (task, anchor, pin, user),
   hides, counts and weights, `min_count`, the per-anchor cap with the in-memory path's tie order.

Rejections that depend on the dedupe (a search query without words, an unknown homefeed user: only a first-seen
event is rejected) come out of the aggregation and are merged by line with the first pass's, so the dead letter is
the same file, in the same order, as the in-memory path's.

Events may be JSONL (plain or .gz), Parquet (one row per event; `line` is the row number, from 1), or a folder of
such parts (`pintext.ingest.readers.record_parts`, read in name order, as the in-memory path reads it).
"""

from __future__ import annotations

import heapq
import json
import shutil
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

from pintext.constants import HOMEFEED, RELATED, SEARCH, TASKS
from pintext.ingest.deadletter import DeadLetter
from pintext.ingest.pairs.folder import EVENTS_REJECTED_FILE, build_aside, write_events_build
from pintext.ingest.pairs.rules import (
    ENGAGED,
    REJECTED,
    Pair,
    PairOptions,
    classify_engagement,
    load_pins,
    load_users,
)
from pintext.ingest.readers import parquet_rows, parse_line, raw_lines, record_parts
from pintext.schemas import LocatedRecordError, RecordError, pin_text, validate_event

#: Rows per Parquet part written by the first pass (and per batch read back).
BATCH_ROWS = 100_000
IMPRESSION = "impression"

_COLUMNS = ("seq", "event_id", "action", "outcome", "task", "user_id", "pin_id", "anchor_id", "anchor",
            "err_field", "err_reason", "err_detail", "raw")


# ------------------------------------------------------------------------------------ pass 1: validate


#: A row's place in the input: (part index << LINE_BITS) | line, so that ordering by it is file order.
LINE_BITS = 40


def seq_of(part: int, line: int) -> int:
    return (part << LINE_BITS) | line


def located(sources: list[str], seq: int) -> tuple[str, int]:
    """The (file, line) of a row's `seq`."""
    return sources[seq >> LINE_BITS], seq & ((1 << LINE_BITS) - 1)


def _event_lines(path: Path) -> Iterator[tuple[int, int, Any, str | bytes]]:
    """(part index, line, parsed object or raw bytes, raw) for each record of a JSONL(.gz) or Parquet events file,
    or of every part of a folder (`pintext.ingest.readers.record_parts`: name order, as the in-memory path)."""
    for part, file in enumerate(record_parts(path)):
        if file.name.endswith(".parquet"):
            for line, row in enumerate(parquet_rows(file), start=1):
                yield part, line, row, json.dumps(row, ensure_ascii=False, default=str)
            continue
        for line, raw in raw_lines(file):  # a damaged .gz ends with its RecordError, dead-lettered as one entry
            if isinstance(raw, RecordError):
                yield part, line, raw, ""
            elif raw.strip():
                yield part, line, raw, raw


class _PartWriter:
    """Buffers first-pass rows and writes them as numbered Parquet parts."""

    def __init__(self, folder: Path) -> None:
        import pyarrow as pa

        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.schema = pa.schema([("seq", pa.int64())] + [(name, pa.string()) for name in _COLUMNS[1:]])
        self.buffer: dict[str, list[Any]] = {name: [] for name in _COLUMNS}
        self.parts = 0
        self.rows = 0

    def add(self, seq: int, event_id: str, action: str, outcome: str | None = None, task: str | None = None,
            user_id: str | None = None, pin_id: str | None = None, anchor_id: str | None = None,
            anchor: str | None = None, error: RecordError | None = None, raw: str | None = None) -> None:
        values = (seq, event_id, action, outcome, task, user_id, pin_id, anchor_id, anchor,
                  error.field if error else None, error.reason if error else None,
                  error.detail if error else None, raw)
        for name, value in zip(_COLUMNS, values):
            self.buffer[name].append(value)
        self.rows += 1
        if len(self.buffer["seq"]) >= BATCH_ROWS:
            self.flush()

    def flush(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if not self.buffer["seq"]:
            return
        table = pa.table({name: pa.array(values, type=self.schema.field(name).type)
                          for name, values in self.buffer.items()}, schema=self.schema)
        pq.write_table(table, self.folder / f"part-{self.parts:06d}.parquet")
        self.parts += 1
        self.buffer = {name: [] for name in _COLUMNS}

    @property
    def glob(self) -> str:
        return str(self.folder / "part-*.parquet")


def _first_pass(events: Path, pins: dict[str, dict[str, Any]], users: dict[str, list[str]] | None,
                options: PairOptions, early: DeadLetter, parts: _PartWriter,
                progress: Callable[[int], None] | None) -> tuple[int, LocatedRecordError] | None:
    """Validate and classify every event into `parts`; schema rejections go to `early` (the dead letter of this
    pass). With `strict`, stops at the first schema error and returns it (the caller decides whether an earlier
    first-seen rejection wins)."""
    sources = [str(file) for file in record_parts(events)]
    known = set(pins)
    search_anchor = lru_cache(maxsize=200_000)(lambda query: classify_engagement(
        {"surface": SEARCH, "user_id": "", "pin_id": "", "query": query}, pins, users))
    for part, line, parsed, raw in _event_lines(events):
        seq = seq_of(part, line)
        try:
            if isinstance(parsed, RecordError):
                raise parsed
            if isinstance(parsed, bytes):
                event = parse_line(parsed, lambda obj: validate_event(obj, known_pins=known))
            else:
                event = validate_event(parsed, known_pins=known)
        except RecordError as error:
            if options.strict:
                return seq, error.located(sources[part], line)
            early.add(sources[part], line, error, raw)
            continue
        event_id, action = event["event_id"], event["action"]
        if progress and (parts.rows + 1) % 10_000 == 0:
            progress(parts.rows + 1)
        if action == IMPRESSION:
            parts.add(seq, event_id, action)
            continue
        task = event["surface"]
        if task == SEARCH:
            outcome, anchor_id, anchor, problem = search_anchor(event["query"])
        else:
            outcome, anchor_id, anchor, problem = classify_engagement(event, pins, users)
            anchor = None  # related and homefeed anchors are a function of the id: looked up at the end
        if problem is not None:
            parts.add(seq, event_id, action, REJECTED, error=problem, raw=json.dumps(event, ensure_ascii=False))
        elif outcome != ENGAGED:
            parts.add(seq, event_id, action, outcome)
        else:
            parts.add(seq, event_id, action, ENGAGED, task, event["user_id"], event["pin_id"], anchor_id, anchor)
    return None


Rejection = tuple[int, str, str, "str | None", str]  # seq, field, reason, detail, raw


def _read_entries(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        for text in handle:
            yield json.loads(text)


def _merge_dead_letters(early: Path, late: Iterator[Rejection], sources: list[str], dead_letter: DeadLetter) -> None:
    """Both streams are in file order: merged, they are the in-memory path's events dead letter."""
    part_of = {source: part for part, source in enumerate(sources)}
    early_entries = ((seq_of(part_of[entry["source"]], entry["line"]), entry) for entry in _read_entries(early))
    late_entries = ((seq, {"source": located(sources, seq)[0], "line": located(sources, seq)[1], "field": field,
                           "reason": reason, "detail": detail, "raw": raw})
                    for seq, field, reason, detail, raw in late)
    for _seq, entry in heapq.merge(early_entries, late_entries, key=lambda item: item[0]):
        error = RecordError(entry["field"], entry["reason"], entry["detail"])
        dead_letter.add(entry["source"], entry["line"], error, entry["raw"])


def pairs_from_rows(rows: Iterable[tuple[str, str, str | None, str, int, float]], pins: dict[str, dict[str, Any]],
                    users: dict[str, list[str]] | None) -> dict[str, list[Pair]]:
    """Pairs per task from (task, anchor_id, search anchor text, pin_id, count, weight) rows in output order:
    related and homefeed anchors are looked up here (they are a function of the id)."""
    texts = {pin_id: pin_text(pin) for pin_id, pin in pins.items()}
    result: dict[str, list[Pair]] = {task: [] for task in TASKS}
    for task, anchor_id, anchor, pin_id, count, weight in rows:
        if task == RELATED:
            anchor = texts[anchor_id]
        elif task == HOMEFEED:
            anchor = ", ".join((users or {})[anchor_id])
        result[task].append(Pair(anchor or "", texts[pin_id], anchor_id, pin_id, int(count), float(weight)))
    return result


class Aggregation(Protocol):
    """What an engine does after the first pass, over its Parquet parts (`DuckDBAggregation`, `SparkAggregation`)."""

    engine: dict[str, Any]

    def load(self, parts: Path) -> None: ...
    def first_late_error(self) -> Rejection | None: ...
    def count(self, counters: Counter[str]) -> None: ...
    def late_rejections(self) -> Iterator[Rejection]: ...
    def kept_rows(self) -> Iterator[tuple[str, str, str | None, str, int, float]]: ...
    def close(self) -> None: ...


def build_two_pass(events: Path, pins: Path, users: Path | None, out_dir: Path, options: PairOptions,
                   progress: Callable[[int], None] | None, work: Path,
                   aggregation: Callable[[Path], Aggregation]) -> dict[str, Any]:
    """The first pass, then `aggregation(work)` over its parts: the pairs folder of every two-pass engine."""
    out_dir = Path(out_dir).resolve()

    def fill(folder: Path) -> dict[str, Any]:
        counters: Counter[str] = Counter()
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        with DeadLetter(folder / EVENTS_REJECTED_FILE) as dead_letter:
            pin_records = load_pins(Path(pins), dead_letter, options.strict, counters)
            user_records = load_users(Path(users), dead_letter, options.strict, counters) if users else None
            counters["pins"], counters["users"] = len(pin_records), len(user_records or {})
            parts = _PartWriter(work / "events")
            with DeadLetter(work / "early-rejected.jsonl") as early:
                schema_error = _first_pass(Path(events), pin_records, user_records, options, early, parts, progress)
            sources = [str(file) for file in record_parts(events)]
            parts.flush()
            engine = aggregation(work)
            try:
                if parts.parts:
                    engine.load(parts.folder)
                if options.strict:  # the first bad record in file order, as the in-memory path raises it
                    late = engine.first_late_error() if parts.parts else None
                    if late is not None and (schema_error is None or late[0] < schema_error[0]):
                        raise LocatedRecordError(*located(sources, late[0]), late[1], late[2], late[3])
                    if schema_error is not None:
                        raise schema_error[1]
                pairs_by_task: dict[str, list[Pair]] = {task: [] for task in TASKS}
                late_rejections: Iterator[Rejection] = iter(())
                if parts.parts:
                    engine.count(counters)
                    late_rejections = engine.late_rejections()
                _merge_dead_letters(early.path, late_rejections, sources, dead_letter)
                if parts.parts:
                    pairs_by_task = pairs_from_rows(engine.kept_rows(), pin_records, user_records)
            finally:
                engine.close()
        inputs = tuple(Path(path) for path in (events, pins, users) if path is not None)
        return write_events_build(folder, pairs_by_task, user_records is not None, pin_records, inputs, counters,
                                  dead_letter, options, engine.engine)

    try:
        return build_aside(out_dir, fill)
    finally:
        shutil.rmtree(work, ignore_errors=True)
