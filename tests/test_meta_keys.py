"""The index `_meta` keeps the token family under `tokens`; indexes written before under `lsh` still read."""

from __future__ import annotations

import numpy as np
import pytest

from pintext.serving.base import IndexMismatchError
from pintext.serving.local import LocalEngine
from pintext.serving.meta import (
    LEGACY_TOKENS_KEY,
    TOKENS_KEY,
    ServingDefaults,
    check_meta,
    family_from_meta,
    index_meta,
    made_by_pintext,
    token_config,
)
from pintext.serving.rollout import describe
from pintext.serving.searcher import Searcher
from pintext.tokens import CentroidTokens, RandomHyperplaneLSH

DIM = 8


def old_style(meta: dict) -> dict:
    """`meta` as PinText wrote it before the token stage had a name of its own: the family under `lsh`."""
    return {LEGACY_TOKENS_KEY if key == TOKENS_KEY else key: value for key, value in meta.items()}


def lsh_meta(tables: int = 8, bits: int = 4) -> dict:
    family = RandomHyperplaneLSH(dim=DIM, tables=tables, bits=bits, seed=3)
    return index_meta("fingerprint", DIM, family, ServingDefaults(window=40, probes=1))


def test_new_indexes_record_their_family_under_tokens_only():
    family = RandomHyperplaneLSH(dim=DIM, tables=8, bits=4, seed=3)
    meta = index_meta("fingerprint", DIM, family)
    assert (TOKENS_KEY, LEGACY_TOKENS_KEY) == ("tokens", "lsh")
    assert meta["tokens"] == family.to_dict() and "lsh" not in meta


@pytest.mark.parametrize("family", [
    RandomHyperplaneLSH(dim=DIM, tables=8, bits=4, seed=3),
    CentroidTokens(np.random.default_rng(0).standard_normal((1, 16, DIM)).astype(np.float32), spill=2).quantized(),
])
def test_an_old_style_meta_under_lsh_reads_as_the_same_family(family):
    new = index_meta("fingerprint", DIM, family)
    old = old_style(new)
    assert "tokens" not in old and old["lsh"] == family.to_dict()
    assert made_by_pintext(old) and token_config(old) == token_config(new) == family.to_dict()
    assert family_from_meta("pins", old).to_dict() == family.to_dict()
    check_meta("pins", old, new)  # an old index takes writes from the model that made it


def test_an_old_style_meta_with_another_config_is_still_refused():
    with pytest.raises(IndexMismatchError, match="LSH config"):
        check_meta("pins", old_style(lsh_meta(tables=8)), lsh_meta(tables=16))


def test_an_index_without_a_token_config_is_not_pintexts():
    for meta in (None, {}, {"lsh": {}}, {"tokens": None}, {"model_fingerprint": "x", "dim": DIM}):
        assert not made_by_pintext(meta) and token_config(meta) is None


def test_an_old_index_on_an_engine_searches_and_describes_with_its_family(tmp_path):
    engine = LocalEngine(tmp_path / "local")
    meta = lsh_meta()
    engine.create("pins", DIM, old_style(meta))
    vectors = np.random.default_rng(1).standard_normal((20, DIM)).astype(np.float32)
    family = RandomHyperplaneLSH.from_dict(meta["tokens"])
    pins = [{"id": f"p{row}", "title": f"pin {row}"} for row in range(len(vectors))]
    assert not engine.write("pins", pins, list(vectors), family.tokens(vectors)).failed
    engine.refresh("pins")
    searcher = Searcher.for_index(engine, "pins")
    assert searcher.family.to_dict() == family.to_dict() and searcher.serving.window == 40
    hits = searcher.search(vectors[5], k=3)
    assert hits[0].id == "p5"
    assert describe(engine, "pins")["versions"][0]["tokens"] == family.to_dict()
