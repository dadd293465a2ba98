"""The benchmarks' view of PinText's LSH tuner: the sweep itself lives in the product (`pintext.tokens`).

A product command never runs code from bench/, so the in-memory replica of the index, the grid sweep, the cost
model and the choice moved to `pintext/tokens/` (`tune_lsh.py`, `tuning.py`, `recall.py`); they are re-exported
here for the benchmark sections. What stays here is bench-only: fitting the cost model to latencies measured on
the node (needs scipy).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from pintext.tokens.recall import exact_top_k, recall_at_k, unit_rows  # noqa: F401
from pintext.tokens.tune_lsh import MAX_QUERY_CLAUSES, BucketIndex, GridPoint, choose, sweep_config, tune  # noqa: F401
from pintext.tokens.tuning import CLAUSE_COST, RESCORE_COST, cost_of  # noqa: F401


def fit_cost_model(clauses: Sequence[float], postings: Sequence[float], rescored: Sequence[float],
                   latency_ms: Sequence[float]) -> dict[str, float]:
    """Non-negative least squares of latency = base + a x clauses + b x postings + c x rescored (ms each).

    Also gives the clause and rescore weights in postings, comparable with CLAUSE_COST and RESCORE_COST
    (NaN when the fit gives postings no weight).
    """
    from scipy.optimize import nnls

    design = np.column_stack([np.ones(len(clauses)), clauses, postings, rescored]).astype(np.float64)
    target = np.asarray(latency_ms, dtype=np.float64)
    (base, per_clause, per_posting, per_rescored), residual = nnls(design, target)
    fitted = design @ np.array([base, per_clause, per_posting, per_rescored])
    spread = float(np.sum((target - target.mean()) ** 2))
    return {
        "base_ms": base, "ms_per_clause": per_clause, "ms_per_1000_postings": per_posting * 1000,
        "ms_per_1000_rescored": per_rescored * 1000,
        "clause_in_postings": per_clause / per_posting if per_posting > 0 else float("nan"),
        "rescored_in_postings": per_rescored / per_posting if per_posting > 0 else float("nan"),
        "r2": 1.0 - float(np.sum((target - fitted) ** 2)) / spread if spread > 0 else float("nan"),
        "points": len(target),
    }
