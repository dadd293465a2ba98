"""The OpenSearch engine (2.19 and 3.x with the k-NN plugin): the serving protocol over opensearch-py.

The request bodies come from `pintext.queries`: a first stage of constant-score term clauses on the token field
(with the search's filters and exclusions in the same `bool`), then a `rescore` of the top `window` by the k-NN
plugin's exact `knn_score` script (cosinesimil), mapped back to a cosine by `cosine_from_knn_score`. Writes go
through opensearch-py's `streaming_bulk` (retries on 429 with backoff; whole-batch retries on connection errors,
safe because docs are keyed by pin id). Aliases move with one `_aliases` call, which OpenSearch applies atomically.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from pintext import queries
from pintext.mapping import CELL_FIELD, TOKENS_FIELD, VECTOR_FIELD, lean_index, pins_index_body
from pintext.quantize import INT8
from pintext.serving.base import (
    BatchResult,
    IndexLayout,
    IndexNotFoundError,
    IndexStats,
    NodeInfo,
    PinNotFoundError,
    SearchHit,
    VectorQuery,
    rank,
    require_storable_id,
)
from pintext.serving.filters import NO_FILTERS, Filters
from pintext.serving.meta import sorted_by_cell, vector_type_of
from pintext.serving.opensearch_client import cosine_from_knn_score

MERGE_TIMEOUT_S = 1200  # a force-merge of a million pins takes minutes, far beyond a search's timeout


def hit_source(raw: dict) -> tuple[dict, set[str]]:
    """A hit's fields without the token list (nor its cell), and the tokens it held."""
    source = dict(raw.get("_source") or {})
    source.pop(CELL_FIELD, None)
    return source, set(source.pop(TOKENS_FIELD, None) or [])


def bulk_outcomes(results: Any) -> BatchResult:
    """Count a `streaming_bulk` run's per-doc outcomes (opensearch-py and elasticsearch-py report alike), of
    `index` and `update` actions."""
    result = BatchResult()
    for ok, item in results:
        outcome: dict = next(iter(item.values()), {})
        if ok and outcome.get("result") == "created":
            result.created += 1
        elif ok:
            result.updated += 1
        else:
            error = outcome.get("error", {})
            reason = error.get("reason", str(error)) if isinstance(error, dict) else str(error)
            kind = error.get("type", "error") if isinstance(error, dict) else "error"
            result.failed[str(outcome.get("_id"))] = f"{kind}: {reason} (status {outcome.get('status')})"
    return result


def pin_document(pin: dict, vector: np.ndarray | None, tokens: Sequence[str]) -> dict:
    """The engine document of a pin: its fields, its tokens, its cell (the first token, which an index of one
    codebook is sorted by: `pintext.mapping.CELL_FIELD`) and its vector (none of the three without a vector)."""
    if vector is None:
        return {key: value for key, value in pin.items() if key not in (TOKENS_FIELD, VECTOR_FIELD, CELL_FIELD)}
    # A numpy array, which the client's serializer (`pintext.serving.fast_json`) writes whole: an int8 one (an index
    # of one-byte vectors) as integers, which the node indexes 1.1-1.4x faster than the same values as floats in a
    # third less JSON (docs/results/ingest-speed, "One-byte vectors as JSON integers"); a float32 one as its
    # shortest exact text.
    values = np.asarray(vector)
    document = {**pin, TOKENS_FIELD: list(tokens),
                VECTOR_FIELD: values if values.dtype == np.int8 else values.astype(np.float32, copy=False)}
    if tokens:
        document[CELL_FIELD] = tokens[0]
    else:
        document.pop(CELL_FIELD, None)
    return document


@dataclass
class RejectionTally:
    rejected: int = 0


