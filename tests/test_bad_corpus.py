"""The bad-input corpus (tests/data/bad/, written by its make_corpus.py) through every reader (issue 13).

Each reader is the real command, run as a subprocess with a timeout (a hang fails): `ingest` (pins), `pairs`
(events, pins, users, `--import`), `search --queries`, and `produce` -> `collect` (Kafka messages). Each case
has its documented outcome in OUTCOMES below, one of:

- Rejected: exit 0; the dead letter holds ONE entry naming the file (or topic), the line and the field, with
  the reason; every good record around it is used (records in == used + rejected);
- Accepted: exit 0; nothing rejected, every record used (a BOM, CRLF line ends, a 1 MB title: all fine);
- Repeated: exit 0; an id seen before: both records are read, the later one wins, and the user is told
  (a `note:` line and a counter);
- Refused: exit 2; one error line naming the file (and the line and field when the fault is in a line), no
  traceback. `search --queries` refuses at the first bad line: a queries file is a short list its author fixes,
  not a stream to dead-letter.

What a duplicate means, per reader: `ingest` and `pairs --pins/--users`: the later line wins, counted
(`duplicate_ids`, `input.pins_duplicate_id` / `users_duplicate_id`) and said; an event delivered twice (same
`event_id`) counts once (`input.events_duplicate`); an imported pair given twice is merged (`rows_merged`, count
and weight add up, as documented in docs/data.md); the same query twice in `--queries` is searched twice.
"""

from __future__ import annotations

import gzip
import json
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.factories import make_model
from tests.fixtures_cli import Ran, run_pintext
from tests.serving_helpers import local_index
from tests.test_kafka_collect import topic as kafka_topic  # noqa: F401 - a fixture: a fresh topic, deleted after

BAD = Path(__file__).parent / "data" / "bad"
sys.path.insert(0, str(BAD))
import make_corpus  # noqa: E402 - the corpus generator beside the files: its GOOD records and BAD_LINE

TIMEOUT_S = 120
LINE = make_corpus.BAD_LINE


@dataclass(frozen=True)
class Rejected:
    field: str
    reason: str


@dataclass(frozen=True)
class Accepted:
    why: str


@dataclass(frozen=True)
class Repeated:
    says: str  # what the note says


@dataclass(frozen=True)
class Refused:
    says: str  # part of the one error line (besides the file's path)


Outcome = Rejected | Accepted | Repeated | Refused

READERS = ("ingest", "pairs-events", "pairs-pins", "pairs-users", "pairs-import", "search-queries")
KIND = {"ingest": "pins", "pairs-events": "events", "pairs-pins": "pins", "pairs-users": "users",
        "pairs-import": "import", "search-queries": "queries", "collect": "events"}

NOT_JSON = Rejected("<record>", "not valid JSON")


def every(outcome: Outcome, **others: Outcome) -> dict[str, Outcome]:
    """`outcome` for every reader, but `others` (keyword = reader with `_` for `-`)."""
    table = {reader: outcome for reader in (*READERS, "collect")}
    table.update({reader.replace("_", "-"): value for reader, value in others.items()})
    return table


