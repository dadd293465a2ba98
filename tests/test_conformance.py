"""The serving conformance suite: every engine, the same pins and queries, the same answers.

Each engine (the local oracle, OpenSearch 3.5.0, OpenSearch 2.19.1, Elasticsearch 8.15.0) gets the same corpus
through `pintext ingest --engine NAME`, and must return what an independent numpy oracle computes from the pins:
the same ids in the same order and the same scores (within float tolerance) for PinText search, filtered search,
exclusions, related pins and the first stage; BM25 must agree between the engines that have it; stored vectors,
pins without a vector, `_meta`, aliases and a promote under continuous search behave alike. A new engine passes
this file by adding one entry to ENGINES and a node fixture.

The rescore window is set to the corpus size, so every first-stage candidate is rescored: the engines break
first-stage ties at a window's edge by their internal doc order, and a window holding every candidate makes the
answer depend on the pins alone.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pintext.encoder import Encoder
from pintext.pin_vectors import pin_vectors
from pintext.quantize import DEFAULT_VECTOR_TYPE, served_vectors
from pintext.serving.base import PinNotFoundError, UnsupportedError
from pintext.serving.engines import EngineOptions, open_engine
from pintext.serving.filters import Filters
from pintext.serving.local import cosine
from pintext.serving.meta import check_meta, index_meta
from pintext.serving.rollout import version_name
from pintext.serving.searcher import Searcher
from tests.factories import make_model, make_pins, model_snapshot, random_queries, write_pins_file
from tests.fixtures_cli import run_pintext

PIN_COUNT = 420
WINDOW = 1_000  # above the corpus size: every candidate is rescored
SCORE_TOLERANCE = 1e-5
OOV_PINS = [{"id": f"oov-{i}", "title": "zzz qqq", "description": "unknown words only", "board": "b3"}
            for i in range(3)]
RARE_BOARD = "rare"  # the board a 1% filter keeps
COLOURS = ("red", "blue", "green", "black")

# engine id -> (engine name for --engine, node fixture or None for the local engine)
ENGINES = {
    "local": ("local", None),
    "opensearch": ("opensearch", "opensearch_node"),
    "opensearch-2.19.1": ("opensearch", "opensearch_219_node"),
    "elasticsearch": ("elasticsearch", "elasticsearch_node"),
}
WITH_BM25 = [engine_id for engine_id in ENGINES if engine_id != "local"]

FILTER_CASES = {
    "one board": (["board=b3"], []),
    "1% of the pins": ([f"board={RARE_BOARD}"], []),
    "two annotations OR-ed, AND a board": (["annotations=red", "annotations=blue", "board=b1"], []),
    "raw DSL must_not": ([], [json.dumps({"bool": {"must_not": [{"term": {"board": "b0"}}]}})]),
}


# ---- the corpus and the oracle ---------------------------------------------------------------------------------


def conformance_pins() -> list[dict]:
    """make_pins' pins with annotations, 1% of them on a rare board, then pins with no known word."""
    pins = make_pins(PIN_COUNT, seed=21)
    rng = np.random.default_rng(3)
    for row, pin in enumerate(pins):
        pin["annotations"] = sorted({str(colour) for colour in rng.choice(COLOURS, size=int(rng.integers(0, 3)))})
        if row % 100 == 7:
            pin["board"] = RARE_BOARD
    return pins + [dict(pin) for pin in OOV_PINS]


@dataclass
class Corpus:
    model: Path
    other_model: Path
    pins_file: Path
    pins: list[dict]
    encoder: Encoder
    vectors: np.ndarray
    queries: list[str]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Corpus:
    folder = tmp_path_factory.mktemp("conformance")
    pins = conformance_pins()
    pins_file = folder / "pins.jsonl"
    write_pins_file(pins_file, pins, with_bad_lines=False)
    model = make_model(folder / "model")
    encoder = Encoder.load(model)
    return Corpus(model, make_model(folder / "other-model", seed=9), pins_file, pins, encoder,
                  pin_vectors(encoder, pins), random_queries(12, seed=8))


def held(corpus: Corpus, searcher: Searcher) -> np.ndarray:
    """Every pin's vector as the searcher's index holds it, as floats (int8 values for one-byte vectors): what its
    tokens are hashed from, what it is scored by and what `related` reads back."""
    return served_vectors(corpus.vectors, searcher.vector_type).astype(np.float32)


