"""OpenSearch UBI in (`pintext pairs --ubi FILE|URL`) and out (`pintext search --ubi-log FILE`).

Every UBI document read must be accounted for: used (a query loaded for the join, an event written) or dropped
with a reason, `read == used + sum(dropped)`, on a synthetic file written here and on the real sample
(`../shared/data/real/ubi/`, never copied into the repository: it is read where it exists; its ASINs get made-up
titles generated here). The cluster tests load the same documents into a real node and check that pairs built
from the cluster equal pairs built from the file.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pintext.cli import app
from pintext.constants import SPLITS
from pintext.ingest.collect.ubi import UBI_REJECTED_FILE, action_table, file_docs, object_id_of, redact_url
from pintext.serving.ubi_log import EVENTS_INDEX, QUERIES_INDEX, ubi_event
from tests.real_data import real_file

# ---- a synthetic UBI export with one of every case ----------------------------------------------------------------


def _q(query_id: str, text, client: str = "c1", ts: str = "2025-01-01T00:00:00Z") -> dict:
    doc = {"application": "shop", "query_id": query_id, "client_id": client, "timestamp": ts, "query_attributes": {}}
    if text is not None:
        doc["user_query"] = text
    return doc


def _e(action: str, query_id, pin, client: str = "c1", ts="2025-01-01T00:00:05Z", user_id=None) -> dict:
    doc = {"application": "shop", "action_name": action, "client_id": client, "timestamp": ts,
           "event_attributes": {"object": {"object_id": pin, "object_id_field": "sku"}, "position": {"ordinal": 0}}}
    if pin is None:
        doc["event_attributes"] = None
    if query_id is not None:
        doc["query_id"] = query_id
    if user_id is not None:
        doc["user_id"] = user_id
    return doc


PINS = [{"id": f"p{i}", "title": f"product number {i}", "description": "a thing"} for i in range(1, 6)]

# (index, _id, doc): the well-formed documents, which a cluster holds too
DOCS: list[tuple[str, str | None, dict]] = [
    (EVENTS_INDEX, "e0", _e("click", "q1", "p1", client="c9")),  # before its query: the join still finds it
    (QUERIES_INDEX, "u1", _q("q1", "Red  Shoes")),
    (QUERIES_INDEX, "u2", _q("q2", "red shoes", client="c2")),  # same anchor as q1, another text
    (QUERIES_INDEX, "u3", _q("q3", "blue hat")),
    (QUERIES_INDEX, "u3b", _q("q3", "blue hat")),  # the same query again: a duplicate
    (QUERIES_INDEX, "u4", _q("q4", "green scarf")),
    (QUERIES_INDEX, "u4b", _q("q4", "grey scarf")),  # same query_id, another text: a conflict
    (QUERIES_INDEX, "u5", _q("q5", "!!!")),  # no words
    (QUERIES_INDEX, "u6", _q("q6", None)),  # no user_query
    (EVENTS_INDEX, "e1", _e("impression", "q1", "p1")),
    (EVENTS_INDEX, "e2", _e("click", "q1", "p1")),
    (EVENTS_INDEX, "e3", _e("add_to_cart", "q2", "p2", client="c2")),
    (EVENTS_INDEX, "e4", _e("purchase", "q3", "p3", client="c3", user_id="u-3")),  # user_id wins over client_id
    (EVENTS_INDEX, "e5", _e("click", "q4", "p4", ts=1735689600000)),  # epoch millis
    (EVENTS_INDEX, "e6", _e("search", "q1", None)),  # not engagement: ignored
    (EVENTS_INDEX, "e7", _e("page_exit", None, None)),  # ignored
    (EVENTS_INDEX, "e8", _e("click", "nope", "p1")),  # unknown query id
    (EVENTS_INDEX, "e9", _e("click", None, "p1")),  # no query id
    (EVENTS_INDEX, "e10", _e("click", "q3", "p404")),  # unknown pin
    (EVENTS_INDEX, "e11", _e("click", "q3", None)),  # no object
    (EVENTS_INDEX, "e12", _e("click", "q5", "p1")),  # its query has no words
    (EVENTS_INDEX, "e13", {"application": "shop", "query_id": "q1"}),  # no action_name
    (EVENTS_INDEX, None, _e("click", "q3", "p5", client="c5")),  # no _id: an id from its content
]
EXTRA_LINES = [  # only in the file: bulk lines a cluster cannot hold
    '{"index": {"_index": "ubi_events", "_id": "bad"}}\n{"action_name": "click", \n',
    '{"delete": {"_index": "ubi_events", "_id": "e2"}}\n',
]

EXPECTED_DROPPED = {
    "query_duplicate": 1, "query_id_conflict": 1, "query_no_words": 1, "query_text_missing": 1,
    "ubi_action_search_ignored": 1, "ubi_action_page_exit_ignored": 1, "query_id_unknown": 2,
    "query_id_missing": 1, "object_unknown": 1, "object_id_missing": 1, "action_name_missing": 1,
}
FILE_ONLY_DROPPED = {"malformed": 1, "bulk_delete_ignored": 1}
# the dead-lettered reasons (ignored actions and plain duplicates are only counted)
DEAD_LETTERED = {reason: n for reason, n in {**EXPECTED_DROPPED, **FILE_ONLY_DROPPED}.items()
                 if reason not in ("query_duplicate", "ubi_action_search_ignored", "ubi_action_page_exit_ignored",
                                   "bulk_delete_ignored")}


def write_ubi(path: Path, docs=DOCS, extra=EXTRA_LINES) -> Path:
    with path.open("w", encoding="utf-8") as handle:
        for index, doc_id, doc in docs:
            meta = {"_index": index, **({"_id": doc_id} if doc_id is not None else {})}
            handle.write(json.dumps({"index": meta}) + "\n" + json.dumps(doc) + "\n")
        handle.writelines(extra)
    return path


def write_pins(path: Path, pins=PINS) -> Path:
    path.write_text("".join(json.dumps(pin) + "\n" for pin in pins), encoding="utf-8")
    return path


def run_pairs(*args: str, code: int = 0) -> str:
    result = CliRunner().invoke(app, ["pairs", *args])
    assert result.exit_code == code, result.output
    return result.output


def stats_of(out: Path) -> dict:
    return json.loads((out / "stats.json").read_text())


def pairs_of(out: Path) -> dict:
    """Every task's pairs, per split, as sorted rows (what two builds must agree on)."""
    from datasets import load_from_disk

    found = {}
    for task in stats_of(out)["tasks"]:
        data = load_from_disk(str(out / task))
        found[task] = {split: sorted(tuple(sorted(row.items())) for row in data[split].to_list())
                       for split in SPLITS}
    return found


