"""Click logs with a column mapping (`pintext pairs --events LOG --map ...`): readers, defaults, dead letters, the
header check, stable ids; the CLI chain on a small synthetic log; and every row of the real Best Buy log accounted
for (READS ../shared/data/real/bestbuy/ where present: never committed; skipped elsewhere, except under CI=true)."""

from __future__ import annotations

import csv
import gzip
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pintext.cli import app
from pintext.ingest.collect.clicklog import (
    EVENT_FIELDS,
    PIN_FIELDS,
    ClickLogError,
    ClickLogOptions,
    convert_click_log,
    parse_map,
    work_folder,
)
from tests.real_data import real_file

REPO = Path(__file__).resolve().parents[1]

HEADER = ["who", "sku", "q", "when"]
ROWS = [
    ["u1", "p1", "red shoes", "2011-09-14 12:46:28.66"],
    ["u2", "p2", "blue hat", "2011-09-14T12:47:00Z"],
    ["u1", "p2", "blue hat", "1316004420"],
    ["u3", "p1", "", "2011-09-14 12:48:00"],  # empty query: line 5, field query
    ["u4", "p9", "red shoes", "2011-09-14 12:49:00"],  # unknown pin: line 6, field pin_id
    ["u5", "p1", "red shoes", "yesterday"],  # bad timestamp: line 7, field ts
]
FULL_MAP = "query=q,pin_id=sku,user_id=who,ts=when"


def write_pins(path: Path) -> Path:
    path.write_text("".join(json.dumps(pin) + "\n" for pin in (
        {"id": "p1", "title": "red running shoes"}, {"id": "p2", "title": "blue wool hat"},
        {"id": "p3", "title": "green scarf"})), encoding="utf-8")
    return path


def write_log(path: Path, kind: str, rows=ROWS, header=HEADER) -> Path:
    if kind in ("csv", "tsv"):
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "wt", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle, delimiter="\t" if kind == "tsv" else ",")
            writer.writerow(header)
            writer.writerows(rows)
    elif kind == "jsonl":
        path.write_text("".join(json.dumps(dict(zip(header, row))) + "\n" for row in rows), encoding="utf-8")
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.table({name: [row[i] for row in rows] for i, name in enumerate(header)}), path)
    return path


def convert(tmp_path: Path, log: Path, mapping: str = FULL_MAP, **options):
    pins = write_pins(tmp_path / "pins.jsonl")
    return convert_click_log(log, pins, tmp_path / "work", ClickLogOptions(parse_map(mapping, EVENT_FIELDS),
                                                                            **options))


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


# ---- mapping, readers, defaults, dead letters -------------------------------------------------------------------


@pytest.mark.parametrize("name,kind", [("log.csv", "csv"), ("log.tsv", "tsv"), ("log.csv.gz", "csv"),
                                       ("log.jsonl", "jsonl"), ("log.parquet", "parquet")])
def test_every_format_maps_the_same_events_and_dead_letters_with_line_and_field(tmp_path, name, kind):
    converted = convert(tmp_path, write_log(tmp_path / name, kind))
    events = read_jsonl(converted.events)
    assert [(e["user_id"], e["pin_id"], e["query"], e["surface"], e["action"]) for e in events] == [
        ("u1", "p1", "red shoes", "search", "click"), ("u2", "p2", "blue hat", "search", "click"),
        ("u1", "p2", "blue hat", "search", "click")]
    # the three timestamp forms: naive text = UTC with milliseconds, ISO with Z, epoch seconds as digits
    assert [e["ts"] for e in events] == pytest.approx([1316004388.66, 1316004420.0, 1316004420.0])
    first_line = 2 if kind in ("csv", "tsv") else 1  # CSV/TSV lines count the header; JSONL lines, Parquet rows
    assert [e["log_line"] for e in events] == [f"{tmp_path / name}:{first_line + i}" for i in range(3)]
    rejected = read_jsonl(tmp_path / "work" / "rejected.jsonl")
    assert [(r["source"], r["line"], r["field"], r["reason"]) for r in rejected] == [
        (str(tmp_path / name), first_line + 3, "query", "empty"),
        (str(tmp_path / name), first_line + 4, "pin_id", "unknown pin"),
        (str(tmp_path / name), first_line + 5, "ts", "not a timestamp")]
    assert converted.counters["rows"] == 6 and converted.counters["events_written"] == 3
    assert converted.counters["rows_rejected"] == 3
    summary = json.loads((tmp_path / "work" / "summary.json").read_text())
    assert summary["rejected_by_reason"] == {"query: empty": 1, "pin_id: unknown pin": 1, "ts: not a timestamp": 1}


