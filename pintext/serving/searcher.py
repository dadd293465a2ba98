"""PinText search over any engine: hash the query vector with the index's token family, let the engine run the
two stages, re-apply the tie rule; BM25, hybrid fusion and related pins on top. Engine-free: the same code serves
OpenSearch, Elasticsearch and the local backend.

The API callers use, per query (window and probes default to the index's tuned ones, `_meta.serving`):

- `Searcher.search(vector, k, window, probes, filters, exclude_ids, text, match)`: PinText served (with the query's
  `text` and an `ExactMatch` weight, the top hits are re-ranked by cosine + the exact-match signal,
  `pintext.exact_match`);
- `Searcher.bm25_search(text, k, filters, exclude_ids)`: BM25 alone;
- `Searcher.hybrid_search(text, vector, k, window, fusion, depth, probes, filters)`: both, fused in the client by
  `pintext.fusion` (BM25 alone when `vector` is None or zero: a query with no known word); the default fusion
  (`union`) also has the engine score BM25's pins that PinText's list lacks by exact cosine (`score_pins`);
- `Searcher.related(pin_id, ...)`: nearest to a stored pin's own vector, the pin excluded.

`Searcher.for_index(engine, index)` builds one from the index's own `_meta`. The query vector is taken as the index
holds vectors (`_meta.vector_type`: int8 values for one-byte vectors, `pintext.quantize`), and both its tokens and
the exact score come from that vector, as ingest hashes and stores the pins': `related` from a stored vector is the
search of that very vector.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np

from pintext import queries
from pintext.exact_match import ExactMatch, match_depth
from pintext.mapping import ID_FIELD
from pintext.quantize import FLOAT32, served_vectors
from pintext.serving.base import Engine, SearchHit, VectorQuery, fuse_hits, rank
from pintext.serving.filters import NO_FILTERS, Filters
from pintext.serving.meta import ServingDefaults, check_meta, family_from_meta, vector_type_of
from pintext.tokens import TokenFamily, scores_every_match


class Searcher:
    """Searches one index (or alias) of one engine with a given token family (see the module docstring)."""

    def __init__(self, engine: Engine, index: str, family: TokenFamily,
                 serving: ServingDefaults | None = None, vector_type: str = FLOAT32) -> None:
        self.engine = engine
        self.index = index
        self.family = family
        self.serving = serving or ServingDefaults()
        self.vector_type = vector_type  # what the index's vector field holds (`_meta.vector_type`)
        # Pins passing a filter, per (filters, exclusions): counted once per searcher (one command), since many
        # queries of a batch share a filter. A count gone stale by a concurrent ingest only picks the other path;
        # both return pins that pass.
        self._filtered_counts: dict[tuple[str, tuple[str, ...]], int] = {}

    @classmethod
    def for_index(cls, engine: Engine, index: str) -> "Searcher":
        """A searcher with the token family and default window/probes the index's `_meta` records.

        An alias is resolved once, here: every search of this searcher goes to the index whose `_meta` it read,
        so a promote between two requests never pairs one model's tokens with another model's index. (A new
        searcher, e.g. the next command, follows the alias to wherever it points then.)
        """
        from pintext.serving.base import IndexNotFoundError

        concrete = engine.alias_target(index)
        if concrete is None:
            raise IndexNotFoundError(f"index {index!r} does not exist")
        meta = engine.meta(concrete)
        return cls(engine, concrete, family_from_meta(index, meta), ServingDefaults.from_meta(meta),
                   vector_type_of(meta))

    def check(self, expected_meta: dict, model_dir: str = "the model") -> None:
        """Refuse to search an index built for another model (see `check_meta`)."""
        check_meta(self.index, self.engine.meta(self.index), expected_meta, model_dir)

    def query(self, vector: np.ndarray, k: int = queries.DEFAULT_K, window: int | None = None,
              probes: int | None = None, filters: Filters = NO_FILTERS,
              exclude_ids: Sequence[str] = (), exact_filter: bool = True) -> VectorQuery:
        """The engine request for a query vector: its tokens, and the window and probes for `k` hits.

        With filters that keep no more pins than the window would rescore, the request is `exact`: those pins are
        all scored by exact cosine (Lucene does the same for a selective filter), so the answer is exact and costs
        no more than the rescore would; one count request decides. `exact_filter=False` always uses the tokens
        (benchmarks compare the two).
        """
        size = self.serving.window_for(k, window)
        served = self.served(vector)
        # The exact path needs no tokens; they are still computed, for `--explain`'s matched tokens.
        tokens = self.family.query_tokens(served.astype(np.float32), probes=self.serving.probes_for(k, probes))[0]
        if scores_every_match(self.family):
            # Learned centroid tokens (one codebook): the pins holding a probed centroid are few and all near the
            # query, so every one of them is scored exactly — the tokens become a filter of the exact path.
            filters = with_token_filter(filters, tokens)
            exact = True
        else:
            exact = exact_filter and bool(filters) and self.filtered_count(filters, tuple(exclude_ids)) <= size
        return VectorQuery(tuple(tokens), served, k=k, window=size, filters=filters,
                           exclude_ids=tuple(exclude_ids), exact=exact)

    def served(self, vector: np.ndarray) -> np.ndarray:
        """The query vector as the engine scores it against this index's vectors (int8 for one-byte vectors)."""
        return served_vectors(np.asarray(vector, dtype=np.float32), self.vector_type)

    def filtered_count(self, filters: Filters, exclude_ids: tuple[str, ...] = ()) -> int:
        """Pins with a vector passing `filters` (cached for this searcher, see `__init__`)."""
        key = (json.dumps(filters.to_dict(), sort_keys=True), exclude_ids)
        if key not in self._filtered_counts:
            self._filtered_counts[key] = self.engine.count_matching(self.index, filters, exclude_ids)
        return self._filtered_counts[key]

    def search(self, vector: np.ndarray, k: int = queries.DEFAULT_K, window: int | None = None,
               probes: int | None = None, exclude_ids: Sequence[str] = (),
               filters: Filters = NO_FILTERS, exact_filter: bool = True, text: str | None = None,
               match: ExactMatch = ExactMatch(), depth: int | None = None) -> list[SearchHit]:
        """Top `k` pins for a query vector: token first stage (filtered), exact cosine rescore; a selective filter
        is scored exactly (see `query`). With the query's `text` and `match` on, the engine returns the top
        `depth` (default `match_depth(k)`, never fewer than k) of the same window and probes, re-ranked here by
        cosine + the exact-match signal."""
        if text is None or not match.on:
            return self._numbered(rank(self.engine.search(self.index, self.query(
                vector, k, window, probes, filters, exclude_ids, exact_filter))))
        size = max(k, depth if depth is not None else match_depth(k))
        wide = max(self.serving.window_for(k, window), size)
        query = self.query(vector, size, wide, self.serving.probes_for(k, probes), filters, exclude_ids,
                           exact_filter)
        return self._numbered(matched(rank(self.engine.search(self.index, query)), text, match)[:k])

    @staticmethod
    def _numbered(hits: list[SearchHit]) -> list[SearchHit]:
        for position, hit in enumerate(hits, start=1):
            hit.pintext_rank = position
        return hits

    def bm25_search(self, text: str, k: int = queries.DEFAULT_K, exclude_ids: Sequence[str] = (),
                    filters: Filters = NO_FILTERS) -> list[SearchHit]:
        """Top `k` pins by BM25 on the pin's text fields."""
        hits = rank(self.engine.bm25(self.index, text, k, filters, exclude_ids))
        for position, hit in enumerate(hits, start=1):
            hit.bm25_rank = position
        return hits

    def hybrid_search(self, text: str, vector: np.ndarray | None, k: int = queries.DEFAULT_K,
                      window: int | None = None, fusion: Any = None, depth: int = queries.DEFAULT_FUSION_DEPTH,
                      probes: int | None = None, filters: Filters = NO_FILTERS,
                      match: ExactMatch = ExactMatch()) -> list[SearchHit]:
        """BM25 and PinText (with `match`'s exact-match signal), each `depth` deep (at least k), fused by `fusion`
        (default: `pintext.fusion.FusionConfig()`).

        A query with no known word (`vector` None or zero) is BM25 alone.
        """
        from pintext.fusion import FusionConfig

        fusion = fusion or FusionConfig()
        size = queries.fusion_depth(k, depth)
        lexical = self.bm25_search(text, size, filters=filters)
        if vector is None or not np.any(vector):
            return lexical[:k]
        # The PinText side re-ranks one hit per hit of its list (at least MATCH_DEPTH), not 3: BM25's list already
        # brings in the pins that hold the query's words, and the fusion was chosen on validation with lists
        # re-ranked this deep (Crowdflower split 0 lost 0.003 NDCG@10 with 3 x size; no set gained: docs/serving.md).
        semantic = self.search(vector, k=size, window=self.hybrid_window(size, window), probes=probes,
                               filters=filters, text=text, match=match, depth=match_depth(size, per_hit=1))
        if fusion.scores_every_candidate:
            found = {hit.id for hit in semantic}
            missing = [hit.id for hit in lexical if hit.id not in found]
            semantic = semantic + matched(self.score_pins(vector, missing, filters), text, match)
        return fuse_hits(lexical, semantic, fusion, k)

    def score_pins(self, vector: np.ndarray, pin_ids: Sequence[str], filters: Filters = NO_FILTERS
                   ) -> list[SearchHit]:
        """The exact cosine of the given pins (those with a vector that pass `filters`), in one exact request."""
        wanted = tuple(dict.fromkeys(pin_ids))
        if not wanted:
            return []
        only = Filters(terms=(*filters.terms, (ID_FIELD, wanted)), raw=filters.raw)
        # The exact path needs no tokens (these pins were found by BM25, not by the first stage).
        return rank(self.engine.search(self.index, VectorQuery(
            (), self.served(vector), k=len(wanted), window=len(wanted), filters=only, exact=True)))

    def hybrid_window(self, size: int, window: int | None) -> int:
        """The PinText side's window in a hybrid search: the index's for `size` hits, never below `size`."""
        return max(self.serving.window_for(size, window), size)

    def first_stage(self, vector: np.ndarray, size: int, probes: int = 0,
                    filters: Filters = NO_FILTERS) -> list[SearchHit]:
        """The first stage alone (no rescore): score = number of query tokens a pin holds."""
        tokens = self.family.query_tokens(self.served(vector).astype(np.float32), probes=probes)[0]
        return self.engine.first_stage(self.index, tokens, size, filters)

    def related(self, pin_id: str, k: int = queries.DEFAULT_K, window: int | None = None,
                probes: int | None = None, filters: Filters = NO_FILTERS) -> list[SearchHit]:
        """Pins nearest to a stored pin's own vector, the pin excluded; BM25 on its text when it has no vector."""
        from pintext.schemas import pin_text

        doc, vector = self.engine.get(self.index, pin_id)
        if vector is None:
            return self.bm25_search(pin_text(doc), k=k, exclude_ids=[pin_id], filters=filters)
        return self.search(vector, k=k, window=window, probes=probes, exclude_ids=[pin_id], filters=filters)

    def stored_pin(self, pin_id: str) -> dict:
        """A stored pin's fields (PinNotFoundError when the index does not hold it)."""
        return self.engine.get(self.index, pin_id)[0]

    def stored_vector(self, pin_id: str) -> np.ndarray | None:
        """The vector indexed for a pin, as float32 (an index of one-byte vectors gives its int8 values: the very
        vector its scores are computed from); None for a pin indexed without one (no known word)."""
        return self.engine.get(self.index, pin_id)[1]


def with_token_filter(filters: Filters, tokens: Sequence[str]) -> Filters:
    """`filters` plus "holds one of `tokens`" (a `terms` clause on the tokens field, AND-ed with the rest)."""
    return Filters(terms=(*filters.terms, (queries.TOKENS_FIELD, tuple(dict.fromkeys(tokens)))), raw=filters.raw)


def matched(hits: list[SearchHit], text: str, match: ExactMatch) -> list[SearchHit]:
    """Cosine-ranked hits re-scored by cosine + `match`'s exact-match signal for the query `text`, re-ranked (ties
    by id); each hit's `match` is the share of the query's words its text holds, its `cosine` stays."""
    from pintext.schemas import pin_text

    rows = match.rerank(((hit, hit.score, pin_text(hit.source)) for hit in hits), text)
    for hit, score, share in rows:
        hit.score, hit.match = float(score), share
    return rank(hits)
