"""Choosing on the validation split: when to stop, and which settings to keep.

`ValidationScorer` ranks each task's validation anchors against the task's pool (every distinct positive, as
`pintext eval` does) through the numpy `Encoder` of the table as it is now — what would be served — and scores
it as the mean of recall@10, recall@100 and MRR. The search task decides when it is there (it is the task the
product serves); otherwise the mean over tasks does.

`EarlyStopping` scores the table before training and every `every` optimizer steps, keeps a copy of the best
table, stops after `patience` scores without a gain, and puts the best table back at the end. So a run never
ends worse on validation than its start: with the lexical start (`pintext.trainer.init`), the worst case is
the untrained IDF match.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pintext.constants import SEARCH, VALIDATION
from pintext.encoder import Encoder, PreparedTexts
from pintext.pin_vectors import pin_parts, unit_rows, weighted_parts
from pintext.schemas import pin_text
from pintext.trainer.evaluate import TaskData, prepare_task, ranking_metrics

MAIN_TASK = SEARCH


def _ids_and_texts(pins_by_text: Mapping[str, dict]) -> list[tuple[str, str]]:
    return [(str(pin["id"]), text) for text, pin in pins_by_text.items()]


def distractor_pins(pins: Sequence[dict]) -> dict[str, dict]:
    """{pin text: pin} for corpus pins (the first pin of each text), in corpus order."""
    by_text: dict[str, dict] = {}
    for pin in pins:
        by_text.setdefault(pin_text(pin), pin)
    return by_text


def _distractors_from(task: TaskData) -> int:
    return task.distractors_from if task.distractors_from >= 0 else len(task.pool_texts)


@dataclass(frozen=True)
class PreparedTask:
    """A task's validation texts prepared once for a tokenizer (`Encoder.prepare`): scoring then only multiplies
    them by the table of the moment. The pool: positives as the texts they are, corpus distractors as the pins they
    are (`pintext.pin_vectors`, the way ingest embeds them), so validation ranks what search will rank."""

    positives: PreparedTexts
    titles: PreparedTexts | None  # the corpus distractors' titles and other text (`pin_parts`)
    rests: PreparedTexts | None
    query_texts: PreparedTexts

    @classmethod
    def of(cls, encoder: Encoder, task: TaskData, pins_by_text: Mapping[str, dict]) -> "PreparedTask":
        start = _distractors_from(task)
        titles = rests = None
        if start < len(task.pool_texts):
            title_texts, rest_texts = zip(*(pin_parts(pins_by_text[text]) for text in task.pool_texts[start:]))
            titles, rests = encoder.prepare(list(title_texts)), encoder.prepare(list(rest_texts))
        return cls(encoder.prepare(task.pool_texts[:start]), titles, rests, encoder.prepare(task.query_texts))

    def pool(self, encoder: Encoder) -> np.ndarray:
        """Unit vectors of the pool with `encoder`'s table."""
        parts = [encoder.encode_prepared(self.positives)]
        if self.titles is not None and self.rests is not None:
            parts.append(weighted_parts(encoder.encode_prepared(self.titles), encoder.encode_prepared(self.rests)))
        return unit_rows(np.concatenate(parts))

    def queries(self, encoder: Encoder) -> np.ndarray:
        """Unit vectors of the validation queries with `encoder`'s table."""
        return unit_rows(encoder.encode_prepared(self.query_texts))


def validation_metrics(encoder: Encoder, task: TaskData, prepared: PreparedTask) -> dict[str, float]:
    """recall@10, recall@100, MRR and their mean (`score`) for one task's validation split (`prepared`: the same
    task's texts, prepared for `encoder`'s tokenizer)."""
    pool, queries = prepared.pool(encoder), prepared.queries(encoder)
    metrics = ranking_metrics(lambda rows: queries[rows] @ pool.T, task)
    metrics["score"] = float(np.mean([metrics["recall@10"], metrics["recall@100"], metrics["mrr"]]))
    return metrics