def test_defaults_without_user_ts_action_or_event_id_columns(tmp_path):
    converted = convert(tmp_path, write_log(tmp_path / "log.csv", "csv", ROWS[:3]), "query=q,pin_id=sku",
                        action="save")
    events = read_jsonl(converted.events)
    assert [e["user_id"] for e in events] == ["anonymous-2", "anonymous-3", "anonymous-4"]
    assert [e["ts"] for e in events] == [2.0, 3.0, 4.0]  # the line number
    assert {e["action"] for e in events} == {"save"}
    assert converted.defaults == ["action=save", "event_id=hash of line and values", "ts=line number",
                                  "user_id=anonymous-<line> (each row its own user)"]


def test_mapped_action_and_event_id_columns_are_used_and_checked(tmp_path):
    rows = [["e1", "p1", "red shoes", "save"], ["e2", "p2", "blue hat", "hide"], ["e3", "p2", "blue hat", "buy"]]
    log = write_log(tmp_path / "log.csv", "csv", rows, ["id", "sku", "q", "what"])
    converted = convert(tmp_path, log, "query=q,pin_id=sku,action=what,event_id=id")
    assert [(e["event_id"], e["action"]) for e in read_jsonl(converted.events)] == [("e1", "save"), ("e2", "hide")]
    [rejected] = read_jsonl(tmp_path / "work" / "rejected.jsonl")
    assert (rejected["line"], rejected["field"], rejected["reason"]) == (4, "action", "not one of "
                                                                         "impression|click|save|hide")


def test_event_ids_are_stable_across_runs_and_distinct_for_repeated_rows(tmp_path):
    rows = [ROWS[0], ROWS[0], ROWS[1]]  # the same click twice on two lines is two events
    log = write_log(tmp_path / "log.csv", "csv", rows)
    first = [e["event_id"] for e in read_jsonl(convert(tmp_path, log).events)]
    second = [e["event_id"] for e in read_jsonl(convert(tmp_path, log).events)]
    assert first == second and len(set(first)) == 3


def test_related_surface_maps_subject_pin(tmp_path):
    log = write_log(tmp_path / "log.csv", "csv", [["u1", "p1", "p2"], ["u1", "p1", "p7"]], ["user", "from", "to"])
    converted = convert(tmp_path, log, "subject_pin_id=from,pin_id=to,user_id=user", surface="related")
    [event] = read_jsonl(converted.events)
    assert (event["surface"], event["subject_pin_id"], event["pin_id"]) == ("related", "p1", "p2")
    [rejected] = read_jsonl(tmp_path / "work" / "rejected.jsonl")
    assert (rejected["line"], rejected["field"], rejected["reason"]) == (3, "pin_id", "unknown pin")


def test_header_check_names_the_missing_column_and_the_file_columns(tmp_path):
    log = write_log(tmp_path / "log.csv", "csv")
    with pytest.raises(ClickLogError) as raised:
        convert(tmp_path, log, "query=query,pin_id=sku")
    assert str(raised.value) == (f"{log}: --map names a column the file lacks: query=query "
                                 "(the file has columns: who, sku, q, when)")
    assert not (tmp_path / "work" / "events.jsonl").exists()  # checked before any row is read
    parquet = write_log(tmp_path / "log.parquet", "parquet")
    with pytest.raises(ClickLogError, match="lacks: pin_id=item .*columns: who, sku, q, when"):
        convert(tmp_path, parquet, "query=q,pin_id=item")


@pytest.mark.parametrize("text,message", [
    ("query=q", "--map needs pin_id"), ("query=q,pin_id=sku,colour=c", "unknown field 'colour'"),
    ("query=q,query=r,pin_id=s", "mapped twice"), ("query=1,pin_id=sku", "not both"), ("query", "not FIELD=COLUMN"),
])
def test_bad_maps_are_one_clear_error(tmp_path, text, message):
    with pytest.raises(ClickLogError, match=message):
        ClickLogOptions(parse_map(text, EVENT_FIELDS))


