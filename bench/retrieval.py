"""Retrieval benchmark on the real node: LSH tokens + exact rescore vs the exact k-NN script vs Lucene HNSW.

Recall@10 is always against exact brute-force cosine computed with numpy over the same vectors the index holds.
Latency is client-side wall time per request (opensearch-py, keep-alive HTTP), p50/p95/p99 over the query set,
sequentially (1 client thread) and with 4 client threads (QPS = queries / wall time of the whole set).
How many pins a query touches comes from the in-memory replica (bench/lsh_sim.py), which hashes with the very
same LSH object, so it counts the same candidates the node's first stage matches.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from pintext.bench.harness import markdown_table, percentiles, ratio, stopwatch
from pintext.bench.lsh_sim import exact_top_k, fit_cost_model, recall_at_k, sweep_config, unit_rows

K = 10


def timed_searches(engine: Any, index: str, bodies: Sequence[dict], threads: int) -> tuple[list[list[str]], dict]:
    """Send every body; returns (hit ids per body, {p50, p95, p99, qps, mean_ms})."""
    def one(body: dict) -> tuple[list[str], float, float]:
        began = time.perf_counter()
        response = engine.search_body(index, body)
        elapsed = (time.perf_counter() - began) * 1000
        return [hit["_id"] for hit in response["hits"]["hits"]], elapsed, float(response["took"])

    with stopwatch() as wall:
        if threads == 1:
            results = [one(body) for body in bodies]
        else:
            with ThreadPoolExecutor(max_workers=threads) as pool:
                results = list(pool.map(one, bodies))
    latencies = [elapsed for _, elapsed, _ in results]
    took = percentiles([server for _, _, server in results], (50,))["p50"]
    stats = {**percentiles(latencies), "mean_ms": float(np.mean(latencies)), "qps": len(bodies) / wall["seconds"],
             "took_p50_ms": took}
    return [ids for ids, _, _ in results], stats


def measure(engine: Any, index: str, bodies: Sequence[dict], truth_ids: Sequence[Sequence[str]],
            threads_grid: Sequence[int] = (1, 4), warmup: int = 5) -> dict:
    """Recall@10 and latency of one kind of query at each client thread count."""
    for body in bodies[:warmup]:
        engine.search_body(index, body)
    result: dict = {}
    for threads in threads_grid:
        found, stats = timed_searches(engine, index, bodies, threads)
        result[f"t{threads}"] = stats
        result["recall@10"] = recall_at_k(found, np.asarray(truth_ids, dtype=object), K)
    return result


def lsh_bodies(lsh: Any, vectors: np.ndarray, probes: int, window: int) -> list[dict]:
    """The product's own search bodies (pintext.queries) for each query vector."""
    from pintext import queries

    tokens = lsh.query_tokens(vectors, probes=probes)
    return [queries.search_body(row_tokens, vector, k=K, window=window) for row_tokens, vector in zip(tokens, vectors)]


def on_field(body: dict, field: str) -> dict:
    """The same body with its term clauses on another keyword field (a second LSH config of a bench index)."""
    from pintext.mapping import TOKENS_FIELD

    return json.loads(json.dumps(body).replace(f'"{TOKENS_FIELD}"', f'"{field}"'))


def add_token_field(engine: Any, index: str, lsh: Any, ids: Sequence[str], corpus: np.ndarray) -> tuple[str, float]:
    """Add a keyword field holding another LSH config's tokens to every pin of a bench index.

    Lets one index answer for several (tables, bits) without re-ingesting; returns (field, seconds).
    """
    from pintext.mapping import TOKENS_FIELD, pins_index_body

    field = f"{TOKENS_FIELD}_{lsh.tables}x{lsh.bits}"
    # Mapped as the pins mapping maps the token field (the index was made from it).
    engine.add_field(index, field, pins_index_body(lsh.dim)["mappings"]["properties"][TOKENS_FIELD])
    tokens = lsh.tokens(corpus)
    with stopwatch() as timer:
        outcome = engine.write_docs(index, ((pin_id, {field: row}) for pin_id, row in zip(ids, tokens)),
                                    batch=1000, partial=True)
        engine.refresh(index)
    if outcome.failed:
        raise RuntimeError(f"token field update failed: {list(outcome.failed.items())[:3]}")
    return field, timer["seconds"]


