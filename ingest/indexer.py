"""The ingest pipeline: stream a pins JSONL file, validate, embed, hash, bulk-index, checkpoint.

Memory stays flat: lines are read one at a time and held only a batch at a time (plus at most `workers`
batches in flight). Every valid line ends up indexed, every invalid one in the dead letter with its line number
and reason, and nothing is lost on a crash. A valid pin none of whose words the model knows is indexed too, with
its text but without vector or LSH tokens (BM25 and filters find it; the vector search cannot), and counted as
`indexed_without_vector`:

- a pin's doc `_id` is its pin id, so re-running replaces docs and never duplicates them (the bulk responses
  tell created from updated);
- after each batch is acknowledged, in file order, the checkpoint file records the last line number that is
  fully acknowledged (written to a temporary file then renamed, so it is never half written). `resume=True`
  skips lines up to it.

The sink is `EngineSink`: any serving engine's `write` (`pintext.serving`; OpenSearch and Elasticsearch bulk with
retries, the local backend upserts). The CLI adds the progress bar.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from pintext.atomic import FileLock, write_text
from pintext.constants import DEFAULT_INGEST_WORKERS
from pintext.ingest.deadletter import DeadLetter
from pintext.ingest.readers import ReportedElsewhere, read_records
from pintext.pin_vectors import pin_vectors
from pintext.quantize import FLOAT32, served_vectors
from pintext.schemas import WHOLE_RECORD, RecordError, validate_pin
from pintext.serving.base import BatchResult
from pintext.threads import one_blas_thread
from pintext.tokens import TokenFamily
from pintext.tokens.lsh import DEFAULT_BITS, DEFAULT_SEED, DEFAULT_TABLES, RandomHyperplaneLSH

LSH_CONFIG_FILE = "lsh.json"
CHECKPOINT_FORMAT = 1
# Test hook: raise after this many acknowledged batches, as a crash would (see tests/test_ingest.py).
FAIL_AFTER_BATCHES_ENV = "PINTEXT_INGEST_FAIL_AFTER_BATCHES"
# Default folder of ingest dead letters and checkpoints (else pintext_home()/ingest; see `state_dir`).
STATE_DIR_ENV = "PINTEXT_STATE_DIR"


class InjectedCrash(RuntimeError):
    """Raised by the FAIL_AFTER_BATCHES_ENV test hook, standing in for a crash mid-ingest."""


# ---- model-side config ---------------------------------------------------------------------------------------


def read_model_lsh(model_dir: str | Path | None, dim: int) -> RandomHyperplaneLSH | None:
    """The LSH config a user set explicitly in `MODEL/lsh.json`, or None when there is none (never written here:
    an index's own config lives in its `_meta`)."""
    if model_dir is None:
        return None
    path = Path(model_dir) / LSH_CONFIG_FILE
    if not path.is_file():
        return None
    try:
        lsh = RandomHyperplaneLSH.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (ValueError, json.JSONDecodeError) as error:
        raise ValueError(f"{path}: not a valid LSH config: {error}") from None
    if lsh.dim != dim:
        raise ValueError(f"{path}: field 'dim' is {lsh.dim}, the model's vectors have {dim}")
    return lsh


def default_lsh(dim: int) -> RandomHyperplaneLSH:
    """The untuned config (64 tables x 8 bits): what an index gets with --no-tune and no MODEL/lsh.json."""
    return RandomHyperplaneLSH(dim=dim, tables=DEFAULT_TABLES, bits=DEFAULT_BITS, seed=DEFAULT_SEED)


def load_or_create_lsh(model_dir: str | Path, dim: int) -> RandomHyperplaneLSH:
    """`MODEL/lsh.json`, written with the defaults if missing. For the benchmarks, which keep their chosen config
    in their own model folder; product commands read the index `_meta` and never write into a model folder."""
    lsh = read_model_lsh(model_dir, dim)
    if lsh is None:
        lsh = default_lsh(dim)
        write_text(Path(model_dir) / LSH_CONFIG_FILE, json.dumps(lsh.to_dict(), indent=2) + "\n")
    return lsh


def sample_pins(path: str | Path, limit: int, seed: int = 0) -> tuple[list[dict], int]:
    """A uniform sample (reservoir) of at most `limit` valid pins from a pins file, and how many valid pins it
    holds: what LSH tuning sweeps. Invalid lines are skipped here; the ingest dead-letters them."""
    rng = np.random.default_rng(seed)
    sample: list[dict] = []
    seen = 0
    for _line, pin in read_records(path, validate_pin, ReportedElsewhere(), strict=False):
        seen += 1
        if len(sample) < limit:
            sample.append(pin)
        else:
            slot = int(rng.integers(0, seen))
            if slot < limit:
                sample[slot] = pin
    return sample, seen


# ---- checkpoint ----------------------------------------------------------------------------------------------


@dataclass
class Checkpoint:
    """Where an ingest of `source` into `target` stands: every line up to `line` is acknowledged."""

    path: Path
    source: str
    target: str

    def read(self) -> int:
        """The last acknowledged line, 0 when there is no checkpoint for this source and target."""
        if not self.path.is_file():
            return 0
        state = json.loads(self.path.read_text(encoding="utf-8"))
        if state.get("source") != self.source or state.get("target") != self.target:
            raise ValueError(
                f"{self.path}: checkpoint is for {state.get('source')} -> {state.get('target')}, "
                f"not {self.source} -> {self.target}; pass another --checkpoint or drop --resume"
            )
        return int(state["line"])

    def write(self, line: int, complete: bool = False) -> None:
        state = {"format": CHECKPOINT_FORMAT, "source": self.source, "target": self.target, "line": int(line),
                 "complete": complete, "updated_at": time.time()}
        write_text(self.path, json.dumps(state) + "\n", "checkpoint")


def safe_name(text: str) -> str:
    """`text` as one file name: letters, digits and `-_.` kept, anything else `_`."""
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in text)


