"""The token stage: how a vector becomes the keyword tokens an inverted index matches, and how an index's tokens are
tuned on its corpus.

- `family`: the `TokenFamily` protocol and the `kind` registry (`FAMILIES`, `family_from_dict`, `describe`);
- `lsh`: random hyperplanes (`RandomHyperplaneLSH`, kind `random_hyperplane`);
- `centroids`: learned centroids (`CentroidTokens`, kind `kmeans`; `fit_centroids` imports scikit-learn when run);
- `recall`: exact top k and recall@k (tie-aware), shared by the tuners, the benchmarks and the tests;
- `tuning`: what every tuner shares (`TuneResult`, the cost model, the tuning sample);
- `tune_lsh`, `tune_centroids`: one tuner per family; `tune`: the `Tuner` protocol, `TUNERS` by kind and `auto`.

Importing this package needs numpy only.
"""

from pintext.tokens.centroids import KMEANS_KIND, CentroidTokens, fit_centroids
from pintext.tokens.family import FAMILIES, TokenFamily, describe, family_from_dict, scores_every_match
from pintext.tokens.lsh import LSH_KIND, RandomHyperplaneLSH
from pintext.tokens.recall import exact_top_k, recall_at_k, tie_aware_recall
from pintext.tokens.tune import TUNERS, Tuner, describe_choice, tune_tokens
from pintext.tokens.tuning import TuneResult

__all__ = [
    "FAMILIES",
    "KMEANS_KIND",
    "LSH_KIND",
    "TUNERS",
    "CentroidTokens",
    "RandomHyperplaneLSH",
    "TokenFamily",
    "TuneResult",
    "Tuner",
    "describe",
    "describe_choice",
    "exact_top_k",
    "family_from_dict",
    "fit_centroids",
    "recall_at_k",
    "scores_every_match",
    "tie_aware_recall",
    "tune_tokens",
]
