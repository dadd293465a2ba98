"""Random-hyperplane LSH: determinism, collision probability, multi-probe buckets, config round trip."""

import math
import re

import numpy as np
import pytest

from pintext.lsh import RandomHyperplaneLSH


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
