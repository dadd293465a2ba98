"""Filtered search benchmark: a filter keeping 1% of the pins, PinText tokens vs Lucene's filtered HNSW.

Filters are where tokens in an inverted index should beat a graph index: a filtered HNSW search must walk past
the many nodes that fail the filter (or fall back to exact search). On one managed OpenSearch 3.5.0 node, over the
same pins, queries and filter, this measures:

1. PinText served by the product code (`Searcher` over `OpenSearchEngine`, the index made as `pintext index create
   --pins` makes it: LSH tuned on the corpus), the filter passed as `Filters` (a `bool.filter` in the first stage);
2. Lucene HNSW (`knn_vector`, engine lucene, m 16, ef_construction 100, `index.knn: true`): the `knn` query with its
   `filter` (Lucene's efficient filtering) at several ef_search, and post-filtering (a `knn` query inside a `bool`
   whose `filter` drops the non-matching hits afterwards) for contrast;
3. the exact `knn_score` script over the filter (`script_score`): the brute-force baseline every ratio is against.

Each is measured with the filter keeping 1% of the pins, one keeping 10%, and no filter. Recall@10 is against the
exact top 10 over the filtered pins (numpy, the same unit vectors the indexes hold), tie-aware; "pass" is the share
of returned hits that pass the filter (must be 1.0). Latency is client-side wall time per request, sequential,
after a warm-up. A second check: PinText's filtered ids against the local backend (`LocalEngine`, the oracle) over
the filtered pins, with a window that holds every filtered candidate.

Corpus ("real-ish"): a PinText model trained on the Crowdflower product-search pairs (`../shared/data/real/`, never
committed: only aggregate figures are reported), and pins recombined from the real product texts: each pin is one
real product title plus two words of another real title, with a third product's description, so there are many
distinct pins in real vocabulary. Queries are the real Crowdflower search queries. The board is assigned at random,
independently of the text (the hard case: the filtered neighbours are not the query's nearest neighbours).

    python -m pintext.bench.filtered [--pins 100000] [--queries 200] [--out docs/results/filtered] [--model DIR]
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from pintext.bench.harness import (
    RELEVANT_ENV,
    fmt,
    load_average,
    machine_info,
    markdown_table,
    package_versions,
    percentiles,
    ratio,
    stopwatch,
)
from pintext.quantize import FLOAT32, INT8, check_vector_type, served_vectors

K = 10
RARE_BOARD = "one-percent"  # exactly 1% of the pins
COMMON_BOARD = "ten-percent"  # exactly 10% of the pins
OTHER_BOARDS = 89  # the other 89% spread over this many boards (about 1% each)
FILTERS = {"1%": RARE_BOARD, "10%": COMMON_BOARD, "none": None}
PINTEXT_INDEX = "bench-filtered-pintext"
HNSW_INDEX = "bench-filtered-hnsw"
HNSW_M, HNSW_EF_CONSTRUCTION = 16, 100
EF_SEARCH_GRID = (10, 40, 100, 400)
POST_FILTER_K = (100, 1000)
EXTRA_PROBES = 2  # a second PinText row: the tuned probes + this (more tokens per table, more candidates)
WARMUP = 10
BATCH = 1000
HNSW_BATCH = 500  # docs per bulk request of the HNSW index
DEFAULT_SHARED = Path("../shared/data/real")
DEFAULT_WORK = Path("out/filtered")
DEFAULT_OUT = Path("docs/results/filtered")
REPO = Path(__file__).resolve().parents[1]


# ---- corpus (pure) ---------------------------------------------------------------------------------------------


def assign_boards(n: int, seed: int = 0) -> list[str]:
    """Boards for `n` pins in random order: exactly n // 100 on RARE_BOARD, n // 10 on COMMON_BOARD, the rest on
    OTHER_BOARDS others. `n` must be a multiple of 100 so that the shares are exact."""
    if n <= 0 or n % 100:
        raise ValueError(f"the pin count must be a positive multiple of 100 (exact 1% and 10%), got {n}")
    rare, common = n // 100, n // 10
    rest = n - rare - common
    boards = [RARE_BOARD] * rare + [COMMON_BOARD] * common + [f"board-{i % OTHER_BOARDS:02d}" for i in range(rest)]
    order = np.random.default_rng(seed).permutation(n)
    return [boards[i] for i in order]


def build_corpus(products: Sequence[tuple[str, str]], n: int, seed: int = 0) -> list[dict]:
    """`n` pins recombined from real products (title, description): pin i = a product's title + two words of
    another's title, the description of a third; ids `p000000`..., boards from `assign_boards`."""
    if len(products) < 3:
        raise ValueError("need at least 3 products to recombine")
    rng = np.random.default_rng(seed)
    boards = assign_boards(n, seed)
    width = max(6, len(str(n - 1)))
    pins = []
    for i in range(n):
        a, b, c = rng.integers(0, len(products), size=3)
        extra = products[b][0].split()
        picked = [extra[j] for j in sorted(rng.choice(len(extra), size=min(2, len(extra)), replace=False))] \
            if extra else []
        title = " ".join([products[a][0], *picked]).strip()
        description = " ".join(products[c][1].split()[:40])
        pins.append({"id": f"p{i:0{width}d}", "title": title, "description": description, "board": boards[i]})
    return pins


