"""Query DSL builders for the pins index: an LSH-token first stage and an exact-cosine rescore.

Pure functions returning the dicts OpenSearch gets; `pintext dsl` prints them for Dashboards Dev Tools.

How a search scores (the contract the local backend reproduces):

1. First stage: a bool `should` of `constant_score` term clauses on `lsh_tokens`, each with boost 1, and
   `minimum_should_match: 1`. A pin holds one token per LSH table and matches at most one of a table's (probe)
   tokens, so its first-stage score is the number of tables it shares with the query. Only pins sharing at
   least one table are candidates.
2. Rescore: the top `window` first-stage hits are rescored by the k-NN plugin's exact `knn_score` script
   (cosinesimil) with `query_weight: 0` and `rescore_query_weight: 1`, so a hit's final score is the script's
   score alone, a monotone function of cosine. `k` must not exceed `window`: hits past the window would keep
   first-stage scores that are not comparable with rescored ones. The script only runs on pins that have a
   vector (an `exists` filter): pins with no known word are indexed for BM25 without one.

BM25 (`bm25_body`) is a `multi_match` on the pin's text fields. A hybrid search sends both requests and fuses the
two rankings in the client (`pintext.fusion`); `hybrid_requests` gives the pair for `pintext dsl --hybrid`.

Lucene refuses a query of more than 1024 clauses (`maxClauseCount`, every engine), and `multi_match` makes one
clause per distinct term per field: a pasted product description of 260 words was a 500 (and a field's query may
not be built of more than 1024 terms, repeats included). `bm25_text` is the one place that sizes a BM25 request: a
text of more than `BM25_MAX_TERMS` distinct terms (or `BM25_MAX_TOKENS` terms) is sent as its first
`BM25_MAX_TERMS` distinct terms (x 4 fields = 512 clauses), and `bm25_note` says so for the answer.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterable, Sequence
from typing import Union

import numpy as np

from pintext.mapping import CELL_FIELD, TOKENS_FIELD, VECTOR_FIELD
from pintext.serving.filters import NO_FILTERS, Filters

# A query vector: a list of floats or a numpy row.
Vector = Union[Sequence[float], np.ndarray]

SEARCH_TEMPLATE_ID = "pintext-search"
# BM25 searches these (board and annotations are keyword fields; their `.text` sub-fields are analyzed).
TEXT_FIELDS = ("title", "description", "board.text", "annotations.text")
DEFAULT_K = 10
DEFAULT_WINDOW = 500  # an untuned index's rescore window; a tuned index stores its own in `_meta`
# OpenSearch 2.x and Elasticsearch 8 score BM25 with Lucene's LegacyBM25Similarity, which multiplies each term's
# score by (k1 + 1) = 2.2 (k1 = 1.2, Lucene's default); OpenSearch 3 (Lucene 10) uses BM25Similarity, which does
# not. Boosting the legacy engines' BM25 by 1 / (k1 + 1) gives every engine the same scores (same ids and order).
LEGACY_BM25_BOOST = 1.0 / 2.2
# Hits each side of a hybrid search contributes to the fusion (at least k).
DEFAULT_FUSION_DEPTH = 100
# BM25 sends at most this many distinct terms: x len(TEXT_FIELDS) clauses, well below Lucene's 1024 (maxClauseCount).
BM25_MAX_TERMS = 128
# ... and at most this many terms, repeats included: Lucene builds a field's query of every term (1024 at most)
# before it merges repeats ("red " x 1025 is a 400 on OpenSearch 3.5.0 and 2.19.1).
BM25_MAX_TOKENS = 1000
# Lucene's StandardTokenizer cuts a longer run of word characters into pieces of this length.
LUCENE_MAX_TOKEN_CHARS = 255
# What the engines' standard analyzer makes a term of, over-counted rather than under: each Han or Hiragana
# character alone, a Katakana run, a run of other word characters (no joiners: "3.5" is two), a symbol (emoji).
_HAN_OR_HIRAGANA = "\u3040-\u309f\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f"
_KATAKANA = "\u30a0-\u30ff\u31f0-\u31ff\uff66-\uff9f"
_TERM = re.compile(f"[{_HAN_OR_HIRAGANA}]|[{_KATAKANA}]+|[^\\W{_HAN_OR_HIRAGANA}{_KATAKANA}]+|[^\\w\\s]")
# Equal scores in pin id order: without it a tie comes in the index's own document order, which differs between an
# index written in pin order and one sorted by cell (`pintext.mapping.CELL_SORT`) or another engine.
TIE_SORT = [{"_score": {"order": "desc"}}, {"id": {"order": "asc"}}]
# Fields sent back with each hit: everything but the vector, which is large and only the rescore needs, and the
# pin's cell (the sort key of the index, not a pin field).
SOURCE_EXCLUDES = [VECTOR_FIELD, CELL_FIELD]


def token_clauses(tokens: Iterable[str]) -> list[dict]:
    """One `constant_score` term clause (boost 1) per distinct token, in first-seen order."""
    return [
        {"constant_score": {"filter": {"term": {TOKENS_FIELD: token}}, "boost": 1.0}}
        for token in dict.fromkeys(tokens)
    ]


def first_stage_query(tokens: Sequence[str], exclude_ids: Sequence[str] = (), filters: Filters = NO_FILTERS) -> dict:
    """Candidates sharing at least one token and passing `filters`, scored by the number of tokens shared
    (filter clauses do not score)."""
    should = token_clauses(tokens)
    if not should:
        raise ValueError("a first-stage query needs at least one LSH token")
    query: dict = {"bool": {"should": should, "minimum_should_match": 1}}
    _restrict(query["bool"], exclude_ids, filters)
    return query


def _restrict(bool_query: dict, exclude_ids: Sequence[str], filters: Filters) -> None:
    """Add the exclusions and filters of a search to a `bool` query, in place."""
    if exclude_ids:
        bool_query["must_not"] = [_ids_clause(exclude_ids)]
    if filters:
        bool_query["filter"] = filters.clauses()


def _ids_clause(ids: Sequence[str]) -> dict:
    return {"ids": {"values": list(ids)}}


def bm25_tokens(text: str) -> list[str]:
    """The terms the engines' analyzer may make of `text`, repeats included, lowercased, in order (symbols such as
    emoji count, a run longer than Lucene's 255 characters counts once per piece): an upper bound."""
    tokens: list[str] = []
    for match in _TERM.finditer(text):
        term = match.group().lower()
        if len(term) == 1 and not term.isalnum() and not unicodedata.category(term).startswith("S"):
            continue  # punctuation: never a term
        tokens.extend(term[start:start + LUCENE_MAX_TOKEN_CHARS]
                      for start in range(0, len(term), LUCENE_MAX_TOKEN_CHARS))
    return tokens


