"""An in-memory replica of PinText's LSH search, for sweeping (tables, bits, probes, window) grids fast.

It scores exactly as `pintext.queries` describes (and as the local backend and the OpenSearch index do):
the first stage counts the query's tokens each pin holds, using `RandomHyperplaneLSH` itself for pin and query
(multi-probe) buckets; the `window` best candidates are rescored by exact cosine; the top `k` is returned.
Ties at the window's edge are broken by corpus row (ingest order), which is what a single-segment OpenSearch
index does too. Re-ingesting 100k pins into OpenSearch for each (tables, bits) would take minutes each, so the
grid is swept here and the chosen points are confirmed on the real node (bench/retrieval.py).

Pure numpy (no I/O). The cost model behind "fastest" is documented at `cost_of`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from pintext.lsh import RandomHyperplaneLSH

# The cost model, in "postings visited" units, calibrated on the real node (bench/retrieval.py refits it on every
# run and the report shows the fit). On the 2.19 node with 100k pins, fits of the server `took` gave one term
# clause ~110 postings on 8-14-bit tokens and ~500 on 16-bit ones (a terms-dictionary seek and an iterator per
# clause; many tables of many bits make hundreds of rare terms), and one pin rescored by the knn_score script
# ~10 postings. A first model that counted postings only picked 256 tables x 16 bits, which the node ran 5x
# slower than 64 x 8 at the same recall.
CLAUSE_COST = 200.0
RESCORE_COST = 10.0
# OpenSearch refuses a bool query of more than this many clauses (indices.query.bool.max_clause_count), and a
# query carries tables x (1 + probes) term clauses: such settings are not offered.
MAX_QUERY_CLAUSES = 1024


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to length 1 (zero rows stay zero)."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)


def exact_top_k(corpus_unit: np.ndarray, queries_unit: np.ndarray, k: int,
                exclude_rows: Sequence[int] | None = None, max_cells: int = 1 << 25) -> np.ndarray:
    """Brute-force cosine top-k corpus rows per query [queries, k], best first; ties by smaller row.

    `exclude_rows[i]` (>= 0) removes that row from query i's results (a pin used as its own query).
    """
    results = np.empty((len(queries_unit), k), dtype=np.int64)
    chunk = max(1, max_cells // max(1, len(corpus_unit)))  # bounds the [chunk, corpus] score block in memory
    for start in range(0, len(queries_unit), chunk):
        scores = queries_unit[start:start + chunk] @ corpus_unit.T
        if exclude_rows is not None:
            for offset, row in enumerate(exclude_rows[start:start + chunk]):
                if row >= 0:
                    scores[offset, row] = -np.inf
        part = np.argpartition(-scores, k - 1, axis=1)[:, :k] if k < scores.shape[1] else \
            np.tile(np.arange(scores.shape[1]), (len(scores), 1))
        for offset, candidates in enumerate(part):
            order = np.lexsort((candidates, -scores[offset, candidates]))
            results[start + offset] = candidates[order]
    return results


def recall_at_k(found: Sequence[Sequence[int]], truth: np.ndarray, k: int) -> float:
    """Mean over queries of |found[:k] & truth[:k]| / k (ids of any hashable kind)."""
    if len(truth) == 0:
        return float("nan")
    shares = [len(set(list(row)[:k]) & set(list(true_row)[:k])) / k for row, true_row in zip(found, truth)]
    return float(np.mean(shares))


class BucketIndex:
    """The inverted index of one LSH config: per table, the corpus rows sorted by bucket."""

    def __init__(self, lsh: RandomHyperplaneLSH, corpus: np.ndarray, chunk: int = 1 << 15) -> None:
        self.lsh = lsh
        # Hashed in chunks: the margins of 1M pins x 128 tables x 12 bits would need 6 GB at once.
        signatures = np.concatenate([lsh.signatures(corpus[start:start + chunk])
                                     for start in range(0, len(corpus), chunk)])  # [n, tables]
        self.order = np.argsort(signatures, axis=0, kind="stable").astype(np.int32)  # rows by bucket, per table
        self.sorted_buckets = np.take_along_axis(signatures, self.order, axis=0)
        self.size = len(corpus)

    def query_buckets(self, queries: np.ndarray, probes: int) -> np.ndarray:
        """[queries, tables, 1 + probes] buckets, the query's own first (same rule as `query_tokens`)."""
        margins = self.lsh.margins(queries)
        weights = np.left_shift(np.uint64(1), np.arange(self.lsh.bits, dtype=np.uint64))
        own = ((margins > 0).astype(np.uint64) * weights).sum(axis=-1, dtype=np.uint64)
        if probes == 0:
            return own[:, :, None]
        closest = np.argsort(np.abs(margins), axis=2, kind="stable")[:, :, :probes]
        probed = np.bitwise_xor(own[:, :, None], np.left_shift(np.uint64(1), closest.astype(np.uint64)))
        return np.concatenate([own[:, :, None], probed], axis=2)

    def match_counts(self, buckets: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
        """(candidate rows, tables matched per candidate, postings visited) for one query's buckets."""
        pieces = []
        for table in range(buckets.shape[0]):
            column = self.sorted_buckets[:, table]
            wanted = np.unique(buckets[table])
            lows, highs = np.searchsorted(column, wanted, "left"), np.searchsorted(column, wanted, "right")
            pieces += [self.order[low:high, table] for low, high in zip(lows, highs) if high > low]
        if not pieces:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), 0
        rows = np.concatenate(pieces)
        counts = np.bincount(rows, minlength=self.size)
        candidates = np.flatnonzero(counts)
        return candidates, counts[candidates], len(rows)