def oracle(corpus: Corpus, searcher: Searcher, query_tokens: list[str], vector: np.ndarray, k: int,
           filters: Filters = Filters(), exclude: tuple[str, ...] = (), window: int | None = None,
           exact: bool = False) -> list[tuple[str, float]]:
    """Independent of every engine: pins passing the filters and sharing a token with the query (every pin that
    passes, when `exact`), the `window` best by tokens shared (ties by id; all when None), then by exact cosine,
    ties by id. Pins and query are taken as the index holds vectors (both quantized alike for an index of
    one-byte vectors: `searcher.vector_type`)."""
    family, vectors = searcher.family, held(corpus, searcher)
    known = np.linalg.norm(vectors, axis=1) > 0
    wanted = set(query_tokens)
    shared = {row: len(wanted & set(family.tokens(vectors[row:row + 1])[0])) for row in np.flatnonzero(known)}
    rows = [row for row in shared if (exact or shared[row])
            and corpus.pins[row]["id"] not in exclude and filters.matches(corpus.pins[row])]
    if window is not None:
        rows = sorted(rows, key=lambda row: (-shared[row], corpus.pins[row]["id"]))[:window]
    if not rows:
        return []
    scores = cosine(vectors[rows], served_vectors(vector, searcher.vector_type).astype(np.float32))
    ranked = sorted(zip((corpus.pins[row]["id"] for row in rows), scores), key=lambda item: (-item[1], item[0]))
    return [(pin_id, float(score)) for pin_id, score in ranked[:k]]


def assert_same_ranking(hits: list[Any], expected: list[tuple[str, float]]) -> None:
    """Same ids in the same order, scores within SCORE_TOLERANCE; two hits whose expected scores are within the
    tolerance of each other may come in either order (a float-rounding tie)."""
    assert len(hits) == len(expected), ([hit.id for hit in hits], [pin_id for pin_id, _ in expected])
    expected_score = dict(expected)
    for hit, (pin_id, score) in zip(hits, expected):
        assert hit.id in expected_score, (hit.id, expected)
        assert abs(expected_score[hit.id] - score) <= SCORE_TOLERANCE, (hit.id, pin_id)
        assert hit.score == pytest.approx(expected_score[hit.id], abs=SCORE_TOLERANCE)
        assert hit.cosine == pytest.approx(expected_score[hit.id], abs=SCORE_TOLERANCE)


# ---- one engine, served ----------------------------------------------------------------------------------------


@dataclass
class Served:
    engine_id: str
    engine: Any
    index: str
    cli: list[str]  # --engine/--url/--local-dir/--index options for the CLI
    searcher: Searcher
    cleanup: list[str] = field(default_factory=list)


def run(*args: str) -> str:
    return run_pintext(args).ok()


def engine_params() -> list[Any]:
    """One param per engine, marked with its server's marker (`-m opensearch` runs the OpenSearch ones)."""
    marks = {"opensearch": pytest.mark.opensearch, "elasticsearch": pytest.mark.elasticsearch}
    return [pytest.param(engine_id, id=engine_id, marks=[marks[name]] if name in marks else [])
            for engine_id, (name, _) in ENGINES.items()]


def serve_corpus(request, corpus, tmp_path_factory, prefix: str, *ingest_args: str):
    """`pintext ingest` of the corpus into a fresh index of the param's engine; yields it served, then deletes it."""
    name, node_fixture = ENGINES[request.param]
    index = f"{prefix}-{uuid.uuid4().hex[:8]}"
    if node_fixture is None:
        local_dir = tmp_path_factory.mktemp(f"local-{prefix}")
        options = EngineOptions(local_dir=local_dir)
        cli_args = ["--engine", "local", "--local-dir", str(local_dir), "--index", index]
    else:
        node = request.getfixturevalue(node_fixture)
        options = EngineOptions(url=node.url)
        cli_args = ["--engine", name, "--url", node.url, "--index", index]
    summary = json.loads(run("ingest", str(corpus.pins_file), "--model", str(corpus.model), "--json",
                             *ingest_args, *cli_args).strip().splitlines()[-1])
    assert summary["indexed"] == len(corpus.pins) and summary["indexed_without_vector"] == len(OOV_PINS)
    engine = open_engine(name, options)
    yield Served(request.param, engine, index, cli_args, Searcher.for_index(engine, index))
    run("index", "delete", *cli_args)


@pytest.fixture(scope="module", params=engine_params())
def served(request, corpus, tmp_path_factory) -> Served:
    """Random hyperplanes (a first stage ranked by tables matched, a rescore window), which these tests replay;
    `served_kmeans` is the other family (what `auto` picks on larger corpora)."""
    yield from serve_corpus(request, corpus, tmp_path_factory, "conformance", "--tokens", "lsh")


