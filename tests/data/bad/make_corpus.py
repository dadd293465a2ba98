"""Writes the committed bad-input corpus beside this file (run it again after changing it; the files are small and
deterministic): `<kind>/<case>.jsonl` for each record kind a reader takes, each a few good records with the bad
one at line 3 (or a whole-file fault: a BOM, CRLF line ends, an empty file, a truncated gzip). The outcome of
every (reader, case) is the table in tests/test_bad_corpus.py. Too big to commit, written by the test instead: a
1 MB title, JSON nested 10,000 deep; and the directory and missing-file cases need no file.

    python tests/data/bad/make_corpus.py
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

HERE = Path(__file__).parent
BAD_LINE = 3  # where a line-level case puts its bad record (1-based)

GOOD = {
    "pins": [{"id": f"p{i}", "title": title, "description": "from the corpus"}
             for i, title in enumerate(["red shoes", "hiking boots", "garden ideas", "boot care", "shoe rack"], 1)],
    "users": [{"id": f"u{i}", "interests": [interest]} for i, interest in enumerate(["shoes", "garden", "boots"], 1)],
    "events": [{"event_id": f"e{i}", "ts": 1767225600 + i, "user_id": f"u{1 + i % 3}", "surface": "search",
                "action": "click", "pin_id": f"p{1 + i % 5}", "query": query}
               for i, query in enumerate(["red shoes", "boots", "garden", "shoes", "boot care"], 1)],
    "queries": ["red shoes", {"query": "boots"}, "garden ideas", {"text": "boot care"}],
    "import": [{"anchor": anchor, "positive": positive} for anchor, positive in
               [("red shoes", "red leather shoes"), ("boots", "hiking boots"), ("garden", "raised beds"),
                ("boot care", "boot wax")]],
}

MANY_WORDS = " ".join(f"word{i:03d}" for i in range(300))

# Bad lines, as bytes, per kind. "number": a number where a string belongs; "nan": NaN/Infinity (not JSON);
# "duplicate": a second record with an id seen before (for queries, the same query twice; for import, the same
# pair twice).
BAD = {
    "not-json": {kind: b'{"id": "broken", "title": ' for kind in GOOD},
    "invalid-utf8": {
        "pins": b'{"id": "p-latin1", "title": "caf\xe9"}',
        "users": b'{"id": "u-latin1", "interests": ["caf\xe9"]}',
        "events": b'{"event_id": "e-latin1", "ts": 1767225600, "user_id": "u1", "surface": "search", '
                  b'"action": "click", "pin_id": "p1", "query": "caf\xe9"}',
        "queries": b'"caf\xe9"',
        "import": b'{"anchor": "caf\xe9", "positive": "coffee"}',
    },
    "nul-bytes": {
        "pins": b'{"id": "p-nul", "title": "a\x00b"}',
        "users": b'{"id": "u-nul", "interests": ["a\x00b"]}',
        "events": b'{"event_id": "e-nul", "ts": 1767225600, "user_id": "u1", "surface": "search", '
                  b'"action": "click", "pin_id": "p1", "query": "a\x00b"}',
        "queries": b'"a\x00b"',
        "import": b'{"anchor": "a\x00b", "positive": "coffee"}',
    },
    # half of a UTF-16 pair escaped alone: JSON parses it, but it is no character (no UTF-8 text can hold it)
    "lone-surrogate": {
        "pins": b'{"id": "p-surrogate", "title": "bad \\ud800 half"}',
        "users": b'{"id": "u-surrogate", "interests": ["bad \\ud800 half"]}',
        "events": b'{"event_id": "e-surrogate", "ts": 1767225600, "user_id": "u1", "surface": "search", '
                  b'"action": "click", "pin_id": "p1", "query": "bad \\ud800 half"}',
        "queries": b'"bad \\ud800 half"',
        "import": b'{"anchor": "bad \\ud800 half", "positive": "coffee"}',
    },
    "number": {
        "pins": b'{"id": "p-number", "title": 42}',
        "users": b'{"id": 7, "interests": ["shoes"]}',
        "events": b'{"event_id": "e-number", "ts": 1767225600, "user_id": 7, "surface": "search", '
                  b'"action": "click", "pin_id": "p1", "query": "shoes"}',
        "queries": b"42",
        "import": b'{"anchor": 42, "positive": "shoes"}',
    },
    "nan": {
        "pins": b'{"id": "p-nan", "title": "nan title", "rating": NaN}',
        "users": b'{"id": "u-nan", "interests": ["shoes"], "score": -Infinity}',
        "events": b'{"event_id": "e-nan", "ts": Infinity, "user_id": "u1", "surface": "search", '
                  b'"action": "click", "pin_id": "p1", "query": "shoes"}',
        "queries": b"NaN",
        "import": b'{"anchor": "shoes", "positive": "red shoes", "weight": NaN}',
    },
    # 300 distinct words (a pasted product description): more terms than one BM25 request may carry
    # (pintext.queries.bm25_text sends the first 128)
    "many-words": {
        "pins": json.dumps({"id": "p-many-words", "title": MANY_WORDS}).encode(),
        "users": json.dumps({"id": "u-many-words", "interests": [MANY_WORDS]}).encode(),
        "events": json.dumps({**GOOD["events"][0], "event_id": "e-many-words", "query": MANY_WORDS}).encode(),
        "queries": json.dumps(MANY_WORDS).encode(),
        "import": json.dumps({"anchor": MANY_WORDS, "positive": "a pasted description"}).encode(),
    },
    "duplicate": {
        "pins": b'{"id": "p1", "title": "red shoes, the second record of p1"}',
        "users": b'{"id": "u1", "interests": ["the second record of u1"]}',
        "events": json.dumps({**GOOD["events"][0]}).encode(),
        "queries": b'"red shoes"',
        "import": json.dumps(GOOD["import"][0]).encode(),
    },
}


def good_lines(kind: str) -> list[bytes]:
    return [json.dumps(record).encode() for record in GOOD[kind]]


def with_bad_line(kind: str, bad: bytes) -> bytes:
    lines = good_lines(kind)
    lines.insert(BAD_LINE - 1, bad)
    return b"\n".join(lines) + b"\n"


def many_records(kind: str, count: int) -> list[bytes]:
    """`count` distinct good records of `kind` (new ids; events still point at the good pins and users)."""
    records: list = []
    for i in range(1, count + 1):
        template = GOOD[kind][(i - 1) % len(GOOD[kind])]
        if kind in ("pins", "users"):
            records.append({**template, "id": f"{template['id'][0]}{i}"})
        elif kind == "events":
            records.append({**template, "event_id": f"e{i}"})
        elif kind == "queries":
            records.append(f"query number {i}")
        else:
            records.append({**template, "anchor": f"{template['anchor']} {i}"})
    return [json.dumps(record).encode() for record in records]


def truncated_gzip(kind: str) -> bytes:
    """The first 60% of a gzip of 200 distinct good records: the whole lines before the cut survive."""
    data = gzip.compress(b"\n".join(many_records(kind, 200)) + b"\n", mtime=0)
    return data[: int(len(data) * 0.6)]


def whole_file_cases(kind: str) -> dict[str, bytes]:
    plain = b"\n".join(good_lines(kind)) + b"\n"
    return {"bom.jsonl": b"\xef\xbb\xbf" + plain, "crlf.jsonl": plain.replace(b"\n", b"\r\n"), "empty.jsonl": b"",
            "truncated.jsonl.gz": truncated_gzip(kind)}


def main() -> None:
    for kind in GOOD:
        folder = HERE / kind
        folder.mkdir(exist_ok=True)
        (folder / "good.jsonl").write_bytes(b"\n".join(good_lines(kind)) + b"\n")
        for case, lines in BAD.items():
            (folder / f"{case}.jsonl").write_bytes(with_bad_line(kind, lines[kind]))
        for name, data in whole_file_cases(kind).items():
            (folder / name).write_bytes(data)


if __name__ == "__main__":
    main()
