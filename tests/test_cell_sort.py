"""A pins index whose tokens are one codebook of centroids is sorted by the pins' cell (`pintext.mapping.CELL_SORT`):
the pins of one cell sit side by side, so a query's candidates are read from a few places. The cell is the pin's
first token, kept as a doc value only; no hit, `get` or BM25 answer shows it, and BM25 ties come in pin id order
whatever the index order (`pintext.queries.TIE_SORT`)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from pintext import queries
from pintext.mapping import CELL_FIELD, CELL_SORT, pins_index_body, pins_index_body_elasticsearch
from pintext.serving.engines import EngineOptions, open_engine
from pintext.serving.meta import sorted_by_cell
from pintext.serving.opensearch import hit_source, pin_document, split_stored

DIM = 8
ONE_CODEBOOK = {"dim": DIM, "tokens": {"kind": "kmeans", "tables": 1, "centroids": 4}}


def test_only_an_index_of_one_codebook_is_sorted_by_cell():
    assert sorted_by_cell(ONE_CODEBOOK)
    assert not sorted_by_cell({"tokens": {"kind": "kmeans", "tables": 2, "centroids": 4}})  # a rescore window
    assert not sorted_by_cell({"tokens": {"kind": "random_hyperplane", "tables": 1, "bits": 8}})
    assert not sorted_by_cell({}) and not sorted_by_cell(None)
    assert pins_index_body(DIM, sorted_by_cell=True)["settings"]["index"].items() >= CELL_SORT.items()
    assert "sort.field" not in pins_index_body(DIM)["settings"]["index"]
    elastic = pins_index_body_elasticsearch(DIM, sorted_by_cell=True)
    assert elastic["settings"]["index"]["sort.field"] == CELL_FIELD
    assert elastic["mappings"]["properties"][CELL_FIELD] == {"type": "keyword", "index": False, "doc_values": True}


def test_the_cell_is_the_first_token_and_never_a_pin_field():
    pin = {"id": "p1", "title": "oak table"}
    document = pin_document(pin, np.ones(DIM, dtype=np.int8), ["c0_2", "c0_3"])
    assert document[CELL_FIELD] == "c0_2" and document["lsh_tokens"] == ["c0_2", "c0_3"]
    assert CELL_FIELD not in pin_document({**pin, CELL_FIELD: "mine"}, None, [])  # no vector: no cell
    fields, vector = split_stored(dict(document))
    assert fields == pin and vector is not None
    assert hit_source({"_source": dict(document)}) == ({**pin, "vector": document["vector"]}, {"c0_2", "c0_3"})
    assert CELL_FIELD in queries.SOURCE_EXCLUDES
    assert queries.bm25_body("oak")["sort"] == queries.TIE_SORT


@pytest.fixture
def engine(opensearch_node) -> Iterator[tuple[Any, list[str]]]:
    engine = open_engine("opensearch", EngineOptions(url=opensearch_node.url))
    made: list[str] = []
    yield engine, made
    for index in made:
        engine.delete(index)


def test_a_sorted_index_keeps_pins_in_cell_order_and_answers_without_the_cell(engine):
    engine, made = engine
    index = f"cells-{uuid.uuid4().hex[:8]}"
    made.append(index)
    engine.create(index, DIM, ONE_CODEBOOK)
    settings = engine.client.indices.get_settings(index=index, flat_settings=True)[index]["settings"]
    assert settings["index.sort.field"] == CELL_FIELD
    rng = np.random.default_rng(3)
    pins = [{"id": f"p{row:02d}", "title": "oak table" if row % 2 else "oak chair"} for row in range(12)]
    cells = [f"c0_{(11 - row) % 4}" for row in range(12)]  # written in pin order, cells out of order
    vectors = list(rng.normal(size=(12, DIM)).astype(np.float32))
    assert not engine.write(index, pins, vectors, [[cell] for cell in cells]).failed
    engine.refresh(index)
    engine.force_merge(index)
    in_index_order = engine.client.search(index=index, body={"size": 12, "sort": ["_doc"],
                                                             "docvalue_fields": [CELL_FIELD], "_source": False})
    assert [hit["fields"][CELL_FIELD][0] for hit in in_index_order["hits"]["hits"]] == sorted(cells)
    fields, vector = engine.get(index, "p05")
    assert fields == pins[5] and vector is not None
    hits = engine.bm25(index, "oak table", k=12)
    assert hits and all(CELL_FIELD not in hit.source and hit.source["title"].startswith("oak") for hit in hits)
    # Six pins tie on "oak table": they come in pin id order, not in the index's cell order.
    tied = [hit.id for hit in hits if hit.score == hits[0].score]
    assert tied == sorted(tied) and len(tied) == 6