def test_pins_from_a_headerless_tsv_by_position(tmp_path):
    names = tmp_path / "names.tsv"
    names.write_text("p1\tred running shoes\np2\tblue wool hat\n\t no id\n", encoding="utf-8")
    log = write_log(tmp_path / "log.csv", "csv", ROWS[:3])
    converted = convert_click_log(log, names, tmp_path / "work", ClickLogOptions(parse_map(FULL_MAP, EVENT_FIELDS)),
                                  parse_map("id=1,title=2", PIN_FIELDS, "--pins-map"))
    assert [(pin["id"], pin["title"]) for pin in read_jsonl(converted.pins)] == [
        ("p1", "red running shoes"), ("p2", "blue wool hat")]
    [rejected] = read_jsonl(tmp_path / "work" / "rejected.jsonl")
    assert (rejected["source"], rejected["line"], rejected["field"], rejected["reason"]) == (
        str(names), 3, "id", "empty")
    assert converted.counters["events_written"] == 3 and converted.counters["pin_rows_rejected"] == 1
    with pytest.raises(ClickLogError, match="lacks: title=3 .*the file has 2 columns"):
        convert_click_log(log, names, tmp_path / "w2", ClickLogOptions(parse_map(FULL_MAP, EVENT_FIELDS)),
                          parse_map("id=1,title=3", PIN_FIELDS, "--pins-map"))


# ---- the CLI -----------------------------------------------------------------------------------------------------


def synthetic_log(tmp_path: Path) -> tuple[Path, Path]:
    """300 clicks over 40 queries of 4 topics; the product file is a headerless TSV."""
    topics = {"shoes": ["running shoes", "trail sneakers", "red trainers"], "hats": ["wool hat", "beanie", "cap"],
              "games": ["skyrim", "halo", "gears of war"], "tv": ["oled tv", "plasma screen", "hdmi cable"]}
    names = tmp_path / "names.tsv"
    with names.open("w", encoding="utf-8") as handle:
        for topic, products in topics.items():
            for i, product in enumerate(products):
                handle.write(f"{topic}{i}\t{product} {topic}\n")
    rows = []
    for n in range(300):
        topic = list(topics)[n % 4]
        which = n % 3
        query = f"{topics[topic][which].split()[0]} {['cheap', 'new', 'best', 'sale'][n % 10 % 4]} {n % 10}"
        rows.append([f"user{n % 50}", f"{topic}{which}", query, f"2011-09-{1 + n % 28:02d} 10:00:00"])
    log = write_log(tmp_path / "clicks.csv", "csv", rows, ["user", "sku", "query", "click_time"])
    return log, names


def test_cli_pairs_from_a_click_log_then_train(tmp_path):
    log, names = synthetic_log(tmp_path)
    out = tmp_path / "pairs"
    args = ["pairs", "--events", str(log), "--map", "query=query,pin_id=sku,user_id=user,ts=click_time",
            "--pins", str(names), "--pins-map", "id=1,title=2", "--out", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "click log: 300 rows, 300 events, 0 rejected" in result.output
    stats = json.loads((out / "stats.json").read_text())
    search = stats["tasks"]["search"]["splits"]
    assert sum(split["pairs"] for split in search.values()) > 0
    assert stats["sources"][0]["input"]["events_valid"] == 300
    assert {pin["id"] for pin in read_jsonl(out / "pins.jsonl")} == {f"{t}{i}" for t in ("shoes", "hats", "games",
                                                                                       "tv") for i in range(3)}
    assert work_folder(out) == tmp_path / "pairs.clicklog"
    again = CliRunner().invoke(app, args)  # a re-run writes the same events (same ids) and the same pairs
    assert again.exit_code == 0, again.output
    assert json.loads((out / "stats.json").read_text())["tasks"] == stats["tasks"]
    trained = CliRunner().invoke(app, ["train", "--pairs", str(out), "--out", str(tmp_path / "model"), "--tasks",
                                       "search", "--epochs", "1", "--batch-size", "16", "--dim", "8", "--threads",
                                       "1", "--loss", "mnrl", "--lr", "0.05", "--json"])
    assert trained.exit_code == 0, trained.output
    from pintext.encoder import Encoder

    assert Encoder.load(tmp_path / "model").dim == 8


def test_cli_bad_map_is_one_line_exit_2(tmp_path):
    log, names = synthetic_log(tmp_path)
    result = CliRunner().invoke(app, ["pairs", "--events", str(log), "--map", "query=search_terms,pin_id=sku",
                                      "--pins", str(names), "--pins-map", "id=1,title=2", "--out",
                                      str(tmp_path / "p")])
    assert result.exit_code == 2
    assert "--map names a column the file lacks: query=search_terms (the file has columns: user, sku, query, " \
           "click_time)" in " ".join(result.output.split())
    assert "Traceback" not in result.output and not (tmp_path / "p").exists()


# ---- the real Best Buy log --------------------------------------------------------------------------------------


def test_every_row_of_the_real_bestbuy_log_is_accounted_for(tmp_path):
    bestbuy = real_file("bestbuy/clicks.csv").parent
    with (bestbuy / "clicks.csv").open(encoding="utf-8", newline="") as handle:
        rows = sum(1 for _ in csv.DictReader(handle))
    out = tmp_path / "pairs"
    result = CliRunner().invoke(app, ["pairs", "--events", str(bestbuy / "clicks.csv"), "--map",
                                      "query=query,pin_id=sku,user_id=user,ts=click_time", "--pins",
                                      str(bestbuy / "sku_names.tsv"), "--pins-map", "id=1,title=2", "--out",
                                      str(out)])
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "pairs.clicklog" / "summary.json").read_text())
    counters = summary["counters"]
    assert counters["rows"] == rows
    assert counters["events_written"] + counters["rows_rejected"] == rows
    rejected = read_jsonl(tmp_path / "pairs.clicklog" / "rejected.jsonl")
    assert len(rejected) == counters["rows_rejected"] + counters.get("pin_rows_rejected", 0)
    assert all(r["source"] == str(bestbuy / "clicks.csv") and isinstance(r["line"], int) and r["field"]
               for r in rejected if r["source"].endswith("clicks.csv"))
    source = json.loads((out / "stats.json").read_text())["sources"][0]
    assert source["input"]["events_valid"] == counters["events_written"]
    pairs_rejected = read_jsonl(out / "rejected.jsonl")
    assert len(pairs_rejected) == source["input"].get("rejected", 0)
    # every pairs-step rejection still names the log line it came from
    assert all(json.loads(r["raw"])["log_line"].startswith(str(bestbuy / "clicks.csv")) for r in pairs_rejected)


