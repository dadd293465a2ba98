"""Query DSL builders: first stage, rescore block, hybrid, related, and the mustache template's shape."""

import json
import re

import numpy as np
import pytest

from pintext import queries


def test_first_stage_counts_tokens_with_unit_constant_scores():
    query = queries.first_stage_query(["t00_1a", "t01_ff", "t00_1a"])
    should = query["bool"]["should"]
    assert query["bool"]["minimum_should_match"] == 1
    assert should == [
        {"constant_score": {"filter": {"term": {"lsh_tokens": "t00_1a"}}, "boost": 1.0}},
        {"constant_score": {"filter": {"term": {"lsh_tokens": "t01_ff"}}, "boost": 1.0}},
    ]
    assert "must_not" not in query["bool"]


def test_bm25_body_is_a_multi_match_over_the_text_fields():
    body = queries.bm25_body("red shoes", k=7)
    assert body["size"] == 7 and body["_source"] == {"excludes": ["vector", "token_cell"]}
    assert body["query"] == {"multi_match": {"query": "red shoes",
                                             "fields": ["title", "description", "board.text", "annotations.text"]}}
    excluded = queries.bm25_body("red shoes", k=3, exclude_ids=["p1"])["query"]["bool"]
    assert excluded["must"] == [body["query"]] and excluded["must_not"] == [{"ids": {"values": ["p1"]}}]
    with pytest.raises(ValueError, match="needs some text"):
        queries.bm25_body("  ")


def test_hybrid_requests_are_bm25_and_pintext_each_fusion_depth_deep():
    requests = queries.hybrid_requests("red shoes", ["t00_01"], [0.1, 0.2], k=10, window=50, depth=100)
    assert set(requests) == {"bm25", "pintext"}
    assert requests["bm25"] == queries.bm25_body("red shoes", 100)
    # The PinText side returns `depth` hits, so its window widens to hold them.
    assert requests["pintext"] == queries.search_body(["t00_01"], [0.1, 0.2], k=100, window=100)
    assert queries.hybrid_requests("red shoes", [], None, k=150, depth=100) == {"bm25": queries.bm25_body(
        "red shoes", 150)}


def test_empty_first_stage_is_refused():
    with pytest.raises(ValueError, match="at least one LSH token"):
        queries.first_stage_query([])


def test_rescore_block_is_exact_knn_cosine_with_zero_first_stage_weight():
    block = queries.rescore_block([1, 0.5, -2], window=50)
    assert block["window_size"] == 50
    assert block["query"]["query_weight"] == 0.0
    assert block["query"]["rescore_query_weight"] == 1.0
    script_score = block["query"]["rescore_query"]["script_score"]
    assert script_score["query"] == {"exists": {"field": "vector"}}  # pins indexed without a vector: not rescored
    assert script_score["script"] == {
        "lang": "knn",
        "source": "knn_score",
        "params": {"field": "vector", "query_value": [1.0, 0.5, -2.0], "space_type": "cosinesimil"},
    }
    with pytest.raises(ValueError):
        queries.rescore_block([1.0], window=0)


def test_search_body_and_k_window_rule():
    body = queries.search_body(["t00_01"], [0.1, 0.2], k=5, window=20)
    assert body["size"] == 5
    assert body["rescore"]["window_size"] == 20
    assert body["_source"] == {"excludes": ["vector", "token_cell"]}
    assert "rescore" not in queries.search_body(["t00_01"], None, k=5, window=2)
    with pytest.raises(ValueError, match="must not exceed the rescore window"):
        queries.search_body(["t00_01"], [0.1], k=30, window=20)


def test_related_excludes_the_subject_pin():
    body = queries.related_body("pin-7", ["t00_01"], [1.0, 0.0], k=3, window=10)
    assert body["query"]["bool"]["must_not"] == [{"ids": {"values": ["pin-7"]}}]
    assert body["rescore"]["query"]["rescore_query"]["script_score"]["script"]["params"]["query_value"] == [1.0, 0.0]


def test_dev_tools_request_is_request_line_plus_json():
    text = queries.dev_tools_request("pins", {"size": 1})
    first, rest = text.split("\n", 1)
    assert first == "GET pins/_search"
    assert json.loads(rest) == {"size": 1}


def render_like_mustache(source: str, params: dict) -> str:
    """Just enough mustache for this template: list sections with {{.}}, inverted defaults, toJson."""
    source = re.sub(r"\{\{#toJson\}\}(\w+)\{\{/toJson\}\}", lambda m: json.dumps(params[m.group(1)]), source)

    def section(match: re.Match) -> str:
        name, inner = match.group(1), match.group(2)
        return "".join(inner.replace("{{.}}", str(item)) for item in params[name])

    source = re.sub(r"\{\{#(\w+)\}\}(.*?)\{\{/\1\}\}", section, source)
    source = re.sub(r"\{\{\^(\w+)\}\}(.*?)\{\{/\1\}\}", lambda m: "" if params.get(m.group(1)) else m.group(2), source)
    return re.sub(r"\{\{(\w+)\}\}", lambda m: str(params.get(m.group(1), "")), source)


def test_template_renders_to_the_builder_body():
    params = queries.template_params(["t00_01", "t01_02"], [0.5, -0.25], k=4, window=40)
    script = queries.search_template_script()["script"]
    assert script["lang"] == "mustache"
    rendered = json.loads(render_like_mustache(script["source"], params))
    assert queries.without_template_padding(rendered) == queries.search_body(
        ["t00_01", "t01_02"], [0.5, -0.25], k=4, window=40
    )


def test_a_vector_query_needs_tokens_unless_it_is_exact():
    """The token path looks pins up by their tokens; the exact path (a selective filter, the union hybrid's third
    request) scores every pin the filters keep, so it may carry none."""
    from pintext.serving.base import VectorQuery

    vector = np.ones(4, dtype=np.float32)
    with pytest.raises(ValueError, match="at least one token"):
        VectorQuery((), vector)
    assert VectorQuery((), vector, exact=True).tokens == ()