# ---- PinText search --------------------------------------------------------------------------------------------


def test_search_is_the_exact_cosine_order_of_the_candidates(served, corpus):
    for text in corpus.queries:
        vector = corpus.encoder.encode([text])[0]
        hits = served.searcher.search(vector, k=10, window=WINDOW)
        query = served.searcher.query(vector, 10, WINDOW)
        assert_same_ranking(hits, oracle(corpus, served.searcher, list(query.tokens), vector, 10))
        assert [hit.pintext_rank for hit in hits] == list(range(1, len(hits) + 1))


@pytest.mark.parametrize("case", list(FILTER_CASES))
def test_a_selective_filter_is_the_exact_answer_over_the_pins_that_pass(served, corpus, case):
    """A filter keeping no more pins than the window: every passing pin is scored exactly (no tokens needed), so
    the hits are the exact top k of the filtered pins on every engine."""
    filters = Filters.parse(*FILTER_CASES[case])
    by_id = {pin["id"]: pin for pin in corpus.pins}
    found_any = False
    for text in corpus.queries:
        vector = corpus.encoder.encode([text])[0]
        query = served.searcher.query(vector, 10, WINDOW, filters=filters)
        assert query.exact
        hits = served.searcher.search(vector, k=10, window=WINDOW, filters=filters)
        assert all(filters.matches(by_id[hit.id]) for hit in hits)
        assert_same_ranking(hits, oracle(corpus, served.searcher, list(query.tokens), vector, 10, filters,
                                         exact=True))
        found_any = found_any or bool(hits)
    assert found_any, f"no query found a pin under {case}: the case tests nothing"


@pytest.mark.parametrize("case", ["one board", "raw DSL must_not"])
def test_a_broad_filter_goes_through_the_tokens_and_fills_the_window_with_passing_pins(served, corpus, case):
    """A filter keeping more pins than the window: the first stage is filtered, so the window's pins all pass,
    and the answer is the window semantics over the passing pins."""
    filters = Filters.parse(*FILTER_CASES[case])
    window = 12
    assert served.engine.count_matching(served.index, filters) > window
    by_id = {pin["id"]: pin for pin in corpus.pins}
    for text in corpus.queries:
        vector = corpus.encoder.encode([text])[0]
        query = served.searcher.query(vector, 10, window, filters=filters)
        assert not query.exact
        hits = served.searcher.search(vector, k=10, window=window, filters=filters)
        assert all(filters.matches(by_id[hit.id]) for hit in hits)
        assert_same_ranking(hits, oracle(corpus, served.searcher, list(query.tokens), vector, 10, filters,
                                         window=window))


def test_related_excludes_the_pin_and_matches_the_oracle(served, corpus):
    for row in (0, 57, 311):
        pin_id = corpus.pins[row]["id"]
        hits = served.searcher.related(pin_id, k=10, window=WINDOW)
        assert pin_id not in {hit.id for hit in hits}
        vector = held(corpus, served.searcher)[row]
        query = served.searcher.query(vector, 10, WINDOW)
        assert_same_ranking(hits, oracle(corpus, served.searcher, list(query.tokens), vector, 10,
                                         exclude=(pin_id,)))


def test_score_pins_is_the_exact_cosine_of_just_the_pins_asked_for(served, corpus):
    """The union hybrid's third request: chosen pins (any rank, the filters still apply), scored exactly."""
    vector = corpus.encoder.encode([corpus.queries[0]])[0]
    asked = [corpus.pins[row]["id"] for row in (3, 150, 299, 401)] + [OOV_PINS[0]["id"], "no-such-pin"]
    expected = oracle(corpus, served.searcher, [], vector, len(asked), exact=True,
                      filters=Filters(terms=(("id", tuple(asked)),)))
    assert len(expected) == 4  # the pin without a vector and the unknown id are not scored
    assert_same_ranking(served.searcher.score_pins(vector, asked), expected)
    filtered = Filters(terms=(("board", (RARE_BOARD,)),))
    rare = [pin["id"] for pin in corpus.pins if pin.get("board") == RARE_BOARD][:2]
    assert_same_ranking(served.searcher.score_pins(vector, [*asked, *rare], filtered),
                        oracle(corpus, served.searcher, [], vector, len(rare), exact=True,
                               filters=Filters(terms=(("id", tuple([*asked, *rare])), ("board", (RARE_BOARD,))))))


