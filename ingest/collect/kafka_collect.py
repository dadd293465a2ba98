"""`pintext collect`: engagement events from a Kafka topic into `events.jsonl` or a folder of parts, at least once.

The pieces: `kafka_config` (what was asked, the consumer's settings), `kafka_records` (message -> valid event or
dead letter), `part_files` (events.jsonl or rolled parts, made durable before a commit), `kafka_consumer` (the
loop, the offsets and the broker's outages). Several collectors in one consumer group share a folder, each with
its own collector id. docs/kafka.md has the long form.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Container
from pathlib import Path

from pintext.ingest.collect.kafka_config import CollectorConfig, consumer_config
from pintext.ingest.collect.kafka_consumer import (
    CLOSE_WHILE_AWAY_S,
    BrokerWatch,
    CollectStats,
    Ledger,
    close_within,
    consume_loop,
)
from pintext.ingest.collect.part_files import (
    DEFAULT_PARQUET_ROLL_BYTES,
    EventFile,
    PartWriter,
    Writer,
    repair_torn_tail,
)
from pintext.ingest.deadletter import DeadLetter

# How long the first metadata request may take before the broker counts as unreachable.
CONNECT_TIMEOUT_S = 15.0


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
    ledgers: list[Ledger] = []  # the consumer's on_commit goes to the ledger, which is made after the consumer
    consumer = Consumer({**consumer_config(config), "error_cb": watch.noticed, "log_level": 2,
                         "on_commit": lambda error, partitions: ledgers[0].on_commit(error, partitions)})
    writer = _writer(config)
    try:
        # Fail fast with a clear error when nobody answers, rather than waiting silently for a broker.
        consumer.list_topics(timeout=CONNECT_TIMEOUT_S)
        watch.forget()  # refusals before the first answer are the connect timeout's business
        with writer as events, DeadLetter(_prepared(config.rejected_path)) as dead_letter:
            stats.repaired_bytes = events.repaired_bytes
            ledger = Ledger(consumer, events, dead_letter, stats, watch)
            ledgers.append(ledger)
            try:
                consume_loop(consumer, config, known_pins, should_stop, on_batch, stats, ledger)
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


def _writer(config: CollectorConfig) -> Writer:
    if not config.parts:
        return EventFile(config.events_path)
    roll_bytes = config.roll_bytes
    if config.format == "parquet" and roll_bytes is None and config.roll_seconds is None:
        roll_bytes = DEFAULT_PARQUET_ROLL_BYTES  # a Parquet part is buffered until it closes: bound it
    return PartWriter(config.out_dir, config.writer_id, config.format, roll_bytes, config.roll_seconds)


def _prepared(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    repair_torn_tail(path)
    return path