TRUNCATED = Rejected("<record>", "truncated or corrupt gzip")
OUTCOMES: dict[str, dict[str, Outcome]] = {
    "not-json": every(NOT_JSON, search_queries=Refused(f":{LINE}: field '<record>': not valid JSON")),
    "invalid-utf8": every(Rejected("<record>", "not valid UTF-8"),
                          search_queries=Refused(f":{LINE}: field '<record>': not valid UTF-8")),
    "lone-surrogate": every(Rejected("<record>", "not valid UTF-8"),
                            search_queries=Refused(f":{LINE}: field '<record>': not valid UTF-8 (a lone surrogate")),
    # a raw NUL byte inside a JSON string is a control character JSON forbids
    "nul-bytes": every(NOT_JSON, search_queries=Refused(f":{LINE}: field '<record>': not valid JSON (Invalid control")),
    "number": {"ingest": Rejected("title", "not a string"), "pairs-events": Rejected("user_id", "not a string"),
               "pairs-pins": Rejected("title", "not a string"), "pairs-users": Rejected("id", "not a string"),
               "pairs-import": Rejected("anchor", "not a string"),
               "search-queries": Refused(f":{LINE}: field 'query': not a string (got int)"),
               "collect": Rejected("user_id", "not a string")},
    # NaN / Infinity: Python's parser reads them, JSON has no such values; every reader refuses the line
    "nan": every(NOT_JSON, search_queries=Refused(f":{LINE}: field '<record>': not valid JSON (NaN is not a JSON")),
    "duplicate": {"ingest": Repeated("repeat an earlier pin id (first: 'p1' again at line 3)"),
                  "pairs-events": Accepted("an event delivered twice counts once (input.events_duplicate)"),
                  "pairs-pins": Repeated("1 pin record(s) repeat an earlier pin id"),
                  "pairs-users": Repeated("1 user record(s) repeat an earlier user id"),
                  "pairs-import": Accepted("the same pair twice is merged (input.rows_merged)"),
                  "search-queries": Accepted("the same query twice is searched twice"),
                  "collect": Accepted("an event delivered twice is written twice; pairs counts it once")},
    "many-words": every(Accepted("300 distinct words (a pasted description) are just a long text; BM25 sends the "
                                 "first 128 (tests/test_long_inputs.py runs the query file on every engine)")),
    "bom": every(Accepted("a UTF-8 BOM at the start is skipped")),
    "crlf": every(Accepted("CRLF line ends read like LF")),
    "empty": every(Accepted("an empty file: nothing to read, nothing rejected"),
                   search_queries=Refused(": no queries (every line is blank)")),
    "truncated": every(TRUNCATED, search_queries=Refused(": field '<record>': truncated or corrupt gzip")),  # collect:
    # `produce` dead-letters the damage (its own dead letter, the file's line) and sends the whole lines
    # generated into tmp_path (too big, or not files)
    "deep": every(Rejected("<record>", "nested too deeply"),
                  search_queries=Refused(f":{LINE}: field '<record>': nested too deeply")),
    "huge": every(Accepted("a 1 MB title (query, interest, anchor) is just a long text"),
                  # over Kafka's message limit: `produce` dead-letters it (file, line 3) and sends the others
                  collect=Rejected("<record>", "too large for a Kafka message")),
    # collect: `produce FILE` refuses a folder or a missing file
    "directory": every(Refused("is a directory"), pairs_events=Refused(": a folder with no parts"),
                       pairs_pins=Refused(": a folder, not a file"), pairs_users=Refused(": a folder, not a file"),
                       pairs_import=Refused(": a folder, not a file")),
    "missing": every(Refused("does not exist"), pairs_events=Refused("no such file"),
                     pairs_pins=Refused("no such file"), pairs_users=Refused("no such file"),
                     pairs_import=Refused("no such file")),
}


# ---- the input file of a case ---------------------------------------------------------------------------------


def case_file(case: str, kind: str, tmp_path: Path) -> Path:
    """The corpus file of `case` for a reader of `kind` records (generated into tmp_path where it is not
    committed)."""
    if case == "directory":
        (tmp_path / "a-folder").mkdir(exist_ok=True)
        return tmp_path / "a-folder"
    if case == "missing":
        return tmp_path / "no-such-file.jsonl"
    if case in ("deep", "huge"):
        path = tmp_path / f"{case}-{kind}.jsonl"
        path.write_bytes(make_corpus.with_bad_line(kind, generated_line(case, kind)))
        return path
    return BAD / kind / (f"{case}.jsonl.gz" if case == "truncated" else f"{case}.jsonl")


def generated_line(case: str, kind: str) -> bytes:
    if case == "deep":
        return ("[" * 10_000 + "]" * 10_000).encode()
    big = "w" + "x" * (1 << 20)  # one 1 MB word
    record = {"pins": {"id": "p-huge", "title": big}, "users": {"id": "u-huge", "interests": [big]},
              "events": {**make_corpus.GOOD["events"][0], "event_id": "e-huge", "query": big},
              "queries": big, "import": {"anchor": big, "positive": "a huge anchor"}}[kind]
    return json.dumps(record).encode()