def bm25_terms(text: str) -> list[str]:
    """The distinct terms of `bm25_tokens(text)`, in first-seen order."""
    return list(dict.fromkeys(bm25_tokens(text)))


def _fits(tokens: list[str], terms: list[str]) -> bool:
    """Lucene counts both a field's clauses as the query is built (every token, repeats too) and the distinct
    clauses of the whole query: both must stay within the limits."""
    return len(terms) <= BM25_MAX_TERMS and len(tokens) <= BM25_MAX_TOKENS


def bm25_text(text: str) -> str:
    """The text a BM25 request sends: `text` itself, or, past `BM25_MAX_TERMS` distinct terms (or
    `BM25_MAX_TOKENS` terms with repeats), its first `BM25_MAX_TERMS` distinct word terms once each (symbols
    dropped), so the request stays under the engines' clause limit."""
    tokens = bm25_tokens(text)
    terms = list(dict.fromkeys(tokens))
    if _fits(tokens, terms):
        return text
    kept = [term for term in terms if any(char.isalnum() for char in term)] or terms
    return " ".join(kept[:BM25_MAX_TERMS])


def bm25_note(text: str) -> str | None:
    """What the answer says when BM25 searched a shortened `text` (see `bm25_text`), else None."""
    tokens = bm25_tokens(text)
    terms = list(dict.fromkeys(tokens))
    if _fits(tokens, terms):
        return None
    searched = (f"the first {BM25_MAX_TERMS} distinct words of {len(terms):,}" if len(terms) > BM25_MAX_TERMS
                else f"each of the {len(terms)} distinct words of {len(tokens):,} once")
    return f"BM25 searched {searched} (the engines refuse a query of more than 1024 clauses)"