def test_first_stage_scores_count_the_shared_tokens(served, corpus):
    family, vectors = served.searcher.family, held(corpus, served.searcher)
    vector = corpus.encoder.encode([corpus.queries[0]])[0]
    tokens = set(family.query_tokens(served.searcher.served(vector).astype(np.float32))[0])
    hits = served.searcher.first_stage(vector, size=len(corpus.pins))
    expected = {}
    for row, pin in enumerate(corpus.pins):
        if np.any(vectors[row]):
            shared = len(tokens & set(family.tokens(vectors[row:row + 1])[0]))
            if shared:
                expected[pin["id"]] = float(shared)
    assert {hit.id: hit.score for hit in hits} == expected
    assert [hit.id for hit in hits] == sorted(expected, key=lambda pin_id: (-expected[pin_id], pin_id))


def test_stored_pins_round_trip_and_pins_without_vector_are_never_candidates(served, corpus):
    assert served.engine.count(served.index) == len(corpus.pins)
    doc, vector = served.engine.get(served.index, corpus.pins[5]["id"])
    assert doc["title"] == corpus.pins[5]["title"] and doc["annotations"] == corpus.pins[5]["annotations"]
    assert "lsh_tokens" not in doc and "vector" not in doc
    np.testing.assert_allclose(vector, held(corpus, served.searcher)[5], rtol=1e-6, atol=1e-6)
    oov_doc, oov_vector = served.engine.get(served.index, OOV_PINS[0]["id"])
    assert oov_vector is None and oov_doc["title"] == OOV_PINS[0]["title"]
    with pytest.raises(PinNotFoundError):
        served.engine.get(served.index, "no-such-pin")
    family = served.searcher.family
    everything = served.searcher.first_stage(corpus.vectors[0], size=len(corpus.pins), probes=family.bits)
    assert not {hit.id for hit in everything} & {pin["id"] for pin in OOV_PINS}


def test_meta_names_the_model_and_passes_the_model_check(served, corpus):
    meta = served.engine.meta(served.index)
    assert meta["model_fingerprint"] == corpus.encoder.fingerprint and meta["dim"] == corpus.encoder.dim
    assert meta["vector_type"] == served.searcher.vector_type == DEFAULT_VECTOR_TYPE
    check_meta(served.index, meta, index_meta(corpus.encoder.fingerprint, corpus.encoder.dim,
                                              served.searcher.family))
    assert served.engine.alias_target(served.index) == version_name(served.index, corpus.encoder.fingerprint)


# ---- learned centroid tokens -----------------------------------------------------------------------------------


@pytest.fixture(scope="module", params=engine_params())
def served_kmeans(request, corpus, tmp_path_factory) -> Served:
    """The same corpus through `pintext ingest --tokens kmeans`: the second token family, on every engine."""
    yield from serve_corpus(request, corpus, tmp_path_factory, "conformance-km", "--tokens", "kmeans")


def test_kmeans_index_scores_every_pin_holding_a_probed_centroid_exactly(served_kmeans, corpus):
    """One codebook: the hits are the exact cosine top k of the pins that hold one of the query's probed
    centroids — on every engine the same ids, order and scores as the oracle, with no window."""
    family = served_kmeans.searcher.family
    assert family.to_dict()["kind"] == "kmeans" and family.scoring == "exact_matches"
    for text in corpus.queries:
        vector = corpus.encoder.encode([text])[0]
        query = served_kmeans.searcher.query(vector, 10)
        assert query.exact and len(query.tokens) == 1 + served_kmeans.searcher.serving.probes
        hits = served_kmeans.searcher.search(vector, k=10)
        assert_same_ranking(hits, oracle(corpus, served_kmeans.searcher, list(query.tokens), vector, 10))


def test_kmeans_filters_and_exclusions_apply_with_the_centroid_tokens(served_kmeans, corpus):
    filters = Filters.parse(*FILTER_CASES["one board"])
    by_id = {pin["id"]: pin for pin in corpus.pins}
    found = 0
    for row in (0, 57, 311):
        pin_id, vector = corpus.pins[row]["id"], held(corpus, served_kmeans.searcher)[row]
        tokens = list(served_kmeans.searcher.query(vector, 10).tokens)
        hits = served_kmeans.searcher.related(pin_id, k=10)
        assert_same_ranking(hits, oracle(corpus, served_kmeans.searcher, tokens, vector, 10, exclude=(pin_id,)))
        filtered = served_kmeans.searcher.search(vector, k=10, filters=filters)
        assert all(filters.matches(by_id[hit.id]) for hit in filtered)
        assert_same_ranking(filtered, oracle(corpus, served_kmeans.searcher, tokens, vector, 10, filters))
        found += len(filtered)
    assert found, "the board filter kept no pin near these queries: the case tests nothing"