def read_crowdflower(shared: Path) -> tuple[list[tuple[str, str]], list[str]]:
    """The distinct (title, description) products and the distinct queries of the Crowdflower judgments."""
    products: dict[tuple[str, str], None] = {}
    queries: dict[str, None] = {}
    with (shared / "crowdflower" / "judgments.csv").open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            title = row["product_title"].strip()
            if title:
                products.setdefault((title, row["product_description"].strip()), None)
            if row["query"].strip():
                queries.setdefault(row["query"].strip(), None)
    return list(products), list(queries)


# ---- recall (pure) ---------------------------------------------------------------------------------------------


def exact_truth(unit: np.ndarray, queries: np.ndarray, mask: np.ndarray | None, k: int = K) -> tuple[np.ndarray,
                                                                                                       np.ndarray]:
    """(row indexes of the exact top k among the rows `mask` keeps, [q, k]; the k-th best cosine per query)."""
    from pintext.tokens.recall import exact_top_k, kth_best

    rows = np.arange(len(unit)) if mask is None else np.flatnonzero(mask)
    top = exact_top_k(unit[rows], queries, k)
    return rows[top], kth_best(unit[rows], queries, top)


def tie_aware_recall(found: Sequence[Sequence[int]], cosines: Sequence[Sequence[float]], kth_best: np.ndarray,
                     allowed: Sequence[set[int] | None], k: int = K) -> float:
    """Mean over queries of the tie-aware recall@k (`pintext.tokens.recall`) of the hits that pass the filter: a
    hit outside it counts as an empty slot. `found`: returned row indexes per query; `cosines`: their exact
    cosines; `allowed`: the rows the filter keeps per query (None: no filter)."""
    from pintext.tokens import recall

    if not len(found):
        return float("nan")
    counted = np.full((len(found), k), -np.inf)
    for query, (rows, scores, keep) in enumerate(zip(found, cosines, allowed)):
        for slot, (row, score) in enumerate(list(zip(rows, scores))[:k]):
            if keep is None or row in keep:
                counted[query, slot] = score
    return float(recall.tie_aware_recall(counted, np.asarray(kth_best), k).mean())


def pass_share(found_boards: Sequence[Sequence[str]], board: str | None) -> float:
    """Share of all returned hits whose board passes the filter (1.0 with no filter or no hits)."""
    hits = [b for boards in found_boards for b in boards]
    if board is None or not hits:
        return 1.0
    return sum(1 for b in hits if b == board) / len(hits)


# ---- the report table (pure) -----------------------------------------------------------------------------------


def table_rows(results: Sequence[dict], filter_name: str) -> list[dict]:
    """One filter's methods as report rows, latencies as ratios against the exact script of the same filter."""
    chosen = [row for row in results if row["filter"] == filter_name]
    exact = next((row for row in chosen if row["method"] == "exact script"), None)
    base50 = exact["p50_ms"] if exact else float("nan")
    base95 = exact["p95_ms"] if exact else float("nan")
    return [{"method": row["method"], "setting": row["setting"], "recall@10": row["recall"],
             "pass": row["pass"], "hits/query": row["hits"], "p50 ms": row["p50_ms"],
             "p50 / exact": ratio(row["p50_ms"], base50), "p95 ms": row["p95_ms"],
             "p95 / exact": ratio(row["p95_ms"], base95), "node p50 ms": row.get("server_p50_ms")}
            for row in chosen]


TABLE_COLUMNS = ["method", "setting", "recall@10", "pass", "hits/query", "p50 ms", "p50 / exact", "p95 ms",
                 "p95 / exact", "node p50 ms"]


def results_table(results: Sequence[dict], filter_name: str) -> str:
    return markdown_table(table_rows(results, filter_name), TABLE_COLUMNS)


# ---- the node side ---------------------------------------------------------------------------------------------


@dataclass
class Corpus:
    pins: list[dict]
    unit: np.ndarray  # [n, dim] unit pin vectors, what both indexes hold
    boards: np.ndarray  # [n] board per pin
    row_of: dict[str, int]


def filter_clause(board: str | None) -> dict | None:
    return None if board is None else {"terms": {"board": [board]}}


