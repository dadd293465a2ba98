"""Kafka messages as engagement records: the checks every message (and every line to produce) goes through.

A poison message must never stop the collector (it would stop at the same offset on every run): anything a message
can make the parser, the schema or the writer trip on is a `RecordError` here, so it is dead-lettered. Pure: no
broker, no confluent-kafka.
"""

from __future__ import annotations

import json
from collections.abc import Container
from functools import partial
from typing import Any

from pintext.ingest.readers import parse_line
from pintext.schemas import WHOLE_RECORD, RecordError, validate_event

# The largest message produced or collected: librdkafka's default `message.max.bytes` (the broker's own limit is
# a little higher). An event is a few hundred bytes; a line over this is dead-lettered, never sent or kept.
MAX_MESSAGE_BYTES = 1_000_000
TOO_LARGE = "too large for a Kafka message"


def message_location(partition: int, offset: int) -> str:
    """How a dead-letter entry names a message within its topic: `partition/offset`."""
    return f"{partition}/{offset}"


def message_to_record(value: bytes | None, known_pins: Container[str] | None = None) -> dict[str, Any]:
    """Decode, parse and validate one message value as an engagement event; failures raise `RecordError`.

    A poison message must never stop the collector (it would stop at the same offset on every run): anything a
    message can make the parser, the schema or the writer trip on is a `RecordError` here, so it is dead-lettered.
    """
    if value is None or not value.strip():
        raise RecordError(WHOLE_RECORD, "empty message")
    require_size(value)
    try:
        # parse_line: not UTF-8 (a lone surrogate escape too), not JSON, nested too deeply -> RecordError.
        return parse_line(value, partial(validate_event, known_pins=known_pins))
    except OverflowError as error:  # e.g. an integer `ts` with 400 digits
        raise RecordError(WHOLE_RECORD, "number out of range", str(error)) from None


def require_size(value: bytes) -> None:
    if len(value) > MAX_MESSAGE_BYTES:
        raise RecordError(WHOLE_RECORD, TOO_LARGE, f"{len(value):,} bytes, the limit is {MAX_MESSAGE_BYTES:,}")


def partition_key(raw: bytes) -> bytes | None:
    """The Kafka key of a line to produce: its `user_id`, so one user's events stay in order on one partition.

    A line that is not a JSON object with a string `user_id` gets no key (it is still sent, as-is).
    """
    try:
        obj = json.loads(raw)
    except (ValueError, RecursionError):  # not JSON, not UTF-8 (a ValueError too), or nested too deeply
        return None
    user_id = obj.get("user_id") if isinstance(obj, dict) else None
    return user_id.encode("utf-8") if isinstance(user_id, str) and user_id else None
