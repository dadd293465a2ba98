"""Offline evaluation of PinText models against BM25 and a random-initialized model.

Per task, on one split (default test):

- pairwise accuracy (the paper's): share of pairs with score(anchor, positive) > score(anchor, background),
  the background being the positive of a randomly drawn other pair of the split that is not a positive of
  the same anchor. Ties fail.
- recall@10, recall@100, MRR: each distinct anchor of the split ranks the task's CANDIDATE POOL = all
  distinct positives of the task over all its splits (by positive_id); its relevant items are its positives
  in the split. Ties rank pessimistically (a tie with a non-relevant item counts as losing), so a model that
  gives everything the same score does not look good.
- word coverage: share of the split's words (anchors + positives) in the vocabulary, and share of its texts
  with at least one known word.
- Spearman correlation on STS Benchmark dev (a general-language sanity check, one figure per model).

Dense models are evaluated through the torch-free `pintext.Encoder` of their runtime folder: what is served
is what is measured.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from pintext.constants import ANCHOR, ANCHOR_ID, POSITIVE, POSITIVE_ID, TEST
from pintext.encoder import Encoder
from pintext.pin_vectors import unit_rows

METRICS = ("pairwise_accuracy", "recall@10", "recall@100", "mrr", "token_coverage", "text_coverage")
STS_FILE = "sts-dev.csv"



def column_values(dataset, name: str) -> list:
    """A dataset column as a Python list, converted by Arrow at once (iterating the column formats row by row:
    on 40k pairs that cost more than the training itself)."""
    return dataset.select_columns([name]).to_dict()[name]

def default_sts_path(repo_root: Path | None = None) -> Path:
    """$PINTEXT_STS_DIR/sts-dev.csv, else ../shared/data/stsbenchmark/sts-dev.csv from the repository root."""
    if override := os.environ.get("PINTEXT_STS_DIR"):
        return Path(override) / STS_FILE
    root = repo_root or Path(__file__).resolve().parents[1]
    return root.parent / "shared" / "data" / "stsbenchmark" / STS_FILE


def read_sts(path: Path) -> tuple[list[str], list[str], np.ndarray]:
    """(sentences 1, sentences 2, gold scores) from an STS Benchmark TSV file."""
    first, second, gold = [], [], []
    with path.open(encoding="utf-8") as handle:
        for line_number, row in enumerate(csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE), start=1):
            if len(row) < 7:
                raise ValueError(f"{path}:{line_number}: expected 7 tab-separated fields, got {len(row)}")
            try:
                gold.append(float(row[4]))
            except ValueError:
                raise ValueError(f"{path}:{line_number}: field 5 (score) is not a number: {row[4]!r}") from None
            first.append(row[5])
            second.append(row[6])
    return first, second, np.asarray(gold)


@dataclass
class TaskData:
    """One task's split, prepared for ranking: pool, queries and their relevant pool items."""

    anchors: list[str]  # one per pair
    positive_index: np.ndarray  # pool index of each pair's positive
    background_index: np.ndarray  # pool index of each pair's random background positive
    pool_texts: list[str]
    query_texts: list[str]  # one per distinct anchor
    query_relevant: list[np.ndarray]  # pool indices relevant to each query
    coverage_texts: list[str]
    distractors_from: int = -1  # pool index where the corpus distractors start (-1: none)