def hnsw_body(dim: int, m: int = HNSW_M, vector_type: str = FLOAT32) -> dict:
    """Lucene HNSW on unit vectors; `vector_type` int8 holds the one-byte vectors PinText's indexes hold by default
    (`data_type: byte`), so the two are compared on the same vectors. Byte vectors are not unit length, so their
    space is cosine (innerproduct would favour long vectors)."""
    vector: dict = {"type": "knn_vector", "dimension": int(dim), "method": {
        "name": "hnsw", "engine": "lucene", "space_type": "innerproduct",
        "parameters": {"m": int(m), "ef_construction": HNSW_EF_CONSTRUCTION}}}
    if check_vector_type(vector_type) == INT8:
        vector["data_type"] = "byte"
        vector["method"]["space_type"] = "cosinesimil"
    return {"settings": {"index": {"knn": True, "number_of_shards": 1, "number_of_replicas": 0,
                                   "refresh_interval": "-1"}},
            "mappings": {"dynamic": False, "properties": {"board": {"type": "keyword"}, "vector": vector}}}


def knn_body(vector: np.ndarray, board: str | None, k: int, ef_search: int | None, post_filter: bool = False,
             vector_type: str = FLOAT32) -> dict:
    """A `knn` query: the filter inside it (efficient filtering) or, with `post_filter`, in an outer bool; the
    query vector as the index of `vector_type` holds its pins' (int8 values for a byte index)."""
    knn: dict = {"vector": served_vectors(vector, vector_type).tolist(), "k": int(k)}
    if ef_search is not None:
        knn["method_parameters"] = {"ef_search": int(ef_search)}
    clause = filter_clause(board)
    if clause is not None and not post_filter:
        knn["filter"] = clause
    query: dict = {"knn": {"vector": knn}}
    if clause is not None and post_filter:
        query = {"bool": {"must": [query], "filter": [clause]}}
    return {"size": K, "query": query, "_source": ["board"]}


def exact_body(vector: np.ndarray, board: str | None, vector_type: str = FLOAT32) -> dict:
    """Brute force: the k-NN plugin's exact cosine script over every pin the filter keeps (the query vector as the
    index of `vector_type` holds its pins')."""
    from pintext import queries

    clause = filter_clause(board)
    inner = {"match_all": {}} if clause is None else {"bool": {"filter": [clause]}}
    script = queries.knn_score_script(served_vectors(vector, vector_type))
    return {"size": K, "query": {"script_score": {"query": inner, "script": script}},
            "_source": ["board"]}


def finish_index(engine: Any, index: str) -> dict:
    """Refresh back on, force-merge to one segment (both indexes alike), report the seconds, segments and size."""
    with stopwatch() as merge:
        engine.resume_refresh(index)
        before = engine.stats(index).segments
        engine.force_merge(index)
    stats = engine.stats(index)
    return {"merge_seconds": merge["seconds"], "segments_before_merge": before, "segments": stats.segments,
            "docs": stats.docs, "size_bytes": stats.size_bytes}


def build_pintext_index(engine: Any, encoder: Any, corpus: Corpus, vectors: np.ndarray) -> tuple[Any, dict]:
    """The index as `pintext index create --pins FILE` then `ingest` make it: LSH tuned on a uniform sample of at
    most MAX_TUNE_CORPUS pins (the corpus size given), then every pin written with its tokens."""
    from pintext.serving.meta import ServingDefaults, index_meta
    from pintext.serving.searcher import Searcher
    from pintext.tokens.tune_lsh import tune_for_corpus
    from pintext.tokens.tuning import MAX_TUNE_CORPUS

    n = len(corpus.pins)
    rng = np.random.default_rng(0)
    sample = np.sort(rng.choice(n, min(n, MAX_TUNE_CORPUS), replace=False))
    with stopwatch() as tuning:
        result = tune_for_corpus(vectors[sample], total_pins=n)
    serving = ServingDefaults(window=result.window, probes=result.probes, window_at_100=result.deep_window,
                              probes_at_100=result.deep_probes)
    meta = index_meta(encoder.fingerprint, encoder.dim, result.family, serving, result.to_meta())
    engine.delete(PINTEXT_INDEX)
    engine.create(PINTEXT_INDEX, encoder.dim, meta)
    engine.pause_refresh(PINTEXT_INDEX)
    tokens = result.family.tokens(corpus.unit)
    with stopwatch() as writing:
        for start in range(0, n, BATCH):
            end = min(n, start + BATCH)
            outcome = engine.write(PINTEXT_INDEX, corpus.pins[start:end], list(corpus.unit[start:end]),
                                   tokens[start:end])
            if outcome.failed:
                raise RuntimeError(f"pins failed to index: {list(outcome.failed.items())[:3]}")
    built = finish_index(engine, PINTEXT_INDEX)
    info = {"tune_seconds": tuning["seconds"], "write_seconds": writing["seconds"], **built,
            "lsh": result.family.to_dict(), "serving": serving.to_dict(), "tuning": result.to_meta()}
    return Searcher.for_index(engine, PINTEXT_INDEX), {**info, "tokens": tokens}


