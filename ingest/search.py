"""Search and related-pins against an OpenSearch pins index, and the `_meta` guard shared with ingest.

The request bodies come from `pintext.queries`; this module sends them, turns hits into `SearchHit`s (with the
knn_score mapped back to a cosine), and re-applies PinText's tie rule (score descending, then pin id) so that
OpenSearch and the local backend rank identically. opensearch-py is only touched through the client passed in.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pintext import __version__, queries
from pintext.lsh import RandomHyperplaneLSH
from pintext.mapping import TOKENS_FIELD, VECTOR_FIELD


class IndexMismatchError(RuntimeError):
    """An index built for another model or LSH config than the one given."""


class PinNotFoundError(LookupError):
    """`related` was asked about a pin id the index does not hold."""


@dataclass
class SearchHit:
    """One ranked pin. `score` is what the ranking used: the cosine after rescoring."""

    id: str
    score: float
    cosine: float | None
    first_stage_score: float | None
    source: dict[str, Any] = field(default_factory=dict)
    matched_tokens: list[str] = field(default_factory=list)
    raw_score: float | None = None  # OpenSearch's own _score, before mapping back to a cosine

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
            "source": self.source,
        }


# ---- the model/index contract ----------------------------------------------------------------------------------


def index_meta(fingerprint: str, dim: int, lsh: RandomHyperplaneLSH) -> dict:
    """The `_meta` an index carries: which model and LSH config its vectors and tokens come from."""
    return {"model_fingerprint": fingerprint, "dim": int(dim), "lsh": lsh.to_dict(), "pintext_version": __version__}


def check_meta(index: str, found: dict, expected: dict, model_dir: str = "the model") -> None:
    """Refuse an index whose `_meta` names another model fingerprint, dimension or LSH config."""
    problems = []
    for key, label in (("model_fingerprint", "model fingerprint"), ("dim", "dimension"), ("lsh", "LSH config")):
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
    """Searches one OpenSearch pins index with a given LSH hasher."""

    def __init__(self, client: Any, index: str, lsh: RandomHyperplaneLSH) -> None:
        self.client = client
        self.index = index
        self.lsh = lsh

    def check(self, expected_meta: dict, model_dir: str = "the model") -> None:
        """Refuse to search an index built for another model (see `check_meta`)."""
        check_meta(self.index, opensearch_meta(self.client, self.index), expected_meta, model_dir)

    def search(
        self,
        vector: np.ndarray,
        k: int = queries.DEFAULT_K,
        window: int = queries.DEFAULT_WINDOW,
        probes: int = 0,
        hybrid_text: str | None = None,
        exclude_ids: Sequence[str] = (),
    ) -> list[SearchHit]:
        """Top `k` pins for a query vector: LSH first stage (+ BM25 if hybrid), exact cosine rescore."""
        tokens = self.lsh.query_tokens(vector, probes=probes)[0]
        body = queries.search_body(tokens, vector, k=k, window=window, hybrid_text=hybrid_text,
                                   exclude_ids=exclude_ids)
        return self.run(body, tokens)

    def first_stage(self, vector: np.ndarray, size: int, probes: int = 0) -> list[SearchHit]:
        """The first stage alone (no rescore): score = number of query tokens a pin holds."""
        tokens = self.lsh.query_tokens(vector, probes=probes)[0]
        body = queries.search_body(tokens, None, k=size)
        response = self.client.search(index=self.index, body=body)
        return [self._hit(raw, tokens, rescored=False) for raw in response["hits"]["hits"]]

    def related(self, pin_id: str, k: int = queries.DEFAULT_K, window: int = queries.DEFAULT_WINDOW,
                probes: int = 0) -> list[SearchHit]:
        """Pins nearest to a stored pin's own vector, the pin excluded."""
        return self.search(self.stored_vector(pin_id), k=k, window=window, probes=probes, exclude_ids=[pin_id])

    def stored_vector(self, pin_id: str) -> np.ndarray:
        """The vector indexed for a pin."""
        from opensearchpy.exceptions import NotFoundError

        try:
            doc = self.client.get(index=self.index, id=pin_id, _source_includes=[VECTOR_FIELD])
        except NotFoundError:
            raise PinNotFoundError(f"pin {pin_id!r} is not in index {self.index!r}") from None
        return np.asarray(doc["_source"][VECTOR_FIELD], dtype=np.float32)

    def run(self, body: dict, tokens: Sequence[str]) -> list[SearchHit]:
        """Send a search body built by `pintext.queries`; hits re-ranked by the tie rule."""
        response = self.client.search(index=self.index, body=body)
        return rank([self._hit(raw, tokens, rescored="rescore" in body) for raw in response["hits"]["hits"]])

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
