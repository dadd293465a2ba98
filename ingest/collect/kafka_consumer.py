"""The collector's consumer loop and its offsets: a batch's offsets are committed only once its events are durable.

The collector is at-least-once: it validates a batch, appends the valid events and the bad messages (dead letter),
makes both durable, and only then commits the batch's offsets (`Ledger`). A crash between the write and the commit
loses nothing; the batch is read again and its events appear twice, which the pairs step absorbs by deduplicating
on `event_id`. On a rebalance, what is on disk is committed before the partitions go (`Ledger.on_revoke`). A broker
that goes away is waited for (`BrokerWatch`), up to the collector's broker timeout.

confluent-kafka is imported inside the functions that talk to a broker.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Container
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pintext.ingest.collect.kafka_config import CollectorConfig
from pintext.ingest.collect.kafka_records import message_location, message_to_record
from pintext.ingest.collect.part_files import Writer, fsync_path
from pintext.ingest.deadletter import DeadLetter
from pintext.schemas import LocatedRecordError, RecordError

# While the broker is away: the pause between two commit retries (and metadata probes).
RETRY_INTERVAL_S = 1.0
CLOSE_WHILE_AWAY_S = 5.0  # how long the end of a run waits for close() when the broker is gone (close_within)
# While a commit's answer is awaited, the consumer is served in steps this long.
COMMIT_POLL_S = 0.01
# How long an idle-timeout run waits for the group to assign it partitions at all before giving up.
ASSIGNMENT_WAIT_S = 60.0


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


class Ledger:
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


def consume_loop(
    consumer: Any,
    config: CollectorConfig,
    known_pins: Container[str] | None,
    should_stop: Callable[[], bool],
    on_batch: Callable[[CollectStats], None] | None,
    stats: CollectStats,
    ledger: Ledger,
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
    idle_timeout_s: float, started: float, last_message_at: float, ledger: Ledger, stats: CollectStats
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
    ledger: Ledger,
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