def exact_bodies(vectors: np.ndarray) -> list[dict]:
    """script_score over match_all with the k-NN exact cosine script: every pin scored, recall 1.0."""
    from pintext import queries

    return [{"size": K, "query": {"script_score": {"query": {"match_all": {}},
                                                   "script": queries.knn_score_script(vector)}},
             "_source": {"excludes": list(queries.SOURCE_EXCLUDES)}} for vector in vectors]


def hnsw_lucene(engine: Any, index: str, ids: Sequence[str], vectors: np.ndarray, query_vectors: np.ndarray,
                truth_ids: Sequence[Sequence[str]], threads_grid: Sequence[int],
                ef_search_grid: Sequence[int] = (100, 400)) -> dict[int, dict]:
    """Build a Lucene-engine HNSW index of the vectors alone and measure it like the rest.

    Never the faiss/nmslib engines: their native libraries are not in the Maven plugin zip (docs/opensearch.md).
    """
    engine.delete(index)
    engine.create_plain(index, {"properties": {"vector": {
        "type": "knn_vector", "dimension": int(vectors.shape[1]),
        "method": {"name": "hnsw", "engine": "lucene", "space_type": "cosinesimil",
                   "parameters": {"m": 16, "ef_construction": 100}}}}},
        {"index": {"knn": True, "number_of_shards": 1, "number_of_replicas": 0}})
    with stopwatch() as build:
        outcome = engine.write_docs(index, ((pin_id, {"vector": vector.tolist()})
                                            for pin_id, vector in zip(ids, vectors)), batch=500)
        engine.refresh(index)
    if outcome.failed:
        raise RuntimeError(f"HNSW bulk failed: {list(outcome.failed.items())[:3]}")
    results = {}
    for ef_search in ef_search_grid:
        bodies = [{"size": K, "query": {"knn": {"vector": {"vector": vector.tolist(), "k": K,
                                                           "method_parameters": {"ef_search": ef_search}}}},
                   "_source": False} for vector in query_vectors]
        results[ef_search] = {**measure(engine, index, bodies, truth_ids, threads_grid),
                              "build_seconds": build["seconds"]}
    engine.delete(index)
    return results


def run(engine: Any, index: str, lsh: Any, ids: Sequence[str], corpus: np.ndarray, query_vectors: np.ndarray,
        probes_grid: Sequence[int], windows: Sequence[int], exact_queries: int, threads_grid: Sequence[int] = (1, 4),
        hnsw: bool = True, log: Callable[[str], None] = print, other_configs: Sequence[Any] = (),
        other_probes: Sequence[int] = (0, 1), other_windows: Sequence[int] = (500,)) -> tuple[list[dict], dict]:
    """Rows (one per setting) and extra data; the LSH index must hold exactly `ids` with vectors `corpus`."""
    corpus_unit, queries_unit = unit_rows(corpus), unit_rows(query_vectors)
    truth_rows = exact_top_k(corpus_unit, queries_unit, K)
    id_array = np.asarray(ids, dtype=object)
    truth_ids = [list(id_array[row]) for row in truth_rows]
    simulated = {(p.probes, p.window): p for p in sweep_config(corpus_unit, queries_unit, truth_rows, lsh.tables,
                                                               lsh.bits, probes_grid, windows, K, lsh.seed)}
    rows: list[dict] = []
    exact_count = min(exact_queries, len(query_vectors))
    log(f"exact knn_score over all {len(ids):,} pins, {exact_count} queries")
    exact = measure(engine, index, exact_bodies(query_vectors[:exact_count]), truth_ids[:exact_count], threads_grid)
    rows.append(_row("exact knn_score script, all pins (baseline)", exact, 1.0, 1.0, exact))
    for probes in probes_grid:
        for window in windows:
            if (probes, window) not in simulated:
                continue
            point = simulated[(probes, window)]
            log(f"LSH {lsh.tables}x{lsh.bits} probes={probes} window={window}")
            result = measure(engine, index, lsh_bodies(lsh, query_vectors, probes, window), truth_ids, threads_grid)
            result.update(_work(point))
            rows.append(_row(f"LSH {lsh.tables}x{lsh.bits}, probes {probes}, window {window}", result,
                             point.candidate_share, point.rescored_share, exact))
    extra: dict = {"queries": len(query_vectors), "exact_queries": exact_count, "corpus": len(ids),
                   "extra_configs": {}}
    for other in other_configs:
        log(f"LSH {other.tables}x{other.bits} on an extra token field of the same index")
        field, seconds = add_token_field(engine, index, other, ids, corpus)
        extra["extra_configs"][f"{other.tables}x{other.bits}"] = {"field": field, "update_seconds": seconds}
        simulated_other = {(p.probes, p.window): p for p in sweep_config(
            corpus_unit, queries_unit, truth_rows, other.tables, other.bits, other_probes, other_windows, K,
            other.seed)}
        for (probes, window), point in sorted(simulated_other.items()):
            bodies = [on_field(body, field) for body in lsh_bodies(other, query_vectors, probes, window)]
            result = measure(engine, index, bodies, truth_ids, threads_grid)
            result.update(_work(point))
            rows.append(_row(f"LSH {other.tables}x{other.bits}, probes {probes}, window {window}", result,
                             point.candidate_share, point.rescored_share, exact))
    lsh_results = [row["raw"] for row in rows if "clauses" in row["raw"]]
    if len(lsh_results) >= 4:
        extra["cost_fit"] = fit_cost_model([r["clauses"] for r in lsh_results], [r["postings"] for r in lsh_results],
                                           [r["rescored"] for r in lsh_results],
                                           [r["t1"]["took_p50_ms"] for r in lsh_results])
    if hnsw:
        log("Lucene HNSW (m=16, ef_construction=100, ef_search=100 and 400)")
        try:
            results = hnsw_lucene(engine, f"{index}-hnsw", ids, corpus, query_vectors, truth_ids, threads_grid)
            for ef_search, result in results.items():
                rows.append(_row(f"k-NN HNSW, Lucene engine (m 16, ef_search {ef_search})", result, float("nan"),
                                 float("nan"), exact))
                extra["hnsw_build_seconds"] = result["build_seconds"]
        except Exception as error:  # noqa: BLE001 - reported in the table, the rest of the run goes on
            extra["hnsw_error"] = f"{type(error).__name__}: {error}"[:500]
    return rows, extra


