"""Kafka adapters: collect engagement events from a topic into JSONL, and replay a JSONL file into a topic.

The collector is at-least-once: it validates a batch, appends the valid events to `events.jsonl` and the bad
messages to the dead letter, fsyncs both, and only then commits the batch's offsets. A crash between the write
and the commit loses nothing; the batch is read again and its events appear twice, which the pairs step
absorbs by deduplicating on `event_id`. A crash in the middle of a write can leave a torn last line; it is
cut off when the file is opened again (its message was never committed, so it is re-read).

With `--roll-bytes` / `--roll-seconds` / `--format parquet` the collector writes parts instead: a folder of
`events-<collector id>-<seq>.jsonl` (or `.parquet`) that `pintext pairs --events FOLDER` reads in name order. The
open part has a hidden temporary name and is renamed when closed; only closed parts are read. A JSONL part is
fsynced before each batch's commit (so a crash's open part holds committed events: it is repaired to whole lines
and closed on restart, by the collector itself or by any collector of the folder once its owner's lock is free);
a Parquet part is only durable once closed, so its offsets are committed after the close and rename (a crash's
open Parquet part is deleted: its offsets were never committed, its events are read again). Several collectors
in one consumer group share a folder, each with its own collector id; on a rebalance, what is on disk is
committed before the partitions go (`on_revoke`).

confluent-kafka is imported inside the functions that talk to a broker, so the pure parts (consumer config,
message -> record, partition key) can be used and tested without it.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import socket
import time
from collections import Counter
from collections.abc import Callable, Container, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from pintext.ingest.deadletter import DeadLetter
from pintext.ingest.readers import (
    PARQUET_EVENT_COLUMNS,
    PARQUET_EXTRA_COLUMN,
    import_pyarrow_parquet,
    parse_line,
    raw_lines,
)
from pintext.schemas import WHOLE_RECORD, LocatedRecordError, RecordError, parse_timestamp, validate_event

EVENTS_FILE = "events.jsonl"
REJECTED_FILE = "rejected.jsonl"
DEFAULT_GROUP = "pintext-collect"
DEFAULT_BATCH_SIZE = 500
SESSION_TIMEOUT_MS = 10_000
# How long the first metadata request may take before the broker counts as unreachable.
CONNECT_TIMEOUT_S = 15.0
# The largest message produced or collected: librdkafka's default `message.max.bytes` (the broker's own limit is
# a little higher). An event is a few hundred bytes; a line over this is dead-lettered, never sent or kept.
MAX_MESSAGE_BYTES = 1_000_000
TOO_LARGE = "too large for a Kafka message"
# How long the collector keeps retrying while the broker is away (librdkafka reconnects by itself) before it gives up.
DEFAULT_BROKER_TIMEOUT_S = 120.0
# While the broker is away: the pause between two commit retries, and the longest wait between reconnect attempts.
RETRY_INTERVAL_S = 1.0
CLOSE_WHILE_AWAY_S = 5.0  # how long the end of a run waits for close() when the broker is gone (close_within)
RECONNECT_BACKOFF_MAX_MS = 1000
REQUEST_TIMEOUT_MS = 10_000
# While a commit's answer is awaited, the consumer is served in steps this long.
COMMIT_POLL_S = 0.01
# How long an idle-timeout run waits for the group to assign it partitions at all before giving up.
ASSIGNMENT_WAIT_S = 60.0
FORMATS = ("jsonl", "parquet")
# A Parquet part is held in memory until it closes; without --roll-* it closes at this many bytes of JSON events.
DEFAULT_PARQUET_ROLL_BYTES = 64 * 1024 * 1024
# How long a starting collector waits for its own id's lock (held briefly by another collector closing its orphan).
LOCK_WAIT_S = 10.0
_COLLECTOR_ID = re.compile(r"^[A-Za-z0-9_.]+$")
_PART_NAME = re.compile(r"^\.?events-(?P<id>[A-Za-z0-9_.]+)-(?P<seq>\d+)\.(?P<ext>jsonl|parquet)(?P<open>\.open)?$")


# ----------------------------------------------------------------------------------------------- pure parts


@dataclass(frozen=True)
class CollectorConfig:
    """What `pintext collect` was asked to do."""

    bootstrap: str
    topic: str
    out_dir: Path
    group: str = DEFAULT_GROUP
    max_messages: int | None = None
    idle_timeout_s: float | None = None
    batch_size: int = DEFAULT_BATCH_SIZE
    poll_timeout_s: float = 0.5
    strict: bool = False
    # Parts mode (any of these set): rolled part files per collector id instead of one events.jsonl.
    roll_bytes: int | None = None
    roll_seconds: float | None = None
    format: str = "jsonl"
    collector_id: str | None = None
    broker_timeout_s: float = DEFAULT_BROKER_TIMEOUT_S

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise ValueError(f"format must be one of {', '.join(FORMATS)}, not {self.format!r}")
        if self.collector_id is not None and not _COLLECTOR_ID.match(self.collector_id):
            raise ValueError(f"collector id {self.collector_id!r}: use letters, digits, '_' and '.' only")

    @property
    def parts(self) -> bool:
        """True when the collector writes rolled parts (a folder the pairs step reads) rather than events.jsonl."""
        return (self.roll_bytes is not None or self.roll_seconds is not None or self.format != "jsonl"
                or self.collector_id is not None)

    @property
    def writer_id(self) -> str:
        """The collector id naming this collector's parts, dead letter and lock (default: the host name)."""
        if self.collector_id is not None:
            return self.collector_id
        return re.sub(r"[^A-Za-z0-9_.]", "_", socket.gethostname()) or "collector"

    @property
    def events_path(self) -> Path:
        """events.jsonl, or in parts mode the folder of parts."""
        return self.out_dir if self.parts else self.out_dir / EVENTS_FILE

    @property
    def rejected_path(self) -> Path:
        return self.out_dir / (f"rejected-{self.writer_id}.jsonl" if self.parts else REJECTED_FILE)


