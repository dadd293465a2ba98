"""Concurrent `pintext ingest` runs (issue 13): two real subprocesses started together against a real node.

- the same file into the same index: the second waits on the (file, index) lock beside the checkpoint, then runs;
  index creation tolerates the race; the index holds exactly the valid pins and the dead letter lists each
  rejected line exactly once;
- two different files into one index: both run at once and both get through, each with its own dead letter;
- the default dead letter and checkpoint live in the state folder, per (file, index): the input folder is left
  as it was, and two indexes keep separate dead letters.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from pintext.ingest.indexer import IngestLock, default_state
from tests.factories import make_model, make_pins
from tests.fixtures_cli import PINTEXT
from tests.test_ingest import cli

REJECTED_LINES = tuple(range(7, 7 + 10 * 29, 29))  # 10 bad lines spread over the file
TIMEOUT_S = 300


def write_pins_with_bad_lines(path: Path, count: int, id_prefix: str = "pin") -> int:
    """`count` valid pins with a bad line (not JSON, no id, a numeric title, in turn) at each REJECTED_LINES
    line; returns how many valid pins it holds."""
    bad = ['{"id": "broken", "title": ', json.dumps({"title": "no id"}), json.dumps({"id": "n", "title": 42})]
    pins = [json.dumps({**pin, "id": f"{id_prefix}-{i:05d}"}) for i, pin in enumerate(make_pins(count))]
    for turn, line in enumerate(REJECTED_LINES):
        pins.insert(line - 1, bad[turn % len(bad)])
    path.write_text("\n".join(pins) + "\n", encoding="utf-8")
    return count


def ingest_command(pins_file: Path, model: Path, url: str, index: str) -> list[str]:
    return [PINTEXT, "ingest", str(pins_file), "--model", str(model), "--index", index, "--url", url, "--batch",
            "100", "--json"]


def run_together(tmp_path: Path, *commands: list[str],
                 while_running: Callable[[list[Path]], None] = lambda stderr_files: None,
                 ) -> list[subprocess.CompletedProcess]:
    """Start every command at once, call `while_running` with their stderr files, then wait for all (each within
    TIMEOUT_S: a hang fails the test)."""
    logs = [(tmp_path / f"run-{i}.out", tmp_path / f"run-{i}.err") for i in range(len(commands))]
    processes = []
    try:
        for command, (out, err) in zip(commands, logs):
            with open(out, "w") as stdout, open(err, "w") as stderr:
                processes.append(subprocess.Popen(command, stdout=stdout, stderr=stderr, text=True))
        while_running([err for _out, err in logs])
        for process in processes:
            process.wait(timeout=TIMEOUT_S)
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
    return [subprocess.CompletedProcess(command, process.returncode, out.read_text(), err.read_text())
            for command, process, (out, err) in zip(commands, processes, logs)]


def wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + TIMEOUT_S
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.2)


def summary_of(run: subprocess.CompletedProcess) -> dict:
    assert run.returncode == 0, run.stderr[-3000:]
    assert "Traceback" not in run.stderr
    return json.loads(run.stdout.strip().splitlines()[-1])


def dead_letter_lines(path: str | Path) -> list[int]:
    return sorted(json.loads(line)["line"] for line in Path(path).read_text(encoding="utf-8").splitlines())


@pytest.mark.opensearch
def test_two_ingests_of_one_file_into_one_index_at_once(opensearch, opensearch_url, opensearch_index_name,
                                                          tmp_path):
    model = make_model(tmp_path / "model")
    pins_file = tmp_path / "input" / "pins.jsonl"
    pins_file.parent.mkdir()
    valid = write_pins_with_bad_lines(pins_file, 1_000)
    command = ingest_command(pins_file, model, opensearch_url, opensearch_index_name)
    # This test holds the (file, index) lock while both start, so they surely overlap: both create the index at
    # the same moment, both wait for the lock (naming this process), then run one after the other.
    lock = IngestLock(default_state(pins_file, opensearch_index_name).lock).__enter__()
    waiting_for_us = f"waiting: pid {os.getpid()} is ingesting {pins_file}"

    def both_wait_then_release(stderr_files: list[Path]) -> None:
        wait_until(lambda: all(waiting_for_us in err.read_text() for err in stderr_files), "both runs wait")
        lock.__exit__()

    try:
        runs = run_together(tmp_path, command, command, while_running=both_wait_then_release)
    finally:
        lock.__exit__()
    summaries = [summary_of(run) for run in runs]
    opensearch.indices.refresh(index=opensearch_index_name)
    held = opensearch.count(index=opensearch_index_name)["count"]
    rejected = dead_letter_lines(summaries[0]["dead_letter"])
    print(f"pins in: {valid} valid + {len(REJECTED_LINES)} bad lines, twice at once; index holds {held}; "
          f"dead letter lists {len(rejected)}; runs: {[(s['indexed'], s['rejected']) for s in summaries]}")
    assert held == valid
    assert rejected == list(REJECTED_LINES)  # each rejected row exactly once
    assert all((s["indexed"], s["rejected"]) == (valid, len(REJECTED_LINES)) for s in summaries)


@pytest.mark.opensearch
def test_two_files_into_one_index_at_once(opensearch, opensearch_url, opensearch_index_name, tmp_path):
    model = make_model(tmp_path / "model")
    first, second = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    valid = write_pins_with_bad_lines(first, 600, "a") + write_pins_with_bad_lines(second, 600, "b")
    runs = run_together(tmp_path, ingest_command(first, model, opensearch_url, opensearch_index_name),
                        ingest_command(second, model, opensearch_url, opensearch_index_name))
    summaries = [summary_of(run) for run in runs]
    opensearch.indices.refresh(index=opensearch_index_name)
    held = opensearch.count(index=opensearch_index_name)["count"]
    print(f"pins in: {valid} valid over two files at once; index holds {held}")
    assert held == valid
    assert not any("waiting: pid" in run.stderr for run in runs)  # different pairs never wait on each other
    assert summaries[0]["dead_letter"] != summaries[1]["dead_letter"]
    assert [dead_letter_lines(s["dead_letter"]) for s in summaries] == [list(REJECTED_LINES)] * 2


# ---- the lock alone ---------------------------------------------------------------------------------------------


def test_second_lock_waits_and_names_the_holder(tmp_path):
    path = tmp_path / "pins.checkpoint.json.lock"
    waited_for: list[str] = []
    asked, acquired = threading.Event(), threading.Event()

    def second() -> None:
        with IngestLock(path, on_wait=lambda holder: (waited_for.append(holder), asked.set())):
            acquired.set()

    with IngestLock(path):
        thread = threading.Thread(target=second)
        thread.start()
        assert asked.wait(10), "the second lock never reported waiting"
        assert not acquired.is_set()
    assert acquired.wait(10)
    thread.join(10)
    assert waited_for == [str(os.getpid())]


# ---- default dead letter and checkpoint: a state folder per (file, index) ---------------------------------------


def folder_listing(folder: Path) -> dict[str, int]:
    return {str(path.relative_to(folder)): path.stat().st_size for path in sorted(folder.rglob("*"))}


def test_ingest_leaves_the_input_folder_unchanged(tmp_path):
    model = make_model(tmp_path / "model")
    data = tmp_path / "data"
    data.mkdir()
    write_pins_with_bad_lines(data / "pins.jsonl", 300)
    before = folder_listing(data)
    summary = cli("ingest", str(data / "pins.jsonl"), "--model", str(model), "--engine", "local",
                  "--local-dir", str(tmp_path / "local"))
    assert folder_listing(data) == before
    state = default_state(data / "pins.jsonl", "pins")
    assert (summary["dead_letter"], summary["checkpoint"]) == (str(state.dead_letter), str(state.checkpoint))
    assert Path(summary["dead_letter"]).is_relative_to(tmp_path / "ingest-state")  # $PINTEXT_STATE_DIR (conftest)
    assert dead_letter_lines(summary["dead_letter"]) == list(REJECTED_LINES)
    resumed = cli("ingest", str(data / "pins.jsonl"), "--model", str(model), "--engine", "local",
                  "--local-dir", str(tmp_path / "local"), "--resume")
    assert resumed["resumed_after_line"] == summary["last_line"] > 0  # --resume finds the default checkpoint
    assert folder_listing(data) == before


def test_two_indexes_keep_separate_dead_letters(tmp_path):
    model = make_model(tmp_path / "model")
    pins_file = tmp_path / "pins.jsonl"
    write_pins_with_bad_lines(pins_file, 300)
    runs = [cli("ingest", str(pins_file), "--model", str(model), "--engine", "local", "--local-dir",
                str(tmp_path / "local"), "--index", index) for index in ("first", "second")]
    assert runs[0]["dead_letter"] != runs[1]["dead_letter"]
    assert [dead_letter_lines(run["dead_letter"]) for run in runs] == [list(REJECTED_LINES)] * 2


def test_state_folder_defaults_to_pintext_home(tmp_path, monkeypatch):
    monkeypatch.delenv("PINTEXT_STATE_DIR")
    monkeypatch.setenv("PINTEXT_HOME", str(tmp_path / "home"))
    state = default_state(tmp_path / "pins.jsonl", "my pins")
    assert state.dead_letter.parent == (tmp_path / "home" / "ingest" / "my_pins").resolve()
    assert state.dead_letter.name.startswith("pins.jsonl-") and state.dead_letter.name.endswith(".rejected.jsonl")
    assert state.checkpoint.parent == state.dead_letter.parent
    other = default_state(tmp_path / "elsewhere" / "pins.jsonl", "my pins")
    assert other.dead_letter != state.dead_letter  # same name, another file: another dead letter