def search_pairs(out: Path) -> dict[tuple[str, str], tuple[str, int, float]]:
    """(anchor_id, positive_id) -> (anchor, count, weight) over every split of the search task."""
    from datasets import load_from_disk

    data = load_from_disk(str(out / "search"))
    return {(row["anchor_id"], row["positive_id"]): (row["anchor"], row["count"], row["weight"])
            for split in SPLITS for row in data[split].to_list()}


def assert_accounted(ubi: dict, docs: int) -> None:
    assert ubi["read"] == docs
    assert ubi["read"] == ubi["used"] + sum(ubi["dropped"].values())
    assert ubi["used"] == ubi["queries_used"] + ubi["events_used"]


# ---- file ------------------------------------------------------------------------------------------------------


def test_file_every_document_is_used_or_dropped_by_reason(tmp_path):
    source, out = write_ubi(tmp_path / "ubi.ndjson"), tmp_path / "pairs"
    output = run_pairs("--ubi", str(source), "--pins", str(write_pins(tmp_path / "pins.jsonl")), "--out", str(out))
    ubi = stats_of(out)["ubi"]
    assert_accounted(ubi, len(DOCS) + len(FILE_ONLY_DROPPED))
    assert ubi["dropped"] == {**EXPECTED_DROPPED, **FILE_ONLY_DROPPED}
    assert (ubi["queries_used"], ubi["events_used"]) == (4, 7)  # q1..q4; e0..e5 and the one without _id
    assert ubi["events_by_action"] == {"click->click": 4, "add_to_cart->save": 1, "purchase->save": 1,
                                       "impression->impression": 1}
    assert "read 25, used 11" in " ".join(output.split())
    # the dead letter names the UBI file, the document's own line and the field
    rejected = [json.loads(line) for line in (out / UBI_REJECTED_FILE).read_text().splitlines()]
    assert ubi["rejected"] == len(rejected) == sum(DEAD_LETTERED.values())
    lines = {(entry["line"], entry["field"], entry["reason"]) for entry in rejected}
    assert {entry["source"] for entry in rejected} == {str(source)}
    line_of = {doc_id: 2 * (position + 1) for position, (_, doc_id, _) in enumerate(DOCS)}  # the doc line
    assert (line_of["e8"], "query_id", "unknown query") in lines
    assert (line_of["e10"], "event_attributes.object.object_id", "unknown pin") in lines
    assert (line_of["u4b"], "query_id", "another query has this id") in lines
    assert (2 * len(DOCS) + 2, "<record>", "not valid JSON") in lines
    # nothing the pairs step rejects: the reader checked pins and queries against the UBI file already
    assert stats_of(out)["input"]["rejected"] == 0