def consumer_config(config: CollectorConfig) -> dict[str, Any]:
    """librdkafka settings of the collector's consumer."""
    return {
        "bootstrap.servers": config.bootstrap,
        "group.id": config.group,
        # Offsets are committed by hand, after the batch is on disk: that is the at-least-once guarantee.
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        # A new group starts from the beginning of the topic, so events produced before the first run count.
        "auto.offset.reset": "earliest",
        "enable.partition.eof": False,
        # A collector that crashed does not leave its group; until the broker notices (the session timeout,
        # 45 s by default) its partitions go to nobody, so a restart would idle. 10 s was Kafka's old default.
        "session.timeout.ms": SESSION_TIMEOUT_MS,
        "heartbeat.interval.ms": SESSION_TIMEOUT_MS // 4,
        # A restarted broker is found within a second, not after librdkafka's default 10 s backoff.
        "reconnect.backoff.max.ms": RECONNECT_BACKOFF_MAX_MS,
        # Bounds the one synchronous commit (in on_revoke) to a broker that just died: ~2x this, not 60 s.
        "socket.timeout.ms": REQUEST_TIMEOUT_MS,
    }


def message_location(partition: int, offset: int) -> str:
    """How a dead-letter entry names a message within its topic: `partition/offset`."""
    return f"{partition}/{offset}"


def message_to_record(value: bytes | None, known_pins: Container[str] | None = None) -> dict[str, Any]:
    """Decode, parse and validate one message value as an engagement event; failures raise `RecordError`.

    A poison message must never stop the collector (it would stop at the same offset on every run): anything a
    message can make the parser, the schema or the writer trip on is a `RecordError` here, so it is dead-lettered.
    """
    if value is None or not value.strip():
        raise RecordError(WHOLE_RECORD, "empty message")
    _require_size(value)
    try:
        # parse_line: not UTF-8 (a lone surrogate escape too), not JSON, nested too deeply -> RecordError.
        return parse_line(value, partial(validate_event, known_pins=known_pins))
    except OverflowError as error:  # e.g. an integer `ts` with 400 digits
        raise RecordError(WHOLE_RECORD, "number out of range", str(error)) from None


def _require_size(value: bytes) -> None:
    if len(value) > MAX_MESSAGE_BYTES:
        raise RecordError(WHOLE_RECORD, TOO_LARGE, f"{len(value):,} bytes, the limit is {MAX_MESSAGE_BYTES:,}")


def partition_key(raw: bytes) -> bytes | None:
    """The Kafka key of a line to produce: its `user_id`, so one user's events stay in order on one partition.

    A line that is not a JSON object with a string `user_id` gets no key (it is still sent, as-is).
    """
    try:
        obj = json.loads(raw)
    except (ValueError, RecursionError):  # not JSON, not UTF-8 (a ValueError too), or nested too deeply
        return None
    user_id = obj.get("user_id") if isinstance(obj, dict) else None
    return user_id.encode("utf-8") if isinstance(user_id, str) and user_id else None


def repair_torn_tail(path: Path) -> int:
    """Cut a last line that has no newline (a write cut short by a crash); returns the bytes removed."""
    if not path.exists():
        return 0
    with path.open("rb+") as handle:
        size = handle.seek(0, os.SEEK_END)
        if size == 0:
            return 0
        handle.seek(size - 1)
        if handle.read(1) == b"\n":
            return 0
        # Scan back in blocks for the last newline: the torn line is short, the file may be large.
        position = size
        keep = 0
        while position > 0:
            block_start = max(0, position - 65536)
            handle.seek(block_start)
            block = handle.read(position - block_start)
            newline = block.rfind(b"\n")
            if newline >= 0:
                keep = block_start + newline + 1
                break
            position = block_start
        handle.truncate(keep)
        return size - keep


def fsync_path(path: Path) -> None:
    """Force a file's written data to disk (fsync on a second descriptor syncs the same inode); on a folder, make
    the renames in it durable."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


# ----------------------------------------------------------------------------------------------- output


class EventFile:
    """Append-only `events.jsonl` whose writes can be made durable before offsets are committed."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.written = 0
        self.repaired_bytes = 0
        self._handle: IO[str] | None = None

    def __enter__(self) -> "EventFile":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.repaired_bytes = repair_torn_tail(self.path)
        self._handle = self.path.open("a", encoding="utf-8")
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def write(self, record: dict[str, Any]) -> None:
        assert self._handle is not None, "EventFile is used as a context manager"
        self._handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        self.written += 1

    def sync(self) -> bool:
        """Flush Python's buffer and fsync; True: what was written is durable (offsets may be committed)."""
        assert self._handle is not None
        self._handle.flush()
        os.fsync(self._handle.fileno())
        return True

    def due(self) -> bool:
        """events.jsonl never rolls."""
        return False

    def adopt_orphans(self) -> int:
        """events.jsonl has no peers' parts to close."""
        return 0

    def close_part(self) -> Path | None:
        """Nothing to close: events.jsonl is one file, durable after each `sync`."""
        return None


