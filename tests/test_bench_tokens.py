"""bench/tokens.py's pure parts: the numpy cost replay of each family's tuned setting, the probe curve, the
report's computed reading. (The node run itself is a benchmark, not a test.)"""

from __future__ import annotations

import pytest

from pintext.bench.tokens import family_costs, probe_curve, product_pins, reading
from pintext.tokens.tune_centroids import CentroidGrid, tune_centroids_for_corpus
from pintext.tokens.tune_lsh import TuneGrid, tune_for_corpus
from tests.test_centroids import clustered


def test_probe_curve_brackets_the_tuned_probes_within_the_family():
    assert probe_curve(15, 5119) == [7, 15, 31, 63]
    assert probe_curve(0, 3) == [0, 1, 3]
    assert probe_curve(3, 6) == [1, 3]


def test_product_pins_keep_every_product_with_a_short_description():
    pins = product_pins([("a red lamp", "word " * 100), ("b", "")])
    assert [pin["id"] for pin in pins] == ["r00000", "r00001"]
    assert len(pins[0]["description"].split()) == 40 and pins[1]["title"] == "b"


@pytest.fixture(scope="module")
def corpus():
    return clustered(1500, seed=3), clustered(40, seed=8)


def test_family_costs_of_centroids_score_every_match_exactly(corpus):
    unit, queries = corpus
    result = tune_centroids_for_corpus(unit, 0.9, queries=queries, grid=CentroidGrid(centroids=(32,)))
    costs = family_costs(result, unit, queries)
    assert costs["family"] == "kmeans" and costs["clauses"] == 1 + result.probes
    assert costs["scored_share"] == pytest.approx(costs["candidate_share"])
    assert costs["recall"] == pytest.approx(result.recall, abs=1e-9)  # the tuner saw this whole corpus


def test_family_costs_of_hyperplanes_rescore_the_window_only(corpus):
    unit, queries = corpus
    result = tune_for_corpus(unit, 0.9, queries=queries, grid=TuneGrid(tables=(16,), bits=(6,), probes=(0,),
                                                                          windows=(100,)))
    costs = family_costs(result, unit, queries)
    assert costs["family"] == "lsh" and costs["clauses"] <= 16
    assert costs["scored_mean"] <= 100 and costs["candidate_share"] >= costs["scored_share"]
    assert costs["recall"] == pytest.approx(result.recall, abs=1e-9)


def test_reading_compares_the_families_and_each_served_row_with_hnsw():
    costs = [{"family": "lsh", "recall": 0.98, "clauses": 192.0, "candidate_share": 0.7, "scored_share": 0.1},
             {"family": "kmeans", "recall": 0.98, "clauses": 16.0, "candidate_share": 0.005, "scored_share": 0.005}]
    results = [{"method": "HNSW", "setting": "ef 100", "recall": 0.99, "p50_ms": 2.0},
               {"method": "PinText kmeans", "setting": "as served: x", "recall": 0.98, "p50_ms": 4.0,
                "speedup_vs_exact": 10.0}]
    lines = reading(results, costs)
    assert "12x fewer clauses, 140x fewer matched pins" in lines[0]
    assert "PinText's p50 is 2.0x HNSW's" in lines[1]


def _row(method, setting, recall, p50):
    return {"method": method, "setting": setting, "recall": recall, "p50_ms": p50, "speedup_vs_exact": 500 / p50}


def test_goal_reading_says_each_target_met_or_missed_by_how_much():
    from pintext.bench.tokens import COUNTING, KMEANS_INDEX, PLAIN_INDEX, goal_reading

    results = [_row("exact script", "every pin", 1.0, 500.0), _row("HNSW", "m 16, ef_search 2000", 0.952, 6.0),
               _row("PinText kmeans", f"as served, but {COUNTING}", 0.96, 1.0),  # never the one compared
               _row("PinText kmeans", "as served: probes 15", 0.959, 9.0)]
    data = {"results": results, "corpus": {"dim": 4},
            "indexes": {PLAIN_INDEX: {"size_bytes": 100, "docs": 10, "write_seconds": 1.0, "prefix_docs_per_s": 1000.0},
                        KMEANS_INDEX: {"size_bytes": 600, "docs": 10, "write_seconds": 2.0}},
            "ingest": [{"workers": 4, "docs_per_s": 250.0}, {"workers": 1, "docs_per_s": 800.0, "client_only": True,
                                                             "body_bytes_per_pin": 50.0}]}
    lines = goal_reading(data)
    assert "0.959 at 9.00 ms" in lines[0] and "ef_search 2000 (0.952) at 6.00 ms" in lines[0]
    assert "1.50x HNSW's" in lines[0]
    assert "6.0x a plain bulk" in lines[1] and "missed by 2.00x" in lines[1]
    assert "0.25x a plain bulk" in lines[2] and "missed by 2.00x" in lines[2] and "800 docs/s" in lines[2]
