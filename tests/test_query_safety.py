"""Query safety (issue 13): user text reaches the engine only as a query value or a term value, never inside a
script source, a mustache template body or JSON built by string formatting.

Pure part: for hostile strings (mustache sections and triple braces, JSON breakers, a script smuggled in quotes,
NUL, 10k characters, HTML, SQL), every request body PinText builds holds each one only as a whole string value
at a place that takes text (`multi_match.query`, a `terms` value), every `source` is the constant `knn_score`,
the stored template escapes what it inserts, and a raw filter clause can carry no script.

Real nodes: pins whose titles are those strings go through `pintext ingest`, then `pintext search`, `search
--hybrid`, `dsl --template` (run through the stored template, and `_render/template`) on OpenSearch, and
`search` / `--hybrid` on Elasticsearch: the pin with that literal title is the first hit, the hostile query
returns exactly what the same words without the punctuation return (ids, order, scores), and no unrelated pin
matches (a broken query would match everything or fail).
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pintext import queries
from pintext.serving import elasticsearch as es_serving
from pintext.serving.base import VectorQuery
from pintext.serving.filters import FilterError, Filters
from pintext.text import words
from tests.factories import make_model, write_pins
from tests.fixtures_cli import run_pintext

LONG = ('{{x}}"}]} ' * 1_000)[:10_000]
HOSTILE = [
    "{{#tokens}}",
    "{{/tokens}}",
    "{{{x}}}",
    '"}]}',
    '\\"}}, "script": {"source": "System.exit(0)"}',
    "\u0000",
    LONG,
    "<script>alert(1)</script>",
    "' OR 1=1 --",
]
# Pin ids a URL path or a query could trip over: path traversal, a query string, a fragment, percent escapes.
HOSTILE_IDS = ["../_search?q=*", "a/b#c", "%2e%2e%2f_cat", '"}]} OR 1=1', "{{#tokens}}x{{/tokens}}", "\u0000id",
               "' OR 1=1 --", "id with spaces", "_all"]
# Titles the hits table must print literally: Rich markup (a lone closing tag crashed it), a link, terminal escapes.
MARKUP_TITLES = ["[/] markup0", "[link=https://evil.example]markup1[/link]", "\x1b[2J\x1b]0;pwned\x07markup2",
                 "[bold red]markup3", "\u202emarkup4 reversed"]
DIM = 16
DECOYS = 30
# Every `source` PinText sends: the k-NN plugin's exact cosine script, named, never written from input.
SCRIPT_SOURCES = {"knn_score"}


def strings_in(value: Any, path: tuple = ()) -> Iterator[tuple[tuple, str]]:
    """Every string in a JSON document with its path (keys, list positions), keys included as values."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield (*path, "<key>"), key
            yield from strings_in(item, (*path, key))
    elif isinstance(value, list):
        for position, item in enumerate(value):
            yield from strings_in(item, (*path, position))
    elif isinstance(value, str):
        yield path, value


def assert_only_as_a_value(body: dict, text: str, allowed_keys: set[str]) -> None:
    """`text` appears in `body` only as a whole string value under one of `allowed_keys` (or in a list under
    one), and every script source is a constant."""
    assert json.loads(json.dumps(body)) == body
    places = []
    for path, value in strings_in(body):
        if path and path[-1] == "source" or (len(path) > 1 and path[-2:] == ("script", "source")):
            assert value in SCRIPT_SOURCES, (path, value[:80])
        if text and text in value:
            assert value == text, f"{text[:40]!r} pasted into a larger string at {path}: {value[:120]!r}"
            named = [part for part in path if isinstance(part, str)]
            assert named and named[-1] in allowed_keys, path
            places.append(path)
    if text:
        assert places, f"{text[:40]!r} not sent at all"