def prepare_task(data, split: str = TEST, seed: int = 0, distractors: Sequence[tuple[str, str]] = ()) -> TaskData:
    """Build pool, queries and background pairs from a task's DatasetDict. `distractors` ((pin id, text) of the
    corpus's pins) join the pool after the positives, except pins whose id or text is already in it (a positive
    must not come back as a non-relevant copy of itself)."""
    def ids_of(rows, column: str, fallback: str) -> list[str]:
        return column_values(rows, column if column in rows.column_names else fallback)

    pool_ids: dict[str, int] = {}
    pool_texts: list[str] = []
    for part in data.values():
        for positive_id, text in zip(ids_of(part, POSITIVE_ID, POSITIVE), column_values(part, POSITIVE)):
            if positive_id not in pool_ids:
                pool_ids[positive_id] = len(pool_texts)
                pool_texts.append(text)
    distractors_from = len(pool_texts)
    known_texts = set(pool_texts)
    for pin_id, text in distractors:
        if text not in known_texts and pin_id not in pool_ids:
            known_texts.add(text)
            pool_texts.append(text)
    rows = data[split]
    anchors = column_values(rows, ANCHOR)
    positive_index = np.asarray([pool_ids[pid] for pid in ids_of(rows, POSITIVE_ID, POSITIVE)], dtype=np.int64)
    anchor_keys = ids_of(rows, ANCHOR_ID, ANCHOR)
    background_index = _draw_background(positive_index, anchor_keys, np.random.default_rng(seed))

    relevant_by_anchor: dict[str, set[int]] = {}
    anchor_text: dict[str, str] = {}
    for anchor_id, anchor, index in zip(anchor_keys, anchors, positive_index):
        relevant_by_anchor.setdefault(anchor_id, set()).add(int(index))
        anchor_text.setdefault(anchor_id, anchor)
    return TaskData(
        anchors=anchors,
        positive_index=positive_index,
        background_index=background_index,
        pool_texts=pool_texts,
        query_texts=[anchor_text[key] for key in relevant_by_anchor],
        query_relevant=[np.fromiter(sorted(values), dtype=np.int64) for values in relevant_by_anchor.values()],
        coverage_texts=anchors + column_values(rows, POSITIVE),
        distractors_from=distractors_from,
    )


def _draw_background(positive_index: np.ndarray, anchor_keys: list[str], rng: np.random.Generator) -> np.ndarray:
    """For each pair, the positive of another random pair of the split that is not a positive of the same
    anchor (that would be a false negative), when one exists."""
    relevant: dict[str, set[int]] = {}
    for key, index in zip(anchor_keys, positive_index):
        relevant.setdefault(key, set()).add(int(index))
    n = len(positive_index)
    draw = rng.integers(0, n, size=n)
    for _ in range(50):  # redraw the few clashes; bounded, since an anchor may own most of a tiny split
        clash = np.fromiter(
            (int(positive_index[d]) in relevant[key] for d, key in zip(draw, anchor_keys)), dtype=bool, count=n
        )
        if not clash.any():
            break
        draw[clash] = rng.integers(0, n, size=int(clash.sum()))
    return positive_index[draw]


def ranks_of_relevant(scores: np.ndarray, relevant: np.ndarray) -> np.ndarray:
    """1-based rank of each relevant item (`relevant`: distinct indices), pessimistic on ties: a tie with a
    non-relevant item counts as a loss, a tie between relevant items does not (their order among themselves changes
    no metric)."""
    relevant_scores = scores[relevant]
    at_least = relevant_scores[:, None]
    # Items at or above each relevant score, less the relevant ones among them (the others, without copying them out).
    others = np.count_nonzero(scores >= at_least, axis=1) - np.count_nonzero(relevant_scores >= at_least, axis=1)
    return 1 + others + np.count_nonzero(relevant_scores > at_least, axis=1)


def ranking_metrics(score_rows: Callable[[slice], np.ndarray], task: TaskData, chunk: int = 256) -> dict[str, float]:
    """recall@10, recall@100 and MRR over the pool; `score_rows(slice)` gives [queries, pool] scores."""
    recalls: dict[int, list[float]] = {10: [], 100: []}
    reciprocal_ranks: list[float] = []
    for start in range(0, len(task.query_texts), chunk):
        block = score_rows(slice(start, start + chunk))
        for row, relevant in zip(block, task.query_relevant[start : start + chunk]):
            ranks = ranks_of_relevant(row, relevant)
            for k in recalls:
                recalls[k].append(float(np.mean(ranks <= k)))
            reciprocal_ranks.append(1.0 / ranks.min())
    return {"recall@10": float(np.mean(recalls[10])), "recall@100": float(np.mean(recalls[100])),
            "mrr": float(np.mean(reciprocal_ranks))}


