"""Locality-sensitive hashing of embeddings into "embedding tokens" an inverted index can match.

Random-hyperplane LSH (Charikar 2002): each of `tables` tables draws `bits` Gaussian hyperplanes; a vector's
bucket in a table is the sign pattern of its projections. Two vectors at angle theta land in the same bucket of
one table with probability (1 - theta/pi) ** bits, so the number of tables two vectors share grows with their
cosine. Each bucket becomes one position-prefixed keyword token (`t07_3f`: table 7, bucket 0x3f), the
"[00]1001 [01]1100" terms of Pinterest's LSH talks: a term query on the token matches exactly the pins that share
that table's bucket.

Pure numpy, no I/O: the config round-trips through `to_dict()/from_dict()`; callers store it as `MODEL/lsh.json`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

LSH_KIND = "random_hyperplane"
DEFAULT_TABLES = 64
DEFAULT_BITS = 8
DEFAULT_SEED = 0
MAX_BITS = 62  # bucket ids are packed into int64-safe unsigned integers
TOKEN_TABLE_LIMIT = 1 << 20  # precompute every token string when tables * 2**bits stays under this


def as_matrix(vectors: np.ndarray, dim: int) -> np.ndarray:
    """`vectors` as a float32 [n, dim] matrix (one vector becomes one row); a ValueError for another shape."""
    matrix = np.asarray(vectors, dtype=np.float32)
    if matrix.ndim == 1:
        matrix = matrix[None, :]
    if matrix.ndim != 2 or matrix.shape[1] != dim:
        raise ValueError(f"expected vectors of shape [n, {dim}], got {matrix.shape}")
    return matrix


@dataclass(frozen=True)
class RandomHyperplaneLSH:
    """`tables` x `bits` random hyperplanes over `dim`-dimensional vectors, reproducible from `seed`."""

    dim: int
    tables: int = DEFAULT_TABLES
    bits: int = DEFAULT_BITS
    seed: int = DEFAULT_SEED
    _planes: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.dim <= 0 or self.tables <= 0:
            raise ValueError(f"LSH needs dim > 0 and tables > 0, got dim={self.dim}, tables={self.tables}")
        if not 1 <= self.bits <= MAX_BITS:
            raise ValueError(f"LSH bits per table must be in 1..{MAX_BITS}, got {self.bits}")
        rng = np.random.default_rng(self.seed)
        planes = rng.standard_normal((self.dim, self.tables * self.bits)).astype(np.float32)
        object.__setattr__(self, "_planes", planes)

    # ---- hashing -------------------------------------------------------------------------------------------

    def margins(self, vectors: np.ndarray) -> np.ndarray:
        """Signed projections on every hyperplane, shaped [n, tables, bits]; the sign is the bit."""
        matrix = self._as_matrix(vectors)
        return (matrix @ self._planes).reshape(len(matrix), self.tables, self.bits)

    def signatures(self, vectors: np.ndarray) -> np.ndarray:
        """Bucket id of every vector in every table, uint64 [n, tables]."""
        return self._pack(self.margins(vectors) > 0)

    def tokens(self, vectors: np.ndarray) -> list[list[str]]:
        """One token per table for every vector: what a pin stores in its `lsh_tokens` keyword field."""
        return self._format_rows(self.signatures(vectors))

    def query_tokens(self, vectors: np.ndarray, probes: int = 0) -> list[list[str]]:
        """Multi-probe tokens: per table the vector's own bucket, then `probes` neighbouring buckets.

        `probes` counts extra buckets PER TABLE (so a query carries `tables * (1 + probes)` tokens). Probe j of a
        table flips the single bit whose projection has the j-th smallest |margin|: the hyperplanes the query
        lies closest to are the ones a near neighbour most likely falls on the other side of (Lv et al. 2007,
        query-directed probing, restricted to one-bit flips). A pin holds one bucket per table, so it matches at
        most one of a table's probe tokens, and the first-stage score stays "number of tables matched".
        """
        if not 0 <= probes <= self.bits:
            raise ValueError(f"probes per table must be in 0..{self.bits} (bits per table), got {probes}")
        margins = self.margins(vectors)
        own_bits = margins > 0
        own = self._pack(own_bits)  # [n, tables]
        if probes == 0:
            return self._format_rows(own)
        closest = np.argsort(np.abs(margins), axis=2, kind="stable")[:, :, :probes]  # [n, tables, probes]
        flips = np.left_shift(np.uint64(1), closest.astype(np.uint64))
        probed = np.bitwise_xor(own[:, :, None], flips)  # [n, tables, probes]
        buckets = np.concatenate([own[:, :, None], probed], axis=2)  # own bucket first
        return self._format_rows(buckets)

    # ---- config --------------------------------------------------------------------------------------------

    def to_dict(self) -> dict:
        """The config that rebuilds this exact hasher; stored as `MODEL/lsh.json` and in the index `_meta`."""
        return {"kind": LSH_KIND, "dim": self.dim, "tables": self.tables, "bits": self.bits, "seed": self.seed}

    @classmethod
    def from_dict(cls, config: dict) -> "RandomHyperplaneLSH":
        """Rebuild from `to_dict()` output; refuses a config written for another kind of LSH."""
        kind = config.get("kind", LSH_KIND)
        if kind != LSH_KIND:
            raise ValueError(f"unsupported LSH kind {kind!r} (this build knows {LSH_KIND!r})")
        missing = [key for key in ("dim", "tables", "bits", "seed") if key not in config]
        if missing:
            raise ValueError(f"LSH config lacks {', '.join(missing)}: {config}")
        return cls(dim=int(config["dim"]), tables=int(config["tables"]), bits=int(config["bits"]),
                   seed=int(config["seed"]))

    # ---- helpers -------------------------------------------------------------------------------------------

    def _as_matrix(self, vectors: np.ndarray) -> np.ndarray:
        return as_matrix(vectors, self.dim)

    def _pack(self, bits: np.ndarray) -> np.ndarray:
        """Bit b of a table's bucket id is the sign of hyperplane b (little-endian bit packing into uint64)."""
        packed = np.packbits(bits, axis=-1, bitorder="little")  # [..., ceil(bits / 8)] bytes, low bits first
        padded = np.zeros(bits.shape[:-1] + (8,), dtype=np.uint8)
        padded[..., :packed.shape[-1]] = packed
        return padded.view("<u8")[..., 0].astype(np.uint64)

    @property
    def _table_width(self) -> int:
        return max(2, len(str(self.tables - 1)))

    @property
    def _hex_width(self) -> int:
        return math.ceil(self.bits / 4)

    def _token(self, table: int, bucket: int) -> str:
        return f"t{table:0{self._table_width}d}_{bucket:0{self._hex_width}x}"

    def _token_strings(self, buckets: np.ndarray) -> np.ndarray:
        """Token strings for bucket ids shaped [n, tables, ...] (same shape, dtype object)."""
        table_index = np.arange(self.tables).reshape((1, self.tables) + (1,) * (buckets.ndim - 2))
        if self.tables << self.bits <= TOKEN_TABLE_LIMIT:
            # Formatting is the slow part of hashing: look every possible token up instead (64 x 8 bits: 16k).
            return self._all_tokens[np.broadcast_to(table_index, buckets.shape), buckets.astype(np.int64)]
        token = np.vectorize(self._token, otypes=[object])
        return token(np.broadcast_to(table_index, buckets.shape), buckets.astype(np.int64))

    @property
    def _all_tokens(self) -> np.ndarray:
        cached = self.__dict__.get("_all_tokens_cache")
        if cached is None:
            cached = np.array([[self._token(table, bucket) for bucket in range(1 << self.bits)]
                               for table in range(self.tables)], dtype=object)
            object.__setattr__(self, "_all_tokens_cache", cached)
        return cached

    def _format_rows(self, buckets: np.ndarray) -> list[list[str]]:
        """[n, tables] or [n, tables, probes] bucket ids -> one flat token list per vector, table-major."""
        return self._token_strings(buckets).reshape(len(buckets), -1).tolist()
