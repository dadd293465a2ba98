"""Query texts as users give them: one on a command line, or a file of one JSON line each."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pintext.errors import BadInput


def read_queries(path: Path) -> list[str]:
    """One query per line (plain or `.gz`, read like every JSONL input: a BOM skipped, CRLF fine): a JSON string,
    or an object with `query` (or `text`). The first bad line is one error naming the file, line and field (a
    queries file is a short list its author fixes, not a stream to dead-letter)."""
    from pintext.ingest.readers import parse_json, raw_lines
    from pintext.schemas import LocatedRecordError, RecordError

    texts = []
    for line_no, raw in raw_lines(path):
        try:
            if isinstance(raw, RecordError):
                raise raw
            if raw.strip():
                texts.append(query_text(parse_json(raw)))
        except RecordError as error:
            raise BadInput(str(LocatedRecordError(str(path), line_no, error.field, error.reason,
                                                  error.detail))) from None
    if not texts:
        raise BadInput(f"{path}: no queries (every line is blank)")
    return texts


def require_query_text(text: str) -> str:
    """A query text given as an argument; a blank one is one error line (as a blank line of a queries file is)."""
    if not text.strip():
        raise BadInput(f"the query text {text!r} is blank: give at least one word")
    return text


def query_text(value: Any) -> str:
    """The query of one parsed line of a queries file, or a RecordError on field 'query'."""
    from pintext.schemas import RecordError

    text = value.get("query") or value.get("text") if isinstance(value, dict) else value
    if text is None:
        raise RecordError("query", "missing", 'want a JSON string or {"query": "..."}')
    if not isinstance(text, str):
        raise RecordError("query", "not a string", f"got {type(text).__name__}")
    if not text.strip():
        raise RecordError("query", "empty")
    return text
