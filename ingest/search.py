"""Search, BM25, hybrid and related-pins against an OpenSearch pins index, and the `_meta` guard shared with ingest.

The request bodies come from `pintext.queries`; this module sends them, turns hits into `SearchHit`s (with the
knn_score mapped back to a cosine), and re-applies PinText's tie rule (score descending, then pin id) so that
OpenSearch and the local backend rank identically. opensearch-py is only touched through the client passed in.

The API the CLI and the retrieval evaluation call, per query:

- `OpenSearchSearcher.search(vector, k, window, probes)`: PinText served (LSH first stage, exact cosine rescore);
- `OpenSearchSearcher.bm25_search(text, k)`: BM25 alone;
- `OpenSearchSearcher.hybrid_search(text, vector, k, window, fusion, depth, probes)`: both, fused in the client by
  `pintext.fusion` (BM25 alone when `vector` is None or zero: a query with no known word).

`OpenSearchSearcher.for_index(client, index)` builds one from the index's own `_meta` (its LSH config and tuned
window/probes, `ServingDefaults`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pintext import __version__, queries
from pintext.fusion import FusionConfig
from pintext.lsh import RandomHyperplaneLSH
from pintext.mapping import TOKENS_FIELD, VECTOR_FIELD


class IndexMismatchError(RuntimeError):
    """An index built for another model or LSH config than the one given."""


class PinNotFoundError(LookupError):
    """`related` was asked about a pin id the index does not hold."""


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
    raw_score: float | None = None  # OpenSearch's own _score, before mapping back to a cosine
    bm25_score: float | None = None
    bm25_rank: int | None = None  # 1-based rank in the BM25 list (None: not in it)
    pintext_rank: int | None = None  # 1-based rank in the PinText list (None: not in it)

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
            "source": self.source,
        }


# ---- the model/index contract ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServingDefaults:
    """Query-time settings an index was tuned for (`_meta.serving`); what search uses unless told otherwise.

    `window`/`probes` keep recall@10 at the tuning target; `window_at_100`/`probes_at_100` (tuned indexes) keep
    recall@100 as close to it as the index's tables allow, for searches asking for more than 10 hits.
    """

    window: int = queries.DEFAULT_WINDOW
    probes: int = 0
    window_at_100: int | None = None
    probes_at_100: int | None = None

    def to_dict(self) -> dict:
        serving = {"window": int(self.window), "probes": int(self.probes)}
        if self.window_at_100 is not None:
            serving["window_at_100"] = int(self.window_at_100)
            serving["probes_at_100"] = int(self.probes_at_100 if self.probes_at_100 is not None else self.probes)
        return serving

    @classmethod
    def from_meta(cls, meta: dict) -> "ServingDefaults":
        serving = meta.get("serving") or {}
        deep_window, deep_probes = serving.get("window_at_100"), serving.get("probes_at_100")
        return cls(window=int(serving.get("window", queries.DEFAULT_WINDOW)), probes=int(serving.get("probes", 0)),
                   window_at_100=int(deep_window) if deep_window is not None else None,
                   probes_at_100=int(deep_probes) if deep_probes is not None else None)

    def probes_for(self, k: int, probes: int | None = None) -> int:
        """The probes to use: the ones asked for; else this index's for k hits."""
        from pintext.lsh_tune import TUNE_K

        if probes is not None:
            return int(probes)
        if k <= TUNE_K or self.probes_at_100 is None:
            return self.probes
        return self.probes_at_100

    def window_for(self, k: int, window: int | None = None) -> int:
        """The rescore window to use: the one asked for; else this index's for k hits: its recall@10 window up to
        10 hits, its recall@100 window up to 100 (grown in proportion beyond), never below k."""
        from pintext.lsh_tune import DEEP_K, MAX_RESCORE_WINDOW, TUNE_K

        if window is not None:
            return int(window)
        if k <= TUNE_K or self.window_at_100 is None:
            return max(self.window, int(k))
        deep = self.window_at_100 if k <= DEEP_K else min(MAX_RESCORE_WINDOW, self.window_at_100 * k // DEEP_K)
        return max(deep, int(k))


def index_meta(fingerprint: str, dim: int, lsh: RandomHyperplaneLSH, serving: ServingDefaults | None = None,
               tuning: dict | None = None) -> dict:
    """The `_meta` an index carries: which model and LSH config its vectors and tokens come from, the window and
    probes search uses by default, and how they were chosen (`tuning`)."""
    from pintext.pin_vectors import DEFAULT_PIN_VECTOR

    meta = {"model_fingerprint": fingerprint, "dim": int(dim), "lsh": lsh.to_dict(), "pintext_version": __version__,
            "serving": (serving or ServingDefaults()).to_dict(), "pin_vector": DEFAULT_PIN_VECTOR.to_dict()}
    if tuning is not None:
        meta["tuning"] = tuning
    return meta


def lsh_from_meta(index: str, meta: dict) -> RandomHyperplaneLSH:
    """The LSH config an index's tokens were made with."""
    if not meta.get("lsh"):
        raise IndexMismatchError(f"index {index!r} has no LSH config in its _meta: it was not created by pintext "
                                 f"(pintext index delete --index {index}, then index create or ingest)")
    return RandomHyperplaneLSH.from_dict(meta["lsh"])


def check_meta(index: str, found: dict, expected: dict, model_dir: str = "the model") -> None:
    """Refuse an index whose `_meta` names another model fingerprint, dimension or LSH config."""
    problems = []
    for key, label in (("model_fingerprint", "model fingerprint"), ("dim", "dimension"), ("lsh", "LSH config"),
                       ("pin_vector", "pin vector (how a pin's fields are embedded)")):
        if found.get(key) != expected.get(key):
            problems.append(f"{label}: index has {found.get(key)!r}, {model_dir} has {expected.get(key)!r}")
    if problems:
        raise IndexMismatchError(
            f"index {index!r} was built for another model ({'; '.join(problems)}). "
            f"Use the model it was built with, or re-create it: pintext index delete --index {index}, then ingest."
        )


def opensearch_meta(client: Any, index: str) -> dict:
    """The `_meta` of an OpenSearch index's mapping ({} when it has none)."""
    mapping = client.indices.get_mapping(index=index)
    return next(iter(mapping.values()))["mappings"].get("_meta", {})


# ---- scores ----------------------------------------------------------------------------------------------------


def knn_score_to_cosine(score: float) -> float:
    """The cosine behind a k-NN `knn_score` cosinesimil score, by the OpenSearch adapter's calibrated mapping
    (k-NN 2.19 scores `(1 + cosine) / 2`; tests check the result against numpy)."""
    from pintext.ingest.opensearch_client import cosine_from_knn_score

    return cosine_from_knn_score(score)


def rank(hits: list[SearchHit]) -> list[SearchHit]:
    """PinText's tie rule: score descending, then pin id ascending."""
    return sorted(hits, key=lambda hit: (-hit.score, hit.id))


# ---- OpenSearch ------------------------------------------------------------------------------------------------


class OpenSearchSearcher:
    """Searches one OpenSearch pins index with a given LSH hasher (see the module docstring for the API)."""

    def __init__(self, client: Any, index: str, lsh: RandomHyperplaneLSH,
                 serving: ServingDefaults | None = None) -> None:
        self.client = client
        self.index = index
        self.lsh = lsh
        self.serving = serving or ServingDefaults()

    @classmethod
    def for_index(cls, client: Any, index: str) -> "OpenSearchSearcher":
        """A searcher with the LSH config and default window/probes the index's `_meta` records."""
        meta = opensearch_meta(client, index)
        return cls(client, index, lsh_from_meta(index, meta), ServingDefaults.from_meta(meta))

    def check(self, expected_meta: dict, model_dir: str = "the model") -> None:
        """Refuse to search an index built for another model (see `check_meta`)."""
        check_meta(self.index, opensearch_meta(self.client, self.index), expected_meta, model_dir)

    def search(
        self,
        vector: np.ndarray,
        k: int = queries.DEFAULT_K,
        window: int | None = None,
        probes: int | None = None,
        exclude_ids: Sequence[str] = (),
    ) -> list[SearchHit]:
        """Top `k` pins for a query vector: LSH first stage, exact cosine rescore (window/probes default to the
        index's)."""
        tokens = self.lsh.query_tokens(vector, probes=self.serving.probes_for(k, probes))[0]
        body = queries.search_body(tokens, vector, k=k, window=self.serving.window_for(k, window),
                                   exclude_ids=exclude_ids)
        return self.run(body, tokens)

    def bm25_search(self, text: str, k: int = queries.DEFAULT_K, exclude_ids: Sequence[str] = ()) -> list[SearchHit]:
        """Top `k` pins by BM25 on the pin's text fields."""
        response = self.client.search(index=self.index, body=queries.bm25_body(text, k, exclude_ids))
        hits = rank([self._bm25_hit(raw) for raw in response["hits"]["hits"]])
        for position, hit in enumerate(hits, start=1):
            hit.bm25_rank = position
        return hits

    def hybrid_search(
        self,
        text: str,
        vector: np.ndarray | None,
        k: int = queries.DEFAULT_K,
        window: int | None = None,
        fusion: FusionConfig | None = None,
        depth: int = queries.DEFAULT_FUSION_DEPTH,
        probes: int | None = None,
    ) -> list[SearchHit]:
        """BM25 and PinText, each `depth` deep (at least k), fused by `fusion` (default RRF, equal weights).

        A query with no known word (`vector` None or zero) is BM25 alone.
        """
        size = queries.fusion_depth(k, depth)
        lexical = self.bm25_search(text, size)
        if vector is None or not np.any(vector):
            return lexical[:k]
        semantic = self.search(vector, k=size, window=max(self.serving.window_for(size, window), size),
                               probes=probes)
        return fuse_hits(lexical, semantic, fusion or FusionConfig(), k)

    def first_stage(self, vector: np.ndarray, size: int, probes: int = 0) -> list[SearchHit]:
        """The first stage alone (no rescore): score = number of query tokens a pin holds."""
        tokens = self.lsh.query_tokens(vector, probes=probes)[0]
        body = queries.search_body(tokens, None, k=size)
        response = self.client.search(index=self.index, body=body)
        return [self._hit(raw, tokens, rescored=False) for raw in response["hits"]["hits"]]

    def related(self, pin_id: str, k: int = queries.DEFAULT_K, window: int | None = None,
                probes: int | None = None) -> list[SearchHit]:
        """Pins nearest to a stored pin's own vector, the pin excluded; BM25 on its text when it has no vector."""
        doc = self.stored_pin(pin_id)
        if VECTOR_FIELD not in doc:
            return self.bm25_search(pin_text_of(doc), k=k, exclude_ids=[pin_id])
        vector = np.asarray(doc[VECTOR_FIELD], dtype=np.float32)
        return self.search(vector, k=k, window=window, probes=probes, exclude_ids=[pin_id])

    def stored_pin(self, pin_id: str) -> dict:
        """The stored document of a pin (its fields, tokens and, when it has one, its vector)."""
        from opensearchpy.exceptions import NotFoundError

        try:
            return self.client.get(index=self.index, id=pin_id)["_source"]
        except NotFoundError:
            raise PinNotFoundError(f"pin {pin_id!r} is not in index {self.index!r}") from None

    def stored_vector(self, pin_id: str) -> np.ndarray | None:
        """The vector indexed for a pin; None for a pin indexed without one (no known word)."""
        doc = self.stored_pin(pin_id)
        return np.asarray(doc[VECTOR_FIELD], dtype=np.float32) if VECTOR_FIELD in doc else None

    def run(self, body: dict, tokens: Sequence[str]) -> list[SearchHit]:
        """Send a search body built by `pintext.queries`; hits re-ranked by the tie rule."""
        response = self.client.search(index=self.index, body=body)
        hits = rank([self._hit(raw, tokens, rescored="rescore" in body) for raw in response["hits"]["hits"]])
        for position, hit in enumerate(hits, start=1):
            hit.pintext_rank = position
        return hits

    def _hit(self, raw: dict, tokens: Sequence[str], rescored: bool) -> SearchHit:
        source = dict(raw.get("_source") or {})
        pin_tokens = set(source.pop(TOKENS_FIELD, None) or [])
        matched = sorted(pin_tokens & set(tokens))
        score = float(raw["_score"])
        cosine = knn_score_to_cosine(score) if rescored else None
        return SearchHit(
            id=str(raw["_id"]),
            score=cosine if cosine is not None else score,
            cosine=cosine,
            first_stage_score=float(len(matched)) if rescored else score,
            source=source,
            matched_tokens=matched,
            raw_score=score,
        )

    @staticmethod
    def _bm25_hit(raw: dict) -> SearchHit:
        source = dict(raw.get("_source") or {})
        source.pop(TOKENS_FIELD, None)
        score = float(raw["_score"])
        return SearchHit(id=str(raw["_id"]), score=score, cosine=None, first_stage_score=None, source=source,
                         raw_score=score, bm25_score=score)


def pin_text_of(doc: dict) -> str:
    """The text a stored pin was embedded from (title, description, board, annotations)."""
    from pintext.schemas import pin_text

    return pin_text(doc)


def fuse_hits(bm25: list[SearchHit], pintext: list[SearchHit], fusion: FusionConfig, k: int) -> list[SearchHit]:
    """The top `k` of two ranked hit lists fused by `fusion`; each hit keeps both sides' scores and ranks."""
    by_id: dict[str, SearchHit] = {}
    for hit in pintext:
        by_id[hit.id] = SearchHit(hit.id, 0.0, hit.cosine, hit.first_stage_score, dict(hit.source),
                                  list(hit.matched_tokens), hit.raw_score, pintext_rank=hit.pintext_rank)
    for hit in bm25:
        fused = by_id.setdefault(hit.id, SearchHit(hit.id, 0.0, None, None, dict(hit.source)))
        fused.bm25_score, fused.bm25_rank = hit.bm25_score, hit.bm25_rank
    ranked = fusion.fuse({hit.id: hit.score for hit in bm25}, {hit.id: hit.score for hit in pintext})
    hits = []
    for pin_id, score in ranked[:k]:
        by_id[pin_id].score = float(score)
        hits.append(by_id[pin_id])
    return hits
