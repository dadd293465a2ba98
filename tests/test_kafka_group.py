"""Two collectors in one consumer group on a 4-partition topic: one is SIGKILLed mid-stream, the other takes its
partitions over after the rebalance, and every valid event produced is on disk in the parts folder (duplicates
allowed and counted; the pairs step's dedupe removes them), every malformed one in a dead letter, none lost.

Runs against the real broker (`kafka_bootstrap`); every wait polls a real condition (group membership, committed
offsets, lines on disk) with a deadline.
"""

from __future__ import annotations

import json
import signal
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pintext.ingest.collect import kafka_produce
from pintext.ingest.deadletter import DeadLetter
from tests.test_kafka_collect import PINTEXT, kill_if_running, make_lines, terminate, wait_for, write_lines

PARTITIONS = 4
BATCH_SIZE = 50
ROLL_BYTES = 20_000


@pytest.fixture
def topic(kafka_bootstrap: str) -> Iterator[str]:
    """A fresh 4-partition topic, deleted afterwards."""
    from confluent_kafka.admin import AdminClient

    name = f"pintext-group-{uuid.uuid4().hex[:10]}"
    assert kafka_produce.ensure_topic(kafka_bootstrap, name, partitions=PARTITIONS)
    yield name
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    if name in admin.list_topics(timeout=10).topics:
        admin.delete_topics([name])[name].result(timeout=30)


def produce_file(path: Path, bootstrap: str, topic: str) -> kafka_produce.ProduceStats:
    """Replay a file into the topic; every line must be sent (none too large for Kafka)."""
    with DeadLetter(path.with_name(path.name + ".rejected.jsonl")) as rejected:
        stats = kafka_produce.produce_file(path, bootstrap, topic, rejected)
    assert stats.rejected == 0 and stats.sent == stats.lines
    return stats


def group_members(bootstrap: str, group: str) -> dict[str, int]:
    """client id -> partitions assigned, for the group's current members (empty while it rebalances)."""
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})
    description = admin.describe_consumer_groups([group])[group].result(timeout=10)
    return {member.member_id: len(member.assignment.topic_partitions) for member in description.members}


def lag(bootstrap: str, topic: str, group: str) -> int:
    """Messages in the topic after the group's committed offsets (all partitions)."""
    from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
    from confluent_kafka.admin import AdminClient, OffsetSpec

    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})
    partitions = [TopicPartition(topic, partition) for partition in range(PARTITIONS)]
    ends = admin.list_offsets({tp: OffsetSpec.latest() for tp in partitions})
    end = {tp.partition: future.result(timeout=10).offset for tp, future in ends.items()}
    request = [ConsumerGroupTopicPartitions(group, partitions)]
    committed = admin.list_consumer_group_offsets(request)[group].result(timeout=10).topic_partitions
    done = {tp.partition: max(tp.offset, 0) for tp in committed}
    return sum(end[partition] - done.get(partition, 0) for partition in range(PARTITIONS))


def records_on_disk(folder: Path, collector_id: str) -> int:
    """Events a collector has written so far: lines of its JSONL parts (open or closed), rows of closed Parquet."""
    from pintext.ingest.readers import parquet_rows

    total = 0
    for path in folder.glob(f"*events-{collector_id}-*"):
        if path.name.endswith(".parquet"):
            total += sum(1 for _ in parquet_rows(path))
        elif ".jsonl" in path.name:
            with path.open("rb") as handle:
                total += sum(1 for line in handle if line.endswith(b"\n"))
    return total


