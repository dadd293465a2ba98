"""Session fixtures `secure_node` and `secure_elasticsearch_node`: the secured managed OpenSearch and Elasticsearch
nodes (`pintext opensearch|elasticsearch up --secure`), started by the project's own code unless ours already runs
(then reused and left running), stopped at the end of a session that started it. With CI=true a node that cannot
be had fails the tests that need it; elsewhere they are skipped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
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
    server: Any  # the SecureOpenSearchNode or SecureElasticsearchNode


def _leased_secure_node(make_server: Callable[[], Any], what: str) -> Iterator[SecureNode]:
    """The secured node `make_server()` names, leased for the session (`lease_managed_server`)."""
    from pintext.servers.lifecycle import ServerError

    try:
        server = make_server()
    except ServerError as error:
        unavailable(what, str(error))
    url, release = lease_managed_server(server, what)
    try:
        credentials = server.credentials()
        yield SecureNode(url, credentials.ca_certs, credentials.passwords, server.logs_dir, server.secrets_dir, server)
    finally:
        release()


@pytest.fixture(scope="session")
def secure_node() -> Iterator[SecureNode]:
    from pintext.servers.opensearch_secure import SecureOpenSearchNode

    yield from _leased_secure_node(SecureOpenSearchNode.from_env, "the secured OpenSearch node")


@pytest.fixture(scope="session")
def secure_elasticsearch_node() -> Iterator[SecureNode]:
    from pintext.servers.elasticsearch_secure import SecureElasticsearchNode

    yield from _leased_secure_node(SecureElasticsearchNode.from_env, "the secured Elasticsearch node")
