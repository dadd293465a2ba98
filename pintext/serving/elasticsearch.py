"""The Elasticsearch engine (8.15): the serving protocol over the official `elasticsearch` client.

Elasticsearch has no k-NN plugin script (`knn_score` is OpenSearch's) and the managed node's integ-test zip has no
painless, so the exact rescore cannot be a `script_score`. What it has in core is the `dense_vector` field
(`similarity: cosine`, `index_options.type: flat`) and the `knn` query with a `filter`: over a flat index, or
whenever the filter passes no more docs than `num_candidates`, that query scores every doc the filter passes by
its exact cosine. A PinText search is therefore two requests (docs/elasticsearch-serving.md has the measurements
behind the choice):

1. the first stage (`pintext.queries.first_stage_query`: token clauses, filters, exclusions) for the top
   `window` pin ids, sorted by score, then pin id (the tie rule, so the window's edge is cut as the local oracle
   cuts it), with no fetch phase (`stored_fields: _none_`): the ids are read from the sort values;
2. a `knn` query over the vector field filtered to exactly those ids (`num_candidates` = their number), sorted
   by score, then pin id, `size` = k: the top k of the window by exact cosine. Elasticsearch scores cosine as
   `(1 + cos) / 2`; `cosine_from_es_score` maps it back.

BM25 is the same `multi_match` over the same standard-analyzed fields as OpenSearch (`pintext.queries.bm25_body`),
boosted by 1 / (k1 + 1) (`pintext.queries.LEGACY_BM25_BOOST`): Elasticsearch 8 scores BM25 with Lucene's
`LegacyBM25Similarity`, which multiplies each term's score by (k1 + 1) = 2.2, and OpenSearch 3 with
`BM25Similarity`, which does not; boosted, the scores are OpenSearch 3's.
Writes go through `elasticsearch.helpers.streaming_bulk` (retries on 429 with backoff; whole-batch retries on
connection errors, safe because docs are keyed by pin id). Aliases move with one `_aliases` call (atomic).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np

from pintext import queries
from pintext.mapping import VECTOR_FIELD, pins_index_body_elasticsearch
from pintext.quantize import INT8
from pintext.serving.base import (
    IndexLayout,
    IndexNotFoundError,
    PinNotFoundError,
    SearchHit,
    UnsupportedError,
    VectorQuery,
    rank,
    require_storable_id,
)
from pintext.serving.filters import NO_FILTERS, Filters
from pintext.serving.meta import sorted_by_cell, vector_type_of
from pintext.serving.opensearch import (
    MERGE_TIMEOUT_S,
    ClusterEngine,
    bm25_hit,
    hit_source,
    split_stored,
)

if TYPE_CHECKING:  # the client is imported only when an engine is actually opened
    from elasticsearch import Elasticsearch

URL_ENV = "ELASTICSEARCH_URL"
DEFAULT_TIMEOUT_S = 30
# Elasticsearch's caps: `num_candidates` of a knn query, and `index.max_result_window` (the first stage's size).
MAX_WINDOW = 10_000
# Both requests sort like `pintext.serving.base.rank`: score descending, then pin id ascending (the `id` keyword
# field: sorting on `_id` is disabled in Elasticsearch 8).
TIE_SORT = queries.TIE_SORT
IDS_PLACEHOLDER = "<the ids request 1 returns, in its order>"
INSTALL_HINT = "pip install 'pintext[elasticsearch]'"


def _client_module() -> Any:
    try:
        import elasticsearch
    except ImportError as error:
        raise ImportError(f"the Elasticsearch engine needs the elasticsearch client: {INSTALL_HINT}") from error
    return elasticsearch


def cosine_from_es_score(score: float) -> float:
    """The cosine behind a `knn` `_score` on a `dense_vector` with `similarity: cosine`: Elasticsearch scores it
    `(1 + cos) / 2` (checked against numpy on the managed 8.15.0 node, tests/test_elasticsearch_engine.py)."""
    return 2.0 * float(score) - 1.0


# ---- request bodies (pure) ---------------------------------------------------------------------------------------


def first_stage_body(tokens: Sequence[str], size: int, exclude_ids: Sequence[str] = (),
                     filters: Filters = NO_FILTERS, with_source: bool = True) -> dict:
    """The first stage as one `_search` body: `size` best pins by tokens shared, ties by pin id."""
    if size <= 0:
        raise ValueError(f"size must be positive, got {size}")
    if size > MAX_WINDOW:
        raise UnsupportedError(f"Elasticsearch returns at most {MAX_WINDOW} first-stage hits (asked {size}); "
                               "use a smaller window")
    body: dict = {"size": int(size), "query": queries.first_stage_query(tokens, exclude_ids, filters),
                  "sort": [dict(clause) for clause in TIE_SORT], "track_total_hits": False}
    if with_source:
        body["_source"] = {"excludes": list(queries.SOURCE_EXCLUDES)}
    else:
        # No fetch phase at all: the ids come back as the sort values. Reading `_id` (or any stored field) for
        # each of `size` hits is what the first stage's time goes to otherwise (38 ms vs 4.5 ms for 500 ids on
        # 20k pins: docs/elasticsearch-serving.md).
        body["stored_fields"] = "_none_"
    return body


def rescore_body(vector: queries.Vector, ids: Sequence[str], k: int) -> dict:
    """The exact rescore: a `knn` query filtered to the window's `ids` (every one of them scored, exactly), the
    top `k` by cosine, ties by pin id."""
    if k <= 0:
        raise ValueError(f"k must be positive, got {k}")
    ids = list(ids)
    if not ids:
        raise ValueError("the rescore needs at least one pin id")
    if len(ids) > MAX_WINDOW:
        raise UnsupportedError(f"Elasticsearch's knn query scores at most {MAX_WINDOW} candidates (got {len(ids)})")
    knn = {"field": VECTOR_FIELD, "query_vector": queries.vector_values(vector), "num_candidates": len(ids),
           "filter": {"ids": {"values": ids}}}
    return {"size": int(k), "query": {"knn": knn}, "sort": [dict(clause) for clause in TIE_SORT],
            "track_total_hits": False, "_source": {"excludes": list(queries.SOURCE_EXCLUDES)}}


def exact_filtered_body(query: VectorQuery) -> dict:
    """A selective filter's exact answer: a `knn` query over every pin passing the filters (flat index: exact),
    the top k by cosine, ties by pin id."""
    knn = {"field": VECTOR_FIELD, "query_vector": queries.vector_values(query.vector),
           "num_candidates": min(MAX_WINDOW, max(int(query.k), int(query.window))),
           "filter": queries.filtered_pins_query(query.filters, query.exclude_ids)}
    return {"size": int(query.k), "query": {"knn": knn}, "sort": [dict(clause) for clause in TIE_SORT],
            "track_total_hits": False, "_source": {"excludes": list(queries.SOURCE_EXCLUDES)}}


def search_requests(index: str, query: VectorQuery, ids: Sequence[str] | None = None) -> list[tuple[str, dict]]:
    """The two requests of a PinText search. Without the first request's `ids` (what `pintext dsl` prints), the
    second carries a placeholder and its request line a Console comment saying so; its `num_candidates` is then
    the window, the most ids it can be given."""
    line = f"GET {index}/_search"
    if query.exact:
        return [(line, exact_filtered_body(query))]
    first = first_stage_body(query.tokens, query.window, query.exclude_ids, query.filters, with_source=False)
    if ids is None:
        second = rescore_body(query.vector, [IDS_PLACEHOLDER], query.k)
        second["query"]["knn"]["num_candidates"] = int(query.window)
        return [(f"# 1/2 first stage: the top {query.window} pin ids by tokens shared\n{line}", first),
                (f"# 2/2 exact rescore: put the ids request 1 returned into filter.ids.values and "
                 f"num_candidates = their number\n{line}", second)]
    return [(line, first), (line, rescore_body(query.vector, ids, query.k))]


# ---- the engine --------------------------------------------------------------------------------------------------


class ElasticsearchEngine(ClusterEngine):
    """The serving protocol (`pintext.serving.base.Engine`) on an Elasticsearch 8 node (see the module docstring).
    Index listing, aliases and the bulk write with retries are `ClusterEngine`'s, shared with OpenSearch."""

    name = "elasticsearch"

    def __init__(self, client: "Elasticsearch", where: str = "Elasticsearch", max_retries: int = 5,
                 initial_backoff: float = 1.0, max_backoff: float = 30.0, connection_retries: int = 5,
                 retry_window_s: float | None = None) -> None:
        super().__init__(client, max_retries, initial_backoff, max_backoff, connection_retries, retry_window_s)
        self.where = where  # a URL without credentials, for messages

    def streaming_bulk(self) -> Any:
        from elasticsearch.helpers import streaming_bulk

        return streaming_bulk

    def connection_errors(self) -> tuple[type[BaseException], ...]:
        from elastic_transport import ConnectionError as TransportConnectionError
        from elastic_transport import ConnectionTimeout

        return (TransportConnectionError, ConnectionTimeout)

    def _merge(self, index: str, segments: int) -> None:
        self.client.options(request_timeout=MERGE_TIMEOUT_S).indices.forcemerge(index=index,
                                                                                max_num_segments=segments)

    def _dumps(self, data: dict) -> str:
        serializer = self.client.transport.serializers.get_serializer("application/json")
        return bytes(serializer.dumps(data)).decode("utf-8")

    def describe(self) -> str:
        return f"Elasticsearch at {self.where}"

    @property
    def version(self) -> str:
        """The node's version, from `GET /_nodes/_local` (the integ-test zip has no `GET /`)."""
        if self._version is None:
            nodes = self.client.nodes.info(node_id="_local")["nodes"]
            self._version = str(next(iter(nodes.values()))["version"])
        return self._version

    @contextmanager
    def _index_errors(self, index: str) -> Iterator[None]:
        """A missing index as IndexNotFoundError (as the local engine says it), anything else as it came."""
        not_found = _client_module().NotFoundError
        try:
            yield
        except not_found as error:
            if _error_type(error) == "index_not_found_exception":
                raise IndexNotFoundError(f"index {index!r} does not exist") from None
            raise

    # ---- indices and aliases -------------------------------------------------------------------------------

    # The two clients spell these calls alike: the OpenSearch engine's own code serves both.
    def create(self, index: str, dim: int, meta: dict, shards: int = 1, replicas: int = 0) -> list[str]:
        body = pins_index_body_elasticsearch(dim, meta, shards=shards, replicas=replicas,
                                             byte_vectors=vector_type_of(meta) == INT8,
                                             sorted_by_cell=sorted_by_cell(meta))
        self.client.indices.create(index=index, settings=body["settings"], mappings=body["mappings"])
        return []

    def meta(self, index: str) -> dict:
        with self._index_errors(index):
            mapping = self.client.indices.get_mapping(index=index)
        return dict(next(iter(mapping.values()))["mappings"].get("_meta", {}))

    def count(self, index: str) -> int:
        with self._index_errors(index):
            return int(self.client.count(index=index)["count"])

    def layout(self, index: str) -> IndexLayout:
        concrete = self.alias_target(index)
        if concrete is None:
            raise IndexNotFoundError(f"index {index!r} does not exist")
        settings = self.client.indices.get_settings(index=concrete)[concrete]["settings"]["index"]
        health = self.client.cluster.health(index=concrete)["status"]
        return IndexLayout(int(settings["number_of_shards"]), int(settings["number_of_replicas"]), str(health))

    def refresh(self, index: str) -> None:
        with self._index_errors(index):
            self.client.indices.refresh(index=index)

    # ---- writing -------------------------------------------------------------------------------------------

    # ---- reading -------------------------------------------------------------------------------------------

    def search_body(self, index: str, body: dict) -> dict:
        with self._index_errors(index):
            return super().search_body(index, body)

    def _search(self, index: str, body: dict) -> list[dict]:
        return list(self.search_body(index, body)["hits"]["hits"])

    def count_matching(self, index: str, filters: Filters, exclude_ids: Sequence[str] = ()) -> int:
        with self._index_errors(index):
            body = {"query": queries.filtered_pins_query(filters, exclude_ids)}
            return int(self.client.count(index=index, body=body)["count"])

    def search(self, index: str, query: VectorQuery) -> list[SearchHit]:
        stage: dict[str, float] = {}
        if query.exact:
            second = exact_filtered_body(query)
        else:
            first = first_stage_body(query.tokens, query.window, query.exclude_ids, query.filters, with_source=False)
            window = self._search(index, first)
            if not window:
                return []
            stage = {str(raw["sort"][1]): float(raw["_score"]) for raw in window}
            second = rescore_body(query.vector, list(stage), query.k)
        wanted = set(query.tokens)
        hits = []
        for raw in self._search(index, second):
            source, held = hit_source(raw)
            score = float(raw["_score"])
            cosine = cosine_from_es_score(score)
            pin_id = str(raw["_id"])
            matched = sorted(held & wanted)
            first_stage = stage.get(pin_id, float(len(matched)) if query.exact else None)
            hits.append(SearchHit(pin_id, cosine, cosine, first_stage, source, matched, score))
        return rank(hits)

    def first_stage(self, index: str, tokens: Sequence[str], size: int, filters: Filters = NO_FILTERS,
                    exclude_ids: Sequence[str] = ()) -> list[SearchHit]:
        hits = []
        wanted = set(tokens)
        for raw in self._search(index, first_stage_body(tokens, size, exclude_ids, filters)):
            source, held = hit_source(raw)
            score = float(raw["_score"])
            hits.append(SearchHit(str(raw["_id"]), score, None, score, source, sorted(held & wanted), score))
        return rank(hits)

    def bm25(self, index: str, text: str, k: int, filters: Filters = NO_FILTERS,
             exclude_ids: Sequence[str] = ()) -> list[SearchHit]:
        body = queries.bm25_body(text, k, exclude_ids, filters, boost=queries.LEGACY_BM25_BOOST)
        return rank([bm25_hit(raw) for raw in self._search(index, body)])

    def get(self, index: str, pin_id: str) -> tuple[dict, np.ndarray | None]:
        not_found = _client_module().NotFoundError
        require_storable_id(index, pin_id)
        try:
            source = dict(self.client.get(index=index, id=pin_id)["_source"])
        except not_found as error:
            if _error_type(error) == "index_not_found_exception":
                raise IndexNotFoundError(f"index {index!r} does not exist") from None
            raise PinNotFoundError(f"pin {pin_id!r} is not in index {index!r}") from None
        return split_stored(source)

    def requests(self, index: str, query: VectorQuery) -> list[tuple[str, dict]]:
        """The two requests `search` sends; the second with a placeholder for the ids the first returns (its
        request line starts with a Console comment saying so)."""
        return search_requests(index, query)

    def bm25_request(self, index: str, text: str, k: int, filters: Filters = NO_FILTERS) -> tuple[str, dict]:
        # Elasticsearch 8 scores BM25 the legacy way ((k1 + 1) x OpenSearch 3's): boosted back to 3's scores.
        return f"GET {index}/_search", queries.bm25_body(text, k, filters=filters, boost=queries.LEGACY_BM25_BOOST)


