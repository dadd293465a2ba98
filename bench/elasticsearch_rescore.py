"""Three ways to rescore PinText's first stage exactly on Elasticsearch 8 (no painless there), timed on one node.

    ELASTICSEARCH_URL=http://127.0.0.1:9400 python -m pintext.bench.elasticsearch_rescore [--pins 20000] [--dim 128]

(a) two requests: the first stage's top `window` ids (sorted score desc, id asc; `stored_fields: _none_`), then a
    `knn` query filtered to those ids on the flat `dense_vector` — what `pintext.serving.elasticsearch` does;
(b) one request returning the window's stored vectors, rescored in the client with numpy;
(c) one request with a `rescore` whose `rescore_query` is a `knn` query filtered by the first stage (cannot be
    combined with a sort, so the window's edge is cut by doc order; capped at 10,000 candidates).

For each window it prints p50/p90 latency and how many queries return the same top k as an exact numpy oracle of
the window semantics (first stage by tokens shared, ties by id, then exact cosine). Synthetic clustered unit
vectors; the index `bench-es-rescore-<pins>-<dim>` is kept for re-runs (delete it by hand). Figures are in
docs/elasticsearch-serving.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

import numpy as np

from pintext import queries
from pintext.serving.elasticsearch import (
    ElasticsearchEngine,
    connect,
    cosine_from_es_score,
    first_stage_body,
    rescore_body,
)
from pintext.tokens.lsh import RandomHyperplaneLSH

K, TABLES, BITS, QUERIES = 10, 32, 8, 100
WINDOWS = (100, 500, 2000)
Ranked = tuple[list[str], list[float]]


def pin_id(row: int | np.integer) -> str:
    return f"p{row:06d}"


def clustered_unit_vectors(rng: np.random.Generator, rows: int, dim: int, noise: float) -> np.ndarray:
    centers = rng.normal(size=(200, dim))
    vectors = centers[rng.integers(0, 200, rows)] + noise * rng.normal(size=(rows, dim))
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def fill(engine: ElasticsearchEngine, index: str, vectors: np.ndarray, lsh: RandomHyperplaneLSH) -> None:
    """Create and fill the index once (a re-run reuses it)."""
    if engine.exists(index):
        return
    engine.create(index, vectors.shape[1], {"dim": vectors.shape[1]})
    tokens = lsh.tokens(vectors)
    for start in range(0, len(vectors), 2000):
        rows = range(start, min(len(vectors), start + 2000))
        result = engine.write(index, [{"id": pin_id(row), "title": f"pin {row}"} for row in rows],
                              list(vectors[start:start + 2000]), tokens[start:start + 2000])
        if result.failed:
            raise RuntimeError(f"bulk failures: {list(result.failed.items())[:3]}")
    engine.refresh(index)
    engine.force_merge(index)


def designs(engine: ElasticsearchEngine, index: str) -> dict[str, Callable[[np.ndarray, list[str], int], Ranked]]:
    def search(body: dict) -> list[dict]:
        return list(engine.search_body(index, body)["hits"]["hits"])

    def two_requests(query: np.ndarray, tokens: list[str], window: int) -> Ranked:
        ids = [hit["sort"][1] for hit in search(first_stage_body(tokens, window, with_source=False))]
        found = search(rescore_body(query, ids, K))
        return [hit["_id"] for hit in found], [cosine_from_es_score(hit["_score"]) for hit in found]

    def client_side(query: np.ndarray, tokens: list[str], window: int) -> Ranked:
        body = first_stage_body(tokens, window)
        body["_source"] = True  # the stored vectors come back with the hits
        hits = search(body)
        matrix = np.asarray([hit["_source"]["vector"] for hit in hits], dtype=np.float64)
        cosines = matrix @ query / np.linalg.norm(matrix, axis=1) / np.linalg.norm(query)
        order = sorted(range(len(hits)), key=lambda i: (-cosines[i], hits[i]["_id"]))[:K]
        return [hits[i]["_id"] for i in order], [float(cosines[i]) for i in order]

    def knn_rescore(query: np.ndarray, tokens: list[str], window: int) -> Ranked:
        first = queries.first_stage_query(tokens)
        knn = {"field": "vector", "query_vector": [float(x) for x in query], "num_candidates": 10_000,
               "filter": first}
        body = {"size": K, "query": first, "_source": {"excludes": ["vector"]}, "track_total_hits": False,
                "rescore": {"window_size": window, "query": {"rescore_query": {"knn": knn}, "query_weight": 0.0,
                                                             "rescore_query_weight": 1.0}}}
        found = search(body)
        return [hit["_id"] for hit in found], [cosine_from_es_score(hit["_score"]) for hit in found]

    return {"(a) two requests": two_requests, "(b) vectors to the client": client_side,
            "(c) knn rescore_query": knn_rescore}


def oracle(vectors: np.ndarray, pin_tokens: list[list[str]], query: np.ndarray, tokens: list[str],
           window: int) -> tuple[Ranked, int]:
    """The window semantics in numpy: top `window` by tokens shared (ties by id), then exact cosine."""
    wanted = set(tokens)
    shared = np.array([len(wanted.intersection(row)) for row in pin_tokens])
    candidates = sorted(np.flatnonzero(shared), key=lambda row: (-shared[row], pin_id(row)))[:window]
    cosines = vectors[candidates].astype(np.float64) @ query / np.linalg.norm(vectors[candidates], axis=1)
    order = sorted(range(len(candidates)), key=lambda j: (-cosines[j], candidates[j]))[:K]
    return ([pin_id(candidates[j]) for j in order], [float(cosines[j]) for j in order]), int(np.count_nonzero(shared))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pins", type=int, default=20_000)
    parser.add_argument("--dim", type=int, default=128)
    args = parser.parse_args()
    url = os.environ.get("ELASTICSEARCH_URL")
    engine = ElasticsearchEngine(connect(url), where=url or "the managed node")
    rng = np.random.default_rng(7)
    vectors = clustered_unit_vectors(rng, args.pins, args.dim, noise=0.6)
    lsh = RandomHyperplaneLSH(dim=args.dim, tables=TABLES, bits=BITS, seed=3)
    index = f"bench-es-rescore-{args.pins}-{args.dim}"
    fill(engine, index, vectors, lsh)
    probes = clustered_unit_vectors(rng, QUERIES, args.dim, noise=0.3)
    query_tokens = lsh.query_tokens(probes, probes=0)
    pin_tokens = lsh.tokens(vectors)
    print(f"Elasticsearch {engine.version}, {args.pins} pins, dim {args.dim}, LSH {TABLES}x{BITS}, k {K}, "
          f"{QUERIES} queries")
    for window in WINDOWS:
        candidates = []
        for name, design in designs(engine, index).items():
            for query, tokens in zip(probes[:5], query_tokens[:5]):  # warm up
                design(query, tokens, window)
            times, agree = [], 0
            for query, tokens in zip(probes, query_tokens):
                started = time.perf_counter()
                ids, _ = design(query, tokens, window)
                times.append(time.perf_counter() - started)
                (expected, _), matched = oracle(vectors, pin_tokens, query, tokens, window)
                candidates.append(matched)
                agree += ids == expected
            p90 = sorted(times)[int(0.9 * len(times))]
            print(f"window {window:5d} {name:26s} p50 {1000 * statistics.median(times):7.1f} ms  p90 "
                  f"{1000 * p90:7.1f} ms  same top {K} as numpy: {agree}/{len(probes)}")
        print(f"  first-stage candidates per query (median): {statistics.median(candidates):.0f}")


if __name__ == "__main__":
    main()
