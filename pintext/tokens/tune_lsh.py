"""Tune LSH serving settings (tables, bits, probes, rescore window) on a corpus for a target recall vs exact cosine.

The product runs this when it creates an index for a model and a corpus (`pintext index create --pins`, or
`pintext ingest` when the index is new; `pintext.tokens.tune` holds the choice of family), `pintext lsh tune`
prints the sweep, and the benchmarks reuse it.

It replays PinText's search exactly as `pintext.queries` describes (and as the OpenSearch index and the local
backend do), in memory: the first stage counts the query's (multi-probe) buckets each pin shares, using
`RandomHyperplaneLSH` itself for pin and query buckets; the `window` best candidates (tables matched descending,
then corpus row, i.e. ingest order) are rescored by exact cosine; the top `k` is compared with the exact top `k`
over the whole corpus. Every (tables, bits) of the grid hashes the corpus once; all queries, probes and windows
of it are then answered with array operations, so a grid over tens of thousands of pins takes seconds.

Recall is tie-aware (`pintext.tokens.recall`): a hit counts when its cosine is at least the exact k-th best.

Pure numpy, no I/O. The cost model behind "cheapest" is documented at `pintext.tokens.tuning.cost_of`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from pintext.tokens.lsh import DEFAULT_SEED, LSH_KIND, RandomHyperplaneLSH
from pintext.tokens.recall import at_least_kth_best, exact_top_k, kept_recall, kth_best, unit_rows
from pintext.tokens.tuning import (
    DEEP_K,
    DEFAULT_TARGET_RECALL,
    DEFAULT_TUNE_QUERIES,
    MAX_RESCORE_WINDOW,
    MAX_TUNE_CORPUS,
    TUNE_K,
    TuneResult,
    cheapest_reaching,
    cost_of,
    reaches,
    sample_for_tuning,
    standard_error,
)

# OpenSearch refuses a bool query of more than this many clauses (indices.query.bool.max_clause_count), and a
# query carries tables x (1 + probes) term clauses: such settings are not offered.
MAX_QUERY_CLAUSES = 1024
# Bounds the [queries, corpus] work arrays of one step of the sweep (elements).
_CHUNK_CELLS = 1 << 21


@dataclass(frozen=True)
class TuneGrid:
    """The settings a tuning run tries."""

    tables: tuple[int, ...] = (16, 32, 64, 128, 256)
    bits: tuple[int, ...] | None = None  # None: centred on the corpus size, see `bits_for_corpus`
    probes: tuple[int, ...] = (0, 1, 2, 3)
    windows: tuple[int, ...] = (100, 200, 500, 1000, 2000, 4000, 8000)


DEFAULT_GRID = TuneGrid()
# A table's bucket holds corpus / 2**bits pins on average; the cheapest settings measured here (10k-100k pins)
# kept about this many pins per bucket, so the bits grid is centred there, two bits either side.
PINS_PER_BUCKET = 40


def bits_for_corpus(pins: int) -> tuple[int, ...]:
    """The bits per table worth trying for a corpus of `pins`: log2(pins / PINS_PER_BUCKET) and +-2."""
    centre = int(round(np.log2(max(pins, 1) / PINS_PER_BUCKET)))
    centre = min(14, max(6, centre))
    return (centre - 2, centre, centre + 2)


# ---- the in-memory index ---------------------------------------------------------------------------------------


class BucketIndex:
    """The inverted index of one LSH config: per table, the corpus rows sorted by bucket."""

    def __init__(self, lsh: RandomHyperplaneLSH, corpus: np.ndarray, chunk: int = 4096) -> None:
        self.lsh = lsh
        # Hashed in chunks: the margins of many pins x 256 tables x 12 bits would not fit at once.
        signatures = np.concatenate([lsh.signatures(corpus[start:start + chunk])
                                     for start in range(0, len(corpus), chunk)])  # [n, tables]
        by_table = np.ascontiguousarray(signatures.T)  # [tables, n]: each table's buckets contiguous
        order = np.argsort(by_table, axis=1, kind="stable")  # rows by bucket, per table (ties: row order)
        self._order_by_table = order.astype(np.int32)
        self._buckets_by_table = np.take_along_axis(by_table, order, axis=1)
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
        counts, postings = self.match_matrix(buckets[None])
        candidates = np.flatnonzero(counts[0])
        return candidates, counts[0, candidates], int(postings[0])

    def match_matrix(self, buckets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Tables matched by every corpus row for each query [queries, corpus], and postings visited [queries].

        `buckets` is [queries, tables, probes]. A query's probe buckets of one table are distinct, and a pin
        holds one bucket per table, so a pin matches at most one of them: the count is "tables matched".
        """
        queries, tables, per_table = buckets.shape
        keys: list[np.ndarray] = []
        pending = 0
        flat = np.zeros(queries * self.size, dtype=np.int64)
        postings = np.zeros(queries, dtype=np.int64)
        query_of_slot = np.repeat(np.arange(queries, dtype=np.int64), per_table)
        for table in range(tables):
            column = self._buckets_by_table[table]
            wanted = buckets[:, table, :].reshape(-1)
            lows = np.searchsorted(column, wanted, "left")
            lengths = np.searchsorted(column, wanted, "right") - lows
            total = int(lengths.sum())
            if total == 0:
                continue
            # Every posting of every wanted bucket, as positions in the sorted column (ranges concatenated).
            ends = np.cumsum(lengths)
            positions = np.arange(total) + np.repeat(lows - (ends - lengths), lengths)
            owners = np.repeat(query_of_slot, lengths)
            keys.append(owners * self.size + self._order_by_table[table][positions])
            postings += np.bincount(owners, minlength=queries)
            pending += total
            if pending > _CHUNK_CELLS:  # fold the postings gathered so far, keeping memory bounded
                flat += np.bincount(np.concatenate(keys), minlength=queries * self.size)
                keys, pending = [], 0
        if keys:
            flat += np.bincount(np.concatenate(keys), minlength=queries * self.size)
        return flat.reshape(queries, self.size), postings


