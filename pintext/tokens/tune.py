"""Choose an index's token family and its settings on a corpus: one tuner per family kind behind the `Tuner`
protocol (`TUNERS`: random hyperplanes in `tune_lsh`, learned centroids in `tune_centroids`), or every family swept
and the cheapest kept (`auto`).

Every tuner reports a cost per search in the same units (`pintext.tokens.tuning.cost_of`: postings visited, pins
scored exactly, term clauses), so `auto` keeps the cheapest setting that reaches the target recall@10; when none
reaches it, the one with the higher recall. A new family's tuner is one class plus one line in `TUNERS`.
Pure numpy, no I/O.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from pintext.tokens.centroids import KMEANS_KIND
from pintext.tokens.lsh import DEFAULT_SEED, LSH_KIND
from pintext.tokens.tune_centroids import CentroidTuner
from pintext.tokens.tune_lsh import LSHTuner, tune_for_corpus
from pintext.tokens.tuning import DEFAULT_TARGET_RECALL, TuneResult


class Tuner(Protocol):
    """One token family's tuner: sweeps the family's settings on a corpus, keeps the cheapest reaching the target."""

    @property
    def kind(self) -> str:
        """The family kind it tunes (a key of `pintext.tokens.FAMILIES`)."""
        ...

    @property
    def fit_sample(self) -> int:
        """Pins to sample from the corpus file to tune on."""
        ...

    def tune(self, corpus: np.ndarray, target_recall: float = DEFAULT_TARGET_RECALL,
             queries: np.ndarray | None = None, seed: int = DEFAULT_SEED,
             total_pins: int | None = None) -> TuneResult:
        """The cheapest setting reaching `target_recall` on `corpus` (see `pintext.tokens.tune_lsh.tune_for_corpus`
        for the arguments)."""
        ...

    def describe(self, result: Any) -> str:
        """What it chose, for one line of output."""
        ...


# family kind -> its tuner
TUNERS: dict[str, Tuner] = {LSH_KIND: LSHTuner(), KMEANS_KIND: CentroidTuner()}

# What `--tokens` offers: a family by its short name, or `auto`.
LSH = "lsh"
KMEANS = "kmeans"
AUTO = "auto"
DEFAULT_FAMILY = AUTO  # what an index gets without --tokens: the family measured cheapest at the target recall
KIND_OF_CHOICE = {LSH: LSH_KIND, KMEANS: KMEANS_KIND}
FAMILY_CHOICES = (LSH, KMEANS, AUTO)


def check_family_choice(name: str) -> str:
    """`name` when it is one of FAMILY_CHOICES; else a ValueError naming them."""
    if name not in FAMILY_CHOICES:
        raise ValueError(f"unknown token family {name!r}: choose {', '.join(FAMILY_CHOICES)}")
    return name


def kinds_of(choice: str) -> list[str]:
    """The family kinds a `--tokens` choice tunes."""
    return list(TUNERS) if check_family_choice(choice) == AUTO else [KIND_OF_CHOICE[choice]]


def sample_size(choice: str) -> int:
    """Pins to sample from the corpus file for tuning `choice` (centroids are fitted on a larger sample)."""
    return max(TUNERS[kind].fit_sample for kind in kinds_of(choice))


def tune_tokens(corpus: np.ndarray, family: str = AUTO, target_recall: float = DEFAULT_TARGET_RECALL,
                queries: np.ndarray | None = None, fixed: tuple[int, int] | None = None, seed: int = DEFAULT_SEED,
                total_pins: int | None = None) -> TuneResult:
    """The tuning result (`.family` is the token family) for the `--tokens` choice `family` (lsh, kmeans or auto).
    `fixed` (MODEL/lsh.json's tables and bits) pins random hyperplanes. Under `auto` a family that cannot be tuned
    on this corpus (too few distinct pins for centroids) is left out, and `.compared` says why; a ValueError when
    none can."""
    if fixed is not None:
        return tune_for_corpus(corpus, target_recall, queries=queries, fixed=fixed, seed=seed, total_pins=total_pins)
    results: list[TuneResult] = []
    compared: list[dict] = []
    failure = ValueError(f"no token family of {family!r} could be tuned")
    for kind in kinds_of(family):
        try:
            result = TUNERS[kind].tune(corpus, target_recall, queries=queries, seed=seed, total_pins=total_pins)
        except ValueError as error:
            if family != AUTO:
                raise
            compared.append({"family": kind, "error": str(error)})
            failure = error
            continue
        results.append(result)
        compared.append(result.compared_entry())
    if not results:
        raise failure
    chosen = cheapest(results)
    chosen.compared = compared
    return chosen


def cheapest(results: list[TuneResult]) -> TuneResult:
    """The result whose choice reaches its target at the lowest cost; else the one with the best recall."""
    reaching = [result for result in results if result.reached]
    if reaching:
        return min(reaching, key=lambda result: result.choice.cost)
    return max(results, key=lambda result: result.recall)


def describe_comparison(result: TuneResult) -> str:
    """Why `auto` chose its family: every family swept, with its cost per search and recall@10 at its cheapest
    setting reaching the target (or its best recall), or why it could not be tuned. Empty for one family."""
    if len(result.compared) < 2:
        return ""
    parts = []
    for entry in result.compared:
        name = choice_of_kind(entry["family"])
        if "error" in entry:
            parts.append(f"{name} not tunable ({entry['error']})")
        else:
            verdict = "" if entry["reached"] else ", target not reached"
            parts.append(f"{name} cost {entry['cost']:,.0f} at recall@10 {entry['recall_at_10']:.3f}{verdict}")
    return "; ".join(parts)


def describe_choice(result: TuneResult) -> str:
    """What tuning chose, for one line of output: family, size, probes and what a query touches."""
    return TUNERS[result.kind].describe(result)


def choice_of(result: TuneResult) -> str:
    """The `--tokens` name of the family a result tuned."""
    return choice_of_kind(result.kind)


def choice_of_kind(kind: str) -> str:
    """The `--tokens` name of a family kind."""
    return next(choice for choice, each in KIND_OF_CHOICE.items() if each == kind)
