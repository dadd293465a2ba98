"""Where PinText wins and loses against BM25, per kind of query, on Home Depot's held-out training queries.

READS ../shared/data/real/homedepot/ (never committed; figures only). No server: BM25 is bm25s with Lucene's
k1 = 1.2, b = 0.75 over the same words PinText splits, PinText is the model's exact cosine over all titles (pin
vectors as ingest makes them). Metrics are the set's own: NDCG@10 with gain = relevance - 1 from relevance 2,
Recall@100 with relevant = relevance >= 2.33, over queries with a relevant product.

A query's kinds (a query can have several): `size` (a number: "3/4 in.", "2x4"), `model number` (a word mixing
letters and digits: "rth9580wf"), `unseen word` (a word the model's vocabulary lacks: misspellings, new names),
`one word`, and `plain` (none of these).

    python -m pintext.bench.query_kinds --model MODEL [--split 0] [--out docs/results/query-kinds]
"""

from __future__ import annotations

import argparse
import csv
import json
import math
from collections import defaultdict
from pathlib import Path

import numpy as np

from pintext.bench.realdata import DEFAULT_SHARED, HOMEDEPOT_RELEVANT, in_test, query_key
from pintext.encoder import Encoder
from pintext.exact_match import ExactMatch, rerank_ids
from pintext.pin_vectors import pin_vectors, unit_rows
from pintext.text import words

DEPTH = 100
KINDS = ("size", "model number", "unseen word", "one word", "plain")


def query_kinds(query: str, vocabulary: dict[str, int]) -> list[str]:
    tokens = words(query)
    kinds = []
    if any(token.isdigit() for token in tokens):
        kinds.append("size")
    if any(any(c.isdigit() for c in token) and any(c.isalpha() for c in token) for token in tokens):
        kinds.append("model number")
    if any(token not in vocabulary for token in tokens):
        kinds.append("unseen word")
    if len(tokens) == 1:
        kinds.append("one word")
    return kinds or ["plain"]


def ndcg_and_recall(ranking: np.ndarray, ids: list[str], judged: dict[str, float]) -> tuple[float, float]:
    gains = [judged.get(ids[i], 0.0) - 1 if judged.get(ids[i], 0.0) >= 2 else 0.0 for i in ranking[:10]]
    dcg = sum(gain / math.log2(rank + 2) for rank, gain in enumerate(gains))
    ideal = sorted((grade - 1 for grade in judged.values() if grade >= 2), reverse=True)[:10]
    idcg = sum(gain / math.log2(rank + 2) for rank, gain in enumerate(ideal))
    relevant = {doc for doc, grade in judged.items() if grade >= HOMEDEPOT_RELEVANT}
    found = {ids[i] for i in ranking[:DEPTH]}
    return (dcg / idcg if idcg else 0.0), len(relevant & found) / len(relevant)


def top(scores: np.ndarray) -> np.ndarray:
    part = np.argpartition(-scores, DEPTH)[:DEPTH]
    return part[np.argsort(-scores[part], kind="stable")]


def load(shared: Path, split: int) -> tuple[dict[str, str], dict[str, dict[str, float]], dict[str, str]]:
    titles: dict[str, str] = {}
    with (shared / "homedepot" / "products.csv").open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            titles[row["product_uid"].strip()] = row["title"].strip()
    judged: dict[str, dict[str, float]] = defaultdict(dict)
    text: dict[str, str] = {}
    with (shared / "homedepot" / "judgments.csv").open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            if in_test(row["query"], split) and row["product_uid"].strip() in titles:
                key = query_key(row["query"])
                judged[key][row["product_uid"].strip()] = float(row["relevance"])
                text.setdefault(key, row["query"])
    kept = {key: grades for key, grades in judged.items() if any(g >= HOMEDEPOT_RELEVANT for g in grades.values())}
    return titles, kept, text


