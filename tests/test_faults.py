"""Faults on real OpenSearch nodes: a node SIGKILLed or SIGSTOPped mid-ingest, a bulk-rejection (429) storm, and a
three-node cluster losing the node that holds a primary while pins go in and searches go on.

Each test runs `pintext ingest` as a subprocess against a node of its own (tests/fixtures_cluster.py), prints how
many pins went in and came out, and asserts that the ids in the index are exactly the file's valid pins and the
dead letter exactly its bad lines. Run once, on the default version (marker `faults`; `make test` leaves them
out of its OpenSearch 2.19.1 pass): they start their own nodes.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.factories import BAD_LINES, OOV_ID, make_pins, write_pins_file
from tests.fixtures_cli import PINTEXT
from tests.test_ingest import wait_for

pytestmark = [pytest.mark.opensearch, pytest.mark.faults]

PINS = 2_000
BATCH = "25"
KILL_AFTER_LINE = 200  # the checkpoint must show this much progress before the fault


# ---- helpers ---------------------------------------------------------------------------------------------------


def pins_file_with_bad_lines(tmp_path: Path) -> tuple[Path, set[str]]:
    """A pins file with the three known bad lines (tests/test_ingest.py) and its valid ids."""
    path = tmp_path / "pins.jsonl"
    pins = make_pins(PINS)
    write_pins_file(path, pins)
    return path, {pin["id"] for pin in pins} | {OOV_ID}


def ingest_command(pins_file: Path, model: Path, index: str, url: str, tmp_path: Path, *extra: str) -> list[str]:
    return [PINTEXT, "ingest", str(pins_file), "--model", str(model), "--index", index, "--url", url,
            "--batch", BATCH, "--no-tune", "--json", "--dead-letter", str(tmp_path / "rejected.jsonl"),
            "--checkpoint", str(tmp_path / "checkpoint.json"), "--workers", "1", *extra]  # a later --workers wins


def checkpoint_line(tmp_path: Path) -> int:
    try:
        return int(json.loads((tmp_path / "checkpoint.json").read_text())["line"])
    except (FileNotFoundError, ValueError, KeyError):
        return 0


def wait_for_progress(tmp_path: Path, ingest: subprocess.Popen) -> int:
    """The checkpoint line once it passes KILL_AFTER_LINE (the ingest is well under way, not finished)."""
    def progressed() -> int | None:
        if ingest.poll() is not None:
            raise AssertionError(f"the ingest ended (exit {ingest.returncode}) before the fault: "
                                 f"{ingest.stderr.read() if ingest.stderr else ''}")
        line = checkpoint_line(tmp_path)
        return line if line >= KILL_AFTER_LINE else None

    return wait_for(progressed, 180, f"the checkpoint to pass line {KILL_AFTER_LINE}", poll_s=0.05)


def summary_of(stdout: str) -> dict:
    return json.loads(stdout.strip().splitlines()[-1])


def ids_in(client, index: str) -> set[str]:
    from opensearchpy.helpers import scan

    client.indices.refresh(index=index)
    return {hit["_id"] for hit in scan(client, index=index, query={"query": {"match_all": {}}}, _source=False)}


def dead_letter_lines(tmp_path: Path) -> list[int]:
    path = tmp_path / "rejected.jsonl"
    return sorted(json.loads(line)["line"] for line in path.read_text().splitlines()) if path.exists() else []


def assert_one_clear_line(stderr: str, *expected: str) -> None:
    """The failure is one `error:` line naming the cause, and no traceback."""
    assert "Traceback" not in stderr, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, stderr
    for words in expected:
        assert words in errors[0], errors[0]


def assert_exact(client, index: str, valid: set[str], tmp_path: Path, label: str) -> None:
    found = ids_in(client, index)
    rejected = dead_letter_lines(tmp_path)
    print(f"{label}: {len(valid) + len(BAD_LINES)} pins in ({len(valid)} valid, {len(BAD_LINES)} bad), "
          f"{len(found)} in the index, {len(rejected)} in the dead letter")
    assert found == valid
    assert rejected == sorted(BAD_LINES)


def client_for(url: str, timeout: float = 30):
    from pintext.serving.opensearch_client import connect

    return connect(url, timeout=timeout)


@pytest.fixture()
def model(tmp_path) -> Path:
    from tests.factories import make_model

    return make_model(tmp_path / "model")


# ---- one node --------------------------------------------------------------------------------------------------


def test_node_sigkilled_mid_ingest_then_resume_gives_exactly_the_valid_pins(fault_node, model, tmp_path):
    began = time.monotonic()
    pins_file, valid = pins_file_with_bad_lines(tmp_path)
    command = ingest_command(pins_file, model, "faults-kill", fault_node.url, tmp_path, "--timeout", "5")
    ingest = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        at_kill = wait_for_progress(tmp_path, ingest)
        fault_node.kill(0)
        _, stderr = ingest.communicate(timeout=120)
    finally:
        ingest.kill()
    assert ingest.returncode == 1, stderr
    assert_one_clear_line(stderr, "cannot reach the engine at", fault_node.url)
    stopped_at = checkpoint_line(tmp_path)
    assert KILL_AFTER_LINE <= at_kill <= stopped_at < PINS, "the ingest was not stopped mid-way"

    fault_node.restart(0)
    resumed = subprocess.run([*command, "--resume"], capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    summary = summary_of(resumed.stdout)
    assert summary["resumed_after_line"] == stopped_at
    assert_exact(client_for(fault_node.url), "faults-kill", valid, tmp_path,
                 f"SIGKILL at line {stopped_at}, then --resume")
    print(f"test time {time.monotonic() - began:.1f} s")


def test_node_sigstopped_times_out_within_the_timeout_then_resume_completes(fault_node, model, tmp_path):
    began = time.monotonic()
    timeout_s = 5.0
    pins_file, valid = pins_file_with_bad_lines(tmp_path)
    command = ingest_command(pins_file, model, "faults-stop", fault_node.url, tmp_path, "--timeout", f"{timeout_s:g}")
    ingest = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for_progress(tmp_path, ingest)
        fault_node.pause(0)
        paused = time.monotonic()
        _, stderr = ingest.communicate(timeout=120)
        gave_up_after = time.monotonic() - paused
    finally:
        ingest.kill()
        fault_node.resume(0)
    print(f"SIGSTOP: the ingest gave up {gave_up_after:.1f} s after the node stopped answering "
          f"(--timeout {timeout_s:g})")
    assert ingest.returncode == 1, stderr
    assert_one_clear_line(stderr, f"did not answer within {timeout_s:g} s", "--timeout")
    # One request's timeout, plus the process's own exit (interpreter teardown on a busy machine).
    assert gave_up_after < timeout_s + 5.0
    stopped_at = checkpoint_line(tmp_path)
    assert stopped_at < PINS

    resumed = subprocess.run([*command, "--resume"], capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert summary_of(resumed.stdout)["resumed_after_line"] == stopped_at
    assert_exact(client_for(fault_node.url), "faults-stop", valid, tmp_path,
                 f"SIGSTOP at line {stopped_at}, SIGCONT, then --resume")
    print(f"test time {time.monotonic() - began:.1f} s")


def test_bulk_rejection_storm_is_retried_and_counted_nothing_lost(fault_node, model, tmp_path):
    began = time.monotonic()
    pins_file, valid = pins_file_with_bad_lines(tmp_path)
    command = ingest_command(pins_file, model, "faults-storm", fault_node.url, tmp_path, "--workers", "4")
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    summary = summary_of(result.stdout)
    print(f"429 storm (write pool 1 thread, queue 1, 4 workers): {summary['retried']} docs re-sent after a 429")
    assert summary["retried"] > 0, "the node refused nothing: no storm happened"
    assert summary["indexed"] == len(valid) and summary["rejected"] == len(BAD_LINES)
    assert_exact(client_for(fault_node.url), "faults-storm", valid, tmp_path, "429 storm")
    print(f"test time {time.monotonic() - began:.1f} s")


# ---- three nodes -----------------------------------------------------------------------------------------------


class SearchesDuringTheFault(threading.Thread):
    """PinText searches (token first stage, exact rescore) over and over through every node's URL, counting
    answers and failures."""

    def __init__(self, url: str, index: str, model: Path) -> None:
        super().__init__(daemon=True)
        self.url, self.index, self.model = url, index, model
        self.answered = self.failed = 0
        self.errors: list[str] = []
        self.done = threading.Event()

    def run(self) -> None:
        from pintext.encoder import Encoder
        from pintext.serving.opensearch import OpenSearchEngine
        from pintext.serving.searcher import Searcher

        searcher = Searcher.for_index(OpenSearchEngine(client_for(self.url)), self.index)
        query = Encoder.load(self.model).encode("w001 w002 w003")[0]
        # Counted from the first answer with hits on: until the first batch is refreshed (1 s) an empty answer is
        # the index filling up, not the fault (a busy CI machine once caught that window: 2 "no hits" before the
        # kill). A search that raises is counted from the start.
        while not self.done.is_set():
            try:
                if searcher.search(query, k=5):
                    break
            except Exception as error:  # noqa: BLE001 - every failure is counted and shown
                self.failed += 1
                self.errors.append(f"{type(error).__name__}: {error}")
            time.sleep(0.05)
        while not self.done.is_set():
            try:
                assert searcher.search(query, k=5), "no hits"
                self.answered += 1
            except Exception as error:  # noqa: BLE001 - every failure is counted and shown
                self.failed += 1
                self.errors.append(f"{type(error).__name__}: {error}")
            time.sleep(0.05)  # a steady trickle of searches, not a busy loop on two cores


def primary_and_replica_nodes(client, index: str) -> tuple[str, str]:
    """Where the one shard's primary and its replica live (both started: one replica on three nodes)."""
    from pintext.serving.opensearch import OpenSearchEngine

    copies = OpenSearchEngine(client).shards(index)
    assert [(copy["primary"], copy["state"]) for copy in copies] == [(True, "STARTED"), (False, "STARTED")], copies
    return copies[0]["node"], copies[1]["node"]


