"""Malformed input (issue 13): each case goes through the real command path and must give one dead-letter entry
naming file, line and field, while every valid record around it is still read.

Cases: JSON nested 10,000 deep, a UTF-8 BOM at the start of a file, a truncated `.gz`, a pin id over 512 bytes.
The bad files are generated here (small, deterministic).
"""

from __future__ import annotations

import gzip
import json
import zlib
from pathlib import Path

import pytest

from pintext.ingest.deadletter import DeadLetter
from pintext.ingest.readers import read_records
from pintext.schemas import MAX_ID_BYTES, RecordError, validate_pin, validate_user
from tests.factories import make_model, make_pins
from tests.fixtures_cli import run_pintext
from tests.serving_helpers import local_index
from tests.test_pairs import EVENTS, PINS, USERS, write_jsonl

DEEP = "[" * 10_000 + "]" * 10_000


def ingest(pins_file: Path, tmp_path: Path) -> dict:
    model = make_model(tmp_path / "model")
    result = run_pintext(["ingest", str(pins_file), "--model", str(model), "--engine", "local",
                          "--local-dir", str(tmp_path / "local"), "--batch", "50", "--json"])
    result.ok()
    assert "Traceback" not in result.output
    return json.loads(result.stdout.strip().splitlines()[-1])


def dead_letter(summary_or_path: dict | Path) -> list[dict]:
    path = Path(summary_or_path["dead_letter"]) if isinstance(summary_or_path, dict) else summary_or_path
    return [json.loads(line) for line in path.read_text().splitlines()]


def pins_lines(count: int) -> list[str]:
    return [json.dumps(pin) for pin in make_pins(count)]


def ingest_with_one_bad_line(tmp_path: Path, count: int, line: int, bad: str) -> dict:
    """Ingest `count` valid pins with `bad` at `line`: exactly the valid ones are indexed, one is rejected; returns
    the one dead-letter entry (its file and line checked here)."""
    lines = pins_lines(count)
    lines.insert(line - 1, bad)
    pins_file = tmp_path / "pins.jsonl"
    pins_file.write_text("\n".join(lines) + "\n")
    summary = ingest(pins_file, tmp_path)
    assert (summary["indexed"], summary["rejected"]) == (count, 1)
    assert local_index(tmp_path / "local").count() == count
    [entry] = dead_letter(summary)
    assert (entry["source"], entry["line"]) == (str(pins_file), line)
    return entry


# ---- 1. nested too deeply ---------------------------------------------------------------------------------------


def test_deeply_nested_pin_line_is_one_dead_letter_entry(tmp_path):
    deep = json.dumps({"id": "deep", "title": "x", "extra": "PLACEHOLDER"}).replace('"PLACEHOLDER"', DEEP)
    entry = ingest_with_one_bad_line(tmp_path, 60, 10, deep)
    assert (entry["field"], entry["reason"]) == ("<record>", "nested too deeply")


def test_deeply_nested_user_line_is_dead_lettered(tmp_path):
    users = tmp_path / "users.jsonl"
    users.write_text(json.dumps(USERS[0]) + "\n" + DEEP + "\n" + json.dumps(USERS[1]) + "\n")
    with DeadLetter(tmp_path / "rejected.jsonl") as rejected:
        read = [line for line, _ in read_records(users, validate_user, rejected)]
    assert read == [1, 3] and rejected.count == 1
    [entry] = dead_letter(tmp_path / "rejected.jsonl")
    assert (entry["line"], entry["field"], entry["reason"]) == (2, "<record>", "nested too deeply")


@pytest.mark.parametrize("engine", ["duckdb", "memory"])
def test_deeply_nested_event_line_is_dead_lettered_by_pairs(tmp_path, engine):
    pins = write_jsonl(tmp_path / "pins.jsonl", PINS)
    users = write_jsonl(tmp_path / "users.jsonl", USERS)
    events = write_jsonl(tmp_path / "events.jsonl", EVENTS, (DEEP,))
    out = tmp_path / "pairs"
    result = run_pintext(["pairs", "--events", str(events), "--pins", str(pins), "--users", str(users),
                          "--out", str(out), "--engine", engine])
    result.ok()
    entries = dead_letter(out / "rejected.jsonl")
    deep = [entry for entry in entries if entry["reason"] == "nested too deeply"]
    assert [(e["source"], e["line"], e["field"]) for e in deep] == [(str(events), len(EVENTS) + 1, "<record>")]
    # the other rejections are the ones the fixture always gives (unknown user, unknown pin)
    assert sorted(e["reason"] for e in entries if e not in deep) == ["unknown pin", "unknown user"]


# ---- 2. UTF-8 BOM -------------------------------------------------------------------------------------------------


def test_bom_at_start_of_pins_file_is_read(tmp_path):
    pins_file = tmp_path / "pins.jsonl"
    pins_file.write_bytes(b"\xef\xbb\xbf" + ("\n".join(pins_lines(40)) + "\n").encode())
    summary = ingest(pins_file, tmp_path)
    assert (summary["indexed"], summary["rejected"]) == (40, 0)
    assert local_index(tmp_path / "local").get("pin-00000")[0]["id"] == "pin-00000"


