"""Dead-letter file: every rejected record is written here with where it came from and why, never dropped.

One JSON object per line:
`{"source": file-or-topic, "line": n (or "partition/offset"), "field": ..., "reason": ..., "detail": ..., "raw": text}`.
Each entry is flushed as it is written (a whole line or, on a full disk, nothing), so a collector may commit its
input offsets right after `add` returns.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from pintext.atomic import append_whole, naming_the_place
from pintext.schemas import RecordError


class DeadLetter:
    """Append rejected records to a JSONL file and count them.

    `count` is the number written through this object; `by_reason` counts them by `"field: reason"`.
    Use as a context manager; the file (and its folder) is created on entry, appended to if it exists (emptied
    first with `restart=True`: done on entry, not before, so a caller holding a lock restarts it under the lock).
    """

    def __init__(self, path: str | Path, restart: bool = False) -> None:
        self.path = Path(path)
        self.restart = restart
        self.count = 0
        self.by_reason: Counter[str] = Counter()
        self._handle: IO[bytes] | None = None

    def __enter__(self) -> "DeadLetter":
        with naming_the_place(self.path, "dead letter"):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._handle = self.path.open("wb" if self.restart else "ab")
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the file; further `add` calls fail."""
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def add(self, source: str, line: Any, error: RecordError, raw: str | bytes) -> None:
        """Write one rejected record: its source, line (or partition/offset), the error, and the raw text."""
        if self._handle is None:
            raise RuntimeError(f"dead letter {self.path} is not open: use it as a context manager")
        if isinstance(raw, bytes):
            raw = raw.decode("utf-8", errors="replace")
        entry = {
            "source": str(source),
            "line": line,
            "field": error.field,
            "reason": error.reason,
            "detail": error.detail,
            "raw": raw.rstrip("\r\n"),
        }
        # Whole lines only: a write cut short by a full disk is taken back (and raised as one line naming the file).
        append_whole(self._handle, (json.dumps(entry, ensure_ascii=False) + "\n").encode("utf-8"),
                     self.path, "dead letter")
        self.count += 1
        self.by_reason[f"{error.field}: {error.reason}"] += 1

    def summary(self) -> str:
        """One human line: how many were rejected and the most common reasons."""
        if not self.count:
            return "0 rejected"
        reasons = ", ".join(f"{reason} x{n}" for reason, n in self.by_reason.most_common(5))
        return f"{self.count} rejected -> {self.path} ({reasons})"