# ---- the request bodies ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", HOSTILE, ids=range(len(HOSTILE)))
def test_query_text_is_only_a_match_value_in_every_body(text):
    vector = np.ones(DIM, dtype=np.float32) / 4.0
    tokens = ["t00_3f", "t01_a0"]
    text = text if text.strip() else f"{text} x"  # BM25 refuses blank text (a ValueError, not a request)
    filters = Filters.parse([f"board={text}"])
    bodies = [queries.bm25_body(text, 10),
              queries.bm25_body(text, 10, filters=filters, boost=queries.LEGACY_BM25_BOOST),
              *queries.hybrid_requests(text, tokens, vector, filters=filters).values()]
    for body in bodies:
        assert_only_as_a_value(body, text, {"query", "board"})
    query = VectorQuery(tuple(tokens), vector, filters=filters)
    for _line, body in es_serving.search_requests("pins", query, ids=[text]):
        assert_only_as_a_value(body, text, {"board", "values", "id"})


def test_the_stored_template_inserts_only_escaped_values():
    """Mustache escapes what `{{name}}` inserts (JSON escaping for a JSON template) but not `{{{name}}}` or `{{&name}}`:
    the template may only use the escaping forms, and quote the token strings it inserts."""
    source = queries.search_template_script()["script"]["source"]
    assert "{{{" not in source and "{{&" not in source
    tags = re.findall(r"{{([^}]*)}}", source)
    assert set(tags) == {"size", "^size", "/size", "#tokens", ".", "/tokens", "window", "^window", "/window",
                         "#toJson", "/toJson"}
    assert '"{{.}}"' in source and source.count("{{.}}") == 1
    # size and window are inserted unquoted: template_params always sends them as integers.
    params = queries.template_params(["t00_3f"], [0.5] * DIM, k=10, window=20)
    assert isinstance(params["size"], int) and isinstance(params["window"], int)
    assert all(isinstance(x, float) for x in params["vector"])


@pytest.mark.parametrize("clause", [
    {"script": {"script": {"source": "doc['board'].value == 'x'"}}},
    {"bool": {"filter": [{"term": {"board": "x"}}, {"script": {"script": "1 == 1"}}]}},
    {"bool": {"must_not": {"script_score": {"query": {"match_all": {}}, "script": {"source": "1"}}}}},
    {"function_score": {"functions": [{"script_score": {"script": "1"}}]}},
    {"wrapper": {"query": "eyJtYXRjaF9hbGwiOnt9fQ=="}},
], ids=["script", "nested script", "script_score", "function_score", "wrapper"])
def test_a_raw_filter_clause_may_not_carry_a_script(clause):
    """`--filter-json` is DSL by design, but filters are data: a script (or a `wrapper` hiding a query in base64)
    would run code written by whoever wrote the filter on the engine."""
    with pytest.raises(FilterError, match="script|wrapper"):
        Filters.parse([], [json.dumps(clause)])


def test_a_raw_filter_with_script_like_text_as_a_value_is_kept():
    """Only a script clause is refused: the word as a value is data like any other."""
    kept = Filters.parse([], [json.dumps({"term": {"board": "script"}}),
                              json.dumps({"terms": {"annotations": ['{"script": {"source": "1"}}']}})])
    assert len(kept.clauses()) == 2


def test_the_search_cli_refuses_a_script_filter_in_one_line(tmp_path):
    result = run_pintext(["search", "red", "--model", str(hostile_model(tmp_path / "m")), "--engine",
                          "local", "--local-dir", str(tmp_path / "local"), "--filter-json",
                          json.dumps({"script": {"script": "1 == 1"}})])
    assert result.code == 2, result.output
    assert "script" in result.output and "Traceback" not in result.output


# ---- real nodes ------------------------------------------------------------------------------------------------


def marker(row: int) -> str:
    return f"hostile{row}"