def test_file_pairs_join_the_query_text_and_weigh_clicks_and_saves(tmp_path):
    out = tmp_path / "pairs"
    run_pairs("--ubi", str(write_ubi(tmp_path / "ubi.ndjson")), "--pins", str(write_pins(tmp_path / "pins.jsonl")),
              "--out", str(out), "--click-weight", "0.25")
    assert search_pairs(out) == {
        # q1 and q2 are one anchor; the smaller text names it whatever the read order ("Red Shoes" < "red shoes")
        ("red shoes", "p1"): ("Red Shoes", 2, 0.5),  # c9 and c1 clicked (c1's impression adds nothing)
        ("red shoes", "p2"): ("Red Shoes", 1, 1.0),  # add_to_cart = save
        ("blue hat", "p3"): ("blue hat", 1, 1.0),  # purchase = save
        ("blue hat", "p5"): ("blue hat", 1, 0.25),
        ("green scarf", "p4"): ("green scarf", 1, 0.25),  # the conflict kept "green scarf" < "grey scarf"
    }
    in_memory = tmp_path / "in-memory"  # the reference pairs step agrees with the default (DuckDB) one
    run_pairs("--ubi", str(tmp_path / "ubi.ndjson"), "--pins", str(tmp_path / "pins.jsonl"), "--out", str(in_memory),
              "--click-weight", "0.25", "--engine", "memory")
    assert pairs_of(in_memory) == pairs_of(out)
    events = [json.loads(line) for line in (out / "ubi-events.jsonl").read_text().splitlines()]
    assert {event["surface"] for event in events} == {"search"}
    assert next(event for event in events if event["pin_id"] == "p3")["user_id"] == "u-3"


def test_action_table_overrides(tmp_path):
    out = tmp_path / "pairs"
    run_pairs("--ubi", str(write_ubi(tmp_path / "ubi.ndjson")), "--pins", str(write_pins(tmp_path / "pins.jsonl")),
              "--out", str(out), "--ubi-action", "add_to_cart=ignore", "--ubi-action", "search=ignore",
              "--ubi-action", "purchase=click")
    ubi = stats_of(out)["ubi"]
    assert ubi["dropped"]["ubi_action_add_to_cart_ignored"] == 1
    assert ubi["events_by_action"]["purchase->click"] == 1
    assert ("red shoes", "p2") not in search_pairs(out)
    assert search_pairs(out)[("blue hat", "p3")] == ("blue hat", 1, 0.5)
    assert action_table(["declined_product=hide"])["declined_product"] == "hide"
    for bad in ("click", "click=buy", "=save"):
        with pytest.raises(ValueError, match="--ubi-action"):
            action_table([bad])
    output = run_pairs("--ubi", str(tmp_path / "ubi.ndjson"), "--pins", str(tmp_path / "pins.jsonl"),
                       "--out", str(out), "--ubi-action", "click=buy", code=2)
    assert "ACTION must be one of" in output and "Traceback" not in output