def bm25_query(text: str, exclude_ids: Sequence[str] = (), filters: Filters = NO_FILTERS,
               boost: float = 1.0) -> dict:
    """Lucene BM25 (the engine's defaults) of `text` over the pin's text fields; `boost` scales the scores
    (`LEGACY_BM25_BOOST` on engines whose Lucene scores BM25 the legacy way). A text of more than
    `BM25_MAX_TERMS` distinct terms is sent shortened (`bm25_text`)."""
    if not text.strip():
        raise ValueError("a BM25 query needs some text")
    match: dict = {"multi_match": {"query": bm25_text(text), "fields": list(TEXT_FIELDS)}}
    if boost != 1.0:
        match["multi_match"]["boost"] = boost
    if not exclude_ids and not filters:
        return match
    query: dict = {"bool": {"must": [match]}}
    _restrict(query["bool"], exclude_ids, filters)
    return query


def bm25_body(text: str, k: int = DEFAULT_K, exclude_ids: Sequence[str] = (), filters: Filters = NO_FILTERS,
              boost: float = 1.0) -> dict:
    """A complete `_search` body for BM25 alone (also the fallback for a query with no known word)."""
    if k <= 0:
        raise ValueError(f"k must be positive, got {k}")
    return {"size": int(k), "query": bm25_query(text, exclude_ids, filters, boost),
            "sort": [dict(clause) for clause in TIE_SORT], "_source": {"excludes": list(SOURCE_EXCLUDES)}}


def knn_score_script(vector: Vector) -> dict:
    """The k-NN plugin's exact cosine scoring script over the stored `vector` field."""
    return {
        "lang": "knn",
        "source": "knn_score",
        "params": {"field": VECTOR_FIELD, "query_value": vector_values(vector), "space_type": "cosinesimil"},
    }


def vector_values(vector: Vector) -> list:
    """A query vector as JSON numbers: integers for an int8 vector (a byte vector field refuses a query with a
    decimal value; `pintext.quantize`), floats otherwise."""
    if isinstance(vector, np.ndarray) and vector.dtype == np.int8:
        return [int(x) for x in vector]
    return [float(x) for x in vector]


def rescore_block(vector: Vector, window: int) -> dict:
    """Replace the top `window` first-stage scores by the exact cosine score (first-stage weight 0)."""
    if window <= 0:
        raise ValueError(f"rescore window must be positive, got {window}")
    return {
        "window_size": int(window),
        "query": {
            # Only pins with a vector: a pin indexed for BM25 alone has none (on 2.19 knn_score scores such a
            # pin 0 rather than failing, which would read as cosine -1; the filter makes that explicit).
            "rescore_query": {"script_score": {"query": {"exists": {"field": VECTOR_FIELD}},
                                               "script": knn_score_script(vector)}},
            "query_weight": 0.0,
            "rescore_query_weight": 1.0,
        },
    }


def search_body(
    tokens: Sequence[str],
    vector: Vector | None,
    k: int = DEFAULT_K,
    window: int = DEFAULT_WINDOW,
    exclude_ids: Sequence[str] = (),
    filters: Filters = NO_FILTERS,
) -> dict:
    """A complete `_search` body: first stage, then (when `vector` is given) the exact rescore of `window` hits.

    `vector=None` gives the first stage alone (scores = tables matched), which tests and `--explain` use.
    """
    if k <= 0:
        raise ValueError(f"k must be positive, got {k}")
    body: dict = {
        "size": int(k),
        "query": first_stage_query(tokens, exclude_ids, filters),
        "_source": {"excludes": list(SOURCE_EXCLUDES)},
        # No hit count: counting every match stops Lucene skipping the pins that cannot reach the top window.
        "track_total_hits": False,
    }
    if vector is not None:
        if k > window:
            raise ValueError(f"k ({k}) must not exceed the rescore window ({window})")
        body["rescore"] = rescore_block(vector, window)
    return body


