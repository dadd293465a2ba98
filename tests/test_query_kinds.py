"""The per-query-kind benchmark's pure parts: what kind a query is, and the set's own metrics."""

import numpy as np
import pytest

from pintext.bench.query_kinds import ndcg_and_recall, query_kinds


def test_query_kinds():
    vocabulary = {"angle": 1, "bracket": 2, "in": 3, "3": 4, "4": 5, "rth9580wf": 6}
    assert query_kinds("angle bracket", vocabulary) == ["plain"]
    assert query_kinds("3/4 in. bracket", vocabulary) == ["size"]
    assert query_kinds("rth9580wf", vocabulary) == ["model number", "one word"]
    assert query_kinds("angle brakcet", vocabulary) == ["unseen word"]
    assert query_kinds("9inch brakcet", vocabulary) == ["model number", "unseen word"]


def test_ndcg_gain_is_relevance_minus_one_and_recall_counts_from_2_33():
    ids = ["a", "b", "c", "d"]
    judged = {"a": 3.0, "b": 2.0, "c": 1.67, "d": 2.33}
    ndcg, recall = ndcg_and_recall(np.array([2, 0, 3, 1]), ids, judged)
    dcg = 0 + 2 / np.log2(3) + 1.33 / np.log2(4) + 1 / np.log2(5)
    idcg = 2 + 1.33 / np.log2(3) + 1 / np.log2(4)
    assert ndcg == pytest.approx(dcg / idcg)
    assert recall == 1.0  # a and d are relevant (>= 2.33), both ranked
    assert ndcg_and_recall(np.array([0, 3, 1, 2]), ids, judged)[0] == pytest.approx(1.0)  # the ideal order
    assert ndcg_and_recall(np.array([2]), ids, judged) == (0.0, 0.0)
