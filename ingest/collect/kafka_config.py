"""What `pintext collect` is asked to do, and the librdkafka settings of its consumer. Pure: no broker."""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pintext.ingest.collect.part_files import EVENTS_FILE, FORMATS, REJECTED_FILE

DEFAULT_GROUP = "pintext-collect"
DEFAULT_BATCH_SIZE = 500
SESSION_TIMEOUT_MS = 10_000
# How long the collector keeps retrying while the broker is away (librdkafka reconnects by itself) before it gives up.
DEFAULT_BROKER_TIMEOUT_S = 120.0
# While the broker is away: the longest wait between two reconnect attempts.
RECONNECT_BACKOFF_MAX_MS = 1000
REQUEST_TIMEOUT_MS = 10_000
_COLLECTOR_ID = re.compile(r"^[A-Za-z0-9_.]+$")


@dataclass(frozen=True)
class CollectorConfig:
    """What `pintext collect` was asked to do."""

    bootstrap: str
    topic: str
    out_dir: Path
    group: str = DEFAULT_GROUP
    max_messages: int | None = None
    idle_timeout_s: float | None = None
    batch_size: int = DEFAULT_BATCH_SIZE
    poll_timeout_s: float = 0.5
    strict: bool = False
    # Parts mode (any of these set): rolled part files per collector id instead of one events.jsonl.
    roll_bytes: int | None = None
    roll_seconds: float | None = None
    format: str = "jsonl"
    collector_id: str | None = None
    broker_timeout_s: float = DEFAULT_BROKER_TIMEOUT_S

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise ValueError(f"format must be one of {', '.join(FORMATS)}, not {self.format!r}")
        if self.collector_id is not None and not _COLLECTOR_ID.match(self.collector_id):
            raise ValueError(f"collector id {self.collector_id!r}: use letters, digits, '_' and '.' only")

    @property
    def parts(self) -> bool:
        """True when the collector writes rolled parts (a folder the pairs step reads) rather than events.jsonl."""
        return (self.roll_bytes is not None or self.roll_seconds is not None or self.format != "jsonl"
                or self.collector_id is not None)

    @property
    def writer_id(self) -> str:
        """The collector id naming this collector's parts, dead letter and lock (default: the host name)."""
        if self.collector_id is not None:
            return self.collector_id
        return re.sub(r"[^A-Za-z0-9_.]", "_", socket.gethostname()) or "collector"

    @property
    def events_path(self) -> Path:
        """events.jsonl, or in parts mode the folder of parts."""
        return self.out_dir if self.parts else self.out_dir / EVENTS_FILE

    @property
    def rejected_path(self) -> Path:
        return self.out_dir / (f"rejected-{self.writer_id}.jsonl" if self.parts else REJECTED_FILE)


def consumer_config(config: CollectorConfig) -> dict[str, Any]:
    """librdkafka settings of the collector's consumer."""
    return {
        "bootstrap.servers": config.bootstrap,
        "group.id": config.group,
        # Offsets are committed by hand, after the batch is on disk: that is the at-least-once guarantee.
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        # A new group starts from the beginning of the topic, so events produced before the first run count.
        "auto.offset.reset": "earliest",
        "enable.partition.eof": False,
        # A collector that crashed does not leave its group; until the broker notices (the session timeout,
        # 45 s by default) its partitions go to nobody, so a restart would idle. 10 s was Kafka's old default.
        "session.timeout.ms": SESSION_TIMEOUT_MS,
        "heartbeat.interval.ms": SESSION_TIMEOUT_MS // 4,
        # A restarted broker is found within a second, not after librdkafka's default 10 s backoff.
        "reconnect.backoff.max.ms": RECONNECT_BACKOFF_MAX_MS,
        # Bounds the one synchronous commit (in on_revoke) to a broker that just died: ~2x this, not 60 s.
        "socket.timeout.ms": REQUEST_TIMEOUT_MS,
    }
