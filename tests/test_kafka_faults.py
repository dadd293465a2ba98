"""Kafka faults (issue 13): poison messages, a broker SIGKILLed under a running collector, the broker's user, and
the default bootstrap of `collect` / `produce`.

Poison messages run against the session broker (`kafka_bootstrap`); the tests that kill the broker, read its
process or rely on its recorded address use a private managed broker of their own (`private_kafka_broker`),
started, killed and restarted by the project's lifecycle. Every wait polls a real condition with a deadline; each
test prints how many events went in and came out (`-s`).
"""

from __future__ import annotations

import gzip
import json
import os
import random
import signal
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pintext.ingest.collect import kafka_records, part_files
from pintext.servers import kafka_broker as kb
from tests.test_kafka_collect import (
    PINTEXT,
    kill_if_running,
    make_event,
    read_jsonl,
    table_value,
    wait_for,
    write_lines,
)

pytestmark = pytest.mark.kafka


def good_events(start: int, count: int) -> list[dict[str, Any]]:
    rng = random.Random(start)
    return [make_event(index, rng) for index in range(start, start + count)]


def cli(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PINTEXT, *args], capture_output=True, text=True, timeout=timeout, env=env)


def event_ids(path: Path) -> Counter[str]:
    return Counter(record["event_id"] for record in read_jsonl(path))


def delete_topic(bootstrap: str, name: str) -> None:
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})
    if name in admin.list_topics(timeout=10).topics:
        admin.delete_topics([name])[name].result(timeout=30)


@pytest.fixture
def topic(kafka_bootstrap: str) -> Iterator[str]:
    name = f"pintext-faults-{uuid.uuid4().hex[:10]}"
    yield name
    delete_topic(kafka_bootstrap, name)


# ----------------------------------------------------------------------------------------------- poison messages

DEEP = b"[" * 10_000 + b"]" * 10_000
# (message value, the reason its dead-letter entry must give)
POISON: list[tuple[bytes, str]] = [
    (DEEP, "nested too deeply"),
    (b"\xff\xfe not UTF-8 at all", "not valid UTF-8"),
    (b"{this is not json", "not valid JSON"),
    (json.dumps({**good_events(900, 1)[0], "pad": "x" * 1_100_000}).encode(), kafka_records.TOO_LARGE),
    (json.dumps(good_events(901, 1)[0]).replace('"user-', '"\\ud800user-').encode(), "not valid UTF-8"),
    (json.dumps({**good_events(902, 1)[0], "ts": 1}).replace('"ts": 1', '"ts": 1' + "0" * 400).encode(),
     "number out of range"),
]


def produce_raw(bootstrap: str, topic: str, values: list[bytes]) -> None:
    """Send the values exactly as given (no PinText code in between), on a topic that takes 2 MB messages."""
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})
    created = admin.create_topics([NewTopic(topic, 1, 1, config={"max.message.bytes": "2100000"})])
    created[topic].result(timeout=30)
    producer = Producer({"bootstrap.servers": bootstrap, "message.max.bytes": 2_100_000, "log_level": 3})
    failures: list[Any] = []
    for value in values:
        producer.produce(topic, value=value, on_delivery=lambda error, _m: error and failures.append(error))
    assert producer.flush(30) == 0 and not failures, failures


def test_poison_messages_are_dead_lettered_with_their_offset_and_the_rest_is_collected(
    kafka_bootstrap: str, topic: str, tmp_path: Path
) -> None:
    before, after = good_events(0, 3), good_events(3, 3)
    values = [json.dumps(e).encode() for e in before] + [v for v, _ in POISON] + [json.dumps(e).encode() for e in after]
    produce_raw(kafka_bootstrap, topic, values)
    out = tmp_path / "out"
    args = ["collect", "--bootstrap", kafka_bootstrap, "--topic", topic, "--out", str(out), "--idle-timeout", "3"]
    first = cli(*args)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "Traceback" not in first.stderr
    collected = event_ids(out / part_files.EVENTS_FILE)
    rejected = read_jsonl(out / part_files.REJECTED_FILE)
    print(f"poison: {len(values)} messages in ({len(POISON)} poison), {sum(collected.values())} events out, "
          f"{len(rejected)} dead-lettered")
    assert collected == Counter(e["event_id"] for e in before + after)
    expected = [(f"0/{len(before) + index}", reason) for index, (_value, reason) in enumerate(POISON)]
    assert [(entry["line"], entry["reason"]) for entry in rejected] == expected
    assert {entry["source"] for entry in rejected} == {topic}
    assert (table_value(first.stdout, "rejected") or "").startswith(f"{len(POISON)} ->")  # the path may wrap

    # The poison offsets were committed like any other: a re-run collects nothing, twice or otherwise.
    again = cli(*args)
    assert again.returncode == 0, again.stdout + again.stderr
    assert table_value(again.stdout, "consumed") == "0"
    assert event_ids(out / part_files.EVENTS_FILE) == collected
    assert len(read_jsonl(out / part_files.REJECTED_FILE)) == len(POISON)