def test_a_jsonl_line_that_is_not_an_object_is_dead_lettered_with_its_line(tmp_path):
    log = tmp_path / "log.jsonl"
    log.write_text('{"q": "red shoes", "sku": "p1"}\n\n{"q": "blue hat", "sku": \n[1, 2]\n{"q": "hat", "sku": 3}\n',
                   encoding="utf-8")
    converted = convert(tmp_path, log, "query=q,pin_id=sku")
    assert [(e["query"], e["pin_id"]) for e in read_jsonl(converted.events)] == [("red shoes", "p1")]
    rejected = read_jsonl(tmp_path / "work" / "rejected.jsonl")
    assert [(r["line"], r["field"], r["reason"]) for r in rejected] == [
        (3, "<record>", "not valid JSON"), (4, "<record>", "not a JSON object"), (5, "pin_id", "unknown pin")]


def test_bestbuy_clicklog_bench_skips_cleanly_without_the_shared_data(tmp_path, capsys):
    from pintext.bench.bestbuy_clicklog import compare, main

    assert main(["--shared", str(tmp_path / "absent")]) == 0
    assert f"no Best Buy data at {tmp_path / 'absent'}/bestbuy" in capsys.readouterr().out
    ours = {"bm25": {"ndcg@10": {"mean": 0.49, "std": 0.01}}, "exact": {"ndcg@10": {"mean": 0.50, "std": 0.01}}}
    theirs = {"bm25": {"ndcg@10": {"mean": 0.50, "std": 0.01}}, "exact": {"ndcg@10": {"mean": 0.56, "std": 0.01}}}
    assert "differ by more than two standard deviations" in compare(ours, theirs)
    assert "they agree" in compare(ours, {**theirs, "exact": {"ndcg@10": {"mean": 0.51, "std": 0.01}}})


def test_a_csv_row_the_csv_reader_refuses_is_dead_lettered_and_the_rest_read(tmp_path):
    log = tmp_path / "log.csv"
    log.write_text("q,sku\nred shoes,p1\n" + "x" * 200_000 + ",p1\nblue hat,p2\n", encoding="utf-8")
    converted = convert(tmp_path, log, "query=q,pin_id=sku")
    assert [e["query"] for e in read_jsonl(converted.events)] == ["red shoes", "blue hat"]
    [rejected] = read_jsonl(tmp_path / "work" / "rejected.jsonl")
    assert (rejected["line"], rejected["field"], rejected["reason"]) == (3, "<record>", "not valid CSV")
