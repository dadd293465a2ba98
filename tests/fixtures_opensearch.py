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


@pytest.fixture
def opensearch_index_name(opensearch) -> Iterator[str]:
    """A fresh index name; whatever index gets that name is deleted after the test."""
    name = f"pintext-test-{uuid.uuid4().hex[:12]}"
    yield name
    opensearch.indices.delete(index=name, ignore_unavailable=True)
