"""Quality vs cost on the sample's search task: BM25, PinText, hybrid and all-MiniLM-L6-v2 (exact).

Pool and queries are the trainer's evaluation setup (`pintext.trainer.evaluate.prepare_task`): every distinct
positive pin of the search task is a candidate, each distinct test query's relevant pins are its positives.
Ranks are pessimistic (a tie with a non-relevant pin counts as a loss). Hybrid is reciprocal-rank fusion
(k = 60) of the BM25 and PinText rankings, computed offline. Cost is each model's encode (or BM25 index +
score) time for the pool and the queries, in texts/s.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pintext.bench.harness import markdown_table, ratio, stopwatch
from pintext.constants import SEARCH, TEST

RRF_K = 60


def ndcg_at_10(ranks: np.ndarray, relevant_count: int) -> float:
    """Binary-relevance NDCG@10 from the 1-based ranks of a query's relevant items."""
    gains = np.sum(1.0 / np.log2(ranks[ranks <= 10] + 1.0))
    ideal = np.sum(1.0 / np.log2(np.arange(1, min(relevant_count, 10) + 1) + 1.0))
    return float(gains / ideal) if ideal > 0 else 0.0


def pessimistic_ranks(scores: np.ndarray) -> np.ndarray:
    """1-based rank of every item of a score row; tied items all get the worst rank of their tie."""
    from scipy.stats import rankdata

    return rankdata(-scores, method="max").astype(np.int64)


def metrics_from_scores(score_rows: np.ndarray, relevant: Sequence[np.ndarray]) -> dict[str, float]:
    """recall@100 and NDCG@10 over queries (rows) given pool scores."""
    recalls, ndcgs = [], []
    for scores, wanted in zip(score_rows, relevant):
        ranks = pessimistic_ranks(scores)[wanted]
        recalls.append(float(np.mean(ranks <= 100)))
        ndcgs.append(ndcg_at_10(ranks, len(wanted)))
    return {"recall@100": float(np.mean(recalls)), "ndcg@10": float(np.mean(ndcgs))}


def rrf(*score_matrices: np.ndarray) -> np.ndarray:
    """Reciprocal-rank fusion of several [queries, pool] score matrices."""
    fused = np.zeros_like(score_matrices[0], dtype=np.float64)
    for matrix in score_matrices:
        fused += 1.0 / (RRF_K + np.vstack([pessimistic_ranks(row) for row in matrix]))
    return fused


def cosine_matrix(encode: Callable[[list[str]], np.ndarray], queries: list[str],
                  pool: list[str]) -> tuple[np.ndarray, float]:
    """[queries, pool] cosines and the encode rate (texts/s) over pool + queries."""
    from pintext.bench.lsh_sim import unit_rows

    with stopwatch() as timer:
        pool_vectors = unit_rows(np.asarray(encode(pool), dtype=np.float32))
        query_vectors = unit_rows(np.asarray(encode(queries), dtype=np.float32))
    return query_vectors @ pool_vectors.T, (len(pool) + len(queries)) / timer["seconds"]


def bm25_matrix(queries: list[str], pool: list[str]) -> tuple[np.ndarray, float]:
    """[queries, pool] BM25 scores (bm25s, English stop words, as the trainer's evaluation) and texts/s."""
    import bm25s

    with stopwatch() as timer:
        retriever = bm25s.BM25()
        retriever.index(bm25s.tokenize(pool, stopwords="en", show_progress=False), show_progress=False)
        vocabulary = retriever.vocab_dict
        tokenized = bm25s.tokenize(queries, stopwords="en", return_ids=False, show_progress=False)
        scores = np.stack([bm25_scores(retriever, [t for t in tokens if t in vocabulary], len(pool))
                           for tokens in tokenized])
    return scores, (len(pool) + len(queries)) / timer["seconds"]


def bm25_scores(retriever: Any, tokens: list[str], pool_size: int) -> np.ndarray:
    """BM25 scores of one tokenized query; all zeros when none of its words is indexed."""
    return retriever.get_scores(tokens) if tokens else np.zeros(pool_size)


def run(model_dir: Path, pairs_dir: Path) -> tuple[str, dict]:
    from pintext.bench.encode import MINILM_BATCH, load_minilm
    from pintext.encoder import Encoder
    from pintext.trainer.evaluate import prepare_task
    from pintext.trainer.train import load_pairs

    task = prepare_task(load_pairs(pairs_dir, [SEARCH])[SEARCH], split=TEST)
    queries, pool, relevant = task.query_texts, task.pool_texts, task.query_relevant
    encoder = Encoder.load(model_dir)
    bm25_scores, bm25_rate = bm25_matrix(queries, pool)
    pintext_scores, pintext_rate = cosine_matrix(encoder.encode, queries, pool)
    minilm = load_minilm()
    minilm_scores, minilm_rate = cosine_matrix(lambda texts: minilm.encode(texts, batch_size=MINILM_BATCH),
                                               queries, pool)
    results = {
        "BM25 (bm25s)": (metrics_from_scores(bm25_scores, relevant), bm25_rate),
        "PinText (exact cosine)": (metrics_from_scores(pintext_scores, relevant), pintext_rate),
        "hybrid: RRF(BM25, PinText)": (metrics_from_scores(rrf(bm25_scores, pintext_scores), relevant),
                                       1.0 / (1.0 / bm25_rate + 1.0 / pintext_rate)),
        "all-MiniLM-L6-v2 (exact cosine, zero-shot)": (metrics_from_scores(minilm_scores, relevant), minilm_rate),
    }
    rows = [{"system": name, "recall@100": metrics["recall@100"], "NDCG@10": metrics["ndcg@10"],
             "texts/s (encode or index+score)": rate, "x MiniLM speed": ratio(rate, minilm_rate)}
            for name, (metrics, rate) in results.items()]
    data = {"queries": len(queries), "pool": len(pool),
            "systems": {name: {**metrics, "texts_per_second": rate} for name, (metrics, rate) in results.items()}}
    markdown = "\n".join([
        f"Search task of the committed sample (`data/sample`, pairs built with `pintext pairs`), test split: "
        f"{len(queries):,} distinct queries ranking a pool of {len(pool):,} pins (every positive of the task). "
        "Exact ranking for every system (no LSH here: this is model quality). Hybrid is reciprocal-rank fusion "
        f"(k={RRF_K}) of the BM25 and PinText rankings. The cost column is texts/s over pool + queries.",
        "",
        markdown_table(rows),
    ])
    return markdown, data
