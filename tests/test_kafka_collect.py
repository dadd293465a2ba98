"""The Kafka collector and producer: pure parts, then end to end against a real broker.

The end-to-end tests run `pintext collect` / `pintext produce` as subprocesses, SIGKILL the collector mid-stream
and restart it, and check the at-least-once promise on disk: every valid event present (duplicates allowed,
at most one uncommitted batch of them), every malformed message in the dead letter with its reason.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pintext.ingest.collect import kafka_config, kafka_consumer, kafka_records, part_files
from pintext.schemas import WHOLE_RECORD, RecordError, validate_event
from pintext.servers import kafka_broker as kb

PINTEXT = str(Path(sys.executable).parent / "pintext")


# ----------------------------------------------------------------------------------------------- test data


def make_event(index: int, rng: random.Random) -> dict[str, Any]:
    surface = rng.choice(["search", "related", "homefeed"])
    event: dict[str, Any] = {
        "event_id": f"ev-{index}",
        "ts": 1_700_000_000 + index,
        "user_id": f"user-{index % 37}",
        "surface": surface,
        "action": rng.choice(["impression", "click", "save", "hide"]),
        "pin_id": f"pin-{index % 101}",
    }
    if surface == "search":
        event["query"] = rng.choice(["red shoes", "garden ideas", "pasta recipe"])
    if surface == "related":
        event["subject_pin_id"] = f"pin-{(index * 7) % 101}"
    return event


def make_lines(start: int, count: int, seed: int) -> tuple[list[str], set[str], dict[str, tuple[str, str]]]:
    """JSONL lines, a few of them malformed in each way the collector must catch.

    Returns the lines, the event ids of the valid ones, and for each malformed line the (field, reason)
    the schema layer gives it (asked of `validate_event` itself, so the test follows the schema).
    """
    rng = random.Random(seed)
    lines: list[str] = []
    valid_ids: set[str] = set()
    malformed: dict[str, tuple[str, str]] = {}
    for index in range(start, start + count):
        event = make_event(index, rng)
        kind = index % 23
        if kind == 5:
            line = f"not json at all {index} {{"
            malformed[line] = (WHOLE_RECORD, "not valid JSON")
            lines.append(line)
            continue
        if kind == 11:
            del event["user_id"]
        elif kind == 17:
            event["surface"] = "newsletter"
        elif kind == 19:
            event["action"] = "stare"
        line = json.dumps(event)
        if kind in (11, 17, 19):
            with pytest.raises(RecordError) as caught:
                validate_event(event)
            malformed[line] = (caught.value.field, caught.value.reason)
        else:
            valid_ids.add(event["event_id"])
        lines.append(line)
    return lines, valid_ids, malformed


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def count_lines(path: Path) -> int:
    if not path.exists():
        return 0
    with path.open("rb") as handle:
        return sum(1 for _ in handle)


def run_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PINTEXT, *args], capture_output=True, text=True, timeout=timeout)


def wait_for(condition: Any, timeout_s: float, what: str, poll_s: float = 0.05) -> None:
    """Poll a real condition until it holds, failing after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(poll_s)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")


def terminate(process: subprocess.Popen[str]) -> tuple[str, str]:
    """SIGTERM a collector (it commits and exits) and return its stdout and stderr."""
    process.send_signal(signal.SIGTERM)
    return process.communicate(timeout=60)


