"""The collector's output on disk: one append-only `events.jsonl`, or rolled part files per collector id.

With `--roll-bytes` / `--roll-seconds` / `--format parquet` the collector writes parts: a folder of
`events-<collector id>-<seq>.jsonl` (or `.parquet`) that `pintext pairs --events FOLDER` reads in name order. The
open part has a hidden temporary name and is renamed when closed; only closed parts are read. A JSONL part is
fsynced before each batch's commit (so a crash's open part holds committed events: it is repaired to whole lines
and closed on restart, by the collector itself or by any collector of the folder once its owner's lock is free);
a Parquet part is only durable once closed, so its offsets are committed after the close and rename (a crash's
open Parquet part is deleted: its offsets were never committed, its events are read again).
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from pintext.ingest.readers import PARQUET_EVENT_COLUMNS, PARQUET_EXTRA_COLUMN, import_pyarrow_parquet
from pintext.schemas import parse_timestamp

EVENTS_FILE = "events.jsonl"
REJECTED_FILE = "rejected.jsonl"
FORMATS = ("jsonl", "parquet")
# A Parquet part is held in memory until it closes; without --roll-* it closes at this many bytes of JSON events.
DEFAULT_PARQUET_ROLL_BYTES = 64 * 1024 * 1024
# How long a starting collector waits for its own id's lock (held briefly by another collector closing its orphan).
LOCK_WAIT_S = 10.0
_PART_NAME = re.compile(r"^\.?events-(?P<id>[A-Za-z0-9_.]+)-(?P<seq>\d+)\.(?P<ext>jsonl|parquet)(?P<open>\.open)?$")


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


Writer = EventFile | PartWriter
