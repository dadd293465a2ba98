"""Sub-word vectors: a word's character n-grams, hashed into a small table, give every word a vector.

Why: a quarter of real shoppers' queries hold a word no catalogue title has ("toliet", "9inch", "rainspout",
"ilumination"); a word table ignores it (or gives it a vector that matches nothing but itself), and so does BM25.
Character n-grams ("<to", "tol", "oli", ...) are shared by a misspelling and the word it misspells, by a plural and
its singular, by "9inch" and "inch". PinText learns them beside the word table (fastText's idea, on a static mean):

    vector(known word)  = table[word] + idf(word) * weight * mean(ngrams[bucket(g)] for g in grams(word))
    vector(unseen word) =               scale         * mean(ngrams[bucket(g)] for g in grams(word))

The known words' sums are precomputed at export, so serving still looks up one vector per known word; only a word
the vocabulary lacks is composed from its n-grams (`scale` = weight x the IDF of a word seen once). The n-grams of
a word are those of "<" + word + ">" from `min_n` to `max_n` characters; each goes to bucket
crc32(utf-8 bytes) mod `buckets`, the same on every machine.

Pure: numpy and the standard library.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field

import numpy as np

KIND = "subwords"
SUBWORDS_FILE = "subwords.npy"
DEFAULT_MIN_N = 3
DEFAULT_MAX_N = 5
DEFAULT_BUCKETS = 1 << 16
DEFAULT_WEIGHT = 0.5


def ngram_buckets(word: str, min_n: int, max_n: int, buckets: int) -> list[int]:
    """The buckets of `word`'s character n-grams (with boundary marks), in order; never empty for a word."""
    marked = f"<{word}>"
    out = []
    for n in range(min_n, max_n + 1):
        for start in range(len(marked) - n + 1):
            out.append(zlib.crc32(marked[start:start + n].encode("utf-8")) % buckets)
    if not out:  # shorter than min_n with its marks: the whole marked word is its one n-gram
        out.append(zlib.crc32(marked.encode("utf-8")) % buckets)
    return out


@dataclass(frozen=True, eq=False)
class SubwordVectors:
    """The n-gram table and its settings; `vector(word, dim)` is an unseen word's vector."""

    table: np.ndarray = field(repr=False)
    scale: float
    min_n: int = DEFAULT_MIN_N
    max_n: int = DEFAULT_MAX_N
    kind: str = KIND

    @property
    def buckets(self) -> int:
        return int(self.table.shape[0])

    def to_dict(self) -> dict:
        """The settings (runtime.json's `oov`); the table itself is SUBWORDS_FILE beside it."""
        return {"kind": KIND, "min_n": int(self.min_n), "max_n": int(self.max_n), "buckets": self.buckets,
                "scale": float(self.scale)}

    @classmethod
    def from_dict(cls, data: dict, table: np.ndarray) -> "SubwordVectors":
        return cls(table=table, scale=float(data["scale"]), min_n=int(data["min_n"]), max_n=int(data["max_n"]))

    def buckets_of(self, word: str) -> list[int]:
        return ngram_buckets(word, self.min_n, self.max_n, self.buckets)

    def mean_ngrams(self, word: str) -> np.ndarray:
        rows = self.buckets_of(word)
        return np.add.reduce(np.asarray(self.table[rows], dtype=np.float32), axis=0) / np.float32(len(rows))

    def vector(self, word: str, dim: int) -> np.ndarray:
        return (self.mean_ngrams(word) * np.float32(self.scale)).astype(np.float32)