def kill_if_running(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.kill()
        process.wait(timeout=30)


# ----------------------------------------------------------------------------------------------- pure parts


def test_server_properties_single_node_kraft_on_loopback(tmp_path: Path) -> None:
    settings = kb.settings_from_env({"PINTEXT_HOME": str(tmp_path), "PINTEXT_KAFKA_PORT": "19092"})
    assert settings.controller_port == 19093
    assert settings.bootstrap == "127.0.0.1:19092"
    text = kb.render_server_properties(settings)
    props = dict(line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#"))
    assert props["process.roles"] == "broker,controller"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:19093"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:19092"
    assert props["controller.listener.names"] == "CONTROLLER"
    assert props["log.dirs"] == str(tmp_path.resolve() / "kafka" / "data")
    assert props["offsets.topic.replication.factor"] == "1"
    assert props["transaction.state.log.replication.factor"] == "1"


def test_port_settings_are_checked(tmp_path: Path) -> None:
    home = str(tmp_path)
    assert kb.settings_from_env({"PINTEXT_HOME": home}).port == kb.DEFAULT_PORT
    assert kb.settings_from_env({"PINTEXT_HOME": home, "PINTEXT_KAFKA_CONTROLLER_PORT": "29999"}).controller_port == 29999
    with pytest.raises(kb.KafkaBrokerError, match="PINTEXT_KAFKA_PORT"):
        kb.settings_from_env({"PINTEXT_HOME": home, "PINTEXT_KAFKA_PORT": "ninety"})
    with pytest.raises(kb.KafkaBrokerError, match="must differ"):
        kb.settings_from_env({"PINTEXT_HOME": home, "PINTEXT_KAFKA_PORT": "9100", "PINTEXT_KAFKA_CONTROLLER_PORT": "9100"})


def test_artifact_list_names_the_broker_and_a_logging_backend() -> None:
    artifacts = kb.kafka_artifacts()
    coordinates = {(a.group, a.artifact) for a in artifacts}
    assert ("org.apache.kafka", "kafka_2.13") in coordinates
    assert ("org.apache.logging.log4j", "log4j-core") in coordinates
    broker = next(a for a in artifacts if a.artifact == "kafka_2.13")
    assert broker.version == kb.KAFKA_VERSION
    assert broker.url("https://repo") == (
        f"https://repo/org/apache/kafka/kafka_2.13/{kb.KAFKA_VERSION}/kafka_2.13-{kb.KAFKA_VERSION}.jar"
    )
    assert len({a.artifact for a in artifacts}) == len(artifacts), "one version per artifact (no jar hell)"


def test_artifact_list_rejects_a_bad_line() -> None:
    parsed = kb.parse_artifact_list("# comment\n\na.b:c:1.0  # trailing\n")
    assert parsed == [kb.MavenArtifact("a.b", "c", "1.0")]
    with pytest.raises(kb.KafkaBrokerError, match=r":2: expected group:artifact:version"):
        kb.parse_artifact_list("a:b:1\nbroken-line\n")


def test_java_version_banner_parsing() -> None:
    assert kb.parse_java_version('openjdk version "17.0.15" 2025-04-15') == 17
    assert kb.parse_java_version('java version "1.8.0_392"') == 8
    assert kb.parse_java_version('openjdk version "25" 2025-09-16') == 25
    assert kb.parse_java_version("garbage") == 0


def test_wait_until_ready_polls_a_real_condition_with_a_deadline() -> None:
    answers = iter([RuntimeError("refused"), RuntimeError("refused"), ["topic"]])

    def probe(_bootstrap: str) -> list[str]:
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    assert kb.wait_until_ready("x:1", deadline_s=10, probe=probe) >= 0
    with pytest.raises(kb.KafkaBrokerError, match="exited"):
        kb.wait_until_ready("x:1", deadline_s=10, still_running=lambda: False, probe=probe)
    with pytest.raises(kb.KafkaBrokerError, match="did not answer within"):
        kb.wait_until_ready("x:1", deadline_s=0.5, probe=lambda _b: (_ for _ in ()).throw(RuntimeError("down")))


def test_port_in_use_is_refused_with_advice(tmp_path: Path) -> None:
    import socket

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        settings = kb.BrokerSettings(home=tmp_path, port=port, controller_port=port + 1)
        with pytest.raises(kb.KafkaBrokerError, match="PINTEXT_KAFKA_PORT"):
            kb._refuse_if_port_taken(settings)


def test_down_touches_only_its_own_broker(tmp_path: Path) -> None:
    settings = kb.BrokerSettings(home=tmp_path)
    assert kb.down(settings) is False  # nothing recorded
    settings.broker_dir.mkdir(parents=True)
    settings.pid_path.write_text(f"{os.getpid()}\n")  # a live pid that is not a Kafka JVM
    assert kb.is_our_broker(os.getpid(), settings) is False
    assert kb.down(settings) is False
    assert not settings.pid_path.exists()


def test_consumer_commits_by_hand_only() -> None:
    config = kafka_config.consumer_config(kafka_config.CollectorConfig("h:1", "t", Path("out"), group="g"))
    assert config["enable.auto.commit"] is False
    assert config["enable.auto.offset.store"] is False
    assert config["group.id"] == "g"
    assert config["auto.offset.reset"] == "earliest"


def test_message_to_record_accepts_a_valid_event() -> None:
    event = make_event(3, random.Random(0))
    assert kafka_records.message_to_record(json.dumps(event).encode()) == event


@pytest.mark.parametrize(
    ("value", "field", "reason"),
    [
        (b"{not json", WHOLE_RECORD, "not valid JSON"),
        (b"\xff\xfe", WHOLE_RECORD, "not valid UTF-8"),
        (None, WHOLE_RECORD, "empty message"),
        (b"[1, 2]", WHOLE_RECORD, "not a JSON object"),
        (b'{"event_id": "e", "ts": 1, "surface": "search", "action": "click", "pin_id": "p", "query": "q"}', "user_id", "missing"),
        # Poison messages (issue 13): each once crashed the collector at the same offset on every run, or was kept.
        (b"[" * 10_000 + b"]" * 10_000, WHOLE_RECORD, "nested too deeply"),
        (b'{"event_id": "e", "ts": 1' + b"0" * 400 + b', "user_id": "u", "surface": "homefeed", "action": "click", '
         b'"pin_id": "p"}', WHOLE_RECORD, "number out of range"),
        (b'{"event_id": "e", "ts": 1, "user_id": "\\ud800", "surface": "homefeed", "action": "click", "pin_id": "p"}',
         WHOLE_RECORD, "not valid UTF-8"),
        (b'{"event_id": "e", "ts": 1, "user_id": "u", "surface": "homefeed", "action": "click", "pin_id": "p", '
         b'"pad": "' + b"x" * kafka_records.MAX_MESSAGE_BYTES + b'"}', WHOLE_RECORD, kafka_records.TOO_LARGE),
    ],
)
def test_message_to_record_names_field_and_reason(value: bytes | None, field: str, reason: str) -> None:
    with pytest.raises(RecordError) as caught:
        kafka_records.message_to_record(value)
    assert (caught.value.field, caught.value.reason) == (field, reason)


def test_message_to_record_checks_pins_when_given() -> None:
    event = make_event(1, random.Random(1))
    with pytest.raises(RecordError) as caught:
        kafka_records.message_to_record(json.dumps(event).encode(), known_pins={"some-other-pin"})
    assert (caught.value.field, caught.value.reason) == ("pin_id", "unknown pin")


def test_partition_key_is_the_user_id() -> None:
    assert kafka_records.partition_key(b'{"user_id": "u7", "x": 1}') == b"u7"
    assert kafka_records.partition_key(b'{"user_id": 7}') is None
    assert kafka_records.partition_key(b"not json") is None
    assert kafka_records.partition_key(b"[1]") is None
    assert kafka_records.partition_key(b"[" * 10_000 + b"]" * 10_000) is None  # once a RecursionError that stopped `produce`
    assert kafka_records.partition_key(b"\xff\xfe") is None


def test_broker_watch_counts_an_outage_once_and_gives_up_after_the_timeout() -> None:
    now = [100.0]
    stats = kafka_consumer.CollectStats()
    watch = kafka_consumer.BrokerWatch("127.0.0.1:1", timeout_s=30, stats=stats, clock=lambda: now[0])
    watch.failed(RuntimeError("commit refused"), since=95.0)
    now[0] = 110.0
    watch.failed(RuntimeError("still refused"))
    watch.check()  # 15 s away: within the timeout
    assert watch.away and stats.outages == 1
    now[0] = 120.0
    watch.answered()
    assert not watch.away and stats.outage_seconds == 25.0
    watch.failed(RuntimeError("gone again"))
    now[0] = 150.0
    with pytest.raises(kafka_consumer.BrokerUnavailable, match=r"has not answered for 30 s \(--broker-timeout 30\): gone again"):
        watch.check()
    assert stats.outages == 2


def test_torn_last_line_is_cut(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(b'{"a": 1}\n{"b": 2}\n{"c": 3')
    assert part_files.repair_torn_tail(path) == len(b'{"c": 3')
    assert path.read_bytes() == b'{"a": 1}\n{"b": 2}\n'
    assert part_files.repair_torn_tail(path) == 0
    path.write_bytes(b"no newline at all")
    part_files.repair_torn_tail(path)
    assert path.read_bytes() == b""
    assert part_files.repair_torn_tail(tmp_path / "missing.jsonl") == 0


# ----------------------------------------------------------------------------------------------- parts


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def read_parts(folder: Path) -> list[tuple[str, int, dict[str, Any]]]:
    from pintext.ingest.deadletter import DeadLetter
    from pintext.ingest.readers import read_located_records

    with DeadLetter(folder.parent / f"{folder.name}-rejected.jsonl") as dead_letter:
        records = list(read_located_records(folder, validate_event, dead_letter))
    assert dead_letter.count == 0
    return records


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_parts_roll_by_bytes_and_age_and_read_back_in_order(tmp_path: Path, fmt: str) -> None:
    rng = random.Random(6)
    events = [make_event(index, rng) for index in range(30)]
    events[3]["campaign"] = "spring"  # a field outside the schema survives both formats
    line_bytes = len(json.dumps(events[0]).encode()) + 1
    clock = FakeClock()
    with part_files.PartWriter(tmp_path, "a", fmt, roll_bytes=10 * line_bytes, roll_seconds=60, clock=clock) as writer:
        for event in events[:25]:
            writer.write(event)
            if writer.due():
                writer.close_part()
        assert len(writer.closed_parts) == 2  # 10 + 10 JSON lines of about the same size (sizes vary by a few bytes)
        assert writer.sync() is (fmt == "jsonl")  # a Parquet part is durable only once closed
        assert not writer.due()
        clock.now = 60.0
        assert writer.due()  # the open part is a minute old
        writer.close_part()
        for event in events[25:]:
            writer.write(event)
    # Leaving the block closes the open part.
    names = sorted(path.name for path in tmp_path.iterdir() if not path.name.startswith("."))
    assert names == [f"events-a-{seq:06d}.{fmt}" for seq in range(1, 5)]
    assert not list(tmp_path.glob(".events-*.open"))
    back = read_parts(tmp_path)
    assert [record["event_id"] for _source, _line, record in back] == [event["event_id"] for event in events]
    assert back[3][2]["campaign"] == "spring"
    assert back[0][0] == str(tmp_path / f"events-a-000001.{fmt}") and back[0][1] == 1
    if fmt == "parquet":
        assert all(isinstance(record["ts"], float) for _s, _l, record in back)
    else:
        assert [record for _s, _l, record in back] == events


def test_a_crashed_jsonl_part_is_repaired_and_closed_on_restart(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(part_files, "LOCK_WAIT_S", 0.3)
    rng = random.Random(7)
    events = [make_event(index, rng) for index in range(5)]
    writer = part_files.PartWriter(tmp_path, "a").__enter__()
    for event in events[:3]:
        writer.write(event)
    writer.sync()  # what a batch commit sees: these three are durable and committed
    open_path = writer.open_path
    with open_path.open("a") as handle:  # then the process dies mid-line, holding the lock
        handle.write('{"event_id": "torn')
    with pytest.raises(part_files.CollectorIdInUse, match="--collector-id"):
        with part_files.PartWriter(tmp_path, "a"):
            pass
    writer._lock and part_files._unlock(writer._lock)  # the kernel frees a dead process's lock
    writer._lock = None
    with part_files.PartWriter(tmp_path, "a") as restarted:
        assert restarted.recovered.closed == [tmp_path / "events-a-000001.jsonl"]
        assert restarted.repaired_bytes == len('{"event_id": "torn')
        for event in events[3:]:
            restarted.write(event)
    assert [p.name for p in sorted(tmp_path.glob("events-*"))] == ["events-a-000001.jsonl", "events-a-000002.jsonl"]
    assert [r["event_id"] for _s, _l, r in read_parts(tmp_path)] == [e["event_id"] for e in events]


def test_a_live_collector_closes_a_dead_peers_open_part_and_drops_an_uncommitted_parquet_part(
    tmp_path: Path,
) -> None:
    rng = random.Random(8)
    events = [make_event(index, rng) for index in range(4)]
    alive = part_files._try_lock(part_files._lock_path(tmp_path, "d"))  # a live peer's open part is left alone
    assert alive is not None
    (tmp_path / ".events-d-000001.jsonl.open").write_text(json.dumps(events[1]) + "\n", encoding="utf-8")
    try:
        with part_files.PartWriter(tmp_path, "a") as writer:
            writer.write(events[2])
            # Peers b and c die while a runs (a rebalance follows: on_assign calls adopt_orphans).
            (tmp_path / ".events-b-000003.jsonl.open").write_text(json.dumps(events[0]) + "\n" + '{"tor', "utf-8")
            (tmp_path / ".events-c-000001.parquet.open").write_bytes(b"PAR1 torn")
            assert writer.adopt_orphans() == 2
            assert writer.adopt_orphans() == 0
            assert writer.open_path.exists()  # its own open part is not touched
        assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".collector-")) == [
            ".events-d-000001.jsonl.open", "events-a-000001.jsonl", "events-b-000003.jsonl",
        ]
        with part_files.PartWriter(tmp_path, "b") as restarted_b:  # the dead peer, restarted, continues after its seq
            restarted_b.write(events[3])
        assert (tmp_path / "events-b-000004.jsonl").exists()
    finally:
        part_files._unlock(alive)


def test_the_pairs_step_reads_a_mixed_folder_and_counts_duplicates_across_collectors(tmp_path: Path) -> None:
    from pintext.ingest.deadletter import DeadLetter
    from pintext.ingest.pairs.memory import collect_engagement
    from pintext.ingest.pairs.rules import PairOptions

    rng = random.Random(10)
    events = [make_event(index, rng) for index in range(15)]
    with part_files.PartWriter(tmp_path, "a", "jsonl") as a:
        for event in events[:10]:
            a.write(event)
    with part_files.PartWriter(tmp_path, "b", "parquet") as b:  # b re-read 5 of a's events (at-least-once)
        for event in events[5:]:
            b.write(event)
    pins = {f"pin-{n}": {"id": f"pin-{n}", "title": f"pin number {n}"} for n in range(101)}
    with DeadLetter(tmp_path / "rejected-pairs.jsonl") as dead_letter:
        aggregator = collect_engagement(tmp_path, pins, None, PairOptions(), dead_letter)
    assert dead_letter.count == 0
    assert aggregator.counters["events_valid"] == 20
    assert aggregator.counters["events_duplicate"] == 5


def test_collector_config_parts_mode_and_checks(tmp_path: Path) -> None:
    plain = kafka_config.CollectorConfig("h:1", "t", tmp_path)
    assert not plain.parts and plain.events_path == tmp_path / part_files.EVENTS_FILE
    rolled = kafka_config.CollectorConfig("h:1", "t", tmp_path, roll_seconds=5, collector_id="c1")
    assert rolled.parts and rolled.events_path == tmp_path and rolled.rejected_path == tmp_path / "rejected-c1.jsonl"
    assert kafka_config.CollectorConfig("h:1", "t", tmp_path, format="parquet").parts
    with pytest.raises(ValueError, match="format"):
        kafka_config.CollectorConfig("h:1", "t", tmp_path, format="csv")
    with pytest.raises(ValueError, match="collector id"):
        kafka_config.CollectorConfig("h:1", "t", tmp_path, collector_id="a/b")


def test_a_folder_without_parts_is_named(tmp_path: Path) -> None:
    from pintext.ingest.readers import record_parts

    (tmp_path / ".events-a-000001.jsonl.open").write_text("{}\n")
    with pytest.raises(ValueError, match=str(tmp_path)):
        record_parts(tmp_path)
    with pytest.raises(FileNotFoundError):
        record_parts(tmp_path / "missing")


# ----------------------------------------------------------------------------------------------- live broker


@pytest.fixture
def topic(kafka_bootstrap: str) -> Iterator[str]:
    """A fresh topic name; the topic is deleted afterwards so a reused broker does not pile them up."""
    from confluent_kafka.admin import AdminClient

    name = f"pintext-test-{uuid.uuid4().hex[:10]}"
    yield name
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    if name in admin.list_topics(timeout=10).topics:
        admin.delete_topics([name])[name].result(timeout=30)


def produce(kafka_bootstrap: str, topic: str, path: Path, partitions: int = 3) -> None:
    result = run_cli("produce", str(path), "--bootstrap", kafka_bootstrap, "--topic", topic, "--partitions", str(partitions))
    assert result.returncode == 0, result.stdout + result.stderr
    assert table_value(result.stdout, "delivered") == str(count_lines(path)), result.stdout


def table_value(stdout: str, row: str) -> str | None:
    """The value of one row of a summary table (`│ row   │ value │`), or None when the row is not there."""
    match = re.search(rf"│ {re.escape(row)}\s+│ (.*?)\s*│", stdout)
    return match.group(1) if match else None


def collector_args(kafka_bootstrap: str, topic: str, out: Path, group: str, *extra: str) -> list[str]:
    return ["collect", "--bootstrap", kafka_bootstrap, "--topic", topic, "--out", str(out), "--group", group, *extra]


@pytest.mark.kafka
def test_collector_killed_mid_stream_loses_nothing(kafka_bootstrap: str, topic: str, tmp_path: Path) -> None:
    first_lines, first_valid, first_bad = make_lines(0, 2000, seed=1)
    second_lines, second_valid, second_bad = make_lines(2000, 1000, seed=2)
    produce(kafka_bootstrap, topic, write_lines(tmp_path / "first.jsonl", first_lines))
    out = tmp_path / "out"
    events_path, rejected_path = out / part_files.EVENTS_FILE, out / part_files.REJECTED_FILE
    group = f"group-{topic}"
    batch_size = 20

    # No idle timeout: the collector would wait forever for the second half, so the kill is surely mid-stream.
    collector = subprocess.Popen(
        [PINTEXT, *collector_args(kafka_bootstrap, topic, out, group, "--batch-size", str(batch_size))],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        wait_for(lambda: count_lines(events_path) >= 300 or collector.poll() is not None, 90, "300 events written")
        assert collector.poll() is None, f"collector exited early: {collector.stderr.read() if collector.stderr else ''}"
        collector.send_signal(signal.SIGKILL)
        collector.wait(timeout=30)
    finally:
        if collector.poll() is None:
            collector.kill()
            collector.wait(timeout=30)
    assert collector.returncode == -signal.SIGKILL
    written_before_kill = count_lines(events_path)
    assert 300 <= written_before_kill < len(first_valid) + len(second_valid)

    produce(kafka_bootstrap, topic, write_lines(tmp_path / "second.jsonl", second_lines))
    restarted = run_cli(*collector_args(kafka_bootstrap, topic, out, group, "--idle-timeout", "3"), timeout=180)
    assert restarted.returncode == 0, restarted.stdout + restarted.stderr
    assert "idle-timeout" in restarted.stdout

    events = read_jsonl(events_path)  # every line parses: a torn last line would fail here
    ids = [event["event_id"] for event in events]
    expected_valid = first_valid | second_valid
    assert expected_valid - set(ids) == set(), "valid events missing after the crash"
    assert set(ids) <= expected_valid, "something other than a valid event reached events.jsonl"
    # At-least-once, not at-least-twice: only the batch written but not committed at the kill comes back.
    assert len(ids) - len(set(ids)) <= batch_size

    rejected = read_jsonl(rejected_path)
    expected_bad = {**first_bad, **second_bad}
    by_raw = {entry["raw"]: entry for entry in rejected}
    assert set(by_raw) == set(expected_bad)
    for raw, (field, reason) in expected_bad.items():
        entry = by_raw[raw]
        assert (entry["field"], entry["reason"]) == (field, reason), entry
        assert entry["source"] == topic
        partition, offset = entry["line"].split("/")
        assert 0 <= int(partition) < 3 and int(offset) >= 0
    assert {reason for _field, reason in expected_bad.values()} >= {"not valid JSON", "missing"}


@pytest.mark.kafka
def test_sigterm_commits_and_exits_cleanly(kafka_bootstrap: str, topic: str, tmp_path: Path) -> None:
    lines, valid, bad = make_lines(0, 300, seed=3)
    produce(kafka_bootstrap, topic, write_lines(tmp_path / "events.jsonl", lines), partitions=1)
    out = tmp_path / "out"
    group = f"group-{topic}"
    collector = subprocess.Popen(
        [PINTEXT, *collector_args(kafka_bootstrap, topic, out, group)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        wait_for(lambda: count_lines(out / part_files.EVENTS_FILE) >= len(valid), 90, "all events written")
        stdout, stderr = terminate(collector)
    finally:
        kill_if_running(collector)
    assert collector.returncode == 0, stderr
    assert "signal" in stdout
    # Everything was committed before the exit: the same group finds nothing new.
    again = run_cli(*collector_args(kafka_bootstrap, topic, out, group, "--idle-timeout", "2"))
    assert again.returncode == 0, again.stderr
    assert "│ consumed          │ 0" in again.stdout, again.stdout
    assert count_lines(out / part_files.EVENTS_FILE) == len(valid)
    assert count_lines(out / part_files.REJECTED_FILE) == len(bad)


@pytest.mark.kafka
def test_max_messages_and_unknown_pins(kafka_bootstrap: str, topic: str, tmp_path: Path) -> None:
    rng = random.Random(4)
    events = [make_event(index, rng) for index in range(40)]
    produce(kafka_bootstrap, topic, write_lines(tmp_path / "events.jsonl", [json.dumps(e) for e in events]), partitions=1)
    known = {f"pin-{n}" for n in range(101) if n % 2 == 0}
    pins = write_lines(tmp_path / "pins.jsonl", [json.dumps({"id": pin, "title": f"title {pin}"}) for pin in sorted(known)])
    out = tmp_path / "out"
    result = run_cli(*collector_args(kafka_bootstrap, topic, out, f"g-{topic}", "--pins", str(pins), "--max-messages", "25"))
    assert result.returncode == 0, result.stderr
    assert "max-messages" in result.stdout
    first_25 = events[:25]

    def pins_known(event: dict[str, Any]) -> bool:
        return event["pin_id"] in known and event.get("subject_pin_id", "pin-0") in known

    written = read_jsonl(out / part_files.EVENTS_FILE)
    rejected = read_jsonl(out / part_files.REJECTED_FILE)
    assert [e["event_id"] for e in written] == [e["event_id"] for e in first_25 if pins_known(e)]
    assert len(rejected) == sum(not pins_known(e) for e in first_25) > 0
    assert {entry["reason"] for entry in rejected} == {"unknown pin"}


@pytest.mark.kafka
def test_strict_stops_at_the_first_bad_message_and_resumes_there(
    kafka_bootstrap: str, topic: str, tmp_path: Path
) -> None:
    rng = random.Random(5)
    good = [json.dumps(make_event(index, rng)) for index in range(8)]
    lines = good[:5] + ['{"event_id": "broken"}'] + good[5:]
    produce(kafka_bootstrap, topic, write_lines(tmp_path / "events.jsonl", lines), partitions=1)
    out = tmp_path / "out"
    args = collector_args(kafka_bootstrap, topic, out, f"g-{topic}", "--strict", "--idle-timeout", "3")
    for _attempt in range(2):  # the second run resumes at the bad message, not before it
        result = run_cli(*args)
        assert result.returncode == 2, result.stdout + result.stderr
        message = " ".join(result.stderr.split())
        assert f"{topic}:0/5" in message and "'ts'" in message and "missing" in message, result.stderr
        assert count_lines(out / part_files.EVENTS_FILE) == 5
    assert not read_jsonl(out / part_files.REJECTED_FILE)


def test_collect_cli_rejects_missing_pins_file(tmp_path: Path) -> None:
    result = run_cli("collect", "--bootstrap", "127.0.0.1:1", "--topic", "t", "--out", str(tmp_path), "--pins", str(tmp_path / "nope.jsonl"))
    assert result.returncode != 0
    assert "nope.jsonl" in result.stdout + result.stderr



def test_collect_cli_rejects_a_bad_format_or_collector_id(tmp_path: Path) -> None:
    base = ["collect", "--bootstrap", "127.0.0.1:1", "--topic", "t", "--out", str(tmp_path)]
    result = run_cli(*base, "--format", "csv")
    assert result.returncode == 2 and "format must be one of jsonl, parquet" in result.stderr, result.stderr
    result = run_cli(*base, "--collector-id", "a/b")
    assert result.returncode == 2 and "collector id 'a/b'" in result.stderr, result.stderr


@pytest.mark.kafka
def test_a_second_collector_with_the_same_id_in_the_same_folder_is_refused(
    kafka_bootstrap: str, topic: str, tmp_path: Path
) -> None:
    produce(kafka_bootstrap, topic, write_lines(tmp_path / "events.jsonl", [json.dumps(make_event(0, random.Random(9)))]))
    out = tmp_path / "parts"
    first = subprocess.Popen(
        [PINTEXT, *collector_args(kafka_bootstrap, topic, out, f"g1-{topic}", "--collector-id", "x")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        wait_for(lambda: (out / ".collector-x.lock").exists() and count_lines(out / ".events-x-000001.jsonl.open") == 1
                 or first.poll() is not None, 90, "the first collector writing its part")
        second = run_cli(*collector_args(kafka_bootstrap, topic, out, f"g2-{topic}", "--collector-id", "x"))
        assert second.returncode == 2, second.stdout + second.stderr
        assert "collector id 'x' is in use" in " ".join(second.stderr.split())
        _stdout, stderr = terminate(first)
    finally:
        kill_if_running(first)
    assert first.returncode == 0, stderr
    assert [path.name for path in out.glob("events-*")] == ["events-x-000001.jsonl"]
