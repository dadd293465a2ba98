"""The lean pins index (issue 20, item 5): on OpenSearch 3.x the vector is not stored again in `_source` (k-NN
derived source), and everything that reads a stored vector back (get, related, `_reindex`, partial updates) gets
the very same float32 values; OpenSearch 2.19 and indexes created before keep the vector in `_source`."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from pintext.mapping import LEAN_KNN_SETTINGS, lean_index, pins_index_body, pins_index_body_elasticsearch
from pintext.serving.engines import EngineOptions, open_engine

DIM = 256  # the real models' dimension: the store figures below are per 1 KB vector
PINS = 300


def test_lean_body_is_a_k_nn_index_with_derived_source_and_no_graph():
    lean = pins_index_body(DIM, {"dim": DIM}, lean=True)["settings"]["index"]
    assert lean["knn"] is True and lean["knn.derived_source.enabled"] is True
    assert lean["knn.advanced.approximate_threshold"] == -1  # flat vectors only: no graph is ever built
    assert pins_index_body(DIM)["settings"]["index"]["knn"] is False  # 2.19 and the default body
    assert not set(pins_index_body_elasticsearch(DIM)["settings"]["index"]) & {"knn", *LEAN_KNN_SETTINGS}


@pytest.mark.parametrize(("version", "replicas", "lean"), [
    ("3.5.0", 0, True), ("3.0.0", 0, True), ("10.1.0", 0, True),
    ("2.19.1", 0, False),  # no k-NN derived source before 3.0
    ("3.5.0", 1, False),  # a replica recovering under writes hung on 3.5.0 (k-NN#3312): the vector stays in _source
])
def test_derived_source_is_asked_of_opensearch_3_and_later_for_an_index_without_replicas(version, replicas, lean):
    assert lean_index(version, replicas) is lean


def pins(count: int) -> tuple[list[dict], list[np.ndarray], list[list[str]]]:
    rng = np.random.default_rng(7)
    vectors = rng.normal(size=(count, DIM)).astype(np.float32)
    docs = [{"id": f"lean{row:04d}", "title": f"lean pin {row}", "board": f"b{row % 3}"} for row in range(count)]
    return docs, list(vectors), [[f"t{row % 5}"] for row in range(count)]


class Indexes:
    """The test's indexes on the session node, deleted afterwards."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.made: list[str] = []

    def new(self, lean: bool | None) -> str:
        """A pins index as `create` makes it (`lean=None`), or with the body asked for (one of before: False)."""
        index = f"lean-{uuid.uuid4().hex[:8]}"
        self.made.append(index)
        if lean is None:
            self.engine.create(index, DIM, {"dim": DIM})
        else:
            self.engine.client.indices.create(index=index, body=pins_index_body(DIM, {"dim": DIM}, lean=lean))
        return index


@pytest.fixture
def indexes(opensearch_node) -> Iterator[Indexes]:
    made = Indexes(open_engine("opensearch", EngineOptions(url=opensearch_node.url)))
    yield made
    for index in made.made:
        made.engine.delete(index)


def index_setting(engine: Any, index: str, name: str) -> str | None:
    settings = engine.client.indices.get_settings(index=index, include_defaults=True, flat_settings=True)[index]
    return settings["settings"].get(name, settings["defaults"].get(name))


def test_create_makes_the_lean_index_where_the_node_has_derived_source(indexes):
    engine = indexes.engine
    index = indexes.new(None)
    lean = lean_index(engine.version, 0)
    assert index_setting(engine, index, "index.knn") == str(lean).lower()
    assert (index_setting(engine, index, "index.knn.derived_source.enabled") == "true") is lean
    with_replica = f"{index}-r"
    indexes.made.append(with_replica)
    engine.create(with_replica, DIM, {"dim": DIM}, replicas=1)
    assert index_setting(engine, with_replica, "index.knn") == "false"


def test_stored_vectors_read_back_exactly_through_get_update_and_reindex(indexes):
    engine = indexes.engine
    if not lean_index(engine.version, 0):
        pytest.skip(f"OpenSearch {engine.version} has no k-NN derived source")
    index = indexes.new(None)
    docs, vectors, tokens = pins(20)
    assert not engine.write(index, docs, vectors, tokens).failed
    engine.refresh(index)
    fields, vector = engine.get(index, "lean0003")
    assert fields == docs[3] and vector is not None and np.array_equal(vector, vectors[3])
    # A partial update re-indexes the derived `_source`: the vector survives it, bit for bit.
    assert not engine.write_docs(index, [("lean0004", {"board": "moved"})], partial=True).failed
    fields, vector = engine.get(index, "lean0004")
    assert fields["board"] == "moved" and np.array_equal(vector, vectors[4])
    # `_reindex` reads the derived `_source`: a copy into a new lean index holds the same vectors.
    copy = indexes.new(None)
    engine.client.reindex(body={"source": {"index": index}, "dest": {"index": copy}}, refresh=True)
    assert engine.count(copy) == len(docs)
    for row in (0, 11, 19):
        assert np.array_equal(engine.get(copy, docs[row]["id"])[1], vectors[row])


def test_an_index_of_before_with_the_vector_in_source_is_still_read_and_written(indexes):
    engine = indexes.engine
    index = indexes.new(False)
    docs, vectors, tokens = pins(10)
    assert not engine.write(index, docs, vectors, tokens).failed
    engine.refresh(index)
    assert np.array_equal(engine.get(index, "lean0009")[1], vectors[9])
    stored = engine.client.get(index=index, id="lean0009")["_source"]
    assert np.array_equal(np.asarray(stored["vector"], dtype=np.float32), vectors[9])


def test_the_lean_index_stores_about_a_vector_less_per_pin(indexes):
    engine = indexes.engine
    if not lean_index(engine.version, 0):
        pytest.skip(f"OpenSearch {engine.version} has no k-NN derived source")
    docs, vectors, tokens = pins(PINS)
    per_pin = {}
    for lean in (False, True):
        index = indexes.new(lean)
        assert not engine.write(index, docs, vectors, tokens).failed
        engine.force_merge(index)
        per_pin[lean] = engine.stats(index, flush=True).size_bytes / PINS
    # The vector as JSON text in `_source` (~2.3 KB a pin at 256-d, barely compressible) is what the lean index
    # leaves out; the flat float32 vector the exact scorer reads (1 KB) stays.
    assert per_pin[False] - per_pin[True] > 4 * DIM, per_pin
    assert per_pin[True] < 1.5 * 4 * DIM, per_pin