def evaluate_encoder(encoder: Encoder, task: TaskData) -> dict[str, float]:
    """All task metrics for a dense model."""
    pool = unit_rows(encoder.encode(task.pool_texts))
    anchors = unit_rows(encoder.encode(task.anchors))
    positive_cos = np.einsum("ij,ij->i", anchors, pool[task.positive_index])
    background_cos = np.einsum("ij,ij->i", anchors, pool[task.background_index])
    queries = unit_rows(encoder.encode(task.query_texts))
    metrics = {"pairwise_accuracy": float(np.mean(positive_cos > background_cos))}
    metrics.update(ranking_metrics(lambda rows: queries[rows] @ pool.T, task))
    coverage = encoder.coverage(task.coverage_texts)
    metrics.update(token_coverage=coverage.token_share, text_coverage=coverage.text_share)
    return metrics


def evaluate_bm25(task: TaskData) -> dict[str, float]:
    """All task metrics for BM25 (bm25s, Lucene variant, English stopwords) over the same pool."""
    import bm25s

    retriever = bm25s.BM25()
    retriever.index(bm25s.tokenize(task.pool_texts, stopwords="en", show_progress=False), show_progress=False)
    vocabulary = retriever.vocab_dict

    def score_one(tokens: list[str]) -> np.ndarray:
        known = [token for token in tokens if token in vocabulary]
        # A query with no indexed word matches nothing: all zeros (bm25s rejects an empty query).
        return retriever.get_scores(known) if known else np.zeros(len(task.pool_texts), dtype=np.float32)

    def score_texts(texts: Sequence[str]) -> np.ndarray:
        tokenized = bm25s.tokenize(list(texts), stopwords="en", return_ids=False, show_progress=False)
        return np.stack([score_one(tokens) for tokens in tokenized])

    wins = []
    for start in range(0, len(task.anchors), 256):  # chunks: a full score row per pair would not fit at scale
        block = score_texts(task.anchors[start : start + 256])
        rows = np.arange(len(block))
        positive, background = task.positive_index[start : start + 256], task.background_index[start : start + 256]
        wins.append(block[rows, positive] > block[rows, background])
    metrics = {"pairwise_accuracy": float(np.mean(np.concatenate(wins)))}
    metrics.update(ranking_metrics(lambda block: score_texts(task.query_texts[block]), task))
    metrics.update(token_coverage=float("nan"), text_coverage=float("nan"))
    return metrics


def sts_spearman(encoder: Encoder, sts_path: Path) -> float:
    """Spearman correlation between cosine and the gold similarity on STS Benchmark."""
    from scipy.stats import spearmanr

    first, second, gold = read_sts(sts_path)
    cosines = np.einsum("ij,ij->i", unit_rows(encoder.encode(first)), unit_rows(encoder.encode(second)))
    if len(cosines) < 2 or np.ptp(cosines) == 0 or np.ptp(np.asarray(gold, dtype=float)) == 0:
        return float("nan")  # no correlation is defined (a model that knows none of the words): shown as "—"
    return float(spearmanr(cosines, gold).statistic)


def random_encoder(like: Encoder, seed: int = 0) -> Encoder:
    """A random-initialized model with the same tokenizer and shape as `like` (the untrained baseline)."""
    table = np.random.default_rng(seed).normal(size=(like.vocab_size, like.dim)).astype(np.float32)
    return Encoder(like.tokenizer, table, unk_id=like.unk_id, fingerprint="random")


def evaluate_models(
    pairs: dict,
    encoders: dict[str, Encoder],
    *,
    split: str = TEST,
    bm25: bool = True,
    sts_path: Path | None = None,
    seed: int = 0,
) -> dict[str, dict[str, dict[str, float]]]:
    """{model: {task | 'sts': {metric: value}}} for every dense model, and BM25 when asked."""
    results: dict[str, dict[str, dict[str, float]]] = {name: {} for name in encoders}
    if bm25:
        results["BM25"] = {}
    for task_name, data in pairs.items():
        task = prepare_task(data, split=split, seed=seed)
        for name, encoder in encoders.items():
            results[name][task_name] = evaluate_encoder(encoder, task)
        if bm25:
            results["BM25"][task_name] = evaluate_bm25(task)
    if sts_path is not None and sts_path.is_file():
        for name, encoder in encoders.items():
            results[name]["sts"] = {"spearman": sts_spearman(encoder, sts_path)}
    return results