def part_name(collector_id: str, seq: int, fmt: str) -> str:
    """A closed part's file name: `events-<collector id>-<seq:06d>.<fmt>` (name order = write order per id)."""
    return f"events-{collector_id}-{seq:06d}.{fmt}"


def _open_name(collector_id: str, seq: int, fmt: str) -> str:
    return f".{part_name(collector_id, seq, fmt)}.open"


class CollectorIdInUse(RuntimeError):
    """Another live collector writes parts with this id in this folder."""


def _lock_path(out_dir: Path, collector_id: str) -> Path:
    return out_dir / f".collector-{collector_id}.lock"


def _try_lock(path: Path) -> int | None:
    """A descriptor holding an exclusive flock on `path`, or None when a live process holds it."""
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(descriptor)
        return None
    return descriptor


def _unlock(descriptor: int) -> None:
    fcntl.flock(descriptor, fcntl.LOCK_UN)
    os.close(descriptor)


@dataclass
class RecoveredParts:
    """What closing crashed collectors' open parts did."""

    closed: list[Path] = field(default_factory=list)  # JSONL open parts kept (committed events), renamed as done
    deleted: list[Path] = field(default_factory=list)  # Parquet (never committed) or empty open parts removed
    repaired_bytes: int = 0


def recover_open_parts(out_dir: Path, own_id: str | None = None, include_own: bool = True) -> RecoveredParts:
    """Close the open parts left by collectors that are gone (their lock is free), and `own_id`'s (whose lock the
    caller holds) unless `include_own` is False (a running collector adopting a dead peer's parts).

    A JSONL open part holds committed events: its torn last line is cut and it is renamed to its closed name.
    A Parquet open part never had its offsets committed (or is torn): it is deleted, its events are re-read.
    """
    recovered = RecoveredParts()
    by_id: dict[str, list[Path]] = {}
    for child in sorted(out_dir.glob(".events-*.open")):
        match = _PART_NAME.match(child.name)
        if match:
            by_id.setdefault(match["id"], []).append(child)
    for collector_id, paths in by_id.items():
        if collector_id == own_id and not include_own:
            continue
        lock = None if collector_id == own_id else _try_lock(_lock_path(out_dir, collector_id))
        if collector_id != own_id and lock is None:
            continue  # its collector is alive
        try:
            for path in paths:
                _recover_one(path, recovered)
        finally:
            if lock is not None:
                _unlock(lock)
    if recovered.closed or recovered.deleted:
        fsync_path(out_dir)
    return recovered


def _recover_one(path: Path, recovered: RecoveredParts) -> None:
    if path.name.endswith(".parquet.open"):
        path.unlink()
        recovered.deleted.append(path)
        return
    recovered.repaired_bytes += repair_torn_tail(path)
    if path.stat().st_size == 0:
        path.unlink()
        recovered.deleted.append(path)
        return
    fsync_path(path)
    closed = path.with_name(path.name[1:-len(".open")])
    path.rename(closed)
    recovered.closed.append(closed)


def _next_seq(out_dir: Path, collector_id: str) -> int:
    seqs = [int(match["seq"]) for child in out_dir.iterdir()
            if (match := _PART_NAME.match(child.name)) and match["id"] == collector_id]
    return max(seqs, default=0) + 1