@dataclass
class GridPoint:
    """One (tables, bits, probes, window) setting and what it gave on the sample."""

    tables: int
    bits: int
    probes: int
    window: int
    recall: float
    candidates: float  # mean pins sharing at least one table with the query
    rescored: float  # mean pins rescored = min(window, candidates)
    postings: float  # mean postings visited by the first stage
    corpus: int
    cost: float = 0.0

    @property
    def candidate_share(self) -> float:
        return self.candidates / self.corpus

    @property
    def rescored_share(self) -> float:
        return self.rescored / self.corpus

    @property
    def clauses(self) -> int:
        """Term clauses of the first-stage query: one per table and probe."""
        return self.tables * (1 + self.probes)

    def to_json(self) -> dict:
        return {**asdict(self), "candidate_share": self.candidate_share, "rescored_share": self.rescored_share,
                "clauses": self.clauses}


def cost_of(postings: float, rescored: float, clauses: int) -> float:
    """Relative work of one search: postings visited + weighted rescored pins + weighted term clauses."""
    return float(postings) + RESCORE_COST * float(rescored) + CLAUSE_COST * float(clauses)


def sweep_config(corpus_unit: np.ndarray, queries_unit: np.ndarray, truth: np.ndarray, tables: int, bits: int,
                 probes_grid: Iterable[int], windows: Iterable[int], k: int = 10, seed: int = 0,
                 exclude_rows: Sequence[int] | None = None) -> list[GridPoint]:
    """Every (probes, window) point of one (tables, bits) config: recall@k and work per query."""
    lsh = RandomHyperplaneLSH(dim=corpus_unit.shape[1], tables=tables, bits=bits, seed=seed)
    index = BucketIndex(lsh, corpus_unit)
    windows = sorted(set(int(w) for w in windows if w >= k))
    points = []
    for probes in probes_grid:
        if probes > bits or tables * (1 + probes) > MAX_QUERY_CLAUSES:
            continue
        all_buckets = index.query_buckets(queries_unit, probes)
        found = {window: [] for window in windows}
        candidates, postings = [], []
        for query_row, buckets in enumerate(all_buckets):
            rows, counts, visited = index.match_counts(buckets)
            if exclude_rows is not None and exclude_rows[query_row] >= 0:
                keep = rows != exclude_rows[query_row]
                rows, counts = rows[keep], counts[keep]
            candidates.append(len(rows))
            postings.append(visited)
            # First stage order: tables matched descending, then corpus row ascending.
            first_stage = rows[np.lexsort((rows, -counts))]
            cosines = corpus_unit[first_stage[:max(windows)]] @ queries_unit[query_row]
            for window in windows:
                head, scores = first_stage[:window], cosines[:window]
                best = np.lexsort((head, -scores))[:k]
                found[window].append(head[best])
        for window in windows:
            rescored = float(np.mean(np.minimum(candidates, window)))
            clauses = tables * (1 + probes)
            points.append(GridPoint(tables, bits, probes, window, recall_at_k(found[window], truth, k),
                                    float(np.mean(candidates)), rescored, float(np.mean(postings)),
                                    len(corpus_unit), cost_of(float(np.mean(postings)), rescored, clauses)))
    return points