class ValidationScorer:
    """Scores a word table on the validation split of the given tasks."""

    def __init__(self, pairs: dict, tasks: list[str], encoder_options: dict[str, Any] | None = None,
                 distractors: Sequence[dict] = ()) -> None:
        self.tasks = [task for task in tasks if len(pairs[task][VALIDATION]) > 0]
        # The corpus pins join each pool as distractors: validation then ranks among the pins that will be served.
        self.pins_by_text = distractor_pins(distractors)
        self.data = {task: prepare_task(pairs[task], split=VALIDATION, distractors=_ids_and_texts(self.pins_by_text))
                     for task in self.tasks}
        self.encoder_options = encoder_options or {}
        self._prepared: tuple[Any, bool, dict[str, PreparedTask]] | None = None

    @property
    def usable(self) -> bool:
        return bool(self.tasks)

    def encoder(self, tokenizer, table: np.ndarray, **options: Any) -> Encoder:
        return Encoder(tokenizer, table, unk_id=0, fingerprint=VALIDATION, **{**self.encoder_options, **options})

    def metrics(self, tokenizer, table: np.ndarray, **options: Any) -> dict[str, dict[str, float]]:
        """Validation metrics per task of the word table (Encoder options, e.g. `oov`, override the scorer's)."""
        encoder = self.encoder(tokenizer, table, **options)
        counts_unseen = encoder.oov is not None
        if self._prepared is None or self._prepared[0] is not tokenizer or self._prepared[1] != counts_unseen:
            # The same validation texts are scored every half epoch: tokenized and laid out once per tokenizer.
            self._prepared = (tokenizer, counts_unseen, {task: PreparedTask.of(encoder, data, self.pins_by_text)
                                                         for task, data in self.data.items()})
        prepared = self._prepared[2]
        return {task: validation_metrics(encoder, data, prepared=prepared[task]) for task, data in self.data.items()}

    def score(self, metrics: dict[str, dict[str, float]]) -> float:
        if MAIN_TASK in metrics:
            return metrics[MAIN_TASK]["score"]
        return float(np.mean([value["score"] for value in metrics.values()]))


@dataclass
class StopRecord:
    """What early stopping saw: one entry per validation score, and which one was kept."""

    history: list[dict[str, Any]] = field(default_factory=list)
    best_step: int = 0
    best_epoch: float = 0.0
    best_score: float = float("-inf")
    best_metrics: dict[str, Any] = field(default_factory=dict)
    stopped_early: bool = False


class EarlyStopping:
    """Score on validation every `every` steps; keep the best table; stop after `patience` scores without gain.
    The training loop (`pintext.trainer.loop.run_loop`) calls `begin`, `after_step` and `end`."""

    def __init__(self, table, scorer: ValidationScorer, every: int, patience: int = 3, min_gain: float = 1e-4) -> None:
        self.table = table  # pintext.trainer.tables: what is trained, and what it exports
        self.scorer = scorer
        self.every = max(1, int(every))
        self.patience = max(1, int(patience))
        self.min_gain = min_gain
        self.record = StopRecord()
        self._best_table: np.ndarray | None = None
        self._misses = 0

    def _evaluate(self, step: int, epoch: float) -> bool:
        """Score the current table; True when it is the best so far."""
        words, oov = self.table.export()
        metrics = self.scorer.metrics(self.table.tokenizer, words, oov=oov)
        score = self.scorer.score(metrics)
        self.record.history.append({"step": step, "epoch": round(epoch, 3), "score": round(score, 5),
                                    **{task: {k: round(v, 5) for k, v in m.items()} for task, m in metrics.items()}})
        if score > self.record.best_score + self.min_gain:
            self.record.best_score, self.record.best_step, self.record.best_epoch = score, step, epoch
            self.record.best_metrics = metrics
            self._best_table = self.table.snapshot()
            self._misses = 0
            return True
        self._misses += 1
        return False

    def begin(self) -> None:
        self._evaluate(0, 0.0)

    def after_step(self, step: int, epoch: float) -> bool:
        """Score when due; True when training should stop."""
        if step % self.every == 0:
            self._evaluate(step, epoch)
            if self._misses >= self.patience:
                self.record.stopped_early = True
                return True
        return False

    def end(self, step: int, epoch: float) -> None:
        last = self.record.history[-1]["step"] if self.record.history else -1
        if step != last:
            self._evaluate(step, epoch)
        if self._best_table is not None:
            self.restore(self._best_table)

    def restore(self, raw: np.ndarray) -> None:
        self.table.restore(raw)


# ---- the hybrid's fusion, chosen on validation ------------------------------------------------------------------

# `union` at weight 1.0 is PinText's served score over the pins either side found (BM25 only adds candidates).
FUSION_GRID = (
    *(("union", weight) for weight in (1.0, 0.95, 0.9, 0.85, 0.8, 0.7, 0.6, 0.5)),
    *((method, weight) for method in ("rrf", "blend") for weight in (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)),
)
FUSION_DEPTH = 100