def hostile_pins() -> list[dict]:
    pins = [{"id": f"hostile-{row}", "title": f"{text} {marker(row)}", "board": text[:200]}
            for row, text in enumerate(HOSTILE)]
    rng = np.random.default_rng(4)
    decoy_words = [f"decoy{i:02d}" for i in range(40)]
    pins += [{"id": f"decoy-{i:02d}", "title": " ".join(rng.choice(decoy_words, size=3)), "board": "decoys"}
             for i in range(DECOYS)]
    id_words = [f"idword{i}" for i in range(6)]
    pins += [{"id": pin_id, "title": f"{id_words[row % 6]} {id_words[(row + 1) % 6]} idpin{row}", "board": "ids"}
             for row, pin_id in enumerate(HOSTILE_IDS)]
    pins += [{"id": f"markup-{row}", "title": title, "board": title} for row, title in enumerate(MARKUP_TITLES)]
    return pins


def hostile_model(folder: Path) -> Path:
    """A model that knows every word of the hostile pins' titles."""
    return make_model(folder, texts=[pin["title"] for pin in hostile_pins()], dim=DIM)


def run(*args: str) -> str:
    return run_pintext(args).ok()


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return hostile_model(tmp_path_factory.mktemp("query-safety") / "model")


def ingest(node: Any, model: Path, folder: Path) -> list[str]:
    """Ingest the hostile pins and the decoys; returns the CLI options that reach the index."""
    pins = hostile_pins()
    pins_file = write_pins(folder / "pins.jsonl", pins)
    where = ["--local-dir", node.url] if node.engine == "local" else ["--url", node.url]
    cli = ["--engine", node.engine, *where, "--index", f"query-safety-{uuid.uuid4().hex[:8]}"]
    summary = json.loads(run("ingest", str(pins_file), "--model", str(model), "--no-tune", "--json",
                             *cli).strip().splitlines()[-1])
    print(f"ingested {summary['indexed']} of {len(pins)} pins ({len(HOSTILE)} hostile titles)")
    assert summary["indexed"] == len(pins) and summary["rejected"] == 0
    return cli


@dataclass
class Served:
    node: Any
    cli: list[str]  # --engine/--url (--local-dir)/--index options that reach the index

    @property
    def index(self) -> str:
        return self.cli[-1]


def serve_hostile_pins(node: Any, model: Path, folder: Path) -> Iterator[Served]:
    served = Served(node, ingest(node, model, folder))
    yield served
    run("index", "delete", *served.cli)


# engine -> its node fixture (tests/fixtures_engines.py) and marker
ENGINE_NODES = {"opensearch": ("opensearch_node", pytest.mark.opensearch),
                "elasticsearch": ("elasticsearch_node", pytest.mark.elasticsearch)}


@pytest.fixture(scope="module", params=[pytest.param(engine, marks=mark, id=engine)
                                        for engine, (_, mark) in ENGINE_NODES.items()])
def engine_index(request, model, tmp_path_factory) -> Iterator[Served]:
    """The hostile pins and the decoys in an index of each engine with BM25."""
    node = request.getfixturevalue(ENGINE_NODES[request.param][0])
    yield from serve_hostile_pins(node, model, tmp_path_factory.mktemp(request.param))


@pytest.fixture(scope="module")
def opensearch_index(opensearch_node, model, tmp_path_factory) -> Iterator[Served]:
    """The same on OpenSearch alone, for the stored mustache template (Elasticsearch's zip has no lang-mustache)."""
    yield from serve_hostile_pins(opensearch_node, model, tmp_path_factory.mktemp("os-template"))


@pytest.fixture(scope="module")
def local_index(model, tmp_path_factory) -> Iterator[Served]:
    folder = tmp_path_factory.mktemp("local")
    yield from serve_hostile_pins(LocalNode(str(folder / "index")), model, folder)


class LocalNode:
    """The local engine in `ingest`'s node shape (its --url is the index folder)."""

    engine = "local"

    def __init__(self, folder: str) -> None:
        self.url = folder


def search_hits(model: Path, cli: list[str], text: str, *options: str) -> list[tuple[str, float]]:
    # `--` ends the options: the text itself may start with a dash.
    out = run("search", "--model", str(model), "--json", "--k", "5", *options, *cli, "--", text)
    return [(hit["id"], round(hit["score"], 6)) for hit in json.loads(out.strip().splitlines()[-1])["hits"]]