def test_bad_usage_is_one_line(tmp_path):
    source, pins = write_ubi(tmp_path / "ubi.ndjson"), write_pins(tmp_path / "pins.jsonl")
    missing = run_pairs("--ubi", str(tmp_path / "nope.ndjson"), "--pins", str(pins), "--out", str(tmp_path / "o"),
                        code=2)
    assert "no such file" in missing and "nope.ndjson" in missing
    no_pins = run_pairs("--ubi", str(source), "--out", str(tmp_path / "o"), code=2)
    assert "--pins FILE or --ubi-pins-index" in no_pins
    strict = run_pairs("--ubi", str(source), "--pins", str(pins), "--out", str(tmp_path / "o"), "--strict", code=2)
    line = 2 * [doc_id for _, doc_id, _ in DOCS].index("u5") + 2  # the first bad document: "!!!" has no words
    assert f"{source}:{line}: field 'user_query': no words" in " ".join(strict.split())
    assert "Traceback" not in strict


def real_sample() -> Path:
    return real_file("ubi/ubi_queries_events.ndjson")


def made_up_pins(sample: Path, path: Path) -> Path:
    """A pins file whose ids are the sample's object ids, with made-up titles (the sample has no product text)."""
    ids = sorted({pin for doc in file_docs(sample) if isinstance(doc.doc, dict) and (pin := object_id_of(doc.doc))})
    return write_pins(path, [{"id": pin, "title": f"made up product {n}"} for n, pin in enumerate(ids)])


def test_real_sample_every_document_is_accounted_for(tmp_path):
    sample = real_sample()
    out = tmp_path / "pairs"
    run_pairs("--ubi", str(sample), "--pins", str(made_up_pins(sample, tmp_path / "pins.jsonl")), "--out", str(out))
    stats = stats_of(out)
    docs = sum(1 for line in sample.read_text().splitlines() if line.startswith('{"index"'))
    assert_accounted(stats["ubi"], docs)
    assert stats["ubi"]["events_used"] > 0 and stats["tasks"]["search"]["pairs"] > 0
    rejected = (out / UBI_REJECTED_FILE).read_text().splitlines()
    assert len(rejected) == stats["ubi"]["rejected"]
    assert all(json.loads(line)["source"] == str(sample) for line in rejected)


# ---- cluster ---------------------------------------------------------------------------------------------------

UBI_MAPPING = {"dynamic": False, "properties": {"query_id": {"type": "keyword"}, "timestamp": {"type": "date"},
                                                "action_name": {"type": "keyword"}}}


def load_cluster(client, prefix: str, docs) -> tuple[str, str]:
    from opensearchpy import helpers

    names = {QUERIES_INDEX: f"{prefix}-{QUERIES_INDEX}", EVENTS_INDEX: f"{prefix}-{EVENTS_INDEX}"}
    for name in names.values():
        client.indices.create(index=name, body={"settings": {"number_of_shards": 2, "number_of_replicas": 0},
                                                "mappings": UBI_MAPPING})
    actions = [{"_index": names[index], **({"_id": doc_id} if doc_id else {}), "_source": doc}
               for index, doc_id, doc in docs]
    helpers.bulk(client, actions, refresh=True)
    return names[QUERIES_INDEX], names[EVENTS_INDEX]


