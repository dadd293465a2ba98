"""CLI commands: `pintext elasticsearch up|down|status|logs` — the managed local Elasticsearch 8.15.0 node
(security off, loopback, port $PINTEXT_ELASTICSEARCH_PORT or 9400; docs/elasticsearch.md), or with `--secure` the
secured one (TLS, users and roles, port + 10; docs/security.md)."""

from __future__ import annotations

import typer

from pintext.cli.errors import USAGE, fail
from pintext.cli.servers import ServerGroup, Topology, lifecycle_app

VERSIONS = ("8.15.0",)  # a literal copy of pintext.servers.elasticsearch_node's (tests/test_servers.py checks)
DEFAULT_PORT = 9400


def _select(version: str | None, port: int | None, heap: str | None):
    from pintext.servers import elasticsearch_node as node

    node.check_version(version)
    return node.managed_node(port=port, heap=heap)


def _select_topology(version: str | None, port: int | None, heap: str | None, topology: Topology):
    """The secured node (`--secure`, pintext.servers.elasticsearch_secure); no local cluster for Elasticsearch."""
    if not topology.secure:
        fail("--nodes is offered for OpenSearch only", USAGE)
    from pintext.servers import elasticsearch_secure

    return elasticsearch_secure.SecureElasticsearchNode.from_env(version=version, port=port, heap=heap)


def _select_every():
    return [_select(None, None, None)]


GROUP = ServerGroup(
    name="elasticsearch", title="Elasticsearch", noun="node", versions=VERSIONS, default_port=DEFAULT_PORT,
    help="Run a local Elasticsearch 8.15.0 node (integ-test zip from Maven Central; security off, or on with "
         "--secure).",
    select=_select, select_every=_select_every, select_topology=_select_topology,
)
elasticsearch_app = lifecycle_app(GROUP)


def register(app: typer.Typer) -> None:
    """Add `pintext elasticsearch ...` to the main app."""
    app.add_typer(elasticsearch_app)