def state_dir() -> Path:
    """Where ingest keeps its dead letters and checkpoints by default: $PINTEXT_STATE_DIR, else
    `pintext_home()/ingest`. Never beside the input, so ingesting a file in a clone leaves the clone clean."""
    from pintext.paths import pintext_home

    override = os.environ.get(STATE_DIR_ENV)
    return Path(override).expanduser().resolve() if override else pintext_home() / "ingest"


@dataclass(frozen=True)
class IngestState:
    """The default files of one (input file, index) pair: its dead letter, its checkpoint and its lock."""

    dead_letter: Path
    checkpoint: Path

    @property
    def lock(self) -> Path:
        return self.checkpoint.with_name(self.checkpoint.name + ".lock")


def default_state(source: Path, index: str) -> IngestState:
    """`state_dir()/<index>/<file name>-<12 hex of sha256(absolute path)>.{rejected.jsonl,checkpoint.json}`: one
    pair of files per (file, index), so a second index (or a second file of the same name) never wipes the first's
    dead letter."""
    absolute = str(source.expanduser().resolve())
    stem = f"{safe_name(source.name)}-{hashlib.sha256(absolute.encode()).hexdigest()[:12]}"
    folder = state_dir() / safe_name(index)
    return IngestState(folder / f"{stem}.rejected.jsonl", folder / f"{stem}.checkpoint.json")


def default_checkpoint_path(source: Path, target: str) -> Path:
    """The checkpoint of an ingest of `source` into `target` when no --checkpoint is given (`default_state`)."""
    return default_state(source, target).checkpoint


# ---- one ingest per (file, index) at a time ------------------------------------------------------------------


# The lock of one (file, index) pair: `pintext.atomic.FileLock` (the second ingest waits, saying for whom).
IngestLock = FileLock


# ---- sinks -----------------------------------------------------------------------------------------------------


class Sink(Protocol):
    """Where embedded pins go."""

    thread_safe: bool

    def write(self, pins: Sequence[dict], vectors: Sequence[np.ndarray | None],
              tokens: Sequence[Sequence[str]]) -> BatchResult: ...


class EngineSink:
    """Writes batches into one index of a serving engine (`pintext.serving.base.Engine.write`)."""

    def __init__(self, engine: Any, index: str) -> None:
        self.engine = engine
        self.index = index
        self.thread_safe = bool(engine.thread_safe)

    def write(self, pins: Sequence[dict], vectors: Sequence[np.ndarray | None],
              tokens: Sequence[Sequence[str]]) -> BatchResult:
        return self.engine.write(self.index, pins, vectors, tokens)


# ---- the pipeline ----------------------------------------------------------------------------------------------