def start_collector(bootstrap: str, topic: str, out: Path, group: str, collector_id: str, fmt: str) -> Any:
    args = ["collect", "--bootstrap", bootstrap, "--topic", topic, "--out", str(out), "--group", group,
            "--collector-id", collector_id, "--batch-size", str(BATCH_SIZE), "--roll-bytes", str(ROLL_BYTES),
            "--format", fmt]
    if fmt == "parquet":
        args += ["--roll-seconds", "1"]  # an idle collector's Parquet part closes (and commits) within a second
    return subprocess.Popen([PINTEXT, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.kafka
@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_a_killed_collector_s_partitions_move_to_the_survivor_and_nothing_is_lost(
    kafka_bootstrap: str, topic: str, tmp_path: Path, fmt: str
) -> None:
    from pintext.ingest.deadletter import DeadLetter
    from pintext.ingest.pairs.memory import collect_engagement
    from pintext.ingest.pairs.rules import PairOptions
    from pintext.ingest.readers import read_located_records
    from pintext.schemas import validate_event

    first_lines, first_valid, first_bad = make_lines(0, 3000, seed=11)
    second_lines, second_valid, second_bad = make_lines(3000, 2000, seed=12)
    out = tmp_path / "parts"
    group = f"group-{topic}"
    survivor = start_collector(kafka_bootstrap, topic, out, group, "a", fmt)
    victim = start_collector(kafka_bootstrap, topic, out, group, "b", fmt)
    try:
        wait_for(lambda: sorted(group_members(kafka_bootstrap, group).values()) == [2, 2], 90,
                 "both collectors in the group with 2 partitions each", poll_s=0.2)
        produced = produce_file(write_lines(tmp_path / "first.jsonl", first_lines), kafka_bootstrap, topic)
        assert produced.delivered == len(first_lines)
        wait_for(lambda: records_on_disk(out, "b") >= 200 or victim.poll() is not None, 90, "b wrote 200 events")
        assert victim.poll() is None, victim.stderr.read() if victim.stderr else ""
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=30)
        assert victim.returncode == -signal.SIGKILL

        produced = produce_file(write_lines(tmp_path / "second.jsonl", second_lines), kafka_bootstrap, topic)
        assert produced.delivered == len(second_lines)
        # After the session timeout the group gives b's partitions to a, which drains them from b's last commit.
        wait_for(lambda: lag(kafka_bootstrap, topic, group) == 0 or survivor.poll() is not None, 180,
                 "the group's committed offsets at the end of every partition", poll_s=0.5)
        assert survivor.poll() is None, survivor.stderr.read() if survivor.stderr else ""
        assert list(group_members(kafka_bootstrap, group).values()) == [PARTITIONS]
        stdout, stderr = terminate(survivor)
    finally:
        kill_if_running(victim)
        kill_if_running(survivor)
    assert survivor.returncode == 0, stderr
    assert "signal" in stdout

    # b's open part was closed by a (JSONL: committed events, kept) or removed (Parquet: never committed).
    assert not list(out.glob(".events-*.open"))
    assert {path.name.split("-")[1] for path in out.glob("events-*")} == {"a", "b"}
    with DeadLetter(tmp_path / "read-rejected.jsonl") as reading:
        ids = [record["event_id"] for _s, _l, record in read_located_records(out, validate_event, reading)]
    assert reading.count == 0, "a part holds something that is not a valid event"
    expected_valid = first_valid | second_valid
    assert expected_valid - set(ids) == set(), "valid events lost in the rebalance"
    assert set(ids) <= expected_valid
    duplicates = len(ids) - len(set(ids))
    # At-least-once: only what b had not committed at the kill comes back (a batch; for Parquet its open part).
    bound = BATCH_SIZE * 2 if fmt == "jsonl" else ROLL_BYTES // 100 + BATCH_SIZE * 2
    assert duplicates <= bound, duplicates

    rejected = [json.loads(line) for name in ("rejected-a.jsonl", "rejected-b.jsonl")
                for line in (out / name).read_text(encoding="utf-8").splitlines()]
    expected_bad = {**first_bad, **second_bad}
    assert {entry["raw"] for entry in rejected} == set(expected_bad)
    for entry in rejected:
        assert (entry["field"], entry["reason"]) == expected_bad[entry["raw"]]
        assert entry["source"] == topic and 0 <= int(entry["line"].split("/")[0]) < PARTITIONS
    # The takeover happened: a (2 partitions before the kill) read messages of all 4, b's included.
    partitions_of = {name: {int(json.loads(line)["line"].split("/")[0])
                            for line in (out / f"rejected-{name}.jsonl").read_text(encoding="utf-8").splitlines()}
                     for name in ("a", "b")}
    assert partitions_of["a"] == set(range(PARTITIONS)) and partitions_of["b"] <= partitions_of["a"], partitions_of
    assert partitions_of["b"], "b wrote no dead-letter entry before the kill"

    # The pairs step reads the folder and removes the duplicates by event_id.
    pins = {f"pin-{n}": {"id": f"pin-{n}", "title": f"pin number {n}"} for n in range(101)}
    with DeadLetter(tmp_path / "pairs-rejected.jsonl") as dead_letter:
        aggregator = collect_engagement(out, pins, None, PairOptions(), dead_letter)
    assert aggregator.counters["events_valid"] == len(ids)
    assert aggregator.counters["events_duplicate"] == duplicates
    recovered = [line for line in stdout.splitlines() if "crashed open parts recovered" in line]
    print(f"{fmt}: {len(ids)} events on disk, {duplicates} duplicates, {len(rejected)} dead-lettered, "
          f"survivor: {' '.join(recovered[0].split()) if recovered else 'no crashed open part to recover'}")


@pytest.mark.kafka
def test_a_rebalance_commits_an_open_parquet_part_before_the_partitions_go(
    kafka_bootstrap: str, topic: str, tmp_path: Path
) -> None:
    """A Parquet part commits only when it closes; a joining collector takes half the partitions, so the first must
    close its part and commit in `on_revoke`, else the newcomer would read those events again."""
    from pintext.ingest.readers import parquet_rows

    lines, valid, bad = make_lines(0, 1000, seed=13)
    produced = produce_file(write_lines(tmp_path / "events.jsonl", lines), kafka_bootstrap, topic)
    assert produced.delivered == len(lines)
    out = tmp_path / "parts"
    group = f"group-{topic}"
    big = ["--roll-bytes", "100000000"]  # the part would stay open for the whole test without the rebalance
    first = subprocess.Popen(
        [PINTEXT, "collect", "--bootstrap", kafka_bootstrap, "--topic", topic, "--out", str(out), "--group", group,
         "--collector-id", "a", "--format", "parquet", *big], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    second = None
    try:
        # Malformed messages are dead-lettered as they come: all of them there = the whole topic consumed.
        rejected = out / "rejected-a.jsonl"
        wait_for(lambda: rejected.exists() and len(rejected.read_text().splitlines()) >= len(bad)
                 or first.poll() is not None, 90, "a consumed the topic", poll_s=0.1)
        assert first.poll() is None, first.stderr.read() if first.stderr else ""
        assert lag(kafka_bootstrap, topic, group) == len(lines), "nothing is committed while the part is open"
        assert not list(out.glob("events-*"))
        second = subprocess.Popen(
            [PINTEXT, "collect", "--bootstrap", kafka_bootstrap, "--topic", topic, "--out", str(out), "--group", group,
             "--collector-id", "b", "--format", "parquet", *big],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        wait_for(lambda: sorted(group_members(kafka_bootstrap, group).values()) == [2, 2], 90,
                 "both collectors in the group with 2 partitions each", poll_s=0.2)
        assert lag(kafka_bootstrap, topic, group) == 0, "the revoke closed the part and committed it"
        parts = sorted(out.glob("events-*"))
        assert [path.name for path in parts] == ["events-a-000001.parquet"]
        ids = [row["event_id"] for row in parquet_rows(parts[0])]
        assert len(ids) == len(set(ids)) and set(ids) == valid
        terminate(second)
        terminate(first)
    finally:
        kill_if_running(first)
        if second is not None:
            kill_if_running(second)
    assert first.returncode == 0 and second.returncode == 0
    assert sorted(path.name for path in out.glob("events-*")) == ["events-a-000001.parquet"]  # b had nothing to read
