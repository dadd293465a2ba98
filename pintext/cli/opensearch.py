"""CLI commands: `pintext opensearch up|down|status|logs [--version 3.5.0|2.19.1]` — the managed local OpenSearch
node with k-NN (3.5.0 by default; 2.19.1 side by side one port up). See docs/opensearch.md."""

from __future__ import annotations

import typer

from pintext.cli.servers import ServerGroup, Topology, lifecycle_app

# Literal copies of pintext.servers.opensearch_node's versions and port, so `pintext --help` imports no server code
# (tests/test_servers.py checks they agree).
VERSIONS = ("3.5.0", "2.19.1")
DEFAULT_PORT = 9200


def _select(version: str | None, port: int | None, heap: str | None):
    from pintext.servers import opensearch_node as node

    return node.OpenSearchNode(node.NodeSettings.from_env(port=port, heap=heap, version=version))


def _select_topology(version: str | None, port: int | None, heap: str | None, topology: Topology):
    """The secured node (`--secure`, pintext.servers.opensearch_secure) or the local cluster (`--nodes N`,
    pintext.servers.opensearch_cluster)."""
    if topology.secure:
        from pintext.servers import opensearch_secure

        return opensearch_secure.SecureOpenSearchNode.from_env(version=version, port=port, heap=heap)
    from pintext.servers import opensearch_cluster

    return opensearch_cluster.OpenSearchCluster.from_env(topology.nodes, version=version, port=port, heap=heap)


def _select_every():
    from pintext.servers import opensearch_node as node

    return node.managed_nodes()


GROUP = ServerGroup(
    name="opensearch", title="OpenSearch", noun="node", versions=VERSIONS, default_port=DEFAULT_PORT,
    help="Run a local OpenSearch node with the k-NN plugin (3.5.0, or 2.19.1; downloaded from Maven Central once).",
    select=_select, select_every=_select_every, select_topology=_select_topology,
)
opensearch_app = lifecycle_app(GROUP)


def register(app: typer.Typer) -> None:
    """Add `pintext opensearch ...` to the main app."""
    app.add_typer(opensearch_app)
