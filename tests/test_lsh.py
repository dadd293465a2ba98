"""Random-hyperplane LSH: determinism, collision probability, multi-probe buckets, config round trip."""

import math
import re

import numpy as np
import pytest

from pintext.tokens.lsh import RandomHyperplaneLSH


def unit_pairs_at_cosine(rng: np.random.Generator, count: int, dim: int, cosine: float) -> tuple[np.ndarray, np.ndarray]:
    """`count` pairs of unit vectors whose cosine is exactly `cosine`."""
    base = rng.standard_normal((count, dim))
    base /= np.linalg.norm(base, axis=1, keepdims=True)
    other = rng.standard_normal((count, dim))
    other -= (other * base).sum(axis=1, keepdims=True) * base  # orthogonal to base
    other /= np.linalg.norm(other, axis=1, keepdims=True)
    partner = cosine * base + math.sqrt(1 - cosine**2) * other
    return base.astype(np.float32), partner.astype(np.float32)


def test_same_seed_same_tokens_other_seed_other_tokens():
    vectors = np.random.default_rng(1).standard_normal((20, 16)).astype(np.float32)
    first = RandomHyperplaneLSH(dim=16, tables=8, bits=6, seed=3).tokens(vectors)
    again = RandomHyperplaneLSH(dim=16, tables=8, bits=6, seed=3).tokens(vectors)
    other = RandomHyperplaneLSH(dim=16, tables=8, bits=6, seed=4).tokens(vectors)
    assert first == again
    assert first != other


def test_token_format_is_table_prefixed_hex_bucket():
    lsh = RandomHyperplaneLSH(dim=8, tables=12, bits=8, seed=0)
    vectors = np.random.default_rng(0).standard_normal((5, 8))
    rows = lsh.tokens(vectors)
    signatures = lsh.signatures(vectors)
    assert signatures.dtype == np.uint64 and signatures.shape == (5, 12)
    for row, signature in zip(rows, signatures):
        assert len(row) == 12
        for table, token in enumerate(row):
            match = re.fullmatch(r"t(\d{2})_([0-9a-f]{2})", token)
            assert match, token
            assert int(match.group(1)) == table
            assert int(match.group(2), 16) == int(signature[table])


def test_bucket_bits_are_projection_signs():
    lsh = RandomHyperplaneLSH(dim=4, tables=3, bits=5, seed=9)
    vector = np.random.default_rng(2).standard_normal(4).astype(np.float32)
    margins = lsh.margins(vector)[0]
    buckets = lsh.signatures(vector)[0]
    for table in range(3):
        expected = sum(1 << bit for bit in range(5) if margins[table, bit] > 0)
        assert int(buckets[table]) == expected


def test_scale_does_not_change_tokens():
    lsh = RandomHyperplaneLSH(dim=10, tables=16, bits=8, seed=0)
    vectors = np.random.default_rng(5).standard_normal((7, 10))
    assert lsh.tokens(vectors) == lsh.tokens(vectors * 3.5)


def test_collision_rate_rises_with_cosine_and_matches_theory():
    rng = np.random.default_rng(0)
    lsh = RandomHyperplaneLSH(dim=32, tables=64, bits=4, seed=1)
    rates = []
    for cosine in (0.0, 0.5, 0.8, 0.95):
        left, right = unit_pairs_at_cosine(rng, 200, 32, cosine)
        shared = (lsh.signatures(left) == lsh.signatures(right)).mean()
        theory = (1 - math.acos(cosine) / math.pi) ** 4
        assert abs(shared - theory) < 0.05, (cosine, shared, theory)
        rates.append(shared)
    assert rates == sorted(rates) and rates[0] < rates[-1] - 0.5


def test_multi_probe_flips_the_smallest_margin_bits():
    lsh = RandomHyperplaneLSH(dim=12, tables=4, bits=6, seed=2)
    vectors = np.random.default_rng(3).standard_normal((3, 12))
    probes = 2
    rows = lsh.query_tokens(vectors, probes=probes)
    margins = lsh.margins(vectors)
    own = lsh.signatures(vectors)
    for n, row in enumerate(rows):
        assert len(row) == 4 * (1 + probes)
        for table in range(4):
            table_tokens = row[table * (1 + probes):(table + 1) * (1 + probes)]
            assert table_tokens[0] == lsh.tokens(vectors[n])[0][table]
            order = np.argsort(np.abs(margins[n, table]))[:probes]
            expected = {int(own[n, table]) ^ (1 << int(bit)) for bit in order}
            got = {int(token.split("_")[1], 16) for token in table_tokens[1:]}
            assert got == expected
            assert all(token.startswith(f"t{table:02d}_") for token in table_tokens)


