"""The engines' request serializer: float32 vectors as their shortest exact text, everything else as before."""

import json
from decimal import Decimal

import numpy as np
from opensearchpy.serializer import JSONSerializer

from pintext.serving.fast_json import OrjsonSerializer, elasticsearch_serializer
from pintext.serving.opensearch import pin_document


def unit_vectors(n: int, dim: int, seed: int = 3) -> np.ndarray:
    vectors = np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    vectors[0, :3] = [1e-12, -3e-7, 0.0]  # tiny components
    return vectors


def test_a_pin_document_reads_back_as_the_same_float32_and_is_shorter():
    vectors = unit_vectors(100, 256)
    fast, plain = OrjsonSerializer(), JSONSerializer()
    docs = [pin_document({"id": f"p{i}", "title": "Ça va — 東京"}, vector, ["c0_1f"]) for i, vector in enumerate(vectors)]
    texts = [fast.dumps(doc) for doc in docs]
    back = [json.loads(text) for text in texts]
    assert np.array_equal(np.asarray([doc["vector"] for doc in back], dtype=np.float32), vectors)
    assert back[0]["title"] == "Ça va — 東京" and back[0]["lsh_tokens"] == ["c0_1f"]
    # the standard serializer writes the same values, ~17 digits each
    assert json.loads(plain.dumps(docs[5])) == {**back[5], "vector": [float(x) for x in vectors[5]]}
    assert sum(map(len, texts)) < 0.7 * sum(len(plain.dumps(doc)) for doc in docs)


def test_what_orjson_refuses_goes_through_the_standard_serializer():
    fast, plain = OrjsonSerializer(), JSONSerializer()
    for body in ({"big": 2**70}, {"price": Decimal("1.5")}, {1: "non-string key"}):
        assert json.loads(fast.dumps(body)) == json.loads(plain.dumps(body))
    assert fast.dumps('{"already": "text"}') == '{"already": "text"}'


def test_the_elasticsearch_serializer_writes_the_same_float32_values():
    vectors = unit_vectors(5, 64)
    text = elasticsearch_serializer().dumps({"vector": vectors[1]})
    assert np.array_equal(np.asarray(json.loads(text)["vector"], dtype=np.float32), vectors[1])


def test_both_serializers_read_an_integer_beyond_64_bits_whole():
    """A pin's own field comes back in a hit's `_source` as written: orjson alone would make it a float."""
    response = '{"hits": {"hits": [{"_source": {"id": "p1", "sku": 123456789012345678901234}}]}}'
    for loaded in (OrjsonSerializer().loads(response), elasticsearch_serializer().loads(response.encode())):
        assert loaded["hits"]["hits"][0]["_source"]["sku"] == 123456789012345678901234


def test_a_one_byte_vector_is_written_as_json_integers_by_both_serializers():
    """An index of one-byte vectors gets the int8 values as integers ("-3", not "-3.0"): a third less JSON for the
    node to parse, and no decimal point for a byte field to refuse."""
    from pintext.quantize import quantize_int8

    vector = quantize_int8(unit_vectors(1, 64)[0])
    doc = pin_document({"id": "p1", "title": "t"}, vector, ["c0_1f"])
    for serializer in (OrjsonSerializer(), elasticsearch_serializer()):
        written = serializer.dumps(doc)
        text = written.decode() if isinstance(written, bytes) else written  # elastic-transport's gives bytes
        values = json.loads(text)["vector"]
        assert values == vector.astype(int).tolist()
        assert all(type(value) is int for value in values) and "." not in text.split('"vector":')[1]
    float_doc = pin_document({"id": "p1"}, unit_vectors(1, 64)[0].astype(np.float64), ["c0_1f"])
    assert float_doc["vector"].dtype == np.float32
