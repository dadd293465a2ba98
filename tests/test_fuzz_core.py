"""Property-based fuzz of the pure core (issue 13): the text normalizer and word split, the encoder on a tiny
runtime, pin vectors, and every token family in `pintext.tokens.FAMILIES`.

Arbitrary unicode (every code point a Python string can hold but lone surrogates: combining marks, right-to-left
text and its overrides, emoji with joiners, NUL, the characters NFKC expands), very long texts and arbitrary pin
records must never crash, must give the same answer twice, and must give well-formed answers: finite vectors,
unit length after `unit_rows` or exactly zero, one token `t<table>_<hex>` per table.

Under CI=true the `ci` profile is derandomized (the same examples every run, so a red CI reproduces); elsewhere
`HYPOTHESIS_PROFILE` picks the profile (`dev`, random by default). Each test caps its examples so the file runs in
well under a minute on two cores.
"""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from pintext import text as pintext_text
from pintext.encoder import Encoder, HashedWords
from pintext.pin_vectors import pin_parts, pin_vectors, unit_rows
from pintext.schemas import RecordError, pin_text, validate_pin
from pintext.serving.filters import FilterError, Filters
from pintext.subwords import SubwordVectors
from pintext.tokens import FAMILIES, family_from_dict
from pintext.tokens.lsh import RandomHyperplaneLSH
from tests.factories import make_model
from tests.fixtures_engines import in_ci

settings.register_profile("ci", derandomize=True, deadline=None, database=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", deadline=None, database=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci" if in_ci() else os.environ.get("HYPOTHESIS_PROFILE", "dev"))

UNIT_TOLERANCE = 1e-5
DIM = 16
LONG_TEXT_CHARS = 20_000
# `t07_3f` (hyperplanes: table 7, bucket 0x3f), `c0_3f2` (centroids: codebook 0, centroid 0x3f2).
TOKEN_PATTERN = re.compile(r"[tc](\d+)_([0-9a-f]+)")
# Words the tiny vocabulary knows; the strategies mix them into the noise so known words actually occur.
VOCABULARY_TEXTS = ["red velvet cake", "chocolate cake recipe", "blue denim jacket", "café crème brûlée",
                    "東京 ラーメン", "مطبخ عربي", "ΑΘΗΝΑ σαλάτα", "straße maße"]
# Characters that have broken text pipelines elsewhere: combining marks, bidi controls, joiners, NUL, BOM,
# NFKC expanders (U+FDFA is 18 characters after NFKC), dotted capital I (lowercases to two code points), ß.
TRICKY_CHARACTERS = ["\u0301", "\u0308", "\u202e", "\u202d", "\u200f", "\u200d", "\u200b", "\x00", "\ufeff",
                     "\ufdfa", "\u0130", "\u00df", "\ufb03", "\U0001f469\u200d\U0001f373", "\U0001f1eb\U0001f1f7",
                     "\u05e9\u05dc\u05d5\u05dd", "\u0627\u0644\u0633\u0644\u0627\u0645", "\u2028", "\r\n", "\t",
                     "\uffff", "\U0010ffff", "_", "__", "\u00a0"]

# Any code point a Python str may hold except lone surrogates (category Cs), which cannot be UTF-8 encoded.
any_character = st.characters(exclude_categories=("Cs",))
noise = st.text(any_character, max_size=80)
piece = st.one_of(noise, st.sampled_from(TRICKY_CHARACTERS),
                  st.sampled_from(" ".join(VOCABULARY_TEXTS).split()))
texts = st.lists(piece, max_size=12).map(" ".join) | st.lists(piece, max_size=12).map("".join)