def allocation_report(client, index: str) -> str:
    """What allocation explain says of the replica and which recoveries ran: printed when it does not start."""
    from opensearchpy.exceptions import TransportError

    from pintext.serving.opensearch import OpenSearchEngine

    index = OpenSearchEngine(client).alias_target(index) or index  # allocation explain takes no alias
    try:
        explain = client.cluster.allocation_explain(body={"index": index, "shard": 0, "primary": False})
    except TransportError as error:
        explain = {"error": str(error)}
    recoveries = client.cat.recovery(index=index, format="json")
    return f"allocation explain: {json.dumps(explain)[:3000]}; recoveries: {json.dumps(recoveries)[:2000]}"


def green(client, index: str) -> dict | None:
    health = client.cluster.health(index=index)
    return health if health["status"] == "green" else None


def test_cluster_survives_losing_the_primary_node_mid_ingest(fault_cluster, model, tmp_path):
    began = time.monotonic()
    pins_file, valid = pins_file_with_bad_lines(tmp_path)
    index = "faults-trio"
    command = ingest_command(pins_file, model, index, fault_cluster.url, tmp_path, "--workers", "2")
    ingest = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    searches = None
    try:
        wait_for_progress(tmp_path, ingest)
        client = client_for(fault_cluster.url)
        searches = SearchesDuringTheFault(fault_cluster.url, index, model)
        searches.start()
        wait_for(lambda: green(client, index), 120, "the primary and its replica to start", poll_s=0.5)
        holder, replica_holder = primary_and_replica_nodes(client, index)
        victim = next(i for i, member in enumerate(fault_cluster.members) if member.settings.node_name == holder)
        wait_for(lambda: searches.answered >= 3, 60, "searches to answer before the kill")
        fault_cluster.kill(victim)
        killed_at = checkpoint_line(tmp_path)
        answered_before = searches.answered
        stdout, stderr = ingest.communicate(timeout=300)
        wait_for(lambda: searches.answered >= answered_before + 3, 60, "searches to answer after the kill")
    finally:
        ingest.kill()
        if searches is not None:
            searches.done.set()
            searches.join(timeout=30)
    assert ingest.returncode == 0, stderr
    summary = summary_of(stdout)
    print(f"killed {holder} (held the primary) at line {killed_at}; the ingest went on: {summary['indexed']} "
          f"indexed, {summary['retried']} docs re-sent; searches: {searches.answered} answered, "
          f"{searches.failed} failed")
    assert searches.failed == 0, searches.errors[:5]
    assert summary["indexed"] == len(valid)
    assert_exact(client, index, valid, tmp_path, f"3 nodes, {holder} SIGKILLed at line {killed_at}")

    # `index info` shows the replica promoted: the primary now lives where the replica was.
    info = json.loads(subprocess.run([PINTEXT, "index", "info", "--index", index, "--url", fault_cluster.url],
                                     capture_output=True, text=True, timeout=120, check=True).stdout)
    primaries = [copy for copy in info["shard_copies"] if copy["primary"]]
    print(f"after the kill: {info['shard_copies']}")
    assert len(primaries) == 1 and primaries[0]["state"] == "STARTED" and primaries[0]["node"] == replica_holder
    assert primaries[0]["docs"] == len(valid)
    assert info["replicas"] == 1

    # The killed node restarts and rejoins the cluster; the index keeps serving exactly the valid pins.
    fault_cluster.restart(victim, 300)
    assert client.cluster.health()["number_of_nodes"] == 3
    rejoined = json.loads(subprocess.run([PINTEXT, "index", "info", "--index", index, "--url", fault_cluster.url],
                                         capture_output=True, text=True, timeout=120, check=True).stdout)
    print(f"after the restart: {rejoined['shard_copies']}")
    (primary,) = [copy for copy in rejoined["shard_copies"] if copy["primary"]]
    assert primary["state"] == "STARTED" and primary["docs"] == len(valid)
    assert ids_in(client, index) == valid
    # The restarted node takes the replica back: the index is green again. (With `index.knn: true` on 3.5.0 the
    # replica stayed INITIALIZING here in 5 runs of 7, pintext/mapping.py; the pins index keeps `index.knn: false`.)
    try:
        wait_for(lambda: green(client, index), 120, "the replica to start again", poll_s=1.0)
    except AssertionError:
        raise AssertionError(f"the replica has not started again: {allocation_report(client, index)}") from None
    print("the replica started again on the restarted node: green")
    print(f"test time {time.monotonic() - began:.1f} s")
