"""Fusing a lexical (BM25) ranking with PinText's: every candidate rescored by PinText (the default), reciprocal-rank
fusion, and a normalized score blend.

Pure functions over rankings; the search path, the retrieval evaluation and the trainer's choice of a fusion on the
validation split all call these, so what is tuned is exactly what is served. Ties: fused score descending, then id.

`MODEL/hybrid.json` (written by `pintext train`, read by `pintext search --hybrid`) records the chosen fusion:
`{"method": "union" | "rrf" | "blend", "rrf_k": 60, "weight": w}` where `weight` is PinText's share (BM25 gets 1 - w).

- `union`: the pins either side found, each scored by PinText's served score (exact cosine + the exact-match
  signal; the search asks the engine for the cosines of BM25's pins PinText's list lacks) times `weight`, plus
  BM25's score min-max normalized over its list times 1 - `weight`. PinText's score is not normalized: its cosine
  and word share already mean the same on every query, where a min-max would stretch a query whose hits are all
  weak.
- `rrf`: weighted reciprocal-rank fusion of the two rankings.
- `blend`: both lists min-max normalized, then the weighted sum (a pin missing from a list gets 0 from it).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

HYBRID_FILE = "hybrid.json"
FUSION_METHODS = ("union", "rrf", "blend")
DEFAULT_RRF_K = 60
# Without a MODEL/hybrid.json (or with too few validation queries to choose one): `union` with PinText's share 0.95,
# i.e. served score + 0.053 x BM25's normalized score over the pins either side found. Once PinText's ranking holds
# the exact-match signal, BM25 mostly re-finds PinText's top hits; what it adds is pins PinText's top 100 missed,
# and a nudge among near-ties. Measured offline (served = exact cosine + the model's exact-match signal; BM25 =
# bm25s with Lucene's k1/b over the pin text; NDCG@10 on held-out queries, Crowdflower and Best Buy 3 splits, Home
# Depot split 0), served alone / the 0.9 blend (the previous default) / union 0.95:
# Crowdflower 0.750 / 0.753 / 0.752, Best Buy 0.615 / 0.617 / 0.617, Home Depot 0.371 / 0.368 / 0.373 (Recall@100
# 0.774 / 0.790 / 0.789): the only one above served alone on all three. RRF with equal weights was below served on
# all three (0.741, 0.596, 0.355).
DEFAULT_FUSION_METHOD = "union"
DEFAULT_FUSION_WEIGHT = 0.95


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
        if self.method == "union":
            return union_rescore(bm25, pintext, self.weight)
        return min_max_blend([bm25, pintext], weights=[1.0 - self.weight, self.weight])

    @property
    def scores_every_candidate(self) -> bool:
        """Whether the fusion wants PinText's score of BM25's pins too (the search then asks the engine for them)."""
        return self.method == "union"

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
        """The model's chosen fusion, or the default (`union` at 0.95, see DEFAULT_FUSION_WEIGHT) when it has none."""
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
        for doc, normalized in _min_max(scores).items():
            fused[doc] = fused.get(doc, 0.0) + weight * normalized
    return _ordered(fused)


def _min_max(scores: Mapping[str, float]) -> dict[str, float]:
    """Scores mapped to [0, 1] over their own list (a list with one distinct score gives 1)."""
    if not scores:
        return {}
    low, high = min(scores.values()), max(scores.values())
    span = high - low
    return {doc: (score - low) / span if span > 0 else 1.0 for doc, score in scores.items()}


def union_rescore(bm25: Mapping[str, float], pintext: Mapping[str, float], weight: float) -> list[tuple[str, float]]:
    """Every pin of either list: `weight` x its PinText score (as given, not normalized; 0 when `pintext` lacks it:
    a pin indexed without a vector) + (1 - `weight`) x its BM25 score min-max normalized (0 when BM25 lacks it)."""
    lexical = _min_max(bm25)
    fused = {doc: weight * pintext.get(doc, 0.0) + (1.0 - weight) * lexical.get(doc, 0.0)
             for doc in dict.fromkeys([*pintext, *bm25])}
    return _ordered(fused)