def _per_query(rankings: list[list[str]], relevant: list[set[str]]) -> np.ndarray:
    """[queries, 3]: each query's recall@10, recall@100 and reciprocal rank (within the top 100)."""
    rows = []
    for ranking, wanted in zip(rankings, relevant):
        rows.append((len(wanted & set(ranking[:10])) / len(wanted), len(wanted & set(ranking[:100])) / len(wanted),
                     next((1.0 / rank for rank, doc in enumerate(ranking[:100], start=1) if doc in wanted), 0.0)))
    return np.asarray(rows, dtype=np.float64).reshape(-1, 3)


def _summary(per_query: np.ndarray) -> dict[str, float]:
    """recall@10, recall@100, MRR and their mean (the validation score)."""
    means = per_query.mean(axis=0) if len(per_query) else np.zeros(3)
    metrics = {"recall@10": float(means[0]), "recall@100": float(means[1]), "mrr": float(means[2])}
    metrics["score"] = float(np.mean(means))
    return metrics


def _ranking_score(rankings: list[list[str]], relevant: list[set[str]]) -> dict[str, float]:
    return _summary(_per_query(rankings, relevant))


# Fewer validation queries than this choose nothing: the defaults stand.
MIN_QUERIES_TO_CHOOSE = 100
# A candidate replaces the default only when its mean gain is this many standard errors of the paired difference.
STANDARD_ERRORS_TO_CHOOSE = 2.0


def choose_over_default(per_query_scores: Sequence[np.ndarray], default: int) -> tuple[int, float]:
    """The candidate with the best mean validation score if there are `MIN_QUERIES_TO_CHOOSE` queries and it beats
    the `default` candidate by more than `STANDARD_ERRORS_TO_CHOOSE` standard errors of their paired per-query
    difference; else the default. Returns (index, that standard error; inf with too few queries).

    Why: Crowdflower's ~20 validation queries ranked the candidates by noise (blend 0.3 chosen, 0.06 NDCG@10 below
    the served ranking on held-out queries), and most of their per-query differences are 0, which makes a standard
    error look small; Home Depot's ~700 still chose (then: blend 0.9, 4 standard errors above RRF 0.5)."""
    best = max(range(len(per_query_scores)), key=lambda index: float(per_query_scores[index].mean()))
    difference = per_query_scores[best] - per_query_scores[default]
    if len(difference) < MIN_QUERIES_TO_CHOOSE:
        return default, float("inf")
    error = float(difference.std(ddof=1) / np.sqrt(len(difference)))
    return (best if float(difference.mean()) > STANDARD_ERRORS_TO_CHOOSE * error else default), error


def choose_best(per_query_scores: Sequence[np.ndarray], default: int) -> int:
    """The candidate with the best mean validation score if there are `MIN_QUERIES_TO_CHOOSE` queries, else the
    default: for a grid of one smooth weight (the word-match weight), where a neighbour of the best costs little
    and a default far from it costs much.

    Why not `choose_over_default`'s standard-error gate here: the default weight (1.0) is Home Depot's best, and on
    Best Buy (~340 validation queries a split) 0-0.1 beat it on validation by 1.7-2.0 standard errors, just under
    the gate, and on held-out queries by 0.008-0.013 NDCG@10 on every split (docs/serving.md)."""
    best = max(range(len(per_query_scores)), key=lambda index: float(per_query_scores[index].mean()))
    return best if len(per_query_scores[best]) >= MIN_QUERIES_TO_CHOOSE else default


def _top(scores: np.ndarray, depth: int) -> dict[str, float]:
    order = np.argsort(-scores, kind="stable")[:depth]
    return {str(index): float(scores[index]) for index in order}  # insertion order = rank order