def test_zero_probes_equal_plain_tokens_and_probes_raise_recall_of_neighbours():
    rng = np.random.default_rng(4)
    lsh = RandomHyperplaneLSH(dim=32, tables=16, bits=8, seed=0)
    left, right = unit_pairs_at_cosine(rng, 300, 32, 0.8)
    assert lsh.query_tokens(left, probes=0) == lsh.tokens(left)
    pin_tokens = [set(row) for row in lsh.tokens(right)]

    def mean_matches(probes: int) -> float:
        rows = lsh.query_tokens(left, probes=probes)
        return float(np.mean([len(set(row) & pins) for row, pins in zip(rows, pin_tokens)]))

    assert mean_matches(0) < mean_matches(1) < mean_matches(3)


def test_probes_out_of_range_and_bad_shapes_are_refused():
    lsh = RandomHyperplaneLSH(dim=4, tables=2, bits=3)
    with pytest.raises(ValueError, match="probes"):
        lsh.query_tokens(np.ones((1, 4)), probes=4)
    with pytest.raises(ValueError, match=r"\[n, 4\]"):
        lsh.tokens(np.ones((2, 5)))
    with pytest.raises(ValueError):
        RandomHyperplaneLSH(dim=4, tables=2, bits=0)


def test_config_round_trip():
    lsh = RandomHyperplaneLSH(dim=24, tables=10, bits=7, seed=42)
    config = lsh.to_dict()
    assert config == {"kind": "random_hyperplane", "dim": 24, "tables": 10, "bits": 7, "seed": 42}
    rebuilt = RandomHyperplaneLSH.from_dict(config)
    vectors = np.random.default_rng(0).standard_normal((4, 24))
    assert rebuilt == lsh
    assert rebuilt.tokens(vectors) == lsh.tokens(vectors)
    with pytest.raises(ValueError, match="unsupported LSH kind"):
        RandomHyperplaneLSH.from_dict({**config, "kind": "minhash"})
    with pytest.raises(ValueError, match="lacks seed"):
        RandomHyperplaneLSH.from_dict({"dim": 3, "tables": 2, "bits": 2})


def test_long_buckets_are_formatted_without_the_lookup_table():
    lsh = RandomHyperplaneLSH(dim=8, tables=40, bits=20, seed=0)  # 40 * 2**20 tokens: too many to precompute
    vectors = np.random.default_rng(6).standard_normal((3, 8))
    signatures = lsh.signatures(vectors)
    for row, signature in zip(lsh.tokens(vectors), signatures):
        assert row == [f"t{table:02d}_{int(bucket):05x}" for table, bucket in enumerate(signature)]
    probed = lsh.query_tokens(vectors, probes=2)
    assert all(len(row) == 40 * 3 for row in probed)


# ---- tuning on a corpus (pintext.tokens.tune_lsh) --------------------------------------------------------------

from pintext.tokens.recall import TIE_TOLERANCE, unit_rows  # noqa: E402
from pintext.tokens.tune_lsh import MAX_QUERY_CLAUSES, TuneGrid, bits_for_corpus, tune_for_corpus  # noqa: E402