def build_hnsw_index(engine: Any, corpus: Corpus, index: str = HNSW_INDEX, m: int = HNSW_M,
                     vector_type: str = FLOAT32) -> dict:
    """Lucene HNSW over the corpus' unit vectors (and the board keyword), written through the engine's plain bulk;
    `vector_type` int8 quantizes them as PinText's index does (`pintext.quantize.served_vectors`)."""
    engine.delete(index)
    body = hnsw_body(corpus.unit.shape[1], m, vector_type)
    engine.create_plain(index, body["mappings"], body["settings"])
    vectors = served_vectors(corpus.unit, vector_type)
    docs = ((pin["id"], {"board": pin.get("board"), "vector": vector}) for pin, vector in zip(corpus.pins, vectors))
    with stopwatch() as writing:
        outcome = engine.write_docs(index, docs, batch=HNSW_BATCH)
    if outcome.failed:
        raise RuntimeError(f"bulk failed: {list(outcome.failed.items())[:3]}")
    return {"m": int(m), "write_seconds": writing["seconds"], **finish_index(engine, index)}


def timed(run: Callable[[Any], tuple[list[str], list[str]]], items: Sequence[Any],
          engine: Any) -> tuple[list, list, list, list]:
    """Run `run(item)` for every item after a warm-up; (ids per item, boards per item, client milliseconds per
    item, the node's `took` per item: every search the engine sends, the Searcher's and the raw bodies')."""
    for item in items[:WARMUP]:
        run(item)
    ids, boards, millis = [], [], []
    took = engine.record_took()
    for item in items:
        began = time.perf_counter()
        found, found_boards = run(item)
        millis.append((time.perf_counter() - began) * 1000)
        ids.append(found)
        boards.append(found_boards)
    return ids, boards, millis, list(took)


def score_method(corpus: Corpus, queries_unit: np.ndarray, board: str | None, ids: list[list[str]],
                 boards: list[list[str]], millis: list[float], took: Sequence[float] = ()) -> dict:
    mask = None if board is None else corpus.boards == board
    _, kth = exact_truth(corpus.unit, queries_unit, mask, K)
    rows = [[corpus.row_of[i] for i in found] for found in ids]
    cosines = [[float(corpus.unit[r] @ q) for r in found] for found, q in zip(rows, queries_unit)]
    keep = None if mask is None else set(np.flatnonzero(mask).tolist())
    latency = percentiles(millis, (50, 95))
    return {"recall": tie_aware_recall(rows, cosines, kth, [keep] * len(rows)), "pass": pass_share(boards, board),
            "hits": float(np.mean([len(found) for found in ids])), "p50_ms": latency["p50"],
            "p95_ms": latency["p95"], "mean_ms": float(np.mean(millis)),
            "server_p50_ms": percentiles(took, (50,))["p50"]}


def search_runner(engine: Any, index: str, body_of: Callable[[np.ndarray], dict]) -> Callable:
    def run(vector: np.ndarray) -> tuple[list[str], list[str]]:
        hits = engine.search_body(index, body_of(vector))["hits"]["hits"]
        return [h["_id"] for h in hits], [str((h.get("_source") or {}).get("board")) for h in hits]
    return run