def test_kmeans_codebook_round_trips_through_the_index_meta(served_kmeans, corpus):
    """The index's `_meta` rebuilds the very family ingest hashed with: the stored pins' tokens are its tokens."""
    meta = served_kmeans.engine.meta(served_kmeans.index)
    family = served_kmeans.searcher.family
    assert meta["tokens"] == family.to_dict() and meta["tuning"]["family"] == "kmeans"
    check_meta(served_kmeans.index, meta, index_meta(corpus.encoder.fingerprint, corpus.encoder.dim, family))
    vector = corpus.vectors[5]
    hits = served_kmeans.searcher.first_stage(vector, size=len(corpus.pins), probes=0)
    own = set(family.tokens(held(corpus, served_kmeans.searcher)[5:6])[0])
    assert corpus.pins[5]["id"] in {hit.id for hit in hits}
    assert set(next(hit for hit in hits if hit.id == corpus.pins[5]["id"]).matched_tokens) <= own


# ---- BM25 ------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bm25_reference(corpus, opensearch_node) -> dict[str, list[tuple[str, float]]]:
    """BM25 on the default OpenSearch node: what every engine with BM25 must return."""
    engine = open_engine("opensearch", EngineOptions(url=opensearch_node.url))
    index = f"conformance-bm25-{uuid.uuid4().hex[:8]}"
    cli_args = ["--engine", "opensearch", "--url", opensearch_node.url, "--index", index]
    run("ingest", str(corpus.pins_file), "--model", str(corpus.model), "--json", *cli_args)
    reference = {text: [(hit.id, hit.score) for hit in Searcher.for_index(engine, index).bm25_search(text, k=10)]
                 for text in corpus.queries}
    run("index", "delete", *cli_args)
    return reference


def test_bm25_agrees_between_engines_and_the_local_engine_says_it_has_none(served, corpus, request):
    if served.engine_id == "local":
        with pytest.raises(UnsupportedError, match="no BM25"):
            served.searcher.bm25_search(corpus.queries[0])
        return
    reference = request.getfixturevalue("bm25_reference")
    for text in corpus.queries:
        hits = served.searcher.bm25_search(text, k=10)
        assert [hit.id for hit in hits] == [pin_id for pin_id, _ in reference[text]], text
        assert [hit.score for hit in hits] == pytest.approx([score for _, score in reference[text]], rel=1e-5)
        assert [hit.bm25_rank for hit in hits] == list(range(1, len(hits) + 1))


# ---- the CLI on every engine -----------------------------------------------------------------------------------


def test_cli_search_with_filters_matches_the_searcher(served, corpus):
    text = corpus.queries[1]
    before = model_snapshot(corpus.model)
    printed = json.loads(run("search", text, "--model", str(corpus.model), "--json", "--k", "5", "--window",
                             str(WINDOW), "--filter", "board=b3", *served.cli))
    expected = served.searcher.search(corpus.encoder.encode([text])[0], k=5, window=WINDOW,
                                      filters=Filters.parse(["board=b3"]))
    assert [hit["id"] for hit in printed["hits"]] == [hit.id for hit in expected]
    assert all(hit["source"]["board"] == "b3" for hit in printed["hits"])
    # search, related and dsl only read: the model folder is byte for byte what it was.
    run("related", corpus.pins[0]["id"], "--model", str(corpus.model), "--json", *served.cli)
    if served.engine_id != "local":  # the local engine sends no DSL to print
        dsl = run("dsl", text, "--model", str(corpus.model), "--filter", "board=b3", *served.cli)
        assert '"board": [' in dsl and "b3" in dsl
    assert model_snapshot(corpus.model) == before


def test_engine_auto_names_the_engine_that_answers(served):
    from pintext.serving.engines import choose_engine

    if served.engine_id == "local":
        assert choose_engine("local", EngineOptions()) == "local"
        return
    url = served.cli[served.cli.index("--url") + 1]
    assert choose_engine("auto", EngineOptions(url=url)) == ENGINES[served.engine_id][0]


# ---- rollout: promote under continuous search ------------------------------------------------------------------


