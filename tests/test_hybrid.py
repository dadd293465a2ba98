"""Hybrid search (BM25 + PinText fused in the client), the BM25 fallback and pins without a vector, on a real node.

A small corpus with known words: `hit` holds exactly the query's words (first for BM25 and for cosine), two pins
share one query word each (BM25 finds them), the rest share none (only PinText ranks them), and two pins hold only
unknown words (indexed without a vector, found by BM25 alone). The rescore window covers the whole corpus, so the
PinText side is the cosine order of the LSH candidates, recomputed here with numpy.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from pintext.encoder import Encoder
from pintext.fusion import FUSION_METHODS, FusionConfig, min_max_blend, reciprocal_rank_fusion, union_rescore
from pintext.pin_vectors import pin_vectors
from pintext.cli.options import FusionMethod
from tests.factories import WORDS, make_model, write_pins
from tests.fixtures_cli import run_pintext
from tests.serving_helpers import opensearch_searcher, os_args

pytestmark = pytest.mark.opensearch

QUERY = "w001 w002"
TEXT_ONLY = {"oov-1": "zzzz yyyy", "oov-2": "zzzz xxxx"}  # no word the model knows


def hybrid_pins() -> list[dict]:
    rng = np.random.default_rng(3)
    pins = [{"id": "hit", "title": "w001 w002", "description": ""},
            {"id": "one-a", "title": "w001 w010 w011 w012", "description": ""},
            {"id": "one-b", "title": "w002 w020", "description": "w021 w022"}]
    others = [word for word in WORDS if word not in ("w001", "w002")]
    for i in range(40):
        pins.append({"id": f"other-{i:02d}", "title": " ".join(rng.choice(others, size=3)), "description": ""})
    pins += [{"id": pin_id, "title": title, "description": ""} for pin_id, title in TEXT_ONLY.items()]
    return pins


@pytest.fixture()
def hybrid_corpus(opensearch, opensearch_index_name, tmp_path):
    model_dir = make_model(tmp_path / "model")
    pins = hybrid_pins()
    pins_file = write_pins(tmp_path / "pins.jsonl", pins)
    # float32: these tests recompute the fusion from numpy's float cosine (tests/test_conformance.py has int8).
    result = run_pintext(["ingest", str(pins_file), "--model", str(model_dir), "--no-tune", "--vector-type",
                          "float32", *os_args(opensearch, opensearch_index_name)])
    result.ok()
    assert "indexed without a vector" in result.stdout  # the summary table counts them
    encoder = Encoder.load(model_dir)
    vectors = pin_vectors(encoder, pins)
    return {"model_dir": model_dir, "pins": pins, "encoder": encoder, "vectors": vectors,
            "searcher": opensearch_searcher(opensearch, opensearch_index_name),
            "index": opensearch_index_name}


def pintext_order(corpus: dict, text: str) -> list[str]:
    """The served PinText ranking, recomputed in numpy: pins sharing an LSH table with the query (the candidates;
    pins without a vector have no tokens), by exact cosine (the window holds them all), ties by id."""
    searcher = corpus["searcher"]
    query = corpus["encoder"].encode([text])[0]
    query_tokens = set(searcher.family.query_tokens(query, probes=searcher.serving.probes)[0])
    norms = np.linalg.norm(corpus["vectors"], axis=1)
    scored = []
    for row, pin in enumerate(corpus["pins"]):
        if norms[row] > 0 and query_tokens & set(searcher.family.tokens(corpus["vectors"][row])[0]):
            scored.append((-float(corpus["vectors"][row] @ query / (norms[row] * np.linalg.norm(query))), pin["id"]))
    return [pin_id for _, pin_id in sorted(scored)]


def test_bm25_finds_the_word_matches_and_pintext_is_the_cosine_order_of_candidates(hybrid_corpus):
    searcher = hybrid_corpus["searcher"]
    bm25 = searcher.bm25_search(QUERY, k=20)
    assert bm25[0].id == "hit" and {hit.id for hit in bm25} == {"hit", "one-a", "one-b"}
    assert [hit.bm25_rank for hit in bm25] == [1, 2, 3]
    vector = hybrid_corpus["encoder"].encode([QUERY])[0]
    pintext = searcher.search(vector, k=20)
    assert [hit.id for hit in pintext] == pintext_order(hybrid_corpus, QUERY)[:20]
    assert not {hit.id for hit in pintext} & set(TEXT_ONLY)  # no vector, no tokens: never a PinText candidate


def test_hybrid_is_the_rrf_of_both_rankings_with_both_sides_on_each_hit(hybrid_corpus):
    searcher = hybrid_corpus["searcher"]
    vector = hybrid_corpus["encoder"].encode([QUERY])[0]
    fused = searcher.hybrid_search(QUERY, vector, k=10, fusion=FusionConfig(method="rrf", weight=0.5), depth=20)
    bm25_ids = [hit.id for hit in searcher.bm25_search(QUERY, k=20)]
    pintext_ids = pintext_order(hybrid_corpus, QUERY)[:20]
    expected = reciprocal_rank_fusion([bm25_ids, pintext_ids], k=60, weights=[0.5, 0.5])[:10]
    assert [(hit.id, round(hit.score, 9)) for hit in fused] == [(doc, round(score, 9)) for doc, score in expected]
    top = fused[0]
    assert (top.id, top.bm25_rank, top.pintext_rank) == ("hit", 1, 1)
    assert top.cosine == pytest.approx(1.0, abs=1e-5) and top.bm25_score > 0
    # Word matches rise above pins that are merely close in the embedding.
    assert {"one-a", "one-b"} <= {hit.id for hit in fused[:4]}
    only_pintext = [hit for hit in fused if hit.id not in bm25_ids]
    assert only_pintext and all(hit.bm25_rank is None and hit.pintext_rank for hit in only_pintext)


def exact_cosines(corpus: dict, text: str) -> dict[str, float]:
    """Every pin with a vector: its cosine to the query, in numpy."""
    query = corpus["encoder"].encode([text])[0]
    norms = np.linalg.norm(corpus["vectors"], axis=1)
    return {pin["id"]: float(corpus["vectors"][row] @ query / (norms[row] * np.linalg.norm(query)))
            for row, pin in enumerate(corpus["pins"]) if norms[row] > 0}


def test_union_scores_every_pin_either_side_found_by_its_exact_cosine(hybrid_corpus):
    searcher = hybrid_corpus["searcher"]
    vector = hybrid_corpus["encoder"].encode([QUERY])[0]
    fused = searcher.hybrid_search(QUERY, vector, k=3, fusion=FusionConfig(method="union", weight=0.9), depth=3)
    bm25 = {hit.id: hit.score for hit in searcher.bm25_search(QUERY, k=3)}
    pintext_ids = pintext_order(hybrid_corpus, QUERY)[:3]
    only_bm25 = [doc for doc in bm25 if doc not in pintext_ids]
    assert only_bm25, "the corpus must give BM25 a pin PinText's top 3 lacks, or the test shows nothing"
    cosines = exact_cosines(hybrid_corpus, QUERY)
    expected = union_rescore(bm25, {doc: cosines[doc] for doc in [*pintext_ids, *bm25]}, 0.9)[:3]
    assert [(hit.id, round(hit.score, 5)) for hit in fused] == [(doc, round(score, 5)) for doc, score in expected]
    # What the third request returns: the exact cosine of just the pins asked for (a pin without vector: none).
    extra = searcher.score_pins(vector, [*only_bm25, "oov-1"])
    assert [(hit.id, round(hit.score, 5)) for hit in extra] == [(doc, round(cosines[doc], 5)) for doc in only_bm25]
    assert searcher.score_pins(vector, []) == []
    assert [method.value for method in FusionMethod] == list(FUSION_METHODS)


def test_fusion_weight_one_is_pintext_order_and_zero_is_bm25_first(hybrid_corpus):
    searcher = hybrid_corpus["searcher"]
    vector = hybrid_corpus["encoder"].encode([QUERY])[0]
    all_pintext = searcher.hybrid_search(QUERY, vector, k=10, fusion=FusionConfig(method="rrf", weight=1.0), depth=20)
    assert [hit.id for hit in all_pintext] == pintext_order(hybrid_corpus, QUERY)[:10]
    all_bm25 = searcher.hybrid_search(QUERY, vector, k=3, fusion=FusionConfig(method="rrf", weight=0.0), depth=20)
    assert [hit.id for hit in all_bm25] == [hit.id for hit in searcher.bm25_search(QUERY, k=3)]


def test_cli_hybrid_blend_json_and_explain(hybrid_corpus, opensearch):
    base = ["search", QUERY, "--model", str(hybrid_corpus["model_dir"]), "--hybrid", "--k", "6", "--depth", "20",
            *os_args(opensearch, hybrid_corpus["index"])]
    result = run_pintext([*base, "--fusion", "blend", "--fusion-weight", "0.3", "--json"])
    result.ok()
    answer = json.loads(result.stdout)
    assert answer["mode"] == "hybrid" and "blend" in answer["note"]
    searcher = hybrid_corpus["searcher"]
    vector = hybrid_corpus["encoder"].encode([QUERY])[0]
    bm25 = {hit.id: hit.score for hit in searcher.bm25_search(QUERY, k=20)}
    pintext = {hit.id: hit.score for hit in searcher.search(vector, k=20)}
    expected = min_max_blend([bm25, pintext], weights=[0.7, 0.3])[:6]
    assert [hit["id"] for hit in answer["hits"]] == [doc for doc, _ in expected]
    assert answer["hits"][0]["bm25_rank"] == 1 and answer["hits"][0]["pintext_rank"] == 1
    table = run_pintext([*base, "--explain"], env={"COLUMNS": "250"})
    assert "BM25 rank" in table.stdout and "PinText rank" in table.stdout and "union" in table.stdout  # the default


def test_model_hybrid_json_is_the_default_and_flags_override_it(hybrid_corpus, opensearch):
    FusionConfig(method="blend", weight=1.0).save(hybrid_corpus["model_dir"])
    base = ["search", QUERY, "--model", str(hybrid_corpus["model_dir"]), "--hybrid", "--k", "5", "--json",
            *os_args(opensearch, hybrid_corpus["index"])]
    from_file = json.loads(run_pintext(base).stdout)
    assert "blend" in from_file["note"] and "weight 1" in from_file["note"]
    assert [hit["id"] for hit in from_file["hits"]] == pintext_order(hybrid_corpus, QUERY)[:5]
    overridden = json.loads(run_pintext([*base, "--fusion", "rrf", "--fusion-weight", "0"]).stdout)
    assert [hit["id"] for hit in overridden["hits"]][:3] == [hit.id for hit in
                                                             hybrid_corpus["searcher"].bm25_search(QUERY, k=3)]


def test_query_with_no_known_word_falls_back_to_bm25(hybrid_corpus, opensearch):
    for extra in ([], ["--hybrid"]):
        result = run_pintext(["search", "zzzz", "--model", str(hybrid_corpus["model_dir"]), "--json",
                              *extra, *os_args(opensearch, hybrid_corpus["index"])])
        answer = json.loads(result.stdout)
        assert answer["mode"] == "bm25_fallback" and "vocabulary" in answer["note"]
        assert [hit["id"] for hit in answer["hits"]] == ["oov-1", "oov-2"]  # equal BM25 scores: by id
    table = run_pintext(["search", "yyyy", "--model", str(hybrid_corpus["model_dir"]),
                         *os_args(opensearch, hybrid_corpus["index"])])
    assert "oov-1" in table.stdout and "BM25 results" in " ".join(table.stdout.split())


def test_related_of_a_pin_without_vector_is_bm25_on_its_text(hybrid_corpus, opensearch):
    result = run_pintext(["related", "oov-1", "--model", str(hybrid_corpus["model_dir"]), "--json",
                          *os_args(opensearch, hybrid_corpus["index"])])
    answer = json.loads(result.stdout)
    assert answer["mode"] == "bm25_fallback" and [hit["id"] for hit in answer["hits"]] == ["oov-2"]


def test_rescore_never_fails_on_a_pin_without_vector_in_the_window(hybrid_corpus, opensearch):
    """Force a vector-less pin into the rescore window: the `exists` guard leaves it unscored instead of failing."""
    from pintext import queries

    vector = hybrid_corpus["encoder"].encode([QUERY])[0]
    tokens = hybrid_corpus["searcher"].family.query_tokens(vector)[0]
    body = queries.search_body(tokens, vector, k=60, window=60)
    body["query"]["bool"]["should"].append({"ids": {"values": ["oov-1"]}})
    hits = opensearch.search(index=hybrid_corpus["index"], body=body)["hits"]["hits"]
    scores = {hit["_id"]: hit["_score"] for hit in hits}
    assert scores["oov-1"] == 0.0 and scores["hit"] == pytest.approx(1.0, abs=1e-5)  # (1 + cos) / 2 for cos 1


def test_dsl_hybrid_prints_both_requests_and_they_search_alike(hybrid_corpus, opensearch):
    result = run_pintext(["dsl", QUERY, "--hybrid", "--k", "5", "--depth", "20", "--model",
                          str(hybrid_corpus["model_dir"]), *os_args(opensearch, hybrid_corpus["index"])])
    result.ok()
    assert result.stdout.startswith("# hybrid: both requests, then union fusion in the client (PinText weight 0.95,")
    assert "before it, one more request scores BM25's pins" in result.stdout.splitlines()[0]
    requests = {}
    for part in result.stdout.split("\n# ")[1:]:
        side, request_line, body = part.split("\n", 2)
        assert request_line == f"GET {hybrid_corpus['index']}/_search"
        requests[side] = json.loads(body)
    assert set(requests) == {"bm25", "pintext"}
    searcher = hybrid_corpus["searcher"]
    vector = hybrid_corpus["encoder"].encode([QUERY])[0]
    for side, expected in (("bm25", searcher.bm25_search(QUERY, k=20)), ("pintext", searcher.search(vector, k=20))):
        response = opensearch.search(index=hybrid_corpus["index"], body=requests[side])["hits"]["hits"]
        assert sorted(hit["_id"] for hit in response) == sorted(hit.id for hit in expected), side
    fallback = run_pintext(["dsl", "zzzz", "--model", str(hybrid_corpus["model_dir"]),
                            *os_args(opensearch, hybrid_corpus["index"])])
    assert "falls back to BM25" in fallback.stdout and '"multi_match"' in fallback.stdout
