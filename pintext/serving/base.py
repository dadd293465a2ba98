"""The serving seam: what every engine backend implements, and the types that cross it.

An `Engine` is a connection to one kind of search engine (OpenSearch, Elasticsearch, or the local on-disk
oracle), with the index name as an argument of each call. It stores pins with their vectors and tokens, answers
the two-stage PinText search for a `VectorQuery` (tokens + vector + k + window + filters + exclusions), BM25 for
a text, the first stage alone, a stored pin, and manages indices and aliases. It does not hash, embed or fuse:
`pintext.serving.searcher.Searcher` does that once for every engine, and re-applies the one tie rule (`rank`).

A new engine is one module implementing `Engine` plus one line in `pintext.serving.engines.ENGINES`; the
conformance suite (tests/test_conformance.py) runs it on the same pins and queries as every other.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from pintext.serving.filters import NO_FILTERS, Filters


class IndexMismatchError(RuntimeError):
    """An index built for another model or token config than the one given."""


class PinNotFoundError(LookupError):
    """A pin id the index does not hold."""


def require_storable_id(index: str, pin_id: str) -> None:
    """PinNotFoundError for an id no pin can have: over the engines' 512 bytes (`schemas.MAX_ID_BYTES`; such an id
    in a `GET` line made the node answer 400 `too_long_http_line_exception`, a traceback)."""
    from pintext.schemas import MAX_ID_BYTES

    size = len(pin_id.encode("utf-8", "surrogatepass"))
    if size > MAX_ID_BYTES:
        raise PinNotFoundError(f"pin {pin_id[:40]!r}... ({size:,} bytes) is not in index {index!r}: pin ids are at "
                               f"most {MAX_ID_BYTES} bytes")


class IndexNotFoundError(LookupError):
    """The index (or alias) does not exist."""


class UnsupportedError(RuntimeError):
    """This engine cannot do what was asked (the local backend has no BM25); the message says so."""


@dataclass
class SearchHit:
    """One ranked pin. `score` is what the ranking used: the cosine after rescoring, the BM25 score for BM25
    alone, the fused score for a hybrid search (whose hits also carry both sides' scores and ranks)."""

    id: str
    score: float
    cosine: float | None
    first_stage_score: float | None
    source: dict[str, Any] = field(default_factory=dict)
    matched_tokens: list[str] = field(default_factory=list)
    raw_score: float | None = None  # the engine's own _score, before mapping back to a cosine
    bm25_score: float | None = None
    bm25_rank: int | None = None  # 1-based rank in the BM25 list (None: not in it)
    pintext_rank: int | None = None  # 1-based rank in the PinText list (None: not in it)
    match: float | None = None  # share of the query's words the pin's text holds, when the exact-match signal is on

    @property
    def title(self) -> str:
        return str(self.source.get("title") or "")

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "score": self.score,
            "cosine": self.cosine,
            "first_stage_score": self.first_stage_score,
            "matched_tokens": self.matched_tokens,
            "raw_score": self.raw_score,
            "bm25_score": self.bm25_score,
            "bm25_rank": self.bm25_rank,
            "pintext_rank": self.pintext_rank,
            "match": self.match,
            "source": self.source,
        }


def rank(hits: list[SearchHit]) -> list[SearchHit]:
    """PinText's tie rule, the same on every engine: score descending, then pin id ascending."""
    return sorted(hits, key=lambda hit: (-hit.score, hit.id))


@dataclass(frozen=True)
class VectorQuery:
    """One PinText search as an engine receives it: the tokens to look up (already hashed), the query vector for
    the exact rescore, how many hits, how many first-stage hits to rescore, filters and pin ids to leave out.

    `vector` is what the index holds: an int8 array for an index of one-byte vectors (`pintext.quantize`; the
    engine sends integers and maps its byte-field score back), float32 otherwise."""

    tokens: tuple[str, ...]
    vector: np.ndarray
    k: int = 10
    window: int = 500
    filters: Filters = NO_FILTERS
    exclude_ids: tuple[str, ...] = ()
    # Score every pin that passes the filters exactly, without the tokens: the Searcher sets it when a filter keeps
    # no more pins than the window would rescore (Lucene's rule for a selective filter), so a filtered search is
    # the exact answer and costs no more than a rescore.
    exact: bool = False

    @property
    def byte_vector(self) -> bool:
        """Whether the query is for an index of one-byte vectors (its vector is int8)."""
        return bool(self.vector.dtype == np.int8)

    def __post_init__(self) -> None:
        if self.k <= 0:
            raise ValueError(f"k must be positive, got {self.k}")
        if self.k > self.window:
            raise ValueError(f"k ({self.k}) must not exceed the rescore window ({self.window})")
        if not self.tokens and not self.exact:  # the exact path scores every pin the filters keep: no tokens
            raise ValueError("a PinText search needs at least one token")


