"""Retrieval evaluation on graded judgments: the judgments readers and the metrics (pure: no torch, no server).

Judgments come in three shapes, all read into one `Judgments` (query id -> query text, query id -> {doc id: grade}):

- TREC qrels (`qid iter docid grade`, whitespace-separated) with a queries file (`qid<TAB>text`);
- a CSV with the columns query,doc_id,grade (query text inline: the text is its own id);
- a pairs folder (`pintext pairs` output): its `search/<split>` rows give query = anchor, doc = positive_id, grade 1.

A bad row stops the reader with one `LocatedRecordError` naming the file, line and field.

Metrics over one ranking (a list of doc ids, best first) and one query's grades:

- NDCG@10: DCG = sum over the top 10 of (2^grade - 1) / log2(rank + 1), ranks from 1 (the exponential gain and
  log2 discount of OpenSearch's `dcg` metric); the ideal DCG orders ALL judged docs of the query by grade.
- Recall@100: relevant docs (grade > 0) in the top 100 / relevant docs judged.
- MRR@10: 1 / rank of the first relevant doc in the top 10, 0 when there is none.

Means are over the queries with at least one relevant doc; unjudged docs have grade 0.
"""

from __future__ import annotations

import csv
import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pintext.constants import ANCHOR, POSITIVE_ID, SEARCH, TEST
from pintext.schemas import LocatedRecordError

NDCG_K = 10
RECALL_K = 100
MRR_K = 10
METRICS = ("ndcg@10", "recall@100", "mrr@10")
CSV_COLUMNS = ("query", "doc_id", "grade")
PAIRS_TASK = SEARCH
DEFAULT_PAIRS_SPLIT = TEST


# ---- judgments -------------------------------------------------------------------------------------------------


@dataclass
class Judgments:
    """Graded judgments: `queries` maps query id -> text, `grades` query id -> {doc id: grade}."""

    source: str
    queries: dict[str, str] = field(default_factory=dict)
    grades: dict[str, dict[str, int]] = field(default_factory=dict)
    duplicates: int = 0  # (query, doc) judged more than once; the highest grade is kept
    negative_grades: int = 0  # grades below 0 (some TREC qrels mark spam so); they count as 0

    def add(self, qid: str, text: str, doc_id: str, grade: int) -> None:
        if grade < 0:
            self.negative_grades += 1
            grade = 0
        self.queries.setdefault(qid, text)
        docs = self.grades.setdefault(qid, {})
        if doc_id in docs:
            self.duplicates += 1
            grade = max(grade, docs[doc_id])
        docs[doc_id] = grade

    @property
    def judgment_count(self) -> int:
        return sum(len(docs) for docs in self.grades.values())

    def relevant_queries(self) -> list[str]:
        """Query ids with at least one relevant (grade > 0) doc, in first-seen order."""
        return [qid for qid, docs in self.grades.items() if any(grade > 0 for grade in docs.values())]

    def restricted_to(self, corpus_ids: Iterable[str] | set[str]) -> tuple["Judgments", dict]:
        """The judgments of docs the corpus holds, and a count of what was left out (docs no system can rank)."""
        corpus = corpus_ids if isinstance(corpus_ids, set) else set(corpus_ids)
        kept = Judgments(self.source, duplicates=self.duplicates, negative_grades=self.negative_grades)
        missing_docs: set[str] = set()
        missing_judgments = missing_relevant = 0
        for qid, docs in self.grades.items():
            for doc_id, grade in docs.items():
                if doc_id in corpus:
                    kept.add_kept(qid, self.queries[qid], doc_id, grade)
                else:
                    missing_docs.add(doc_id)
                    missing_judgments += 1
                    missing_relevant += grade > 0
        still_relevant = set(kept.relevant_queries())
        lost = [qid for qid in self.relevant_queries() if qid not in still_relevant]
        return kept, {"judgments_absent_from_corpus": missing_judgments,
                      "relevant_judgments_absent_from_corpus": missing_relevant,
                      "docs_absent_from_corpus": len(missing_docs),
                      "queries_left_without_relevant_doc": len(lost)}

    def add_kept(self, qid: str, text: str, doc_id: str, grade: int) -> None:
        """Add an already-cleaned judgment (no duplicate or negative-grade counting)."""
        self.queries.setdefault(qid, text)
        self.grades.setdefault(qid, {})[doc_id] = grade


