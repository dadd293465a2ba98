"""The OpenSearch node a benchmark runs against: $OPENSEARCH_URL if set, else the managed node.

When the managed node is not running, the benchmark starts it (the same `start()` as `pintext opensearch up`,
its start time is reported) and stops it at the end; a node that was already running is left running.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any


@dataclass
class BenchNode:
    """A client plus what the benchmark did to get it."""

    client: Any
    url: str
    version: str
    started_here: bool
    start_seconds: float
    plugins: list[str] = field(default_factory=list)
    _settings: Any = None

    def close(self) -> str | None:
        """Stop the node if this benchmark started it; returns how it ended."""
        if not self.started_here:
            return None
        from pintext.servers.opensearch_node import stop

        return stop(self._settings)


def open_node(timeout_s: float = 240.0) -> BenchNode:
    """Connect to $OPENSEARCH_URL, or start the managed node if it is not running."""
    import os

    from pintext.serving.opensearch_client import connect, resolve_url

    started_here, start_seconds, settings = False, 0.0, None
    if not os.environ.get("OPENSEARCH_URL"):
        from pintext.servers.opensearch_node import NodeSettings, running_pid, start

        settings = NodeSettings.from_env()
        if running_pid(settings) is None:
            began = time.perf_counter()
            start(settings, timeout_s=timeout_s)
            start_seconds = time.perf_counter() - began
            started_here = True
    client = connect(timeout=120)
    info = client.info()
    plugins = sorted({f"{row['component']} {row['version']}" for row in client.cat.plugins(format="json")})
    url = resolve_url()
    return BenchNode(client, url, info["version"]["number"], started_here, start_seconds, plugins, settings)