@st.composite
def long_texts(draw: st.DrawFn) -> str:
    """A text of about LONG_TEXT_CHARS: a drawn fragment repeated (hypothesis would not draw one this long)."""
    fragment = draw(texts.filter(bool))
    return (fragment * (LONG_TEXT_CHARS // len(fragment) + 1))[:LONG_TEXT_CHARS]


any_text = texts | long_texts()


# ---- the tiny runtime ------------------------------------------------------------------------------------------


def tiny_encoder(folder: Path, oov: HashedWords | SubwordVectors | None) -> Encoder:
    return Encoder.load(make_model(folder, texts=VOCABULARY_TEXTS, dim=DIM, seed=5, oov=oov))


@pytest.fixture(scope="module")
def encoders(tmp_path_factory) -> dict[str, Encoder]:
    """The same tiny vocabulary twice: unseen words ignored, and unseen words hashed (what `pintext train` writes)."""
    folder = tmp_path_factory.mktemp("fuzz-runtime")
    ngrams = np.random.default_rng(6).normal(size=(64, DIM)).astype(np.float32)
    return {"ignored": tiny_encoder(folder / "ignored", None),
            "hashed": tiny_encoder(folder / "hashed", HashedWords(seed=3, scale=1.5)),
            "subwords": tiny_encoder(folder / "subwords", SubwordVectors(ngrams, scale=1.5))}


def assert_unit_or_zero(vectors: np.ndarray) -> None:
    assert np.isfinite(vectors).all()
    norms = np.linalg.norm(unit_rows(vectors), axis=1)
    for norm, row in zip(norms, vectors):
        assert (norm == 0.0 and not row.any()) or abs(norm - 1.0) <= UNIT_TOLERANCE, norm


# ---- text ------------------------------------------------------------------------------------------------------


@settings(max_examples=300)
@given(any_text)
@example("\u0130stanbul")  # NFKC + lowercase gives "i" + U+0307: the mark stays in the word (module docstring)
@example("\ufdfa" * 3)
@example("\x00red\x00cake\x00")
def test_normalize_and_words_are_deterministic_and_well_formed(text):
    normalized = pintext_text.normalize(text)
    found = pintext_text.words(text)
    assert pintext_text.normalize(text) == normalized and pintext_text.words(text) == found
    assert normalized == normalized.lower()
    for word in found:
        assert word and word in normalized
        assert not any(character.isspace() for character in word), word


@settings(max_examples=300)
@given(any_text)
@example("Red\u00a0Cake\u2028caf\u00e9")
def test_fast_word_ids_equal_the_tokenizer(encoders, text):
    """The ASCII fast path and the tokenizer give the same ids, and as many as `words` finds (the hashed-word path
    pairs them up one to one)."""
    encoder = encoders["ignored"]
    expected = encoder.tokenizer.encode(text, add_special_tokens=False).ids
    (ids,) = encoder.token_ids([text])
    assert ids == expected
    assert len(ids) == len(pintext_text.words(text))
    ascii_text = text.encode("ascii", "ignore").decode("ascii")
    (ascii_ids,) = encoder.token_ids([ascii_text])
    assert ascii_ids == encoder.tokenizer.encode(ascii_text, add_special_tokens=False).ids


# ---- encoder ---------------------------------------------------------------------------------------------------


@settings(max_examples=100)
@given(st.lists(any_text, min_size=1, max_size=6), st.sampled_from(["ignored", "hashed", "subwords"]))
@example(["", " ", "\x00", "\u202e\u200d"], "hashed")
@example(["zzz unknown", "red zzz"], "ignored")
@example(["\u0130\u0307 x", "a"], "subwords")
def test_encoder_vectors_are_finite_deterministic_and_unit_or_zero(encoders, batch, kind):
    encoder = encoders[kind]
    vectors = encoder.encode(batch)
    assert vectors.shape == (len(batch), DIM) and vectors.dtype == np.float32
    np.testing.assert_array_equal(encoder.encode(batch), vectors)
    # Batching never changes a text's vector.
    np.testing.assert_array_equal(encoder.encode(batch, batch_size=1), vectors)
    assert_unit_or_zero(vectors)
    for text, row in zip(batch, vectors):
        ids = encoder.token_ids([text])[0]
        counted = ids if kind != "ignored" else [i for i in ids if i != encoder.unk_id]
        assert row.any() == bool(counted), (text, ids)


# ---- pins ------------------------------------------------------------------------------------------------------

json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | any_text
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=12)
optional_text = st.none() | any_text
pin_like = st.fixed_dictionaries(
    {"id": st.text(any_character, min_size=1, max_size=40)},
    optional={"title": optional_text, "description": optional_text, "board": optional_text,
              "annotations": st.none() | st.lists(any_text, max_size=5), "link": optional_text,
              "extra": json_values})
# Records as a reader hands them to validate_pin: pin-shaped ones, and anything JSON can hold.
records = pin_like | st.dictionaries(st.sampled_from(["id", "title", "description", "annotations", "board"]),
                                     json_values, max_size=5) | json_values


@settings(max_examples=200)
@given(records)
@example({"id": "p", "title": "   ", "description": "\x00"})
@example({"id": "p", "title": "red cake", "annotations": "not a list"})
@example({"id": "p", "title": 7})
def test_any_record_is_rejected_cleanly_or_embeds(encoders, record):
    """validate_pin either refuses with a RecordError naming a field, or gives a pin pin_text and pin_vectors take."""
    try:
        pin = validate_pin(record)
    except RecordError as error:
        assert error.field and str(error)
        return
    text = pin_text(pin)
    assert pin_text(pin) == text and text == text.strip()
    title, rest = pin_parts(pin)
    assert (title + " " + rest).strip() == text
    for kind, encoder in encoders.items():
        vectors = pin_vectors(encoder, [pin])
        np.testing.assert_array_equal(pin_vectors(encoder, [pin]), vectors)
        assert vectors.shape == (1, DIM) and np.isfinite(vectors).all()
        assert_unit_or_zero(vectors)
        # 0.8 x one unit vector + 0.2 x another: between 0.6 and 1 long, or 0.8 / 0.2 with one part, or zero.
        norm = float(np.linalg.norm(vectors[0]))
        assert norm == 0.0 or 0.6 - UNIT_TOLERANCE <= norm <= 1.0 + UNIT_TOLERANCE or \
            math.isclose(norm, 0.2, abs_tol=UNIT_TOLERANCE), (kind, norm)


# ---- token families --------------------------------------------------------------------------------------------


def hyperplane_families() -> st.SearchStrategy:
    # Up to 12 bits: above, a family precomputes up to 2**20 token strings per draw (the fuzz would spend its time
    # there); the explicit examples cover 20 and 62 (MAX_BITS) bits.
    return st.builds(RandomHyperplaneLSH, st.just(DIM), st.integers(1, 40), st.integers(1, 12),
                     st.integers(0, 2**32 - 1))


def centroid_families() -> st.SearchStrategy:
    """Learned centroids (`pintext.tokens.centroids`) from random codebooks, quantized as an index stores them."""
    import importlib

    centroids = importlib.import_module("pintext.tokens.centroids")

    def build(tables: int, count: int, spill: int, seed: int):
        books = np.random.default_rng(seed).normal(size=(tables, count, DIM)).astype(np.float32)
        return centroids.CentroidTokens(books, spill=min(spill, count), seed=seed).quantized()

    return st.builds(build, st.integers(1, 3), st.integers(2, 40), st.integers(1, 3), st.integers(0, 2**32 - 1))


# kind in `pintext.tokens.FAMILIES` -> a strategy drawing families of that kind. The fuzz runs over the registry,
# so a family that lands without an entry here fails `test_every_registered_family_is_fuzzed`.
FAMILY_STRATEGIES = {"random_hyperplane": hyperplane_families, "kmeans": centroid_families}


def registered_families() -> st.SearchStrategy:
    return st.sampled_from(sorted(FAMILIES)).flatmap(lambda kind: FAMILY_STRATEGIES[kind]())


def test_every_registered_family_is_fuzzed():
    assert set(FAMILIES) <= set(FAMILY_STRATEGIES), "add a strategy for the new token family to FAMILY_STRATEGIES"


vectors_strategy = st.integers(1, 6).flatmap(lambda rows: st.lists(
    st.lists(st.floats(-1e6, 1e6, allow_nan=False, width=32) | st.just(0.0), min_size=DIM, max_size=DIM),
    min_size=rows, max_size=rows))


def tables_and_limit(family) -> tuple[int, int]:
    """(tables, the largest probes value) of a family, read from its config."""
    described = family.to_dict()
    tables = int(described["tables"])
    limit = int(described["bits"]) if "bits" in described else int(described["centroids"]) - 1
    return tables, limit


@settings(max_examples=200)
@given(registered_families(), vectors_strategy, st.integers(0, 20))
@example(RandomHyperplaneLSH(DIM, 1, 1, 0), [[0.0] * DIM], 1)
@example(RandomHyperplaneLSH(DIM, 11, 20, 7), [[1e-30] * DIM, [-1e6] * DIM], 20)
@example(RandomHyperplaneLSH(DIM, 2, 62, 1), [[3.0] * DIM, [-1e-6] * DIM], 62)
def test_every_family_gives_well_formed_tokens_for_every_table(family, rows, probes):
    vectors = np.asarray(rows, dtype=np.float32)
    described = family.to_dict()
    assert family_from_dict(json.loads(json.dumps(described))).to_dict() == described
    tables, limit = tables_and_limit(family)
    probes = min(probes, limit)
    stored = family.tokens(vectors)
    assert family.tokens(vectors) == stored and len(stored) == len(vectors)
    nearest = family.query_tokens(vectors, 0)
    queried = family.query_tokens(vectors, probes)
    assert family.query_tokens(vectors, probes) == queried
    for own, first, wider in zip(stored, nearest, queried):
        assert_well_formed(own, tables, limit)
        assert_well_formed(wider, tables, limit)
        # Every table holds the same number of a pin's tokens (one for hyperplanes, `spill` for centroids).
        per_table = [table_of(token) for token in own]
        assert sorted(set(per_table)) == list(range(tables))
        assert len(own) == tables * (len(own) // tables) and len(set(own)) == len(own)
        # A query's own tokens are among a pin's at the same place, and probing only widens the lookup.
        assert len(first) == tables and set(first) <= set(own) and set(first) <= set(wider)
        assert len(wider) == tables * (1 + probes) and len(set(wider)) == len(wider)


@settings(max_examples=40)
@given(st.lists(any_text, min_size=1, max_size=4), registered_families())
def test_text_to_tokens_end_to_end(encoders, batch, family):
    """Arbitrary text through the encoder and a family: the pipeline a query takes."""
    tables, limit = tables_and_limit(family)
    vectors = encoders["hashed"].encode(batch)
    tokens = family.query_tokens(vectors, 0)
    assert tokens == family.query_tokens(encoders["hashed"].encode(batch), 0)
    for row in tokens:
        assert_well_formed(row, tables, limit)
        assert len(row) == tables


def table_of(token: str) -> int:
    match = TOKEN_PATTERN.fullmatch(token)
    assert match, token
    return int(match.group(1))


def assert_well_formed(tokens: list[str], tables: int, probe_limit: int) -> None:
    """Each token names a table below `tables` and a bucket the family can have (hyperplanes: below 2**bits,
    where bits = probe_limit; centroids: at most centroids - 1 = probe_limit)."""
    assert tokens and all(isinstance(token, str) for token in tokens)
    for token in tokens:
        match = TOKEN_PATTERN.fullmatch(token)
        assert match, token
        assert int(match.group(1)) < tables
        bucket = int(match.group(2), 16)
        assert bucket < 2 ** probe_limit if token.startswith("t") else bucket <= probe_limit


# ---- filters ---------------------------------------------------------------------------------------------------

filter_kinds = st.sampled_from(["term", "terms", "ids", "exists", "range", "bool", "match_all", "prefix"])
filter_keys = st.sampled_from(["board", "annotations", "id", "_id", "value", "values", "field", "gte", "lt", "must",
                               "filter", "should", "must_not", "minimum_should_match", "boost", "format"])
filter_bodies = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(filter_keys, inner, max_size=3)
    | st.dictionaries(filter_kinds, inner, min_size=1, max_size=1), max_leaves=10)
raw_clauses = st.dictionaries(filter_kinds, filter_bodies, min_size=1, max_size=1) | json_values


@settings(max_examples=300)
@given(raw_clauses, pin_like)
@example({"bool": {"must": 5}}, {"id": "p"})
@example({"bool": {"must": [5]}}, {"id": "p"})
@example({"ids": {"values": 5}}, {"id": "p"})
@example({"bool": {"minimum_should_match": "50%", "should": [{"term": {"board": "x"}}]}}, {"id": "p"})
def test_any_raw_filter_is_refused_cleanly_or_evaluates(clause, pin):
    """`--filter-json` on the local backend: a FilterError naming the clause (one line, exit 2), or a yes/no."""
    try:
        filters = Filters.parse([], [json.dumps(clause)])
        passes = filters.matches(pin)
    except FilterError as error:
        assert str(error)
        return
    assert passes in (True, False)
    assert filters.matches(pin) == passes


# ---- fusion ----------------------------------------------------------------------------------------------------

pin_ids = st.text(any_character, min_size=1, max_size=6)
engine_scores = st.dictionaries(pin_ids, st.floats(-1e6, 1e6, allow_nan=False), max_size=12)


@settings(max_examples=200)
@given(engine_scores, engine_scores, st.sampled_from(["rrf", "blend"]), st.floats(0.0, 1.0), st.integers(1, 100))
@example({"a": 1.0, "b": 1.0}, {"b": 0.5, "a": 0.5}, "blend", 0.5, 60)  # ties everywhere: broken by id
def test_fusion_is_a_ranking_of_the_union_whatever_the_input_order(bm25, pintext, method, weight, rrf_k):
    from pintext.fusion import FusionConfig

    config = FusionConfig(method=method, rrf_k=rrf_k, weight=weight)
    fused = config.fuse(bm25, pintext)
    assert fused == config.fuse(dict(reversed(list(bm25.items()))), dict(reversed(list(pintext.items()))))
    ids = [pin_id for pin_id, _ in fused]
    assert sorted(ids) == sorted(set(bm25) | set(pintext))
    scores = [score for _, score in fused]
    assert all(math.isfinite(score) and score >= 0.0 for score in scores)
    assert fused == sorted(fused, key=lambda item: (-item[1], item[0]))
    ceiling = 1.0 if method == "blend" else 1.0 / (rrf_k + 1)
    assert all(score <= ceiling + 1e-12 for score in scores)