def choose_fusion(pairs: dict, encoder: Encoder, task: str = MAIN_TASK,
                  distractors: Sequence[dict] = ()) -> tuple[Any, Any, dict[str, Any]]:
    """The word-match weight (`choose_best`), then the fusion of BM25 and PinText (method and PinText's weight,
    `choose_over_default`), each chosen on `task`'s validation split (defaults: `DEFAULT_MATCH_WEIGHT`,
    `FusionConfig()`), with the functions `pintext search [--hybrid]` serves with (the fusion sees PinText's ranking
    with the chosen word-match signal, as served). Returns (FusionConfig, ExactMatch, record)."""
    import bm25s

    from pintext.exact_match import DEFAULT_MATCH_WEIGHT, MATCH_GRID, TRAINED_NEAREST_WORDS, ExactMatch, rerank_shares
    from pintext.fusion import FusionConfig

    pins_by_text = distractor_pins(distractors)
    data = prepare_task(pairs[task], split=VALIDATION, distractors=_ids_and_texts(pins_by_text))
    relevant = [{str(index) for index in indices} for indices in data.query_relevant]
    depth = min(FUSION_DEPTH, len(data.pool_texts))
    prepared = PreparedTask.of(encoder, data, pins_by_text)
    similarity = prepared.queries(encoder) @ prepared.pool(encoder).T
    cosine = [_top(row, depth) for row in similarity]
    trained = ExactMatch(nearest_words=TRAINED_NEAREST_WORDS).bound(encoder.word_vectors)
    matches = [trained.with_weight(weight) for weight in MATCH_GRID]
    # A pin's share does not depend on the weight: counted once per query, scored under every weight.
    shares = [trained.shares(text, [data.pool_texts[int(doc)] for doc in scores])
              for scores, text in zip(cosine, data.query_texts)]
    served = [[dict(rerank_shares(list(scores.items()), share, match)) for scores, share in zip(cosine, shares)]
              for match in matches]
    scored = [_per_query([list(ranked) for ranked in rankings], relevant) for rankings in served]
    chosen = choose_best(scored, MATCH_GRID.index(DEFAULT_MATCH_WEIGHT))
    match, dense = matches[chosen], served[chosen]
    retriever = bm25s.BM25()
    retriever.index(bm25s.tokenize(data.pool_texts, stopwords=None, show_progress=False), show_progress=False)
    vocabulary = retriever.vocab_dict
    lexical = []
    for tokens in bm25s.tokenize(data.query_texts, stopwords=None, return_ids=False, show_progress=False):
        known = [token for token in tokens if token in vocabulary]
        scores = retriever.get_scores(known) if known else np.zeros(len(data.pool_texts), dtype=np.float32)
        lexical.append({doc: score for doc, score in _top(scores, depth).items() if score > 0})
    # What `union` gets as served: PinText's list plus the served score of BM25's pins it lacks (the engine's exact
    # cosine of those pins + the same exact-match signal).
    widened = [{**pintext, **_matched(match, {doc: float(row[int(doc)]) for doc in bm25 if doc not in pintext},
                                      data.pool_texts, text)}
               for bm25, pintext, row, text in zip(lexical, dense, similarity, data.query_texts)]
    configs = [FusionConfig(method=method, weight=weight) for method, weight in FUSION_GRID]
    fused = [_per_query([[doc for doc, _ in config.fuse(bm25, pintext)]
                         for bm25, pintext in zip(lexical, widened if config.scores_every_candidate else dense)],
                        relevant) for config in configs]
    picked, fusion_error = choose_over_default(fused, configs.index(FusionConfig()))
    record: dict[str, Any] = {
        "task": task,
        "queries": len(data.query_texts),
        "rule": f"the best validation score if {MIN_QUERIES_TO_CHOOSE}+ queries and it beats the default by more than "
                f"{STANDARD_ERRORS_TO_CHOOSE:g} standard errors, else the default",
        "match_rule": f"the best validation score if {MIN_QUERIES_TO_CHOOSE}+ queries, else the default",
        "match": [{"weight": m.weight, **_summary(rows)} for m, rows in zip(matches, scored)],
        "match_default": DEFAULT_MATCH_WEIGHT,
        "bm25": _ranking_score([list(ranked) for ranked in lexical], relevant),
        "pintext": _summary(scored[chosen]),
        "chosen_match": match.to_dict(),
        "candidates": [{**config.to_dict(), **_summary(rows)} for config, rows in zip(configs, fused)],
        "fusion_default": FusionConfig().to_dict(),
        "fusion_standard_error": fusion_error,
        "chosen": configs[picked].to_dict(),
    }
    return configs[picked], match, record


def _matched(match: Any, cosine: dict[str, float], pool_texts: Sequence[str], query: str) -> dict[str, float]:
    """One query's {pool index: cosine} (best first) re-ranked by the exact-match signal, as search serves it."""
    from pintext.exact_match import rerank_ids

    texts = {doc: pool_texts[int(doc)] for doc in cosine}
    return dict(rerank_ids(list(cosine.items()), texts, query, match))