class RejectionCountingClient:
    """The client, as `streaming_bulk` sees it, counting the docs the node refused with 429 (each of which
    `streaming_bulk` sends again after its backoff). Everything but `bulk` (and `options`, which elasticsearch-py's
    helper calls first) goes straight to the client."""

    def __init__(self, client: Any, tally: RejectionTally | None = None) -> None:
        self._client = client
        self.tally = tally or RejectionTally()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def options(self, **kwargs: Any) -> "RejectionCountingClient":
        return RejectionCountingClient(self._client.options(**kwargs), self.tally)

    def bulk(self, *args: Any, **kwargs: Any) -> Any:
        try:
            response = self._client.bulk(*args, **kwargs)
        except Exception as error:
            if getattr(error, "status_code", None) == 429 or getattr(error, "status", None) == 429:
                body = kwargs.get("body") or kwargs.get("operations") or ()
                self.tally.rejected += max(1, len(body) // 2) if isinstance(body, (list, tuple)) else 1
            raise
        self.tally.rejected += sum(1 for item in response.get("items", ())
                                   for outcome in item.values() if outcome.get("status") == 429)
        return response


class ClusterEngine:
    """What OpenSearch and Elasticsearch share: their clients take the same index, alias and bulk calls, so index
    existence, deletion, listing, aliases and the bulk write with retries live here once. A subclass names its
    client's `streaming_bulk` and its "no node answers" exceptions."""

    thread_safe = True

    def __init__(self, client: Any, max_retries: int = 5, initial_backoff: float = 1.0, max_backoff: float = 30.0,
                 connection_retries: int = 5, retry_window_s: float | None = None) -> None:
        self.client = client
        # 429s: streaming_bulk re-sends the refused docs after 1, 2, 4, 8, 16 s.
        self.max_retries = max_retries
        self.initial_backoff = initial_backoff
        self.max_backoff = max_backoff
        # A node that does not answer: the batch is re-sent `connection_retries` times, or (with --timeout,
        # `retry_window_s`) a refused one until that many seconds have passed since the first failure.
        self.connection_retries = connection_retries
        self.retry_window_s = retry_window_s
        self._version: str | None = None
        self.took: list[float] | None = None

    # ---- the client's own parts ----------------------------------------------------------------------------

    def streaming_bulk(self) -> Any:
        """The client library's `helpers.streaming_bulk`."""
        raise NotImplementedError

    def connection_errors(self) -> tuple[type[BaseException], ...]:
        """The client's exceptions for a node that does not answer (a whole batch is re-sent on them)."""
        raise NotImplementedError

    # ---- indices and aliases -------------------------------------------------------------------------------

    def exists(self, index: str) -> bool:
        return bool(self.client.indices.exists(index=index))

    def delete(self, index: str) -> bool:
        if not self.client.indices.exists(index=index):
            return False
        self.client.indices.delete(index=index)
        return True

    def indices(self, prefix: str) -> list[str]:
        found = self.client.indices.get(index=f"{prefix}*", expand_wildcards="open", ignore_unavailable=True)
        return sorted(name for name in found if name.startswith(prefix))

    def create_plain(self, index: str, mappings: dict, settings: dict | None = None) -> None:
        self.client.indices.create(index=index, body={"settings": settings or {}, "mappings": mappings})

    def add_field(self, index: str, field: str, spec: dict) -> None:
        self.client.indices.put_mapping(index=index, body={"properties": {field: spec}})

    def stats(self, index: str, flush: bool = False) -> IndexStats:
        """`_stats` of the primaries of the concrete index (an alias is followed)."""
        concrete = self.alias_target(index) or index
        if flush:
            self.client.indices.flush(index=concrete)
        primaries = self.client.indices.stats(index=concrete)["indices"][concrete]["primaries"]
        return IndexStats(int(primaries["docs"]["count"]), int(primaries["store"]["size_in_bytes"]),
                          int(primaries["segments"]["count"]))

    def node_info(self) -> NodeInfo:
        """From `_nodes/_local` (both engines have it)."""
        node = next(iter(self.client.nodes.info(node_id="_local")["nodes"].values()))
        return NodeInfo(str(node["version"]), None, int(node["jvm"]["mem"]["heap_max_in_bytes"]))

    def alias_target(self, alias: str) -> str | None:
        if self.client.indices.exists_alias(name=alias):
            targets = sorted(self.client.indices.get_alias(name=alias))
            return targets[0] if targets else None
        return alias if self.client.indices.exists(index=alias) else None

    def point_alias(self, alias: str, index: str) -> None:
        """One `_aliases` call, which the engine applies atomically."""
        actions: list[dict] = []
        if self.client.indices.exists_alias(name=alias):
            actions += [{"remove": {"index": old, "alias": alias}} for old in self.client.indices.get_alias(name=alias)
                        if old != index]
        elif self.client.indices.exists(index=alias):
            raise ValueError(f"{alias!r} is an index, not an alias")
        actions.append({"add": {"index": index, "alias": alias}})
        self.client.indices.update_aliases(body={"actions": actions})

    # ---- bulk loads ----------------------------------------------------------------------------------------

    def pause_refresh(self, index: str) -> None:
        self.client.indices.put_settings(index=index, body={"index": {"refresh_interval": "-1"}})

    def resume_refresh(self, index: str) -> None:
        """`refresh_interval: null` puts the engine's default back (1 s)."""
        self.client.indices.put_settings(index=index, body={"index": {"refresh_interval": None}})
        self.client.indices.refresh(index=index)

    def force_merge(self, index: str, segments: int = 1) -> None:
        self._merge(index, segments)
        self.client.indices.refresh(index=index)

    def _merge(self, index: str, segments: int) -> None:
        """`_forcemerge` with a MERGE_TIMEOUT_S request timeout (each client takes it its own way)."""
        raise NotImplementedError

    # ---- writing -------------------------------------------------------------------------------------------

    def write(self, index: str, pins: Sequence[dict], vectors: Sequence[np.ndarray | None],
              tokens: Sequence[Sequence[str]]) -> BatchResult:
        def actions() -> Iterator[dict]:
            return ({"_op_type": "index", "_index": index, "_id": pin["id"], "_source": pin_document(pin, v, t)}
                    for pin, v, t in zip(pins, vectors, tokens))

        return self._resending(actions, len(pins))

    def bulk_request(self, index: str, pins: Sequence[dict], vectors: Sequence[np.ndarray | None],
                     tokens: Sequence[Sequence[str]]) -> list[str]:
        lines = []
        for pin, vector, pin_tokens in zip(pins, vectors, tokens):
            lines.append(self._dumps({"index": {"_index": index, "_id": pin["id"]}}))
            lines.append(self._dumps(pin_document(pin, vector, pin_tokens)))
        return lines

    def _dumps(self, data: dict) -> str:
        """`data` as the client's serializer writes it into a request."""
        raise NotImplementedError

    def write_docs(self, index: str, docs: Iterable[tuple[str, dict]], batch: int = 500,
                   partial: bool = False) -> BatchResult:
        total = BatchResult()
        pairs = iter(docs)
        while chunk := list(itertools.islice(pairs, max(1, batch))):
            def actions(chunk: list[tuple[str, dict]] = chunk) -> Iterator[dict]:
                if partial:
                    return ({"_op_type": "update", "_index": index, "_id": doc_id, "doc": doc} for doc_id, doc in chunk)
                return ({"_op_type": "index", "_index": index, "_id": doc_id, "_source": doc} for doc_id, doc in chunk)

            result = self._resending(actions, len(chunk))
            total.created += result.created
            total.updated += result.updated
            total.retried += result.retried
            total.failed.update(result.failed)
        return total

    def _resending(self, actions: Callable[[], Iterator[dict]], size: int) -> BatchResult:
        """One batch of bulk `actions` through `_send`, the whole batch re-sent while no node answers."""
        delay, resent, first_failure = self.initial_backoff, 0, None
        for attempt in itertools.count():
            try:
                result = self._send(actions(), size)
                result.retried += resent
                return result
            except self.connection_errors() as error:
                # Re-sending a whole batch is safe: docs are keyed by pin id.
                first_failure = first_failure or time.monotonic()
                if self._gives_up(attempt, error, time.monotonic() - first_failure + delay):
                    raise
                time.sleep(delay)
                delay = min(delay * 2, self.max_backoff)
                resent += size
        raise AssertionError("unreachable")

    def _gives_up(self, attempt: int, error: BaseException, seconds_by_next_try: float) -> bool:
        """With a retry window (--timeout): a node that took the whole timeout without answering is not asked
        again (the command fails within about that timeout), a refused connection is retried within the window.
        Without: `connection_retries` re-sends of either."""
        if self.retry_window_s is not None:
            # Both clients name it so (opensearchpy.ConnectionTimeout, elastic_transport.ConnectionTimeout).
            return type(error).__name__ == "ConnectionTimeout" or seconds_by_next_try > self.retry_window_s
        return attempt >= self.connection_retries

    def _send(self, actions: Iterable[dict], size: int) -> BatchResult:
        """The one bulk request every write goes through: `size` actions in one `streaming_bulk` chunk, docs the
        node refuses with 429 re-sent after a backoff and counted."""
        counting = RejectionCountingClient(self.client)
        # Both clients sleep for whatever backoff they are given: a float is fine (they annotate it as int).
        result = bulk_outcomes(self.streaming_bulk()(
            counting, actions, chunk_size=max(1, size), raise_on_error=False, raise_on_exception=True,
            max_retries=self.max_retries, initial_backoff=self.initial_backoff, max_backoff=self.max_backoff))
        result.retried = counting.tally.rejected
        return result

    # ---- shard layout --------------------------------------------------------------------------------------

    def shards(self, index: str) -> list[dict]:
        """`_cat/shards` of the concrete index (both engines have it): every copy, primaries first."""
        concrete = self.alias_target(index) or index
        answer = self.client.cat.shards(index=concrete, format="json")
        rows = getattr(answer, "body", answer)
        copies = [{"shard": int(row["shard"]), "primary": row["prirep"] == "p", "state": row["state"],
                   "node": row.get("node"), "docs": int(row["docs"]) if row.get("docs") else None}
                  for row in rows]
        return sorted(copies, key=lambda copy: (copy["shard"], not copy["primary"], copy["node"] or ""))

    def default_replicas(self) -> int:
        data_nodes = int(self.client.cluster.health()["number_of_data_nodes"])
        return min(1, max(0, data_nodes - 1))

    # ---- searching ------------------------------------------------------------------------------------------

    def search_body(self, index: str, body: dict) -> dict:
        response = self.client.search(index=index, body=body)
        if self.took is not None:
            self.took.append(float(response.get("took", float("nan"))))
        return getattr(response, "body", response)

    def record_took(self) -> list[float]:
        self.took = []
        return self.took


class OpenSearchEngine(ClusterEngine):
    """The serving protocol (`pintext.serving.base.Engine`) on an OpenSearch node with k-NN."""

    name = "opensearch"

    def streaming_bulk(self) -> Any:
        from opensearchpy.helpers import streaming_bulk

        return streaming_bulk

    def connection_errors(self) -> tuple[type[BaseException], ...]:
        from opensearchpy.exceptions import ConnectionError as TransportConnectionError
        from opensearchpy.exceptions import ConnectionTimeout

        return (TransportConnectionError, ConnectionTimeout)

    def _merge(self, index: str, segments: int) -> None:
        self.client.indices.forcemerge(index=index, max_num_segments=segments, request_timeout=MERGE_TIMEOUT_S)

    def _dumps(self, data: dict) -> str:
        return str(self.client.transport.serializer.dumps(data))

    def node_info(self) -> NodeInfo:
        info = super().node_info()
        lucene = self.client.info()["version"].get("lucene_version")
        return NodeInfo(info.version, str(lucene) if lucene else None, info.heap_bytes)

    def describe(self) -> str:
        host = self.client.transport.hosts[0]
        return f"OpenSearch at {host.get('host')}:{host.get('port')}"

    @property
    def version(self) -> str:
        if self._version is None:
            self._version = str(self.client.info()["version"]["number"])
        return self._version

    @property
    def bm25_boost(self) -> float:
        """OpenSearch 2.x scores BM25 the legacy way ((k1 + 1) x OpenSearch 3's): boost it back to 3's scores."""
        return queries.LEGACY_BM25_BOOST if int(self.version.split(".")[0]) < 3 else 1.0

    # ---- indices and aliases -------------------------------------------------------------------------------

    def create(self, index: str, dim: int, meta: dict, shards: int = 1, replicas: int = 0) -> list[str]:
        """Create the index (lean, `pintext.mapping.LEAN_KNN_SETTINGS`, where `lean_index` says so) and (re)install
        the stored search template; returns notes for the user."""
        lean = lean_index(self.version, replicas)
        body = pins_index_body(dim, meta, shards=shards, replicas=replicas, lean=lean,
                               byte_vectors=vector_type_of(meta) == INT8, sorted_by_cell=sorted_by_cell(meta))
        self.client.indices.create(index=index, body=body)
        return self.install_search_template()

    def install_search_template(self) -> list[str]:
        """Store the mustache template `pintext-search` (a convenience for Dev Tools and other clients; PinText's
        own commands send full bodies); a node without lang-mustache gets a note, not a failure."""
        from opensearchpy.exceptions import RequestError

        try:
            self.client.put_script(id=queries.SEARCH_TEMPLATE_ID, body=queries.search_template_script())
        except RequestError as error:
            if "mustache" not in str(error):
                raise
            return [f"search template {queries.SEARCH_TEMPLATE_ID!r} not installed: this node has no "
                    f"lang-mustache module ({error.error})"]
        return []

    def meta(self, index: str) -> dict:
        from opensearchpy.exceptions import NotFoundError

        try:
            mapping = self.client.indices.get_mapping(index=index)
        except NotFoundError:
            raise IndexNotFoundError(f"index {index!r} does not exist") from None
        return next(iter(mapping.values()))["mappings"].get("_meta", {})

    def count(self, index: str) -> int:
        return int(self.client.count(index=index)["count"])

    def layout(self, index: str) -> IndexLayout:
        concrete = self.alias_target(index) or index
        settings = self.client.indices.get_settings(index=concrete)[concrete]["settings"]["index"]
        health = self.client.cluster.health(index=concrete)["status"]
        return IndexLayout(int(settings["number_of_shards"]), int(settings["number_of_replicas"]), str(health))

    def refresh(self, index: str) -> None:
        self.client.indices.refresh(index=index)

    # ---- reading -------------------------------------------------------------------------------------------

    def search(self, index: str, query: VectorQuery) -> list[SearchHit]:
        (_, body), = self.requests(index, query)
        response = self.search_body(index, body)
        wanted = frozenset(query.tokens)  # once a query: ~100 probe tokens, up to a few hundred hits
        return rank([self._rescored_hit(raw, wanted, query.byte_vector) for raw in response["hits"]["hits"]])

    def count_matching(self, index: str, filters: Filters, exclude_ids: Sequence[str] = ()) -> int:
        body = {"query": queries.filtered_pins_query(filters, exclude_ids)}
        return int(self.client.count(index=index, body=body)["count"])

    def first_stage(self, index: str, tokens: Sequence[str], size: int, filters: Filters = NO_FILTERS,
                    exclude_ids: Sequence[str] = ()) -> list[SearchHit]:
        body = queries.search_body(tokens, None, k=size, exclude_ids=exclude_ids, filters=filters)
        response = self.search_body(index, body)
        hits, wanted = [], frozenset(tokens)
        for raw in response["hits"]["hits"]:
            source, held = hit_source(raw)
            score = float(raw["_score"])
            hits.append(SearchHit(str(raw["_id"]), score, None, score, source, sorted(held & wanted), score))
        return rank(hits)

    def bm25(self, index: str, text: str, k: int, filters: Filters = NO_FILTERS,
             exclude_ids: Sequence[str] = ()) -> list[SearchHit]:
        body = queries.bm25_body(text, k, exclude_ids, filters, boost=self.bm25_boost)
        response = self.search_body(index, body)
        return rank([bm25_hit(raw) for raw in response["hits"]["hits"]])

    def get(self, index: str, pin_id: str) -> tuple[dict, np.ndarray | None]:
        from opensearchpy.exceptions import NotFoundError

        require_storable_id(index, pin_id)
        try:
            source = dict(self.client.get(index=index, id=pin_id)["_source"])
        except NotFoundError:
            raise PinNotFoundError(f"pin {pin_id!r} is not in index {index!r}") from None
        return split_stored(source)

    def requests(self, index: str, query: VectorQuery) -> list[tuple[str, dict]]:
        if query.exact:
            return [(f"GET {index}/_search", queries.exact_filtered_body(query.vector, query.k, query.filters,
                                                                         query.exclude_ids))]
        body = queries.search_body(list(query.tokens), query.vector, k=query.k, window=query.window,
                                   exclude_ids=query.exclude_ids, filters=query.filters)
        return [(f"GET {index}/_search", body)]

    def bm25_request(self, index: str, text: str, k: int, filters: Filters = NO_FILTERS) -> tuple[str, dict]:
        try:
            boost = self.bm25_boost
        except self.connection_errors():  # `pintext dsl` with no node to ask: OpenSearch 3's scores (no boost)
            boost = 1.0
        return f"GET {index}/_search", queries.bm25_body(text, k, filters=filters, boost=boost)

    def _rescored_hit(self, raw: dict, wanted: frozenset[str], byte_vector: bool) -> SearchHit:
        source, held = hit_source(raw)
        matched = sorted(held & wanted)
        score = float(raw["_score"])
        cosine = cosine_from_knn_score(score, byte_vectors=byte_vector)
        return SearchHit(str(raw["_id"]), cosine, cosine, float(len(matched)), source, matched, score)


def bm25_hit(raw: dict) -> SearchHit:
    source, _ = hit_source(raw)
    score = float(raw["_score"])
    return SearchHit(str(raw["_id"]), score, None, None, source, raw_score=score, bm25_score=score)


def split_stored(source: dict) -> tuple[dict, np.ndarray | None]:
    """A stored document as (fields without tokens, cell and vector, vector or None)."""
    vector = source.pop(VECTOR_FIELD, None)
    source.pop(TOKENS_FIELD, None)
    source.pop(CELL_FIELD, None)
    return source, (np.asarray(vector, dtype=np.float32) if vector is not None else None)


def open_engine(options: Any) -> OpenSearchEngine:
    """The OpenSearch engine for the CLI's connection options (`pintext.serving.engines` calls this)."""
    from pintext.serving.opensearch_client import DEFAULT_TIMEOUT_S, connect

    client = connect(url=options.url, user=options.user, password=options.password,
                     verify_certs=not options.insecure, ca_certs=str(options.ca_certs) if options.ca_certs else None,
                     timeout=options.timeout or DEFAULT_TIMEOUT_S)
    return OpenSearchEngine(client, retry_window_s=options.timeout)