def plain(text: str) -> str:
    """The same query without its punctuation: only its words."""
    return " ".join(words(text))


def check_searches(model: Path, cli: list[str], options: tuple[str, ...]) -> None:
    for row, hostile in enumerate(HOSTILE):
        text = f"{hostile} {marker(row)}"
        hits = search_hits(model, cli, text, *options)
        print(f"{options or 'pintext'} query {row}: {len(hits)} hits, first {hits[0][0] if hits else None}")
        assert hits and hits[0][0] == f"hostile-{row}", hits
        assert hits == search_hits(model, cli, plain(text), *options)
        # The same text as a filter value: a term value, matching the one pin on that board.
        board = hostile_pins()[row]["board"]
        assert [pin_id for pin_id, _ in search_hits(model, cli, text, *options, "--filter", f"board={board}")] \
            == [f"hostile-{row}"]


@pytest.mark.parametrize("options", [(), ("--hybrid",)], ids=["search", "hybrid"])
def test_hostile_titles_are_found_as_text(model, engine_index, options):
    check_searches(model, engine_index.cli, options)


def bm25_ids(node: Any, index: str, text: str) -> list[str]:
    from pintext.serving.engines import EngineOptions, open_engine
    from pintext.serving.searcher import Searcher

    searcher = Searcher.for_index(open_engine(node.engine, EngineOptions(url=node.url)), index)
    return [hit.id for hit in searcher.bm25_search(text, k=len(hostile_pins()))]


def test_bm25_matches_only_pins_sharing_a_word(engine_index):
    node, index = engine_index.node, engine_index.index
    titles = {pin["id"]: set(words(pin["title"])) for pin in hostile_pins()}
    for row, hostile in enumerate(HOSTILE):
        text = f"{hostile} {marker(row)}"
        found = bm25_ids(node, index, text)
        assert found[0] == f"hostile-{row}", found
        assert all(titles[pin_id] & set(words(text)) for pin_id in found), found
        assert not any(pin_id.startswith("decoy") for pin_id in found)


def check_related(model: Path, cli: list[str]) -> None:
    """`pintext related ID` with hostile ids: the id is a document id (never a path or a query), the pin itself is
    left out, and the answer is the search by its title (a pin without description points where its title does)."""
    titles = {pin["id"]: pin["title"] for pin in hostile_pins()}
    for pin_id in HOSTILE_IDS:
        out = run("related", "--model", str(model), "--json", "--k", "5", *cli, "--", pin_id)
        found = [(hit["id"], round(hit["score"], 6)) for hit in json.loads(out.strip().splitlines()[-1])["hits"]]
        expected = [hit for hit in search_hits(model, cli, titles[pin_id], "--k", "6") if hit[0] != pin_id][:5]
        print(f"related {pin_id!r}: {len(found)} hits")
        assert found and [hit for hit, _ in found] == [hit for hit, _ in expected], (pin_id, found, expected)
        # float32 pin vector (0.8 x the title's) against the title's own vector: the same cosine within rounding
        assert [score for _, score in found] == pytest.approx([score for _, score in expected], abs=1e-5)


def test_related_takes_a_hostile_pin_id_as_an_id_on_the_local_engine(model, local_index):
    check_related(model, local_index.cli)


def test_related_takes_a_hostile_pin_id_as_an_id(model, engine_index):
    check_related(model, engine_index.cli)


def template_call(model: Path, cli: list[str], text: str) -> tuple[str, dict]:
    out = run("dsl", "--template", "--k", "5", "--model", str(model), *cli, "--", text)
    line, _, body = out[out.index("GET "):].partition("\n")
    return line, json.loads(body)


