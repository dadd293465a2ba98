"""The Elasticsearch engine (pintext.serving.elasticsearch): its mapping and request bodies (no node needed), then,
on a real Elasticsearch 8.15 node (`-m elasticsearch`), the score mapping against numpy, the window semantics,
pins without a vector, aliases, bulk failure reasons, and the two requests `dsl` prints. Search, filters,
exclusions, related, the first stage, stored pins, `_meta` and promote are tests/test_conformance.py's, on every
engine."""

from __future__ import annotations

import json
import sys
import uuid
from collections.abc import Iterator

import numpy as np
import pytest

from pintext import queries
from pintext.mapping import pins_index_body, pins_index_body_elasticsearch
from pintext.serving import elasticsearch as es_engine
from pintext.serving.base import IndexNotFoundError, UnsupportedError, VectorQuery
from pintext.serving.engines import EngineOptions
from pintext.serving.filters import Filters
from pintext.serving.local import LocalEngine, cosine
from tests.factories import make_model, make_pins, write_pins_file
from tests.fixtures_cli import run_pintext
from tests.serving_helpers import free_port

# ---- mapping ---------------------------------------------------------------------------------------------------


def test_mapping_has_the_opensearch_fields_with_an_exact_dense_vector():
    body = pins_index_body_elasticsearch(48, {"model_fingerprint": "abc"}, shards=2, replicas=1)
    reference = pins_index_body(48, {"model_fingerprint": "abc"}, shards=2, replicas=1)
    properties = body["mappings"]["properties"]
    assert properties["vector"] == {"type": "dense_vector", "dims": 48, "index": True, "similarity": "cosine",
                                    "index_options": {"type": "flat"}}
    others = {name: spec for name, spec in properties.items() if name != "vector"}
    assert others == {name: spec for name, spec in reference["mappings"]["properties"].items() if name != "vector"}
    assert properties["lsh_tokens"] == {"type": "keyword", "index_options": "docs", "norms": False,
                                        "doc_values": False}
    assert body["mappings"]["dynamic"] is False and body["mappings"]["_meta"] == {"model_fingerprint": "abc"}
    assert body["settings"] == {"index": {"number_of_shards": 2, "number_of_replicas": 1}}  # no index.knn
    with pytest.raises(ValueError, match="positive"):
        pins_index_body_elasticsearch(0)


# ---- request bodies --------------------------------------------------------------------------------------------


def a_query(**overrides) -> VectorQuery:
    fields = {"tokens": ("t00_1", "t01_2"), "vector": np.array([0.6, 0.8], np.float32), "k": 3, "window": 50}
    return VectorQuery(**{**fields, **overrides})


def test_first_stage_body_is_the_shared_first_stage_sorted_by_the_tie_rule_without_a_fetch_phase():
    filters = Filters.parse(["board=b1"])
    body = es_engine.first_stage_body(["t00_1", "t01_2"], 50, ["pin-3"], filters, with_source=False)
    assert body["query"] == queries.first_stage_query(["t00_1", "t01_2"], ["pin-3"], filters)
    assert body["size"] == 50 and body["stored_fields"] == "_none_" and "_source" not in body
    assert body["sort"] == [{"_score": {"order": "desc"}}, {"id": {"order": "asc"}}]
    with_source = es_engine.first_stage_body(["t00_1"], 5)
    assert with_source["_source"] == {"excludes": ["vector", "token_cell"]} and "stored_fields" not in with_source
    with pytest.raises(UnsupportedError, match="10000"):
        es_engine.first_stage_body(["t00_1"], 10_001)


def test_rescore_body_is_a_knn_query_over_exactly_the_window_ids():
    body = es_engine.rescore_body([0.6, 0.8], ["b", "a", "c"], 2)
    assert body["query"] == {"knn": {"field": "vector", "query_vector": [0.6, 0.8], "num_candidates": 3,
                                     "filter": {"ids": {"values": ["b", "a", "c"]}}}}
    assert body["size"] == 2 and body["sort"] == es_engine.TIE_SORT
    assert body["_source"] == {"excludes": ["vector", "token_cell"]}
    with pytest.raises(ValueError, match="at least one"):
        es_engine.rescore_body([1.0], [], 2)