# ---- grid points and cost --------------------------------------------------------------------------------------


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
    recall_se: float = 0.0  # standard error of `recall` over the queries

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

    def tuning_meta(self) -> dict:
        return {"clauses": self.clauses, "rescored_share": round(self.rescored_share, 4)}


def allowed(tables: int, bits: int, probes: int) -> bool:
    """Settings OpenSearch accepts: probes within the bits, clauses under the bool clause limit."""
    return probes <= bits and tables * (1 + probes) <= MAX_QUERY_CLAUSES


# ---- the sweep ---------------------------------------------------------------------------------------------------


def sweep_config(corpus_unit: np.ndarray, queries_unit: np.ndarray, truth: np.ndarray, tables: int, bits: int,
                 probes_grid: Iterable[int], windows: Iterable[int], k: int = TUNE_K, seed: int = DEFAULT_SEED,
                 exclude_rows: np.ndarray | Sequence[int] | None = None,
                 below_cost: float = float("inf")) -> list[GridPoint]:
    """Every (probes, window) point of one (tables, bits) config: recall@k and work per query.

    `truth` is the exact top-k rows per query ([queries, k], from `exact_top_k`); recall is tie-aware.
    Probes whose term clauses alone cost `below_cost` or more are skipped (they cannot be the cheapest).
    """
    lsh = RandomHyperplaneLSH(dim=corpus_unit.shape[1], tables=tables, bits=bits, seed=seed)
    windows = sorted({min(int(w), len(corpus_unit)) for w in windows if w >= k})
    probes_wanted = sorted(p for p in set(probes_grid) if allowed(tables, bits, p)
                           and cost_of(0, 0, tables * (1 + p)) < below_cost)
    if not windows or not probes_wanted:
        return []
    index = BucketIndex(lsh, corpus_unit)
    kth = kth_best(corpus_unit, queries_unit, truth)
    excluded = np.full(len(queries_unit), -1) if exclude_rows is None else np.asarray(exclude_rows)
    buckets = index.query_buckets(queries_unit, max(probes_wanted))
    tally = {(probes, window): _Tally() for probes in probes_wanted for window in windows}
    step = max(1, _CHUNK_CELLS // len(corpus_unit))
    for start in range(0, len(queries_unit), step):
        stop = min(start + step, len(queries_unit))
        own = excluded[start:stop]
        good = _good_pins(queries_unit[start:stop] @ corpus_unit.T, kth[start:stop], own)
        counts = np.zeros((stop - start, len(corpus_unit)), dtype=np.int64)
        postings = np.zeros(stop - start, dtype=np.int64)
        for probes in range(max(probes_wanted) + 1):
            # Probe p adds one bucket per table to probe p - 1's query: add only its matches.
            more, visited = index.match_matrix(buckets[start:stop, :, probes:probes + 1])
            counts += more
            postings += visited
            if probes not in probes_wanted:
                continue
            counts[np.flatnonzero(own >= 0), own[own >= 0]] = 0
            good_query, good_count, good_rank, matched = _first_stage_ranks(counts, good, windows, tables)
            for window in windows:
                kept = np.bincount(good_query, weights=(good_count > 0) & (good_rank < window),
                                   minlength=stop - start)
                tally[probes, window].add(kept_recall(kept, k), np.minimum(matched, window), matched, postings)
    return [tally[probes, window].point(tables, bits, probes, window, len(corpus_unit))
            for probes in probes_wanted for window in windows]


def _good_pins(cosines: np.ndarray, kth: np.ndarray, own: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(query, row) of every pin at least as close as the exact k-th best: the hits tie-aware recall counts.

    The served top k holds min(k, good pins in the window) of them (`kept_recall`), so recall only needs to know
    which good pins the window keeps.
    """
    cosines[np.flatnonzero(own >= 0), own[own >= 0]] = -np.inf
    queries, rows = np.nonzero(at_least_kth_best(cosines, kth))
    return queries, rows


def _first_stage_ranks(counts: np.ndarray, good: tuple[np.ndarray, np.ndarray], windows: Sequence[int],
                       tables: int) -> tuple[np.ndarray, ...]:
    """For each good pin: its query, tables matched and 0-based first-stage rank (tables matched descending,
    then row ascending) = pins matching more tables + pins matching as many on earlier rows; and the number of
    candidates (pins matching any table) per query.

    The second term is only counted where some window's edge falls inside the pin's tie group; elsewhere the
    group's first rank decides the same for every window.
    """
    queries, size = counts.shape
    good_query, good_row = good
    histogram = np.stack([np.bincount(row, minlength=tables + 1) for row in counts])  # [queries, tables + 1]
    above = size - np.cumsum(histogram, axis=1)  # above[q, c]: pins matching more than c tables
    good_count = counts[good_query, good_row]
    first = above[good_query, good_count]
    group = histogram[good_query, good_count]
    edges = np.asarray(sorted(windows))
    # A window w splits the tie group when first < w < first + group.
    straddled = np.searchsorted(edges, first, "right") < np.searchsorted(edges, first + group, "left")
    ranks = first.copy()
    split = np.flatnonzero(straddled)
    step = max(1, _CHUNK_CELLS // size)
    columns = np.arange(size)
    for start in range(0, len(split), step):
        part = split[start:start + step]
        earlier = columns[None, :] < good_row[part, None]
        ranks[part] += ((counts[good_query[part]] == good_count[part, None]) & earlier).sum(axis=1)
    return good_query, good_count, ranks, size - histogram[:, 0]


@dataclass
class _Tally:
    """Per-query figures of one grid point, gathered chunk by chunk."""

    recall: list = field(default_factory=list)
    rescored: list = field(default_factory=list)
    candidates: list = field(default_factory=list)
    postings: list = field(default_factory=list)

    def add(self, recall: np.ndarray, rescored: np.ndarray, candidates: np.ndarray, postings: np.ndarray) -> None:
        self.recall.append(recall)
        self.rescored.append(rescored)
        self.candidates.append(candidates)
        self.postings.append(postings.copy())

    def point(self, tables: int, bits: int, probes: int, window: int, corpus: int) -> GridPoint:
        mean = {name: float(np.mean(np.concatenate(getattr(self, name))))
                for name in ("recall", "rescored", "candidates", "postings")}
        return GridPoint(tables, bits, probes, window, mean["recall"], mean["candidates"], mean["rescored"],
                         mean["postings"], corpus, cost_of(mean["postings"], mean["rescored"], tables * (1 + probes)),
                         recall_se=standard_error(np.concatenate(self.recall)))


def choose(points: Sequence[GridPoint], target_recall: float) -> tuple[GridPoint | None, bool]:
    """The cheapest point reaching `target_recall` (ties: higher recall, then fewer tables); else the best recall.

    Returns (point, reached).
    """
    return cheapest_reaching(points, target_recall, lambda p: (p.tables, p.bits, p.probes, p.window))


def tune(corpus: np.ndarray, queries: np.ndarray, tables_grid: Iterable[int], bits_grid: Iterable[int],
         probes_grid: Iterable[int], windows: Iterable[int], target_recall: float = DEFAULT_TARGET_RECALL,
         k: int = TUNE_K, seed: int = DEFAULT_SEED, exclude_rows: np.ndarray | Sequence[int] | None = None,
         on_config: Callable[[int, int], None] | None = None,
         prune: bool = False) -> tuple[GridPoint | None, bool, list[GridPoint]]:
    """Sweep the grid and choose; returns (choice, reached, points swept).

    `prune`: skip settings whose term clauses alone cost more than the cheapest point found so far that
    reaches the target (the choice is the same, the sweep shorter; the points list is then partial).
    """
    corpus_unit, queries_unit = unit_rows(corpus), unit_rows(queries)
    truth = exact_top_k(corpus_unit, queries_unit, k, exclude_rows)
    points: list[GridPoint] = []
    probes_grid, windows = list(probes_grid), list(windows)
    for tables in sorted(tables_grid):
        for bits in sorted(bits_grid):
            if prune and _out_of_reach(points, tables, target_recall):
                continue  # fewer bits of these tables already fell short: more bits only lower recall
            best, reached = choose(points, target_recall)
            bound = best.cost if prune and reached and best is not None else float("inf")
            points += sweep_config(corpus_unit, queries_unit, truth, tables, bits, probes_grid, windows, k, seed,
                                   exclude_rows, below_cost=bound)
            if on_config:
                on_config(tables, bits)
    choice, reached = choose(points, target_recall)
    return choice, reached, points


def _out_of_reach(points: Sequence[GridPoint], tables: int, target_recall: float) -> bool:
    """True when the last bits swept for `tables` reached no point of the target."""
    swept = [point for point in points if point.tables == tables]
    if not swept:
        return False
    last_bits = max(point.bits for point in swept)
    return not any(reaches(point, target_recall) for point in swept if point.bits == last_bits)


@dataclass
class GridSweep:
    """A whole grid swept (`pintext lsh tune`): the choice, whether it reaches the target, every point, and on what."""

    choice: GridPoint | None
    reached: bool
    points: list[GridPoint]
    corpus: int  # pins with a known word
    queries: int


def sweep_grid(corpus: np.ndarray, queries: np.ndarray | None, grid: TuneGrid, target_recall: float,
               sample: int, seed: int = DEFAULT_SEED,
               on_config: Callable[[int, int], None] | None = None) -> GridSweep:
    """Every setting of `grid` on the pins with a known word (no sampling of the corpus, no pruning), tuned on
    `sample` of the given query vectors, else on `sample` pins each excluded from its own results."""
    rng = np.random.default_rng(seed)
    corpus = corpus[np.linalg.norm(corpus, axis=1) > 0]
    exclude = None
    if queries is not None:
        queries = queries[np.linalg.norm(queries, axis=1) > 0]
        queries = queries[rng.permutation(len(queries))[:sample]]
    else:
        exclude = rng.permutation(len(corpus))[:sample]
        queries = corpus[exclude]
    if len(queries) == 0 or len(corpus) < TUNE_K:
        raise ValueError(f"need at least one query with a known word and {TUNE_K} pins with a known word")
    choice, reached, points = tune(corpus, queries, grid.tables, grid.bits or (), grid.probes, grid.windows,
                                   target_recall, seed=seed, exclude_rows=exclude, on_config=on_config)
    return GridSweep(choice, reached, points, len(corpus), len(queries))


# ---- the product's entry point -----------------------------------------------------------------------------------


def tune_for_corpus(corpus: np.ndarray, target_recall: float = DEFAULT_TARGET_RECALL,
                    queries: np.ndarray | None = None, sample: int = DEFAULT_TUNE_QUERIES,
                    grid: TuneGrid = DEFAULT_GRID, fixed: tuple[int, int] | None = None, seed: int = DEFAULT_SEED,
                    max_corpus: int = MAX_TUNE_CORPUS, total_pins: int | None = None,
                    on_config: Callable[[int, int], None] | None = None,
                    ) -> TuneResult[RandomHyperplaneLSH, GridPoint]:
    """Pick the cheapest (tables, bits, probes, window) whose recall@10 vs exact cosine reaches `target_recall`.

    `corpus`: the pins' vectors (zero rows, pins with no known word, are left out: they get no tokens).
    `queries`: query vectors to tune on; default `sample` pins of the corpus, each excluded from its own results.
    `fixed`: (tables, bits) to keep (a user's explicit MODEL/lsh.json): then only probes and window are tuned.
    Above `max_corpus` pins a uniform sample is swept and the window scaled by corpus / sample (see
    MAX_TUNE_CORPUS). `total_pins`: the corpus size when `corpus` is already a uniform sample of it.
    """
    started = time.perf_counter()
    rng = np.random.default_rng(seed)
    corpus = np.asarray(corpus, dtype=np.float32)
    tuning_set = sample_for_tuning(corpus, queries, sample, max_corpus, rng, total_pins)
    corpus, swept, with_vectors = tuning_set.corpus, tuning_set.swept, tuning_set.with_vectors
    query_vectors, exclude, source = tuning_set.queries, tuning_set.exclude, tuning_set.query_source
    tables_grid, bits_grid = ((fixed[0],), (fixed[1],)) if fixed else \
        (grid.tables, grid.bits or bits_for_corpus(len(swept)))
    windows = [window for window in grid.windows if window <= MAX_RESCORE_WINDOW]
    choice, reached, points = tune(swept, query_vectors, tables_grid, bits_grid, grid.probes, windows,
                                   target_recall, seed=seed, exclude_rows=exclude, on_config=on_config,
                                   prune=True)
    if choice is None:
        raise ValueError("no LSH setting of the grid is allowed (clause limit); widen the grid")
    scale = max(with_vectors, len(swept)) / len(swept)
    window = min(MAX_RESCORE_WINDOW, max(TUNE_K, int(round(choice.window * scale))))
    deep = _deep_setting(swept, query_vectors, exclude, choice, target_recall, seed, windows, grid.probes)
    deep_window = None if deep is None else \
        min(MAX_RESCORE_WINDOW, max(window, DEEP_K, int(round(deep.window * scale))))
    return TuneResult(kind=LSH_KIND,
                      family=RandomHyperplaneLSH(dim=corpus.shape[1], tables=choice.tables, bits=choice.bits,
                                                 seed=seed),
                      window=window, probes=choice.probes, recall=choice.recall, recall_se=choice.recall_se,
                      reached=reached,
                      target_recall=target_recall, queries=len(query_vectors), query_source=source,
                      corpus=max(with_vectors, len(swept)), tuned_on=len(swept),
                      seconds=time.perf_counter() - started,
                      choice=choice, points=points, deep_window=deep_window,
                      deep_probes=None if deep is None else deep.probes,
                      deep_recall=None if deep is None else deep.recall)


def _deep_setting(corpus: np.ndarray, queries: np.ndarray, exclude: np.ndarray | None, choice: GridPoint,
                  target_recall: float, seed: int, windows: Sequence[int],
                  probes_grid: Sequence[int]) -> GridPoint | None:
    """For the chosen tables and bits: the cheapest probes (at least the chosen) and window whose recall@DEEP_K
    reaches the target, else the best recall. None on a corpus too small for a top DEEP_K."""
    if len(corpus) <= DEEP_K + 1:
        return None
    corpus_unit, queries_unit = unit_rows(corpus), unit_rows(queries)
    truth = exact_top_k(corpus_unit, queries_unit, DEEP_K, exclude)
    deep = sorted({w for w in windows if w > DEEP_K} | {min(len(corpus), MAX_RESCORE_WINDOW)})
    probes = [p for p in probes_grid if p >= choice.probes]
    points = sweep_config(corpus_unit, queries_unit, truth, choice.tables, choice.bits, probes, deep, k=DEEP_K,
                          seed=seed, exclude_rows=exclude)
    return choose(points, target_recall)[0]


class LSHTuner:
    """Random hyperplanes behind the `Tuner` protocol (`pintext.tokens.tune.TUNERS`)."""

    kind = LSH_KIND
    fit_sample = MAX_TUNE_CORPUS  # pins sampled from the corpus file to tune on

    def tune(self, corpus: np.ndarray, target_recall: float = DEFAULT_TARGET_RECALL,
             queries: np.ndarray | None = None, seed: int = DEFAULT_SEED,
             total_pins: int | None = None) -> TuneResult[RandomHyperplaneLSH, GridPoint]:
        return tune_for_corpus(corpus, target_recall, queries=queries, seed=seed, total_pins=total_pins)

    def describe(self, result: TuneResult[RandomHyperplaneLSH, GridPoint]) -> str:
        family = result.family
        return (f"{family.tables} tables x {family.bits} bits, probes {result.probes}, window {result.window} "
                f"({result.choice.clauses} term clauses a query)")
