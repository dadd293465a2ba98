"""Learned centroid tokens (pintext.tokens.centroids) and their tuner (pintext.tokens.tune_centroids,
pintext.tokens.tune): pure."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pintext.tokens import describe, family_from_dict, scores_every_match
from pintext.tokens.centroids import CentroidTokens, fit_centroids
from pintext.tokens.recall import TIE_TOLERANCE, exact_top_k, unit_rows
from pintext.tokens.tune import cheapest, describe_comparison, tune_tokens
from pintext.tokens.tune_centroids import CentroidGrid, centroids_for_corpus, tune_centroids_for_corpus
from pintext.tokens.tuning import query_like_texts


def clustered(n: int, dim: int = 24, clusters: int = 40, seed: int = 0) -> np.ndarray:
    """Unit vectors crowded around `clusters` centres, like text embeddings (not uniform on the sphere)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim))
    rows = centres[rng.integers(0, clusters, n)] + 0.35 * rng.standard_normal((n, dim))
    return unit_rows(rows.astype(np.float32))


@pytest.fixture(scope="module")
def family() -> CentroidTokens:
    return fit_centroids(clustered(3000), centroids=64, spill=2, seed=1)


def test_pins_get_spill_tokens_and_queries_one_plus_probes_nearest_first(family):
    vectors = clustered(5, seed=9)
    tokens = family.tokens(vectors)
    assert all(len(row) == 2 and len(set(row)) == 2 for row in tokens)
    probed = family.query_tokens(vectors, probes=5)
    assert all(len(row) == 6 for row in probed)
    scores = vectors @ family.codebooks[0].T
    for row, vector_scores in zip(probed, scores):
        ids = [int(token.split("_")[1], 16) for token in row]
        assert ids == list(np.argsort(-vector_scores, kind="stable")[:6])
        assert row[:2] == tokens[probed.index(row)]  # a pin's own tokens are its query's first ones
    with pytest.raises(ValueError, match="probes must be in 0..63"):
        family.query_tokens(vectors, probes=64)


def test_config_round_trips_exactly_and_is_fingerprinted(family):
    config = family.to_dict()
    assert config["kind"] == "kmeans" and config["centroids"] == 64 and config["spill"] == 2
    rebuilt = family_from_dict(json.loads(json.dumps(config)))
    assert rebuilt.to_dict() == config  # the index `_meta` compares for equality
    np.testing.assert_array_equal(rebuilt.codebooks, family.codebooks)
    vectors = clustered(50, seed=4)
    assert rebuilt.tokens(vectors) == family.tokens(vectors)
    assert scores_every_match(rebuilt) and describe(rebuilt) == "1x64 kmeans, spill 2"
    damaged = dict(config, spill=1)
    with pytest.raises(ValueError, match="does not match its fingerprint"):
        CentroidTokens.from_dict(damaged)
    with pytest.raises(ValueError, match="lacks codebook"):
        CentroidTokens.from_dict({key: value for key, value in config.items() if key != "codebook"})


def test_fit_is_deterministic_and_leaves_zero_vectors_out():
    vectors = np.vstack([clustered(600), np.zeros((20, 24), dtype=np.float32)])
    first = fit_centroids(vectors, centroids=16, seed=3)
    second = fit_centroids(vectors, centroids=16, seed=3)
    assert first.to_dict() == second.to_dict()
    np.testing.assert_allclose(np.linalg.norm(first.codebooks, axis=2), 1.0, atol=1e-5)
    with pytest.raises(ValueError, match="at least 2 pins"):
        fit_centroids(np.zeros((5, 24), dtype=np.float32))


def test_centroid_grid_follows_the_corpus_size():
    assert centroids_for_corpus(20_000) == (128, 256, 512, 1024)
    assert centroids_for_corpus(100) == (16,)
    assert max(centroids_for_corpus(10_000_000)) == 8192


def test_tuned_recall_is_what_the_tokens_give_on_the_corpus():
    """The tuner's recall for its choice equals a brute-force replay with the chosen family: the pins holding a
    probed centroid, scored exactly, against the exact top 10 (tie-aware)."""
    corpus, queries = clustered(4000, seed=2), clustered(120, seed=7)
    result = tune_centroids_for_corpus(corpus, 0.9, queries=queries, grid=CentroidGrid(centroids=(64, 128)))
    assert result.reached and result.recall >= 0.9
    family, probes = result.family, result.probes
    pin_tokens = [set(row) for row in family.tokens(corpus)]
    truth = exact_top_k(corpus, queries, 10)
    recalls, matched = [], []
    for query, row_truth, wanted in zip(queries, truth, family.query_tokens(queries, probes=probes)):
        hits = {row for row, tokens in enumerate(pin_tokens) if tokens & set(wanted)}
        kth = float(query @ corpus[row_truth[-1]])
        good = set(np.flatnonzero(corpus @ query >= kth - TIE_TOLERANCE))
        recalls.append(min(10, len(good & hits)) / 10)
        matched.append(len(hits))
    assert np.mean(recalls) == pytest.approx(result.recall, abs=1e-9)
    assert np.mean(matched) / len(corpus) == pytest.approx(result.choice.matched_share, abs=1e-9)
    assert result.to_meta()["family"] == "kmeans"