def well_formed(sample: Path) -> list[tuple[str, str | None, dict]]:
    return [(doc.index, doc.doc_id, doc.doc) for doc in file_docs(sample)
            if doc.index in (QUERIES_INDEX, EVENTS_INDEX) and isinstance(doc.doc, dict)]


@pytest.fixture
def ubi_prefix(opensearch, opensearch_index_name):
    yield opensearch_index_name
    opensearch.indices.delete(index=f"{opensearch_index_name}-*", ignore_unavailable=True)


def cluster_args(url: str, queries: str, events: str) -> list[str]:
    return ["--ubi", url, "--ubi-queries-index", queries, "--ubi-events-index", events]


@pytest.mark.opensearch
@pytest.mark.parametrize("which", ["synthetic", "real"])
def test_cluster_and_file_give_the_same_pairs(which, opensearch, opensearch_url, ubi_prefix, tmp_path):
    if which == "real":
        sample = real_sample()
        pins = made_up_pins(sample, tmp_path / "pins.jsonl")
        docs = well_formed(sample)
    else:
        sample = write_ubi(tmp_path / "ubi.ndjson", extra=[])
        pins, docs = write_pins(tmp_path / "pins.jsonl"), DOCS
    queries, events = load_cluster(opensearch, ubi_prefix, docs)
    from_file, from_cluster = tmp_path / "file", tmp_path / "cluster"
    run_pairs("--ubi", str(sample), "--pins", str(pins), "--out", str(from_file))
    run_pairs(*cluster_args(opensearch_url, queries, events), "--pins", str(pins), "--out", str(from_cluster))
    assert pairs_of(from_cluster) == pairs_of(from_file)
    assert pairs_of(from_file)["search"]["train"]
    on_file, on_cluster = stats_of(from_file)["ubi"], stats_of(from_cluster)["ubi"]
    for key in ("read", "used", "queries_used", "events_used", "dropped", "events_by_action", "rejected"):
        assert on_cluster[key] == on_file[key], key
    assert_accounted(on_cluster, len(docs))
    assert on_cluster["notes"] == []  # the node has a point in time
    located = [json.loads(line) for line in (from_cluster / UBI_REJECTED_FILE).read_text().splitlines()]
    assert all(entry["line"].startswith((queries + "/", events + "/")) for entry in located)


@pytest.mark.opensearch
def test_cluster_pins_index_gives_the_texts(opensearch, opensearch_url, ubi_prefix, tmp_path):
    from opensearchpy import helpers

    queries, events = load_cluster(opensearch, ubi_prefix, DOCS)
    pins_index = f"{ubi_prefix}-pins"
    opensearch.indices.create(index=pins_index, body={"settings": {"number_of_shards": 1, "number_of_replicas": 0}})
    helpers.bulk(opensearch, [{"_index": pins_index, "_id": pin["id"], "_source": {**pin, "lsh_tokens": ["t00_1"]}}
                              for pin in PINS], refresh=True)
    from_file, from_cluster = tmp_path / "file", tmp_path / "cluster"
    run_pairs("--ubi", str(write_ubi(tmp_path / "ubi.ndjson", extra=[])), "--pins",
              str(write_pins(tmp_path / "pins.jsonl")), "--out", str(from_file))
    run_pairs(*cluster_args(opensearch_url, queries, events), "--ubi-pins-index", pins_index, "--out",
              str(from_cluster))
    assert pairs_of(from_cluster) == pairs_of(from_file)
    written = [json.loads(line) for line in (from_cluster / "ubi-pins.jsonl").read_text().splitlines()]
    assert sorted(pin["id"] for pin in written) == [pin["id"] for pin in PINS]
    assert all("lsh_tokens" not in pin for pin in written)
    missing = run_pairs(*cluster_args(opensearch_url, f"{ubi_prefix}-none", events), "--pins",
                        str(tmp_path / "pins.jsonl"), "--out", str(tmp_path / "x"), code=1)
    assert "no such index" in missing and "Traceback" not in missing


