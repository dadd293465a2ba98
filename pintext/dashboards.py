"""OpenSearch Dashboards saved objects for inspecting a pins index (`mappings/dashboards.ndjson`).

The packaged file is written for the index `pins`: an index pattern with id `pintext-pins`, saved searches and
visualizations whose ids start with `pintext-pins-` and whose titles carry `[pins]`, and one dashboard. For
another index, `saved_objects(index)` renames all three (pattern title, ids, references, `[index]` in titles), so
the objects of several indices can live side by side in one Dashboards. Pure functions: no network.
"""

from __future__ import annotations

import copy
import json
import re
from functools import lru_cache
from importlib import resources

DEFAULT_INDEX = "pins"
RESOURCE = "dashboards.ndjson"
ID_PREFIX = "pintext-"


@lru_cache(maxsize=None)
def _packaged() -> tuple[dict, ...]:
    text = resources.files("pintext.mappings").joinpath(RESOURCE).read_text(encoding="utf-8")
    return tuple(json.loads(line) for line in text.splitlines() if line.strip())


def index_pattern_id(index: str = DEFAULT_INDEX) -> str:
    """The index pattern's saved-object id: `pintext-` + the index name, `*` and other odd characters as `_`."""
    return ID_PREFIX + re.sub(r"[^A-Za-z0-9_.-]", "_", index)


def _rename(object_id: str, index: str) -> str:
    old = index_pattern_id(DEFAULT_INDEX)
    if object_id != old and not object_id.startswith(old + "-"):
        raise ValueError(f"saved object id {object_id!r} does not start with {old!r}")
    return index_pattern_id(index) + object_id[len(old):]


def saved_objects(index: str = DEFAULT_INDEX) -> list[dict]:
    """The saved objects, as dicts, for an index (or index pattern such as `pins-*`) named `index`."""
    if not index or any(char in index for char in ' ,"\\/?#') or index != index.strip():
        raise ValueError(f"{index!r} is not a usable index name or pattern")
    objects = []
    for packaged in _packaged():
        obj = copy.deepcopy(packaged)
        obj["id"] = _rename(obj["id"], index)
        for reference in obj.get("references", []):
            reference["id"] = _rename(reference["id"], index)
        attributes = obj["attributes"]
        if obj["type"] == "index-pattern":
            attributes["title"] = index
        else:
            attributes["title"] = attributes["title"].replace(f"[{DEFAULT_INDEX}]", f"[{index}]")
            if "visState" in attributes:
                state = json.loads(attributes["visState"])
                state["title"] = attributes["title"]
                attributes["visState"] = json.dumps(state)
        objects.append(obj)
    return objects


def export_ndjson(index: str = DEFAULT_INDEX) -> str:
    """The saved objects as ndjson (one object a line, newline-terminated), ready for Saved Objects import."""
    return "".join(json.dumps(obj, separators=(",", ":")) + "\n" for obj in saved_objects(index))
