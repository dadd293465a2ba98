"""Figures of docs/results/ingest-speed/report.md, "One-byte vectors": store, ingest speed and served-search p50 of
the pins index with float32 vectors against int8 ones (`pintext.quantize`), with a plain bulk as the baseline.

The token family is tuned once (on the file, `--tokens auto`, the default) into a first index; every later index is
made with that very `_meta` (only `vector_type` changed), so every run writes the same tokens and no run tunes.
Then, per round, interleaved on the same node: a plain bulk of the pins (no vector, no tokens), PinText's ingest
into a float32 index, into an int8 one (`pintext.open(...).ingest`, what `pintext ingest` runs), each store after a
flush and after a force-merge to one segment. Once: Lucene HNSW (m 16) indexes of the same pins' vectors, float
(unit length, as the benchmarks build it) and int8 (`data_type: byte`), each with the board keyword (the
comparator of docs/benchmarks.md's "store <= HNSW m 16's index"). Then the served search (k = 10, the
exact-match re-rank off: the engine's part) of each query on both indexes in turn: the node's `took` and the
client's wall time.

    python docs/results/ingest-speed/measure_bytes.py PINS.jsonl MODEL_DIR QUERIES.txt [URL] [ROUNDS] [TOKENS] \
        > figures.json   # TOKENS: auto (default), kmeans or lsh, as `ingest --tokens`
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import pintext
from pintext.bench.ingest import BATCH, drop, plain_bulk
from pintext.encoder import Encoder
from pintext.quantize import FLOAT32, INT8
from pintext.serving.engines import EngineOptions, open_engine
from pintext.serving.meta import VECTOR_TYPE_KEY
from pintext.serving.rollout import version_name
from pintext.serving.searcher import Searcher

NAME = "bytes-speed"
# Lucene caches an index's store size for 10 s (`index.store.stats_refresh_interval`): wait that out before reading
# the size again after a force-merge.
STORE_STATS_CACHE_S = 11


def load() -> str:
    return "load average " + ", ".join(f"{value:.1f}" for value in os.getloadavg())


def store(engine: Any, index: str) -> dict:
    flushed = engine.stats(index, flush=True)
    engine.force_merge(index, 1)
    time.sleep(STORE_STATS_CACHE_S)
    merged = engine.stats(index, flush=True)
    return {"docs": flushed.docs, "flushed_bytes": flushed.size_bytes, "merged_bytes": merged.size_bytes,
            "segments_before_merge": flushed.segments}


def tuned_meta(engine: Any, url: str, pins: Path, model: Path, tokens: str) -> dict:
    """Tune the token family once on the file (the ingest `pintext ingest --tokens TOKENS` runs); keep its `_meta`."""
    served = pintext.open(model, url=url, index=NAME, engine="opensearch")
    started = time.perf_counter()
    served.ingest(pins, batch=BATCH, checkpoint=pins.with_name(f"{pins.name}.tune.bench-checkpoint.json"),
                  tokens=tokens)
    print(f"tuned and ingested once in {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
    meta = engine.meta(engine.alias_target(NAME))
    drop(engine, NAME)
    return meta


def pintext_run(engine: Any, url: str, pins: Path, model: Path, meta: dict, vector_type: str) -> dict:
    """PinText's ingest into a fresh index made with `meta` and `vector_type` (no tuning)."""
    encoder = Encoder.load(model)
    name = f"{NAME}-{vector_type}"
    drop(engine, name)
    concrete = version_name(name, encoder.fingerprint)
    engine.create(concrete, encoder.dim, {**meta, VECTOR_TYPE_KEY: vector_type})
    engine.point_alias(name, concrete)
    served = pintext.open(model, url=url, index=name, engine="opensearch")
    before = load()
    started = time.perf_counter()
    summary = served.ingest(pins, batch=BATCH, workers=1,
                            checkpoint=pins.with_name(f"{pins.name}.{name}.bench-checkpoint.json"))
    wall = time.perf_counter() - started
    request = engine.bulk_request(concrete, [{"id": "x", "title": "x"}], [served_vector(engine, concrete, encoder)],
                                  [["c0_1"]])
    return {"vector_type": vector_type, "index": concrete, "docs": summary["indexed"], "wall_seconds": wall,
            "docs_per_second_wall": summary["indexed"] / wall, "docs_per_second_loop": summary["docs_per_second"],
            "load_before": before, "load_after": load(), "bulk_doc_line_chars": len(request[1]),
            **store(engine, concrete)}


def served_vector(engine: Any, index: str, encoder: Encoder) -> Any:
    """One pin's vector as the index holds it (for the size of one bulk document line)."""
    from pintext.pin_vectors import pin_vectors
    from pintext.quantize import served_vectors
    from pintext.serving.meta import vector_type_of

    vector = pin_vectors(encoder, [{"id": "x", "title": "stainless steel microwave over the range"}])[0]
    return served_vectors(vector, vector_type_of(engine.meta(index)))


