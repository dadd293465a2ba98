"""Kafka adapters: collect engagement events from a topic into JSONL, and replay a JSONL file into a topic.

The collector is at-least-once: it validates a batch, appends the valid events to `events.jsonl` and the bad
messages to the dead letter, fsyncs both, and only then commits the batch's offsets. A crash between the write
and the commit loses nothing; the batch is read again and its events appear twice, which the pairs step
absorbs by deduplicating on `event_id`. A crash in the middle of a write can leave a torn last line; it is
cut off when the file is opened again (its message was never committed, so it is re-read).

confluent-kafka is imported inside the functions that talk to a broker, so the pure parts (consumer config,
message -> record, partition key) can be used and tested without it.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from collections.abc import Callable, Container
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from pintext.ingest.deadletter import DeadLetter
from pintext.ingest.readers import open_binary, parse_line
from pintext.schemas import WHOLE_RECORD, LocatedRecordError, RecordError, validate_event

EVENTS_FILE = "events.jsonl"
REJECTED_FILE = "rejected.jsonl"
DEFAULT_GROUP = "pintext-collect"
DEFAULT_BATCH_SIZE = 500
SESSION_TIMEOUT_MS = 10_000
# How long the first metadata request may take before the broker counts as unreachable.
CONNECT_TIMEOUT_S = 15.0
# How long an idle-timeout run waits for the group to assign it partitions at all before giving up.
ASSIGNMENT_WAIT_S = 60.0


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

    @property
    def events_path(self) -> Path:
        return self.out_dir / EVENTS_FILE

    @property
    def rejected_path(self) -> Path:
        return self.out_dir / REJECTED_FILE


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
    }


def message_location(partition: int, offset: int) -> str:
    """How a dead-letter entry names a message within its topic: `partition/offset`."""
    return f"{partition}/{offset}"


def message_to_record(value: bytes | None, known_pins: Container[str] | None = None) -> dict[str, Any]:
    """Decode, parse and validate one message value as an engagement event; failures raise `RecordError`."""
    if value is None or not value.strip():
        raise RecordError(WHOLE_RECORD, "empty message")
    return parse_line(value, partial(validate_event, known_pins=known_pins))


def partition_key(raw: bytes) -> bytes | None:
    """The Kafka key of a line to produce: its `user_id`, so one user's events stay in order on one partition.

    A line that is not a JSON object with a string `user_id` gets no key (it is still sent, as-is).
    """
    try:
        obj = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
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
    """Force a file's written data to disk (fsync on a second descriptor syncs the same inode)."""
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

    def sync(self) -> None:
        """Flush Python's buffer and fsync."""
        assert self._handle is not None
        self._handle.flush()
        os.fsync(self._handle.fileno())


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

    @property
    def messages_per_second(self) -> float:
        """Throughput over the active time (group join and the final idle wait excluded)."""
        return self.consumed / self.active_seconds if self.active_seconds > 0 else 0.0


def collect(
    config: CollectorConfig,
    known_pins: Container[str] | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    on_batch: Callable[[CollectStats], None] | None = None,
) -> CollectStats:
    """Consume `config.topic` into `config.out_dir` until max messages, idle timeout, or `should_stop()`.

    With `strict`, the first bad message raises `LocatedRecordError` (source = topic, line = partition/offset)
    after everything before it was written and committed, so a re-run stops at the same message.
    """
    from confluent_kafka import Consumer

    stats = CollectStats()
    started = time.monotonic()
    consumer = Consumer(consumer_config(config))
    try:
        # Fail fast with a clear error when nobody answers, rather than waiting silently for a broker.
        consumer.list_topics(timeout=CONNECT_TIMEOUT_S)
        with EventFile(config.events_path) as events, DeadLetter(_prepared(config.rejected_path)) as dead_letter:
            stats.repaired_bytes = events.repaired_bytes
            _consume_loop(consumer, config, known_pins, should_stop, on_batch, stats, events, dead_letter)
    finally:
        # close() leaves the group at once, so a restarted collector gets the partitions without a session timeout.
        consumer.close()
        stats.seconds = time.monotonic() - started
    return stats


