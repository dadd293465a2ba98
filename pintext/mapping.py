"""Build the request bodies OpenSearch gets for a pins index, from the JSON in `mappings/`.

Pure functions: they read the packaged template and return dicts; sending them is `pintext.ingest`'s job.
"""

import copy
import json
from functools import lru_cache
from importlib import resources

TOKENS_FIELD = "lsh_tokens"
VECTOR_FIELD = "vector"


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