def records_in(path: Path) -> tuple[int, int | None]:
    """(records the file holds as whole lines, the first line lost to a truncated .gz or None)."""
    if not path.is_file():
        return 0, None
    data = path.read_bytes()
    if path.suffix == ".gz":
        whole = zlib.decompressobj(wbits=31).decompress(data)
        lines = whole.split(b"\n")[:-1]  # the last piece is not a whole line
        return sum(1 for line in lines if line.strip()), len(lines) + 1
    return sum(1 for line in data.splitlines() if line.strip()), None


# ---- running a reader ------------------------------------------------------------------------------------------


@dataclass
class Run:
    exit_code: int
    output: str
    used: int  # records the reader used (duplicates included: both lines are read)
    entries: list[tuple[str, object, str, str]]  # dead-letter entries about the file: (source, line, field, reason)
    extra: dict


def run(args: list[str], env: dict[str, str] | None = None) -> Ran:
    # COLUMNS: errors on one line however long the path
    return run_pintext(args, env={"COLUMNS": "1000", **(env or {})}, real_process=True, timeout=TIMEOUT_S)


def entries_about(path: Path, dead_letters: list[Path], source: str | None = None) -> list[tuple]:
    found = []
    for dead_letter in dead_letters:
        if dead_letter.is_file():
            for line in dead_letter.read_text(encoding="utf-8").splitlines():
                entry = json.loads(line)
                if entry["source"] == (source or str(path)):
                    found.append((entry["source"], entry["line"], entry["field"], entry["reason"]))
    return found


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return make_model(tmp_path_factory.mktemp("model") / "model")


@pytest.fixture(scope="module")
def served(model, tmp_path_factory) -> Path:
    """A local index of the good pins, for `search --queries`."""
    local = tmp_path_factory.mktemp("served")
    done = run(["ingest", str(BAD / "pins" / "good.jsonl"), "--model", str(model), "--engine", "local",
                "--local-dir", str(local), "--json", "--dead-letter", str(local / "rejected.jsonl")])
    assert done.code == 0, done.stderr
    return local


def run_ingest(path: Path, model: Path, tmp_path: Path) -> Run:
    local = tmp_path / "local"
    done = run(["ingest", str(path), "--model", str(model), "--engine", "local", "--local-dir", str(local),
                "--json"])
    if done.code:
        return Run(done.code, done.stdout + done.stderr, 0, [], {})
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    held = local_index(local).count()
    assert held == summary["indexed"] - summary["duplicate_ids"]  # a repeated id is one doc
    return Run(0, done.stdout + done.stderr, summary["indexed"], entries_about(path, [Path(summary["dead_letter"])]),
               summary)


def run_pairs(reader: str, path: Path, tmp_path: Path) -> Run:
    out = tmp_path / "pairs"
    if reader == "pairs-import":
        args = ["--import", str(path), "--task", "search"]
    else:
        files = {kind: str(BAD / kind / "good.jsonl") for kind in ("events", "pins", "users")}
        files[KIND[reader]] = str(path)
        args = ["--events", files["events"], "--pins", files["pins"], "--users", files["users"]]
    done = run(["pairs", *args, "--out", str(out)])
    if done.code:
        return Run(done.code, done.stdout + done.stderr, 0, [], {})
    counters = json.loads((out / "stats.json").read_text())["input"]
    # records read (a repeated id is read twice; the counter says how often the later one replaced the earlier)
    used = {"pairs-events": ("events_valid",), "pairs-pins": ("pins", "pins_duplicate_id"),
            "pairs-users": ("users", "users_duplicate_id"), "pairs-import": ("rows_valid",)}[reader]
    return Run(0, done.stdout + done.stderr, sum(counters.get(key, 0) for key in used),
               entries_about(path, sorted(out.glob("rejected*.jsonl"))), counters)


def run_queries(path: Path, model: Path, served: Path) -> Run:
    done = run(["search", "--queries", str(path), "--model", str(model), "--engine", "local", "--local-dir",
                str(served), "--json", "--k", "3"])
    if done.code:
        return Run(done.code, done.stdout + done.stderr, 0, [], {})
    answers = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    return Run(0, done.stdout + done.stderr, len(answers), [], {})


