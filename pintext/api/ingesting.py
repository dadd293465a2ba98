"""The ingest policy: a pins file into this model's index behind the name (created and tuned on the file when new),
with a dead letter for rejected lines, a checkpoint to resume from, and a lock so that two runs of the same
(file, index) never interleave.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pintext.api.connection import Connection
from pintext.api.indexing import Tuning, ensure_index
from pintext.constants import DEFAULT_INGEST_WORKERS
from pintext.errors import BadInput, WriteFailed


@dataclass(frozen=True)
class IngestOptions:
    """How a file is ingested (see `pintext ingest --help`)."""

    batch: int = 500
    workers: int = DEFAULT_INGEST_WORKERS
    resume: bool = False
    strict: bool = False
    dead_letter: Path | None = None  # default: the state folder, per (file, index), restarted by each fresh run
    checkpoint: Path | None = None  # default: beside the default dead letter


def count_lines(path: Path) -> int:
    """Lines in a JSONL(.gz) file, for a progress bar's total (one fast pass, constant memory)."""
    from pintext.ingest.readers import count_lines as count

    return count(path)


def ingest_file(conn: Connection, pins_file: Path, options: IngestOptions = IngestOptions(),
                tuning: Tuning | None = None, on_batch: Callable[[Any], None] | None = None) -> dict:
    """Validate, embed, tokenize and bulk-index `pins_file` by pin id; returns the summary (counts, rejected by
    reason, docs/s, where the dead letter and checkpoint are). `on_batch(report)` follows progress."""
    from pintext.atomic import DiskWriteError, check_writable
    from pintext.ingest.deadletter import DeadLetter
    from pintext.ingest.indexer import Checkpoint, EngineSink, IngestLock, Ingestor, default_state
    from pintext.schemas import LocatedRecordError
    from pintext.serving.meta import vector_type_of

    pins_file = Path(pins_file)
    tuning = tuning or Tuning(pins_file)
    # Per (file, name users search) in the state folder, never beside the input; the checkpoint records the
    # concrete index, so a resume refuses another model's run.
    state = default_state(pins_file, conn.name)
    dead_letter_path = options.dead_letter or state.dead_letter
    checkpoint_path = options.checkpoint or state.checkpoint
    for folder in sorted({dead_letter_path.parent, checkpoint_path.parent}):
        check_writable(folder, "ingest state in")  # a full or read-only state folder: one line, no index made
    ensure_index(conn, tuning=tuning)
    written = conn.write_index
    where = f"{conn.engine.describe()}: {written}"  # what the checkpoint is for: a resume refuses another target
    conn.notes(f"dead letter: {dead_letter_path}; checkpoint: {checkpoint_path}")
    lock_path = checkpoint_path.with_name(checkpoint_path.name + ".lock")
    lock = IngestLock(lock_path, on_wait=lambda pid: conn.notes(
        f"waiting: pid {pid} is ingesting {pins_file} into {conn.name!r} (lock {lock_path})"))
    # The default dead letter belongs to this (file, index) alone: a fresh run starts it afresh (under the lock,
    # so a concurrent run of the same pair never loses the other's entries), so re-running never lists a line
    # twice. A given dead-letter path may be shared, so it is only ever appended to.
    restart = options.dead_letter is None and not options.resume
    with lock, DeadLetter(dead_letter_path, restart=restart) as rejected:
        ingestor = Ingestor(conn.encoder, conn.tokens, EngineSink(conn.engine, written), rejected,
                            Checkpoint(checkpoint_path, str(pins_file.resolve()), where),
                            batch_size=options.batch, workers=options.workers, strict=options.strict,
                            on_batch=on_batch, vector_type=vector_type_of(conn.index_meta()))
        try:
            report = ingestor.run(pins_file, resume=options.resume)
        except DiskWriteError as error:
            done = ingestor.checkpoint.read()
            raise WriteFailed(f"{error}; lines up to {done:,} are indexed (checkpoint {checkpoint_path}): make room "
                              "and run again with --resume", usage_fault=error.usage_fault) from None
        except LocatedRecordError as error:
            raise BadInput(f"{error} (--strict: nothing after this line was indexed; fix it or drop --strict)") \
                from None
        except ValueError as error:
            raise BadInput(str(error)) from None
    conn.engine.refresh(written)
    summary = {**report.to_json(), "dead_letter": str(dead_letter_path), "checkpoint": str(checkpoint_path),
               "index": written, "alias": conn.name, "serving": conn.engine.alias_target(conn.name) == written}
    if summary["duplicate_ids"]:
        conn.notes(f"note: {summary['duplicate_ids']:,} line(s) of {pins_file} repeat an earlier pin id (first: "
                   f"{summary['first_duplicate']}); the index keeps the last line's pin")
    return summary