def test_produce_dead_letters_what_kafka_cannot_carry_and_sends_the_rest(
    kafka_bootstrap: str, topic: str, tmp_path: Path
) -> None:
    good = good_events(0, 4)
    lines = [json.dumps(good[0]), DEEP.decode(), json.dumps(good[1]), "{not json", json.dumps(good[2]),
             json.dumps({**good_events(99, 1)[0], "pad": "y" * 1_100_000}), json.dumps(good[3])]
    source = write_lines(tmp_path / "events.jsonl", lines)
    with source.open("ab") as handle:
        handle.write(b"\xff\xfe not UTF-8\n")
    dead_letter = tmp_path / "produce-rejected.jsonl"
    result = cli("produce", str(source), "--bootstrap", kafka_bootstrap, "--topic", topic,
                 "--dead-letter", str(dead_letter))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    rejected = read_jsonl(dead_letter)
    assert [(entry["source"], entry["line"], entry["reason"]) for entry in rejected] == [
        (str(source), 6, kafka_records.TOO_LARGE)]
    assert table_value(result.stdout, "sent") == "7" and table_value(result.stdout, "delivered") == "7"

    # As-is: the malformed lines reached the topic, and the collector dead-letters them with their reason.
    out = tmp_path / "out"
    collected = cli("collect", "--bootstrap", kafka_bootstrap, "--topic", topic, "--out", str(out),
                    "--idle-timeout", "3")
    assert collected.returncode == 0, collected.stdout + collected.stderr
    ids = event_ids(out / part_files.EVENTS_FILE)
    reasons = sorted(entry["reason"] for entry in read_jsonl(out / part_files.REJECTED_FILE))
    print(f"produce: {len(lines) + 1} lines in, 7 sent, 1 dead-lettered by produce; {sum(ids.values())} events "
          f"collected, {len(reasons)} dead-lettered by collect")
    assert ids == Counter(e["event_id"] for e in good)
    assert reasons == ["nested too deeply", "not valid JSON", "not valid UTF-8"]


