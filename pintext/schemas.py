"""Record schemas for pins, users and engagement events: the one layer that validates input.

Every reader (JSONL files, the Kafka collector) calls these validators, so a record is accepted or rejected
the same way whatever the source. A rejected record raises `RecordError`, which names the offending field and a
short, stable reason (stable so that dead-letter summaries can group by it); `detail` carries the specifics.

Pure: no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Container, Mapping
from datetime import datetime, timezone
from typing import Any

from pintext.constants import RELATED, SEARCH, SURFACES

ACTIONS: tuple[str, ...] = ("impression", "click", "save", "hide")

# Pseudo-field names for errors that concern the whole line rather than one field.
WHOLE_RECORD = "<record>"

# The longest pin id accepted, in UTF-8 bytes: OpenSearch and Elasticsearch refuse a longer `_id`, and one such id
# fails its whole bulk request.
MAX_ID_BYTES = 512


class RecordError(ValueError):
    """A record that breaks its schema: `field` is the offending field, `reason` a short stable phrase."""

    def __init__(self, field: str, reason: str, detail: str | None = None) -> None:
        self.field = field
        self.reason = reason
        self.detail = detail
        message = f"field {field!r}: {reason}"
        if detail:
            message += f" ({detail})"
        super().__init__(message)

    def located(self, source: str, line: int | str) -> "LocatedRecordError":
        """The same error, pinned to the file (or topic) and line (or partition/offset) it came from."""
        return LocatedRecordError(source, line, self.field, self.reason, self.detail)


class LocatedRecordError(RecordError):
    """A `RecordError` that also names where the record was read: `source` and `line`."""

    def __init__(self, source: str, line: int | str, field: str, reason: str, detail: str | None = None) -> None:
        self.source = source
        self.line = line
        super().__init__(field, reason, detail)
        self.args = (f"{source}:{line}: {self.args[0]}",)


def _require_object(obj: Any) -> Mapping[str, Any]:
    if not isinstance(obj, Mapping):
        raise RecordError(WHOLE_RECORD, "not a JSON object", f"got {type(obj).__name__}")
    return obj


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _required_str(obj: Mapping[str, Any], field: str) -> str:
    """A field that must be present as a non-empty (after stripping) string."""
    if field not in obj or obj[field] is None:
        raise RecordError(field, "missing")
    value = obj[field]
    if not isinstance(value, str):
        raise RecordError(field, "not a string", f"got {_type_name(value)}")
    if not value.strip():
        raise RecordError(field, "empty")
    return value


def _optional_str(obj: Mapping[str, Any], field: str) -> str | None:
    """A field that may be absent or null; when present it must be a string (possibly empty)."""
    value = obj.get(field)
    if value is None:
        return None
    if not isinstance(value, str):
        raise RecordError(field, "not a string", f"got {_type_name(value)}")
    return value


def _optional_str_list(obj: Mapping[str, Any], field: str) -> list[str] | None:
    value = obj.get(field)
    if value is None:
        return None
    if not isinstance(value, list):
        raise RecordError(field, "not a list of strings", f"got {_type_name(value)}")
    for position, item in enumerate(value):
        if not isinstance(item, str):
            raise RecordError(field, "not a list of strings", f"item {position} is {_type_name(item)}")
    return value


def _enum(obj: Mapping[str, Any], field: str, allowed: tuple[str, ...]) -> str:
    value = _required_str(obj, field)
    if value not in allowed:
        raise RecordError(field, f"not one of {'|'.join(allowed)}", f"got {value!r}")
    return value


def validate_pin(obj: Any) -> dict[str, Any]:
    """Check a pin record and return it as a new dict (extra fields kept as they are).

    `id` is a required non-empty string of at most `MAX_ID_BYTES` (512) UTF-8 bytes; `title`, `description`,
    `board`, `link` are optional strings; `annotations` an optional list of strings. At least one of
    title/description must be non-empty, since a pin with no text cannot be embedded.
    """
    record = dict(_require_object(obj))
    pin_id = _required_str(record, "id")
    id_bytes = len(pin_id.encode("utf-8"))
    if id_bytes > MAX_ID_BYTES:
        raise RecordError("id", f"longer than {MAX_ID_BYTES} bytes", f"got {id_bytes} bytes")
    title = _optional_str(record, "title") or ""
    description = _optional_str(record, "description") or ""
    for field in ("board", "link"):
        _optional_str(record, field)
    _optional_str_list(record, "annotations")
    if not title.strip() and not description.strip():
        raise RecordError("title", "empty", "a pin needs a non-empty title or description")
    record["title"] = title
    record["description"] = description
    return record


def validate_user(obj: Any) -> dict[str, Any]:
    """Check a user record: `id` (non-empty string) and `interests` (list of strings, may be empty)."""
    record = dict(_require_object(obj))
    _required_str(record, "id")
    if "interests" not in record or record["interests"] is None:
        raise RecordError("interests", "missing")
    interests = _optional_str_list(record, "interests") or []
    for position, interest in enumerate(interests):
        if not interest.strip():
            raise RecordError("interests", "empty", f"item {position} is blank")
    return record


def parse_timestamp(value: Any, field: str = "ts") -> float:
    """Seconds since the epoch from an ISO-8601 string (naive means UTC) or an epoch number.

    Epoch numbers above 1e11 are taken as milliseconds, since seconds that large are thousands of years out.
    """
    if isinstance(value, bool) or value is None:
        raise RecordError(field, "missing" if value is None else "not a timestamp", f"got {_type_name(value)}")
    if isinstance(value, (int, float)):
        if not math.isfinite(value):
            raise RecordError(field, "not a timestamp", f"got {value!r}")
        return float(value) / 1000.0 if abs(value) > 1e11 else float(value)
    if isinstance(value, str):
        text = value.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise RecordError(field, "not a timestamp", f"not ISO-8601: {value!r}") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
        return moment.timestamp()
    raise RecordError(field, "not a timestamp", f"got {_type_name(value)}")


def validate_event(obj: Any, known_pins: Container[str] | None = None) -> dict[str, Any]:
    """Check an engagement event and return it as a new dict.

    Required: `event_id`, `ts` (ISO-8601 string or epoch number), `user_id`, `surface`, `action`, `pin_id`;
    `query` (non-empty) on the search surface; `subject_pin_id` on the related surface. When `known_pins`
    is given, a `pin_id` or `subject_pin_id` outside it is an error ("unknown pin").
    """
    record = dict(_require_object(obj))
    _required_str(record, "event_id")
    if "ts" not in record:
        raise RecordError("ts", "missing")
    parse_timestamp(record["ts"])
    _required_str(record, "user_id")
    surface = _enum(record, "surface", SURFACES)
    _enum(record, "action", ACTIONS)
    pin_id = _required_str(record, "pin_id")
    if surface == SEARCH:
        _required_str(record, "query")
    else:
        _optional_str(record, "query")
    subject_pin_id = _required_str(record, "subject_pin_id") if surface == RELATED else None
    if known_pins is not None:
        if pin_id not in known_pins:
            raise RecordError("pin_id", "unknown pin", f"got {pin_id!r}")
        if subject_pin_id is not None and subject_pin_id not in known_pins:
            raise RecordError("subject_pin_id", "unknown pin", f"got {subject_pin_id!r}")
    return record


def pin_text(pin: Mapping[str, Any]) -> str:
    """The text that gets embedded for a pin: title, description and annotations, space-joined."""
    parts = [pin.get("title") or "", pin.get("description") or ""]
    parts.extend(pin.get("annotations") or [])
    return " ".join(part.strip() for part in parts if part and part.strip())