def test_requests_for_dsl_carry_a_placeholder_and_a_console_comment():
    (line1, first), (line2, second) = es_engine.ElasticsearchEngine(client=None).requests("pins", a_query())
    assert line1.splitlines() == ["# 1/2 first stage: the top 50 pin ids by tokens shared", "GET pins/_search"]
    assert line2.startswith("# 2/2 exact rescore:") and line2.splitlines()[-1] == "GET pins/_search"
    assert first == es_engine.first_stage_body(("t00_1", "t01_2"), 50, with_source=False)
    assert second["query"]["knn"]["filter"] == {"ids": {"values": [es_engine.IDS_PLACEHOLDER]}}
    assert second["query"]["knn"]["num_candidates"] == 50 and second["size"] == 3
    # With the ids of a real first stage: exactly what search sends.
    (_, _), (plain_line, filled) = es_engine.search_requests("pins", a_query(), ids=["x", "y"])
    assert plain_line == "GET pins/_search" and filled == es_engine.rescore_body(a_query().vector, ["x", "y"], 3)


def test_bm25_request_is_the_shared_multi_match_boosted_to_opensearch_3_scores():
    engine = es_engine.ElasticsearchEngine(client=None)
    line, plain = engine.bm25_request("pins", "red kitchen", 7)
    expected = queries.bm25_body("red kitchen", 7)
    expected["query"]["multi_match"]["boost"] = 1 / 2.2
    assert line == "GET pins/_search" and plain == expected
    _, filtered = engine.bm25_request("pins", "red", 3, Filters.parse(["board=b1"]))
    assert filtered["query"]["bool"]["must"][0]["multi_match"]["boost"] == pytest.approx(1 / 2.2)
    assert filtered["query"]["bool"]["filter"] == [{"terms": {"board": ["b1"]}}]


def test_cosine_from_the_score_inverts_one_plus_cos_over_two():
    assert [es_engine.cosine_from_es_score(score) for score in (1.0, 0.8, 0.5, 0.2, 0.0)] == pytest.approx(
        [1.0, 0.6, 0.0, -0.6, -1.0])


# ---- connecting ------------------------------------------------------------------------------------------------


def test_url_comes_from_the_option_then_the_environment_then_the_managed_node(monkeypatch, tmp_path):
    monkeypatch.setenv("PINTEXT_HOME", str(tmp_path))
    monkeypatch.setenv("PINTEXT_ELASTICSEARCH_PORT", "9477")
    monkeypatch.delenv("ELASTICSEARCH_URL", raising=False)
    assert es_engine.resolve_url() == "http://127.0.0.1:9477"
    monkeypatch.setenv("ELASTICSEARCH_URL", "http://es.example:9200/")
    assert es_engine.resolve_url() == "http://es.example:9200"
    assert es_engine.resolve_url("https://other:9243") == "https://other:9243"
    with pytest.raises(ValueError, match=r"\*\*\*@host") as refused:
        es_engine.resolve_url("ftp://user:s3cret@host:1")
    assert "s3cret" not in str(refused.value)


def test_open_engine_never_shows_a_password():
    engine = es_engine.open_engine(EngineOptions(url="https://elastic:s3cret@es.example:9243", insecure=True))
    assert engine.describe() == "Elasticsearch at https://***@es.example:9243" and engine.name == "elasticsearch"
    engine = es_engine.open_engine(EngineOptions(url="http://es.example:9200", user="elastic", password="s3cret"))
    assert "s3cret" not in engine.describe()


def test_a_missing_client_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "elasticsearch", None)
    with pytest.raises(ImportError, match=r"pip install 'pintext\[elasticsearch\]'"):
        es_engine.connect("http://127.0.0.1:9")


def test_no_node_answering_is_the_clients_connection_error_without_the_password():
    from elastic_transport import ConnectionError as TransportConnectionError

    from pintext.api.failures import is_unreachable

    engine = es_engine.open_engine(EngineOptions(url=f"http://elastic:s3cret@127.0.0.1:{free_port()}"))
    with pytest.raises(TransportConnectionError) as raised:
        engine.meta("pins")
    assert is_unreachable(raised.value) and "s3cret" not in str(raised.value)


# ---- on a real node --------------------------------------------------------------------------------------------

DIM = 24
node_only = pytest.mark.elasticsearch


@pytest.fixture(scope="module")
def engine(elasticsearch_node) -> es_engine.ElasticsearchEngine:
    return es_engine.open_engine(EngineOptions(url=elasticsearch_node.url))


@pytest.fixture()
def index_names(engine) -> Iterator[list[str]]:
    """Index names a test creates (deleted afterwards, with their aliases)."""
    names: list[str] = []
    yield names
    for name in names:
        engine.delete(name)


def unit_rows(count: int, seed: int) -> np.ndarray:
    rows = np.random.default_rng(seed).standard_normal((count, DIM))
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def fill(engine, name: str, pins: list[dict], vectors, tokens) -> None:
    engine.create(name, DIM, {"dim": DIM, "test": "elasticsearch-engine"})
    result = engine.write(name, pins, vectors, tokens)
    assert not result.failed and result.created == len(pins)
    engine.refresh(name)