def _grade(value: str, source: str, line: int, field_name: str) -> int:
    try:
        return int(value.strip())
    except ValueError:
        raise LocatedRecordError(source, line, field_name, "not an integer grade", f"got {value!r}") from None


def _required(value: str | None, source: str, line: int, field_name: str) -> str:
    if value is None or not value.strip():
        raise LocatedRecordError(source, line, field_name, "missing")
    return value.strip()


def read_csv_judgments(path: str | Path) -> Judgments:
    """query,doc_id,grade rows (a header naming these columns first; other columns are ignored)."""
    source = str(path)
    judgments = Judgments(source)
    with Path(path).open(encoding="utf-8-sig", newline="") as handle:  # -sig: spreadsheet exports start with a BOM
        reader = csv.DictReader(handle)
        header = reader.fieldnames or []
        for column in CSV_COLUMNS:
            if column not in header:
                raise LocatedRecordError(source, 1, column, "missing from the header",
                                         f"want columns {','.join(CSV_COLUMNS)}, got {','.join(header) or 'none'}")
        for row in reader:
            line = reader.line_num
            if None in row:  # more fields than the header has
                raise LocatedRecordError(source, line, "<record>", "more fields than the header")
            query = _required(row["query"], source, line, "query")
            doc_id = _required(row["doc_id"], source, line, "doc_id")
            grade = _grade(_required(row["grade"], source, line, "grade"), source, line, "grade")
            judgments.add(query, query, doc_id, grade)
    return judgments


def read_trec_queries(path: str | Path) -> dict[str, str]:
    """qid<TAB>text lines."""
    source = str(path)
    queries: dict[str, str] = {}
    with Path(path).open(encoding="utf-8") as handle:
        for line, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            qid, tab, text = raw.rstrip("\n").partition("\t")
            if not tab:
                raise LocatedRecordError(source, line, "text", "missing", "want qid<TAB>text")
            queries[_required(qid, source, line, "qid")] = _required(text, source, line, "text")
    return queries


def read_trec_qrels(path: str | Path, queries_path: str | Path) -> Judgments:
    """`qid iter docid grade` lines; every qid must have a text in the queries file."""
    source = str(path)
    texts = read_trec_queries(queries_path)
    judgments = Judgments(source)
    with Path(path).open(encoding="utf-8") as handle:
        for line, raw in enumerate(handle, start=1):
            parts = raw.split()
            if not parts:
                continue
            if len(parts) != 4:
                raise LocatedRecordError(source, line, "<record>", "not a qrels line",
                                         f"want 4 fields 'qid iter docid grade', got {len(parts)}")
            qid, _, doc_id, grade = parts
            if qid not in texts:
                raise LocatedRecordError(source, line, "qid", "not in the queries file",
                                         f"{qid!r} has no line in {queries_path}")
            judgments.add(qid, texts[qid], doc_id, _grade(grade, source, line, "grade"))
    return judgments


def read_pairs_judgments(folder: str | Path, split: str = DEFAULT_PAIRS_SPLIT, task: str = PAIRS_TASK) -> Judgments:
    """A pairs folder's `<task>/<split>`: query = anchor, doc = positive_id, grade 1."""
    import datasets  # imported here: the other readers and the metrics need nothing heavy

    task_dir = Path(folder) / task
    if not task_dir.is_dir():
        raise LocatedRecordError(str(folder), "-", task, "no such task folder", f"{task_dir} is missing")
    splits = datasets.load_from_disk(str(task_dir))
    if split not in splits:
        raise LocatedRecordError(str(task_dir), "-", split, "no such split", f"splits: {', '.join(splits)}")
    rows = splits[split]
    judgments = Judgments(f"{task_dir}/{split}")
    for row_no, (anchor, positive_id) in enumerate(zip(rows[ANCHOR], rows[POSITIVE_ID]), start=1):
        anchor = _required(anchor, judgments.source, row_no, ANCHOR)
        judgments.add(anchor, anchor, _required(positive_id, judgments.source, row_no, POSITIVE_ID), 1)
    return judgments


