"""Recall against exact cosine: the one definition the tuners, the benchmarks and the tests share.

- `exact_top_k`: the brute-force cosine top k (ties by the smaller row), the truth everything is measured against;
- `recall_at_k`: the overlap of the ids found with the exact top k (ids of any kind);
- tie-aware recall: a hit counts when its cosine is at least the exact k-th best (`at_least_kth_best`). Product
  corpora hold many identical titles; which of several equal pins an index returns does not matter to a user.
  `tie_aware_recall` scores returned hits; `kept_recall` scores a candidate set that is then rescored exactly (the
  served top k holds min(k, good pins kept) good pins, since a good pin outranks every other).

Pure numpy, no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# A hit counts as tied with the exact k-th best down to this far below it. The same cosine reaches us by different
# float32 paths (a matrix product here, a row dot product there, the engine's script on the node), which differ in
# the last bits: ~1e-7 for unit vectors of a few hundred dimensions. 1e-6 absorbs that and is still far below the
# gap between two different texts, so it only ever merges equal pins. The tuners have always used it; the filtered
# benchmark used 1e-5 before, which could count a pin 1e-5 worse than the 10th as a hit.
TIE_TOLERANCE = 1e-6


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to length 1 (zero rows stay zero)."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)


def exact_top_k(corpus_unit: np.ndarray, queries_unit: np.ndarray, k: int,
                exclude_rows: np.ndarray | Sequence[int] | None = None, max_cells: int = 1 << 25) -> np.ndarray:
    """Brute-force cosine top-k corpus rows per query [queries, k], best first; ties by smaller row.

    `exclude_rows[i]` (>= 0) removes that row from query i's results (a pin used as its own query).
    """
    results = np.empty((len(queries_unit), min(k, len(corpus_unit))), dtype=np.int64)
    chunk = max(1, max_cells // max(1, len(corpus_unit)))  # bounds the [chunk, corpus] score block in memory
    for start in range(0, len(queries_unit), chunk):
        scores = queries_unit[start:start + chunk] @ corpus_unit.T
        if exclude_rows is not None:
            for offset, row in enumerate(exclude_rows[start:start + chunk]):
                if row >= 0:
                    scores[offset, row] = -np.inf
        results[start:start + len(scores)] = _top_rows(scores, k)
    return results


def _top_rows(scores: np.ndarray, k: int) -> np.ndarray:
    """Columns of the k highest scores per row, best first, ties by the smaller column."""
    k = min(k, scores.shape[1])
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k] if k < scores.shape[1] else \
        np.tile(np.arange(scores.shape[1]), (len(scores), 1))
    picked = np.take_along_axis(scores, part, axis=1)
    order = np.lexsort((part, -picked), axis=1)
    return np.take_along_axis(part, order, axis=1)


def kth_best(corpus_unit: np.ndarray, queries_unit: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """The exact k-th best cosine per query ([queries]), `truth` being `exact_top_k`'s rows."""
    return np.einsum("qd,qd->q", queries_unit, corpus_unit[truth[:, -1]])


def at_least_kth_best(cosines: np.ndarray, kth: np.ndarray) -> np.ndarray:
    """Which cosines (a row per query) count as hits: at least the query's exact k-th best, within TIE_TOLERANCE."""
    return np.asarray(cosines) >= np.asarray(kth)[:, None] - TIE_TOLERANCE


def recall_at_k(found: Sequence[Sequence[int]], truth: np.ndarray, k: int) -> float:
    """Mean over queries of |found[:k] & truth[:k]| / k (ids of any hashable kind)."""
    if len(truth) == 0:
        return float("nan")
    shares = [len(set(list(row)[:k]) & set(list(true_row)[:k])) / k for row, true_row in zip(found, truth)]
    return float(np.mean(shares))


def tie_aware_recall(found_cosines: np.ndarray, kth: np.ndarray, k: int) -> np.ndarray:
    """Per query: share of the k slots holding a hit at least as close as the exact k-th best ([queries]).

    `found_cosines` is [queries, <= k] with -inf for empty slots (and for hits that do not count, e.g. outside a
    filter); `kth` the exact k-th best cosine per query.
    """
    return at_least_kth_best(found_cosines, kth).sum(axis=1) / k


def kept_recall(good_kept: np.ndarray, k: int) -> np.ndarray:
    """Per query: tie-aware recall@k of a candidate set rescored exactly, from how many good pins it kept."""
    return np.minimum(good_kept, k) / k