class PartWriter:
    """Rolled event parts of one collector id in a folder; same interface as `EventFile`.

    `sync()` says whether everything written is durable: always for JSONL (fsync of the open part), only after a
    close for Parquet (events are buffered and written as one file when the part closes). `due()` is the roll
    condition; `close_part()` writes/fsyncs the open part, renames it to its closed name and fsyncs the folder.
    """

    def __init__(self, out_dir: Path, collector_id: str, fmt: str = "jsonl", roll_bytes: int | None = None,
                 roll_seconds: float | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        if fmt == "parquet":
            import_pyarrow_parquet()
        self.out_dir = out_dir
        self.collector_id = collector_id
        self.fmt = fmt
        self.roll_bytes = roll_bytes
        self.roll_seconds = roll_seconds
        self.written = 0
        self.repaired_bytes = 0
        self.recovered = RecoveredParts()
        self.closed_parts: list[Path] = []
        self._clock = clock
        self._lock: int | None = None
        self._seq = 0
        self._handle: IO[str] | None = None
        self._buffer: list[dict[str, Any]] = []
        self._part_bytes = 0
        self._opened_at = 0.0

    def __enter__(self) -> "PartWriter":
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self._lock = self._acquire_own_lock()
        self.recovered = recover_open_parts(self.out_dir, own_id=self.collector_id)
        self.repaired_bytes = self.recovered.repaired_bytes
        self._seq = _next_seq(self.out_dir, self.collector_id)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            if exc_type is None:
                self.close_part()
            elif self._handle is not None:  # left open: the next start (or another collector) recovers it
                self._handle.close()
                self._handle = None
        finally:
            if self._lock is not None:
                _unlock(self._lock)
                self._lock = None

    def _acquire_own_lock(self) -> int:
        path = _lock_path(self.out_dir, self.collector_id)
        deadline = time.monotonic() + LOCK_WAIT_S
        while True:
            descriptor = _try_lock(path)
            if descriptor is not None:
                return descriptor
            if time.monotonic() >= deadline:
                raise CollectorIdInUse(
                    f"collector id {self.collector_id!r} is in use in {self.out_dir} (another collector holds "
                    f"{path.name}): give each collector its own --collector-id"
                )
            time.sleep(0.1)  # a peer closing our orphan holds the lock for milliseconds

    @property
    def open_path(self) -> Path:
        return self.out_dir / _open_name(self.collector_id, self._seq, self.fmt)

    def write(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, ensure_ascii=False)
        if self._part_bytes == 0:
            self._opened_at = self._clock()
        if self.fmt == "parquet":
            self._buffer.append(record)
        else:
            if self._handle is None:
                self._handle = self.open_path.open("a", encoding="utf-8")
            self._handle.write(line + "\n")
        self._part_bytes += len(line.encode("utf-8")) + 1
        self.written += 1

    def sync(self) -> bool:
        if self.fmt == "parquet":
            return not self._buffer
        if self._handle is not None:
            self._handle.flush()
            os.fsync(self._handle.fileno())
        return True

    def adopt_orphans(self) -> int:
        """Close the open parts of collectors of this folder that died (on each assignment: a rebalance after a
        peer's crash); returns how many were closed or removed."""
        found = recover_open_parts(self.out_dir, self.collector_id, include_own=False)
        self.recovered.closed += found.closed
        self.recovered.deleted += found.deleted
        self.recovered.repaired_bytes += found.repaired_bytes
        return len(found.closed) + len(found.deleted)

    def due(self) -> bool:
        """True when the open part has events and reached `roll_bytes` (JSON bytes) or `roll_seconds` of age."""
        if self._part_bytes == 0:
            return False
        if self.roll_bytes is not None and self._part_bytes >= self.roll_bytes:
            return True
        return self.roll_seconds is not None and self._clock() - self._opened_at >= self.roll_seconds

    def close_part(self) -> Path | None:
        """Close the open part (if it has events) under its final name; returns that path."""
        if self._part_bytes == 0:
            return None
        if self.fmt == "parquet":
            self._write_parquet(self.open_path)
            self._buffer = []
        else:
            assert self._handle is not None
            self._handle.flush()
            os.fsync(self._handle.fileno())
            self._handle.close()
            self._handle = None
        closed = self.out_dir / part_name(self.collector_id, self._seq, self.fmt)
        self.open_path.rename(closed)
        fsync_path(self.out_dir)
        self.closed_parts.append(closed)
        self._seq += 1
        self._part_bytes = 0
        return closed

    def _write_parquet(self, path: Path) -> None:
        pq = import_pyarrow_parquet()
        import pyarrow as pa

        table = pa.Table.from_pylist([parquet_row(record) for record in self._buffer], schema=parquet_schema())
        with path.open("wb") as handle:
            pq.write_table(table, handle)
            handle.flush()
            os.fsync(handle.fileno())


def parquet_schema() -> Any:
    """The Arrow schema of an events Parquet part (readers.PARQUET_EVENT_COLUMNS + `extra`)."""
    import pyarrow as pa

    types = {"ts": pa.float64()}
    columns = [pa.field(name, types.get(name, pa.string())) for name in PARQUET_EVENT_COLUMNS]
    return pa.schema([*columns, pa.field(PARQUET_EXTRA_COLUMN, pa.string())])


def parquet_row(record: dict[str, Any]) -> dict[str, Any]:
    """A valid event as a Parquet row: `ts` as epoch seconds, fields outside the schema as a JSON `extra`."""
    row: dict[str, Any] = {name: record.get(name) for name in PARQUET_EVENT_COLUMNS}
    row["ts"] = parse_timestamp(record["ts"])
    extra = {key: value for key, value in record.items() if key not in PARQUET_EVENT_COLUMNS}
    row[PARQUET_EXTRA_COLUMN] = json.dumps(extra, ensure_ascii=False) if extra else None
    return row


# ----------------------------------------------------------------------------------------------- collect


@dataclass
class CollectStats:
    """What one collector run did."""

    consumed: int = 0
    written: int = 0
    rejected: int = 0
    rejected_by_reason: Counter[str] = field(default_factory=Counter)
    batches: int = 0
    commits: int = 0
    warnings: list[str] = field(default_factory=list)
    stopped_by: str = ""
    seconds: float = 0.0
    repaired_bytes: int = 0
    # From the first message received to the last batch committed: the time spent on data, not waiting.
    active_seconds: float = 0.0
    # Parts mode: parts this run closed, and crashed collectors' open parts it closed (or removed).
    parts: list[Path] = field(default_factory=list)
    recovered_parts: int = 0
    rebalances: int = 0
    # Broker outages survived (commits refused, transport down) and their total length.
    outages: int = 0
    outage_seconds: float = 0.0
    # Messages read again after an outage or rebalance whose events this run had already written: not written twice.
    redelivered_skipped: int = 0

    @property
    def messages_per_second(self) -> float:
        """Throughput over the active time (group join and the final idle wait excluded)."""
        return self.consumed / self.active_seconds if self.active_seconds > 0 else 0.0


Writer = EventFile | PartWriter


def _writer(config: CollectorConfig) -> Writer:
    if not config.parts:
        return EventFile(config.events_path)
    roll_bytes = config.roll_bytes
    if config.format == "parquet" and roll_bytes is None and config.roll_seconds is None:
        roll_bytes = DEFAULT_PARQUET_ROLL_BYTES  # a Parquet part is buffered until it closes: bound it
    return PartWriter(config.out_dir, config.writer_id, config.format, roll_bytes, config.roll_seconds)


class BrokerUnavailable(RuntimeError):
    """The broker stayed away longer than the collector's `broker_timeout_s`; the message says since when."""


# librdkafka's error codes for "no broker answers" (its own, negative): the collector waits through these.
_OUTAGE_CODES = frozenset({"_TRANSPORT", "_ALL_BROKERS_DOWN", "_RESOLVE", "_TIMED_OUT"})


@dataclass
class BrokerWatch:
    """Broker outages as the collector sees them: one starts at a refused commit or a transport error, and ends at
    the next successful commit or metadata answer. `check()` raises `BrokerUnavailable` once one outlasts the
    timeout; until then the collector keeps going and librdkafka keeps reconnecting."""

    bootstrap: str
    timeout_s: float
    stats: CollectStats
    clock: Callable[[], float] = time.monotonic
    since: float | None = None
    ended_at: float | None = None
    last_error: str = ""
    _last_try: float = float("-inf")

    @property
    def away(self) -> bool:
        return self.since is not None

    def noticed(self, error: Any) -> None:
        """The consumer's `error_cb`: a transport-level error starts an outage (never raises: librdkafka calls it)."""
        if error.name() in _OUTAGE_CODES:
            self.failed(error)

    def failed(self, error: Any, since: float | None = None) -> None:
        """A request failed for want of a broker; `since`: when it was sent (a commit can wait a while to fail)."""
        self.last_error = str(error)
        if self.since is None:
            self.since = self.clock() if since is None else since
            self.stats.outages += 1

    def forget(self) -> None:
        self.since = None
        self.stats.outages = 0

    def answered(self) -> None:
        if self.since is not None:
            self.ended_at = self.clock()
            self.stats.outage_seconds += self.ended_at - self.since
            self.since = None

    def retry_due(self) -> bool:
        """While away, a commit or probe is tried once per RETRY_INTERVAL_S (each one may block for a while)."""
        now = self.clock()
        if self.since is not None and now - self._last_try < RETRY_INTERVAL_S:
            return False
        self._last_try = now
        return True

    def check(self) -> None:
        if self.since is not None and self.clock() - self.since >= self.timeout_s:
            raise BrokerUnavailable(
                f"the Kafka broker at {self.bootstrap} has not answered for {self.clock() - self.since:.0f} s "
                f"(--broker-timeout {self.timeout_s:g}): {self.last_error}; what was collected is on disk and a "
                f"re-run resumes after the last commit")


def collect(
    config: CollectorConfig,
    known_pins: Container[str] | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    on_batch: Callable[[CollectStats], None] | None = None,
) -> CollectStats:
    """Consume `config.topic` into `config.out_dir` until max messages, idle timeout, or `should_stop()`.

    With `strict`, the first bad message raises `LocatedRecordError` (source = topic, line = partition/offset)
    after everything before it was written and committed, so a re-run stops at the same message. A broker that
    goes away is waited for (`BrokerWatch`): up to `config.broker_timeout_s`, then `BrokerUnavailable`.
    """
    from confluent_kafka import Consumer

    stats = CollectStats()
    started = time.monotonic()
    watch = BrokerWatch(config.bootstrap, config.broker_timeout_s, stats)
    # log_level 2: librdkafka would print every refused reconnect of an outage; the watch reports it instead.
    ledgers: list[_Ledger] = []  # the consumer's on_commit goes to the ledger, which is made after the consumer
    consumer = Consumer({**consumer_config(config), "error_cb": watch.noticed, "log_level": 2,
                         "on_commit": lambda error, partitions: ledgers[0].on_commit(error, partitions)})
    writer = _writer(config)
    try:
        # Fail fast with a clear error when nobody answers, rather than waiting silently for a broker.
        consumer.list_topics(timeout=CONNECT_TIMEOUT_S)
        watch.forget()  # refusals before the first answer are the connect timeout's business
        with writer as events, DeadLetter(_prepared(config.rejected_path)) as dead_letter:
            stats.repaired_bytes = events.repaired_bytes
            ledger = _Ledger(consumer, events, dead_letter, stats, watch)
            ledgers.append(ledger)
            try:
                _consume_loop(consumer, config, known_pins, should_stop, on_batch, stats, ledger)
                ledger.finish()
            finally:
                # From here on a revoke (consumer.close) has nothing left to commit.
                ledger.closed = True
    finally:
        # close() leaves the group at once, so a restarted collector gets the partitions without a session timeout.
        if watch.away:
            close_within(consumer, CLOSE_WHILE_AWAY_S)
        else:
            consumer.close()
        stats.seconds = time.monotonic() - started
        if isinstance(writer, PartWriter):
            stats.parts = list(writer.closed_parts)
            stats.recovered_parts = len(writer.recovered.closed) + len(writer.recovered.deleted)
    return stats


# Consumers whose close() outlived CLOSE_WHILE_AWAY_S: still leaving the group of a broker that is gone.
_CLOSING: list[Any] = []


def close_within(consumer: Any, seconds: float) -> bool:
    """Close `consumer`, waiting at most `seconds`; True when it closed. With the broker gone, close() (a last
    revoke, leaving the group) can wait on dead connections for a minute and more (measured on this project's CI
    machine): the run's data is already on disk, so the caller goes on and the close finishes in the background
    (`closing()` says so; a process about to exit should not wait for it)."""
    import threading

    closer = threading.Thread(target=consumer.close, name="kafka-close", daemon=True)
    closer.start()
    closer.join(seconds)
    if closer.is_alive():
        _CLOSING.append((consumer, closer))
        return False
    return True


def closing() -> bool:
    """True while a consumer's close is still running in the background (see `close_within`)."""
    _CLOSING[:] = [(consumer, closer) for consumer, closer in _CLOSING if closer.is_alive()]
    return bool(_CLOSING)


def _prepared(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    repair_torn_tail(path)
    return path


class _Ledger:
    """Offsets consumed but not yet committed; committed only once the writer says their events are durable.

    A batch's commit is awaited before the next batch is handled (so at most one batch is ever written and not
    committed), but never by blocking in librdkafka: it is sent asynchronously and its answer (`on_commit`) waited
    for while the consumer is served, what it fetches meanwhile kept in `backlog`; past the broker timeout the run
    ends (`BrokerUnavailable`). A refused commit keeps its offsets, retried once a second while the broker is away
    (`BrokerWatch`); the next commit covers everything before it.

    Also the consumer's rebalance callbacks: before partitions are revoked, the open part is made durable (a
    Parquet part is closed) and every pending offset is committed, so the next owner starts after them.

    `written` remembers, per partition, the offset after the last message this run handed to the writer (or the
    dead letter): a message below it that comes again (its commit never landed because the broker went away and
    the partitions were lost, then came back) is already on disk, so it is committed but not written twice.
    """

    def __init__(self, consumer: Any, events: Writer, dead_letter: DeadLetter, stats: CollectStats,
                 watch: BrokerWatch) -> None:
        self.consumer = consumer
        self.events = events
        self.dead_letter = dead_letter
        self.stats = stats
        self.watch = watch
        self.pending: dict[tuple[str, int], int] = {}
        self.written: dict[tuple[str, int], int] = {}
        self.backlog: list[Any] = []
        self._answer: tuple[Any] | None = None
        self.assigned_at: float | None = None
        self.unassigned_since = time.monotonic()
        self.closed = False

    def add(self, topic: str, partition: int, next_offset: int) -> None:
        self.pending[(topic, partition)] = next_offset
        self.written[(topic, partition)] = max(next_offset, self.written.get((topic, partition), 0))

    def already_written(self, topic: str, partition: int, offset: int) -> bool:
        return offset < self.written.get((topic, partition), 0)

    def settle(self, close: bool = False, force: bool = False, in_callback: bool = False) -> None:
        """Roll the part when due (or `close`), and commit the pending offsets if their events are durable.
        While the broker is away a commit is tried once per RETRY_INTERVAL_S, unless `force`."""
        due = self.events.due()
        if not (self.pending or close or due):
            return
        if close or due:
            self.events.close_part()
        if not self.pending or not self.events.sync():
            return
        fsync_path(self.dead_letter.path)
        if (force or self.watch.retry_due()) and self._commit(in_callback):
            self.pending.clear()

    def _commit(self, in_callback: bool = False) -> bool:
        """True when the pending offsets are committed; False (kept for a retry) when the broker refused."""
        from confluent_kafka import KafkaException, TopicPartition

        offsets = [TopicPartition(topic, partition, offset) for (topic, partition), offset in self.pending.items()]
        sent_at = self.watch.clock()
        try:
            if in_callback:  # a rebalance callback must not poll the consumer: wait for the broker instead
                self.consumer.commit(offsets=offsets, asynchronous=False)
            else:
                self._commit_and_wait(offsets, sent_at)
        except KafkaException as error:
            if error.args[0].fatal():
                raise
            self.watch.failed(error, since=sent_at)
            return False
        self.stats.commits += 1
        self.watch.answered()
        return True

    def _commit_and_wait(self, offsets: list[Any], sent_at: float) -> None:
        """Commit asynchronously and wait for the answer (`on_commit`) while serving the consumer, so that neither
        a broker that died under the request nor one that never comes back can block the run: past the broker
        timeout this raises `BrokerUnavailable`. What the consumer fetches meanwhile waits in `backlog`."""
        from confluent_kafka import KafkaException

        self._answer = None
        self.consumer.commit(offsets=offsets, asynchronous=True)
        while self._answer is None:
            if self.watch.clock() - sent_at >= self.watch.timeout_s:
                self.watch.failed(f"a commit got no answer for {self.watch.timeout_s:g} s", since=sent_at)
                self.watch.check()
            self.backlog.extend(self.consumer.consume(num_messages=1, timeout=COMMIT_POLL_S))
        if self._answer[0] is not None:
            raise KafkaException(self._answer[0])

    def on_commit(self, error: Any, partitions: list[Any]) -> None:
        """The consumer's `on_commit`: the answer `_commit_and_wait` waits for (the first partition error counts)."""
        refused = [tp.error for tp in partitions if tp.error is not None]
        self._answer = (error if error is not None else (refused[0] if refused else None),)

    def take_backlog(self, count: int) -> list[Any]:
        """Up to `count` messages fetched while a commit was waited for, oldest first."""
        taken, self.backlog = self.backlog[:count], self.backlog[count:]
        return taken

    def probe(self, topic: str) -> None:
        """While away with nothing to commit: a metadata request says whether the broker is back."""
        from confluent_kafka import KafkaException

        if not self.watch.away or self.pending or not self.watch.retry_due():
            return
        try:
            self.consumer.list_topics(topic, timeout=RETRY_INTERVAL_S)
        except KafkaException as error:
            self.watch.failed(error)
            return
        self.watch.answered()

    def finish(self) -> None:
        """Make everything durable and commit it; while the broker is away, keep serving the consumer (so it can
        reconnect and rejoin its group) and retry, bounded by the broker timeout. Messages fetched while waiting
        are not handled: their offsets stay uncommitted, so the next run reads them."""
        self.settle(close=True, force=True)
        while self.pending:
            self.watch.check()
            self.consumer.consume(num_messages=1, timeout=RETRY_INTERVAL_S)
            self.settle()

    def on_assign(self, _consumer: Any, _partitions: list[Any]) -> None:
        self.assigned_at = time.monotonic()
        self.stats.rebalances += 1
        if not self.closed:
            self.stats.recovered_parts += self.events.adopt_orphans()

    def on_revoke(self, _consumer: Any, _partitions: list[Any]) -> None:
        self._unassigned()
        if self.closed or not self.pending:
            return
        self.settle(close=not self.events.sync(), force=True, in_callback=True)
        if self.pending:  # the events are on disk: the next owner reads them again (duplicates, not loss)
            self.stats.warnings.append(f"commit on revoke failed: {self.watch.last_error}")
            self.pending.clear()

    def on_lost(self, _consumer: Any, _partitions: list[Any]) -> None:
        # The group already gave the partitions away: committing is refused. Keep the events (duplicates, not loss).
        self._unassigned()
        if not self.closed:
            self.events.close_part()
        self.pending.clear()
        self.stats.warnings.append("partitions lost (session timed out): their uncommitted events will be re-read")

    def _unassigned(self) -> None:
        """Partitions revoked or lost: fetched messages not yet handled are dropped (read again from the commit)."""
        self.assigned_at = None
        self.unassigned_since = time.monotonic()
        self.backlog.clear()


def _consume_loop(
    consumer: Any,
    config: CollectorConfig,
    known_pins: Container[str] | None,
    should_stop: Callable[[], bool],
    on_batch: Callable[[CollectStats], None] | None,
    stats: CollectStats,
    ledger: _Ledger,
) -> None:
    # The idle clock starts when the group hands us partitions: joining a group (the first time, creating
    # __consumer_offsets) can take seconds, and that is not "no new messages". Without any assignment the
    # run still ends, after a longer bound, with a warning.
    started = time.monotonic()
    consumer.subscribe([config.topic], on_assign=ledger.on_assign, on_revoke=ledger.on_revoke, on_lost=ledger.on_lost)
    last_message_at = started
    first_message_at: float | None = None
    while True:
        ledger.watch.check()
        if should_stop():
            stats.stopped_by = "signal"
            return
        wanted = config.batch_size
        if config.max_messages is not None:
            wanted = min(wanted, config.max_messages - stats.consumed)
            if wanted <= 0:
                stats.stopped_by = "max-messages"
                return
        polled = ledger.take_backlog(wanted) or consumer.consume(num_messages=wanted, timeout=config.poll_timeout_s)
        messages = [message for message in polled if _usable(message, stats)]
        if not messages:
            ledger.settle()  # a part due by age rolls (and a Parquet part's offsets are committed) while idle
            ledger.probe(config.topic)
            idle_timeout = config.idle_timeout_s
            if idle_timeout is not None and _idle_expired(idle_timeout, started, last_message_at, ledger, stats):
                return
            continue
        last_message_at = time.monotonic()
        first_message_at = first_message_at or last_message_at
        _handle_batch(config, messages, known_pins, stats, ledger)
        stats.active_seconds = time.monotonic() - first_message_at
        if on_batch:
            on_batch(stats)


def _idle_expired(
    idle_timeout_s: float, started: float, last_message_at: float, ledger: _Ledger, stats: CollectStats
) -> bool:
    """True when the run should end for lack of messages; sets `stats.stopped_by`. Never while the broker is away
    (no message is not "no new messages" then): the idle clock restarts when it is back."""
    if ledger.watch.away:
        return False
    now = time.monotonic()
    if ledger.assigned_at is None:  # before the first assignment, or between a revoke (or loss) and the next
        waited = now - max(started, ledger.unassigned_since)
        if waited >= max(idle_timeout_s, ASSIGNMENT_WAIT_S):
            stats.stopped_by = "idle-timeout"
            stats.warnings.append(f"no partitions assigned within {waited:.0f}s")
            return True
        return False
    if now - max(last_message_at, ledger.assigned_at, ledger.watch.ended_at or 0.0) >= idle_timeout_s:
        stats.stopped_by = "idle-timeout"
        return True
    return False


def _usable(message: Any, stats: CollectStats) -> bool:
    """True for a data message; broker-side errors are fatal if librdkafka says so, else noted and skipped."""
    from confluent_kafka import KafkaException

    error = message.error()
    if error is None:
        return True
    if error.fatal():
        raise KafkaException(error)
    # E.g. "unknown topic" until the first producer creates it: worth a note, not a stop.
    if str(error) not in stats.warnings:
        stats.warnings.append(str(error))
    return False


def _handle_batch(
    config: CollectorConfig,
    messages: list[Any],
    known_pins: Container[str] | None,
    stats: CollectStats,
    ledger: _Ledger,
) -> None:
    """Write one batch, then commit its offsets once durable (the order is the guarantee): at once for
    events.jsonl and JSONL parts (fsync), when the part closes for Parquet."""
    failure: LocatedRecordError | None = None
    for message in messages:
        topic, partition, offset = message.topic(), message.partition(), message.offset()
        if ledger.already_written(topic, partition, offset):
            stats.redelivered_skipped += 1
            ledger.add(topic, partition, offset + 1)
            continue
        location = message_location(partition, offset)
        try:
            record = message_to_record(message.value(), known_pins)
        except RecordError as error:
            if config.strict:
                failure = error.located(topic, location)
                break
            ledger.dead_letter.add(topic, location, error, message.value() or b"")
            stats.rejected += 1
            stats.rejected_by_reason[f"{error.field}: {error.reason}"] += 1
        else:
            ledger.events.write(record)
            stats.written += 1
        stats.consumed += 1
        ledger.add(topic, partition, offset + 1)
    stats.batches += 1
    if failure is not None:
        ledger.finish()  # everything before the bad message is committed: a re-run stops at it again
        raise failure
    ledger.settle()


# ----------------------------------------------------------------------------------------------- produce


@dataclass
class ProduceStats:
    """What replaying a file into a topic did. `lines` (non-blank lines read) = `sent` + `rejected`."""

    lines: int = 0
    sent: int = 0
    delivered: int = 0
    failed: int = 0
    rejected: int = 0
    rejected_by_reason: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    topic_created: bool = False
    seconds: float = 0.0


def ensure_topic(bootstrap: str, topic: str, partitions: int = 1, timeout_s: float = 30.0) -> bool:
    """Create the topic if it does not exist; returns True if this call created it."""
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})
    if topic in admin.list_topics(timeout=timeout_s).topics:
        return False
    future = admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])[topic]
    try:
        future.result(timeout=timeout_s)
    except KafkaException as error:
        if error.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS:
            return False
        raise
    return True