def plain_run(engine: Any, pins: Path, dim: int) -> dict:
    index = f"{NAME}-plain"
    before = load()
    docs, seconds = plain_bulk(engine, pins, index, dim)
    figures = {"docs": docs, "seconds": seconds, "docs_per_second": docs / seconds, "load_before": before,
               "load_after": load(), **store(engine, index)}
    engine.delete(index)
    return figures


def hnsw_runs(engine: Any, pins: Path, model: Path) -> dict:
    """Store of Lucene HNSW m 16 over the pins' vectors (with the board keyword), float and int8."""
    import numpy as np

    from pintext.bench.filtered import hnsw_body
    from pintext.pin_vectors import pin_vectors, unit_rows
    from pintext.quantize import quantize_int8

    records = [json.loads(line) for line in open(pins, encoding="utf-8")]
    vectors = pin_vectors(Encoder.load(model), records)
    known = np.linalg.norm(vectors, axis=1) > 0
    figures = {}
    for vector_type, values in ((FLOAT32, unit_rows(vectors)), (INT8, quantize_int8(vectors))):
        index = f"{NAME}-hnsw-{vector_type}"
        engine.delete(index)
        body = hnsw_body(vectors.shape[1])
        if vector_type == INT8:
            field = body["mappings"]["properties"]["vector"]
            field["data_type"] = "byte"
            field["method"]["space_type"] = "cosinesimil"
        engine.create_plain(index, body["mappings"], body["settings"])
        docs = ((pin["id"], {"board": pin.get("board"), "vector": row})
                for pin, row, ok in zip(records, values, known) if ok)
        outcome = engine.write_docs(index, docs, batch=BATCH)
        if outcome.failed:
            raise RuntimeError(f"HNSW bulk failed: {list(outcome.failed.items())[:3]}")
        engine.resume_refresh(index)
        figures[vector_type] = store(engine, index)
        engine.delete(index)
    return figures


def search_p50(engine: Any, model: Path, queries: list[str], indexes: dict[str, str]) -> dict:
    """Each query on every index in turn (k = 10): the node's took and the client's wall time, median and p90."""
    encoder = Encoder.load(model)
    searchers = {label: Searcher.for_index(engine, index) for label, index in indexes.items()}
    took = engine.record_took()
    timings: dict[str, dict[str, list[float]]] = {label: {"took_ms": [], "wall_ms": []} for label in indexes}
    vectors = [vector for vector in encoder.encode(queries) if vector.any()]
    for warmup in vectors[:20]:
        for searcher in searchers.values():
            searcher.search(warmup, k=10)
    for vector in vectors:
        for label, searcher in searchers.items():
            mark = len(took)
            started = time.perf_counter()
            searcher.search(vector, k=10)
            timings[label]["wall_ms"].append((time.perf_counter() - started) * 1000)
            timings[label]["took_ms"].append(sum(took[mark:]))
    return {label: {"queries": len(vectors), **{f"{key}_p50": statistics.median(values) for key, values in
                                                 series.items()},
                    **{f"{key}_p90": statistics.quantiles(values, n=10)[-1] for key, values in series.items()}}
            for label, series in timings.items()} | {"load": load()}


def main(pins: Path, model: Path, queries_file: Path, url: str, rounds: int, tokens: str) -> dict:
    engine = open_engine("opensearch", EngineOptions(url=url, timeout=120))
    dim = Encoder.load(model).dim
    meta = tuned_meta(engine, url, pins, model, tokens)
    figures: dict[str, Any] = {"node": engine.describe(), "pins": sum(1 for _ in open(pins, encoding="utf-8")),
                               "tokens": meta["tokens"]["kind"], "rounds": []}
    for round_number in range(rounds):
        runs = {"plain": plain_run(engine, pins, dim)}
        for vector_type in ((FLOAT32, INT8) if round_number % 2 == 0 else (INT8, FLOAT32)):
            runs[vector_type] = pintext_run(engine, url, pins, model, meta, vector_type)
        figures["rounds"].append(runs)
        print(json.dumps(runs), file=sys.stderr, flush=True)
    figures["hnsw"] = hnsw_runs(engine, pins, model)
    queries = [line.strip() for line in open(queries_file, encoding="utf-8") if line.strip()]
    figures["search"] = search_p50(engine, model, queries, {vector_type: f"{NAME}-{vector_type}"
                                                             for vector_type in (FLOAT32, INT8)})
    for vector_type in (FLOAT32, INT8):
        drop(engine, f"{NAME}-{vector_type}")
    return figures


if __name__ == "__main__":
    arguments = sys.argv[1:]
    print(json.dumps(main(Path(arguments[0]), Path(arguments[1]), Path(arguments[2]),
                          arguments[3] if len(arguments) > 3 else "http://127.0.0.1:9200",
                          int(arguments[4]) if len(arguments) > 4 else 3,
                          arguments[5] if len(arguments) > 5 else "auto"), indent=2))
