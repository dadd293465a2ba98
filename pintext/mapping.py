"""Build the request bodies OpenSearch gets for a pins index, from the JSON in `mappings/`.

Pure functions: they read the packaged template and return dicts; sending them is `pintext.ingest`'s job.
"""

import copy
import json
from functools import lru_cache
from importlib import resources

TOKENS_FIELD = "lsh_tokens"
# A pin's first token (its nearest centroid of the first codebook; its first table's bucket with LSH), kept as a
# doc value only. A pins index whose tokens are scored exactly (one codebook of centroids) is sorted by it
# (`CELL_SORT`), so the pins of one cell sit side by side on disk: a query's candidates are a few hundred cells, so
# scoring reads neighbouring vectors and the fetch decompresses a few stored-field blocks instead of about one a
# hit. On 54,667 Home Depot titles: served p50 8.8 -> 7.2 ms, the store 386 -> 364 B a pin (similar titles
# compress together), the same rankings (docs/results/serving-speed, section 4). Not with a rescore window (LSH,
# several codebooks): the window keeps the first of the pins that share a count in index order, which the
# contract fixes to pin id order (`pintext.queries`), i.e. the order written.
CELL_FIELD = "token_cell"
CELL_SORT = {"sort.field": CELL_FIELD, "sort.order": "asc"}
# The keyword copy of a pin's id (the doc `_id` too): filters and the exact scoring of chosen pins go through it.
ID_FIELD = "id"
VECTOR_FIELD = "vector"
# The k-NN plugin's index settings a pins index may carry. mappings/pins.json has `index.knn: false`: the vector is
# a binary doc value the exact `knn_score` script reads, and `_source` holds it again as JSON (what OpenSearch 2.19
# gets). A lean pins index (OpenSearch 3.x) is a k-NN index that never builds a graph
# (`knn.advanced.approximate_threshold: -1`: the vector is Lucene's flat float32 vectors, which `knn_score` reads)
# with k-NN derived source: `_source` keeps no vector, and get, search, reindex and update read the very same
# float32 values back from the flat vectors (1 KB a pin less at 256-d; docs/serving.md, "Storage").
LEAN_KNN_SETTINGS = {"knn": True, "knn.advanced.approximate_threshold": -1, "knn.derived_source.enabled": True}
KNN_SETTINGS = tuple(LEAN_KNN_SETTINGS)
# The first OpenSearch major whose k-NN plugin has derived source (`index.knn.derived_source.enabled`).
DERIVED_SOURCE_SINCE_MAJOR = 3
# How each engine's mapping names a field of one-byte vectors (`pintext.quantize.INT8`): OpenSearch's `knn_vector`
# `data_type: byte` and Elasticsearch's `dense_vector` `element_type: byte`; both score them by exact cosine
# (`knn_score` cosinesimil; a `knn` query on a flat index), docs/serving.md "One-byte vectors".
OPENSEARCH_BYTE_VECTOR = {"data_type": "byte"}
ELASTICSEARCH_BYTE_VECTOR = {"element_type": "byte"}


@lru_cache(maxsize=None)
def _template(name: str) -> dict:
    return json.loads(resources.files("pintext.mappings").joinpath(name).read_text(encoding="utf-8"))


def pins_index_body(dim: int, meta: dict | None = None, shards: int = 1, replicas: int = 0,
                    lean: bool = False, byte_vectors: bool = False, sorted_by_cell: bool = False) -> dict:
    """Settings and mappings for a pins index whose vectors have `dim` dimensions.

    `meta` lands in the mapping's `_meta` (model fingerprint, LSH config) so that ingest and search can refuse
    an index built for another model. `lean` (OpenSearch 3.x): the vector is not stored again in `_source`
    (`LEAN_KNN_SETTINGS`). `byte_vectors`: the vector field holds int8 values (`OPENSEARCH_BYTE_VECTOR`).
    `sorted_by_cell`: the index is sorted by the pins' cell (`CELL_SORT`).
    """
    if dim <= 0:
        raise ValueError(f"vector dimension must be positive, got {dim}")
    body = copy.deepcopy(_template("pins.json"))
    body["mappings"]["properties"][VECTOR_FIELD]["dimension"] = int(dim)
    body["mappings"]["_meta"] = dict(meta or {})
    body["settings"]["index"]["number_of_shards"] = int(shards)
    body["settings"]["index"]["number_of_replicas"] = int(replicas)
    if lean:
        body["settings"]["index"].update(LEAN_KNN_SETTINGS)
    if byte_vectors:
        body["mappings"]["properties"][VECTOR_FIELD].update(OPENSEARCH_BYTE_VECTOR)
    if sorted_by_cell:
        body["settings"]["index"].update(CELL_SORT)
    return body


def lean_index(opensearch_version: str, replicas: int) -> bool:
    """Whether a pins index created on an OpenSearch node of this version with this many replicas is lean.

    Derived source needs OpenSearch 3.0. An index created with replicas keeps the vector in `_source`: on 3.5.0 a
    replica of a derived-source index recovering while pins were written stayed INITIALIZING (the k-NN plugin's
    derived-source recovery bugs, opensearch-project/k-NN#3312, fixed in 3.7.0; docs/serving.md, "Storage").
    """
    return int(opensearch_version.split(".")[0]) >= DERIVED_SOURCE_SINCE_MAJOR and replicas == 0


# The vector field of an Elasticsearch 8 pins index: cosine, and `flat` (no HNSW graph), so a `knn` query whose
# filter passes the rescore window's ids scores exactly those pins by their exact cosine. The vector stays in
# `_source`: 8.15 reads a dense_vector back only from there (no `docvalue_fields` for it, `fields` reads `_source`),
# and synthetic `_source` would need every text field stored and sorts keyword arrays (docs/serving.md, "Storage").
ELASTICSEARCH_VECTOR = {"type": "dense_vector", "index": True, "similarity": "cosine",
                        "index_options": {"type": "flat"}}


def pins_index_body_elasticsearch(dim: int, meta: dict | None = None, shards: int = 1, replicas: int = 0,
                                  byte_vectors: bool = False, sorted_by_cell: bool = False) -> dict:
    """The Elasticsearch 8 pins index: `pins_index_body` (the same fields, analyzers, `dynamic: false` and
    `_meta`) with the vector as a `dense_vector` (`ELASTICSEARCH_VECTOR`; int8 values with `byte_vectors`)
    instead of OpenSearch's `knn_vector`, and without the k-NN plugin's `index.knn` setting."""
    body = pins_index_body(dim, meta, shards=shards, replicas=replicas, sorted_by_cell=sorted_by_cell)
    for setting in KNN_SETTINGS:
        body["settings"]["index"].pop(setting, None)
    vector = {**copy.deepcopy(ELASTICSEARCH_VECTOR), "dims": int(dim)}
    if byte_vectors:
        vector.update(ELASTICSEARCH_BYTE_VECTOR)
    body["mappings"]["properties"][VECTOR_FIELD] = vector
    return body
