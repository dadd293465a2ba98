"""Session fixtures for an opensearch-py client on a live OpenSearch node with the k-NN plugin.

The node is `opensearch_node` (tests/fixtures_engines.py): $OPENSEARCH_URL, else a Docker container, else the
managed node of the selected version (3.5.0 by default; `--opensearch-version 2.19.1` for the other one).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest


@pytest.fixture(scope="session")
def opensearch(opensearch_node) -> object:
    """An opensearch-py client connected to the session's OpenSearch node."""
    from pintext.serving.opensearch_client import connect

    return connect(opensearch_node.url)


@pytest.fixture(scope="session")
def opensearch_url(opensearch_node) -> str:
    """The URL of the session's node, for commands run as subprocesses."""
    return opensearch_node.url


def drop_indexes(client, name: str) -> None:
    """Delete the index `name` and every index whose name starts with it: PinText writes `name` as an alias of a
    concrete `name-<model fingerprint>`, which deleting `name` alone leaves behind. (Those leftovers piled up on the
    managed node, which keeps its data between runs, until it held 1,000 shards, OpenSearch's default
    `cluster.max_shards_per_node`, and every test creating an index failed.) Works with opensearch-py and
    elasticsearch-py clients."""
    for index in client.indices.get(index=f"{name}*", ignore_unavailable=True) or {}:
        client.indices.delete(index=index, ignore_unavailable=True)


@pytest.fixture
def opensearch_index_name(opensearch) -> Iterator[str]:
    """A fresh index name; every index under that name (an alias's concrete index too) is deleted after the test."""
    name = f"pintext-test-{uuid.uuid4().hex[:12]}"
    yield name
    drop_indexes(opensearch, name)