def measure_all(engine: Any, searcher: Any, corpus: Corpus, queries_unit: np.ndarray, hnsw_ok: bool,
                log: Callable[[str], None]) -> list[dict]:
    from pintext.serving.filters import NO_FILTERS, Filters
    from pintext.tokens.tune_lsh import allowed

    results = []
    items = list(queries_unit)
    for filter_name, board in FILTERS.items():
        filters = NO_FILTERS if board is None else Filters.parse([f"board={board}"])
        methods: list[tuple[str, str, Callable]] = []

        def pintext_probes(vector: np.ndarray, filters: Filters, probes: int | None, exact_filter: bool) -> tuple:
            hits = searcher.search(vector, k=K, probes=probes, filters=filters, exact_filter=exact_filter)
            return [h.id for h in hits], [str(h.source.get("board")) for h in hits]

        serving, family = searcher.serving, searcher.family
        if board is not None:
            # As served: a filter keeping no more pins than the window is scored exactly (one count decides).
            methods.append(("PinText", f"as served: exact when the filter keeps <= window {serving.window} pins",
                            partial(pintext_probes, filters=filters, probes=None, exact_filter=True)))
        methods.append(("PinText", f"tokens: window {serving.window}, probes {serving.probes}",
                        partial(pintext_probes, filters=filters, probes=None, exact_filter=False)))
        more = serving.probes + EXTRA_PROBES
        if allowed(family.tables, family.bits, more):
            methods.append(("PinText", f"tokens: window {serving.window}, probes {more}",
                            partial(pintext_probes, filters=filters, probes=more, exact_filter=False)))
        methods.append(("exact script", "script_score knn_score over " + ("the filter" if board else "every pin"),
                        search_runner(engine, PINTEXT_INDEX, partial(exact_body, board=board))))
        if hnsw_ok:
            for ef in EF_SEARCH_GRID:
                methods.append(("HNSW filtered" if board else "HNSW", f"k {K}, ef_search {ef}",
                                search_runner(engine, HNSW_INDEX, partial(knn_body, board=board, k=K, ef_search=ef))))
            if board is not None:
                for k in POST_FILTER_K:
                    methods.append(("HNSW post-filter", f"k {k}, ef_search {k}, then filter", search_runner(
                        engine, HNSW_INDEX, partial(knn_body, board=board, k=k, ef_search=k, post_filter=True))))
        for method, setting, run in methods:
            ids, boards, millis, took = timed(run, items, engine)
            row = {"filter": filter_name, "method": method, "setting": setting,
                   **score_method(corpus, queries_unit, board, ids, boards, millis, took)}
            log(f"  {filter_name:>4} {method:<17} {setting:<42} recall {row['recall']:.3f} pass {row['pass']:.3f} "
                f"p50 {row['p50_ms']:.1f} ms")
            results.append(row)
    return results


def candidate_stats(tokens: list[list[str]], family: Any, corpus: Corpus, queries_unit: np.ndarray,
                    probes: int, board: str) -> dict:
    """How many filtered pins share at least one token with a query (the first stage's candidates after the
    filter), and the share of the filtered exact top 10 among them (the ceiling of PinText's recall)."""
    rows = np.flatnonzero(corpus.boards == board)
    pin_sets = [set(tokens[r]) for r in rows]
    query_tokens = family.query_tokens(queries_unit, probes=probes)
    truth, _ = exact_truth(corpus.unit, queries_unit, corpus.boards == board, K)
    counts, ceiling = [], []
    position = {int(r): i for i, r in enumerate(rows)}
    for q_tokens, true_rows in zip(query_tokens, truth):
        wanted = set(q_tokens)
        hit = [bool(wanted & s) for s in pin_sets]
        counts.append(sum(hit))
        ceiling.append(np.mean([hit[position[int(r)]] for r in true_rows]))
    return {"filtered_pins": int(len(rows)), "candidates_mean": float(np.mean(counts)),
            "candidates_p95": float(np.percentile(counts, 95)), "top10_among_candidates": float(np.mean(ceiling))}


def local_agreement(searcher: Any, meta: dict, corpus: Corpus, tokens: list[list[str]], queries_unit: np.ndarray,
                    board: str, work: Path) -> dict:
    """PinText on OpenSearch vs the local backend over the filtered pins, with a window holding every filtered
    pin (so every filtered candidate is rescored): identical id lists, and recall vs numpy exact."""
    from pintext.serving.filters import Filters
    from pintext.serving.local import LocalEngine
    from pintext.serving.searcher import Searcher

    folder = work / "local"
    shutil.rmtree(folder, ignore_errors=True)
    local = LocalEngine(folder)
    rows = np.flatnonzero(corpus.boards == board)
    local.create(PINTEXT_INDEX, corpus.unit.shape[1], meta)
    local.write(PINTEXT_INDEX, [corpus.pins[r] for r in rows], [corpus.unit[r] for r in rows],
                [tokens[r] for r in rows])
    local_searcher = Searcher.for_index(local, PINTEXT_INDEX)
    filters = Filters.parse([f"board={board}"])
    window = max(K, int(len(rows)))
    same, os_rows, os_cos = 0, [], []
    for vector in queries_unit:
        remote = [h.id for h in searcher.search(vector, k=K, window=window, filters=filters)]
        oracle = [h.id for h in local_searcher.search(vector, k=K, window=window, filters=filters)]
        same += remote == oracle
        found = [corpus.row_of[i] for i in remote]
        os_rows.append(found)
        os_cos.append([float(corpus.unit[r] @ vector) for r in found])
    _, kth = exact_truth(corpus.unit, queries_unit, corpus.boards == board, K)
    keep = set(rows.tolist())
    local.close()
    return {"board": board, "window": window, "queries": int(len(queries_unit)),
            "identical_id_lists": same, "identical_share": same / max(1, len(queries_unit)),
            "recall_vs_exact_at_full_window": tie_aware_recall(os_rows, os_cos, kth, [keep] * len(os_rows))}