def test_auto_keeps_the_cheaper_family_that_reaches_the_target():
    corpus = clustered(3000, seed=5)
    chosen = tune_tokens(corpus, "auto", 0.9)
    lsh, kmeans = tune_tokens(corpus, "lsh", 0.9), tune_tokens(corpus, "kmeans", 0.9)
    assert lsh.reached and kmeans.reached
    expected = lsh if lsh.choice.cost <= kmeans.choice.cost else kmeans
    assert chosen.kind == expected.kind and chosen.choice.cost == pytest.approx(expected.choice.cost)
    assert cheapest([lsh]) is lsh
    with pytest.raises(ValueError, match="unknown token family"):
        tune_tokens(corpus, "pq")
    # auto says why: each family's cost and recall@10, in the note and in the index's _meta.tuning
    assert chosen.compared == [lsh.compared_entry(), kmeans.compared_entry()]
    assert chosen.to_meta()["compared"] == chosen.compared
    why = describe_comparison(chosen)
    assert f"lsh cost {lsh.choice.cost:,.0f} at recall@10 {lsh.recall:.3f}" in why
    assert f"kmeans cost {kmeans.choice.cost:,.0f} at recall@10 {kmeans.recall:.3f}" in why


def test_auto_leaves_out_a_family_it_cannot_tune_and_says_why():
    """Identical vectors: no centroids can be fitted, so auto keeps random hyperplanes and records the reason."""
    corpus = np.tile(clustered(1, seed=2), (60, 1))
    chosen = tune_tokens(corpus, "auto", 0.9)
    assert chosen.kind == "random_hyperplane"
    assert [entry["family"] for entry in chosen.compared] == ["random_hyperplane", "kmeans"]
    assert "same vector" in chosen.compared[1]["error"]
    assert "kmeans not tunable (all 60 pins" in describe_comparison(chosen)


def test_query_like_texts_cut_titles_to_a_query_length():
    titles = ["a b c d e f g h", "", "one two", "w1 w2 w3 w4 w5 w6"] * 50
    cut = query_like_texts(titles, np.random.default_rng(0), sample=120, words=(3, 5))
    assert len(cut) == 120
    words = [len(text.split()) for text in cut]
    assert all(1 <= count <= 5 for count in words) and {3, 4, 5} <= set(words)
    prefixes = {" ".join(title.split()[:count]) for title in titles for count in range(1, 6)}
    assert set(cut) <= prefixes  # each a title's first words


def test_tokens_tune_command_reports_both_families_and_the_one_auto_keeps(tmp_path):
    from typer.testing import CliRunner

    from pintext.cli import app
    from tests.factories import make_model, make_pins, write_pins_file

    model = make_model(tmp_path / "model")
    pins_file = tmp_path / "pins.jsonl"
    write_pins_file(pins_file, make_pins(400, seed=4), with_bad_lines=False)
    result = CliRunner().invoke(app, ["tokens", "tune", "--model", str(model), "--pins", str(pins_file), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout.strip().splitlines()[-1])
    families = report["families"]
    assert set(families) == {"lsh", "kmeans"} and report["corpus"] == 400
    assert all(family["recall"] >= 0.95 and family["reached"] for family in families.values())
    assert report["auto_keeps"] == min(families, key=lambda name: families[name]["cost"])
    assert families["kmeans"]["setting"].startswith("kmeans tokens")


def test_top_columns_best_first_ties_by_lower_column_on_both_paths():
    from pintext.tokens.centroids import _ARGMAX_UP_TO, _top_columns

    scores = np.array([[0.5, 0.9, 0.5, 0.9, 0.1] * 20], dtype=np.float32)
    few = _top_columns(scores.copy(), 4)
    assert few.tolist() == [[1, 3, 6, 8]]  # the 0.9s by column, then the next 0.9s
    many = _top_columns(scores.copy(), _ARGMAX_UP_TO + 8)
    assert many[0, :4].tolist() == [1, 3, 6, 8] and len(set(many[0].tolist())) == _ARGMAX_UP_TO + 8
    rng = np.random.default_rng(9)
    random = rng.normal(size=(50, 300)).astype(np.float32)
    for n in (1, 2, _ARGMAX_UP_TO):
        assert np.array_equal(_top_columns(random.copy(), n), np.argsort(-random, axis=1, kind="stable")[:, :n])


def test_settle_on_picks_the_fewest_probes_of_the_served_codebook_reaching_each_target():
    """Above the sweep's sample the index gets a refitted codebook: its probes are chosen on it, over every pin,
    for recall@10 at the target and recall@100 at DEEP_TARGET_RECALL, and the figures are that codebook's."""
    from pintext.tokens.tune_centroids import DEEP_TARGET_RECALL, fine_probes, settle_on, sweep_family

    corpus = clustered(3000, seed=7)
    queries = unit_rows(clustered(60, seed=8) + 0.4 * np.random.default_rng(9).standard_normal((60, 24)))
    family = fit_centroids(corpus, centroids=64, spill=2, seed=0)
    shallow, deep = settle_on(family, corpus, queries, 0.95)
    # Each target reached with 1.645 standard errors of the per-query recall to spare.
    assert deep is not None and shallow.recall - 1.645 * shallow.recall_se >= 0.95
    assert deep.recall - 1.645 * deep.recall_se >= DEEP_TARGET_RECALL
    assert deep.probes >= shallow.probes and fine_probes(64)[-1] == 63  # every centroid: exact search
    below = [p for p in fine_probes(64) if p < shallow.probes]
    if below:  # one probe fewer of the grid misses the target
        truth = exact_top_k(corpus, queries, 10)
        fewer = sweep_family(family, corpus, queries, truth, [2], [below[-1]], 10)[0]
        assert fewer.recall - 1.645 * fewer.recall_se < 0.95