def produce_file(
    path: Path,
    bootstrap: str,
    topic: str,
    dead_letter: DeadLetter,
    partitions: int = 1,
    validate: bool = False,
    on_line: Callable[[int], None] | None = None,
    flush_timeout_s: float = 60.0,
) -> ProduceStats:
    """Send every non-blank line of a JSONL(.gz) file to `topic` as-is, keyed by user_id; waits for delivery.

    As-is means a malformed line is sent too (the collector dead-letters it, as it would any producer's), unless
    `validate`: then only valid events are sent. A line Kafka cannot carry (over `MAX_MESSAGE_BYTES`), the
    damaged rest of a truncated `.gz`, and with `validate` an invalid event, go to `dead_letter` (file, line,
    reason) and are counted; the lines around them are sent.
    """
    from confluent_kafka import Producer

    stats = ProduceStats()
    started = time.monotonic()
    stats.topic_created = ensure_topic(bootstrap, topic, partitions)
    # log_level 3 (errors): the transient "coordinator load in progress" notices of a fresh broker are noise.
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 5, "log_level": 3,
                         "message.max.bytes": MAX_MESSAGE_BYTES + 4096})  # room for the key and headers

    def delivered(error: Any, _message: Any) -> None:
        if error is None:
            stats.delivered += 1
        else:
            stats.failed += 1
            stats.errors[str(error)] += 1

    for line_no, value in sendable_lines(path, dead_letter, validate):
        stats.lines += 1
        if isinstance(value, RecordError):
            stats.rejected += 1
            stats.rejected_by_reason[f"{value.field}: {value.reason}"] += 1
        else:
            _send(producer, topic, value, partition_key(value), delivered)
            stats.sent += 1
        if on_line:
            on_line(line_no)
    undelivered = producer.flush(flush_timeout_s)
    if undelivered:
        stats.failed += undelivered
        stats.errors[f"not delivered within {flush_timeout_s:.0f}s"] += undelivered
    stats.seconds = time.monotonic() - started
    return stats


