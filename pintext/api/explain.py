"""Which query words and which pin words carry a hit's score.

A text's vector is a weighted sum of its words' vectors (`Encoder.word_terms`), and a pin's vector is a weighted
sum of its title's and its other text's unit means (`pintext.pin_vectors`): both linear in the word vectors. So the
cosine of a query q and a pin p splits exactly into one term per query word, a_i (v_i . p) / (|q| |p|), and
equally into one term per pin word, c_j (q . u_j) / (|q| |p|); each list sums to the cosine. A ranking built on a
transformer has no such split: here every hit says which words put it there.

The split is of the float vectors' cosine. An index of one-byte vectors (`pintext.quantize`) serves the cosine of
their int8 values, which rounding makes no longer linear in the words: the hit's served cosine is then within the
quantization of the explained one (a few 1e-4 at 16-d, less at 256-d).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from pintext.pin_vectors import DEFAULT_PIN_VECTOR, PinVectorConfig, pin_parts

SHOWN_WORDS = 5  # words per side that `pintext search --explain` shows


@dataclass(frozen=True)
class Explanation:
    """A hit's cosine split into its query words' and its pin words' shares, largest first (each list sums to
    `cosine`); `match` is the share of query words the pin's text matches (the word-match signal: a word it lacks
    counts by its nearest pin word with `nearest_words`), when on."""

    id: str
    cosine: float
    query_words: list[tuple[str, float]]
    pin_words: list[tuple[str, float]]
    match: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "cosine": self.cosine, "match": self.match,
                "query_words": [[word, share] for word, share in self.query_words],
                "pin_words": [[word, share] for word, share in self.pin_words]}


def pin_terms(encoder: Any, pin: Mapping[str, Any],
              config: PinVectorConfig = DEFAULT_PIN_VECTOR) -> list[tuple[str, float, np.ndarray]]:
    """(word, coefficient, vector) whose weighted sum is the pin's vector as ingest computes it."""
    terms = []
    for part, share in zip(pin_parts(pin), (config.title_weight, 1.0 - config.title_weight)):
        words = encoder.word_terms(part)
        if not words:
            continue
        norm = float(np.linalg.norm(np.sum([weight * vector for _, weight, vector in words], axis=0)))
        if norm > 0:
            terms += [(word, share * weight / norm, vector) for word, weight, vector in words]
    return terms


def explain_hit(hit_id: str, query_terms: list[tuple[str, float, np.ndarray]],
                pin: list[tuple[str, float, np.ndarray]], match: float | None = None) -> Explanation:
    """Split the cosine of the query (as its terms) and the pin (as its terms) per word on each side."""
    if not query_terms or not pin:
        return Explanation(hit_id, 0.0, [], [], match)
    q = np.sum([weight * vector for _, weight, vector in query_terms], axis=0)
    p = np.sum([weight * vector for _, weight, vector in pin], axis=0)
    scale = float(np.linalg.norm(q) * np.linalg.norm(p))
    if scale == 0.0:
        return Explanation(hit_id, 0.0, [], [], match)
    query_side = _merged((word, weight * float(vector @ p) / scale) for word, weight, vector in query_terms)
    pin_side = _merged((word, weight * float(q @ vector) / scale) for word, weight, vector in pin)
    return Explanation(hit_id, float(q @ p) / scale, query_side, pin_side, match)


def _merged(terms: Any) -> list[tuple[str, float]]:
    """A word that occurs twice counts once, with both terms summed; largest share first."""
    total: dict[str, float] = defaultdict(float)
    for word, share in terms:
        total[word] += share
    return sorted(total.items(), key=lambda item: (-abs(item[1]), item[0]))


def explain_hits(encoder: Any, query: str | None, hits: list[Any], query_pin: Mapping[str, Any] | None = None,
                 ) -> list[Explanation]:
    """One explanation per hit: of a text query, or (`query_pin`: related pins) of the pin asked about."""
    query_terms = encoder.word_terms(query) if query is not None else pin_terms(encoder, query_pin or {})
    return [explain_hit(hit.id, query_terms, pin_terms(encoder, hit.source), hit.match) for hit in hits]