@pytest.mark.opensearch
def test_dsl_template_runs_the_hostile_query_as_text(model, opensearch_index):
    from opensearchpy import OpenSearch

    client = OpenSearch(opensearch_index.node.url)
    index = opensearch_index.index
    for row, hostile in enumerate(HOSTILE):
        text = f"{hostile} {marker(row)}"
        line, call = template_call(model, opensearch_index.cli, text)
        assert line == f"GET {index}/_search/template"
        assert_only_as_a_value(call, "", set())
        assert not any(hostile in value for _, value in strings_in(call) if len(hostile) > 2)
        rendered = client.render_search_template(body=call)["template_output"]
        assert_only_as_a_value(rendered, "", set())
        hits = client.search_template(index=index, body=call)["hits"]["hits"]
        found = [(hit["_id"], round(queries_cosine(hit["_score"], client, index), 6)) for hit in hits]
        assert found and found[0][0] == f"hostile-{row}", found
        assert found == search_hits(model, opensearch_index.cli, text)


def queries_cosine(score: float, client: Any, index: str) -> float:
    """The cosine behind a `knn_score` score on `index`, whose field type (`_meta.vector_type`) sets the formula."""
    from pintext.quantize import INT8
    from pintext.serving.meta import vector_type_of
    from pintext.serving.opensearch_client import cosine_from_knn_score

    meta = next(iter(client.indices.get_mapping(index=index).values()))["mappings"].get("_meta")
    return cosine_from_knn_score(score, byte_vectors=vector_type_of(meta) == INT8)


@pytest.mark.opensearch
def test_the_stored_template_escapes_hostile_params(opensearch_index):
    """Called directly with hostile tokens (what another client could send), the stored template renders them as
    term values: one clause each, the text intact, and the search matches nothing instead of everything."""
    from opensearchpy import OpenSearch

    client = OpenSearch(opensearch_index.node.url)
    index = opensearch_index.index
    params = {"tokens": HOSTILE, "vector": [1] * DIM, "size": 5, "window": 10}  # integers: any vector type takes them
    call = {"id": queries.SEARCH_TEMPLATE_ID, "params": params}
    rendered = client.render_search_template(body=call)["template_output"]
    should = rendered["query"]["bool"]["should"]
    assert [clause["constant_score"]["filter"]["term"]["lsh_tokens"] for clause in should[:-1]] == HOSTILE
    assert should[-1] == {"match_none": {}}
    assert_only_as_a_value(rendered, "", set())
    assert client.search_template(index=index, body=call)["hits"]["hits"] == []


# ---- index names -----------------------------------------------------------------------------------------------

UNREACHABLE = "http://127.0.0.1:9"  # nothing listens: a command that asked a node first would fail there instead


def test_eval_retrieval_refuses_a_wildcard_index_before_any_request(tmp_path):
    """With `--cleanup` it deletes every index behind the name: a wildcard must never get that far."""
    corpus = tmp_path / "pins.jsonl"
    corpus.write_text(json.dumps({"id": "p1", "title": "hostile0"}) + "\n", encoding="utf-8")
    judgments = tmp_path / "judgments.csv"
    judgments.write_text("query,doc_id,grade\nhostile0,p1,1\n", encoding="utf-8")
    result = run_pintext(["eval-retrieval", "--corpus", str(corpus), "--judgments", str(judgments),
                          "--out", str(tmp_path / "out"), "--model", str(hostile_model(tmp_path / "m")),
                          "--index", "pins*", "--cleanup", "--url", UNREACHABLE])
    assert result.code == 2, result.output
    assert result.output.strip().splitlines() == ["error: --index 'pins*' is not a valid index name: it must not "
                                                  "contain '*'"]


