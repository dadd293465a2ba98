"""Schema validation, the dead letter and the streaming reader."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from pintext.ingest.deadletter import DeadLetter
from pintext.ingest.readers import read_records
from pintext.schemas import (
    LocatedRecordError,
    RecordError,
    parse_timestamp,
    pin_text,
    validate_event,
    validate_pin,
    validate_user,
)

GOOD_EVENT = {
    "event_id": "e1",
    "ts": "2026-01-02T03:04:05Z",
    "user_id": "u1",
    "surface": "search",
    "action": "save",
    "pin_id": "p1",
    "query": "red shoes",
}


def error_of(call, *args, **kwargs) -> RecordError:
    with pytest.raises(RecordError) as caught:
        call(*args, **kwargs)
    return caught.value


def test_pin_keeps_extra_fields_and_defaults_text():
    pin = validate_pin({"id": "p1", "title": "Red shoes", "extra": {"k": 1}})
    assert pin["extra"] == {"k": 1}
    assert pin["description"] == ""


@pytest.mark.parametrize(
    ("record", "field", "reason"),
    [
        ({"title": "x"}, "id", "missing"),
        ({"id": "", "title": "x"}, "id", "empty"),
        ({"id": 7, "title": "x"}, "id", "not a string"),
        ({"id": "p", "title": "", "description": "  "}, "title", "empty"),
        ({"id": "p", "title": 3}, "title", "not a string"),
        ({"id": "p", "title": "x", "annotations": "a,b"}, "annotations", "not a list of strings"),
        ({"id": "p", "title": "x", "annotations": ["a", 2]}, "annotations", "not a list of strings"),
        ({"id": "p", "title": "x", "board": ["b"]}, "board", "not a string"),
        (["not", "a", "dict"], "<record>", "not a JSON object"),
    ],
)
def test_pin_errors_name_the_field(record, field, reason):
    error = error_of(validate_pin, record)
    assert (error.field, error.reason) == (field, reason)
    assert field in str(error)


def test_user_validation():
    assert validate_user({"id": "u", "interests": ["hiking boots"]})["interests"] == ["hiking boots"]
    assert error_of(validate_user, {"id": "u"}).field == "interests"
    assert error_of(validate_user, {"id": "u", "interests": ["ok", " "]}).reason == "empty"


@pytest.mark.parametrize(
    ("change", "field", "reason"),
    [
        ({"event_id": None}, "event_id", "missing"),
        ({"ts": "yesterday"}, "ts", "not a timestamp"),
        ({"ts": True}, "ts", "not a timestamp"),
        ({"surface": "email"}, "surface", "not one of search|related|homefeed"),
        ({"action": "like"}, "action", "not one of impression|click|save|hide"),
        ({"query": ""}, "query", "empty"),
        ({"query": None}, "query", "missing"),
        ({"surface": "related"}, "subject_pin_id", "missing"),
        ({"pin_id": 5}, "pin_id", "not a string"),
    ],
)
def test_event_errors_name_the_field(change, field, reason):
    event = {**GOOD_EVENT, **change}
    event = {key: value for key, value in event.items() if value is not None}
    error = error_of(validate_event, event)
    assert (error.field, error.reason) == (field, reason)


def test_event_known_pins():
    assert validate_event(GOOD_EVENT, known_pins={"p1"})["pin_id"] == "p1"
    assert error_of(validate_event, GOOD_EVENT, known_pins={"p2"}).field == "pin_id"
    related = {**GOOD_EVENT, "surface": "related", "subject_pin_id": "p9"}
    error = error_of(validate_event, related, known_pins={"p1"})
    assert (error.field, error.reason) == ("subject_pin_id", "unknown pin")


def test_timestamps():
    assert parse_timestamp("1970-01-01T00:01:00Z") == 60.0
    assert parse_timestamp("1970-01-01T00:01:00") == 60.0
    assert parse_timestamp(60) == 60.0
    assert parse_timestamp(60_000_000_000_000) == 60_000_000_000.0  # milliseconds


def test_pin_text_joins_title_description_annotations():
    pin = {"id": "p", "title": "Red shoes ", "description": "", "annotations": ["leather", " "]}
    assert pin_text(pin) == "Red shoes leather"


def write_lines(path: Path, lines: list[str]) -> None:
    data = ("\n".join(lines) + "\n").encode("utf-8")
    if path.suffix == ".gz":
        path.write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)


MIXED_LINES = [
    json.dumps({"id": "p1", "title": "a"}),
    "{not json",
    json.dumps(["array"]),
    "",
    json.dumps({"id": "p2"}),
    json.dumps({"id": "p3", "description": "b"}),
    json.dumps({"id": 4, "title": "c"}),
]


@pytest.mark.parametrize("name", ["pins.jsonl", "pins.jsonl.gz"])
def test_reader_dead_letters_every_bad_line(tmp_path, name):
    source = tmp_path / name
    write_lines(source, MIXED_LINES)
    rejected_path = tmp_path / "rejected.jsonl"
    with DeadLetter(rejected_path) as dead_letter:
        good = list(read_records(source, validate_pin, dead_letter))
    assert [(line, record["id"]) for line, record in good] == [(1, "p1"), (6, "p3")]
    assert dead_letter.count == 4
    rejected = [json.loads(line) for line in rejected_path.read_text().splitlines()]
    assert [entry["line"] for entry in rejected] == [2, 3, 5, 7]
    assert [entry["field"] for entry in rejected] == ["<record>", "<record>", "title", "id"]
    assert all(entry["source"] == str(source) for entry in rejected)
    assert rejected[0]["raw"] == "{not json"
    assert dead_letter.by_reason["id: not a string"] == 1
    assert sum(dead_letter.by_reason.values()) == 4


def test_reader_strict_names_file_line_field(tmp_path):
    source = tmp_path / "pins.jsonl"
    write_lines(source, MIXED_LINES[:1] + [json.dumps({"id": "p", "title": 5})])
    with pytest.raises(LocatedRecordError) as caught:
        list(read_records(source, validate_pin, None, strict=True))
    message = str(caught.value)
    assert str(source) in message and ":2:" in message and "'title'" in message and "not a string" in message
    assert (caught.value.line, caught.value.field) == (2, "title")


def test_reader_requires_a_dead_letter_unless_strict(tmp_path):
    source = tmp_path / "pins.jsonl"
    write_lines(source, MIXED_LINES[:1])
    with pytest.raises(ValueError):
        list(read_records(source, validate_pin, None))


def test_reader_rejects_invalid_utf8(tmp_path):
    source = tmp_path / "pins.jsonl"
    source.write_bytes(b'{"id": "p1", "title": "a"}\n\xff\xfe\n')
    with DeadLetter(tmp_path / "bad.jsonl") as dead_letter:
        good = list(read_records(source, validate_pin, dead_letter))
    assert len(good) == 1 and dead_letter.by_reason == {"<record>: not valid UTF-8": 1}
