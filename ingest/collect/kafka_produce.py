"""`pintext produce`: replay a JSONL(.gz) file into a Kafka topic, one message a line, keyed by user id."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pintext.ingest.collect.kafka_records import MAX_MESSAGE_BYTES, message_to_record, partition_key, require_size
from pintext.ingest.deadletter import DeadLetter
from pintext.ingest.readers import raw_lines
from pintext.schemas import RecordError


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
            require_size(value)
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