def filtered_pins_query(filters: Filters, exclude_ids: Sequence[str] = ()) -> dict:
    """The pins an exact filtered search scores: those with a vector that pass `filters`, minus `exclude_ids`."""
    query: dict = {"bool": {"filter": [{"exists": {"field": VECTOR_FIELD}}, *filters.clauses()]}}
    if exclude_ids:
        query["bool"]["must_not"] = [_ids_clause(exclude_ids)]
    return query


def exact_filtered_body(vector: Vector, k: int, filters: Filters, exclude_ids: Sequence[str] = ()) -> dict:
    """Every pin passing `filters` scored by the exact `knn_score` script: a selective filter's exact answer."""
    if k <= 0:
        raise ValueError(f"k must be positive, got {k}")
    return {"size": int(k), "query": {"script_score": {"query": filtered_pins_query(filters, exclude_ids),
                                                       "script": knn_score_script(vector)}},
            "_source": {"excludes": list(SOURCE_EXCLUDES)}, "track_total_hits": False}


def related_body(
    pin_id: str,
    tokens: Sequence[str],
    vector: Vector,
    k: int = DEFAULT_K,
    window: int = DEFAULT_WINDOW,
) -> dict:
    """Pins related to a stored pin: the same search from its vector, the pin itself excluded."""
    return search_body(tokens, vector, k=k, window=window, exclude_ids=[pin_id])


def fusion_depth(k: int, depth: int = DEFAULT_FUSION_DEPTH) -> int:
    """Hits each side of a hybrid search returns: at least `k`, so the fused top k can come from either."""
    return max(int(k), int(depth))


def hybrid_requests(text: str, tokens: Sequence[str], vector: Vector | None, k: int = DEFAULT_K,
                    window: int = DEFAULT_WINDOW, depth: int = DEFAULT_FUSION_DEPTH,
                    filters: Filters = NO_FILTERS) -> dict[str, dict]:
    """The two `_search` bodies a hybrid search sends, {"bm25": ..., "pintext": ...}, each `fusion_depth` deep.

    The PinText side is absent when the query has no known word (no vector): the search is then BM25 alone.
    """
    size = fusion_depth(k, depth)
    requests = {"bm25": bm25_body(text, size, filters=filters)}
    if vector is not None:
        requests["pintext"] = search_body(tokens, vector, k=size, window=max(window, size), filters=filters)
    return requests


def template_params(tokens: Sequence[str], vector: Vector, k: int = DEFAULT_K,
                    window: int = DEFAULT_WINDOW) -> dict:
    """Parameters for the stored mustache template `pintext-search` (mappings/search_template.json)."""
    if k > window:
        raise ValueError(f"k ({k}) must not exceed the rescore window ({window})")
    return {
        "tokens": list(dict.fromkeys(tokens)),
        "vector": vector_values(vector),
        "size": int(k),
        "window": int(window),
    }


def dev_tools_request(index: str, body: dict) -> str:
    """The text to paste into Dashboards Dev Tools: the request line, then the JSON body."""
    return f"GET {index}/_search\n{json.dumps(body, indent=2)}"


def search_template_script() -> dict:
    """The stored-script body for `PUT _scripts/pintext-search`: `{"script": {"lang": "mustache", ...}}`."""
    from importlib import resources

    document = json.loads(resources.files("pintext.mappings").joinpath("search_template.json").read_text("utf-8"))
    return {"script": document["script"]}


def without_template_padding(body: dict) -> dict:
    """A rendered template's body minus the `match_none` clause that only closes the token list."""
    rendered = json.loads(json.dumps(body))
    should = rendered["query"]["bool"]["should"]
    rendered["query"]["bool"]["should"] = [clause for clause in should if clause != {"match_none": {}}]
    return rendered
