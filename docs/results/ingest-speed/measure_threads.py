"""Figures of docs/results/ingest-speed/report.md, "One BLAS thread": `pintext.open(...).ingest` with and without
`pintext.threads.one_blas_thread`, each followed by a plain bulk of the same pins (no vector, no tokens), rounds
alternated so that both see the same load; the client's CPU (this process) and the node's (its JVM, from /proc)
per pin beside the rates. Then the served search's client CPU a query, both ways, on the last index.

The "without" variant replaces the context manager by a no-op where ingest and search use it: everything else
(reader, encoder, tokens, bulk, node) is the same code.

    python docs/results/ingest-speed/measure_threads.py PINS.jsonl MODEL QUERIES.csv [ROUNDS] > figures.json

Needs the managed node running (`pintext opensearch up`); QUERIES.csv: a `query` column (the real-data split's
`test_qrels.csv`).
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import resource
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from pintext import open as open_pintext
from pintext.bench.catalogue import PLAIN_INDEX, plain_bulk, product_ingest
from pintext.bench.harness import load_average
from pintext.bench.node import open_node
from pintext.serving.opensearch import OpenSearchEngine

INDEX = "ingest-threads"
QUERIES = 300


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def process_cpu_seconds(pid: int) -> float:
    """utime + stime of another process (the node's JVM), from /proc/PID/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def node_pid() -> int:
    from pintext.servers.opensearch_node import NodeSettings, running_pid

    pid = running_pid(NodeSettings.from_env())
    if pid is None:
        raise SystemExit("no managed node runs: `pintext opensearch up` first")
    return pid


@contextlib.contextmanager
def no_limit() -> Iterator[None]:
    yield


@contextlib.contextmanager
def variant(limited: bool) -> Iterator[None]:
    """The code as it is, or with `one_blas_thread` a no-op where ingest and search call it."""
    import pintext.api.service as service_module
    import pintext.ingest.indexer as indexer_module

    if limited:
        yield
        return
    saved = indexer_module.one_blas_thread, service_module.one_blas_thread
    indexer_module.one_blas_thread = service_module.one_blas_thread = no_limit
    try:
        yield
    finally:
        indexer_module.one_blas_thread, service_module.one_blas_thread = saved


def timed(pid: int, work: Callable[[], Any], count: int) -> dict:
    client, node, began = cpu_seconds(), process_cpu_seconds(pid), time.perf_counter()
    work()
    seconds = time.perf_counter() - began
    return {"client_cpu_us_per_item": round((cpu_seconds() - client) / count * 1e6, 1),
            "node_cpu_us_per_item": round((process_cpu_seconds(pid) - node) / count * 1e6, 1),
            "seconds": round(seconds, 3)}


def main(argv: list[str]) -> int:
    pins_file, model, queries_file = Path(argv[0]), Path(argv[1]), Path(argv[2])
    rounds = int(argv[3]) if len(argv) > 3 else 3
    pins = [json.loads(line) for line in pins_file.open(encoding="utf-8")]
    with queries_file.open(encoding="utf-8") as rows:
        queries = list(dict.fromkeys(row["query"] for row in csv.DictReader(rows)))[:QUERIES]
    node = open_node()
    pid = node_pid()
    engine = OpenSearchEngine(node.client)
    service = open_pintext(model, url=node.url, index=INDEX)
    rows = []
    for round_no in range(rounds):
        for limited in (True, False):
            with variant(limited):
                ingest = product_ingest(service, pins_file, len(pins))  # tunes, then times the ingest alone
                meta = engine.meta(service.searcher().index)
                plain = plain_bulk(engine, 256, meta, pins)
                rows.append({"round": round_no + 1, "one_blas_thread": limited,
                             "ingest_docs_per_s": round(ingest["docs_per_s"]),
                             "plain_docs_per_s": round(plain["docs_per_s"]),
                             "ratio": round(ingest["docs_per_s"] / plain["docs_per_s"], 3), "load": load_average()})
                # The CPU of an ingest alone (no tuning): the same pins again, into the index just made.
                cpu = timed(pid, lambda: service.ingest(pins_file), len(pins))
                rows[-1]["reingest_cpu"] = cpu
                print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    searches = []
    for _ in range(2):
        for limited in (True, False):
            with variant(limited):
                latencies: list[float] = []

                def ask() -> None:
                    for query in queries:
                        began = time.perf_counter()
                        service.search(query, k=10)
                        latencies.append((time.perf_counter() - began) * 1000)

                cpu = timed(pid, ask, len(queries))
                searches.append({"one_blas_thread": limited, "p50_ms": round(statistics.median(latencies), 2),
                                 "p95_ms": round(sorted(latencies)[int(0.95 * len(latencies))], 2), **cpu})
                print(json.dumps(searches[-1]), file=sys.stderr, flush=True)
    service.delete(force=True)
    engine.delete(PLAIN_INDEX)
    json.dump({"pins": len(pins), "queries": len(queries), "ingest": rows, "search": searches}, sys.stdout, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
