"""CLI commands: `pintext kafka up|down|status|logs`, `pintext collect`, `pintext produce`.

confluent-kafka and the broker module are imported inside the commands, so `pintext --help` stays light.
"""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from pintext.cli.errors import FAILURE, USAGE, fail, fail_at_once
from pintext.cli.servers import ServerGroup, lifecycle_app

console = Console(stderr=True)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the main app."""
    app.add_typer(kafka_app, name="kafka")
    app.command("collect")(collect)
    app.command("produce")(produce)


# ----------------------------------------------------------------------------------------------- kafka


# Literal copies of pintext.servers.kafka_broker's and pintext.ingest.collect.kafka_config's, so `pintext --help`
# imports neither (tests/test_servers.py).
KAFKA_VERSIONS = ("4.1.1",)
KAFKA_DEFAULT_PORT = 9092
DEFAULT_BROKER_TIMEOUT_S = 120.0


def _kafka_broker(version: str | None, port: int | None, heap: str | None):
    import os

    from pintext.servers import kafka_broker

    if version not in (None, kafka_broker.KAFKA_VERSION):
        raise kafka_broker.KafkaBrokerError(f"the managed Kafka version is {kafka_broker.KAFKA_VERSION}, not {version}")
    overrides = {"PINTEXT_KAFKA_PORT": str(port)} if port else {}
    if heap:
        overrides["PINTEXT_KAFKA_HEAP"] = heap
    return kafka_broker.KafkaBroker(kafka_broker.settings_from_env({**os.environ, **overrides}))


kafka_app = lifecycle_app(ServerGroup(
    name="kafka", title="Kafka", noun="broker", versions=KAFKA_VERSIONS, default_port=KAFKA_DEFAULT_PORT,
    help="The managed local Kafka broker (KRaft, single node, downloads once from Maven Central).",
    select=_kafka_broker, select_every=lambda: [_kafka_broker(None, None, None)],
))


# ----------------------------------------------------------------------------------------------- collect

BootstrapOption = Annotated[Optional[str], typer.Option(
    envvar="KAFKA_BOOTSTRAP", show_envvar=True,
    help="Kafka bootstrap servers, HOST:PORT; default: the managed broker (what `pintext kafka up` recorded, else "
         "127.0.0.1:$PINTEXT_KAFKA_PORT).")]


def _bootstrap(given: str | None) -> str:
    """--bootstrap, else $KAFKA_BOOTSTRAP (typer reads it into the option), else the managed broker's address."""
    if given:
        return given
    from pintext.servers import kafka_broker

    try:
        return kafka_broker.managed_bootstrap()
    except kafka_broker.KafkaBrokerError as error:  # a bad PINTEXT_KAFKA_PORT
        fail(str(error), USAGE)



class _StopFlag:
    """Set by SIGINT/SIGTERM: the collector finishes its batch, commits and exits cleanly."""

    def __init__(self) -> None:
        self.raised = False

    def __call__(self) -> bool:
        return self.raised

    def install(self) -> None:
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, self._on_signal)

    def _on_signal(self, signum: int, _frame: object) -> None:
        self.raised = True