def test_promote_swaps_the_alias_with_no_error_and_no_empty_page(served, corpus):
    """A second model's index is filled behind the alias; while a reader searches in a bounded loop, promote
    swaps the alias. Every page the reader gets is non-empty, no request fails, and it ends on the new model."""
    cli_args = [*served.cli[:-1], f"{served.index}-roll"]  # a name of its own: the other tests keep theirs
    name = cli_args[-1]
    for model in (corpus.model, corpus.other_model):
        run("ingest", str(corpus.pins_file), "--model", str(model), "--no-tune", "--json", *cli_args)
    first, second = corpus.encoder.fingerprint, Encoder.load(corpus.other_model).fingerprint
    assert served.engine.alias_target(name) == version_name(name, first)
    vector = corpus.vectors[3]
    seen: list[str] = []
    errors: list[BaseException] = []
    empty: list[int] = []
    promoted = threading.Event()

    def reader() -> None:
        after_promote = 0
        for attempt in range(5_000):  # bounded: the promote takes a handful of requests
            try:
                searcher = Searcher.for_index(served.engine, name)  # a new command: follows the alias
                hits = searcher.search(vector, k=5, window=WINDOW)
            except BaseException as error:  # noqa: BLE001 - any failure is what this test looks for
                errors.append(error)
                return
            seen.append(searcher.engine.meta(searcher.index)["model_fingerprint"])
            if not hits:
                empty.append(attempt)
            if promoted.is_set():
                after_promote += 1
                if after_promote >= 20:
                    return

    thread = threading.Thread(target=reader)
    thread.start()
    while len(seen) < 20 and thread.is_alive():
        time.sleep(0.01)  # let the reader search the old version first (progress is checked, not assumed)
    printed = run("index", "promote", "--model", str(corpus.other_model), *cli_args)
    promoted.set()
    thread.join(timeout=120)
    assert not thread.is_alive() and not errors and not empty
    assert f"promoted: {name} -> {version_name(name, second)}" in printed
    assert seen[0] == first and seen[-1] == second and set(seen) == {first, second}
    assert served.engine.alias_target(name) == version_name(name, second)
    info = json.loads(run("index", "info", *cli_args))
    assert info["alias"] == name and info["serving"] == version_name(name, second)
    assert {row["index"]: row["serving"] for row in info["versions"]} == {
        version_name(name, first): False, version_name(name, second): True}
    # Searching with the old model is now refused, with the index it would need named.
    refused = run_pintext(["search", "w001", "--model", str(corpus.model), *cli_args])
    assert refused.code == 2 and "model fingerprint" in refused.output
    run("index", "promote", "--model", str(corpus.other_model), "--delete-old", *cli_args)
    assert served.engine.indices(f"{name}-") == [version_name(name, second)]
    run("index", "delete", *cli_args)
    assert served.engine.alias_target(name) is None


def test_dsl_without_a_node_prints_the_filtered_token_request(corpus):
    """Offline there is no count to pick the exact path with: dsl says so and prints the filtered first stage."""
    result = run_pintext(["dsl", corpus.queries[0], "--model", str(corpus.model), "--engine",
                          "opensearch", "--url", "http://127.0.0.1:9", "--filter", "board=b3"])
    result.ok()
    body = json.loads(result.stdout.split("\n", 1)[1])
    assert body["query"]["bool"]["filter"] == [{"terms": {"board": ["b3"]}}]
    assert body["query"]["bool"]["should"] and "rescore" in body
    assert "node unreachable" in result.stderr


# ---- what the benchmarks write and administer through ----------------------------------------------------------

BARE_DIM = 4


@pytest.fixture(scope="module", params=engine_params())
def bare(request, tmp_path_factory) -> tuple[str, Any]:
    """(engine id, engine) of the param's engine with no index: each test makes its own with `fresh`."""
    name, node_fixture = ENGINES[request.param]
    if node_fixture is None:
        options = EngineOptions(local_dir=tmp_path_factory.mktemp("local-bare"))
    else:
        options = EngineOptions(url=request.getfixturevalue(node_fixture).url)
    return request.param, open_engine(name, options)


@pytest.fixture
def fresh(bare) -> Any:
    """(engine id, engine, index): an empty pins index of BARE_DIM-d vectors, deleted afterwards."""
    engine_id, engine = bare
    index = f"bare-{uuid.uuid4().hex[:8]}"
    engine.create(index, BARE_DIM, {"dim": BARE_DIM})
    yield engine_id, engine, index
    engine.delete(index)


