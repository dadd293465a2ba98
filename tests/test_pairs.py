"""Events -> pairs: merging, hides, duplicates, anchor-disjoint splits, --import, safe re-runs."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from datasets import load_from_disk
from typer.testing import CliRunner

from pintext.cli import app
from pintext.constants import PAIR_COLUMNS
from pintext.ingest.pairs.memory import build_pairs
from pintext.ingest.pairs.rules import Pair, PairOptions, split_of
from pintext.ingest.synth.generator import SynthConfig, generate

runner = CliRunner()

PINS = [
    {"id": "p1", "title": "Crimson sneakers", "description": "leather trainers"},
    {"id": "p2", "title": "Hiking boots", "description": ""},
    {"id": "p3", "title": "Sneaker rack", "description": "wooden shelf", "annotations": ["storage"]},
    {"id": "p4", "title": "Garden ideas", "description": "raised beds"},
    {"id": "p5", "title": "Boot care", "description": "wax"},
]
USERS = [{"id": "u1", "interests": ["red shoes", "gardening"]}, {"id": "u2", "interests": ["garden"]},
         {"id": "u3", "interests": []}]


def event(event_id, surface, action, pin, user="u1", **extra):
    return {"event_id": event_id, "ts": 1767225600 + len(event_id), "user_id": user, "surface": surface,
            "action": action, "pin_id": pin, **extra}


EVENTS = [
    event("e1", "search", "click", "p1", query="Red  Shoes"),
    event("e1", "search", "click", "p1", query="Red  Shoes"),  # delivered twice: counts once
    event("e2", "search", "save", "p1", user="u2", query="red shoes"),
    event("e3", "search", "save", "p1", query="red shoes"),  # same user as e1: strongest action wins
    event("e4", "search", "impression", "p2", query="boots"),
    event("e5", "search", "click", "p2", query="boots"),
    event("e6", "search", "hide", "p2", query="boots"),  # cancels e5
    event("e7", "search", "hide", "p5", user="u2", query="boots"),  # hides by another user cancel nothing
    event("e8", "search", "click", "p5", query="boots"),
    event("e9", "related", "save", "p3", subject_pin_id="p1"),
    event("e10", "related", "click", "p1", subject_pin_id="p1"),  # a pin related to itself: dropped
    event("e11", "homefeed", "save", "p4", user="u2"),
    event("e12", "homefeed", "save", "p4", user="u9"),  # unknown user: rejected
    event("e13", "search", "save", "p99", query="x"),  # unknown pin: rejected
    event("e14", "homefeed", "click", "p4", user="u3"),  # user without interests: skipped, counted
]


def write_jsonl(path: Path, records: list, extra_lines: tuple[str, ...] = ()) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records) + "".join(line + "\n" for line in extra_lines))
    return path


@pytest.fixture()
def inputs(tmp_path) -> dict[str, Path]:
    return {
        "pins": write_jsonl(tmp_path / "pins.jsonl", PINS, ('{"id": "p6"}',)),
        "users": write_jsonl(tmp_path / "users.jsonl", USERS),
        "events": write_jsonl(tmp_path / "events.jsonl", EVENTS, ("not json",)),
    }


def rows(folder: Path, task: str, split: str = "train") -> list[dict]:
    return load_from_disk(str(folder / task))[split].to_list()


ALL_TRAIN = PairOptions(validation_share=0.0, test_share=0.0)


def test_merge_hide_duplicates_and_rejects(tmp_path, inputs):
    out = tmp_path / "pairs"
    stats = build_pairs(inputs["events"], inputs["pins"], inputs["users"], out, ALL_TRAIN)
    search = {(r["anchor_id"], r["positive_id"]): r for r in rows(out, "search")}
    assert set(search) == {("red shoes", "p1"), ("boots", "p5")}
    red = search[("red shoes", "p1")]
    assert (red["anchor"], red["count"], red["weight"]) == ("Red Shoes", 2, 2.0)
    assert red["positive"] == "Crimson sneakers leather trainers"
    assert (search[("boots", "p5")]["count"], search[("boots", "p5")]["weight"]) == (1, 0.5)
    related = rows(out, "related")
    assert [(r["anchor_id"], r["positive_id"], r["anchor"]) for r in related] == [
        ("p1", "p3", "Crimson sneakers leather trainers")]
    homefeed = rows(out, "homefeed")
    assert [(r["anchor_id"], r["anchor"], r["positive_id"]) for r in homefeed] == [("u2", "garden", "p4")]
    counters = stats["input"]
    assert counters["events_duplicate"] == 1
    assert counters["pairs_cancelled_by_hide"] == 1
    assert counters["self_pairs_dropped"] == 1
    assert counters["homefeed_user_without_interests"] == 1
    # bad pin line, not-JSON event line, unknown user, unknown pin: each in the dead letter, none dropped
    assert counters["rejected"] == 4
    rejected = [json.loads(line) for line in (out / "rejected.jsonl").read_text().splitlines()]
    assert sorted((entry["field"], entry["reason"]) for entry in rejected) == sorted([
        ("title", "empty"), ("<record>", "not valid JSON"), ("user_id", "unknown user"), ("pin_id", "unknown pin")])
    assert {entry["line"] for entry in rejected if entry["field"] == "pin_id"} == {14}
    assert [json.loads(line)["id"] for line in (out / "pins.jsonl").read_text().splitlines()] == [p["id"] for p in PINS]
    assert set(load_from_disk(str(out / "search"))["train"].column_names) == set(PAIR_COLUMNS)


def test_pair_fields_are_the_pair_columns():
    assert tuple(field.name for field in dataclasses.fields(Pair)) == PAIR_COLUMNS


def test_min_count_and_cap_per_anchor(tmp_path, inputs):
    out = tmp_path / "pairs"
    build_pairs(inputs["events"], inputs["pins"], inputs["users"], out,
                PairOptions(min_count=2, validation_share=0.0, test_share=0.0))
    assert [(r["anchor_id"], r["positive_id"]) for r in rows(out, "search")] == [("red shoes", "p1")]
    events = inputs["events"]
    more = [event(f"x{i}", "search", "save" if i == 3 else "click", f"p{i}", query="shoes") for i in (1, 2, 3, 4)]
    write_jsonl(events, EVENTS + more)
    build_pairs(events, inputs["pins"], inputs["users"], out,
                PairOptions(max_per_anchor=2, validation_share=0.0, test_share=0.0))
    shoes = [r for r in rows(out, "search") if r["anchor_id"] == "shoes"]
    assert len(shoes) == 2 and shoes[0]["positive_id"] == "p3"  # the save outweighs the clicks


def test_strict_stops_at_the_first_bad_line_with_file_line_field(tmp_path, inputs):
    result = runner.invoke(app, ["pairs", "--events", str(inputs["events"]), "--pins", str(inputs["pins"]),
                                 "--users", str(inputs["users"]), "--out", str(tmp_path / "pairs"), "--strict"])
    assert result.exit_code == 2
    message = " ".join(result.output.split())
    assert "pins.jsonl:6:" in message and "'title'" in message and "empty" in message
    assert not (tmp_path / "pairs").exists()


@pytest.fixture(scope="module")
def synthetic_pairs(tmp_path_factory) -> Path:
    data = tmp_path_factory.mktemp("synthetic")
    generate(SynthConfig(n_pins=800, n_users=200, n_events=20_000, seed=5), data)
    out = data / "pairs"
    result = runner.invoke(app, ["pairs", "--events", str(data / "events.jsonl"), "--pins", str(data / "pins.jsonl"),
                                 "--users", str(data / "users.jsonl"), "--out", str(out), "--seed", "4"])
    assert result.exit_code == 0, result.output
    return out


@pytest.mark.parametrize("task", ["search", "related", "homefeed"])
def test_splits_are_disjoint_by_anchor_and_follow_the_hash(synthetic_pairs, task):
    dataset = load_from_disk(str(synthetic_pairs / task))
    anchors = {split: set(dataset[split]["anchor_id"]) for split in ("train", "validation", "test")}
    assert not anchors["train"] & anchors["validation"]
    assert not anchors["train"] & anchors["test"]
    assert not anchors["validation"] & anchors["test"]
    options = PairOptions(seed=4)
    for split, ids in anchors.items():
        assert all(split_of(task, anchor_id, options) == split for anchor_id in ids)
    total = sum(len(ids) for ids in anchors.values())
    assert total > 50 and len(anchors["train"]) > 0.6 * total


def test_stats_files(synthetic_pairs):
    stats = json.loads((synthetic_pairs / "stats.json").read_text())
    search = stats["tasks"]["search"]
    assert search["pairs"] == sum(split["pairs"] for split in search["splits"].values()) > 100
    assert 0.4 <= search["zero_word_overlap_share"] <= 0.9
    assert stats["vocabulary"] >= search["vocabulary"] > 0
    assert set(stats["task_word_overlap"]) == {"homefeed~related", "homefeed~search", "related~search"}
    assert "sharing no word" in (synthetic_pairs / "stats.md").read_text()


def test_rerun_replaces_the_folder_and_leaves_no_partial(tmp_path, inputs):
    out = tmp_path / "pairs"
    build_pairs(inputs["events"], inputs["pins"], inputs["users"], out, ALL_TRAIN)
    (out / "stale.txt").write_text("from an older run")
    build_pairs(inputs["events"], inputs["pins"], inputs["users"], out, ALL_TRAIN)
    assert not (out / "stale.txt").exists()
    assert len(rows(out, "search")) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["events.jsonl", "pairs", "pins.jsonl", "users.jsonl"]
    # A failing run (missing input) leaves the previous output untouched.
    with pytest.raises(FileNotFoundError):
        build_pairs(tmp_path / "missing.jsonl", inputs["pins"], inputs["users"], out, ALL_TRAIN)
    assert len(rows(out, "search")) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["events.jsonl", "pairs", "pins.jsonl", "users.jsonl"]


@pytest.mark.parametrize("kind", ["csv", "jsonl"])
def test_import_pairs(tmp_path, kind):
    good = [("red shoes", "Crimson sneakers", "2"), ("red shoes", "Crimson sneakers", ""), ("boots", "Hiking boots", "")]
    if kind == "csv":
        lines = ["anchor,positive,weight"] + [",".join(row) for row in good] + ["lonely anchor,,1", "x,y,-1"]
        source = tmp_path / "pairs.csv"
        source.write_text("\n".join(lines) + "\n")
    else:
        records = [{"anchor": a, "positive": p, **({"weight": float(w)} if w else {})} for a, p, w in good]
        source = write_jsonl(tmp_path / "pairs.jsonl", records, ('{"anchor": "lonely anchor"}', '{"anchor": "x", "positive": "y", "weight": -1}'))
    out = tmp_path / "out"
    result = runner.invoke(app, ["pairs", "--import", str(source), "--task", "queries", "--out", str(out),
                                 "--val", "0", "--test", "0"])
    assert result.exit_code == 0, result.output
    imported = {r["anchor_id"]: r for r in rows(out, "queries")}
    assert set(imported) == {"red shoes", "boots"}
    assert (imported["red shoes"]["count"], imported["red shoes"]["weight"]) == (2, 3.0)
    rejected = [json.loads(line) for line in (out / "rejected.queries.jsonl").read_text().splitlines()]
    first_bad = 5 if kind == "csv" else 4  # the CSV header is line 1
    assert [(entry["line"], entry["field"]) for entry in rejected] == [(first_bad, "positive"), (first_bad + 1, "weight")]
    corpus = [json.loads(line) for line in (out / "pins.jsonl").read_text().splitlines()]
    assert {pin["id"] for pin in corpus} == {r["positive_id"] for r in imported.values()}


def test_import_needs_a_task(tmp_path):
    source = write_jsonl(tmp_path / "pairs.jsonl", [{"anchor": "a", "positive": "b"}])
    result = runner.invoke(app, ["pairs", "--import", str(source), "--out", str(tmp_path / "out")])
    assert result.exit_code != 0 and "--task" in result.output


def test_without_a_users_file_homefeed_is_skipped_and_counted(tmp_path, inputs):
    stats = build_pairs(inputs["events"], inputs["pins"], None, tmp_path / "out", ALL_TRAIN)
    assert sorted(stats["tasks"]) == ["related", "search"]
    assert not (tmp_path / "out" / "homefeed").exists()
    counters = stats["sources"][0]["input"]
    assert counters["homefeed_without_users_file"] == 3  # e11, e12, e14: none rejected for an unknown user
    assert "unknown user" not in (tmp_path / "out" / "rejected.jsonl").read_text()
    assert {row["positive_id"] for row in rows(tmp_path / "out", "search")} == {"p1", "p5"}


def test_a_task_without_any_pair_is_not_written(tmp_path, inputs):
    search_only = [e for e in EVENTS if e["surface"] == "search"]
    events = write_jsonl(tmp_path / "search-only.jsonl", search_only)
    stats = build_pairs(events, inputs["pins"], inputs["users"], tmp_path / "out", ALL_TRAIN)
    assert sorted(stats["tasks"]) == ["search"]
    assert not (tmp_path / "out" / "related").exists() and not (tmp_path / "out" / "homefeed").exists()
    assert stats["sources"][0]["tasks_without_pairs"] == ["homefeed", "related"]