def _error_type(error: Any) -> str | None:
    """The `error.type` of an Elasticsearch API error (`index_not_found_exception`, ...), if it says one."""
    body = getattr(error, "body", None)
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        return body["error"].get("type")
    return None


# ---- connecting --------------------------------------------------------------------------------------------------


def managed_node_url() -> str:
    """The URL of the node `pintext elasticsearch up` manages (the one it recorded, else the configured port)."""
    from pintext.servers.elasticsearch_node import managed_url

    return managed_url()


def resolve_url(url: str | None = None) -> str:
    """The Elasticsearch URL to use: `url`, else $ELASTICSEARCH_URL, else the managed node's."""
    from urllib.parse import urlsplit

    from pintext.serving.engines import safe_url

    chosen = url or os.environ.get(URL_ENV) or managed_node_url()
    parts = urlsplit(chosen)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"Elasticsearch URL {safe_url(chosen)!r} is not like http://host:9200 or https://host:9200")
    return chosen.rstrip("/")


def connect(url: str | None = None, user: str | None = None, password: str | None = None, verify_certs: bool = True,
            ca_certs: str | None = None, timeout: float = DEFAULT_TIMEOUT_S) -> "Elasticsearch":
    """An elasticsearch-py client for `resolve_url(url)`; basic auth when `user` is given (credentials in the URL
    work too). Connecting is lazy: the first request is what fails (`elastic_transport.ConnectionError`) when
    nothing answers."""
    elasticsearch = _client_module()
    from pintext.serving.fast_json import elasticsearch_serializer

    resolved = resolve_url(url)
    options: dict = {"hosts": [resolved], "request_timeout": timeout, "serializer": elasticsearch_serializer()}
    if user is not None:
        options["basic_auth"] = (user, password or "")
    if resolved.startswith("https://"):
        options.update(verify_certs=verify_certs, ssl_show_warn=verify_certs)
        if ca_certs:
            options["ca_certs"] = ca_certs
    try:
        return elasticsearch.Elasticsearch(**options)
    except ValueError as error:  # the client's own text ("Could not parse URL '...'") carries the whole URL
        from pintext.serving.engines import redact

        raise ValueError(redact(str(error), resolved, password)) from None


def open_engine(options: Any) -> ElasticsearchEngine:
    """The Elasticsearch engine for the CLI's connection options (`pintext.serving.engines` calls this)."""
    from pintext.serving.engines import safe_url

    resolved = resolve_url(options.url)
    client = connect(url=resolved, user=options.user, password=options.password, verify_certs=not options.insecure,
                     ca_certs=str(options.ca_certs) if options.ca_certs else None,
                     timeout=options.timeout or DEFAULT_TIMEOUT_S)
    return ElasticsearchEngine(client, where=safe_url(resolved), retry_window_s=options.timeout)
