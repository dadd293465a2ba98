"""Fusing a lexical (BM25) ranking with PinText's: reciprocal-rank fusion and a normalized score blend.

Pure functions over rankings; the search path, the retrieval evaluation and the trainer's choice of a fusion on the
validation split all call these, so what is tuned is exactly what is served. Ties: fused score descending, then id.

`MODEL/hybrid.json` (written by `pintext train`, read by `pintext search --hybrid`) records the chosen fusion:
`{"method": "rrf" | "blend", "rrf_k": 60, "weight": w}` where `weight` is PinText's share (BM25 gets 1 - w).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

HYBRID_FILE = "hybrid.json"
FUSION_METHODS = ("rrf", "blend")
DEFAULT_RRF_K = 60
# Without a MODEL/hybrid.json (or with too few validation queries to choose one), PinText's side carries 0.9 of a
# min-max blend. Once PinText's ranking holds the exact-match signal, BM25 mostly re-finds its top hits. Measured
# offline (served = exact cosine + the model's exact-match signal; BM25 = OpenSearch's on Crowdflower, 3 splits, and
# Home Depot, split 0; bm25s on Best Buy, 3 splits), NDCG@10 of RRF with equal weights vs served alone vs a 0.9 blend:
# Crowdflower 0.741 / 0.750 / 0.751, Best Buy 0.596 / 0.615 / 0.617, Home Depot 0.355 / 0.371 / 0.369; validation
# chose the 0.9 blend wherever it had 100+ queries (Home Depot, Best Buy).
DEFAULT_FUSION_METHOD = "blend"
DEFAULT_FUSION_WEIGHT = 0.9


@dataclass(frozen=True)
class FusionConfig:
    """How a hybrid search combines BM25 with PinText."""

    method: str = DEFAULT_FUSION_METHOD
    rrf_k: int = DEFAULT_RRF_K
    weight: float = DEFAULT_FUSION_WEIGHT  # PinText's share; BM25 gets 1 - weight

    def __post_init__(self) -> None:
        if self.method not in FUSION_METHODS:
            raise ValueError(f"fusion method must be one of {FUSION_METHODS}, got {self.method!r}")
        if not 0.0 <= self.weight <= 1.0:
            raise ValueError(f"fusion weight must be in [0, 1], got {self.weight}")
        if self.rrf_k < 1:
            raise ValueError(f"rrf_k must be >= 1, got {self.rrf_k}")

    def fuse(self, bm25: Mapping[str, float], pintext: Mapping[str, float]) -> list[tuple[str, float]]:
        """Fuse two {id: score} result lists (each in any order; higher score = better)."""
        if self.method == "rrf":
            return reciprocal_rank_fusion([_ranked(bm25), _ranked(pintext)], k=self.rrf_k,
                                          weights=[1.0 - self.weight, self.weight])
        return min_max_blend([bm25, pintext], weights=[1.0 - self.weight, self.weight])

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping) -> "FusionConfig":
        return cls(method=str(data.get("method", DEFAULT_FUSION_METHOD)), rrf_k=int(data.get("rrf_k", DEFAULT_RRF_K)),
                   weight=float(data.get("weight", DEFAULT_FUSION_WEIGHT)))

    def save(self, model_dir: str | Path) -> None:
        from pintext.atomic import write_text

        write_text(Path(model_dir) / HYBRID_FILE, json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, model_dir: str | Path | None) -> "FusionConfig":
        """The model's chosen fusion, or the default (a 0.9 blend, see DEFAULT_FUSION_WEIGHT) when it has none."""
        path = Path(model_dir) / HYBRID_FILE if model_dir is not None else None
        if path is None or not path.is_file():
            return cls()
        return cls.from_dict(json.loads(path.read_text(encoding="utf-8")))


def _ranked(scores: Mapping[str, float]) -> list[str]:
    return [doc for doc, _ in sorted(scores.items(), key=lambda item: (-item[1], item[0]))]


def _ordered(fused: Mapping[str, float]) -> list[tuple[str, float]]:
    return sorted(fused.items(), key=lambda item: (-item[1], item[0]))


def reciprocal_rank_fusion(
    rankings: Sequence[Sequence[str]], k: int = DEFAULT_RRF_K, weights: Sequence[float] | None = None
) -> list[tuple[str, float]]:
    """Weighted RRF: score(d) = sum_i w_i / (k + rank_i(d)), ranks from 1; a list that lacks d adds nothing."""
    weights = list(weights) if weights is not None else [1.0] * len(rankings)
    if len(weights) != len(rankings):
        raise ValueError(f"{len(rankings)} rankings but {len(weights)} weights")
    fused: dict[str, float] = {}
    for ranking, weight in zip(rankings, weights):
        for position, doc in enumerate(ranking, start=1):
            fused[doc] = fused.get(doc, 0.0) + weight / (k + position)
    return _ordered(fused)


def min_max_blend(scored: Sequence[Mapping[str, float]], weights: Sequence[float]) -> list[tuple[str, float]]:
    """Each list's scores min-max normalized to [0, 1] (a list with one distinct score gives 1), then the weighted
    sum; a document missing from a list gets 0 from it."""
    if len(weights) != len(scored):
        raise ValueError(f"{len(scored)} score lists but {len(weights)} weights")
    fused: dict[str, float] = {}
    for scores, weight in zip(scored, weights):
        if not scores:
            continue
        low, high = min(scores.values()), max(scores.values())
        span = high - low
        for doc, score in scores.items():
            normalized = (score - low) / span if span > 0 else 1.0
            fused[doc] = fused.get(doc, 0.0) + weight * normalized
    return _ordered(fused)