def fit_cost_model(clauses: Sequence[float], postings: Sequence[float], rescored: Sequence[float],
                   latency_ms: Sequence[float]) -> dict[str, float]:
    """Non-negative least squares of latency = base + a x clauses + b x postings + c x rescored (ms each).

    Also gives the clause and rescore weights in postings, comparable with CLAUSE_COST and RESCORE_COST
    (NaN when the fit gives postings no weight).
    """
    from scipy.optimize import nnls

    design = np.column_stack([np.ones(len(clauses)), clauses, postings, rescored]).astype(np.float64)
    target = np.asarray(latency_ms, dtype=np.float64)
    (base, per_clause, per_posting, per_rescored), residual = nnls(design, target)
    fitted = design @ np.array([base, per_clause, per_posting, per_rescored])
    spread = float(np.sum((target - target.mean()) ** 2))
    return {
        "base_ms": base, "ms_per_clause": per_clause, "ms_per_1000_postings": per_posting * 1000,
        "ms_per_1000_rescored": per_rescored * 1000,
        "clause_in_postings": per_clause / per_posting if per_posting > 0 else float("nan"),
        "rescored_in_postings": per_rescored / per_posting if per_posting > 0 else float("nan"),
        "r2": 1.0 - float(np.sum((target - fitted) ** 2)) / spread if spread > 0 else float("nan"),
        "points": len(target),
    }


def choose(points: Sequence[GridPoint], target_recall: float) -> tuple[GridPoint | None, bool]:
    """The cheapest point reaching `target_recall` (ties: higher recall, then fewer tables); else the best recall.

    Returns (point, reached).
    """
    if not points:
        return None, False
    reaching = [point for point in points if point.recall >= target_recall]
    if reaching:
        return min(reaching, key=lambda p: (p.cost, -p.recall, p.tables, p.bits, p.probes, p.window)), True
    return max(points, key=lambda p: (p.recall, -p.cost)), False


def tune(corpus: np.ndarray, queries: np.ndarray, tables_grid: Iterable[int], bits_grid: Iterable[int],
         probes_grid: Iterable[int], windows: Iterable[int], target_recall: float = 0.95, k: int = 10,
         seed: int = 0, exclude_rows: Sequence[int] | None = None,
         on_config: "callable | None" = None) -> tuple[GridPoint | None, bool, list[GridPoint]]:
    """Sweep the whole grid and choose; returns (choice, reached, all points)."""
    corpus_unit, queries_unit = unit_rows(corpus), unit_rows(queries)
    truth = exact_top_k(corpus_unit, queries_unit, k, exclude_rows)
    points: list[GridPoint] = []
    probes_grid, windows = list(probes_grid), list(windows)
    for tables in tables_grid:
        for bits in bits_grid:
            points += sweep_config(corpus_unit, queries_unit, truth, tables, bits, probes_grid, windows, k, seed,
                                   exclude_rows)
            if on_config:
                on_config(tables, bits)
    choice, reached = choose(points, target_recall)
    return choice, reached, points