def measure(model: Path, shared: Path, split: int, blend: float, match: ExactMatch | None = None) -> dict:
    """Per kind of query: BM25, PinText's exact cosine, PinText as served (cosine + the model's word-match signal,
    `match` unless given) and the blend of cosine and BM25."""
    import bm25s

    titles, judged, text = load(shared, split)
    ids = list(titles)
    encoder = Encoder.load(model)
    match = (match if match is not None else ExactMatch.load(model)).bound(encoder.word_vectors)
    vocabulary = encoder.tokenizer.get_vocab()
    pins = unit_rows(pin_vectors(encoder, [{"id": i, "title": titles[i]} for i in ids]))
    retriever = bm25s.BM25(k1=1.2, b=0.75, method="lucene")
    retriever.index([words(titles[i]) for i in ids], show_progress=False)
    per_kind: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for key, grades in judged.items():
        query = text[key]
        dense = pins @ unit_rows(encoder.encode([query]))[0]
        tokens = [token for token in words(query) if token in retriever.vocab_dict]
        lexical = retriever.get_scores(tokens) if tokens else np.zeros(len(ids))
        fused = blend * dense + (1 - blend) * lexical / max(float(lexical.max()), 1e-9)
        for system, scores in (("bm25", lexical), ("pintext", dense), ("served", dense), ("blend", fused)):
            ranking = top(scores)
            if system == "served":
                ranking = served_order(ranking, dense, ids, titles, query, match)
            ndcg, recall = ndcg_and_recall(ranking, ids, grades)
            for kind in [*query_kinds(query, vocabulary), "all"]:
                per_kind[kind][f"{system} ndcg@10"].append(ndcg)
                per_kind[kind][f"{system} recall@100"].append(recall)
    return {kind: {"queries": len(values["bm25 ndcg@10"]),
                   **{name: round(float(np.mean(v)), 4) for name, v in values.items()}}
            for kind, values in per_kind.items()}


def served_order(ranking: np.ndarray, dense: np.ndarray, ids: list[str], titles: dict[str, str], query: str,
                 match: ExactMatch) -> np.ndarray:
    """The cosine top `DEPTH` re-ranked by the word-match signal, as `pintext search` serves it."""
    position = {ids[i]: i for i in ranking}
    ranked = rerank_ids([(ids[i], float(dense[i])) for i in ranking], {ids[i]: titles[ids[i]] for i in ranking},
                        query, match)
    return np.array([position[pin_id] for pin_id, _ in ranked])


def matched(match: ExactMatch) -> str:
    return "matches, a missing word by its nearest title word" if match.nearest_words else "holds"


def report(figures: dict, model: Path, split: int, blend: float, match: ExactMatch) -> str:
    columns = ["bm25 ndcg@10", "pintext ndcg@10", "served ndcg@10", "blend ndcg@10", "bm25 recall@100",
               "pintext recall@100", "served recall@100", "blend recall@100"]
    lines = [f"# PinText against BM25 per kind of query (Home Depot, split {split})", "",
             f"`python -m pintext.bench.query_kinds --model {model} --split {split}`: exact cosine of the model "
             f"(`pintext`), the model as `pintext search` serves it (`served`: the cosine top {DEPTH} re-ranked by "
             f"cosine + {match.weight:g} x the share of query words a title {matched(match)}, pintext.exact_match), "
             f"BM25 (bm25s, k1 1.2, b 0.75), and their blend (PinText {blend} + BM25 max-normalized {1 - blend:.1f}) "
             "over all 54,667 titles; the set's own metrics. A query can be of several kinds.", "",
             "| kind | queries | " + " | ".join(columns) + " |", "|---|---:|" + "---:|" * len(columns)]
    for kind in [*KINDS, "all"]:
        if kind in figures:
            row = figures[kind]
            lines.append(f"| {kind} | {row['queries']} | " + " | ".join(f"{row[c]:.3f}" for c in columns) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--split", type=int, default=0)
    parser.add_argument("--blend", type=float, default=0.7, help="PinText's share in the blend")
    parser.add_argument("--match-weight", type=float, default=None,
                        help="the word-match weight of `served` (default: the model's match.json)")
    parser.add_argument("--shared", type=Path, default=DEFAULT_SHARED)
    parser.add_argument("--out", type=Path, default=Path("docs/results/query-kinds"))
    args = parser.parse_args(argv)
    if not (args.shared / "homedepot").is_dir():
        print(f"no Home Depot data at {args.shared}: nothing to measure")
        return 0
    match = ExactMatch.load(args.model)
    match = match if args.match_weight is None else match.with_weight(args.match_weight)
    figures = measure(args.model, args.shared, args.split, args.blend, match)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "report.md").write_text(report(figures, args.model, args.split, args.blend, match), encoding="utf-8")
    (args.out / "results.json").write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    print((args.out / "report.md").read_text(encoding="utf-8"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
