"""Test helpers for the serving seam: reach the index a CLI command made, on any engine."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from pintext.serving.local import LocalEngine, LocalIndex


def local_index(local_dir: Path, name: str = "pins") -> LocalIndex:
    """The local index the alias `name` serves in `local_dir` (what `--engine local --local-dir` wrote)."""
    engine = LocalEngine(local_dir)
    target = engine.alias_target(name)
    assert target is not None, f"no local index {name!r} in {local_dir}"
    return LocalIndex(Path(local_dir) / target)


def opensearch_searcher(client, index: str):
    """A Searcher over an OpenSearch index or alias, from its own `_meta`."""
    from pintext.serving.opensearch import OpenSearchEngine
    from pintext.serving.searcher import Searcher

    return Searcher.for_index(OpenSearchEngine(client), index)


def only(response: dict):
    """The one value of a per-index response (get_mapping, get_settings) asked through an alias."""
    (value,) = response.values()
    return value


def opensearch_url(client) -> str:
    """The URL the session client talks to, for subprocesses."""
    if os.environ.get("OPENSEARCH_URL"):
        return os.environ["OPENSEARCH_URL"]
    host = client.transport.hosts[0]
    scheme = "https" if host.get("use_ssl") or host.get("scheme") == "https" else "http"
    return f"{scheme}://{host['host']}:{host['port']}"


def os_args(client, index: str) -> list[str]:
    """The CLI options that reach `index` on the node the client talks to."""
    return ["--index", index, "--url", opensearch_url(client)]


def free_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