def collect(
    topic: Annotated[str, typer.Option(help="Topic with engagement events, one JSON object per message.")],
    out: Annotated[Path, typer.Option(help="Folder for events.jsonl and rejected.jsonl (appended to), or for the "
                                      "parts with --roll-bytes/--roll-seconds/--format parquet/--collector-id.")],
    group: Annotated[
        str, typer.Option(help="Consumer group; a restart with the same group resumes.")
    ] = "pintext-collect",
    pins: Annotated[Optional[Path], typer.Option(help="pins.jsonl: events naming other pins are rejected.")] = None,
    max_messages: Annotated[Optional[int], typer.Option(min=1, help="Stop after this many messages.")] = None,
    idle_timeout: Annotated[
        Optional[float], typer.Option(min=0, help="Stop after this many seconds without a message.")
    ] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Messages per write+fsync+commit.")] = 500,
    strict: Annotated[bool, typer.Option(help="Stop at the first bad message instead of dead-lettering it.")] = False,
    roll_bytes: Annotated[
        Optional[int], typer.Option(min=1, help="Parts: start a new part after this many bytes of events (JSON).")
    ] = None,
    roll_seconds: Annotated[
        Optional[float], typer.Option(min=0.001, help="Parts: close a part this many seconds after its first event.")
    ] = None,
    output_format: Annotated[
        str, typer.Option("--format", help="Parts format: jsonl, or parquet (offsets committed when a part closes).")
    ] = "jsonl",
    collector_id: Annotated[
        Optional[str], typer.Option(help="Parts: this collector's id in OUT (names its parts; default: host name). "
                                         "Collectors sharing OUT need different ids.")
    ] = None,
    broker_timeout: Annotated[
        float, typer.Option(min=1, help="Seconds the collector keeps retrying while the broker is away (it "
                                        "reconnects by itself); after that it exits 1.")
    ] = DEFAULT_BROKER_TIMEOUT_S,
    bootstrap: BootstrapOption = None,
) -> None:
    """Consume engagement events from Kafka into OUT/events.jsonl, or into rolled parts OUT/events-<id>-<seq>.jsonl|
    .parquet that `pintext pairs --events OUT` reads (at-least-once; bad ones to OUT/rejected[-<id>].jsonl)."""
    from confluent_kafka import KafkaException

    from pintext.ingest.collect.kafka_collect import collect as run_collector
    from pintext.ingest.collect.kafka_config import CollectorConfig
    from pintext.ingest.collect.kafka_consumer import BrokerUnavailable
    from pintext.ingest.collect.part_files import CollectorIdInUse
    from pintext.schemas import LocatedRecordError

    bootstrap = _bootstrap(bootstrap)
    try:
        config = CollectorConfig(
            bootstrap=bootstrap, topic=topic, out_dir=out, group=group, max_messages=max_messages,
            idle_timeout_s=idle_timeout, batch_size=batch_size, strict=strict, roll_bytes=roll_bytes,
            roll_seconds=roll_seconds, format=output_format, collector_id=collector_id,
            broker_timeout_s=broker_timeout,
        )  # fmt: skip
    except ValueError as error:
        fail(str(error), USAGE)
    known_pins = _load_pin_ids(pins, out) if pins else None
    stop = _StopFlag()
    stop.install()
    try:
        with console.status(f"collecting {topic} from {bootstrap}") as spinner:
            stats = run_collector(
                config, known_pins, should_stop=stop,
                on_batch=lambda s: spinner.update(f"collecting {topic}: {s.consumed} consumed, {s.rejected} rejected"),
            )  # fmt: skip
    except LocatedRecordError as error:
        fail(f"bad message {error} (strict mode: offsets committed up to it)", USAGE)
    except BrokerUnavailable as error:
        from pintext.ingest.collect.kafka_consumer import closing

        (fail_at_once if closing() else fail)(str(error), FAILURE)
    except KafkaException as error:
        fail(f"cannot consume from {bootstrap}: {error}", FAILURE)
    except CollectorIdInUse as error:
        fail(str(error), USAGE)
    except ImportError as error:
        fail(str(error), USAGE)
    _print_collect_summary(config, stats)


def _load_pin_ids(pins: Path, out: Path) -> set[str]:
    from pintext.ingest.deadletter import DeadLetter
    from pintext.ingest.readers import read_records
    from pintext.schemas import validate_pin

    if not pins.exists():
        raise typer.BadParameter(f"{pins} does not exist", param_hint="--pins")
    with DeadLetter(out / "rejected-pins.jsonl") as dead_letter:
        ids = {record["id"] for _line, record in read_records(pins, validate_pin, dead_letter)}
    if dead_letter.count:
        console.print(f"[yellow]pins:[/yellow] {dead_letter.summary()}")
    return ids


def _print_collect_summary(config: object, stats: object) -> None:
    from pintext.ingest.collect.kafka_config import CollectorConfig
    from pintext.ingest.collect.kafka_consumer import CollectStats

    assert isinstance(config, CollectorConfig) and isinstance(stats, CollectStats)
    table = Table(title=f"pintext collect: {config.topic}", show_header=False)
    table.add_row("consumed", str(stats.consumed))
    table.add_row("written", f"{stats.written} -> {config.events_path}")
    if config.parts:
        table.add_row("parts closed", f"{len(stats.parts)} ({config.format}, collector id {config.writer_id})")
        if stats.recovered_parts:
            table.add_row("crashed open parts recovered", str(stats.recovered_parts))
    table.add_row("rejected", f"{stats.rejected} -> {config.rejected_path}")
    for reason, count in stats.rejected_by_reason.most_common():
        table.add_row(f"  {reason}", str(count))
    table.add_row("batches committed", str(stats.commits))
    table.add_row("stopped by", stats.stopped_by)
    rate = f"{stats.messages_per_second:,.0f} ({stats.active_seconds:.2f}s active of {stats.seconds:.1f}s)"
    table.add_row("messages/s", rate)
    if stats.repaired_bytes:
        table.add_row("torn last line cut", f"{stats.repaired_bytes} bytes (re-read from Kafka)")
    if stats.outages:
        table.add_row("broker outages", f"{stats.outages}, {stats.outage_seconds:.1f}s in all: reconnected and "
                                        "carried on (librdkafka reconnects; offsets committed once it answered)")
    if stats.redelivered_skipped:
        table.add_row("read again, already written", f"{stats.redelivered_skipped} (not written twice)")
    for warning in stats.warnings:
        table.add_row("warning", warning)
    Console().print(table)


