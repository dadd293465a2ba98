"""Session fixture `secure_node`: the secured managed OpenSearch node (`pintext opensearch up --secure`), started by
the project's own code unless ours already runs (then reused and left running), stopped at the end of a session
that started it. With CI=true a node that cannot be had fails the tests that need it; elsewhere they are skipped.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures_engines import lease_managed_server, unavailable


@dataclass(frozen=True)
class SecureNode:
    """A running secured node and what a client needs to use it."""

    url: str
    ca_certs: Path
    passwords: dict[str, str]  # user -> password (admin, pintext_writer, pintext_reader)
    logs_dir: Path
    secrets_dir: Path
    server: Any  # the SecureOpenSearchNode


@pytest.fixture(scope="session")
def secure_node() -> Iterator[SecureNode]:
    from pintext.servers.lifecycle import ServerError
    from pintext.servers.opensearch_secure import SecureOpenSearchNode

    what = "the secured OpenSearch node"
    try:
        server = SecureOpenSearchNode.from_env()
    except ServerError as error:
        unavailable(what, str(error))
    url, release = lease_managed_server(server, what)
    try:
        credentials = server.credentials()
        yield SecureNode(url, credentials.ca_certs, credentials.passwords, server.logs_dir, server.secrets_dir, server)
    finally:
        release()
