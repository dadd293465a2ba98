"""Build the request bodies OpenSearch gets for a pins index, from the JSON in `mappings/`.

Pure functions: they read the packaged template and return dicts; sending them is `pintext.ingest`'s job.
"""

import copy
import json
from functools import lru_cache
from importlib import resources

TOKENS_FIELD = "lsh_tokens"
VECTOR_FIELD = "vector"
# The k-NN plugin's index settings a pins index may carry (mappings/pins.json has `index.knn: false`: the vectors
# are doc values the exact `knn_score` script reads). `index.knn: true` with no graph ever built
# (`knn.advanced.approximate_threshold: -1`) stores a quarter as much on 3.x (the vector in `_source` is derived
# from Lucene's flat vectors), but on 3.5.0 a replica recovering onto a restarted node stayed INITIALIZING in 5 of
# 7 runs of tests/test_faults.py's cluster test (0 of 2 with `index.knn: false`): not the default until that is
# understood (docs/opensearch.md, "Not done").
KNN_SETTINGS = ("knn", "knn.advanced.approximate_threshold")


@lru_cache(maxsize=None)
def _template(name: str) -> dict:
    return json.loads(resources.files("pintext.mappings").joinpath(name).read_text(encoding="utf-8"))


def pins_index_body(dim: int, meta: dict | None = None, shards: int = 1, replicas: int = 0) -> dict:
    """Settings and mappings for a pins index whose vectors have `dim` dimensions.

    `meta` lands in the mapping's `_meta` (model fingerprint, LSH config) so that ingest and search can refuse
    an index built for another model.
    """
    if dim <= 0:
        raise ValueError(f"vector dimension must be positive, got {dim}")
    body = copy.deepcopy(_template("pins.json"))
    body["mappings"]["properties"][VECTOR_FIELD]["dimension"] = int(dim)
    body["mappings"]["_meta"] = dict(meta or {})
    body["settings"]["index"]["number_of_shards"] = int(shards)
    body["settings"]["index"]["number_of_replicas"] = int(replicas)
    return body


# The vector field of an Elasticsearch 8 pins index: cosine, and `flat` (no HNSW graph), so a `knn` query whose
# filter passes the rescore window's ids scores exactly those pins by their exact cosine.
ELASTICSEARCH_VECTOR = {"type": "dense_vector", "index": True, "similarity": "cosine",
                        "index_options": {"type": "flat"}}


def pins_index_body_elasticsearch(dim: int, meta: dict | None = None, shards: int = 1, replicas: int = 0) -> dict:
    """The Elasticsearch 8 pins index: `pins_index_body` (the same fields, analyzers, `dynamic: false` and
    `_meta`) with the vector as a `dense_vector` (`ELASTICSEARCH_VECTOR`) instead of OpenSearch's `knn_vector`, and
    without the k-NN plugin's `index.knn` setting."""
    body = pins_index_body(dim, meta, shards=shards, replicas=replicas)
    for setting in KNN_SETTINGS:
        body["settings"]["index"].pop(setting, None)
    body["mappings"]["properties"][VECTOR_FIELD] = {**copy.deepcopy(ELASTICSEARCH_VECTOR), "dims": int(dim)}
    return body