@pytest.mark.parametrize("option", ["--ubi-queries-index", "--ubi-events-index", "--ubi-pins-index"])
def test_pairs_from_a_ubi_cluster_refuses_a_wildcard_index(tmp_path, option):
    pins = tmp_path / "pins.jsonl"
    pins.write_text(json.dumps({"id": "p1", "title": "hostile0"}) + "\n", encoding="utf-8")
    texts = [] if option == "--ubi-pins-index" else ["--pins", str(pins)]
    result = run_pintext(["pairs", "--ubi", UNREACHABLE, option, "ubi_*", *texts, "--out",
                          str(tmp_path / "p")])
    assert result.code == 2, result.output
    assert result.output.strip().splitlines() == [f"error: {option} 'ubi_*' is not a valid index name: it must not "
                                                  f"contain '*'"]


@pytest.mark.parametrize("clause", [{"bool": {"must": 5}}, {"bool": {"should": [7]}}, {"ids": {"values": "p1"}},
                                    {"bool": {"minimum_should_match": "50%", "should": [{"term": {"board": "x"}}]}}],
                         ids=["must not a list", "should of a number", "ids not a list", "percentage"])
def test_a_malformed_raw_filter_is_one_line_on_the_local_engine(model, local_index, clause):
    result = run_pintext(["search", "--model", str(model), *local_index.cli, "--filter-json",
                          json.dumps(clause), "--", "hostile1"])
    assert result.code == 2, result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
    assert result.output.startswith("error: filter clause "), result.output


@pytest.mark.parametrize("text", ["   ", "\t", "\u3000\n"], ids=["spaces", "tab", "ideographic space"])
def test_dsl_refuses_a_blank_query_in_one_line(model, text):
    """Offline too: a blank text has no word for PinText and none for BM25 (which refuses it)."""
    result = run_pintext(["dsl", "--model", str(model), "--engine", "opensearch", "--url", UNREACHABLE,
                          "--", text])
    assert result.code == 2, result.output
    assert result.output.strip().splitlines() == [f"error: the query text {text!r} is blank: give at least one word"]


@pytest.mark.parametrize("options", [(), ("--hybrid",)], ids=["search", "hybrid"])
def test_search_refuses_a_blank_query_in_one_line(model, engine_index, options):
    result = run_pintext(["search", "--model", str(model), *options, *engine_index.cli, "--", " \t "])
    assert result.code == 2, result.output
    assert result.output.strip().splitlines() == ["error: the query text ' \\t ' is blank: give at least one word"]


@pytest.mark.parametrize("row", range(len(MARKUP_TITLES)))
def test_the_hits_table_prints_titles_and_queries_literally(model, local_index, row):
    """The table shows the title, board and query as text: markup is not parsed, controls are escaped (the
    terminal never receives an escape sequence from the index)."""
    title = MARKUP_TITLES[row]
    result = run_pintext(["search", "--model", str(model), "--explain", *local_index.cli, "--", title],
                         env={"COLUMNS": "400"})  # wide enough that no cell wraps
    result.ok()
    assert "Traceback" not in result.output
    assert not any(char in result.output for char in "\x1b\x07\u202e")
    literal = title.replace("\x1b", "\\x1b").replace("\x07", "\\x07").replace("\u202e", "\\u202e")
    assert result.output.count(literal) >= 3, result.output  # the query (table title), the title, the board


@pytest.mark.parametrize("options", [(), ("--hybrid",)], ids=["search", "hybrid"])
@pytest.mark.parametrize(("clause", "named"), [({"bool": {"must": 5}}, "must"), ({"match_all": []}, "match_all"),
                                               ({"no_such_query": {}}, "no_such_query")],
                         ids=["must a number", "match_all a list", "unknown clause"])
def test_a_raw_filter_the_engine_refuses_is_one_line(model, engine_index, options, clause, named):
    """The engine's 400 to the user's own DSL: one line naming its root cause, exit 2 (was a traceback)."""
    result = run_pintext(["search", "--model", str(model), *options, *engine_index.cli,
                          "--filter-json", json.dumps(clause), "--", "hostile1"])
    assert result.code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --filter-json: the engine refused the query (400): "), \
        result.output
    assert named in lines[0].partition("(400): ")[2], lines[0]  # the engine's own reason, naming the clause