def _work(point: Any) -> dict:
    """What the replica says one query of a setting does: recall, candidates, postings, rescored, clauses."""
    return {"simulated_recall": point.recall, "candidate_share": point.candidate_share,
            "rescored_share": point.rescored_share, "postings": point.postings, "rescored": point.rescored,
            "clauses": point.clauses}


def _row(name: str, result: dict, candidate_share: float, rescored_share: float, exact: dict) -> dict:
    one, four = result.get("t1", {}), result.get("t4", {})
    return {
        "setting": name,
        "recall@10": result["recall@10"],
        "sim recall@10": result.get("simulated_recall", float("nan")),
        "candidates %": 100 * candidate_share,
        "rescored %": 100 * rescored_share,
        "p50 ms": one.get("p50"), "p95 ms": one.get("p95"), "p99 ms": one.get("p99"),
        "server took p50 ms": one.get("took_p50_ms"),
        "QPS 1 thread": one.get("qps"), "QPS 4 threads": four.get("qps"), "p50 ms (4 thr)": four.get("p50"),
        "p50 speed-up vs exact": ratio(exact["t1"]["p50"], one.get("p50", float("nan"))),
        "server took speed-up vs exact": ratio(exact["t1"]["took_p50_ms"], one.get("took_p50_ms", float("nan"))),
        "raw": result,
    }


COLUMNS = ["setting", "recall@10", "sim recall@10", "candidates %", "rescored %", "p50 ms", "p95 ms", "p99 ms",
           "server took p50 ms",
           "QPS 1 thread", "QPS 4 threads", "p50 ms (4 thr)", "p50 speed-up vs exact",
           "server took speed-up vs exact"]


def table(rows: list[dict]) -> str:
    return markdown_table(rows, COLUMNS)


def plot(rows: list[dict], path: Any) -> Any:
    """Recall@10 vs p50 latency (log x), one point per setting."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4.5))
    for row in rows:
        marker = "s" if row["setting"].startswith("exact") else ("^" if "HNSW" in row["setting"] else "o")
        axes.scatter(row["p50 ms"], row["recall@10"], marker=marker, s=40)
        label = row["setting"].replace("LSH ", "").replace(", window", " w")
        axes.annotate(label[:32], (row["p50 ms"], row["recall@10"]), fontsize=6, xytext=(3, 3),
                      textcoords="offset points")
    axes.set_xscale("log")
    axes.set_xlabel("p50 latency, ms (1 client thread, log scale)")
    axes.set_ylabel("recall@10 vs exact cosine")
    axes.set_title("Recall vs latency on the real OpenSearch node")
    axes.axhline(0.95, color="grey", linestyle=":", linewidth=1)
    axes.grid(True, which="both", alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path
