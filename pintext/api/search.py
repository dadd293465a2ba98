"""The query policy: how one text (or one stored pin) becomes ranked hits.

A query PinText can embed is served by PinText (token candidates, exact cosine rescore, then the exact-match
signal of MODEL/match.json); with `hybrid`, BM25 is fused in on the client (MODEL/hybrid.json). A query with no
known word gets BM25 alone, and says so in the answer's note, unless the model embeds unseen words by their
sub-words (what `pintext train` makes by default): then its misspelled or unseen words are PinText's too.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pintext.api.connection import Connection
from pintext.errors import BadInput, Unsupported, UsageError
from pintext.fusion import FUSION_METHODS


@dataclass
class Answer:
    """One query's hits and how they were found: mode "pintext", "hybrid", "bm25_fallback" (no known word)."""

    hits: list[Any]
    mode: str
    note: str | None = None
    window: int | None = None
    probes: int | None = None
    explanations: list[Any] = field(default_factory=list)  # one per hit when asked (`pintext.api.explain`)

    def __iter__(self) -> Iterator[Any]:
        return iter(self.hits)

    def __len__(self) -> int:
        return len(self.hits)

    def __getitem__(self, position: int) -> Any:
        return self.hits[position]

    def to_json(self, label: str, query: str, took_ms: float) -> dict:
        return {label: query, "mode": self.mode, "note": self.note, "window": self.window, "probes": self.probes,
                "took_ms": round(took_ms, 2), "hits": [hit.to_json() for hit in self.hits],
                **({"explain": [e.to_json() for e in self.explanations]} if self.explanations else {})}


def parse_filters(pairs: list[str] | None = None, raw: list[str] | None = None) -> Any:
    """`FIELD=VALUE` filters and raw DSL clauses (JSON) as one `Filters`."""
    from pintext.serving.filters import FilterError, Filters

    try:
        return Filters.parse(pairs or [], raw or [])
    except FilterError as error:
        raise BadInput(str(error)) from None


def filters_from(value: Any) -> Any:
    """A `Filters` from what a Python caller gives: None, a Filters, or {field: value or [values]}."""
    from pintext.serving.filters import Filters

    if value is None or isinstance(value, Filters):
        return value if value is not None else parse_filters()
    pairs = [f"{name}={item}" for name, items in dict(value).items()
             for item in (items if isinstance(items, (list, tuple)) else [items])]
    return parse_filters(pairs)


def check_result_limits(k: int, window: int | None) -> None:
    """k and window within the engines' result window (before anything is asked of a node)."""
    from pintext.serving.engines import MAX_RESULT_WINDOW

    for option, value in (("--k", k), ("--window", window)):
        if value is not None and value > MAX_RESULT_WINDOW:
            raise UsageError(f"{option} ({value}) is above the engines' {MAX_RESULT_WINDOW} hits "
                             "(index.max_result_window)")


def check_probes(searcher: Any, probes: int | None) -> None:
    """Probes within what the index's token family allows (LSH: its bits per table; centroids: their number
    less one)."""
    centroids = getattr(searcher.family, "max_probes", None)
    bits = getattr(searcher.family, "bits", None)
    if probes is not None and centroids is not None and probes > centroids:
        raise UsageError(f"--probes ({probes}) is above the index's {centroids + 1} centroids per codebook "
                         f"(use 0..{centroids})")
    if probes is not None and bits is not None and probes > bits:
        raise UsageError(f"--probes ({probes}) is above the index's {bits} bits per LSH table (use 0..{bits})")


def serving_window(searcher: Any, k: int, window: int | None) -> int:
    """The rescore window: `window`, else the index's (widened to k); refuses k above an explicit window."""
    if window is not None and k > window:
        raise UsageError(f"--k ({k}) must not exceed --window ({window})")
    return searcher.serving.window_for(k, window)


def vector_search(searcher: Any, vector: Any, k: int, window: int | None, probes: int | None,
                  exclude_ids: list[str], filters: Any, text: str | None = None, match: Any = None) -> Answer:
    """PinText served, with the index's window/probes unless given; with a query `text`, re-ranked by `match`'s
    exact-match signal (pintext.exact_match)."""
    from pintext.exact_match import ExactMatch, match_depth

    match = match or ExactMatch()
    window = serving_window(searcher, k, window)
    probes = searcher.serving.probes_for(k, probes)
    hits = searcher.search(vector, k=k, window=window, probes=probes, exclude_ids=exclude_ids, filters=filters,
                           text=text, match=match)
    if text is None or not match.on:
        return Answer(hits, "pintext", window=window, probes=probes)
    words = "query words matched (a missing one by its nearest pin word)" if match.nearest_words else \
        "query words matched"
    note = f"cosine + {match.weight:g} x share of {words}, top {match_depth(k)} re-ranked"
    return Answer(hits, "pintext", note, window=max(window, match_depth(k)), probes=probes)


def bm25_fallback(searcher: Any, text: str, k: int, why: str, filters: Any,
                  exclude_ids: list[str] | None = None) -> Answer:
    """BM25 alone, for a query (or pin) with no known word; an engine without BM25 says so."""
    from pintext.serving.base import UnsupportedError

    try:
        hits = searcher.bm25_search(text, k=k, exclude_ids=list(exclude_ids or []), filters=filters)
    except UnsupportedError as error:
        return Answer([], "bm25_fallback", f"{why}; {error}")
    return Answer(hits, "bm25_fallback", bm25_noted(f"{why}: BM25 results", text))


