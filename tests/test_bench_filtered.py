"""Fast tests of the filtered-search benchmark's pure parts (bench/filtered.py): the corpus builder keeps exactly
1% (and 10%) of the pins under the filter, the tie-aware recall, the filter pass share, the request bodies and
the report's table. No node, no timings."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest

from pintext.bench.filtered import (
    COMMON_BOARD,
    RARE_BOARD,
    TABLE_COLUMNS,
    assign_boards,
    build_corpus,
    exact_body,
    exact_truth,
    knn_body,
    pass_share,
    render_report,
    results_table,
    table_rows,
    tie_aware_recall,
)

PRODUCTS = [(f"product {i} red lamp", f"a description of thing {i} with words") for i in range(30)]


@pytest.mark.parametrize("n", [100, 2_000, 100_000])
def test_boards_keep_exactly_one_and_ten_percent(n):
    counts = Counter(assign_boards(n, seed=3))
    assert counts[RARE_BOARD] == n // 100
    assert counts[COMMON_BOARD] == n // 10
    assert sum(counts.values()) == n


def test_boards_refuse_a_count_that_has_no_exact_one_percent():
    with pytest.raises(ValueError, match="multiple of 100"):
        assign_boards(150)


def test_corpus_builder_recombines_products_into_distinct_pins_with_exact_shares():
    pins = build_corpus(PRODUCTS, 1_000, seed=0)
    assert len(pins) == 1_000
    assert len({pin["id"] for pin in pins}) == 1_000
    assert sum(pin["board"] == RARE_BOARD for pin in pins) == 10
    assert sum(pin["board"] == COMMON_BOARD for pin in pins) == 100
    titles = {title for title, _ in PRODUCTS}
    # Each pin's title starts with a real product title and carries at most two more words.
    for pin in pins[:50]:
        base = next(title for title in titles if pin["title"].startswith(title))
        assert len(pin["title"].split()) - len(base.split()) <= 2
        assert pin["description"] in {description for _, description in PRODUCTS}
    assert build_corpus(PRODUCTS, 1_000, seed=0) == pins  # deterministic


def test_exact_truth_only_ranks_the_pins_the_filter_keeps():
    unit = np.eye(4, dtype=np.float32)
    query = np.asarray([[0.9, 0.1, 0.3, 0.0]], dtype=np.float32)
    rows, kth = exact_truth(unit, query, np.asarray([False, True, True, False]), k=2)
    assert rows.tolist() == [[2, 1]]
    assert kth[0] == pytest.approx(0.1)


def test_tie_aware_recall_counts_ties_and_drops_pins_outside_the_filter():
    kth = np.asarray([0.5, 0.5])
    found = [[1, 2], [3, 9]]
    cosines = [[0.9, 0.5], [0.7, 0.8]]  # query 1: row 9 scores well but fails the filter
    allowed = [None, {1, 2, 3}]
    assert tie_aware_recall(found, cosines, kth, allowed, k=2) == pytest.approx((2 / 2 + 1 / 2) / 2)
    # A pin just below the k-th best is not a hit; fewer than k hits count as misses.
    assert tie_aware_recall([[1]], [[0.49]], np.asarray([0.5]), [None], k=2) == 0.0
    assert tie_aware_recall([[1]], [[0.6]], np.asarray([0.5]), [None], k=2) == pytest.approx(0.5)
    assert math.isnan(tie_aware_recall([], [], np.asarray([]), [], k=2))


def test_pass_share():
    assert pass_share([[RARE_BOARD, RARE_BOARD], [RARE_BOARD, "board-01"]], RARE_BOARD) == pytest.approx(0.75)
    assert pass_share([["board-01"]], None) == 1.0
    assert pass_share([[]], RARE_BOARD) == 1.0


def test_knn_bodies_put_the_filter_inside_the_knn_query_or_after_it():
    vector = np.asarray([1.0, 0.0], dtype=np.float32)
    inside = knn_body(vector, RARE_BOARD, 10, 100)
    assert inside["query"]["knn"]["vector"]["filter"] == {"terms": {"board": [RARE_BOARD]}}
    assert inside["query"]["knn"]["vector"]["method_parameters"] == {"ef_search": 100}
    after = knn_body(vector, RARE_BOARD, 1000, 1000, post_filter=True)
    assert "filter" not in after["query"]["bool"]["must"][0]["knn"]["vector"]
    assert after["query"]["bool"]["filter"] == [{"terms": {"board": [RARE_BOARD]}}]
    assert after["size"] == 10
    assert "filter" not in knn_body(vector, None, 10, None)["query"]["knn"]["vector"]
    exact = exact_body(vector, RARE_BOARD)["query"]["script_score"]
    assert exact["query"] == {"bool": {"filter": [{"terms": {"board": [RARE_BOARD]}}]}}
    assert exact["script"]["source"] == "knn_score"
    assert exact_body(vector, None)["query"]["script_score"]["query"] == {"match_all": {}}


RESULTS = [
    {"filter": "1%", "method": "PinText", "setting": "tuned", "recall": 0.9, "pass": 1.0, "hits": 10.0,
     "p50_ms": 6.0, "p95_ms": 12.0},
    {"filter": "1%", "method": "exact script", "setting": "brute force", "recall": 1.0, "pass": 1.0, "hits": 10.0,
     "p50_ms": 3.0, "p95_ms": 4.0},
    {"filter": "none", "method": "PinText", "setting": "tuned", "recall": 0.95, "pass": 1.0, "hits": 10.0,
     "p50_ms": 5.0, "p95_ms": 9.0},
]


def test_table_rows_are_ratios_against_the_exact_script_of_the_same_filter():
    rows = table_rows(RESULTS, "1%")
    assert [row["method"] for row in rows] == ["PinText", "exact script"]
    assert rows[0]["p50 / exact"] == pytest.approx(2.0)
    assert rows[0]["p95 / exact"] == pytest.approx(3.0)
    assert rows[1]["p50 / exact"] == pytest.approx(1.0)
    # No exact row for this filter: ratios are n/a, never a division error.
    assert math.isnan(table_rows(RESULTS, "none")[0]["p50 / exact"])
    table = results_table(RESULTS, "1%")
    assert table.splitlines()[0] == "| " + " | ".join(TABLE_COLUMNS) + " |"
    assert "| PinText | tuned | 0.9 | 1 | 10 | 6 | 2 | 12 | 3 | n/a |" in table


def test_report_renders_every_section():
    data = {
        "command": "python -m pintext.bench.filtered --pins 1000", "started_at": "now", "seconds": 60.0,
        "machine": {"cpu_model": "cpu", "cores": 2, "memory": "1 GiB", "load_average_at_start": [1.0]},
        "load_average_at_end": [1.0], "versions": {"numpy": "2"},
        "node": {"version": "3.5.0", "lucene": "10.3.2", "plugins": ["opensearch-knn 3.5.0.0"], "heap": "2 GiB"},
        "corpus": {"pins": 1000, "products": 30, "dim": 256, "queries": 5, "rare": 10, "common": 100,
                   "model": "m"},
        "build": {"pintext": {"tuning": {"tuned_on": 1000, "recall_at_10": 0.96}, "lsh": {"tables": 16, "bits": 8},
                              "serving": {"window": 500, "probes": 1}, "write_seconds": 1.0, "merge_seconds": 1.0,
                              "size_bytes": 2 ** 20},
                  "hnsw": {"write_seconds": 1.0, "merge_seconds": 1.0, "size_bytes": 2 ** 20}},
        "results": RESULTS,
        "candidates": {"filtered_pins": 10, "candidates_mean": 8.0, "candidates_p95": 10.0,
                       "top10_among_candidates": 0.9},
        "agreement": {"window": 10, "queries": 5, "identical_id_lists": 5, "identical_share": 1.0,
                      "recall_vs_exact_at_full_window": 0.9},
        "reading": ["Tokens lose here."],
    }
    report = render_report(data)
    for heading in ("## Filter keeping 1% of the pins", "## No filter (reference)", "## Reading",
                    "identical id lists for 5", "Tokens lose here.", "OpenSearch 3.5.0 (Lucene 10.3.2)"):
        assert heading in report
