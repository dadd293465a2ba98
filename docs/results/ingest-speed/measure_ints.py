"""Figures of docs/results/ingest-speed/report.md, "One-byte vectors as JSON integers": what the node's bulk costs
for the same int8 vector written as JSON floats (`-3.0`, what `pin_document` sent before 748e9aa) and as JSON
integers (`-3`, what it sends now), with a plain bulk of the same pins (no vector, no tokens) as the baseline.

Every variant goes through the engine's own bulk (`Engine.write_docs`: `streaming_bulk`, 500 a request, one
request in flight) into a fresh index made with the same mapping and `_meta` (`Engine.create`), rounds
interleaved so that each variant sees the same load. The vectors and tokens are computed once, before any timing:
what is timed is the serialization, the request and the node's indexing.

    python docs/results/ingest-speed/measure_ints.py PINS.jsonl MODEL_DIR [URL] [ROUNDS] [PINS] > figures.json
"""

from __future__ import annotations

import itertools
import json
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from pintext.bench.harness import load_average
from pintext.encoder import Encoder
from pintext.pin_vectors import pin_vectors
from pintext.quantize import INT8, served_vectors
from pintext.serving.engines import EngineOptions, open_engine
from pintext.serving.meta import index_meta
from pintext.tokens.centroids import fit_centroids

BATCH = 500
CENTROIDS = 1399  # what `auto` tuned on the 54,667 Home Depot titles (docs/results/tokens-default)


def docs_of(pins: list[dict], vectors: np.ndarray, tokens: list[list[str]]) -> dict[str, Callable[[], Iterator]]:
    return {
        "plain": lambda: ((pin["id"], pin) for pin in pins),
        "floats": lambda: ((pin["id"], {**pin, "lsh_tokens": t, "vector": v.astype(np.float32)})
                           for pin, v, t in zip(pins, vectors, tokens)),
        "integers": lambda: ((pin["id"], {**pin, "lsh_tokens": t, "vector": v})
                             for pin, v, t in zip(pins, vectors, tokens)),
    }


def prepared(argv: list[str]) -> tuple[str, int, Encoder, list[dict], np.ndarray]:
    """The command line (PINS.jsonl MODEL_DIR [URL] [ROUNDS] [PINS]) read, then the first PINS pins and their
    int8 vectors as served: (url, rounds, encoder, pins, vectors). measure_smile.py reads it the same way."""
    pins_file, model = Path(argv[0]), Path(argv[1])
    url = argv[2] if len(argv) > 2 else "http://127.0.0.1:9200"
    rounds = int(argv[3]) if len(argv) > 3 else 3
    limit = int(argv[4]) if len(argv) > 4 else 20_000
    encoder = Encoder.load(model)
    with pins_file.open(encoding="utf-8") as lines:
        pins = [json.loads(line) for line in itertools.islice(lines, limit)]
    vectors = served_vectors(np.concatenate([pin_vectors(encoder, pins[start:start + BATCH])
                                             for start in range(0, len(pins), BATCH)]), INT8)
    return url, rounds, encoder, pins, vectors


def main(argv: list[str]) -> int:
    url, rounds, encoder, pins, vectors = prepared(argv)
    family = fit_centroids(vectors.astype(np.float32), centroids=CENTROIDS, spill=2)
    tokens = family.tokens(vectors.astype(np.float32))
    meta = index_meta(encoder.fingerprint, encoder.dim, family, vector_type=INT8)
    engine = open_engine("opensearch", EngineOptions(url=url))
    variants = docs_of(pins, vectors, tokens)
    rows = []
    for round_no in range(rounds):
        for name, docs in variants.items():
            index = f"ints-speed-{name}"
            engine.delete(index)
            engine.create(index, encoder.dim, meta)
            began = time.perf_counter()
            outcome = engine.write_docs(index, docs(), batch=BATCH)
            seconds = time.perf_counter() - began
            if outcome.failed:
                raise RuntimeError(f"{name}: {list(outcome.failed.items())[:3]}")
            rows.append({"round": round_no + 1, "variant": name, "docs_per_s": round(len(pins) / seconds),
                         "load": load_average()})
            engine.delete(index)
    json.dump({"pins": len(pins), "rows": rows}, sys.stdout, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
