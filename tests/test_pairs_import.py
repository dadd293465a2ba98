"""`pintext pairs --import`: each import adds or replaces one task of a pairs folder and keeps the others."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from datasets import load_from_disk
from typer.testing import CliRunner

from pintext.cli import app
from pintext.encoder import Encoder
from pintext.ingest.pairs.imported import build_imported_pairs
from pintext.ingest.pairs.memory import build_pairs
from pintext.ingest.pairs.rules import PairOptions

runner = CliRunner()

TOPICS = [
    ["sofa", "couch", "settee", "cushion", "armchair", "velvet", "recliner", "loveseat"],
    ["tent", "trail", "backpack", "campfire", "lantern", "sleeping", "hiking", "compass"],
    ["cake", "frosting", "sponge", "icing", "cupcake", "baking", "sprinkles", "layer"],
    ["garden", "tomato", "compost", "seedling", "trowel", "mulch", "raised", "watering"],
]


def write_jsonl(path: Path, records: list[dict], extra_lines: tuple[str, ...] = ()) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records) + "".join(line + "\n" for line in extra_lines))
    return path


def topic_pairs(rng: random.Random, anchors: int, positives: int, prefix: str) -> list[dict]:
    """Anchor -> positive rows whose texts are words of one topic; positive ids are `prefix` + number."""
    rows = []
    for number in range(anchors):
        words = TOPICS[number % len(TOPICS)]
        anchor = " ".join(rng.sample(words, 2))
        for _ in range(positives):
            rows.append({"anchor": anchor, "positive": " ".join(rng.sample(words, 4)),
                         "positive_id": f"{prefix}{rng.randrange(40)}"})
    return rows


@pytest.fixture()
def sources(tmp_path) -> dict[str, Path]:
    rng = random.Random(1)
    return {
        "search": write_jsonl(tmp_path / "search.jsonl", topic_pairs(rng, 60, 3, "s"), ('{"anchor": "only an anchor"}',)),
        "related": write_jsonl(tmp_path / "related.jsonl", topic_pairs(rng, 50, 3, "r"), ("not json",)),
        "search2": write_jsonl(tmp_path / "search2.jsonl", [{"anchor": "red shoes", "positive": "Crimson sneakers"}]),
    }


def import_cli(out: Path, *pairs: tuple[Path, str], extra: tuple[str, ...] = ()):
    args = ["pairs", "--out", str(out)]
    for source, task in pairs:
        args += ["--import", str(source), "--task", task]
    return runner.invoke(app, [*args, *extra])


def task_rows(folder: Path, task: str) -> list[dict]:
    data = load_from_disk(str(folder / task))
    return [row for split in ("train", "validation", "test") for row in data[split].to_list()]


def dead_letter(folder: Path, name: str) -> list[dict]:
    return [json.loads(line) for line in (folder / name).read_text().splitlines()]


def test_second_import_adds_a_task_and_keeps_the_first(tmp_path, sources):
    out = tmp_path / "pairs"
    first = import_cli(out, (sources["search"], "search"))
    assert first.exit_code == 0, first.output
    search_before = task_rows(out, "search")
    second = import_cli(out, (sources["related"], "related"))
    assert second.exit_code == 0, second.output
    assert task_rows(out, "search") == search_before and len(search_before) > 100
    assert len(task_rows(out, "related")) > 100
    stats = json.loads((out / "stats.json").read_text())
    assert list(stats["tasks"]) == ["search", "related"]
    assert [(s["kind"], s["tasks"], s["rejected_file"]) for s in stats["sources"]] == [
        ("import", ["search"], "rejected.search.jsonl"), ("import", ["related"], "rejected.related.jsonl")]
    assert stats["input"]["rejected"] == 2 and stats["input"]["rows_valid"] == 60 * 3 + 50 * 3
    # Each import's bad row sits in its own task's dead letter, with its file and line.
    assert [(e["source"], e["line"], e["field"]) for e in dead_letter(out, "rejected.search.jsonl")] == [
        (str(sources["search"]), 181, "positive")]
    assert [(e["source"], e["line"], e["field"]) for e in dead_letter(out, "rejected.related.jsonl")] == [
        (str(sources["related"]), 151, "<record>")]
    # pins.jsonl is the union of both tasks' positives, by id.
    corpus = {pin["id"] for pin in map(json.loads, (out / "pins.jsonl").read_text().splitlines())}
    positives = {row["positive_id"] for task in ("search", "related") for row in task_rows(out, task)}
    assert corpus == positives and any(i.startswith("s") for i in corpus) and any(i.startswith("r") for i in corpus)
    markdown = (out / "stats.md").read_text()
    assert "## Input: search (from import)" in markdown and "rejected.related.jsonl" in markdown
    assert "related from" in " ".join(second.output.split()) and "kept search (imported earlier)" in " ".join(second.output.split())


def test_reimport_replaces_only_that_task(tmp_path, sources):
    out = tmp_path / "pairs"
    assert import_cli(out, (sources["search"], "search"), (sources["related"], "related")).exit_code == 0
    related_before = task_rows(out, "related")
    result = import_cli(out, (sources["search2"], "search"))
    assert result.exit_code == 0, result.output
    assert [(r["anchor_id"], r["positive"]) for r in task_rows(out, "search")] == [("red shoes", "Crimson sneakers")]
    assert task_rows(out, "related") == related_before
    assert (out / "rejected.search.jsonl").read_text() == ""  # the new search import rejected nothing
    assert len(dead_letter(out, "rejected.related.jsonl")) == 1  # related's rejection survives the re-run
    corpus = {pin["id"] for pin in map(json.loads, (out / "pins.jsonl").read_text().splitlines())}
    search_id = task_rows(out, "search")[0]["positive_id"]
    assert corpus == {search_id} | {row["positive_id"] for row in related_before}  # old search positives gone
    stats = json.loads((out / "stats.json").read_text())
    assert stats["tasks"]["search"]["pairs"] == 1 and stats["input"]["rejected"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pairs", "related.jsonl", "search.jsonl", "search2.jsonl"]


def test_two_imports_in_one_call_and_usage_errors(tmp_path, sources):
    out = tmp_path / "pairs"
    result = import_cli(out, (sources["search"], "search"), (sources["related"], "related"))
    assert result.exit_code == 0, result.output
    assert set(json.loads((out / "stats.json").read_text())["tasks"]) == {"search", "related"}
    mismatch = runner.invoke(app, ["pairs", "--out", str(out), "--import", str(sources["search"]),
                                   "--import", str(sources["related"]), "--task", "search"])
    assert mismatch.exit_code == 2 and "2 --import but 1 --task" in " ".join(mismatch.output.split())
    bad_name = import_cli(out, (sources["search"], "../escape"))
    assert bad_name.exit_code == 2 and "task name '../escape'" in " ".join(bad_name.output.split())
    missing = import_cli(out, (tmp_path / "nowhere.csv", "search"))
    assert missing.exit_code == 2 and "no such file" in missing.output
    # The failed calls left the folder as it was, with no partial folder next to it.
    assert set(json.loads((out / "stats.json").read_text())["tasks"]) == {"search", "related"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pairs", "related.jsonl", "search.jsonl", "search2.jsonl"]


def test_import_refuses_a_folder_that_is_not_a_pairs_folder(tmp_path, sources):
    out = tmp_path / "precious"
    out.mkdir()
    (out / "notes.txt").write_text("not pairs")
    result = import_cli(out, (sources["search"], "search"))
    assert result.exit_code == 2 and "not a pairs folder" in " ".join(result.output.split())
    assert (out / "notes.txt").read_text() == "not pairs"


PINS = [{"id": f"p{i}", "title": f"{TOPICS[i % 4][0]} {TOPICS[i % 4][1]}", "description": TOPICS[i % 4][2]}
        for i in range(8)]
USERS = [{"id": "u1", "interests": ["sofas"]}, {"id": "u2", "interests": ["camping"]}]
EVENTS = [
    {"event_id": "e1", "ts": 1767225600, "user_id": "u1", "surface": "search", "action": "save", "pin_id": "p0", "query": "couch"},
    {"event_id": "e2", "ts": 1767225601, "user_id": "u1", "surface": "related", "action": "click", "pin_id": "p4",
     "subject_pin_id": "p0"},
    {"event_id": "e3", "ts": 1767225602, "user_id": "u2", "surface": "homefeed", "action": "save", "pin_id": "p1"},
    {"event_id": "e4", "ts": 1767225603, "user_id": "u2", "surface": "search", "action": "save", "pin_id": "p99", "query": "x"},
]


def build_events_folder(tmp_path, out) -> PairOptions:
    """A pairs folder built from PINS/USERS/EVENTS (no validation or test split); returns its options."""
    inputs = {name: write_jsonl(tmp_path / f"{name}.jsonl", records)
              for name, records in (("pins", PINS), ("users", USERS), ("events", EVENTS))}
    options = PairOptions(validation_share=0.0, test_share=0.0)
    build_pairs(inputs["events"], inputs["pins"], inputs["users"], out, options)
    return options


def test_import_over_an_events_folder_keeps_its_other_tasks_and_corpus(tmp_path, sources):
    out = tmp_path / "pairs"
    options = build_events_folder(tmp_path, out)
    related_before, homefeed_before = task_rows(out, "related"), task_rows(out, "homefeed")
    stats = build_imported_pairs([(sources["search2"], "search")], out, options)
    assert [r["anchor_id"] for r in task_rows(out, "search")] == ["red shoes"]
    assert (task_rows(out, "related"), task_rows(out, "homefeed")) == (related_before, homefeed_before)
    assert [(s["kind"], s["tasks"]) for s in stats["sources"]] == [("events", ["related", "homefeed"]), ("import", ["search"])]
    # The events build's dead letter (the unknown pin) is kept next to the new task's own.
    assert [e["field"] for e in dead_letter(out, "rejected.jsonl")] == ["pin_id"]
    assert (out / "rejected.search.jsonl").is_file()
    # pins.jsonl: the whole events pin corpus (engaged or not) plus the imported positive.
    corpus = [json.loads(line)["id"] for line in (out / "pins.jsonl").read_text().splitlines()]
    assert corpus[: len(PINS)] == [pin["id"] for pin in PINS] and len(corpus) == len(PINS) + 1
    # Replacing the events build's last two tasks too drops its corpus and dead letter.
    build_imported_pairs([(sources["related"], "related"), (sources["search"], "homefeed")], out, options)
    stats = json.loads((out / "stats.json").read_text())
    assert [s["kind"] for s in stats["sources"]] == ["import"] * 3 and not (out / "rejected.jsonl").exists()
    corpus = {json.loads(line)["id"] for line in (out / "pins.jsonl").read_text().splitlines()}
    assert not corpus & {pin["id"] for pin in PINS}


def test_train_multitask_on_imported_tasks(tmp_path, sources):
    out = tmp_path / "pairs"
    assert import_cli(out, (sources["search"], "search")).exit_code == 0
    assert import_cli(out, (sources["related"], "related")).exit_code == 0
    model = tmp_path / "model"
    result = runner.invoke(app, ["train", "--pairs", str(out), "--out", str(model), "--tasks", "search,related",
                                 "--epochs", "1", "--batch-size", "32", "--dim", "8", "--min-count", "1",
                                 "--threads", "1", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output[result.output.index("{"):])
    assert summary["model"] == "search+related"
    trained = json.loads((model / "pintext_train.json").read_text())
    # The chosen settings are refit on every split of both tasks (the default: no judged pair is thrown away).
    every_pair = sum(len(split) for task in ("search", "related") for split in load_from_disk(str(out / task)).values())
    assert trained["config"]["refit"] and trained["train_pairs"] == every_pair
    assert Encoder.load(model).coverage(["settee backpack"]).token_share == 1.0


def test_import_into_a_folder_written_before_sources_were_recorded(tmp_path, sources):
    out = tmp_path / "pairs"
    options = build_events_folder(tmp_path, out)
    legacy = json.loads((out / "stats.json").read_text())
    del legacy["sources"]
    (out / "stats.json").write_text(json.dumps(legacy))
    stats = build_imported_pairs([(sources["search2"], "search")], out, options)
    assert [(s["kind"], s["tasks"]) for s in stats["sources"]] == [("events", ["related", "homefeed"]), ("import", ["search"])]
    assert len(task_rows(out, "related")) == 1 and (out / "rejected.jsonl").is_file()
