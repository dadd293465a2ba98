"""One-byte vectors (issue 20, item 4): new indexes hold int8 values (`pintext.quantize`) where every engine scores
them by exact cosine; `--vector-type float32` keeps float vectors; an index made before (`_meta` without
`vector_type`, a float mapping) still takes writes and serves as before, on every engine.

The exactness of the served scores against a numpy oracle is tests/test_conformance.py's (its indexes are made
with the default, int8); here: what the mapping holds, what `index info` says, and the indexes of before.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import pintext
from pintext.encoder import Encoder
from pintext.mapping import pins_index_body, pins_index_body_elasticsearch
from pintext.pin_vectors import pin_vectors
from pintext.quantize import DEFAULT_VECTOR_TYPE, FLOAT32, INT8, quantize_int8
from pintext.serving.local import cosine
from pintext.serving.meta import VECTOR_TYPE_KEY, index_meta, vector_type_of
from pintext.serving.opensearch_client import cosine_from_knn_score, knn_score_from_cosine
from pintext.serving.rollout import version_name
from pintext.tokens.lsh import RandomHyperplaneLSH
from tests.factories import make_model, make_pins, random_queries, write_pins

PIN_COUNT = 120
DIM = 32
SCORE_TOLERANCE = 1e-5

ENGINES = {  # engine id -> (engine name, node fixture or None for the local engine)
    "local": ("local", None),
    "opensearch": ("opensearch", "opensearch_node"),
    "opensearch-2.19.1": ("opensearch", "opensearch_219_node"),
    "elasticsearch": ("elasticsearch", "elasticsearch_node"),
}


# ---- pure ------------------------------------------------------------------------------------------------------


def test_the_mappings_carry_the_byte_type_only_when_asked():
    knn = pins_index_body(DIM, byte_vectors=True)["mappings"]["properties"]["vector"]
    assert knn == {"type": "knn_vector", "dimension": DIM, "data_type": "byte"}
    assert "data_type" not in pins_index_body(DIM)["mappings"]["properties"]["vector"]
    dense = pins_index_body_elasticsearch(DIM, byte_vectors=True)["mappings"]["properties"]["vector"]
    assert dense["element_type"] == "byte" and dense["index_options"] == {"type": "flat"}
    assert "element_type" not in pins_index_body_elasticsearch(DIM)["mappings"]["properties"]["vector"]


def test_knn_score_maps_back_by_the_field_type():
    """Measured on 2.19.1 and 3.5.0 (docs/serving.md, "One-byte vectors"): `(1 + cos) / 2` over float vectors,
    `1 + cos` over byte vectors."""
    for cosine_value in (-1.0, -0.3, 0.0, 0.42, 1.0):
        assert cosine_from_knn_score(knn_score_from_cosine(cosine_value)) == pytest.approx(cosine_value)
        assert cosine_from_knn_score(knn_score_from_cosine(cosine_value, byte_vectors=True),
                                     byte_vectors=True) == pytest.approx(cosine_value)
    assert cosine_from_knn_score(1.5, byte_vectors=True) == pytest.approx(0.5)
    assert cosine_from_knn_score(0.75) == pytest.approx(0.5)


def test_an_index_meta_without_the_key_is_float32_and_an_unknown_type_is_refused():
    assert vector_type_of({"dim": 4}) == FLOAT32 and vector_type_of(None) == FLOAT32
    family = RandomHyperplaneLSH(DIM, 4, 4, seed=1)
    assert index_meta("f", DIM, family)[VECTOR_TYPE_KEY] == FLOAT32
    assert vector_type_of(index_meta("f", DIM, family, vector_type=INT8)) == INT8
    with pytest.raises(ValueError, match="float16"):
        vector_type_of({VECTOR_TYPE_KEY: "float16"})


# ---- on every engine -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, Path, list[dict]]:
    folder = tmp_path_factory.mktemp("byte-vectors")
    pins = make_pins(PIN_COUNT, seed=5)
    return make_model(folder / "model", dim=DIM), write_pins(folder / "pins.jsonl", pins), pins


def engine_params() -> list[Any]:
    marks = {"opensearch": pytest.mark.opensearch, "elasticsearch": pytest.mark.elasticsearch}
    return [pytest.param(engine_id, id=engine_id, marks=[marks[name]] if name in marks else [])
            for engine_id, (name, _) in ENGINES.items()]


@pytest.fixture(params=engine_params())
def target(request, tmp_path) -> Any:
    """(options for `pintext.open`, a fresh name); every version of the name is deleted afterwards."""
    name, node_fixture = ENGINES[request.param]
    options: dict[str, Any] = {"engine": name}
    if node_fixture is None:
        options["local_dir"] = tmp_path / "local"
    else:
        options["url"] = request.getfixturevalue(node_fixture).url
    index = f"bytes-{uuid.uuid4().hex[:8]}"
    yield request.param, options, index
    pintext.open(None, index=index, **options).delete(force=True)


def vector_mapping(served: Any) -> dict:
    """The vector field's mapping of the served index (the local engine has none: {})."""
    engine, index = served.connection.engine, served.connection.write_index
    if engine.name == "local":
        return {}
    mappings = engine.client.indices.get_mapping(index=index)[index]["mappings"]
    return dict(mappings["properties"]["vector"])


