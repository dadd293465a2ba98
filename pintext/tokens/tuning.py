"""What every token tuner shares: the targets and sample sizes, the cost model, the choice rule, the tuning sample,
and the one result type (`TuneResult`) index creation stores whatever the family.

Pure numpy, no I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

import numpy as np

# The cost model, in "postings visited" units, calibrated on the real node (bench/retrieval.py refits it on every
# run and the report shows the fit). On the 2.19 node with 100k pins, fits of the server `took` gave one term
# clause ~110 postings on 8-14-bit tokens and ~500 on 16-bit ones (a terms-dictionary seek and an iterator per
# clause; many tables of many bits make hundreds of rare terms), and one pin rescored by the knn_score script
# ~10 postings. A first model that counted postings only picked 256 tables x 16 bits, which the node ran 5x
# slower than 64 x 8 at the same recall.
CLAUSE_COST = 200.0
RESCORE_COST = 10.0
# OpenSearch refuses a rescore window above index.max_rescore_window (10,000 by default).
MAX_RESCORE_WINDOW = 10_000

DEFAULT_TARGET_RECALL = 0.95
# A setting reaches the target when its recall, less this many standard errors of the mean over the tuning
# queries, does (a one-sided 95% bound). The recall is a mean over ~200 sampled queries whose per-query recall@10
# varies by ~0.1, so a setting measured right at the target serves other queries less than the target half the
# time: on 54,667 Home Depot titles one draw of 200 stand-ins put a setting at 0.954 that 1,000 of them put at
# 0.966, and real queries' served recall at one tuned setting measured 0.949 on 300 queries and 0.953 on 1,000
# (docs/serving.md, "How far to trust the printed recall").
TARGET_CONFIDENCE_Z = 1.645
DEFAULT_TUNE_QUERIES = 200
TUNE_K = 10
# Deeper result lists (an evaluation's top 100) need a wider window for the same recall: for the chosen setting
# the window that keeps recall@DEEP_K at the target is tuned too, and search uses it when asked for more than TUNE_K.
DEEP_K = 100
# Above this many pins the tuner sweeps a uniform sample and scales the chosen window by corpus / sample. That
# errs on the safe side: a neighbour of a given cosine ranks in the first stage among a share of the pins that
# does not depend on the corpus size, so the scaled window keeps it as often, while the sample's own top 10 lie
# farther from the query than the full corpus' top 10 and are harder to keep: the recall measured on the sample
# is a lower bound of the full corpus' (bench/REPORT.md checks the chosen settings on the real node).
MAX_TUNE_CORPUS = 20_000
# What users type is shorter than what pins say: real product-search queries are 2-5 words (median 3), while a pin
# is a title and more. Pins used whole as stand-in queries sit closer to their neighbours than real queries do: a
# setting tuned on them kept recall@10 0.957 at tuning and 0.938 on real queries (issue 20). Without a query sample
# the tuner takes pins' titles cut to QUERY_WORDS words instead (`query_like_texts`). Measured on 54,667 real
# product titles and 1,750 held-out real queries, one 512-centroid codebook, recall@10 at 31/63 probes: real
# queries 0.944/0.966; titles cut to 2-4 words 0.923/0.952, to 3-5 words 0.938/0.963, to 4-6 words 0.953/0.978;
# whole pins 0.978/0.989. Titles open with a brand or a model line more often than queries do, so one word more
# than a query's median tracks the real recall best.
QUERY_WORDS = (3, 5)
# `query_source` of a TuneResult: sampled pins whole, given query texts, or titles cut to QUERY_WORDS.
SOURCE_PINS, SOURCE_QUERIES, SOURCE_TITLES = "pins", "queries", "pin titles"


def cost_of(postings: float, rescored: float, clauses: int) -> float:
    """Relative work of one search: postings visited + weighted rescored pins + weighted term clauses."""
    return float(postings) + RESCORE_COST * float(rescored) + CLAUSE_COST * float(clauses)


def standard_error(values: np.ndarray) -> float:
    """The standard error of the mean of per-query figures (0 below two queries)."""
    values = np.asarray(values, dtype=np.float64)
    return float(values.std(ddof=1) / np.sqrt(len(values))) if len(values) > 1 else 0.0


def reaches(point: Any, target_recall: float) -> bool:
    """Whether a swept point's recall reaches the target with confidence (see TARGET_CONFIDENCE_Z)."""
    return point.recall - TARGET_CONFIDENCE_Z * point.recall_se >= target_recall


def cheapest_reaching(points: Sequence[Any], target_recall: float,
                      smaller: Callable[[Any], tuple]) -> tuple[Any | None, bool]:
    """Any tuner's choice (points with `recall`, `recall_se` and `cost`): the cheapest that `reaches` the target,
    ties by higher recall then `smaller(point)`; else the best recall. Returns (point, reached)."""
    if not points:
        return None, False
    reaching = [point for point in points if reaches(point, target_recall)]
    if reaching:
        return min(reaching, key=lambda p: (p.cost, -p.recall, *smaller(p))), True
    return max(points, key=lambda p: (p.recall, -p.cost)), False