@node_only
def test_scores_are_numpys_cosines_in_the_tie_rule_order(engine, index_names):
    name = f"es-engine-{uuid.uuid4().hex[:8]}"
    index_names.append(name)
    vectors = unit_rows(60, seed=1) * np.random.default_rng(2).uniform(0.5, 3.0, (60, 1)).astype(np.float32)
    vectors[11] = vectors[4]  # an exact tie: broken by pin id
    pins = [{"id": f"p{row:03d}", "title": f"pin {row}"} for row in range(60)]
    fill(engine, name, pins, list(vectors), [["a", f"b{row % 3}"] for row in range(60)])
    query = unit_rows(1, seed=3)[0]
    hits = engine.search(name, VectorQuery(("a",), query, k=60, window=60))
    expected = cosine(vectors, query)
    order = sorted(range(60), key=lambda row: (-expected[row], f"p{row:03d}"))
    assert [hit.id for hit in hits] == [f"p{row:03d}" for row in order]
    scores = np.array([hit.score for hit in hits])
    np.testing.assert_allclose(scores, expected[order], atol=1e-6)
    assert all(hit.cosine == hit.score and hit.raw_score == pytest.approx((1 + hit.score) / 2) for hit in hits)
    assert [hit.first_stage_score for hit in hits] == [1.0] * 60 and hits[0].matched_tokens == ["a"]
    assert [hit.id for hit in hits].index("p004") + 1 == [hit.id for hit in hits].index("p011")


@node_only
def test_a_pin_outside_the_window_never_appears_and_the_edge_is_cut_by_pin_id(engine, index_names, tmp_path):
    name = f"es-engine-{uuid.uuid4().hex[:8]}"
    index_names.append(name)
    query = unit_rows(1, seed=5)[0]
    rows = unit_rows(30, seed=6)
    rows[0] = query  # the best cosine of all, but it shares one token where the others share two
    pins = [{"id": f"p{row:03d}", "title": f"pin {row}"} for row in range(30)]
    tokens = [["a"]] + [["a", "b"]] * 29
    fill(engine, name, pins, list(rows), tokens)
    local = LocalEngine(tmp_path / "local")
    local.create(name, DIM, {"dim": DIM})
    local.write(name, pins, list(rows), tokens)
    for window in (5, 12, 29):  # every window edge is a 29-way tie on the first stage
        request = VectorQuery(("a", "b"), query, k=5, window=window)
        hits = engine.search(name, request)
        assert "p000" not in {hit.id for hit in hits}
        assert [hit.id for hit in hits] == [hit.id for hit in local.search(name, request)]
        window_ids = {hit.id for hit in engine.first_stage(name, ["a", "b"], window)}
        assert window_ids == {f"p{row:03d}" for row in range(1, window + 1)}  # ties cut by pin id
        assert {hit.id for hit in hits} <= window_ids
    everything = engine.search(name, VectorQuery(("a", "b"), query, k=5, window=30))
    assert everything[0].id == "p000" and everything[0].score == pytest.approx(1.0, abs=1e-6)
    assert everything[0].first_stage_score == 1.0


@node_only
def test_vectors_round_trip_exactly_a_pin_without_one_is_found_by_bm25_and_an_absent_index_is_named(engine,
                                                                                                  index_names):
    """What the conformance suite leaves to each engine: float32 vectors come back bit for bit, BM25 finds a pin
    stored without a vector, an absent index is IndexNotFoundError, and a token no pin holds finds nothing."""
    name = f"es-engine-{uuid.uuid4().hex[:8]}"
    index_names.append(name)
    rows = unit_rows(10, seed=7)
    pins = [{"id": f"p{row:03d}", "title": f"kitchen pin {row}"} for row in range(10)]
    pins.append({"id": "no-vector", "title": "kitchen words only", "board": "b1"})
    fill(engine, name, pins, [*rows, None], [["a"]] * 11)
    assert "no-vector" in {hit.id for hit in engine.bm25(name, "words", 5)}
    stored, stored_vector = engine.get(name, "p007")
    assert stored == pins[7] and np.array_equal(stored_vector, rows[7])  # float32 round trip
    with pytest.raises(IndexNotFoundError):
        engine.get(f"{name}-absent", "p001")
    with pytest.raises(IndexNotFoundError):
        engine.meta(f"{name}-absent")
    assert engine.search(name, VectorQuery(("zz",), unit_rows(1, seed=8)[0], k=3, window=10)) == []


