"""Search and related against a real OpenSearch node, with the local backend as the oracle.

Pins are indexed in pin-id order by one bulk worker, so Lucene's tie rule for equal first-stage scores (lower
doc id first) coincides with PinText's (smaller pin id first), and the two backends must agree exactly, even
with a window much smaller than the candidate set.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from pintext import queries
from pintext.encoder import Encoder
from tests.factories import make_model, make_pins, model_snapshot, random_queries, write_pins_file
from tests.fixtures_cli import run_pintext
from tests.fixtures_engines import in_ci
from tests.serving_helpers import local_index, opensearch_searcher, os_args

pytestmark = pytest.mark.opensearch

PIN_COUNT = 800


@pytest.fixture()
def corpus(opensearch, opensearch_index_name, tmp_path):
    """The same pins in OpenSearch and in a local index; returns what the tests need to query both."""
    model_dir = make_model(tmp_path / "model")
    pins = make_pins(PIN_COUNT, seed=11)
    pins_file = tmp_path / "pins.jsonl"
    write_pins_file(pins_file, pins, with_bad_lines=False)
    # These tests replay random hyperplanes' first stage (tables x probes tokens, a rescore window).
    common = ["--model", str(model_dir), "--batch", "200", "--workers", "1", "--json", "--tokens", "lsh"]
    for extra in (os_args(opensearch, opensearch_index_name), ["--backend", "local", "--local-dir",
                                                               str(tmp_path / "local")]):
        result = run_pintext(["ingest", str(pins_file), *common, *extra])
        result.ok()
        assert json.loads(result.stdout.strip().splitlines()[-1])["indexed"] == PIN_COUNT
    encoder = Encoder.load(model_dir)
    searcher = opensearch_searcher(opensearch, opensearch_index_name)
    # Both indexes were tuned on the same file, deterministically: the same LSH config and serving defaults.
    assert local_index(tmp_path / "local").meta()["tokens"] == searcher.family.to_dict()
    assert local_index(tmp_path / "local").meta()["serving"] == searcher.serving.to_dict()
    lsh = searcher.family
    return {
        "model_dir": model_dir,
        "encoder": encoder,
        "lsh": lsh,
        "pins": pins,
        "searcher": searcher,
        "local": local_index(tmp_path / "local"),
        "local_dir": tmp_path / "local",
        "index": opensearch_index_name,
    }


@pytest.mark.parametrize("window,probes", [(10_000, 0), (30, 0), (30, 2)])
def test_opensearch_and_local_backend_agree(corpus, window, probes):
    for text in random_queries(15, seed=window + probes):
        vector = corpus["encoder"].encode([text])[0]
        remote = corpus["searcher"].search(vector, k=10, window=window, probes=probes)
        # The local index is searched directly: with the query vector as the index holds vectors (int8 by default),
        # hashed as the searcher hashes it.
        served = corpus["searcher"].served(vector)
        tokens = corpus["lsh"].query_tokens(served.astype(np.float32), probes=probes)[0]
        local = corpus["local"].search(tokens, served, k=10, window=window)
        assert [hit.id for hit in remote] == [hit.id for hit in local], text
        np.testing.assert_allclose([h.score for h in remote], [h.score for h in local], atol=1e-5)


def test_stored_template_renders_the_builder_body_and_searches_alike(corpus, opensearch):
    if not opensearch.get_script(id=queries.SEARCH_TEMPLATE_ID, ignore=404).get("found"):
        message = "the node has no lang-mustache module, so the search template could not be stored"
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)
    vector = corpus["encoder"].encode(["w100 w101 w102"])[0]
    tokens = corpus["lsh"].tokens(vector)[0]
    served = corpus["searcher"].served(vector)  # the template takes the query vector as the index holds vectors
    params = queries.template_params(tokens, served, k=7, window=60)
    rendered = opensearch.render_search_template(body={"id": queries.SEARCH_TEMPLATE_ID, "params": params})
    assert queries.without_template_padding(rendered["template_output"]) == queries.search_body(
        tokens, served, k=7, window=60)
    response = opensearch.search_template(index=corpus["index"], body={"id": queries.SEARCH_TEMPLATE_ID,
                                                                       "params": params})
    by_template = sorted(((-hit["_score"], hit["_id"]) for hit in response["hits"]["hits"]))
    assert [pin_id for _, pin_id in by_template] == [hit.id for hit in corpus["searcher"].search(
        vector, k=7, window=60, probes=0)]


def test_search_uses_the_index_window_and_leaves_the_model_folder_untouched(corpus, opensearch):
    before = model_snapshot(corpus["model_dir"])
    serving = corpus["searcher"].serving
    base = ["--model", str(corpus["model_dir"]), "--k", "5", "--json"]
    remote = run_pintext(["search", "w007 w077", *base, *os_args(opensearch, corpus["index"])])
    local = run_pintext(["search", "w007 w077", *base, "--backend", "local", "--local-dir",
                         str(corpus["local_dir"])])
    for result in (remote, local):
        answer = json.loads(result.stdout)
        assert (answer["mode"], answer["window"], answer["probes"]) == ("pintext", serving.window, serving.probes)
    vector = corpus["encoder"].encode(["w007 w077"])[0]
    expected = corpus["searcher"].search(vector, k=5, window=serving.window, probes=serving.probes)
    assert [hit["id"] for hit in json.loads(remote.stdout)["hits"]] == [hit.id for hit in expected]
    for command in (["related", corpus["pins"][3]["id"]], ["dsl", "w007 w077", "--hybrid"]):
        result = run_pintext([*command, "--model", str(corpus["model_dir"]),
                              *os_args(opensearch, corpus["index"])])
        result.ok()
    assert model_snapshot(corpus["model_dir"]) == before


def test_cli_search_json_explain_dsl_and_backends_agree(corpus, opensearch):
    base = ["--model", str(corpus["model_dir"]), "--k", "5", "--window", "50"]
    remote = run_pintext(["search", "w007 w077", *base, "--json", "--explain",
                          *os_args(opensearch, corpus["index"])])
    local = run_pintext(["search", "w007 w077", *base, "--json", "--backend", "local",
                         "--local-dir", str(corpus["local_dir"])])
    assert remote.code == 0 and local.code == 0, remote.output + local.output
    remote_hits = json.loads(remote.stdout)["hits"]
    assert [h["id"] for h in remote_hits] == [h["id"] for h in json.loads(local.stdout)["hits"]]
    assert all(h["matched_tokens"] and h["first_stage_score"] == len(h["matched_tokens"]) for h in remote_hits)

    printed = run_pintext(["dsl", "w007 w077", *base, *os_args(opensearch, corpus["index"])])
    request_line, body = printed.stdout.split("\n", 1)
    assert request_line == f"GET {corpus['index']}/_search"
    response = opensearch.search(index=corpus["index"], body=json.loads(body))
    assert sorted(hit["_id"] for hit in response["hits"]["hits"]) == sorted(h["id"] for h in remote_hits)

    table = run_pintext(["search", "w007 w077", *base, "--explain",
                         *os_args(opensearch, corpus["index"])])
    assert remote_hits[0]["id"] in table.stdout and "first stage" in table.stdout


def test_cli_queries_file_related_and_template_call(corpus, opensearch, tmp_path):
    queries_file = tmp_path / "queries.jsonl"
    queries_file.write_text('{"query": "w001 w002"}\n\n"w050"\n', encoding="utf-8")
    base = ["--model", str(corpus["model_dir"]), "--k", "4", "--window", "40"]
    result = run_pintext(["search", "--queries", str(queries_file), *base, "--json",
                          *os_args(opensearch, corpus["index"])])
    answers = [json.loads(line) for line in result.stdout.splitlines()]
    assert [answer["query"] for answer in answers] == ["w001 w002", "w050"]
    assert all(len(answer["hits"]) == 4 for answer in answers)

    pin_id = corpus["pins"][9]["id"]
    related = run_pintext(["related", pin_id, *base, "--json", *os_args(opensearch, corpus["index"])])
    hits = json.loads(related.stdout)["hits"]
    assert len(hits) == 4 and pin_id not in [hit["id"] for hit in hits]
    missing = run_pintext(["related", "no-such-pin", *base, *os_args(opensearch, corpus["index"])])
    assert missing.code == 2 and "no-such-pin" in missing.output

    printed = run_pintext(["dsl", "w001 w002", *base, "--template",
                           *os_args(opensearch, corpus["index"])])
    request_line, body = printed.stdout.split("\n", 1)
    call = json.loads(body)
    assert request_line == f"GET {corpus['index']}/_search/template"
    assert call["id"] == queries.SEARCH_TEMPLATE_ID and call["params"]["size"] == 4
    # The index's LSH config and tuned probes: one token per table and probe.
    probes = corpus["searcher"].serving.probes
    assert len(call["params"]["tokens"]) == corpus["lsh"].tables * (1 + probes)
    assert len(call["params"]["vector"]) == corpus["encoder"].dim