class TunedPoint(Protocol):
    """One setting a tuner swept and what it gave on the sample."""

    recall: float
    recall_se: float  # standard error of `recall` over the tuning queries
    cost: float

    @property
    def clauses(self) -> int:
        """Terms a query looks up at this setting."""
        ...

    def to_json(self) -> dict:
        """Every figure of the point (`pintext tokens tune --json`)."""
        ...

    def tuning_meta(self) -> dict:
        """The family's own figures in the index `_meta.tuning` record."""
        ...


Family = TypeVar("Family")
Point = TypeVar("Point", bound=TunedPoint)


@dataclass
class TuneResult(Generic[Family, Point]):
    """What tuning chose for an index, and on what: the same fields for every family, so index creation treats
    them alike (`family` is the token family the index gets)."""

    kind: str  # the family's kind (`pintext.tokens.FAMILIES`)
    family: Family
    window: int
    probes: int
    recall: float
    reached: bool
    target_recall: float
    queries: int
    query_source: str  # SOURCE_PINS (sampled pins, each excluded from its own results), SOURCE_QUERIES, SOURCE_TITLES
    corpus: int  # pins with a vector in the corpus
    tuned_on: int  # pins the sweep used (a sample above MAX_TUNE_CORPUS)
    seconds: float
    choice: Point
    points: list[Point] = field(default_factory=list, repr=False)
    deep_window: int | None = None  # window and probes for recall@DEEP_K (None: corpus too small to tell)
    deep_probes: int | None = None
    deep_recall: float | None = None
    recall_se: float = 0.0  # standard error of `recall` over the tuning queries
    # every family `auto` swept: {"family", "cost", "recall_at_10", "reached"} or {"family", "error"}
    compared: list[dict] = field(default_factory=list)

    def to_meta(self) -> dict:
        """The `tuning` record of an index's `_meta`."""
        meta = {"tuned": True, "target_recall": self.target_recall, "recall_at_10": round(self.recall, 4),
                "recall_at_10_se": round(self.recall_se, 4),
                "reached": self.reached, "queries": self.queries, "query_source": self.query_source,
                "corpus": self.corpus, "tuned_on": self.tuned_on, "seconds": round(self.seconds, 2),
                **self.choice.tuning_meta()}
        if self.deep_recall is not None:
            meta[f"recall_at_{DEEP_K}"] = round(self.deep_recall, 4)
        if len(self.compared) > 1:
            meta["compared"] = self.compared
        return meta

    def compared_entry(self) -> dict:
        """This result as one family of `auto`'s comparison."""
        return {"family": self.kind, "cost": round(self.choice.cost, 1), "recall_at_10": round(self.recall, 3),
                "reached": self.reached}


@dataclass
class TuningSet:
    """The pins and queries a tuner sweeps (see `sample_for_tuning`)."""

    corpus: np.ndarray  # the pins with a vector
    swept: np.ndarray  # a uniform sample of them, at most `max_corpus`
    with_vectors: int  # pins with a vector in the whole corpus (the sample's share, scaled up)
    queries: np.ndarray
    exclude: np.ndarray | None  # per query, the swept row it was taken from (sampled pins), else None
    query_source: str  # "pins" or "queries"


def sample_for_tuning(corpus: np.ndarray, queries: np.ndarray | None, sample: int, max_corpus: int,
                      rng: np.random.Generator, total_pins: int | None = None) -> TuningSet:
    """Drop zero rows (pins with no known word get no tokens), sample at most `max_corpus` pins to sweep, and
    take `sample` queries: the given ones, else sampled pins (each then excluded from its own results)."""
    given = len(corpus)
    corpus = corpus[np.linalg.norm(corpus, axis=1) > 0]
    with_vectors = len(corpus) if total_pins is None else int(round(total_pins * len(corpus) / max(given, 1)))
    if len(corpus) < TUNE_K + 1:
        raise ValueError(f"tuning needs at least {TUNE_K + 1} pins with a known word, got {len(corpus)}")
    swept = corpus if len(corpus) <= max_corpus else corpus[np.sort(rng.choice(len(corpus), max_corpus, False))]
    if queries is None:
        rows = rng.permutation(len(swept))[:sample]
        return TuningSet(corpus, swept, with_vectors, swept[rows], rows, SOURCE_PINS)
    query_vectors = np.asarray(queries, dtype=np.float32)
    query_vectors = query_vectors[np.linalg.norm(query_vectors, axis=1) > 0]
    query_vectors = query_vectors[rng.permutation(len(query_vectors))[:sample]]
    if len(query_vectors) == 0:
        raise ValueError("tuning needs at least one query with a known word")
    return TuningSet(corpus, swept, with_vectors, query_vectors, None, SOURCE_QUERIES)


def query_like_texts(texts: Sequence[str], rng: np.random.Generator, sample: int = DEFAULT_TUNE_QUERIES,
                     words: tuple[int, int] = QUERY_WORDS) -> list[str]:
    """Stand-in queries from pin texts (their titles): `sample` of them, each cut to its first `words[0]` to
    `words[1]` words (drawn uniformly), the length of what users type. Empty texts are skipped."""
    kept = [text.split() for text in texts if text and text.split()]
    picked = rng.permutation(len(kept))[:sample]
    lengths = rng.integers(words[0], words[1] + 1, size=len(picked))
    return [" ".join(kept[row][:length]) for row, length in zip(picked, lengths)]
