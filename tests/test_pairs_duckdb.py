"""The DuckDB pairs engine gives the in-memory path's pairs folder: same rows in the same splits, same dead letter."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("duckdb", reason="the duckdb extra is not installed (pip install 'pintext[duckdb]')")

from datasets import load_from_disk  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from pintext.cli import app  # noqa: E402
from pintext.constants import SPLITS, TASKS  # noqa: E402
from pintext.ingest.pairs.duckdb_engine import build_pairs_duckdb  # noqa: E402
from pintext.ingest.pairs.memory import build_pairs  # noqa: E402
from pintext.ingest.pairs.rules import PairOptions  # noqa: E402
from pintext.ingest.synth.generator import SynthConfig, generate  # noqa: E402
from pintext.schemas import LocatedRecordError  # noqa: E402
from tests.test_pairs import EVENTS, PINS, USERS, event, write_jsonl  # noqa: E402

runner = CliRunner()
SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample"

#: Odd records on top of the pairs tests' events: wrong types, missing fields, a query without words (rejected only
#: when first seen and not an impression), duplicates of rejected and skipped events, an unknown user's impression.
ODD_EVENTS = EVENTS + [
    event("e20", "search", "click", "p2", query="!!!"),
    event("e20", "search", "click", "p2", query="!!!"),
    event("e21", "search", "impression", "p2", query="..."),
    event("e22", "homefeed", "impression", "p4", user="nobody"),
    event("e23", "related", "hide", "p3", subject_pin_id="p1"),
    event("e24", "related", "save", "p3", user="u2", subject_pin_id="p1"),
    event("e25", "search", "click", "p3", user="u2", query="RED shoes"),
    event("e26", "search", "save", "p4", user="u3", query="red shoes"),
    event("e27", "search", "click", "p5", user="u3", query="red shoes"),
    {"event_id": 7, "ts": 1, "user_id": "u1", "surface": "search", "action": "click", "pin_id": "p1", "query": "x"},
    {"event_id": "e28", "user_id": "u1", "surface": "search", "action": "click", "pin_id": "p1", "query": "x"},
    {"event_id": "e29", "ts": "yesterday", "user_id": "u1", "surface": "search", "action": "click", "pin_id": "p1"},
    {"event_id": "e30", "ts": 1, "user_id": "u1", "surface": "feed", "action": "click", "pin_id": "p1"},
    event("e31", "related", "click", "p2", subject_pin_id="p77"),
    event("e12", "homefeed", "save", "p4", user="u9"),  # a duplicate of a rejected event: counted, not rejected
    [1, 2],
]


def write_events(path: Path, records: list, extra_lines: tuple[str, ...] = ()) -> Path:
    return write_jsonl(path, records, extra_lines + ("not json", "", '{"event_id": "e40", "ts": 1,'))


def task_rows(folder: Path, task: str) -> dict[str, list[dict]]:
    data = load_from_disk(str(folder / task))
    return {split: data[split].to_list() for split in SPLITS}


def assert_same_folders(memory: Path, duck: Path, tasks: tuple[str, ...] = TASKS) -> None:
    """Same tasks, same rows in the same splits (in the same order), same dead letter bytes, same counters."""
    assert sorted(p.name for p in memory.iterdir()) == sorted(p.name for p in duck.iterdir())
    for task in (task for task in tasks if (memory / task).is_dir()):  # a task without any pair is not written
        assert task_rows(memory, task) == task_rows(duck, task), task
    assert (memory / "rejected.jsonl").read_bytes() == (duck / "rejected.jsonl").read_bytes()
    assert (memory / "pins.jsonl").read_bytes() == (duck / "pins.jsonl").read_bytes()
    mem_stats, duck_stats = (json.loads((folder / "stats.json").read_text()) for folder in (memory, duck))
    assert mem_stats["input"] == duck_stats["input"]
    assert mem_stats["rejected_by_reason"] == duck_stats["rejected_by_reason"]
    assert mem_stats["tasks"] == duck_stats["tasks"]


def make_odd_inputs(folder: Path) -> dict[str, Path]:
    return {
        "pins": write_jsonl(folder / "pins.jsonl", PINS, ('{"id": "p6"}',)),
        "users": write_jsonl(folder / "users.jsonl", USERS),
        "events": write_events(folder / "events.jsonl", ODD_EVENTS),
    }


@pytest.fixture()
def odd_inputs(tmp_path) -> dict[str, Path]:
    return make_odd_inputs(tmp_path)


OPTIONS = [
    PairOptions(),
    PairOptions(validation_share=0.0, test_share=0.0),
    PairOptions(min_count=2, seed=3),
    PairOptions(max_per_anchor=1, save_weight=0.7, click_weight=0.3, seed=1),
    PairOptions(save_weight=0.0, click_weight=0.0, validation_share=0.3, test_share=0.3),
]


@pytest.mark.parametrize("options", OPTIONS, ids=lambda options: f"min{options.min_count}-cap{options.max_per_anchor}"
                         f"-w{options.save_weight}-{options.click_weight}-s{options.seed}")
def test_same_pairs_and_dead_letter_on_the_unit_fixtures(tmp_path, odd_inputs, options):
    memory = build_pairs(odd_inputs["events"], odd_inputs["pins"], odd_inputs["users"], tmp_path / "mem", options)
    duck = build_pairs_duckdb(odd_inputs["events"], odd_inputs["pins"], odd_inputs["users"], tmp_path / "duck",
                              options, memory_limit="256MB")
    assert_same_folders(tmp_path / "mem", tmp_path / "duck")
    # The fixture exercises what it claims: rejections of both passes, duplicates, cancelled and skipped pairs.
    reasons = duck["rejected_by_reason"]
    assert reasons["query: no words"] == 1 and reasons["user_id: unknown user"] == 1
    assert reasons["<record>: not valid JSON"] == 2 and reasons["event_id: not a string"] == 1
    assert reasons["pin_id: unknown pin"] == 1 and reasons["subject_pin_id: unknown pin"] == 1
    assert duck["input"]["events_duplicate"] == 3 and duck["input"]["self_pairs_dropped"] == 1
    assert duck["input"]["engagements_cancelled_by_hide"] == memory["input"]["engagements_cancelled_by_hide"] >= 2
    assert duck["sources"][0]["engine"]["name"] == "duckdb"
    assert not list(tmp_path.glob(".duck.*")), "the work folder is removed"


def test_without_users_file(tmp_path, odd_inputs):
    build_pairs(odd_inputs["events"], odd_inputs["pins"], None, tmp_path / "mem", PairOptions())
    stats = build_pairs_duckdb(odd_inputs["events"], odd_inputs["pins"], None, tmp_path / "duck", PairOptions())
    assert_same_folders(tmp_path / "mem", tmp_path / "duck", ("search", "related"))
    assert not (tmp_path / "duck" / "homefeed").exists()
    assert stats["input"]["homefeed_without_users_file"] == 3


def test_same_pairs_on_the_sample(tmp_path):
    events = SAMPLE / "events.jsonl.gz"
    options = PairOptions(seed=2)
    build_pairs(events, SAMPLE / "pins.jsonl", SAMPLE / "users.jsonl", tmp_path / "mem", options)
    stats = build_pairs_duckdb(events, SAMPLE / "pins.jsonl", SAMPLE / "users.jsonl", tmp_path / "duck", options,
                               memory_limit="256MB")
    assert_same_folders(tmp_path / "mem", tmp_path / "duck")
    assert stats["tasks"]["search"]["splits"]["train"]["pairs"] > 1000


def test_same_pairs_on_a_synthetic_log_with_a_tight_memory_bound(tmp_path):
    generate(SynthConfig(n_pins=1500, n_users=300, n_events=60_000, seed=9), tmp_path)
    paths = (tmp_path / "events.jsonl", tmp_path / "pins.jsonl", tmp_path / "users.jsonl")
    build_pairs(*paths, tmp_path / "mem", PairOptions(min_count=1, max_per_anchor=5))
    build_pairs_duckdb(*paths, tmp_path / "duck", PairOptions(min_count=1, max_per_anchor=5), memory_limit="64MB",
                       threads=1)
    assert_same_folders(tmp_path / "mem", tmp_path / "duck")


def test_parquet_events_give_the_same_pairs(tmp_path, odd_inputs):
    import pyarrow as pa
    import pyarrow.parquet as pq

    valid = [record for record in ODD_EVENTS if isinstance(record, dict) and isinstance(record.get("ts"), int)
             and isinstance(record.get("event_id"), str)]
    names = ("event_id", "user_id", "surface", "action", "pin_id", "query", "subject_pin_id")
    schema = pa.schema([("ts", pa.int64())] + [(name, pa.string()) for name in names])
    pq.write_table(pa.Table.from_pylist(valid, schema=schema), tmp_path / "events.parquet")
    jsonl = write_jsonl(tmp_path / "events-valid.jsonl", valid)
    build_pairs(jsonl, odd_inputs["pins"], odd_inputs["users"], tmp_path / "mem", PairOptions())
    build_pairs_duckdb(tmp_path / "events.parquet", odd_inputs["pins"], odd_inputs["users"], tmp_path / "duck",
                       PairOptions())
    for task in TASKS:
        assert task_rows(tmp_path / "mem", task) == task_rows(tmp_path / "duck", task)
    rejected = [json.loads(line) for line in (tmp_path / "duck" / "rejected.jsonl").read_text().splitlines()]
    lines = {(entry["field"], entry["reason"]): entry["line"] for entry in rejected if "parquet" in entry["source"]}
    expected = {(e["field"], e["reason"]): e["line"] for e in
                (json.loads(line) for line in (tmp_path / "mem" / "rejected.jsonl").read_text().splitlines())
                if "events" in e["source"]}
    assert lines == expected  # row numbers in the Parquet file are the lines of the same records in JSONL


def test_strict_raises_the_first_bad_record_in_file_order(tmp_path, odd_inputs):
    good_pins = write_jsonl(tmp_path / "good-pins.jsonl", PINS)
    # The first bad record is a search without words (a rule applied after the dedupe) before a schema error.
    events = write_jsonl(tmp_path / "strict.jsonl", EVENTS[:3] + [event("s1", "search", "save", "p1", query="?"),
                                                                   event("s2", "search", "save", 3, query="x")])
    with pytest.raises(LocatedRecordError) as memory:
        build_pairs(events, good_pins, odd_inputs["users"], tmp_path / "mem", PairOptions(strict=True))
    with pytest.raises(LocatedRecordError) as duck:
        build_pairs_duckdb(events, good_pins, odd_inputs["users"], tmp_path / "duck", PairOptions(strict=True))
    assert str(duck.value) == str(memory.value) and ":4:" in str(duck.value) and "'query'" in str(duck.value)
    assert not (tmp_path / "duck").exists()
    later = [event("s2", "search", "save", 3, query="x"), event("s1", "search", "save", "p1", query="?")]
    schema_first = write_jsonl(tmp_path / "strict2.jsonl", EVENTS[:2] + later)
    with pytest.raises(LocatedRecordError) as duck:
        build_pairs_duckdb(schema_first, good_pins, odd_inputs["users"], tmp_path / "duck", PairOptions(strict=True))
    assert ":3:" in str(duck.value) and "'pin_id'" in str(duck.value)


def test_cli_default_engine_is_duckdb_and_memory_is_kept(tmp_path, odd_inputs):
    common = ["pairs", "--events", str(odd_inputs["events"]), "--pins", str(odd_inputs["pins"]),
              "--users", str(odd_inputs["users"])]
    result = runner.invoke(app, [*common, "--out", str(tmp_path / "duck"), "--memory-limit", "300MB"])
    assert result.exit_code == 0, result.output
    source = json.loads((tmp_path / "duck" / "stats.json").read_text())["sources"][0]
    assert source["engine"] == {"name": "duckdb", "memory_limit": "300MB"}
    result = runner.invoke(app, [*common, "--out", str(tmp_path / "mem"), "--engine", "memory"])
    assert result.exit_code == 0, result.output
    assert "engine" not in json.loads((tmp_path / "mem" / "stats.json").read_text())["sources"][0]
    assert_same_folders(tmp_path / "mem", tmp_path / "duck")
    result = runner.invoke(app, [*common, "--out", str(tmp_path / "x"), "--engine", "sqlite"])
    assert result.exit_code == 2 and "sqlite" in result.output and not (tmp_path / "x").exists()
    result = runner.invoke(app, [*common, "--out", str(tmp_path / "y"), "--memory-limit", "lots"])
    assert result.exit_code == 2, result.output
    assert "--memory-limit" in " ".join(result.output.split()) and "Traceback" not in result.output


def test_a_folder_of_parts_gives_the_same_pairs(tmp_path, odd_inputs):
    """`--events FOLDER` (the collector's rolled parts, read in name order): dedupe and lines across parts."""
    parts = tmp_path / "parts"
    parts.mkdir()
    write_events(parts / "events-c1-000001.jsonl", ODD_EVENTS[:12])
    write_events(parts / "events-c1-000002.jsonl", ODD_EVENTS[8:])  # overlaps the first part: duplicates
    (parts / "rejected.jsonl").write_text("not a part\n")
    build_pairs(parts, odd_inputs["pins"], odd_inputs["users"], tmp_path / "mem", PairOptions())
    stats = build_pairs_duckdb(parts, odd_inputs["pins"], odd_inputs["users"], tmp_path / "duck", PairOptions())
    assert_same_folders(tmp_path / "mem", tmp_path / "duck")
    assert stats["input"]["events_duplicate"] >= 4
    sources = {json.loads(line)["source"] for line in (tmp_path / "duck" / "rejected.jsonl").read_text().splitlines()}
    assert {str(parts / "events-c1-000001.jsonl"), str(parts / "events-c1-000002.jsonl")} <= sources


def test_the_scale_bench_runs_both_engines_and_compares_them(tmp_path):
    from pintext.bench import pairs_scale

    results = tmp_path / "results"
    code = pairs_scale.main(["--events", "3000", "--pins", "300", "--users", "80", "--work", str(tmp_path / "work"),
                             "--results", str(results), "--memory-limit", "128MB"])
    assert code == 0
    run = json.loads((results / "run-000003000-duckdb-memory.json").read_text())
    assert run["same_pairs"] is True
    duck, memory = run["results"]
    assert duck["engine"] == "duckdb" and duck["memory_limit"] == "128MB" and duck["peak_rss_mb"] > 0
    assert duck["pairs"] == memory["pairs"] and duck["input"]["events_valid"] == 3000
    assert "| 3,000 | duckdb | 128MB |" in (results / "report.md").read_text()
