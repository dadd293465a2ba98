"""pintext.fusion: the union rescore, reciprocal-rank fusion, the min-max blend, and FusionConfig (validation,
MODEL/hybrid.json)."""

import json

import pytest

from pintext.fusion import HYBRID_FILE, FusionConfig, min_max_blend, reciprocal_rank_fusion, union_rescore


def test_rrf_sums_weighted_reciprocal_ranks():
    fused = dict(reciprocal_rank_fusion([["a", "b", "c"], ["b", "d"]], k=60, weights=[0.25, 0.75]))
    assert fused["a"] == pytest.approx(0.25 / 61)
    assert fused["b"] == pytest.approx(0.25 / 62 + 0.75 / 61)
    assert fused["c"] == pytest.approx(0.25 / 63)
    assert fused["d"] == pytest.approx(0.75 / 62)


def test_rrf_orders_by_fused_score_then_id():
    # a and b swap places in two equally weighted lists: equal scores, so the smaller id comes first.
    assert [doc for doc, _ in reciprocal_rank_fusion([["b", "a"], ["a", "b"]])] == ["a", "b"]
    assert [doc for doc, _ in reciprocal_rank_fusion([["x", "y"], ["y", "z"]])] == ["y", "x", "z"]


def test_rrf_refuses_mismatched_weights():
    with pytest.raises(ValueError, match="2 rankings but 1 weights"):
        reciprocal_rank_fusion([["a"], ["b"]], weights=[1.0])


def test_min_max_blend_normalizes_each_list_and_missing_docs_get_zero():
    fused = dict(min_max_blend([{"a": 10.0, "b": 5.0, "c": 0.0}, {"b": 0.9, "d": 0.5}], weights=[0.4, 0.6]))
    assert fused["a"] == pytest.approx(0.4)  # BM25 best (1.0), absent from the other list
    assert fused["b"] == pytest.approx(0.4 * 0.5 + 0.6 * 1.0)
    assert fused["c"] == pytest.approx(0.0)
    assert fused["d"] == pytest.approx(0.0)  # the other list's worst normalizes to 0


def test_min_max_blend_single_distinct_score_counts_as_one_and_empty_lists_add_nothing():
    assert dict(min_max_blend([{"a": 3.0, "b": 3.0}, {}], weights=[0.5, 0.5])) == {"a": 0.5, "b": 0.5}


def test_config_fuse_weight_extremes_give_one_side_first():
    bm25 = {"a": 9.0, "b": 5.0, "c": 1.0}
    pintext = {"c": 0.9, "b": 0.5, "d": 0.4}
    for method in ("union", "rrf", "blend"):
        only_pintext = FusionConfig(method=method, weight=1.0).fuse(bm25, pintext)
        assert [doc for doc, _ in only_pintext][:2] == ["c", "b"], method
        only_bm25 = FusionConfig(method=method, weight=0.0).fuse(bm25, pintext)
        assert [doc for doc, _ in only_bm25][:2] == ["a", "b"], method
    # Under RRF a list's last hit still scores above a hit it lacks; min-max maps the last hit to 0, as absent.
    assert [doc for doc, _ in FusionConfig(method="rrf", weight=1.0).fuse(bm25, pintext)] == ["c", "b", "d", "a"]
    assert [doc for doc, _ in FusionConfig(method="blend", weight=1.0).fuse(bm25, pintext)] == ["c", "b", "a", "d"]
    # Equal weights under RRF: b is second in both lists, c first in one and third in the other.
    assert [doc for doc, _ in FusionConfig(method="rrf", weight=0.5).fuse(bm25, pintext)] == ["c", "b", "a", "d"]


@pytest.mark.parametrize("fields,message", [({"method": "max"}, "fusion method"), ({"weight": 1.5}, "weight"),
                                            ({"rrf_k": 0}, "rrf_k")])
def test_config_refuses_bad_values(fields, message):
    with pytest.raises(ValueError, match=message):
        FusionConfig(**fields)


def test_config_loads_the_default_without_a_file_and_round_trips(tmp_path):
    assert FusionConfig.load(tmp_path) == FusionConfig(method="union", rrf_k=60, weight=0.95)
    assert FusionConfig.load(None) == FusionConfig()
    FusionConfig(method="blend", rrf_k=20, weight=0.7).save(tmp_path)
    assert json.loads((tmp_path / HYBRID_FILE).read_text()) == {"method": "blend", "rrf_k": 20, "weight": 0.7}
    assert FusionConfig.load(tmp_path) == FusionConfig(method="blend", rrf_k=20, weight=0.7)


def test_union_keeps_pintext_scores_raw_and_normalizes_bm25_over_its_list():
    bm25 = {"a": 10.0, "b": 6.0, "c": 2.0}
    pintext = {"b": 1.3, "c": 0.4, "d": 0.9, "a": 0.2}
    fused = dict(union_rescore(bm25, pintext, weight=0.8))
    assert fused["a"] == pytest.approx(0.8 * 0.2 + 0.2 * 1.0)
    assert fused["b"] == pytest.approx(0.8 * 1.3 + 0.2 * 0.5)
    assert fused["c"] == pytest.approx(0.8 * 0.4 + 0.2 * 0.0)
    assert fused["d"] == pytest.approx(0.8 * 0.9)  # BM25 did not find d
    # A pin only BM25 found and PinText could not score (no vector) still ranks, on BM25's share alone.
    assert dict(union_rescore({"x": 3.0, "y": 1.0}, {"y": 0.5}, weight=0.9))["x"] == pytest.approx(0.1)


def test_union_scale_matters_where_a_blend_would_stretch_it():
    # Two weak PinText scores: a min-max blend maps them to 1 and 0, so BM25's order cannot win; the union keeps
    # their small gap, and BM25's normalized score decides.
    bm25 = {"p": 1.0, "q": 5.0}
    pintext = {"p": 0.31, "q": 0.30}
    assert [doc for doc, _ in union_rescore(bm25, pintext, weight=0.9)] == ["q", "p"]
    assert [doc for doc, _ in min_max_blend([bm25, pintext], weights=[0.1, 0.9])] == ["p", "q"]
    assert FusionConfig(method="union", weight=0.9).scores_every_candidate
    assert not FusionConfig(method="blend", weight=0.9).scores_every_candidate
