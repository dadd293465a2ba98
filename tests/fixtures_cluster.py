"""Fixtures for the fault tests (tests/test_faults.py): OpenSearch nodes of their own that a test may kill, pause
and restart, never the session node other tests share.

Both are `pintext.servers.opensearch_cluster.OpenSearchCluster` instances beside the CLI's cluster, on their own
ports ($PINTEXT_OPENSEARCH_PORT + 30 for the single node, + 32..34 for the three nodes; transport + 1000), with
fresh data each session, and stopped at the end (they are this session's alone). With CI=true a node that cannot
be started fails the tests that need it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest

from tests.fixtures_engines import unavailable

SINGLE_PORT_OFFSET = 30
TRIO_PORT_OFFSET = 32
# The single node has one write thread and a write queue of one: with --workers 1 every bulk is served, with
# --workers 4 the node refuses the excess with 429 (a bulk-rejection storm on demand).
STORM_SETTINGS = {"thread_pool.write.size": "1", "thread_pool.write.queue_size": "1"}
# Two cores shared by several sessions: three members took ~100 s to form a cluster when the machine was busy.
START_TIMEOUT_S = 300.0


def _base_port() -> int:
    from pintext.servers.opensearch_node import DEFAULT_PORT

    return int(os.environ.get("PINTEXT_OPENSEARCH_PORT") or DEFAULT_PORT)


def _own_cluster(instance: str, nodes: int, port: int, extra: dict[str, str] | None = None) -> Iterator[object]:
    from pintext.servers.lifecycle import ServerError
    from pintext.servers.opensearch_cluster import OpenSearchCluster

    cluster = OpenSearchCluster.from_env(nodes, port=port, heap="256m", instance=instance, extra=extra)
    cluster.stop()  # a run that crashed may have left ours running
    cluster.wipe()
    began = time.monotonic()
    try:
        cluster.start(START_TIMEOUT_S)
    except ServerError as error:
        cluster.stop()
        unavailable(f"a {nodes}-node OpenSearch of its own", str(error))
    print(f"\n{cluster.label} started in {time.monotonic() - began:.1f} s at {cluster.url}")
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="module")
def fault_node() -> Iterator[object]:
    """A one-node `OpenSearchCluster` (write pool of one thread, queue of one) the tests may kill and restart."""
    yield from _own_cluster("faults-single", 1, _base_port() + SINGLE_PORT_OFFSET, STORM_SETTINGS)


@pytest.fixture(scope="module")
def fault_cluster() -> Iterator[object]:
    """A three-node `OpenSearchCluster` the tests may kill members of."""
    yield from _own_cluster("faults-trio", 3, _base_port() + TRIO_PORT_OFFSET)
