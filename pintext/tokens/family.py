"""Token families: how a vector becomes the token strings the inverted index stores and the query looks up.

A family is a small, engine-free object (as elastiknn keeps its models apart from engine glue): it turns pin vectors
into tokens, a query vector into the tokens to look up (with `probes` extra buckets), and it round-trips through a
JSON dict whose `kind` names it. The index `_meta` stores that dict (under `tokens`; `lsh` before, still read:
`pintext.serving.meta`), so search rebuilds the exact family an index was written with. A new family is one class
plus one line in `FAMILIES` (and its tuner one line in `pintext.tokens.tune.TUNERS`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable

import numpy as np

from pintext.tokens.centroids import EXACT_MATCHES, KMEANS_KIND, CentroidTokens
from pintext.tokens.lsh import LSH_KIND, RandomHyperplaneLSH


@runtime_checkable
class TokenFamily(Protocol):
    """What serving and ingest need from a token family."""

    @property
    def dim(self) -> int:
        """The vector dimension it hashes."""
        ...

    def tokens(self, vectors: np.ndarray) -> list[list[str]]:
        """The tokens each pin vector (a row) is stored under."""
        ...

    def query_tokens(self, vectors: np.ndarray, probes: int = 0) -> list[list[str]]:
        """The tokens each query vector (a row) looks up; `probes` widens the lookup."""
        ...

    def to_dict(self) -> dict:
        """The config that rebuilds this family exactly; has `kind`."""
        ...


# kind -> a builder from the config dict. Configs without `kind` are random hyperplanes (the first format).
FAMILIES: dict[str, Callable[[dict], TokenFamily]] = {
    LSH_KIND: RandomHyperplaneLSH.from_dict,
    KMEANS_KIND: CentroidTokens.from_dict,
}


def family_from_dict(config: dict) -> TokenFamily:
    """The token family a config describes; a kind this build does not know is a ValueError naming the known ones."""
    kind = config.get("kind", LSH_KIND)
    builder = FAMILIES.get(kind)
    if builder is None:
        raise ValueError(f"unknown token family kind {kind!r} (this build knows {', '.join(sorted(FAMILIES))})")
    return builder(config)


def scores_every_match(family: TokenFamily) -> bool:
    """True when the engine should score every pin the query's tokens match exactly (no count, no window)."""
    return getattr(family, "scoring", None) == EXACT_MATCHES


def describe(family: TokenFamily) -> str:
    """A short human description: `64x8 bits random_hyperplane`, `1x1024 kmeans, spill 2`."""
    config = family.to_dict()
    if config.get("kind") == KMEANS_KIND:
        return f"{config['tables']}x{config['centroids']} kmeans, spill {config['spill']}"
    if "tables" in config and "bits" in config:
        return f"{config['tables']}x{config['bits']} bits {config.get('kind', LSH_KIND)}"
    return str(config.get("kind"))
