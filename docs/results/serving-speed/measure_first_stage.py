"""Figures of docs/results/serving-speed/report.md: could the node score fewer pins exactly for the same recall?

Offline (numpy only, no node in the timing): the codebook an index serves (read from its `_meta`), the corpus' int8
pin vectors as served, and held-out queries. For each probe count P the first stage matches every pin holding one of
the query's P + 1 nearest centroids (what PinText serves: all of them scored exactly); the variant ranks those pins
by a cheap proxy an inverted index can compute, the similarity of the query to the probed cells a pin is in (`sum`
of its cells', or the `max`), and scores only the top W exactly. Recall@10 against exact cosine over every pin.

    python docs/results/serving-speed/measure_first_stage.py MODEL CORPUS.jsonl QRELS.csv URL INDEX [QUERIES] > out.json
"""

from __future__ import annotations

import csv
import json
import sys

import numpy as np
from opensearchpy import OpenSearch

from pintext.encoder import Encoder
from pintext.pin_vectors import pin_vectors
from pintext.quantize import quantize_int8
from pintext.serving.meta import family_from_meta
from pintext.tokens.centroids import CentroidTokens
from pintext.tokens.recall import unit_rows

PROBES = (95, 127, 158, 191, 255, 383)
WINDOWS = (250, 500, 1000, 2000)


def served_units(vectors: np.ndarray) -> np.ndarray:
    return unit_rows(quantize_int8(vectors).astype(np.float32))


def recall_of(cos: np.ndarray, cell_sims: np.ndarray, cell_rank: np.ndarray, cells: np.ndarray, exact_top: np.ndarray,
              probes: int, window: int, proxy: str) -> tuple[float, float]:
    """Mean recall@10 and pins scored exactly a query, for one probe count, window (0: every match) and proxy."""
    recall, scored = 0.0, 0
    for row in range(len(cos)):
        probed = cell_rank[row][cells] <= probes  # [pins, spill]
        matched = np.flatnonzero(probed.any(axis=1))
        if window and len(matched) > window:
            sims = np.where(probed[matched], cell_sims[row][cells[matched]], -np.inf)
            score = sims.max(axis=1) if proxy == "max" else np.where(np.isfinite(sims), sims, 0.0).sum(axis=1)
            matched = matched[np.argpartition(-score, window)[:window]]
        scored += len(matched)
        found = matched[np.argsort(-cos[row, matched])[:10]]
        recall += len(set(found.tolist()) & set(exact_top[row].tolist())) / 10
    return recall / len(cos), scored / len(cos)


def main(argv: list[str]) -> int:
    model, corpus, qrels, url, index = argv[:5]
    limit = int(argv[5]) if len(argv) > 5 else 1000
    meta = next(iter(OpenSearch(url).indices.get_mapping(index=index).values()))["mappings"]["_meta"]
    family = family_from_meta(index, meta)
    if not isinstance(family, CentroidTokens):
        raise SystemExit(f"{index} serves {type(family).__name__}, not learned centroids")
    encoder = Encoder.load(model)
    with open(corpus, encoding="utf-8") as lines:
        pins = [json.loads(line) for line in lines]
    vectors = pin_vectors(encoder, pins)
    units = served_units(vectors[np.linalg.norm(vectors, axis=1) > 0])
    with open(qrels, encoding="utf-8", newline="") as handle:
        texts = list(dict.fromkeys(row["query"] for row in csv.DictReader(handle)))
    query_vectors = encoder.encode(texts)
    query_vectors = query_vectors[np.linalg.norm(query_vectors, axis=1) > 0]
    pick = np.random.default_rng(1).permutation(len(query_vectors))[:limit]
    queries = served_units(query_vectors[pick])
    codebook = family.codebooks[0]
    cells = family.nearest(units, family.spill)[:, 0, :]
    cos = queries @ units.T
    cell_sims = queries @ codebook.T
    order = np.argsort(-cell_sims, axis=1)
    cell_rank = np.empty_like(order)
    cell_rank[np.arange(len(queries))[:, None], order] = np.arange(codebook.shape[0])[None, :]
    exact_top = np.argsort(-cos, axis=1)[:, :10]
    rows: list[dict] = []
    for probes in PROBES:
        recall, scored = recall_of(cos, cell_sims, cell_rank, cells, exact_top, probes, 0, "sum")
        rows.append({"probes": probes, "window": None, "proxy": None, "recall_at_10": round(recall, 4),
                     "scored": round(scored)})
        for window in WINDOWS:
            for proxy in ("sum", "max"):
                recall, scored = recall_of(cos, cell_sims, cell_rank, cells, exact_top, probes, window, proxy)
                rows.append({"probes": probes, "window": window, "proxy": proxy, "recall_at_10": round(recall, 4),
                             "scored": round(scored)})
    json.dump({"pins": len(units), "queries": len(queries), "centroids": family.centroids, "spill": family.spill,
               "served_probes": meta.get("serving", {}).get("probes"), "rows": rows}, sys.stdout, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