@node_only
def test_aliases_swap_in_one_atomic_call_and_meta_reads_through_them(engine, index_names):
    base = f"es-alias-{uuid.uuid4().hex[:8]}"
    old, new = f"{base}-000000000000", f"{base}-111111111111"
    index_names.extend([old, new])
    for index in (old, new):
        engine.create(index, DIM, {"dim": DIM, "which": index})
    assert engine.indices(f"{base}-") == [old, new] and engine.alias_target(base) is None
    engine.point_alias(base, old)
    assert engine.alias_target(base) == old and engine.meta(base)["which"] == old
    calls = []
    real = engine.client.indices.update_aliases

    def spy(**kwargs):
        calls.append(kwargs["actions"] if "actions" in kwargs else kwargs["body"]["actions"])
        return real(**kwargs)

    engine.client.indices.update_aliases = spy
    try:
        engine.point_alias(base, new)
    finally:
        engine.client.indices.update_aliases = real
    assert calls == [[{"remove": {"index": old, "alias": base}}, {"add": {"index": new, "alias": base}}]]
    assert engine.alias_target(base) == new and engine.meta(base)["which"] == new
    assert sorted(engine.client.indices.get_alias(name=base)) == [new]
    layout = engine.layout(base)
    assert (layout.shards, layout.replicas, layout.health) == (1, 0, "green")
    with pytest.raises(ValueError, match="is an index"):
        engine.point_alias(old, new)
    assert engine.delete(old) and not engine.delete(old)


@node_only
def test_bulk_failures_come_back_per_pin_with_a_reason(engine, index_names):
    name = f"es-engine-{uuid.uuid4().hex[:8]}"
    index_names.append(name)
    engine.create(name, DIM, {"dim": DIM})
    rows = unit_rows(3, seed=9)
    pins = [{"id": "good", "title": "fine"}, {"id": "short", "title": "wrong dim"},
            {"id": "zero", "title": "zero vector"}]
    vectors = [rows[0], rows[1][:5], np.zeros(DIM, np.float32)]
    result = engine.write(name, pins, vectors, [["a"]] * 3)
    assert (result.created, result.updated) == (1, 0) and sorted(result.failed) == ["short", "zero"]
    assert "status 400" in result.failed["short"] and "dimension" in result.failed["short"]
    assert "zero magnitude" in result.failed["zero"]
    again = engine.write(name, pins[:1], vectors[:1], [["a"]])
    assert (again.created, again.updated, again.failed) == (0, 1, {})


# ---- the CLI end to end ----------------------------------------------------------------------------------------


@node_only
def test_cli_dsl_prints_the_two_console_requests_search_sends(engine, elasticsearch_node, tmp_path):
    """Elasticsearch has no rescore by script: `dsl` prints two requests (the token first stage, then a knn over
    its ids) that a user pastes into Kibana Console; run by hand, they give the hits `search` gives."""
    name = f"es-cli-{uuid.uuid4().hex[:8]}"
    model = make_model(tmp_path / "model")
    pins_file = tmp_path / "pins.jsonl"
    write_pins_file(pins_file, make_pins(150), with_bad_lines=False)
    where = ["--engine", "elasticsearch", "--url", elasticsearch_node.url, "--index", name]
    try:
        # LSH: with learned centroids every token match is scored exactly and `dsl` prints one request.
        summary = run_pintext(["ingest", str(pins_file), "--model", str(model), "--json", "--tokens", "lsh",
                               *where]).json()
        assert summary["indexed"] == 150 and not summary.get("rejected")
        info = json.loads(run_pintext(["index", "info", *where]).ok())
        assert [(row["health"], row["docs"]) for row in info["versions"]] == [("green", 150)]
        searched = run_pintext(["search", "w007 w077", "--model", str(model), "--json", "--k", "5", *where])
        found = json.loads(searched.ok())
        assert len(found["hits"]) == 5
        printed = run_pintext(["dsl", "w007 w077", "--model", str(model), "--k", "5", *where]).ok()
        (comment1, line1, *body1), (comment2, line2, *body2) = (part.splitlines() for part in printed.split("\n\n"))
        assert comment1.startswith("# 1/2") and comment2.startswith("# 2/2")
        assert line1 == line2 == f"GET {name}/_search"
        first = engine.client.search(index=name, body=json.loads("\n".join(body1)))["hits"]["hits"]
        second = json.loads("\n".join(body2))
        second["query"]["knn"]["filter"]["ids"]["values"] = [hit["sort"][1] for hit in first]
        second["query"]["knn"]["num_candidates"] = len(first)
        by_hand = engine.client.search(index=name, body=second)["hits"]["hits"]
        assert [hit["_id"] for hit in by_hand] == [hit["id"] for hit in found["hits"]]
    finally:
        run_pintext(["index", "delete", *where])
    assert engine.alias_target(name) is None
