"""The exact-match signal: served score = cosine + weight x share of the query's words a pin's text holds."""

import json

import numpy as np
import pytest

from pintext.exact_match import (
    MATCH_DEPTH,
    MATCH_DEPTH_CAP,
    MATCH_DEPTH_PER_HIT,
    MATCH_FILE,
    ExactMatch,
    NEAREST_BLOCK_WORDS,
    NEAREST_PIN_WORDS,
    NEAREST_QUERY_WORDS,
    NEAREST_WORDS_KEY,
    match_depth,
    nearest_word_shares,
    word_blocks,
    query_words,
    rerank_ids,
    word_share,
)
from pintext.serving.local import LocalEngine
from pintext.serving.searcher import Searcher


def test_word_share_counts_distinct_query_words_with_pintexts_own_split():
    wanted = query_words("3/4 in. Plywood plywood")
    assert wanted == {"3", "4", "in", "plywood"}
    assert word_share(wanted, "Plywood sheet, 3/4 in. x 4 ft.") == 1.0
    assert word_share(wanted, "1/2 in. plywood") == pytest.approx(2 / 4)
    assert word_share(wanted, "") == 0.0
    assert word_share(frozenset(), "anything") == 0.0


def test_rerank_adds_weight_times_share_and_keeps_cosine_order_among_equal_matches():
    match = ExactMatch(0.5)
    ranked = [("a", 0.9), ("b", 0.8), ("c", 0.7), ("d", 0.7)]
    texts = {"a": "oak table", "b": "3/4 in plywood", "c": "plywood", "d": "plywood"}
    got = rerank_ids(ranked, texts, "3/4 in. plywood", match)
    assert [pin for pin, _ in got] == ["b", "a", "c", "d"]  # b holds every word; c/d tie on score, cut by id
    assert dict(got)["b"] == pytest.approx(0.8 + 0.5)
    assert dict(got)["c"] == pytest.approx(0.7 + 0.5 * 1 / 4)
    assert dict(got)["a"] == pytest.approx(0.9)
    assert rerank_ids(ranked, texts, "3/4 in. plywood", ExactMatch(0.0)) == ranked