# ---- the checks ----------------------------------------------------------------------------------------------------


def check(outcome: Outcome, result: Run, path: Path, source: str | None = None) -> None:
    """The documented outcome, and never a traceback; records in == used + rejected."""
    assert "Traceback" not in result.output, result.output[-3000:]
    count, lost_line = records_in(path)
    if isinstance(outcome, Refused):
        assert result.exit_code == 2, result.output[-2000:]
        errors = [line for line in result.output.splitlines() if str(path) in line]
        assert errors and outcome.says in errors[0], result.output[-2000:]
        return
    assert result.exit_code == 0, result.output[-3000:]
    if isinstance(outcome, Rejected):
        line = lost_line if outcome == TRUNCATED else LINE
        assert result.entries == [(source or str(path), line, outcome.field, outcome.reason)], result.entries
        rejected = 1
        assert result.used == count - (0 if lost_line else 1)  # the lost tail is one entry, not a line read
    else:
        assert result.entries == [], result.entries
        rejected = 0
        assert result.used == count
    if isinstance(outcome, Repeated):
        assert outcome.says in result.output, result.output[-2000:]
    print(f"{path.name}: {count} records in, {result.used} used, {rejected} rejected")


CASES = [(case, reader) for case in OUTCOMES for reader in READERS]


@pytest.mark.parametrize(("case", "reader"), CASES, ids=[f"{case}-{reader}" for case, reader in CASES])
def test_bad_input_through_reader(case, reader, model, served, tmp_path):
    path = case_file(case, KIND[reader], tmp_path)
    if reader == "ingest":
        result = run_ingest(path, model, tmp_path)
    elif reader == "search-queries":
        result = run_queries(path, model, served)
    else:
        result = run_pairs(reader, path, tmp_path)
    check(OUTCOMES[case][reader], result, path)


def test_every_case_has_an_outcome_for_every_reader():
    assert all(set(outcomes) >= {*READERS, "collect"} for outcomes in OUTCOMES.values())
    committed = {path.name.split(".")[0] for path in (BAD / "pins").iterdir()} - {"good"}
    assert committed | {"deep", "huge", "directory", "missing"} == set(OUTCOMES)


def test_committed_corpus_is_what_make_corpus_writes(tmp_path, monkeypatch):
    """The committed files are the generator's output (so the table and the files cannot drift apart)."""
    monkeypatch.setattr(make_corpus, "HERE", tmp_path)
    make_corpus.main()
    written = {str(path.relative_to(tmp_path)): path.read_bytes() for path in tmp_path.rglob("*") if path.is_file()}
    committed = {str(path.relative_to(BAD)): path.read_bytes() for path in BAD.rglob("*")
                 if path.is_file() and path.suffix != ".py" and "__pycache__" not in path.parts}
    assert written == committed


def test_duplicate_pin_id_last_line_wins(model, tmp_path):
    result = run_ingest(BAD / "pins" / "duplicate.jsonl", model, tmp_path)
    assert (result.extra["duplicate_ids"], result.extra["first_duplicate"]) == (1, "'p1' again at line 3")
    pin, _vector = local_index(tmp_path / "local").get("p1")
    assert pin["title"] == "red shoes, the second record of p1"


def test_truncated_gzip_corpus_file_is_truncated():
    with pytest.raises(EOFError):
        gzip.decompress((BAD / "pins" / "truncated.jsonl.gz").read_bytes())


# ---- Kafka: produce -> collect ---------------------------------------------------------------------------------

# `produce` reads with `raw_lines` and dead-letters what Kafka cannot carry (a truncated .gz, a line over the message
# limit), with the file's line; `collect` dead-letters each bad message with its partition/offset.
COLLECT_CASES = [case for case in OUTCOMES if case not in ("directory", "missing")]