def bm25_noted(note: str, text: str) -> str:
    """An answer's note, plus what `pintext.queries.bm25_note` says when BM25 searched a shortened text."""
    from pintext.queries import bm25_note

    shortened = bm25_note(text)
    return f"{note}; {shortened}" if shortened else note


def fusion_config(model_dir: Path | None, method: str | None = None, weight: float | None = None) -> Any:
    """The model's MODEL/hybrid.json (default: `union` at 0.95, `pintext.fusion`), with `method`/`weight` on top."""
    from pintext.fusion import HYBRID_FILE, FusionConfig

    if method is not None and method not in FUSION_METHODS:
        raise UsageError(f"--fusion {method!r}: want one of {', '.join(FUSION_METHODS)}")
    try:
        config = FusionConfig.load(model_dir)
        return FusionConfig(method=method or config.method, rrf_k=config.rrf_k,
                            weight=config.weight if weight is None else weight)
    except (ValueError, TypeError, json.JSONDecodeError) as error:
        raise UsageError(f"{Path(str(model_dir)) / HYBRID_FILE}: not a valid fusion config: {error}") from None


def exact_match_config(model_dir: Path | None, encoder: Any, weight: float | None = None) -> Any:
    """The model's MODEL/match.json (plain cosine without one), its weight replaced by `weight` when given, with
    the encoder's word vectors for the nearest-word share."""
    from pintext.exact_match import MATCH_FILE, ExactMatch

    try:
        match = ExactMatch.load(model_dir)
        return (match if weight is None else match.with_weight(weight)).bound(encoder.word_vectors)
    except (ValueError, TypeError, json.JSONDecodeError) as error:
        source = "--match-weight" if weight is not None else str(Path(str(model_dir)) / MATCH_FILE)
        raise UsageError(f"{source}: not a valid exact-match weight: {error}") from None


def query_vector(conn: Connection, query: str) -> tuple[Any, bool]:
    """The query's vector, and whether PinText serves it (one tokenizer pass): a non-zero vector with a word of the
    vocabulary, or of any words when the model embeds unseen words by their sub-words.

    With hashed unseen words (pintext.encoder.HashedWords) a query of unknown words still has a vector, but BM25,
    with the index's own statistics, ranks a pure word match better than hashed directions do. Sub-word vectors
    carry a misspelling or an unseen model number near its word: on the held-out queries of the three real sets with
    no word in the vocabulary, PinText's exact ranking scored NDCG@10 0.276 vs BM25's 0.222 (Home Depot, 42
    queries, split 0) and 0.28-0.37 vs 0.03-0.04 (Best Buy, ~90 queries, each of 3 splits)."""
    vector, known = conn.encoder.encode_query(query)
    return vector, bool(vector.any()) and (known > 0 or conn.encoder.embeds_unseen_words)


@dataclass(frozen=True)
class QueryPlan:
    """How every query of one call is answered: sizes, filters, and the ranking signals (chosen once)."""

    k: int = 10
    window: int | None = None
    probes: int | None = None
    hybrid: bool = False
    fusion: Any = None  # FusionConfig, with hybrid
    depth: int = 100
    filters: Any = None
    match: Any = None  # ExactMatch


def answer_query(conn: Connection, searcher: Any, query: str, plan: QueryPlan) -> Answer:
    """One query: PinText, or the hybrid of BM25 and PinText; BM25 alone when PinText cannot embed it."""
    from pintext.exact_match import ExactMatch
    from pintext.queries import fusion_depth
    from pintext.serving.base import UnsupportedError

    vector, known = query_vector(conn, query)
    why = f"no word of {query!r} is in the model's vocabulary"
    k, window, probes, filters = plan.k, plan.window, plan.probes, plan.filters
    if plan.hybrid:
        serving_window(searcher, k, window)  # refuses k above an explicit window
        try:
            hits = searcher.hybrid_search(query, vector if known else None, k=k, window=window, fusion=plan.fusion,
                                          depth=plan.depth, probes=probes, filters=filters,
                                          match=plan.match or ExactMatch())
        except UnsupportedError as error:
            raise Unsupported(f"--hybrid needs BM25: {error}") from None
        if not known:
            return Answer(hits, "bm25_fallback", bm25_noted(f"{why}: BM25 results", query))
        # The PinText side returns `size` hits, with the index's window and probes for that many.
        size = fusion_depth(k, plan.depth)
        fusion = plan.fusion
        return Answer(hits, "hybrid", bm25_noted(f"fused by {fusion.method}, PinText weight {fusion.weight:g}", query),
                      window=searcher.hybrid_window(size, window), probes=searcher.serving.probes_for(size, probes))
    if not known:
        return bm25_fallback(searcher, query, k, why, filters)
    return vector_search(searcher, vector, k, window, probes, [], filters, query, plan.match)


def answer_related(searcher: Any, pin_id: str, plan: QueryPlan) -> Answer:
    """Pins nearest to a stored pin's own vector, itself excluded (BM25 on its text when it has no vector)."""
    from pintext.schemas import pin_text

    doc, vector = searcher.engine.get(searcher.index, pin_id)
    if vector is None:
        return bm25_fallback(searcher, pin_text(doc), plan.k, f"pin {pin_id!r} has no vector (no known word)",
                             plan.filters, [pin_id])
    return vector_search(searcher, vector, plan.k, plan.window, plan.probes, [pin_id], plan.filters)
