"""Choose an index's token family and its settings on a corpus: random hyperplanes (`pintext.lsh_tune`), learned
centroids (`pintext.centroid_tune`), or both swept and the cheaper kept (`auto`).

Both tuners report a cost per search in the same units (`pintext.lsh_tune.cost_of`: postings visited, pins scored
exactly, term clauses), so `auto` keeps the cheapest setting that reaches the target recall@10; when neither
reaches it, the one with the higher recall. Pure numpy, no I/O.
"""

from __future__ import annotations

from typing import Any

import numpy as np

LSH = "lsh"
KMEANS = "kmeans"
AUTO = "auto"
FAMILY_CHOICES = (LSH, KMEANS, AUTO)


def check_family_choice(name: str) -> str:
    """`name` when it is one of FAMILY_CHOICES; else a ValueError naming them."""
    if name not in FAMILY_CHOICES:
        raise ValueError(f"unknown token family {name!r}: choose {', '.join(FAMILY_CHOICES)}")
    return name


def sample_size(family: str) -> int:
    """Pins to sample from the corpus file for tuning this family (centroids are fitted on a larger sample)."""
    from pintext.centroid_tune import MAX_FIT_CORPUS
    from pintext.lsh_tune import MAX_TUNE_CORPUS

    return MAX_TUNE_CORPUS if family == LSH else MAX_FIT_CORPUS


def tune_tokens(corpus: np.ndarray, family: str = LSH, target_recall: float = 0.95,
                queries: np.ndarray | None = None, fixed: tuple[int, int] | None = None, seed: int = 0,
                total_pins: int | None = None) -> Any:
    """The tuning result (`lsh_tune.TuneResult` or `centroid_tune.CentroidTuneResult`: `.lsh` is the family)
    for `family` (lsh, kmeans or auto). `fixed` (MODEL/lsh.json's tables and bits) pins random hyperplanes."""
    from pintext.centroid_tune import tune_centroids_for_corpus
    from pintext.lsh_tune import tune_for_corpus

    check_family_choice(family)
    if fixed is not None:
        family = LSH
    results: list[Any] = []
    if family in (LSH, AUTO):
        results.append(tune_for_corpus(corpus, target_recall, queries=queries, fixed=fixed, seed=seed,
                                       total_pins=total_pins))
    if family in (KMEANS, AUTO):
        results.append(tune_centroids_for_corpus(corpus, target_recall, queries=queries, seed=seed,
                                                 total_pins=total_pins))
    return cheapest(results)


def cheapest(results: list[Any]) -> Any:
    """The result whose choice reaches its target at the lowest cost; else the one with the best recall."""
    reaching = [result for result in results if result.reached]
    if reaching:
        return min(reaching, key=lambda result: result.choice.cost)
    return max(results, key=lambda result: result.recall)


def describe_choice(result: Any) -> str:
    """What tuning chose, for one line of output: family, size, probes and what a query touches."""
    from pintext.centroid_tune import CentroidTuneResult

    if isinstance(result, CentroidTuneResult):
        family = result.lsh
        return (f"kmeans tokens, {family.centroids} centroids, spill {family.spill}, probes {result.probes} "
                f"({1 + result.probes} centroids a query; on the {result.tuned_on:,}-pin tuning sample "
                f"{result.choice.centroids} centroids, {result.choice.matched_share:.2%} of the pins scored exactly)")
    return (f"{result.lsh.tables} tables x {result.lsh.bits} bits, probes {result.probes}, window {result.window} "
            f"({result.choice.clauses} term clauses a query)")