def bare_pins(count: int, start: int = 0) -> tuple[list[dict], list[np.ndarray], list[list[str]]]:
    """`count` pins (ids `b0000`...) with unit vectors and two tokens each."""
    rng = np.random.default_rng(start)
    vectors = rng.normal(size=(count, BARE_DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    pins = [{"id": f"b{row:04d}", "title": f"pin {row}", "board": f"board-{row % 3}"}
            for row in range(start, start + count)]
    return pins, list(vectors), [[f"t{row % 5}", "all"] for row in range(start, start + count)]


def test_write_docs_writes_plain_documents_in_batches_and_replaces_them_by_id(fresh):
    _, engine, index = fresh
    docs = [(f"d{row}", {"id": f"d{row}", "title": f"plain {row}", "board": "b1"}) for row in range(7)]
    written = engine.write_docs(index, iter(docs), batch=3)
    assert (written.created, written.updated, written.failed) == (7, 0, {})
    engine.refresh(index)
    assert engine.count(index) == 7
    assert engine.get(index, "d4") == ({"id": "d4", "title": "plain 4", "board": "b1"}, None)
    again = engine.write_docs(index, [("d4", {"id": "d4", "title": "replaced", "board": "b2"})])
    assert (again.created, again.updated) == (0, 1)
    engine.refresh(index)
    assert engine.count(index) == 7 and engine.get(index, "d4")[0]["title"] == "replaced"


def test_write_docs_partial_merges_fields_keeps_the_vector_and_names_missing_ids(fresh):
    _, engine, index = fresh
    pins, vectors, tokens = bare_pins(3)
    engine.write(index, pins, vectors, tokens)
    engine.refresh(index)
    result = engine.write_docs(index, [("b0001", {"board": "moved"}), ("nowhere", {"board": "x"})], partial=True)
    assert result.updated == 1 and result.created == 0 and list(result.failed) == ["nowhere"]
    engine.refresh(index)
    fields, vector = engine.get(index, "b0001")
    assert fields["board"] == "moved" and fields["title"] == "pin 1"
    assert vector is not None and np.allclose(vector, vectors[1], atol=1e-6)
    assert [hit.id for hit in engine.first_stage(index, ["t1"], 10)] == ["b0001"]  # its tokens kept too


def test_stats_count_the_documents_and_the_store_grows_with_them(fresh):
    engine_id, engine, index = fresh
    larger = f"{index}-larger"  # a second index: Lucene engines cache an index's store size for 10 s
    engine.create(larger, BARE_DIM, {"dim": BARE_DIM})
    try:
        for name, count in ((index, 5), (larger, 405)):
            pins, vectors, tokens = bare_pins(count)
            engine.write(name, pins, vectors, tokens)
            engine.refresh(name)
        small, large = engine.stats(index, flush=True), engine.stats(larger, flush=True)
    finally:
        engine.delete(larger)
    assert (small.docs, large.docs) == (5, 405)
    assert 0 < small.size_bytes < large.size_bytes
    assert (large.segments is None) == (engine_id == "local")


def test_pause_refresh_hides_writes_until_resume_gives_the_default_back(fresh):
    engine_id, engine, index = fresh
    engine.pause_refresh(index)
    engine.write_docs(index, [(f"d{row}", {"id": f"d{row}", "title": "x"}) for row in range(5)])
    # The local engine has no refresh: a committed batch is visible at once.
    assert engine.count(index) == (5 if engine_id == "local" else 0)
    if engine_id != "local":
        assert refresh_setting(engine, index) == "-1"
    engine.resume_refresh(index)
    assert engine.count(index) == 5
    if engine_id != "local":
        assert refresh_setting(engine, index) is None  # no setting of its own: the engine's default again


def refresh_setting(engine: Any, index: str) -> str | None:
    """The index's own `refresh_interval` setting, read from the node (None: not set, the default applies)."""
    settings = engine.client.indices.get_settings(index=index)[index]["settings"]["index"]
    return settings.get("refresh_interval")


def test_force_merge_leaves_one_segment_and_every_document(fresh):
    engine_id, engine, index = fresh
    for start in (0, 50, 100):  # three refreshed batches: three segments on a Lucene engine
        pins, vectors, tokens = bare_pins(50, start=start)
        engine.write(index, pins, vectors, tokens)
        engine.refresh(index)
    before = engine.stats(index, flush=True)
    engine.force_merge(index)
    after = engine.stats(index)
    assert after.docs == before.docs == 150 and engine.count(index) == 150
    if engine_id == "local":
        assert after.segments is None and 0 < after.size_bytes <= before.size_bytes
    else:
        assert before.segments is not None and before.segments > 1 and after.segments == 1


def test_create_plain_makes_an_index_of_the_mapping_given(bare):
    engine_id, engine = bare
    index = f"bare-plain-{uuid.uuid4().hex[:8]}"
    mappings = {"dynamic": False, "properties": {"board": {"type": "keyword"}}}
    if engine_id == "local":
        with pytest.raises(UnsupportedError, match="no mappings"):
            engine.create_plain(index, mappings, {"index": {"number_of_shards": 1}})
        assert not engine.exists(index)
        return
    engine.create_plain(index, mappings, {"index": {"number_of_shards": 1, "number_of_replicas": 0}})
    try:
        engine.write_docs(index, [("a", {"board": "red", "note": "unmapped"}), ("b", {"board": "blue"})])
        engine.refresh(index)
        assert engine.stats(index).docs == 2 and engine.layout(index).shards == 1
        found = engine.search_body(index, {"query": {"term": {"board": "red"}}})["hits"]["hits"]
        assert [hit["_id"] for hit in found] == ["a"]
        unmapped = engine.search_body(index, {"query": {"term": {"note": "unmapped"}}})["hits"]["hits"]
        assert unmapped == []  # dynamic: false, as asked
    finally:
        engine.delete(index)


def test_add_field_maps_a_new_field_the_documents_can_then_be_searched_by(fresh):
    engine_id, engine, index = fresh
    pins, vectors, tokens = bare_pins(4)
    engine.write(index, pins, vectors, tokens)
    engine.add_field(index, "extra_tokens", {"type": "keyword"})
    engine.write_docs(index, [("b0002", {"extra_tokens": ["x1", "x2"]})], partial=True)
    engine.refresh(index)
    assert engine.get(index, "b0002")[0]["extra_tokens"] == ["x1", "x2"]
    if engine_id != "local":  # pins mappings are `dynamic: false`: only a mapped field is searchable
        found = engine.search_body(index, {"query": {"term": {"extra_tokens": "x2"}}})["hits"]["hits"]
        assert [hit["_id"] for hit in found] == ["b0002"]


def test_record_took_times_every_search_request_and_search_body_answers_raw(fresh):
    engine_id, engine, index = fresh
    pins, vectors, tokens = bare_pins(20)
    engine.write(index, pins, vectors, tokens)
    engine.refresh(index)
    assert engine.took is None  # nothing recorded unless asked
    took = engine.record_took()
    engine.first_stage(index, ["t0"], 5)
    assert len(took) == 1 and took[0] >= 0
    if engine_id == "local":
        with pytest.raises(UnsupportedError, match="no query DSL"):
            engine.search_body(index, {"query": {"match_all": {}}})
        return
    response = engine.search_body(index, {"query": {"match_all": {}}, "size": 3})
    assert response["hits"]["total"]["value"] == 20 and len(response["hits"]["hits"]) == 3
    assert len(took) == 2 and took[1] == float(response["took"])


def test_node_info_names_the_engine_version_and_heap(bare):
    engine_id, engine = bare
    info = engine.node_info()
    if engine_id == "local":
        assert info.version is not None and info.version.startswith("SQLite ")
        assert (info.lucene, info.heap_bytes) == (None, None)
        return
    assert info.version is not None and info.version.count(".") == 2
    assert info.heap_bytes is not None and info.heap_bytes > 0
    assert (info.lucene is not None) == engine_id.startswith("opensearch")


def test_bulk_request_is_the_body_write_sends_and_sends_nothing(fresh):
    engine_id, engine, index = fresh
    pins, vectors, tokens = bare_pins(2)
    if engine_id == "local":
        with pytest.raises(UnsupportedError, match="sends no requests"):
            engine.bulk_request(index, pins, vectors, tokens)
        return
    lines = [json.loads(line) for line in engine.bulk_request(index, pins, vectors, tokens)]
    assert lines[0::2] == [{"index": {"_index": index, "_id": pin["id"]}} for pin in pins]
    for document, pin, vector, pin_tokens in zip(lines[1::2], pins, vectors, tokens):
        assert {key: document[key] for key in pin} == pin and document["lsh_tokens"] == pin_tokens
        assert np.allclose(document["vector"], vector, atol=1e-7)
    engine.refresh(index)
    assert engine.count(index) == 0