def sendable_lines(path: Path, dead_letter: DeadLetter,
                   validate: bool = False) -> Iterator[tuple[int, bytes | RecordError]]:
    """`(line_no, message value)` for each non-blank line of a JSONL(.gz) file, or `(line_no, RecordError)` for
    one that is not sent, after writing it to `dead_letter` (source = the file)."""
    for line_no, raw in raw_lines(path):
        value = raw if isinstance(raw, RecordError) else raw.rstrip(b"\r\n")
        if isinstance(value, bytes) and not value.strip():
            continue
        problem = value if isinstance(value, RecordError) else _unsendable(value, validate)
        if problem is not None:
            dead_letter.add(str(path), line_no, problem, value if isinstance(value, bytes) else b"")
            yield line_no, problem
        else:
            yield line_no, value


def _unsendable(value: bytes, validate: bool) -> RecordError | None:
    """Why a line is not sent (too large; with `validate`, not a valid event), or None."""
    try:
        if validate:
            message_to_record(value)
        else:
            _require_size(value)
    except RecordError as error:
        return error
    return None


def _send(producer: Any, topic: str, value: bytes, key: bytes | None, on_delivery: Callable[..., None]) -> None:
    """Produce one message; when the local queue is full, serve delivery reports until there is room."""
    while True:
        try:
            producer.produce(topic, value=value, key=key, on_delivery=on_delivery)
            producer.poll(0)
            return
        except BufferError:
            producer.poll(0.5)