def served_top(served: Any, encoder: Encoder, pins: list[dict], vector_type: str) -> None:
    """Every query's hits are the exact cosine of the vectors as the index holds them (int8 or float)."""
    vectors = pin_vectors(encoder, pins)
    held = quantize_int8(vectors).astype(np.float64) if vector_type == INT8 else vectors.astype(np.float64)
    by_id = {pin["id"]: row for row, pin in enumerate(pins)}
    searcher = served.searcher()
    for text in random_queries(4, seed=2):
        query = encoder.encode([text])[0]
        sent = quantize_int8(query).astype(np.float64) if vector_type == INT8 else query.astype(np.float64)
        hits = searcher.search(query, k=5, window=PIN_COUNT)
        for hit in hits:
            expected = float(cosine(held[by_id[hit.id]:by_id[hit.id] + 1], sent)[0])
            assert hit.cosine == pytest.approx(expected, abs=SCORE_TOLERANCE)
    pin_id = pins[3]["id"]
    stored = searcher.stored_vector(pin_id)
    np.testing.assert_allclose(stored, held[3], rtol=1e-6, atol=1e-6)
    assert pin_id not in {hit.id for hit in searcher.related(pin_id, k=5, window=PIN_COUNT)}


@pytest.mark.parametrize("vector_type", [None, FLOAT32])
def test_a_new_index_holds_the_vector_type_asked_for_default_int8(target, corpus, vector_type):
    engine_id, options, index = target
    model, pins_file, pins = corpus
    served = pintext.open(model, index=index, **options)
    summary = served.ingest(pins_file, tokens="lsh", tune=False, vector_type=vector_type)
    assert summary["indexed"] == PIN_COUNT and summary["rejected"] == 0
    expected = vector_type or DEFAULT_VECTOR_TYPE
    info = served.info()
    assert info["vector_type"] == expected == info["meta"][VECTOR_TYPE_KEY]
    mapping = vector_mapping(served)
    if engine_id.startswith("opensearch"):
        assert mapping.get("data_type", "float").lower() == ("byte" if expected == INT8 else "float")
    elif engine_id == "elasticsearch":
        assert mapping.get("element_type", "float") == ("byte" if expected == INT8 else "float")
    served_top(served, Encoder.load(model), pins, expected)


def test_an_index_made_before_vector_types_still_takes_writes_and_serves_float(target, corpus):
    """An index whose `_meta` has no `vector_type` (and a float mapping) is float32: ingest sends floats into it,
    search sends a float query and maps the float score back; its `_meta` is left as it was."""
    _, options, index = target
    model, pins_file, pins = corpus
    encoder = Encoder.load(model)
    served = pintext.open(model, index=index, **options)
    engine = served.connection.engine
    before = index_meta(encoder.fingerprint, encoder.dim, RandomHyperplaneLSH(encoder.dim, 8, 6, seed=3))
    del before[VECTOR_TYPE_KEY]
    concrete = version_name(index, encoder.fingerprint)
    engine.create(concrete, encoder.dim, before)
    engine.point_alias(index, concrete)
    summary = served.ingest(pins_file, vector_type=INT8)  # the option applies to a new index only
    assert summary["indexed"] == PIN_COUNT and summary["rejected"] == 0
    assert VECTOR_TYPE_KEY not in engine.meta(concrete) and served.info()["vector_type"] == FLOAT32
    served_top(pintext.open(model, index=index, **options), encoder, pins, FLOAT32)


def test_an_unknown_vector_type_is_one_usage_line(tmp_path, corpus):
    from pintext.errors import UsageError

    model, pins_file, _ = corpus
    with pytest.raises(UsageError, match="--vector-type: unknown vector type 'float16'"):
        pintext.open(model, index="bytes-bad", engine="local", local_dir=tmp_path).ingest(pins_file,
                                                                                         vector_type="float16")


def test_an_index_created_without_a_corpus_keeps_its_vector_type_when_the_first_ingest_tunes_it(tmp_path, corpus):
    """`index create --vector-type float32` then `ingest FILE`: the empty, untuned index is made again, tuned on the
    file, and still float32 (the ingest's own default does not override what was asked at creation)."""
    model, pins_file, _ = corpus
    served = pintext.open(model, index="bytes-pending", engine="local", local_dir=tmp_path)
    served.create_index(vector_type=FLOAT32, tokens="lsh")
    assert served.info()["meta"]["tuning"]["pending"]
    served.ingest(pins_file)
    info = served.info()
    assert info["meta"]["tuning"]["tuned"] and info["vector_type"] == FLOAT32