# ----------------------------------------------------------------------------------------------- produce


def produce(
    events: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, help="JSONL(.gz) file; each line is sent as-is.")
    ],
    topic: Annotated[str, typer.Option(help="Topic to write to; created if missing.")],
    partitions: Annotated[int, typer.Option(min=1, help="Partitions when the topic is created.")] = 1,
    validate: Annotated[bool, typer.Option(help="Send only valid events; the others go to the dead letter.")] = False,
    dead_letter: Annotated[Optional[Path], typer.Option(
        "--dead-letter", help="Lines not sent (too large for Kafka, a damaged .gz, invalid with --validate) go here; "
                              "default $PINTEXT_HOME/produce/<topic>/<file>-<hash>.rejected.jsonl, restarted by "
                              "each run (a given path is appended to).")] = None,
    bootstrap: BootstrapOption = None,
) -> None:
    """Replay a JSONL file into a Kafka topic, keyed by user_id; reports how many messages were delivered."""
    from confluent_kafka import KafkaException
    from rich.progress import Progress, SpinnerColumn, TextColumn

    from pintext.ingest.collect.kafka_produce import produce_file
    from pintext.ingest.deadletter import DeadLetter

    bootstrap = _bootstrap(bootstrap)
    rejected_path = dead_letter or _default_produce_dead_letter(events, topic)
    with (Progress(SpinnerColumn(), TextColumn("{task.description}"), console=console, transient=True) as progress,
          DeadLetter(rejected_path) as rejected):
        task = progress.add_task(f"producing {events} -> {topic}")

        def on_line(n: int) -> None:
            if n % 1000 == 0:
                progress.update(task, description=f"producing {events} -> {topic}: {n} lines")

        try:
            stats = produce_file(events, bootstrap, topic, rejected, partitions, validate, on_line=on_line)
        except KafkaException as error:
            fail(f"cannot produce to {bootstrap}: {error}", FAILURE)
    _print_produce_summary(topic, stats, rejected_path)
    if stats.failed:
        raise typer.Exit(FAILURE)


def _default_produce_dead_letter(events: Path, topic: str) -> Path:
    """One dead letter per (file, topic) under PINTEXT_HOME, never beside the input; a fresh run starts it afresh
    (it re-sends the whole file), so re-running never lists a line twice."""
    import hashlib

    from pintext.paths import pintext_home

    digest = hashlib.sha256(str(events.resolve()).encode()).hexdigest()[:12]
    path = pintext_home() / "produce" / _file_safe(topic) / f"{_file_safe(events.name)}-{digest}.rejected.jsonl"
    path.unlink(missing_ok=True)
    return path


def _file_safe(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in text)


def _print_produce_summary(topic: str, stats: object, rejected_path: Path) -> None:
    from pintext.ingest.collect.kafka_produce import ProduceStats

    assert isinstance(stats, ProduceStats)
    table = Table(title=f"pintext produce: {topic}", show_header=False)
    table.add_row("lines read", str(stats.lines))
    table.add_row("sent", str(stats.sent))
    table.add_row("delivered", str(stats.delivered))
    table.add_row("failed", str(stats.failed))
    for reason, count in stats.errors.most_common():
        table.add_row(f"  {reason}", str(count))
    table.add_row("rejected", f"{stats.rejected} -> {rejected_path}")
    for reason, count in stats.rejected_by_reason.most_common():
        table.add_row(f"  {reason}", str(count))
    table.add_row("topic created", "yes" if stats.topic_created else "no (existed)")
    table.add_row("seconds", f"{stats.seconds:.1f}")
    Console().print(table)