def test_produce_validate_sends_only_valid_events_and_a_truncated_gzip_keeps_its_whole_lines(
    kafka_bootstrap: str, topic: str, tmp_path: Path
) -> None:
    good = good_events(0, 300)
    lines = [json.dumps(e) for e in good[:2]] + ["{not json", DEEP.decode()] + [json.dumps(e) for e in good[2:]]
    whole = gzip.compress("".join(line + "\n" for line in lines).encode())
    source = tmp_path / "events.jsonl.gz"
    source.write_bytes(whole[: len(whole) * 2 // 3])  # cut: the gzip stream ends mid-member
    dead_letter = tmp_path / "rejected.jsonl"
    result = cli("produce", str(source), "--bootstrap", kafka_bootstrap, "--topic", topic, "--validate",
                 "--dead-letter", str(dead_letter))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    rejected = read_jsonl(dead_letter)
    assert [(entry["line"], entry["reason"]) for entry in rejected[:2]] == [(3, "not valid JSON"),
                                                                             (4, "nested too deeply")]
    assert len(rejected) == 3 and rejected[2]["reason"] == "truncated or corrupt gzip"
    sent = int(table_value(result.stdout, "sent") or 0)
    print(f"produce --validate: {len(lines)} lines written, {rejected[2]['line'] - 1} readable, {sent} sent, "
          f"{len(rejected)} dead-lettered")
    assert sent == rejected[2]["line"] - 1 - 2  # every whole line before the damage, less the two invalid ones
    assert table_value(result.stdout, "delivered") == str(sent)


# ----------------------------------------------------------------------------------------------- private broker


def broker_env(broker: Any, **extra: str) -> dict[str, str]:
    """The environment of a CLI run that should find `broker` as the managed one (KAFKA_BOOTSTRAP unset)."""
    env = {key: value for key, value in os.environ.items() if key != "KAFKA_BOOTSTRAP"}
    env.update(PINTEXT_HOME=str(broker.settings.home), PINTEXT_KAFKA_PORT=str(broker.settings.port),
               PINTEXT_KAFKA_CONTROLLER_PORT=str(broker.settings.controller_port))
    return {**env, **extra}


def sigkill_broker(broker: Any) -> int:
    """SIGKILL the broker and wait until it is wholly gone: a JVM's main thread turns zombie while its other
    threads (and its listening sockets) are still being torn down, so it is reaped (it is this process's child,
    started by the fixture) or, if someone else's child, polled until /proc forgets it."""
    pid = broker.running_pid()
    assert pid is not None, "the private broker is not running"
    os.kill(pid, signal.SIGKILL)
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        wait_for(lambda: not Path(f"/proc/{pid}").exists(), 30, "the broker to die")
    return pid


def produce_events(env: dict[str, str], path: Path, topic: str, events: list[dict[str, Any]], *extra: str) -> None:
    produced = cli("produce", str(write_lines(path, [json.dumps(e) for e in events])), "--topic", topic, *extra,
                   env=env)
    assert produced.returncode == 0, produced.stdout + produced.stderr


def start_collect(env: dict[str, str], topic: str, out: Path, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen([PINTEXT, "collect", "--topic", topic, "--out", str(out), *extra], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def ensure_running(broker: Any) -> None:
    """Start the private broker again if a test killed it (the next test needs it)."""
    if broker.running_pid() is None:
        broker.start()


def test_the_managed_broker_runs_as_a_service_user_and_owns_its_folder(private_kafka_broker: Any) -> None:
    ensure_running(private_kafka_broker)
    pid = private_kafka_broker.running_pid()
    uids = next(line.split()[1:] for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                if line.startswith("Uid:"))
    print(f"broker pid {pid}: real/effective/saved/fs uid {uids}")
    assert all(int(uid) != 0 for uid in uids), f"the broker runs as root: {uids}"
    data_owner = private_kafka_broker.settings.data_dir.stat().st_uid
    assert data_owner == int(uids[1])


def test_produce_and_collect_find_the_managed_broker_without_bootstrap(
    private_kafka_broker: Any, tmp_path: Path
) -> None:
    ensure_running(private_kafka_broker)
    name = f"pintext-default-{uuid.uuid4().hex[:8]}"
    events = good_events(0, 20)
    source = write_lines(tmp_path / "events.jsonl", [json.dumps(e) for e in events])
    env = broker_env(private_kafka_broker)
    produced = cli("produce", str(source), "--topic", name, env=env)
    assert produced.returncode == 0, produced.stdout + produced.stderr
    assert table_value(produced.stdout, "delivered") == "20"
    out = tmp_path / "out"
    collected = cli("collect", "--topic", name, "--out", str(out), "--idle-timeout", "2", env=env)
    assert collected.returncode == 0, collected.stdout + collected.stderr
    assert event_ids(out / part_files.EVENTS_FILE) == Counter(e["event_id"] for e in events)

    # KAFKA_BOOTSTRAP beats the managed broker's address, and --bootstrap beats both.
    here = private_kafka_broker.settings.bootstrap
    elsewhere = broker_env(private_kafka_broker, PINTEXT_KAFKA_PORT="1", KAFKA_BOOTSTRAP=here)
    assert kb.managed_bootstrap(kb.settings_from_env(elsewhere)) == here  # recorded by `up`: port 1 is ignored
    produced_again = cli("produce", str(source), "--topic", name, env={**elsewhere, "PINTEXT_HOME": str(tmp_path)})
    assert table_value(produced_again.stdout, "delivered") == "20", produced_again.stdout + produced_again.stderr
    flagged = cli("collect", "--bootstrap", here, "--topic", name, "--out", str(out), "--idle-timeout", "2",
                  env={**elsewhere, "KAFKA_BOOTSTRAP": "127.0.0.1:1", "PINTEXT_HOME": str(tmp_path)})
    assert flagged.returncode == 0, flagged.stdout + flagged.stderr
    ids = event_ids(out / part_files.EVENTS_FILE)
    print(f"default bootstrap: 20 events in twice, {sum(ids.values())} out")
    assert ids == Counter({e["event_id"]: 2 for e in events})  # the second copy was produced again: 2 each
    delete_topic(here, name)


def test_collect_rides_out_a_broker_restart_and_collects_every_event_exactly_once(
    private_kafka_broker: Any, tmp_path: Path
) -> None:
    ensure_running(private_kafka_broker)
    bootstrap = private_kafka_broker.settings.bootstrap
    name = f"pintext-restart-{uuid.uuid4().hex[:8]}"
    first, second = good_events(0, 20_000), good_events(20_000, 1000)  # enough that the kill lands mid-stream
    env = broker_env(private_kafka_broker)
    produce_events(env, tmp_path / "a.jsonl", name, first, "--partitions", "3")
    out = tmp_path / "out"
    collector = start_collect(env, name, out, "--batch-size", "50", "--idle-timeout", "8")
    try:
        wait_for(lambda: len(read_jsonl(out / part_files.EVENTS_FILE)) > 0 or collector.poll() is not None, 60,
                 "the collector's first events")
        killed = sigkill_broker(private_kafka_broker)
        on_disk_at_kill = len(read_jsonl(out / part_files.EVENTS_FILE))
        restarted = private_kafka_broker.start()
        assert restarted.started and restarted.pid != killed
        produce_events(env, tmp_path / "b.jsonl", name, second)
        stdout, stderr = collector.communicate(timeout=150)
    finally:
        kill_if_running(collector)
    assert collector.returncode == 0, stdout + stderr
    ids = event_ids(out / part_files.EVENTS_FILE)
    print(f"broker restart: {len(first) + len(second)} events in ({on_disk_at_kill} on disk at the kill), "
          f"{sum(ids.values())} lines out, {len(ids)} unique; "
          f"outages: {table_value(stdout, 'broker outages')}; "
          f"read again: {table_value(stdout, 'read again, already written')}")
    assert ids == Counter(e["event_id"] for e in first + second)  # every one, none twice
    outages = table_value(stdout, "broker outages") or "0,"
    assert int(outages.split(",")[0]) >= 1, stdout  # the summary says it rode out an outage
    delete_topic(bootstrap, name)


def test_collect_gives_up_with_one_line_when_the_broker_stays_away(private_kafka_broker: Any, tmp_path: Path) -> None:
    ensure_running(private_kafka_broker)
    name = f"pintext-away-{uuid.uuid4().hex[:8]}"
    events = good_events(0, 100)
    env = broker_env(private_kafka_broker)
    produce_events(env, tmp_path / "a.jsonl", name, events)
    out = tmp_path / "out"
    collector = start_collect(env, name, out, "--broker-timeout", "5", "--idle-timeout", "60")
    try:
        wait_for(lambda: len(read_jsonl(out / part_files.EVENTS_FILE)) == len(events) or collector.poll() is not None,
                 60, "the collector's events")
        sigkill_broker(private_kafka_broker)
        killed_at = time.monotonic()
        stdout, stderr = collector.communicate(timeout=60)
        waited = time.monotonic() - killed_at
    finally:
        kill_if_running(collector)  # the broker stays down: a later test that needs it starts it (ensure_running)
    written = len(read_jsonl(out / part_files.EVENTS_FILE))
    print(f"broker away: {len(events)} events in, {written} out before the outage; "
          f"collect exited {collector.returncode} after {waited:.1f}s")
    assert collector.returncode == 1, stdout + stderr
    assert "Traceback" not in stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "has not answered for" in lines[0] and "--broker-timeout 5" in lines[0], stderr
    assert 5 <= waited < 45  # the timeout, plus at most one commit cut short by librdkafka's request timeout
