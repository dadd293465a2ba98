"""The word-match signal: PinText's served score is a pin's cosine plus `weight` x the share of the query's
distinct words that the pin's text holds; with `nearest_words` (every model `pintext train` makes), a query word
the pin lacks counts as the cosine of its nearest word in the pin (0 when none points its way).

Why: a mean of word vectors places "3/4 in. plywood" near every plywood, "1/2 in." ones included, and a model
number it has seen a few times near other model numbers. Shoppers who type a size, a model number or a brand want
the pins that hold those very words first. The cosine still ranks among pins that match equally many words, and
still finds the pins that match none. On Home Depot (docs/results/real) this lifts PinText above BM25 on NDCG@10
(see docs/serving.md, "The word-match signal").

Why the nearest word: the mean of a text's word vectors blurs which word matched. Comparing each query word with each
pin word keeps that (late interaction, as ColBERT's MaxSim, on PinText's own word vectors): "dewalt drill" finds a
"DeWALT 20V driver" better than a drill of another brand. Held-out, end to end with default flags, k = 100 (3
splits each, docs/results/real): Home Depot NDCG@10 0.375 -> 0.400, Recall@100 0.780 -> 0.799; Crowdflower 0.750 ->
0.759, 0.893 -> 0.897; Best Buy 0.615 -> 0.614, 0.863 -> 0.864 (validation keeps the weight near 0 there).

The share is counted with PinText's own word split (`pintext.text.text_words`) over the text a pin is embedded from
(`pintext.schemas.pin_text`), in the client, on the hits the engine returns: so every engine, the local one
included, serves the same scores. The engine returns the top `match_depth(k)` by cosine from the window it
rescored anyway (`MATCH_DEPTH_PER_HIT` x k, at least `MATCH_DEPTH`); those are re-ranked and cut to k.

`MODEL/match.json` (written by `pintext train`, which chooses the weight on the search task's validation split from
`MATCH_GRID`, or keeps `DEFAULT_MATCH_WEIGHT`) records `{"weight": w, "nearest_words": true}`; a model without one
(made before the signal) serves plain cosine (weight 0). Pure: no engine (the nearest-word share takes the model's
word vectors as a function, `ExactMatch.bound`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

import numpy as np

from pintext.pin_vectors import unit_rows
from pintext.text import text_words

MATCH_FILE = "match.json"
# Hits re-ranked by the signal: taken from the top of the cosine ranking, so the signal never reaches a pin that
# the cosine ranks below this. At least `MATCH_DEPTH`: on Home Depot split 0 (k = 10) NDCG@10 was 0.3601 / 0.3654 /
# 0.3708 at depth 30 / 50 / 100.
MATCH_DEPTH = 100
# ... and this many per hit asked for, so that a long list (an evaluation's k = 100) gets pins the signal brings in,
# not only its cosine top k reordered. Depth 3k against k at k = 100 (held-out queries, exact ranking, 3 splits each,
# docs/serving.md "The word-match signal"): Recall@100 +0.010 on Home Depot, +0.031 on Crowdflower, -0.0006 on Best
# Buy; NDCG@10 +0.004, -0.001, 0. Every hit past k costs its fetch, so the top 10 stays at `MATCH_DEPTH`.
MATCH_DEPTH_PER_HIT = 3
# The depth never grows past this (or k, if larger): ~1,000 hits is already a large response.
MATCH_DEPTH_CAP = 1000
# Weights `pintext train` tries on validation (0: plain cosine), and the one it keeps when validation has too few
# queries to choose (`pintext.trainer.selection.choose_best`): at 1.0 a pin holding every query
# word outranks one holding none unless its cosine is 1.0 lower, i.e. practically always, and the cosine orders
# pins that hold equally many.
MATCH_GRID = (0.0, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0)
DEFAULT_MATCH_WEIGHT = 1.0
# Whether `pintext train` turns the nearest-word share on in the models it makes.
TRAINED_NEAREST_WORDS = True
# The key of MODEL/match.json that turns the nearest-word share on; a model without it (made before) keeps the
# share of exact words its weight was chosen with.
NEAREST_WORDS_KEY = "nearest_words"

# How far the nearest-word comparison reaches into long texts (a pasted description as a query, pins with long
# descriptions): query words x pin words x dim is its cost, so both sides are cut, and the pins' words go through
# in blocks that keep the similarity matrix a few MB. Titles and typed queries are far below these.
NEAREST_QUERY_WORDS = 128
NEAREST_PIN_WORDS = 256
NEAREST_BLOCK_WORDS = 8192
# Pin texts whose split into distinct words is remembered, and the longest one remembered (bounded memory).
PIN_WORDS_CACHE = 65_536
PIN_WORDS_CACHE_CHARS = 2_000

#: Normalized words -> their vectors [n, dim] as the model embeds each word alone (`Encoder.word_vectors`): zero
#: for a word it cannot embed.
WordVectors = Callable[[list[str]], np.ndarray]


def query_words(text: str) -> frozenset[str]:
    """The distinct words of a query, as PinText splits them."""
    return frozenset(text_words(text))


def word_share(wanted: frozenset[str], text: str) -> float:
    """The share of `wanted` words that `text` holds (0 when nothing is wanted)."""
    if not wanted:
        return 0.0
    return len(wanted.intersection(text_words(text))) / len(wanted)


def nearest_word_shares(query: str, pin_texts: Sequence[str], vectors: WordVectors) -> np.ndarray:
    """For each pin text, the mean over the query's distinct words of 1 when the pin holds the word, else the
    cosine of the word's nearest pin word (clipped at 0; 0 for a word or pin the model cannot embed).

    Bounded for long texts: the first `NEAREST_QUERY_WORDS` distinct query words are compared with each pin's first
    `NEAREST_PIN_WORDS` distinct words, in blocks of at most `NEAREST_BLOCK_WORDS` pin words; every query word still
    counts whole where a pin holds it."""
    wanted = list(dict.fromkeys(text_words(query)))
    if not wanted or not pin_texts:
        return np.zeros(len(pin_texts))
    pin_words = [distinct_words(text) for text in pin_texts]
    row_of = {word: row for row, word in enumerate(wanted)}
    best = np.zeros((len(wanted), len(pin_words)))
    for column, words in enumerate(pin_words):  # the very word counts whole, whatever its vector
        held = [row_of[word] for word in words if word in row_of]
        best[held, column] = 1.0
    compared = unit_rows(vectors(wanted[:NEAREST_QUERY_WORDS]))
    for begin, end in word_blocks([min(len(words), NEAREST_PIN_WORDS) for words in pin_words]):
        block = [words[:NEAREST_PIN_WORDS] for words in pin_words[begin:end]]
        nearest = _nearest_in_block(compared, block, vectors)
        np.maximum(best[:len(compared), begin:end], nearest, out=best[:len(compared), begin:end])
    return best.mean(axis=0)


def distinct_words(text: str) -> tuple[str, ...]:
    """A text's distinct words in order; a short one's remembered (the same pins come back query after query: 2.0
    -> 1.3 ms a query for the nearest-word share of 100 Home Depot hits)."""
    return _remembered_words(text) if len(text) <= PIN_WORDS_CACHE_CHARS else _words_of(text)


def _words_of(text: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(text_words(text)))


_remembered_words = lru_cache(maxsize=PIN_WORDS_CACHE)(_words_of)


def word_blocks(lengths: Sequence[int]) -> list[tuple[int, int]]:
    """Consecutive (begin, end) runs of pins holding at most `NEAREST_BLOCK_WORDS` words each (one pin at least)."""
    blocks, begin, total = [], 0, 0
    for index, length in enumerate(lengths):
        if total + length > NEAREST_BLOCK_WORDS and index > begin:
            blocks.append((begin, index))
            begin, total = index, 0
        total += length
    blocks.append((begin, len(lengths)))
    return blocks


def _nearest_in_block(compared: np.ndarray, block: Sequence[Sequence[str]], vectors: WordVectors) -> np.ndarray:
    """[compared query words, pins of the block]: each word's best cosine with a pin's words, clipped at 0."""
    column: dict[str, int] = {}
    flat = np.fromiter((column.setdefault(word, len(column)) for words in block for word in words), dtype=np.int64)
    nearest = np.zeros((len(compared), len(block)))
    if not flat.size:
        return nearest
    similarity = np.clip(compared @ unit_rows(vectors(list(column))).T, 0.0, 1.0)
    lengths = np.fromiter(map(len, block), dtype=np.int64, count=len(block))
    filled = lengths > 0
    starts = np.concatenate([[0], np.cumsum(lengths[filled])[:-1]])
    nearest[:, filled] = np.maximum.reduceat(similarity[:, flat], starts, axis=1)
    return nearest


def match_depth(k: int, per_hit: int = MATCH_DEPTH_PER_HIT) -> int:
    """Hits the engine returns for a search with the signal on: `per_hit` x k, at least `MATCH_DEPTH`, at most
    `MATCH_DEPTH_CAP`, never fewer than k."""
    return max(int(k), min(MATCH_DEPTH_CAP, max(MATCH_DEPTH, per_hit * int(k))))


@dataclass(frozen=True)
class ExactMatch:
    """How much a full word match adds to a cosine (0: the signal is off), and whether a word the pin lacks counts
    by its nearest pin word (that needs the model's word vectors: `bound`)."""

    weight: float = 0.0
    nearest_words: bool = False
    vectors: WordVectors | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not 0.0 <= self.weight <= 10.0:
            raise ValueError(f"exact-match weight must be in [0, 10], got {self.weight}")

    @property
    def on(self) -> bool:
        return self.weight > 0.0

    def bound(self, vectors: WordVectors) -> "ExactMatch":
        """The same signal, with the model's word vectors to find nearest words by."""
        return replace(self, vectors=vectors)

    def with_weight(self, weight: float) -> "ExactMatch":
        return replace(self, weight=float(weight))

    def score(self, cosine: float, share: float) -> float:
        return cosine + self.weight * share

    def shares(self, text: str, pin_texts: Sequence[str]) -> list[float]:
        """The share of the query `text`'s words each pin text matches (nearest words, when on)."""
        if not self.nearest_words:
            wanted = query_words(text)
            return [word_share(wanted, pin) for pin in pin_texts]
        if self.vectors is None:
            raise ValueError("the nearest-word share needs the model's word vectors: use ExactMatch.bound(...)")
        return [float(share) for share in nearest_word_shares(text, pin_texts, self.vectors)]

    def rerank(self, scored: Iterable[tuple[Any, float, str]], text: str) -> list[tuple[Any, float, float]]:
        """(key, cosine, pin text) -> (key, served score, word share), best first (ties: input order)."""
        rows = list(scored)
        shares = self.shares(text, [pin for _, _, pin in rows])
        served = [(key, self.score(cosine, share), share) for (key, cosine, _), share in zip(rows, shares)]
        return sorted(served, key=lambda row: -row[1])

    def to_dict(self) -> dict:
        return {"weight": self.weight, **({NEAREST_WORDS_KEY: True} if self.nearest_words else {})}

    def save(self, model_dir: str | Path) -> None:
        from pintext.atomic import write_text

        write_text(Path(model_dir) / MATCH_FILE, json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, model_dir: str | Path | None) -> "ExactMatch":
        """The model's chosen weight; plain cosine (weight 0) for a model without MODEL/match.json."""
        path = Path(model_dir) / MATCH_FILE if model_dir is not None else None
        if path is None or not path.is_file():
            return cls()
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise ValueError("expected a JSON object")
        nearest = data.get(NEAREST_WORDS_KEY, False)
        if not isinstance(nearest, bool):
            raise ValueError(f"{NEAREST_WORDS_KEY} must be true or false")
        return cls(weight=float(data.get("weight", 0.0)), nearest_words=nearest)


def rerank_ids(ranked: Sequence[tuple[str, float]], texts: dict[str, str], query: str,
               match: ExactMatch) -> list[tuple[str, float]]:
    """An (id, cosine) ranking re-ranked by `match` with each id's pin text; ties by id."""
    return rerank_shares(ranked, match.shares(query, [texts.get(pin_id, "") for pin_id, _ in ranked]), match)


def rerank_shares(ranked: Sequence[tuple[str, float]], shares: Sequence[float],
                  match: ExactMatch) -> list[tuple[str, float]]:
    """An (id, cosine) ranking re-ranked by `match`'s weight with each pin's share, known already (a weight grid
    scores the same shares); ties by id."""
    served = ((pin_id, match.score(cosine, share)) for (pin_id, cosine), share in zip(ranked, shares))
    return sorted(served, key=lambda row: (-row[1], row[0]))