@dataclass
class BatchResult:
    """What an engine reports for one written batch: created/updated counts and per-pin failures (id -> reason)."""

    created: int = 0
    updated: int = 0
    failed: dict[str, str] = field(default_factory=dict)
    # Docs sent again: refused with 429 (the node's write queue was full), or in a batch re-sent whole after a
    # connection error or timeout. Counted, because a storm of them is worth knowing about even when none is lost.
    retried: int = 0


@dataclass(frozen=True)
class IndexStats:
    """What an index holds on disk: documents, bytes of its primary store, segments (None where the engine has no
    segments)."""

    docs: int
    size_bytes: int
    segments: int | None = None


@dataclass(frozen=True)
class NodeInfo:
    """The engine's version, its Lucene version and the node's JVM heap, for benchmark reports (None where the
    engine has no such thing)."""

    version: str | None = None
    lucene: str | None = None
    heap_bytes: int | None = None


@dataclass(frozen=True)
class IndexLayout:
    """Shards, replicas and health of an index (None where the engine has no such thing)."""

    shards: int | None = None
    replicas: int | None = None
    health: str | None = None


class Engine(Protocol):
    """One engine behind PinText serving (see the module docstring)."""

    name: str  # "opensearch", "elasticsearch", "local": what `--engine` and the index `_meta` call it
    thread_safe: bool  # may several write() calls run at once
    # None, or (after `record_took()`) the engine's own time in ms of every search request, appended in order
    took: list[float] | None

    def describe(self) -> str:
        """Where it is, for messages: `OpenSearch 3.5.0 at http://...`, `local index in DIR`."""
        ...

    # ---- indices and aliases -------------------------------------------------------------------------------
    def exists(self, index: str) -> bool: ...
    def create(self, index: str, dim: int, meta: dict, shards: int = 1, replicas: int = 0) -> list[str]:
        """Create a pins index for `dim`-d vectors carrying `meta`; returns notes for the user (may be empty)."""
        ...
    def delete(self, index: str) -> bool:
        """Delete a concrete index; False when it was absent."""
        ...
    def meta(self, index: str) -> dict:
        """The `_meta` of an index or of the index an alias points to; IndexNotFoundError when neither exists."""
        ...
    def count(self, index: str) -> int: ...
    def layout(self, index: str) -> IndexLayout: ...
    def shards(self, index: str) -> list[dict]:
        """Every copy of every shard of the index (or alias): `shard`, `primary`, `state`, `node`, `docs`,
        primaries first; an engine without shards reports one."""
        ...
    def default_replicas(self) -> int:
        """Replicas a new index gets when none are asked for: 1 where another data node can hold them, else 0."""
        ...
    def refresh(self, index: str) -> None: ...
    def indices(self, prefix: str) -> list[str]:
        """Concrete indices whose name starts with `prefix`, sorted."""
        ...
    def alias_target(self, alias: str) -> str | None:
        """The concrete index `alias` names: the alias's index, the name itself when it is a concrete index, or
        None when neither exists."""
        ...
    def point_alias(self, alias: str, index: str) -> None:
        """Make `alias` name `index` alone, atomically (a search never sees no index or both)."""
        ...

    def create_plain(self, index: str, mappings: dict, settings: dict | None = None) -> None:
        """Create an index that is not a pins index, with the `mappings` and index `settings` given (the
        benchmarks' baselines: a Lucene HNSW index); the local engine has no mappings and says so."""
        ...
    def add_field(self, index: str, field: str, spec: dict) -> None:
        """Add `field` (mapped as `spec`, e.g. `{"type": "keyword"}`) to an index's mapping."""
        ...
    def stats(self, index: str, flush: bool = False) -> IndexStats:
        """Documents, primary store bytes and segments of a concrete index; with `flush`, after committing what is
        written (the size `_cat/indices` shows after a flush). Lucene engines cache the store size for 10 s
        (`index.store.stats_refresh_interval`): a second call within that may show the first one's size."""
        ...
    def node_info(self) -> NodeInfo:
        """Version, Lucene version and heap of the node answering (for benchmark reports)."""
        ...

    # ---- bulk loads ----------------------------------------------------------------------------------------
    def pause_refresh(self, index: str) -> None:
        """Stop periodic refreshes of `index` for a bulk load (written docs stay invisible to search until
        `resume_refresh`)."""
        ...
    def resume_refresh(self, index: str) -> None:
        """Give `index` back the engine's default refresh interval, and refresh it."""
        ...
    def force_merge(self, index: str, segments: int = 1) -> None:
        """Merge `index` down to at most `segments` segments (compact its store), then refresh it."""
        ...

    # ---- writing -------------------------------------------------------------------------------------------
    def write(self, index: str, pins: Sequence[dict], vectors: Sequence[np.ndarray | None],
              tokens: Sequence[Sequence[str]]) -> BatchResult:
        """Insert or replace pins by id; a None vector is a pin stored for BM25 and filters only."""
        ...
    def bulk_request(self, index: str, pins: Sequence[dict], vectors: Sequence[np.ndarray | None],
                     tokens: Sequence[Sequence[str]]) -> list[str]:
        """The bulk body `write` sends for these pins (action line, document, ...) as the engine's client
        serializes it, without sending it: what a write costs on the client side alone."""
        ...
    def write_docs(self, index: str, docs: Iterable[tuple[str, dict]], batch: int = 500,
                   partial: bool = False) -> BatchResult:
        """Bulk-write `(id, document)` pairs as they are (no vector or tokens added: a plain bulk), `batch` per
        request, one request in flight, through the same bulk path as `write`. With `partial`, each document's
        fields are merged into the stored one with that id (an update; a missing id fails)."""
        ...

    # ---- reading -------------------------------------------------------------------------------------------
    def search(self, index: str, query: VectorQuery) -> list[SearchHit]:
        """First stage over `query.tokens` (score = tokens shared) with filters and exclusions, then the top
        `query.window` rescored by exact cosine; the top `query.k`, `cosine` set, ranked by `rank`. With
        `query.exact`: every pin with a vector passing the filters, by exact cosine (no tokens)."""
        ...
    def first_stage(self, index: str, tokens: Sequence[str], size: int, filters: Filters = NO_FILTERS,
                    exclude_ids: Sequence[str] = ()) -> list[SearchHit]:
        """The first stage alone: score = number of `tokens` a pin holds."""
        ...
    def count_matching(self, index: str, filters: Filters, exclude_ids: Sequence[str] = ()) -> int:
        """Pins with a vector that pass `filters` (and are not excluded): what an exact filtered search scores."""
        ...
    def bm25(self, index: str, text: str, k: int, filters: Filters = NO_FILTERS,
             exclude_ids: Sequence[str] = ()) -> list[SearchHit]: ...
    def get(self, index: str, pin_id: str) -> tuple[dict, np.ndarray | None]:
        """A stored pin's fields and its vector (None: stored without one); PinNotFoundError when absent."""
        ...
    def requests(self, index: str, query: VectorQuery) -> list[tuple[str, dict]]:
        """The engine requests (request line, body) `search` sends, for `pintext dsl`."""
        ...
    def bm25_request(self, index: str, text: str, k: int, filters: Filters = NO_FILTERS) -> tuple[str, dict]: ...
    def search_body(self, index: str, body: dict) -> dict:
        """Send a `_search` body PinText does not make (a benchmark's HNSW or exact-script baseline); the raw
        response. The local engine has no query DSL and says so."""
        ...
    def record_took(self) -> list[float]:
        """From now on append the engine's own time (ms) of each search request to `took`, and return that list:
        the node's `took` for a cluster engine (a two-request search adds two), the in-process time locally."""
        ...


def fuse_hits(bm25: list[SearchHit], pintext: list[SearchHit], fusion: Any, k: int) -> list[SearchHit]:
    """The top `k` of two ranked hit lists fused by `fusion` (`pintext.fusion.FusionConfig`); each hit keeps both
    sides' scores and ranks."""
    by_id: dict[str, SearchHit] = {}
    for hit in pintext:
        by_id[hit.id] = SearchHit(hit.id, 0.0, hit.cosine, hit.first_stage_score, dict(hit.source),
                                  list(hit.matched_tokens), hit.raw_score, pintext_rank=hit.pintext_rank,
                                  match=hit.match)
    for hit in bm25:
        fused = by_id.setdefault(hit.id, SearchHit(hit.id, 0.0, None, None, dict(hit.source)))
        fused.bm25_score, fused.bm25_rank = hit.bm25_score, hit.bm25_rank
    ranked = fusion.fuse({hit.id: hit.score for hit in bm25}, {hit.id: hit.score for hit in pintext})
    hits = []
    for pin_id, score in ranked[:k]:
        by_id[pin_id].score = float(score)
        hits.append(by_id[pin_id])
    return hits
