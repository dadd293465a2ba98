"""Turn the real data sets in `../shared/data/real/` into PinText's generic inputs, for evaluation.

Nothing here is committed data: the files are read from the shared folder (their sources state no data licence)
and written under `out/real/` (git-ignored). Per data set and per split seed:

    out/real/<name>/corpus.jsonl                 pins: id, title[, description]
    out/real/<name>/split<S>/train_pairs.csv     anchor,positive,positive_id,weight (train + validation queries)
    out/real/<name>/split<S>/test_qrels.csv      query,doc_id,grade (held-out queries only; grade > 0 = relevant)
    out/real/bestbuy/split<S>/related_pairs.csv  anchor,positive,anchor_id,positive_id,weight: SKUs one user
                                                 clicked together (training queries only), for multitask runs

Queries are split by their normalized text (a query is in test for every judgment it has, or in none), so the test
queries are unseen in training, as a new user's queries are. `pintext pairs --import train_pairs.csv --val 0.1
--test 0` then picks the validation queries among the rest.

    python -m pintext.bench.realdata [--shared ../shared/data/real] [--out out/real] [--splits 3]
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from pintext.constants import ANCHOR, ANCHOR_ID, POSITIVE, POSITIVE_ID, WEIGHT
from pintext.text import normalize, words

DEFAULT_SHARED = Path("../shared/data/real")
TEST_SHARE = 0.2
# Crowdflower median_relevance 1-4 -> graded gain; 1 and 2 were judged (mostly) irrelevant.
CROWDFLOWER_GAIN = {4: 3, 3: 2, 2: 1, 1: 0}
CROWDFLOWER_POSITIVE = 3  # relevance >= 3 becomes a training pair
# Columns of the pair CSVs `pintext pairs --import` reads (the search task gets its anchor ids from the queries).
TRAIN_PAIR_COLUMNS = [ANCHOR, POSITIVE, POSITIVE_ID, WEIGHT]
RELATED_PAIR_COLUMNS = [ANCHOR, POSITIVE, ANCHOR_ID, POSITIVE_ID, WEIGHT]


def query_key(query: str) -> str:
    return " ".join(words(normalize(query)))


def in_test(query: str, seed: int) -> bool:
    digest = hashlib.blake2b(f"{seed}:{query_key(query)}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64 < TEST_SHARE


def _doc_id(prefix: str, *parts: str) -> str:
    return prefix + hashlib.blake2b("\x1f".join(parts).encode(), digest_size=8).hexdigest()


def _write_csv(path: Path, header: list[str], rows) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for row in rows:
            writer.writerow(row)
            count += 1
    return count


def _write_corpus(path: Path, pins: dict[str, dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for pin in pins.values():
            handle.write(json.dumps(pin, ensure_ascii=False) + "\n")


def crowdflower(shared: Path, out: Path, splits: int) -> dict:
    """Graded judgments (query, product, median relevance) -> corpus, train pairs, test qrels."""
    pins: dict[str, dict] = {}
    judged: list[tuple[str, str, int]] = []
    with (shared / "crowdflower" / "judgments.csv").open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            title, description = row["product_title"].strip(), row["product_description"].strip()
            doc = _doc_id("cf", title, description)
            pins.setdefault(doc, {"id": doc, "title": title, "description": description})
            judged.append((row["query"].strip(), doc, int(row["median_relevance"])))
    _write_corpus(out / "corpus.jsonl", pins)
    summary: dict[str, Any] = {"docs": len(pins), "judgments": len(judged),
                               "queries": len({query_key(q) for q, _, _ in judged})}
    for seed in range(splits):
        folder = out / f"split{seed}"
        train = [(q, pins[d]["title"], d, 1.0 if r == 4 else 0.5) for q, d, r in judged
                 if r >= CROWDFLOWER_POSITIVE and not in_test(q, seed)]
        test = [(q, d, CROWDFLOWER_GAIN[r]) for q, d, r in judged if in_test(q, seed)]
        summary[f"split{seed}"] = {
            "train_pairs": _write_csv(folder / "train_pairs.csv", TRAIN_PAIR_COLUMNS, train),
            "test_judgments": _write_csv(folder / "test_qrels.csv", ["query", "doc_id", "grade"], test),
            "test_queries": len({query_key(q) for q, _, _ in test}),
        }
    return summary


def bestbuy(shared: Path, out: Path, splits: int) -> dict:
    """A click log (user, sku, query) + SKU names -> corpus, train pairs (one per click), test qrels (clicked = 1)."""
    names: dict[str, str] = {}
    with (shared / "bestbuy" / "sku_names.tsv").open(encoding="utf-8") as handle:
        for line in handle:
            sku, _, name = line.rstrip("\n").partition("\t")
            if sku.strip() and name.strip():
                names[sku.strip()] = name.strip()
    pins = {f"sku{sku}": {"id": f"sku{sku}", "title": name} for sku, name in names.items()}
    _write_corpus(out / "corpus.jsonl", pins)
    clicks: Counter[tuple[str, str]] = Counter()
    user_clicks: list[tuple[str, str, str]] = []  # (user, query, doc): the related task's source
    unknown = 0
    with (shared / "bestbuy" / "clicks.csv").open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            doc = f"sku{row['sku'].strip()}"
            query = row["query"].strip()
            if doc not in pins or not words(query):
                unknown += 1
                continue
            clicks[(query, doc)] += 1
            user_clicks.append((row["user"].strip(), query, doc))
    summary: dict[str, Any] = {"docs": len(pins), "clicks_used": sum(clicks.values()), "clicks_skipped": unknown,
               "queries": len({query_key(q) for q, _ in clicks})}
    for seed in range(splits):
        folder = out / f"split{seed}"
        train = [(q, pins[d]["title"], d, 1.0) for (q, d), n in sorted(clicks.items()) if not in_test(q, seed)
                 for _ in range(n)]
        # Judgments per normalized query: every SKU clicked for it is relevant (grade 1).
        test_docs: dict[str, set[str]] = defaultdict(set)
        for (q, d) in clicks:
            if in_test(q, seed):
                test_docs[query_key(q)].add(d)
        test = [(q, d, 1) for q, docs in sorted(test_docs.items()) for d in sorted(docs)]
        related = _co_clicked(user_clicks, pins, seed)
        summary[f"split{seed}"] = {
            "train_pairs": _write_csv(folder / "train_pairs.csv", TRAIN_PAIR_COLUMNS, train),
            "related_pairs": _write_csv(folder / "related_pairs.csv",
                                        RELATED_PAIR_COLUMNS, related),
            "test_judgments": _write_csv(folder / "test_qrels.csv", ["query", "doc_id", "grade"], test),
            "test_queries": len(test_docs),
        }
    return summary


def _co_clicked(user_clicks: list[tuple[str, str, str]], pins: dict[str, dict], seed: int) -> list[tuple]:
    """Related-pins pairs: two SKUs the same user clicked (from training queries only, so no test query's clicks
    shape them), both directions, one row per user and pair."""
    by_user: dict[str, set[str]] = defaultdict(set)
    for user, query, doc in user_clicks:
        if not in_test(query, seed):
            by_user[user].add(doc)
    rows = []
    for docs in by_user.values():
        for first in sorted(docs):
            for second in sorted(docs):
                if first != second:
                    rows.append((pins[first]["title"], pins[second]["title"], first, second, 1.0))
    return rows


# Home Depot relevance is a raters' mean in 1..3. The set's own conventions: relevant (recall) = relevance >= 2.33;
# here grade 2 from 2.67, grade 1 from 2.33, else 0 (the project's metrics take integer grades). Training pairs are
# the judged products at relevance >= 2, weighted by (relevance - 1) / 2; related pairs are two products relevant to
# the same training query (both directions, at most RELATED_PER_QUERY products a query).
HOMEDEPOT_TRAIN_FROM = 2.0
HOMEDEPOT_RELEVANT = 2.33
HOMEDEPOT_GRADE_2 = 2.67
RELATED_PER_QUERY = 4


def _homedepot_grade(relevance: float) -> int:
    return 2 if relevance >= HOMEDEPOT_GRADE_2 else 1 if relevance >= HOMEDEPOT_RELEVANT else 0


def homedepot(shared: Path, out: Path, splits: int) -> dict:
    """Product titles + graded judgments -> corpus (every product), train and related pairs, test qrels."""
    pins: dict[str, dict] = {}
    with (shared / "homedepot" / "products.csv").open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            pins[f"hd{row['product_uid'].strip()}"] = {"id": f"hd{row['product_uid'].strip()}",
                                                       "title": row["title"].strip()}
    _write_corpus(out / "corpus.jsonl", pins)
    judged: list[tuple[str, str, float]] = []
    with (shared / "homedepot" / "judgments.csv").open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            doc = f"hd{row['product_uid'].strip()}"
            if doc in pins and words(row["query"]):
                judged.append((row["query"].strip(), doc, float(row["relevance"])))
    summary: dict[str, Any] = {"docs": len(pins), "judgments": len(judged),
                               "queries": len({query_key(q) for q, _, _ in judged})}
    for seed in range(splits):
        folder = out / f"split{seed}"
        train = [(q, pins[d]["title"], d, round((r - 1) / 2, 4)) for q, d, r in judged
                 if r >= HOMEDEPOT_TRAIN_FROM and not in_test(q, seed)]
        by_query: dict[str, list[str]] = defaultdict(list)
        for q, d, r in judged:
            if r >= HOMEDEPOT_RELEVANT and not in_test(q, seed) and d not in by_query[query_key(q)]:
                by_query[query_key(q)].append(d)
        related = [(pins[a]["title"], pins[b]["title"], a, b, 1.0) for docs in by_query.values()
                   for a in docs[:RELATED_PER_QUERY] for b in docs[:RELATED_PER_QUERY] if a != b]
        test = [(q, d, _homedepot_grade(r)) for q, d, r in judged if in_test(q, seed)]
        summary[f"split{seed}"] = {
            "train_pairs": _write_csv(folder / "train_pairs.csv", TRAIN_PAIR_COLUMNS, train),
            "related_pairs": _write_csv(folder / "related_pairs.csv", RELATED_PAIR_COLUMNS, related),
            "test_judgments": _write_csv(folder / "test_qrels.csv", ["query", "doc_id", "grade"], test),
            "test_queries": len({query_key(q) for q, _, _ in test}),
        }
    return summary


DATASETS = {"crowdflower": crowdflower, "bestbuy": bestbuy, "homedepot": homedepot}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shared", type=Path, default=DEFAULT_SHARED, help="the shared real-data folder")
    parser.add_argument("--out", type=Path, default=Path("out/real"))
    parser.add_argument("--splits", type=int, default=3)
    args = parser.parse_args(argv)
    if not args.shared.is_dir():
        print(f"no real data at {args.shared}: nothing to prepare")
        return 1
    summary = {name: build(args.shared, args.out / name, args.splits) for name, build in DATASETS.items()}
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
