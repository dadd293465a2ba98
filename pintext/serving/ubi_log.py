"""`pintext search --ubi-log FILE`: what a search served, as OpenSearch User Behavior Insights (UBI) bulk ndjson.

One `ubi_queries` document per query and one `ubi_events` impression per hit, in the bulk format that
`pintext pairs --ubi FILE` reads back (`pintext.ingest.collect.ubi`), so a search log becomes engagement pairs
once clicks are appended. docs/data.md ("UBI") has the long form.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pintext.errors import WriteFailed

#: The UBI indices (and the `_index` of their bulk action lines).
QUERIES_INDEX = "ubi_queries"
EVENTS_INDEX = "ubi_events"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class UbiLog:
    """Appends what a search served as UBI bulk ndjson: one `ubi_queries` doc per query and one `ubi_events`
    impression per hit (`event_attributes.object.object_id` = pin id, `position.ordinal` from 0)."""

    def __init__(self, path: Path, client_id: str | None = None, application: str = "pintext") -> None:
        self.path = Path(path)
        self.client_id = client_id or f"pintext-{uuid.uuid4()}"
        self.application = application

    def log(self, query: str, hit_ids: list[str], attributes: dict[str, Any]) -> str:
        """Append one served query and its impressions; returns its `query_id`."""
        query_id = str(uuid.uuid4())
        stamp = _now()
        lines: list[dict[str, Any]] = [
            {"index": {"_index": QUERIES_INDEX, "_id": query_id}},
            {"application": self.application, "query_id": query_id, "client_id": self.client_id,
             "user_query": query, "timestamp": stamp, "query_attributes": attributes,
             "query_response_hit_ids": hit_ids},
        ]
        for ordinal, pin_id in enumerate(hit_ids):
            lines.append({"index": {"_index": EVENTS_INDEX, "_id": str(uuid.uuid4())}})
            lines.append(ubi_event("impression", query_id, self.client_id, pin_id, ordinal, stamp, self.application,
                                   query))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as handle:
            handle.writelines(json.dumps(line, ensure_ascii=False) + "\n" for line in lines)
        return query_id


#: One UBI client per process: the searches of one `pintext search` command share it.
PROCESS_CLIENT_ID = f"pintext-{uuid.uuid4()}"


def log_answer(path: Path, query: str, answer: Any, searcher: Any, k: int) -> str:
    """Append one served query (an `Answer`: its `mode`, `window`, `probes` and `hits`) and its hits; returns its
    `query_id`. A file that cannot be written raises `WriteFailed` naming `--ubi-log` (exit 1)."""
    attributes = {"mode": answer.mode, "engine": getattr(searcher.engine, "name", None), "k": k,
                  "index": getattr(searcher, "index", None), "window": answer.window, "probes": answer.probes}
    try:
        return UbiLog(path, PROCESS_CLIENT_ID).log(query, [hit.id for hit in answer.hits], attributes)
    except OSError as error:
        raise WriteFailed(f"--ubi-log {path}: cannot write: {error.strerror or error}") from None


def ubi_event(action_name: str, query_id: str, client_id: str, pin_id: str, ordinal: int, timestamp: str,
              application: str = "pintext", user_query: str | None = None) -> dict[str, Any]:
    """A `ubi_events` document about one pin."""
    event = {"application": application, "action_name": action_name, "query_id": query_id,
             "client_id": client_id, "timestamp": timestamp, "message_type": action_name.upper(),
             "event_attributes": {"object": {"object_id": pin_id, "object_id_field": "id"},
                                  "position": {"ordinal": ordinal}}}
    if user_query is not None:
        event["user_query"] = user_query
    return event


__all__ = ["EVENTS_INDEX", "PROCESS_CLIENT_ID", "QUERIES_INDEX", "UbiLog", "log_answer", "ubi_event"]