# ---- model -----------------------------------------------------------------------------------------------------


def train_model(shared: Path, work: Path, log: Callable[[str], None]) -> tuple[Path, float]:
    """A default PinText model on the Crowdflower search pairs (split 0's training queries), threads 1; in-process
    through `pintext.pairs` and `pintext.train`."""
    import pintext

    model = work / "model"
    with stopwatch() as timer:
        subprocess.run([sys.executable, "-m", "pintext.bench.realdata", "--shared", str(shared), "--out",
                        str(work / "real"), "--splits", "1"], cwd=REPO, check=True, capture_output=True)
        shutil.rmtree(work / "pairs", ignore_errors=True)
        pintext.pairs(work / "pairs", imports=[(work / "real/crowdflower/split0/train_pairs.csv", "search")],
                      val=0.1, test=0.0)
        shutil.rmtree(model, ignore_errors=True)
        pintext.train(work / "pairs", model, threads=1)
    log(f"trained {model} in {timer['seconds']:.0f} s")
    return model, timer["seconds"]


# ---- report ----------------------------------------------------------------------------------------------------


def write_plot(results: Sequence[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FixedLocator, NullLocator, ScalarFormatter

    figure, axes = plt.subplots(1, len(FILTERS), figsize=(5 * len(FILTERS), 4.2), sharey=True, sharex=True)
    styles = {"PinText": ("o", "tab:blue"), "exact script": ("s", "black"), "HNSW filtered": ("^", "tab:orange"),
              "HNSW": ("^", "tab:orange"), "HNSW post-filter": ("v", "tab:red")}
    for axis, filter_name in zip(axes, FILTERS):
        for method, (marker, colour) in styles.items():
            rows = [row for row in results if row["filter"] == filter_name and row["method"] == method]
            if not rows:
                continue
            axis.plot([row["p50_ms"] for row in rows], [row["recall"] for row in rows], marker=marker,
                      color=colour, linestyle="-" if len(rows) > 1 else "none", linewidth=0.8, label=method)
        axis.set_xscale("log")
        axis.xaxis.set_major_locator(FixedLocator([0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500]))
        axis.xaxis.set_major_formatter(ScalarFormatter())
        axis.xaxis.set_minor_locator(NullLocator())
        axis.set_title(f"filter keeps {filter_name} of the pins" if filter_name != "none" else "no filter")
        axis.set_xlabel("p50 latency, ms (client side, log scale)")
        axis.grid(True, alpha=0.3)
    axes[0].set_ylabel("recall@10 vs exact over the filtered pins")
    axes[0].legend(loc="lower right", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def command_line(argv: Sequence[str]) -> str:
    """The command as a user types it, with the environment variables that change what runs."""
    import os
    import shlex

    settings = [f"{name}={os.environ[name]}" for name in RELEVANT_ENV if os.environ.get(name)]
    return " ".join([*settings, "python -m pintext.bench.filtered", *(shlex.quote(a) for a in argv)])


READING_FILE = "reading.md"  # the hand-written reading of the figures, kept next to the report


def write_report(out: Path, data: dict) -> None:
    """results.json, the plot and report.md (with OUT/reading.md, when there is one, as its last section)."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")
    render(out)


def render(out: Path) -> None:
    """(Re)write the plot and report.md from OUT/results.json and OUT/reading.md."""
    data = json.loads((out / "results.json").read_text(encoding="utf-8"))
    reading = out / READING_FILE
    if reading.is_file():
        data["reading"] = reading.read_text(encoding="utf-8").strip().splitlines()
    write_plot(data["results"], out / "filtered.png")
    (out / "report.md").write_text(render_report(data), encoding="utf-8")


def render_report(data: dict) -> str:
    machine, node, corpus, build = data["machine"], data["node"], data["corpus"], data["build"]
    pintext, hnsw = build["pintext"], build["hnsw"]
    lines = [
        "# Filtered search: a filter keeping 1% of the pins, PinText tokens vs Lucene filtered HNSW",
        "",
        f"Generated by `{data['command']}` on {data['started_at']}, {data['seconds'] / 60:.1f} minutes in all "
        "(`bench/filtered.py`; raw figures in `results.json`).",
        "",
        f"- machine: {machine['cpu_model']}, {machine['cores']} cores, {machine['memory']} memory, shared with "
        f"other work (load average {machine['load_average_at_start']} at start, {data['load_average_at_end']} "
        "at end)",
        f"- node: OpenSearch {node['version']} (Lucene {node['lucene']}), plugins: {', '.join(node['plugins'])}; "
        f"heap {node['heap']}",
        "- versions: " + ", ".join(f"{name} {version}" for name, version in data["versions"].items()),
        f"- corpus: {corpus['pins']:,} pins recombined from {corpus['products']:,} real Crowdflower products "
        f"(title + two words of another title, a third product's description), {corpus['dim']}-d unit vectors "
        f"from a PinText model trained on the Crowdflower search pairs ({corpus['model']}); "
        f"{corpus['queries']} real Crowdflower queries. Boards at random: `{RARE_BOARD}` holds exactly "
        f"{corpus['rare']:,} pins (1%), `{COMMON_BOARD}` {corpus['common']:,} (10%).",
        f"- PinText index (as `pintext index create --pins`): LSH tuned on {pintext['tuning']['tuned_on']:,} "
        f"sampled pins: {pintext['lsh']['tables']} tables x {pintext['lsh']['bits']} bits, serving window "
        f"{pintext['serving']['window']}, probes {pintext['serving']['probes']} (tuned recall@10 "
        f"{pintext['tuning']['recall_at_10']}); written in {pintext['write_seconds']:.0f} s, force-merged in "
        f"{pintext['merge_seconds']:.0f} s ({pintext.get('segments_before_merge')} segments before), "
        f"{fmt(pintext['size_bytes'] / 2**20)} MiB.",
        f"- HNSW index: Lucene engine, innerproduct on the unit vectors, m {HNSW_M}, ef_construction "
        f"{HNSW_EF_CONSTRUCTION}; written in {hnsw['write_seconds']:.0f} s (the graph is built while indexing), "
        "force-merged in "
        f"{hnsw['merge_seconds']:.0f} s ({hnsw.get('segments_before_merge')} segments before), "
        f"{fmt(hnsw['size_bytes'] / 2**20)} MiB. Both indexes one shard, one segment.",
        "",
        "Recall@10 is against the exact top 10 among the pins that pass the filter (numpy, tie-aware); `pass` is the "
        "share of returned hits that pass the filter; `hits/query` how many came back (10 unless the method "
        f"loses some). Latency: client-side wall time, sequential, after {WARMUP} warm-up queries (for PinText it "
        "includes hashing the query into tokens in the client, as served); every ratio is against the exact script "
        "over the same filter in the same run. `node p50 ms` is the node's own `took`, for where the time goes.",
        "",
    ]
    for filter_name, title in (("1%", "Filter keeping 1% of the pins"), ("10%", "Filter keeping 10% of the pins"),
                               ("none", "No filter (reference)")):
        lines += [f"## {title}", "", results_table(data["results"], filter_name), ""]
    lines += ["![recall vs latency](filtered.png)", ""]
    stats, agreement = data["candidates"], data["agreement"]
    lines += [
        "## What the tokens' first stage sees under the 1% filter",
        "",
        f"Of the {stats['filtered_pins']:,} filtered pins, a query shares at least one token with "
        f"{stats['candidates_mean']:.0f} on average (p95 {stats['candidates_p95']:.0f}); "
        f"{stats['top10_among_candidates']:.3f} of the filtered exact top 10 are among them (the ceiling of "
        "PinText's recall at any window).",
        "",
        "## PinText on OpenSearch vs the local backend (the oracle), 1% filter",
        "",
        f"With window {agreement['window']} (every filtered pin fits, so every filtered candidate is rescored), over "
        f"{agreement['queries']} queries: identical id lists for {agreement['identical_id_lists']} "
        f"({agreement['identical_share']:.3f}); recall@10 vs numpy exact over the filtered pins "
        f"{agreement['recall_vs_exact_at_full_window']:.3f} (below 1.0 only where a filtered top-10 pin shares no "
        "token with the query).",
        "",
        "## Reading",
        "",
        *data.get("reading", [f"_(none yet: write it in {READING_FILE} next to this report, then --render)_"]),
        "",
    ]
    return "\n".join(lines)


# ---- main ------------------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m pintext.bench.filtered", description=__doc__.split("\n")[0])
    parser.add_argument("--pins", type=int, default=100_000, help="corpus size (a multiple of 100)")
    parser.add_argument("--queries", type=int, default=200, help="real queries to run (at most the distinct ones)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="report folder")
    parser.add_argument("--model", type=Path, default=None, help="a PinText model; default: train one")
    parser.add_argument("--shared", type=Path, default=DEFAULT_SHARED, help="the real data folder")
    parser.add_argument("--work", type=Path, default=DEFAULT_WORK, help="scratch folder (model, local index)")
    parser.add_argument("--keep", action="store_true", help="leave the two bench indexes on the node")
    parser.add_argument("--render", action="store_true", help="only re-render OUT/report.md from OUT/results.json")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    from pintext.bench.node import open_node
    from pintext.encoder import Encoder
    from pintext.pin_vectors import pin_vectors, unit_rows
    from pintext.serving.opensearch import OpenSearchEngine

    args = parse_args(argv)
    if args.render:
        render(args.out)
        return 0
    command = command_line(sys.argv[1:] if argv is None else argv)
    began = time.perf_counter()
    started_at = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    machine = machine_info()

    def log(message: str) -> None:
        print(f"[{time.perf_counter() - began:6.0f}s] {message}", flush=True)

    if not (args.shared / "crowdflower" / "judgments.csv").is_file():
        print(f"error: {args.shared}/crowdflower/judgments.csv not found (the real data folder)", file=sys.stderr)
        return 1
    args.work.mkdir(parents=True, exist_ok=True)
    model, train_seconds = (args.model, 0.0) if args.model else train_model(args.shared, args.work, log)
    encoder = Encoder.load(model)
    products, query_texts = read_crowdflower(args.shared)
    pins = build_corpus(products, args.pins, seed=0)
    with stopwatch() as embedding:
        vectors = pin_vectors(encoder, pins)
    unit = unit_rows(vectors).astype(np.float32)
    if not np.all(np.linalg.norm(unit, axis=1) > 0.5):
        raise RuntimeError("some pins have no known word (zero vector); the corpus builder should not make those")
    corpus = Corpus(pins, unit, np.asarray([p["board"] for p in pins]), {p["id"]: i for i, p in enumerate(pins)})
    order = np.random.default_rng(1).permutation(len(query_texts))
    query_vectors = encoder.encode([query_texts[i] for i in order])
    keep = np.linalg.norm(query_vectors, axis=1) > 0
    queries_unit = unit_rows(query_vectors[keep])[: args.queries].astype(np.float32)
    log(f"{len(pins):,} pins embedded in {embedding['seconds']:.1f} s, {len(queries_unit)} queries")

    node = open_node()
    engine = OpenSearchEngine(node.client)
    info = engine.node_info()
    try:
        searcher, built = build_pintext_index(engine, encoder, corpus, vectors)
        tokens = built.pop("tokens")
        log(f"PinText index: tuned {built['lsh']['tables']}x{built['lsh']['bits']} window "
            f"{built['serving']['window']} probes {built['serving']['probes']}; written "
            f"{built['write_seconds']:.0f} s, merged {built['merge_seconds']:.0f} s")
        hnsw_ok, hnsw = True, {}
        try:
            hnsw = build_hnsw_index(engine, corpus)
            log(f"HNSW index: written {hnsw['write_seconds']:.0f} s, merged {hnsw['merge_seconds']:.0f} s")
        except Exception as error:  # noqa: BLE001 - reported, the rest still runs
            hnsw_ok, hnsw = False, {"error": str(error), "write_seconds": float("nan"),
                                    "merge_seconds": float("nan"), "size_bytes": float("nan")}
            log(f"HNSW index failed: {error}")
        results = measure_all(engine, searcher, corpus, queries_unit, hnsw_ok, log)
        candidates = candidate_stats(tokens, searcher.family, corpus, queries_unit, searcher.serving.probes,
                                     RARE_BOARD)
        agreement = local_agreement(searcher, engine.meta(PINTEXT_INDEX), corpus, tokens, queries_unit, RARE_BOARD,
                                    args.work)
        log(f"agreement with the local backend: {agreement}")
    finally:
        if not args.keep:
            for index in (PINTEXT_INDEX, HNSW_INDEX):
                engine.delete(index)
        ended = node.close()
        if ended:
            log(f"managed node stopped: {ended}")
    data = {
        "command": command, "started_at": started_at, "seconds": time.perf_counter() - began,
        "machine": machine, "load_average_at_end": load_average(), "versions": package_versions(),
        "node": {"version": info.version, "lucene": info.lucene, "plugins": node.plugins,
                 "heap": fmt((info.heap_bytes or 0) / 2**30) + " GiB"},
        "corpus": {"pins": len(pins), "products": len(products), "dim": int(unit.shape[1]),
                   "queries": int(len(queries_unit)), "rare": int(np.sum(corpus.boards == RARE_BOARD)),
                   "common": int(np.sum(corpus.boards == COMMON_BOARD)),
                   "model": "trained here, " + f"{train_seconds:.0f} s" if not args.model else str(args.model),
                   "embed_seconds": embedding["seconds"]},
        "build": {"pintext": built, "hnsw": hnsw}, "results": results, "candidates": candidates,
        "agreement": agreement,
    }
    write_report(args.out, data)
    log(f"report in {args.out}/report.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