def _prepared(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    repair_torn_tail(path)
    return path


def _consume_loop(
    consumer: Any,
    config: CollectorConfig,
    known_pins: Container[str] | None,
    should_stop: Callable[[], bool],
    on_batch: Callable[[CollectStats], None] | None,
    stats: CollectStats,
    events: EventFile,
    dead_letter: DeadLetter,
) -> None:
    # The idle clock starts when the group hands us partitions: joining a group (the first time, creating
    # __consumer_offsets) can take seconds, and that is not "no new messages". Without any assignment the
    # run still ends, after a longer bound, with a warning.
    started = time.monotonic()
    assignment = _Assignment()
    consumer.subscribe([config.topic], on_assign=assignment.on_assign)
    last_message_at = started
    first_message_at: float | None = None
    while True:
        if should_stop():
            stats.stopped_by = "signal"
            return
        wanted = config.batch_size
        if config.max_messages is not None:
            wanted = min(wanted, config.max_messages - stats.consumed)
            if wanted <= 0:
                stats.stopped_by = "max-messages"
                return
        polled = consumer.consume(num_messages=wanted, timeout=config.poll_timeout_s)
        messages = [message for message in polled if _usable(message, stats)]
        if not messages:
            idle_timeout = config.idle_timeout_s
            if idle_timeout is not None and _idle_expired(idle_timeout, started, last_message_at, assignment, stats):
                return
            continue
        last_message_at = time.monotonic()
        first_message_at = first_message_at or last_message_at
        _handle_batch(consumer, config, messages, known_pins, stats, events, dead_letter)
        stats.active_seconds = time.monotonic() - first_message_at
        if on_batch:
            on_batch(stats)


class _Assignment:
    """Records when the consumer group last assigned partitions to this collector."""

    def __init__(self) -> None:
        self.assigned_at: float | None = None

    def on_assign(self, _consumer: Any, _partitions: list[Any]) -> None:
        self.assigned_at = time.monotonic()


def _idle_expired(
    idle_timeout_s: float, started: float, last_message_at: float, assignment: _Assignment, stats: CollectStats
) -> bool:
    """True when the run should end for lack of messages; sets `stats.stopped_by`."""
    now = time.monotonic()
    if assignment.assigned_at is None:
        if now - started >= max(idle_timeout_s, ASSIGNMENT_WAIT_S):
            stats.stopped_by = "idle-timeout"
            stats.warnings.append(f"no partitions assigned within {now - started:.0f}s")
            return True
        return False
    if now - max(last_message_at, assignment.assigned_at) >= idle_timeout_s:
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
    consumer: Any,
    config: CollectorConfig,
    messages: list[Any],
    known_pins: Container[str] | None,
    stats: CollectStats,
    events: EventFile,
    dead_letter: DeadLetter,
) -> None:
    """Write one batch, make it durable, then commit its offsets (the order is the guarantee)."""
    next_offsets: dict[tuple[str, int], int] = {}
    failure: LocatedRecordError | None = None
    for message in messages:
        location = message_location(message.partition(), message.offset())
        try:
            record = message_to_record(message.value(), known_pins)
        except RecordError as error:
            if config.strict:
                failure = error.located(message.topic(), location)
                break
            dead_letter.add(message.topic(), location, error, message.value() or b"")
            stats.rejected += 1
            stats.rejected_by_reason[f"{error.field}: {error.reason}"] += 1
        else:
            events.write(record)
            stats.written += 1
        stats.consumed += 1
        next_offsets[(message.topic(), message.partition())] = message.offset() + 1
    events.sync()
    fsync_path(dead_letter.path)
    _commit(consumer, next_offsets, stats)
    stats.batches += 1
    if failure is not None:
        raise failure


def _commit(consumer: Any, next_offsets: dict[tuple[str, int], int], stats: CollectStats) -> None:
    from confluent_kafka import TopicPartition

    if not next_offsets:
        return
    offsets = [TopicPartition(topic, partition, offset) for (topic, partition), offset in next_offsets.items()]
    consumer.commit(offsets=offsets, asynchronous=False)
    stats.commits += 1


# ----------------------------------------------------------------------------------------------- produce


@dataclass
class ProduceStats:
    """What replaying a file into a topic did."""

    lines: int = 0
    delivered: int = 0
    failed: int = 0
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
    partitions: int = 1,
    on_line: Callable[[int], None] | None = None,
    flush_timeout_s: float = 60.0,
) -> ProduceStats:
    """Send every non-blank line of a JSONL(.gz) file to `topic` as-is, keyed by user_id; waits for delivery."""
    from confluent_kafka import Producer

    stats = ProduceStats()
    started = time.monotonic()
    stats.topic_created = ensure_topic(bootstrap, topic, partitions)
    # log_level 3 (errors): the transient "coordinator load in progress" notices of a fresh broker are noise.
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 5, "log_level": 3})

    def delivered(error: Any, _message: Any) -> None:
        if error is None:
            stats.delivered += 1
        else:
            stats.failed += 1
            stats.errors[str(error)] += 1

    with open_binary(path) as handle:
        for raw in handle:
            value = raw.rstrip(b"\r\n")
            if not value.strip():
                continue
            _send(producer, topic, value, partition_key(value), delivered)
            stats.lines += 1
            if on_line:
                on_line(stats.lines)
    undelivered = producer.flush(flush_timeout_s)
    if undelivered:
        stats.failed += undelivered
        stats.errors[f"not delivered within {flush_timeout_s:.0f}s"] += undelivered
    stats.seconds = time.monotonic() - started
    return stats


def _send(producer: Any, topic: str, value: bytes, key: bytes | None, on_delivery: Callable[..., None]) -> None:
    """Produce one message; when the local queue is full, serve delivery reports until there is room."""
    while True:
        try:
            producer.produce(topic, value=value, key=key, on_delivery=on_delivery)
            producer.poll(0)
            return
        except BufferError:
            producer.poll(0.5)