@dataclass
class IngestReport:
    """What an ingest run did."""

    indexed: int = 0
    created: int = 0
    updated: int = 0
    indexed_without_vector: int = 0  # pins with no known word: text only, for BM25 and filters
    rejected: int = 0
    rejected_by_reason: Counter = field(default_factory=Counter)
    resumed_after_line: int = 0
    retried: int = 0  # docs re-sent to the engine (429s, batches re-sent after no answer): BatchResult.retried
    last_line: int = 0
    batches: int = 0
    seconds: float = 0.0
    duplicate_ids: int = 0  # valid lines whose pin id an earlier line had: the later line's pin is what stays
    first_duplicate: str | None = None  # e.g. "'p1' again at line 3"

    @property
    def docs_per_second(self) -> float:
        return self.indexed / self.seconds if self.seconds > 0 else 0.0

    def to_json(self) -> dict:
        return {
            "indexed": self.indexed, "created": self.created, "updated": self.updated,
            "indexed_without_vector": self.indexed_without_vector, "rejected": self.rejected,
            "rejected_by_reason": dict(self.rejected_by_reason), "resumed_after_line": self.resumed_after_line,
            "retried": self.retried,
            "duplicate_ids": self.duplicate_ids, "first_duplicate": self.first_duplicate,
            "last_line": self.last_line, "batches": self.batches, "seconds": round(self.seconds, 3),
            "docs_per_second": round(self.docs_per_second, 1),
        }


@dataclass
class Batch:
    """Valid pins read together, with the line each came from and the last line read for the batch."""

    lines: list[int]
    pins: list[dict]
    last_line: int


class _SkipDoneLines:
    """A dead letter that ignores lines a resumed run already dead-lettered before the checkpoint."""

    def __init__(self, dead_letter: DeadLetter, done_through: int) -> None:
        self.dead_letter = dead_letter
        self.done_through = done_through
        self.last_line_seen = done_through

    def add(self, source: str, line: Any, error: RecordError, raw: str | bytes) -> None:
        if isinstance(line, int):
            self.last_line_seen = max(self.last_line_seen, line)
            if line <= self.done_through:
                return
        self.dead_letter.add(source, line, error, raw)


class DuplicateIds:
    """Counts valid lines whose pin id an earlier line of the file had. Both are indexed (doc `_id` = pin id), so
    the later line's pin is what the index keeps: legal, but a user expects to be told. Ids are kept as their
    hashes (about 60 bytes a pin, not the id itself); a hash collision could over-count by one in billions."""

    def __init__(self, report: IngestReport) -> None:
        self.report = report
        self.seen: set[int] = set()

    def note(self, pin_id: str, line: int, counted: bool) -> None:
        key = hash(pin_id)
        if key in self.seen and counted:
            self.report.duplicate_ids += 1
            self.report.first_duplicate = self.report.first_duplicate or f"{pin_id!r} again at line {line}"
        self.seen.add(key)


def read_batches(path: Path, batch_size: int, dead_letter: Any, strict: bool, skip_through: int,
                 duplicates: DuplicateIds | None = None) -> Iterator[Batch]:
    """Valid pins in batches of `batch_size`, skipping lines up to `skip_through` (resume; their ids still count
    as seen for `duplicates`)."""
    batch = Batch([], [], skip_through)
    for line_no, pin in read_records(path, validate_pin, dead_letter, strict=strict):
        if duplicates is not None:
            duplicates.note(str(pin["id"]), line_no, counted=line_no > skip_through)
        if line_no <= skip_through:
            continue
        batch.lines.append(line_no)
        batch.pins.append(pin)
        batch.last_line = line_no
        if len(batch.pins) >= batch_size:
            yield batch
            batch = Batch([], [], line_no)
    if batch.pins:
        yield batch