@pytest.mark.parametrize("engine", ["duckdb", "memory"])
def test_bom_at_start_of_events_file_is_read(tmp_path, engine):
    pins = write_jsonl(tmp_path / "pins.jsonl", PINS)
    users = write_jsonl(tmp_path / "users.jsonl", USERS)
    (tmp_path / "plain").mkdir()
    plain = write_jsonl(tmp_path / "plain" / "events.jsonl", EVENTS)
    bom = tmp_path / "events.jsonl"
    bom.write_bytes(b"\xef\xbb\xbf" + plain.read_bytes())
    outputs = {}
    for name, events in (("plain", plain), ("bom", bom)):
        out = tmp_path / f"pairs-{name}"
        result = run_pintext(["pairs", "--events", str(events), "--pins", str(pins), "--users",
                              str(users), "--out", str(out), "--engine", engine])
        result.ok()
        outputs[name] = (json.loads((out / "stats.json").read_text())["input"]["rejected"],
                         [e["line"] for e in dead_letter(out / "rejected.jsonl")])
    assert outputs["bom"] == outputs["plain"]
    assert 1 not in outputs["bom"][1]


# ---- 3. truncated gzip --------------------------------------------------------------------------------------------


def truncated_gz(path: Path, lines: list[str], keep: float = 0.6) -> int:
    """Write `lines` gzipped, cut the file to `keep` of its bytes; return how many whole lines survive."""
    data = gzip.compress(("\n".join(lines) + "\n").encode(), mtime=0)
    cut = data[: int(len(data) * keep)]
    path.write_bytes(cut)
    available = zlib.decompressobj(wbits=31).decompress(cut)
    return available.count(b"\n")


def test_truncated_gz_keeps_the_whole_lines_before_the_damage(tmp_path):
    pins_file = tmp_path / "pins.jsonl.gz"
    whole = truncated_gz(pins_file, pins_lines(400))
    assert 0 < whole < 400
    summary = ingest(pins_file, tmp_path)
    assert (summary["indexed"], summary["rejected"]) == (whole, 1)
    assert local_index(tmp_path / "local").count() == whole
    [entry] = dead_letter(summary)
    assert (entry["source"], entry["line"], entry["field"]) == (str(pins_file), whole + 1, "<record>")
    assert entry["reason"] == "truncated or corrupt gzip"


def test_truncated_gz_strict_names_the_file(tmp_path):
    pins_file = tmp_path / "pins.jsonl.gz"
    whole = truncated_gz(pins_file, pins_lines(400))
    read = []
    with pytest.raises(RecordError) as caught:
        for line, _pin in read_records(pins_file, validate_pin, None, strict=True):
            read.append(line)
    assert read == list(range(1, whole + 1))
    assert str(caught.value).startswith(f"{pins_file}:{whole + 1}: field '<record>': truncated or corrupt gzip")


@pytest.mark.parametrize("engine", ["duckdb", "memory"])
def test_truncated_gz_events_keep_lines_before_damage(tmp_path, engine):
    pins = write_jsonl(tmp_path / "pins.jsonl", PINS)
    users = write_jsonl(tmp_path / "users.jsonl", USERS)
    events = tmp_path / "events.jsonl.gz"
    many = [json.dumps({**EVENTS[0], "event_id": f"x{i}"}) for i in range(3000)]
    whole = truncated_gz(events, many, keep=0.5)
    assert 0 < whole < 3000
    out = tmp_path / "pairs"
    result = run_pintext(["pairs", "--events", str(events), "--pins", str(pins), "--users", str(users),
                          "--out", str(out), "--engine", engine])
    result.ok()
    [entry] = dead_letter(out / "rejected.jsonl")
    assert (entry["source"], entry["line"], entry["reason"]) == (str(events), whole + 1, "truncated or corrupt gzip")
    assert json.loads((out / "stats.json").read_text())["input"]["events_valid"] == whole


# ---- 4. pin id over 512 bytes -------------------------------------------------------------------------------------


def test_validate_pin_rejects_an_id_over_512_bytes():
    assert MAX_ID_BYTES == 512
    validate_pin({"id": "é" * 256, "title": "t"})  # 512 bytes: fine
    with pytest.raises(RecordError) as caught:
        validate_pin({"id": "é" * 256 + "a", "title": "t"})
    assert (caught.value.field, caught.value.reason) == ("id", "longer than 512 bytes")
    assert caught.value.detail == "got 513 bytes"


def test_long_pin_id_is_dead_lettered_and_its_batch_indexed(tmp_path):
    entry = ingest_with_one_bad_line(tmp_path, 30, 5, json.dumps({"id": "p" * 600, "title": "w001 w002"}))
    assert (entry["field"], entry["reason"]) == ("id", "longer than 512 bytes")