@pytest.mark.opensearch
def test_scan_without_point_in_time_reads_the_same_documents(opensearch, ubi_prefix):
    from pintext.ingest.collect.ubi import PAGE_SIZE, scan_index

    _, events = load_cluster(opensearch, ubi_prefix, [(EVENTS_INDEX, f"e{n:05d}", _e("click", "q1", "p1"))
                                                      for n in range(PAGE_SIZE + 7)])  # more than one page
    seen: list[tuple[int, int | None]] = []
    with_pit = [hit["_id"] for hit in scan_index(opensearch, events, lambda _, done, total: seen.append((done, total)))]
    notes: list[str] = []
    without = [hit["_id"] for hit in scan_index(opensearch, events, notes=notes, pit=False)]
    assert sorted(with_pit) == without == [f"e{n:05d}" for n in range(PAGE_SIZE + 7)]
    assert seen == [(PAGE_SIZE, PAGE_SIZE + 7), (PAGE_SIZE + 7, PAGE_SIZE + 7)]
    assert len(notes) == 1 and "search_after on _id" in notes[0]


def test_urls_are_shown_without_credentials():
    assert redact_url("https://admin:s3cret@node:9200/") == "https://node:9200/"
    assert redact_url("http://node:9200") == "http://node:9200"


# ---- out: search --ubi-log, then back in -----------------------------------------------------------------------


def test_search_log_reads_back_as_pairs(tmp_path):
    from tests.factories import make_model, make_pins, write_pins_file
    from tests.test_ingest import cli, local_ingest

    model = make_model(tmp_path / "model")
    pins = make_pins(60)
    pins_file = tmp_path / "pins.jsonl"
    write_pins_file(pins_file, pins, with_bad_lines=False)
    local = ["--engine", "local", "--local-dir", str(tmp_path / "local")]
    local_ingest(pins_file, model, tmp_path / "local")
    log = tmp_path / "ubi.ndjson"
    query = pins[3]["title"]
    served = cli("search", query, "--model", str(model), "--k", "5", "--ubi-log", str(log), *local)
    hit_ids = [hit["id"] for hit in served["hits"]]
    docs = list(file_docs(log))
    assert [doc.index for doc in docs] == [QUERIES_INDEX] + [EVENTS_INDEX] * len(hit_ids)
    logged_query = docs[0].doc
    assert logged_query["user_query"] == query and logged_query["application"] == "pintext"
    assert logged_query["query_attributes"]["k"] == 5 and logged_query["query_attributes"]["engine"] == "local"
    assert logged_query["query_attributes"]["mode"] == served["mode"]
    assert [(doc.doc["action_name"], object_id_of(doc.doc), doc.doc["event_attributes"]["position"]["ordinal"])
            for doc in docs[1:]] == [("impression", pin_id, n) for n, pin_id in enumerate(hit_ids)]
    assert {doc.doc["query_id"] for doc in docs} == {logged_query["query_id"]}
    # the user clicks the second hit
    clicked = hit_ids[1]
    click = ubi_event("click", logged_query["query_id"], logged_query["client_id"], clicked, 1,
                      "2030-01-01T00:00:00Z")
    with log.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps({"index": {"_index": EVENTS_INDEX, "_id": str(uuid.uuid4())}}) + "\n"
                     + json.dumps(click) + "\n")
    out = tmp_path / "pairs"
    run_pairs("--ubi", str(log), "--pins", str(pins_file), "--out", str(out))
    anchor = " ".join(query.split())
    assert search_pairs(out) == {(" ".join(anchor.lower().split()), clicked): (anchor, 1, 0.5)}
    ubi = stats_of(out)["ubi"]
    assert_accounted(ubi, 1 + len(hit_ids) + 1)
    assert ubi["dropped"] == {} and ubi["events_by_action"] == {"impression->impression": len(hit_ids),
                                                                "click->click": 1}