class Ingestor:
    """Runs one ingest of a pins file into a sink; see the module docstring for the guarantees."""

    def __init__(self, encoder: Any, family: TokenFamily, sink: Sink, dead_letter: DeadLetter,
                 checkpoint: Checkpoint, batch_size: int = 500, workers: int = DEFAULT_INGEST_WORKERS,
                 strict: bool = False, on_batch: Callable[[IngestReport], None] | None = None,
                 vector_type: str = FLOAT32) -> None:
        if batch_size <= 0 or workers <= 0:
            raise ValueError(f"batch size and workers must be positive, got {batch_size} and {workers}")
        self.encoder = encoder
        self.family = family
        self.sink = sink
        self.dead_letter = dead_letter
        self.checkpoint = checkpoint
        self.batch_size = batch_size
        self.workers = workers if sink.thread_safe else 1
        self.strict = strict
        self.on_batch = on_batch or (lambda report: None)
        self.vector_type = vector_type  # what the index holds (`_meta.vector_type`): int8 values or float32
        self.fail_after_batches = int(os.environ.get(FAIL_AFTER_BATCHES_ENV, "0") or 0)

    def run(self, path: str | Path, resume: bool = False) -> IngestReport:
        path = Path(path)
        report = IngestReport()
        started = time.perf_counter()
        report.resumed_after_line = self.checkpoint.read() if resume else 0
        report.last_line = report.resumed_after_line
        rejected_before = self.dead_letter.count
        dead_letter = _SkipDoneLines(self.dead_letter, report.resumed_after_line)
        pending: deque[tuple[Batch, Future]] = deque()
        # The batches run on worker threads: each product on one BLAS thread (pintext.threads says why).
        with one_blas_thread(), ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="pintext-bulk") as pool:
            for batch in read_batches(path, self.batch_size, dead_letter, self.strict, report.resumed_after_line,
                                      DuplicateIds(report)):
                pending.append((batch, pool.submit(self._embed_and_write, batch)))
                while len(pending) >= self.workers:
                    self._acknowledge(*pending.popleft(), path, report, rejected_before, started)
            while pending:
                self._acknowledge(*pending.popleft(), path, report, rejected_before, started)
        self._count_rejections(report, rejected_before)
        # Trailing invalid lines are dead-lettered too, so the whole file is done.
        report.last_line = max(report.last_line, dead_letter.last_line_seen)
        self.checkpoint.write(report.last_line, complete=True)
        report.seconds = time.perf_counter() - started
        return report

    def _embed_and_write(self, batch: Batch) -> tuple[BatchResult, set[str]]:
        """Embed a batch, each vector as the index holds it (int8 values for one-byte vectors), hash that very
        vector, and send both to the sink; a pin with no known word goes without vector or tokens (its vector
        would be zero: no direction to hash or rank by). Returns the ids of those pins too."""
        vectors = served_vectors(pin_vectors(self.encoder, batch.pins), self.vector_type)
        known = np.any(vectors != 0, axis=1)
        tokens: list[list[str]] = [[] for _ in batch.pins]
        if known.any():
            hashed = vectors[known].astype(np.float32)
            for row, pin_tokens in zip(np.flatnonzero(known), self.family.tokens(hashed)):
                tokens[row] = pin_tokens
        written = [vector if ok else None for vector, ok in zip(vectors, known)]
        without_vector = {str(pin["id"]) for pin, ok in zip(batch.pins, known) if not ok}
        return self.sink.write(batch.pins, written, tokens), without_vector

    def _acknowledge(self, batch: Batch, future: Future, path: Path, report: IngestReport,
                     rejected_before: int, started: float) -> None:
        """Book a finished batch (in file order), dead-letter its failures, then advance the checkpoint."""
        result, without_vector = future.result()
        report.indexed_without_vector += len(without_vector - set(result.failed))
        if result.failed:
            line_of = {pin["id"]: line for line, pin in zip(batch.lines, batch.pins)}
            pin_of = {pin["id"]: pin for pin in batch.pins}
            for pin_id, reason in result.failed.items():
                self.dead_letter.add(str(path), line_of.get(pin_id, "?"),
                                     RecordError(WHOLE_RECORD, "rejected by the index", reason),
                                     json.dumps(pin_of.get(pin_id, {"id": pin_id}), ensure_ascii=False))
        report.created += result.created
        report.updated += result.updated
        report.retried += result.retried
        report.indexed += result.created + result.updated
        report.batches += 1
        report.last_line = batch.last_line
        self.checkpoint.write(batch.last_line)
        self._count_rejections(report, rejected_before)
        report.seconds = time.perf_counter() - started
        self.on_batch(report)
        if self.fail_after_batches and report.batches >= self.fail_after_batches:
            raise InjectedCrash(f"{FAIL_AFTER_BATCHES_ENV}={self.fail_after_batches}: stopping after "
                                f"{report.batches} acknowledged batches (line {report.last_line})")

    def _count_rejections(self, report: IngestReport, rejected_before: int) -> None:
        report.rejected = self.dead_letter.count - rejected_before
        report.rejected_by_reason = Counter(self.dead_letter.by_reason)