def run_collect(path: Path, bootstrap: str, topic_name: str, tmp_path: Path) -> Run:
    """`produce FILE` (one partition, so message offset n is the n-th line sent), then `collect` until idle; the
    dead-letter entries of both, the collector's mapped back to the file's line of each message."""
    home = tmp_path / "home"  # where `produce` keeps its default dead letter
    produced = run(["produce", str(path), "--bootstrap", bootstrap, "--topic", topic_name, "--partitions", "1"],
                   env={"PINTEXT_HOME": str(home)})
    if produced.code == 2:
        return Run(2, produced.stdout + produced.stderr, 0, [], {})
    out = tmp_path / "collected"
    collected = run(["collect", "--bootstrap", bootstrap, "--topic", topic_name, "--out", str(out), "--group",
                     f"group-{topic_name}", "--idle-timeout", "3"])
    output = produced.stdout + produced.stderr + collected.stdout + collected.stderr
    if collected.code:
        return Run(collected.code, output, 0, [], {})
    sent = [line for line, raw in enumerate(lines_of(path), start=1) if raw.strip()]
    entries = entries_about(path, sorted(home.rglob("*.rejected.jsonl")))  # lines produce did not send
    not_sent = {line for _source, line, _field, _reason in entries}
    sent = [line for line in sent if line not in not_sent]
    for entry in dead_letter_entries(out / "rejected.jsonl"):
        assert entry["source"] == topic_name
        partition, offset = entry["line"].split("/")
        assert partition == "0"
        entries.append((str(path), sent[int(offset)], entry["field"], entry["reason"]))
    return Run(0, output, len(dead_letter_entries(out / "events.jsonl")), entries, {})


def lines_of(path: Path) -> list[bytes]:
    """The whole lines of a JSONL(.gz) file as `produce` reads them (a truncated .gz: those before the damage)."""
    if path.suffix == ".gz":
        return zlib.decompressobj(wbits=31).decompress(path.read_bytes()).split(b"\n")[:-1]
    return path.read_bytes().splitlines()


def dead_letter_entries(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()] if path.is_file() else []


@pytest.mark.kafka
@pytest.mark.parametrize("case", COLLECT_CASES)
def test_bad_input_through_produce_and_collect(case, kafka_bootstrap, kafka_topic, tmp_path):  # noqa: F811
    path = case_file(case, KIND["collect"], tmp_path)
    check(OUTCOMES[case]["collect"], run_collect(path, kafka_bootstrap, kafka_topic, tmp_path), path)


@pytest.mark.parametrize("case", ["directory", "missing"])
def test_produce_refuses_a_folder_or_a_missing_file(case, tmp_path):
    path = case_file(case, "events", tmp_path)
    done = run(["produce", str(path), "--bootstrap", "127.0.0.1:1", "--topic", "never-used"])
    check(OUTCOMES[case]["collect"], Run(done.code, done.stdout + done.stderr, 0, [], {}), path)


@pytest.mark.opensearch
def test_huge_fields_on_a_real_node(opensearch, opensearch_url, opensearch_index_name, model, tmp_path):
    """On OpenSearch a 1 MB title is just a long text, but a keyword over Lucene's 32,766-byte term limit (a 40 KB
    `board`) is refused by the node: that pin goes to the dead letter with the node's reason, the others in."""
    path = tmp_path / "pins.jsonl"
    path.write_text("\n".join(json.dumps(pin) for pin in [
        {"id": "p-huge", "title": "w001 " + "x" * (1 << 20)}, {"id": "p-board", "title": "w002", "board": "b" * 40_000},
        {"id": "p-ok", "title": "w003"}]) + "\n")
    done = run(["ingest", str(path), "--model", str(model), "--url", opensearch_url, "--index", opensearch_index_name,
                "--json", "--no-tune"])
    assert done.code == 0 and "Traceback" not in done.stderr, done.stderr[-2000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    [entry] = [json.loads(line) for line in Path(summary["dead_letter"]).read_text().splitlines()]
    opensearch.indices.refresh(index=opensearch_index_name)
    held = opensearch.count(index=opensearch_index_name)["count"]
    print(f"3 pins in: {summary['indexed']} indexed, {summary['rejected']} rejected, the index holds {held}")
    assert (summary["indexed"], summary["rejected"], held) == (2, 1, 2)
    assert (entry["line"], entry["reason"]) == (2, "rejected by the index") and "immense term" in entry["detail"]
    assert opensearch.get(index=opensearch_index_name, id="p-huge")["_source"]["title"].endswith("x" * 100)
