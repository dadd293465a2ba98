"""Fast unit tests of the benchmark's pure parts: recall, percentiles and ratios, the LSH replica and tuner."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pintext.bench.harness import Report, markdown_table, per_million, percentiles, ratio
from pintext.bench.lsh_sim import (
    BucketIndex,
    GridPoint,
    choose,
    cost_of,
    exact_top_k,
    fit_cost_model,
    recall_at_k,
    sweep_config,
    unit_rows,
)
from pintext.bench.quality import metrics_from_scores, ndcg_at_10, pessimistic_ranks, rrf
from pintext.tokens.lsh import RandomHyperplaneLSH
from tests.factories import make_model, write_pins
from tests.fixtures_cli import run_pintext


def test_percentiles_interpolate_like_numpy_and_handle_empty_input():
    samples = list(range(1, 101))  # 1..100 ms
    result = percentiles(samples)
    assert result["p50"] == pytest.approx(50.5)
    assert result["p95"] == pytest.approx(95.05)
    assert result["p99"] == pytest.approx(99.01)
    assert all(math.isnan(value) for value in percentiles([]).values())


def test_ratio_and_extrapolation_never_divide_by_zero():
    assert ratio(300.0, 1.5) == pytest.approx(200.0)
    assert math.isnan(ratio(1.0, 0.0))
    assert math.isnan(ratio(float("nan"), 2.0))
    assert per_million(2_000_000, 100_000) == pytest.approx(20_000_000)
    assert math.isnan(per_million(10, 0))


def test_recall_at_k_counts_the_overlap_with_the_exact_top_k():
    truth = np.array([[1, 2, 3, 4], [5, 6, 7, 8]])
    found = [[1, 2, 9, 10], [8, 7, 6, 5]]
    assert recall_at_k(found, truth, 4) == pytest.approx((0.5 + 1.0) / 2)
    assert recall_at_k([[1, 2]], truth[:1], 2) == 1.0


def test_exact_top_k_is_brute_force_cosine_with_self_exclusion():
    corpus = np.array([[1, 0], [0.9, 0.1], [0, 1], [-1, 0]], dtype=np.float32)
    unit = unit_rows(corpus)
    top = exact_top_k(unit, unit[:1], 2)
    assert top.tolist() == [[0, 1]]
    assert exact_top_k(unit, unit[:1], 2, exclude_rows=[0]).tolist() == [[1, 2]]


def test_bucket_index_counts_shared_tables_like_the_token_query():
    rng = np.random.default_rng(3)
    corpus = rng.standard_normal((300, 16)).astype(np.float32)
    lsh = RandomHyperplaneLSH(dim=16, tables=8, bits=3, seed=5)
    index = BucketIndex(lsh, corpus)
    query = corpus[7:8]
    rows, counts, postings = index.match_counts(index.query_buckets(query, probes=0)[0])
    # The same count from the product's own token strings.
    query_tokens = set(lsh.query_tokens(query)[0])
    expected = np.array([len(query_tokens & set(tokens)) for tokens in lsh.tokens(corpus)])
    assert set(rows.tolist()) == set(np.flatnonzero(expected).tolist())
    assert counts.tolist() == expected[rows].tolist()
    assert postings == expected.sum()
    assert counts[rows.tolist().index(7)] == 8  # a pin shares every table with itself


def test_probed_buckets_are_the_query_tokens_multi_probe_buckets():
    rng = np.random.default_rng(4)
    lsh = RandomHyperplaneLSH(dim=8, tables=4, bits=4, seed=1)
    index = BucketIndex(lsh, rng.standard_normal((20, 8)).astype(np.float32))
    query = rng.standard_normal((1, 8)).astype(np.float32)
    buckets = index.query_buckets(query, probes=2)[0]
    tokens = lsh.query_tokens(query, probes=2)[0]
    rebuilt = [f"t{table:02d}_{int(bucket):01x}" for table in range(4) for bucket in buckets[table]]
    assert rebuilt == tokens


def test_a_window_holding_every_candidate_with_all_probes_finds_the_exact_neighbours():
    rng = np.random.default_rng(0)
    corpus = unit_rows(rng.standard_normal((400, 8)))
    queries = unit_rows(rng.standard_normal((20, 8)))
    truth = exact_top_k(corpus, queries, 10)
    # One bit per table: every pin matches at least one table of 32 in practice; window = whole corpus.
    points = sweep_config(corpus, queries, truth, tables=32, bits=1, probes_grid=[0], windows=[400])
    assert points[0].recall == pytest.approx(1.0)
    assert points[0].rescored <= 400


def _point(tables, bits, probes, window, recall, cost, recall_se=0.0):
    return GridPoint(tables, bits, probes, window, recall, candidates=100, rescored=min(window, 100),
                     postings=cost, corpus=1000, cost=cost, recall_se=recall_se)


def test_tuner_wants_the_target_reached_with_confidence():
    """A setting reaches the target when its recall less 1.645 standard errors does: one measured at 0.955 on
    a noisy sample (se 0.01) is not trusted, a dearer one at 0.97 +- 0.005 is; with no spread the cheap one is."""
    noisy, sure = _point(64, 8, 0, 500, 0.955, 500, recall_se=0.01), _point(64, 8, 1, 500, 0.97, 900, recall_se=0.005)
    choice, reached = choose([noisy, sure], 0.95)
    assert reached and choice is sure
    choice, reached = choose([_point(64, 8, 0, 500, 0.955, 500), sure], 0.95)
    assert reached and choice.cost == 500
    choice, reached = choose([noisy], 0.95)
    assert not reached and choice is noisy  # nothing reaches with confidence: the best recall, flagged


def test_tuner_picks_the_cheapest_setting_that_reaches_the_target():
    grid = [_point(16, 8, 0, 100, 0.80, 100), _point(64, 8, 0, 500, 0.96, 900), _point(128, 8, 0, 500, 0.99, 2000),
            _point(64, 6, 1, 500, 0.97, 700)]
    choice, reached = choose(grid, 0.95)
    assert reached and (choice.tables, choice.bits, choice.probes) == (64, 6, 1)
    choice, reached = choose(grid, 0.995)
    assert not reached and choice.recall == 0.99  # nothing reaches: the best recall, flagged
    assert choose([], 0.9) == (None, False)


def test_cost_weighs_clauses_and_rescored_pins_more_than_postings():
    assert cost_of(1000, 0, 64) < cost_of(1000, 100, 64) < cost_of(1000, 100, 128)
    assert cost_of(0, 10, 0) > 10
    assert cost_of(0, 0, 1) > 100  # a term clause is a dictionary lookup, far dearer than one posting


def test_cost_model_fit_recovers_known_coefficients():
    rng = np.random.default_rng(0)
    clauses = rng.integers(32, 800, 30).astype(float)
    postings = rng.integers(1_000, 80_000, 30).astype(float)
    rescored = rng.integers(100, 4_000, 30).astype(float)
    latency = 1.5 + 0.03 * clauses + 0.00006 * postings + 0.0003 * rescored
    fit = fit_cost_model(clauses, postings, rescored, latency)
    assert fit["base_ms"] == pytest.approx(1.5, rel=1e-6)
    assert fit["ms_per_clause"] == pytest.approx(0.03, rel=1e-6)
    assert fit["clause_in_postings"] == pytest.approx(500, rel=1e-6)
    assert fit["rescored_in_postings"] == pytest.approx(5, rel=1e-6)
    assert fit["r2"] == pytest.approx(1.0)


def test_ndcg_and_recall_from_pessimistic_ranks():
    assert ndcg_at_10(np.array([1]), 1) == pytest.approx(1.0)
    assert ndcg_at_10(np.array([2]), 1) == pytest.approx(1 / np.log2(3))
    assert ndcg_at_10(np.array([11]), 1) == 0.0
    # A tie with a non-relevant item loses: a constant scorer is not rewarded.
    assert pessimistic_ranks(np.array([1.0, 1.0, 0.5])).tolist() == [2, 2, 3]
    scores = np.array([[0.9, 0.1, 0.5], [0.0, 0.0, 0.0]])
    metrics = metrics_from_scores(scores, [np.array([0]), np.array([2])])
    assert metrics["ndcg@10"] == pytest.approx((1.0 + 1 / np.log2(4)) / 2)
    assert metrics["recall@100"] == 1.0


def test_rrf_prefers_items_both_rankings_like():
    first = np.array([[3.0, 2.0, 1.0]])
    second = np.array([[1.0, 3.0, 2.0]])
    fused = rrf(first, second)
    assert np.argmax(fused[0]) == 1  # ranks 2 and 1 beat ranks 1 and 3


def test_report_renders_goals_and_sections(tmp_path):
    report = Report(command="pintext bench --profile tiny", profile="tiny", params={"pins": 10})
    report.add("x", "A section", markdown_table([{"a": 1, "b": 2.5}]), {"a": 1}, 1.0)
    report.goal("speed", ">= 300x", 412.0, True)
    report.goal("recall", ">= 0.95", 0.9, False)
    markdown, raw = report.write(tmp_path)
    text = markdown.read_text()
    assert "pintext bench --profile tiny" in text and "| 1 | 2.5 |" in text
    assert "| recall | >= 0.95 | 0.9 | NO |" in text
    assert raw.exists()


# ---- `pintext lsh tune` end to end on a toy corpus (no server, no torch) ----------------------------------------


def _toy_model(folder, words: list[str]):
    return make_model(folder, texts=[" ".join(words)] * 2, dim=8)


def _toy_pins(path, words: list[str], count: int) -> None:
    rng = np.random.default_rng(1)
    write_pins(path, [{"id": f"p{index:04d}", "title": " ".join(rng.choice(words, size=3)), "description": ""}
                      for index in range(count)])


def test_lsh_tune_command_chooses_and_writes_the_lsh_config(tmp_path):
    import json

    words = [f"word{index}" for index in range(40)]
    model = _toy_model(tmp_path / "model", words)
    pins = tmp_path / "pins.jsonl"
    _toy_pins(pins, words, 300)
    result = run_pintext(["lsh", "tune", "--model", str(model), "--pins", str(pins), "--sample", "30",
                          "--tables", "8,16", "--bits", "4", "--probes", "0,1", "--windows", "20,300",
                          "--target-recall", "0.9", "--write", "--json"])
    result.ok()
    payload = json.loads(result.stdout.strip().splitlines()[-1])
    choice = payload["choice"]
    assert payload["reached"] and choice["recall"] >= 0.9
    reaching = [point for point in payload["points"] if point["recall"] >= 0.9]
    assert choice["cost"] == min(point["cost"] for point in reaching)
    written = json.loads((model / "lsh.json").read_text())
    assert (written["tables"], written["bits"], written["dim"]) == (choice["tables"], choice["bits"], 8)


def test_lsh_tune_names_the_file_line_and_field_of_a_bad_pin(tmp_path):
    words = ["alpha", "beta", "gamma"]
    model = _toy_model(tmp_path / "model", words)
    pins = tmp_path / "pins.jsonl"
    pins.write_text('{"id": "p1", "title": "alpha beta"}\n{"id": 7, "title": "gamma"}\n', encoding="utf-8")
    result = run_pintext(["lsh", "tune", "--model", str(model), "--pins", str(pins)])
    assert result.code == 2
    assert f"{pins}:2" in result.output and "id" in result.output