def test_weight_is_saved_loaded_and_checked(tmp_path):
    assert ExactMatch.load(tmp_path) == ExactMatch(0.0)  # no match.json: plain cosine
    assert not ExactMatch.load(None).on
    ExactMatch(0.3).save(tmp_path)
    assert json.loads((tmp_path / MATCH_FILE).read_text()) == {"weight": 0.3}
    assert ExactMatch.load(tmp_path) == ExactMatch(0.3)
    (tmp_path / MATCH_FILE).write_text("[1]")
    with pytest.raises(ValueError):
        ExactMatch.load(tmp_path)
    with pytest.raises(ValueError):
        ExactMatch(-1.0)
    assert match_depth(1) == match_depth(10) == MATCH_DEPTH
    assert match_depth(100) == MATCH_DEPTH_PER_HIT * 100 > MATCH_DEPTH
    assert match_depth(MATCH_DEPTH_CAP // 2) == MATCH_DEPTH_CAP
    assert match_depth(MATCH_DEPTH_CAP + 5) == MATCH_DEPTH_CAP + 5


WORDS = {  # unit-ish vectors: "dewalt" and "dewlat" close, "drill" and "driver" fairly close, the rest apart
    "dewalt": [1.0, 0.0, 0.0], "dewlat": [0.8, 0.6, 0.0], "drill": [0.0, 1.0, 0.0], "driver": [0.0, 0.6, 0.8],
    "saw": [0.0, 0.0, 1.0], "oak": [-1.0, 0.0, 0.0],
}


def word_vectors(words: list[str]) -> np.ndarray:
    """The test's word vectors; zero for a word it does not know (as an encoder without sub-words)."""
    return np.array([WORDS.get(word, [0.0, 0.0, 0.0]) for word in words], dtype=np.float32)


def test_nearest_word_share_counts_a_missing_word_by_its_nearest_pin_word():
    shares = nearest_word_shares("DeWalt drill", ["dewalt drill", "DEWLAT driver", "oak saw", "", "zzz dewalt"],
                                 word_vectors)
    assert shares[0] == pytest.approx(1.0)  # both words held
    assert shares[1] == pytest.approx((0.8 + 0.6) / 2)  # nearest: dewlat for dewalt, driver for drill
    assert shares[2] == pytest.approx((0.0 + 0.0) / 2)  # oak points away (clipped at 0), saw is orthogonal
    assert shares[3] == 0.0  # no words
    assert shares[4] == pytest.approx(0.5)  # an unknown word (zero vector) matches nothing but itself
    # a word the model cannot embed still counts whole where the pin holds it
    assert nearest_word_shares("zzz", ["a zzz", "b"], word_vectors).tolist() == [1.0, 0.0]
    assert nearest_word_shares("", ["dewalt"], word_vectors).tolist() == [0.0]


def test_long_texts_are_compared_within_bounds_and_held_words_still_count():
    filler = [f"f{i}" for i in range(NEAREST_PIN_WORDS)]
    query_words = [f"q{i}" for i in range(NEAREST_QUERY_WORDS)] + ["dewalt"]  # "dewalt" past the compared words
    pins = [" ".join([*filler, "dewalt"]),  # held, past the compared pin words: still counts whole
            " ".join([*filler, "dewlat"]),  # near "dewalt", but neither side is compared that far
            "dewlat"]
    shares = nearest_word_shares(" ".join(query_words), pins, word_vectors)
    assert shares.tolist() == pytest.approx([1 / len(query_words), 0.0, 0.0])
    near = nearest_word_shares("dewalt " + " ".join(filler), ["dewlat"], word_vectors)
    assert near[0] == pytest.approx(0.8 / (len(filler) + 1))  # a compared query word finds its nearest
    # the pins' words go through in blocks of at most NEAREST_BLOCK_WORDS (a longer pin alone)
    lengths = [NEAREST_PIN_WORDS] * 70 + [NEAREST_BLOCK_WORDS + 5, 3]
    blocks = word_blocks(lengths)
    assert blocks[0] == (0, NEAREST_BLOCK_WORDS // NEAREST_PIN_WORDS) and blocks[-2:] == [(70, 71), (71, 72)]
    assert all(sum(lengths[b:e]) <= NEAREST_BLOCK_WORDS or e - b == 1 for b, e in blocks)
    assert [i for b, e in blocks for i in range(b, e)] == list(range(len(lengths)))


def test_nearest_words_rerank_and_round_trip(tmp_path):
    match = ExactMatch(1.0, nearest_words=True)
    with pytest.raises(ValueError, match="word vectors"):
        match.shares("dewalt drill", ["dewalt drill"])
    bound = match.bound(word_vectors)
    assert bound == match  # the vectors are not part of what the signal is
    ranked = [("a", 0.9), ("b", 0.5), ("c", 0.4)]
    texts = {"a": "oak saw", "b": "dewlat driver", "c": "dewalt drill"}
    got = rerank_ids(ranked, texts, "dewalt drill", bound)
    assert [pin for pin, _ in got] == ["c", "b", "a"]
    assert dict(got)["b"] == pytest.approx(0.5 + 0.7)
    assert [pin for pin, _ in rerank_ids(ranked, texts, "dewalt drill", ExactMatch(1.0))] == ["c", "a", "b"]
    bound.save(tmp_path)
    assert json.loads((tmp_path / MATCH_FILE).read_text()) == {"weight": 1.0, NEAREST_WORDS_KEY: True}
    assert ExactMatch.load(tmp_path) == match and match.with_weight(0.3) == ExactMatch(0.3, nearest_words=True)
    (tmp_path / MATCH_FILE).write_text(json.dumps({"weight": 1.0, NEAREST_WORDS_KEY: "yes"}))
    with pytest.raises(ValueError, match=NEAREST_WORDS_KEY):
        ExactMatch.load(tmp_path)


class OneToken:
    """Every vector gets the same token: the first stage keeps every pin, so the rescore is exact."""

    kind = "one-token-test"
    dim = 8

    def tokens(self, vectors):
        return [["t"] for _ in np.atleast_2d(vectors)]

    def query_tokens(self, vector, probes=0):
        return [["t"]]

    def to_dict(self):
        return {"kind": self.kind}


def test_searcher_reranks_the_engines_cosine_hits_and_returns_k(tmp_path):
    rng = np.random.default_rng(3)
    rows = rng.standard_normal((40, 8)).astype(np.float32)
    query = rows[0] + 0.01 * rng.standard_normal(8).astype(np.float32)
    pins = [{"id": f"p{i:02d}", "title": "cordless drill 20v" if i == 7 else f"thing {i}"} for i in range(40)]
    engine = LocalEngine(tmp_path / "local")
    engine.create("pins", 8, {"dim": 8})
    engine.write("pins", pins, list(rows), [["t"]] * 40)
    searcher = Searcher(engine, "pins", OneToken())
    plain = searcher.search(query, k=5, window=40)
    assert plain[0].id == "p00" and all(hit.match is None for hit in plain)
    assert plain == searcher.search(query, k=5, window=40, text="cordless drill", match=ExactMatch(0.0))
    matched = searcher.search(query, k=5, window=40, text="cordless drill", match=ExactMatch(1.0))
    assert len(matched) == 5 and matched[0].id == "p07"  # far in cosine, but holds both words
    assert matched[0].match == 1.0 and matched[0].score == pytest.approx(matched[0].cosine + 1.0, abs=1e-6)
    assert [hit.id for hit in matched[1:]] == [hit.id for hit in plain if hit.id != "p07"][:4]
    assert [hit.pintext_rank for hit in matched] == [1, 2, 3, 4, 5]


def test_a_candidate_replaces_the_default_only_beyond_two_standard_errors_of_enough_queries():
    from pintext.trainer.selection import MIN_QUERIES_TO_CHOOSE, choose_over_default

    rng = np.random.default_rng(0)
    default = rng.uniform(0, 1, 400)
    clearly_better = default + 0.05 + rng.normal(0, 0.05, 400)  # mean gain 0.05, standard error ~0.0025
    noise = rng.normal(0, 0.5, 400)
    noisy = default + 0.04 + (noise - noise.mean())  # mean gain 0.04, standard error 0.025: 1.6 of them
    chosen, error = choose_over_default([default, clearly_better], 0)
    assert chosen == 1 and 0 < error < 0.01
    chosen, error = choose_over_default([default, noisy], 0)
    assert chosen == 0 and 0.02 < error < 0.03
    few = MIN_QUERIES_TO_CHOOSE - 1
    assert choose_over_default([default[:few], clearly_better[:few]], 0) == (0, float("inf"))
    assert choose_over_default([clearly_better, default], 1)[0] == 0


def test_the_match_weight_is_the_best_on_enough_queries_even_within_noise():
    from pintext.trainer.selection import MIN_QUERIES_TO_CHOOSE, choose_best

    rng = np.random.default_rng(1)
    default = rng.uniform(0, 1, 400)
    noise = rng.normal(0.0, 0.2, 400)
    slightly_better = default + noise - noise.mean() + 0.005  # 0.005 better on average, well within its noise
    from pintext.trainer.selection import choose_over_default

    assert choose_over_default([default, slightly_better], 0)[0] == 0  # the gate would keep the default
    assert choose_best([default, slightly_better], 0) == 1
    assert choose_best([slightly_better, default], 1) == 0
    few = MIN_QUERIES_TO_CHOOSE - 1
    assert choose_best([default[:few], default[:few] + 1.0], 0) == 0  # too few queries: the default stands