def load_judgments(path: str | Path, queries: str | Path | None = None,
                   split: str = DEFAULT_PAIRS_SPLIT) -> Judgments:
    """A pairs folder, a .csv of query,doc_id,grade, or TREC qrels (which need `queries`)."""
    path = Path(path)
    if path.is_dir():
        return read_pairs_judgments(path, split)
    if not path.is_file():
        raise FileNotFoundError(2, "no such file", str(path))
    if path.suffix.lower() == ".csv":
        return read_csv_judgments(path)
    if queries is None:
        raise LocatedRecordError(str(path), "-", "--queries", "missing",
                                 "TREC qrels need a qid<TAB>text queries file (--queries)")
    return read_trec_qrels(path, queries)


# ---- metrics ---------------------------------------------------------------------------------------------------


def _gain(grade: int) -> float:
    return 2.0 ** grade - 1.0


def dcg(grades_in_rank_order: Sequence[int]) -> float:
    return sum(_gain(grade) / math.log2(rank + 1) for rank, grade in enumerate(grades_in_rank_order, start=1))


def ndcg_at_k(ranking: Sequence[str], grades: Mapping[str, int], k: int = NDCG_K) -> float:
    """DCG of the top k over the ideal DCG of all judged docs (0 when nothing is relevant)."""
    ideal = dcg(sorted(grades.values(), reverse=True)[:k])
    if ideal <= 0:
        return 0.0
    return dcg([grades.get(doc, 0) for doc in ranking[:k]]) / ideal


def recall_at_k(ranking: Sequence[str], grades: Mapping[str, int], k: int = RECALL_K) -> float:
    relevant = {doc for doc, grade in grades.items() if grade > 0}
    if not relevant:
        return 0.0
    return len(relevant.intersection(ranking[:k])) / len(relevant)


def mrr_at_k(ranking: Sequence[str], grades: Mapping[str, int], k: int = MRR_K) -> float:
    for rank, doc in enumerate(ranking[:k], start=1):
        if grades.get(doc, 0) > 0:
            return 1.0 / rank
    return 0.0


def query_metrics(ranking: Sequence[str], grades: Mapping[str, int]) -> dict[str, float]:
    return {"ndcg@10": ndcg_at_k(ranking, grades), "recall@100": recall_at_k(ranking, grades),
            "mrr@10": mrr_at_k(ranking, grades)}


def evaluate_rankings(rankings: Mapping[str, Sequence[str]], judgments: Judgments) -> dict:
    """Per-query metrics and their means over the queries with a relevant doc (a missing ranking scores 0)."""
    per_query = {qid: query_metrics(rankings.get(qid, []), judgments.grades[qid])
                 for qid in judgments.relevant_queries()}
    means = {metric: (statistics.fmean(values[metric] for values in per_query.values()) if per_query else 0.0)
             for metric in METRICS}
    return {"mean": means, "queries": len(per_query), "per_query": per_query}


def mean_and_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value), e.g. over data splits."""
    if not values:
        return 0.0, 0.0
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def top_k_indices(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the `k` highest scores, best first; equal scores keep index order (callers sort docs by id
    first, so ties go to the smaller id, as PinText's tie rule says)."""
    k = min(k, scores.shape[0])
    if k <= 0:
        return np.empty(0, dtype=np.int64)
    kth = np.partition(scores, scores.shape[0] - k)[scores.shape[0] - k]
    candidates = np.flatnonzero(scores >= kth)
    ordered = candidates[np.lexsort((candidates, -scores[candidates]))]
    return ordered[:k]