def clustered_corpus(count: int = 1500, dim: int = 24, clusters: int = 60, seed: int = 0) -> np.ndarray:
    """Vectors around random centres: each has real near neighbours, as a product corpus has."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim))
    return (centres[rng.integers(0, clusters, count)] + 0.6 * rng.standard_normal((count, dim))).astype(np.float32)


def replayed_recall(lsh: RandomHyperplaneLSH, corpus: np.ndarray, queries: np.ndarray, probes: int, window: int,
                    exclude: list[int] | None = None, k: int = 10) -> float:
    """Tie-aware recall@k of the served ranking, replayed from the token strings the index would hold: first stage
    = tokens shared (then row), the `window` best rescored by cosine; against brute-force cosine."""
    return float(np.mean(replayed_shares(lsh, corpus, queries, probes, window, exclude, k)))


def replayed_shares(lsh: RandomHyperplaneLSH, corpus: np.ndarray, queries: np.ndarray, probes: int, window: int,
                    exclude: list[int] | None = None, k: int = 10) -> list[float]:
    """`replayed_recall` per query."""
    corpus_unit, queries_unit = unit_rows(corpus), unit_rows(queries)
    pin_tokens = [set(tokens) for tokens in lsh.tokens(corpus)]
    shares = []
    for row, (query, tokens) in enumerate(zip(queries_unit, lsh.query_tokens(queries, probes=probes))):
        own = exclude[row] if exclude else -1
        wanted = set(tokens)
        matched = [(len(wanted & held), pin) for pin, held in enumerate(pin_tokens) if pin != own and wanted & held]
        window_rows = [pin for _, pin in sorted(matched, key=lambda item: (-item[0], item[1]))[:window]]
        cosines = corpus_unit @ query
        if own >= 0:
            cosines[own] = -np.inf
        kth_best = np.sort(cosines)[-k]
        served = sorted(cosines[window_rows], reverse=True)[:k]
        shares.append(sum(1 for value in served if value >= kth_best - TIE_TOLERANCE) / k)
    return shares


def test_tuned_setting_meets_the_target_when_replayed_with_the_real_tokens():
    corpus = clustered_corpus()
    queries = clustered_corpus(count=80, seed=0)[:80] + 0.05
    result = tune_for_corpus(corpus, target_recall=0.9, queries=queries, sample=80)
    shares = replayed_shares(result.family, corpus, queries, result.probes, result.window)
    assert np.mean(shares) == pytest.approx(result.recall, abs=1e-9)
    # The standard error of the per-query recall, and the target reached with 1.645 of them to spare.
    assert result.recall_se == pytest.approx(np.std(shares, ddof=1) / np.sqrt(len(shares)), abs=1e-9)
    assert result.recall_se > 0 and result.reached and result.recall - 1.645 * result.recall_se >= 0.9
    assert result.family.tables * (1 + result.probes) <= MAX_QUERY_CLAUSES
    reaching = [point for point in result.points if point.recall - 1.645 * point.recall_se >= 0.9]
    assert result.choice.cost == min(point.cost for point in reaching)  # the cheapest setting reaching it
    # A cheaper setting whose mean alone reaches the target is passed over: its bound does not.
    assert any(point.recall >= 0.9 and point.cost < result.choice.cost for point in result.points)


def test_tuning_on_the_corpus_own_pins_excludes_each_from_its_results():
    corpus = clustered_corpus(count=800)
    result = tune_for_corpus(corpus, target_recall=0.9, sample=60)
    assert result.query_source == "pins" and result.queries == 60 and result.reached
    rows = list(np.random.default_rng(0).permutation(len(corpus))[:60])  # the tuner's own sample
    replay = replayed_recall(result.family, corpus, corpus[rows], result.probes, result.window, exclude=rows)
    assert replay == pytest.approx(result.recall, abs=1e-9)


def test_higher_target_costs_at_least_as_much_and_fixed_tables_bits_are_kept():
    corpus = clustered_corpus(count=800)
    low = tune_for_corpus(corpus, target_recall=0.8, sample=60)
    high = tune_for_corpus(corpus, target_recall=0.99, sample=60)
    assert high.choice.cost >= low.choice.cost and high.recall >= low.recall
    fixed = tune_for_corpus(corpus, target_recall=0.9, sample=60, fixed=(16, 5))
    assert (fixed.family.tables, fixed.family.bits) == (16, 5)
    assert {(point.tables, point.bits) for point in fixed.points} == {(16, 5)}


def test_a_corpus_above_the_cap_is_sampled_and_the_window_scaled():
    corpus = clustered_corpus(count=1200)
    result = tune_for_corpus(corpus, target_recall=0.9, sample=40, max_corpus=400,
                             grid=TuneGrid(tables=(16, 32), bits=(6,), probes=(0, 1), windows=(20, 50, 100)))
    assert (result.tuned_on, result.corpus) == (400, 1200)
    assert result.window == result.choice.window * 3


def test_bits_follow_the_corpus_size_and_tiny_corpora_are_refused():
    assert bits_for_corpus(10_000) == (6, 8, 10)
    assert bits_for_corpus(1_000_000) == (12, 14, 16)
    assert bits_for_corpus(50) == (4, 6, 8)
    with pytest.raises(ValueError, match="at least 11 pins"):
        tune_for_corpus(np.ones((5, 4), dtype=np.float32))


def test_deeper_lists_get_their_own_window_and_probes_reaching_recall_at_100():
    corpus = clustered_corpus(count=1500, clusters=8)  # clusters of ~190 pins: a top 100 to find in each
    result = tune_for_corpus(corpus, target_recall=0.9, sample=60)
    assert result.deep_window >= max(result.window, 100) and result.deep_probes >= result.probes
    rows = list(np.random.default_rng(0).permutation(len(corpus))[:60])
    replay = replayed_recall(result.family, corpus, corpus[rows], result.deep_probes, result.deep_window,
                             exclude=rows, k=100)
    assert replay == pytest.approx(result.deep_recall, abs=1e-9) and replay >= 0.9
    assert result.to_meta()["recall_at_100"] == round(result.deep_recall, 4)


def test_serving_defaults_pick_the_window_and_probes_for_the_hits_asked():
    from pintext.serving.meta import ServingDefaults

    tuned = ServingDefaults(window=300, probes=0, window_at_100=2000, probes_at_100=1)
    assert (tuned.window_for(10), tuned.probes_for(10)) == (300, 0)
    assert (tuned.window_for(11), tuned.probes_for(50), tuned.window_for(100)) == (2000, 1, 2000)
    assert tuned.window_for(300) == 6000 and tuned.window_for(100_000) == 100_000  # beyond 100: in proportion
    assert (tuned.window_for(50, window=70), tuned.probes_for(50, probes=2)) == (70, 2)  # asked for: as asked
    untuned = ServingDefaults.from_meta({})
    assert (untuned.window_for(10), untuned.window_for(800), untuned.probes_for(100)) == (500, 800, 0)
    assert ServingDefaults.from_meta({"serving": tuned.to_dict()}) == tuned
