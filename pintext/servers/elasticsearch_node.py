"""A managed local Elasticsearch 8.15.0 node, from the integ-test distribution zip on Maven Central.

`org.elasticsearch.distribution.integ-test-zip:elasticsearch:8.15.0:zip` (checked against the `.sha1` Maven
publishes) has the server and only the modules apm, transport-netty4, x-pack-core and x-pack-security: no
`GET /` (rest-root), painless, mustache templates, `_rank_eval` or language analyzers, and no ML. What PinText
serves through it is in core: `dense_vector` (`index_options.type: flat` = exact), the `knn` search with
filters, `multi_match` BM25, `_bulk`, aliases, mapping `_meta` (docs/elasticsearch.md has the facts checked).

The node is one loopback, single-node cluster with security off (`xpack.security.enabled: false`; a secured node
is later work), no disk watermarks and a fixed heap, assembled under `pintext_home()/elasticsearch/8.15.0/` and
run detached as the `pintext` system user (Elasticsearch refuses root). Elasticsearch 8.15 runs under the Java
Security Manager, gone in JDK 24: Java 17..23. `bin/elasticsearch` is a small launcher JVM that starts the server
JVM as its child and stops it on SIGTERM; the pid recorded is the launcher's. Only the standard library is used.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from pintext.paths import pintext_home
from pintext.servers import search_node
from pintext.servers.java import JavaRange
from pintext.servers.lifecycle import ServerError
from pintext.servers.maven import MavenArtifact
from pintext.servers.search_node import DEFAULT_HEAP

ELASTICSEARCH_VERSION = "8.15.0"
# Not 9200: a managed OpenSearch node (and its 2.19.1 sibling one port up) may be listening there.
DEFAULT_PORT = 9400
JAVA_RANGE = JavaRange(17, 23)


class ElasticsearchNodeError(ServerError):
    """The managed Elasticsearch node could not be downloaded, started, reached or stopped; the message says why."""


@dataclass(frozen=True)
class ElasticsearchSettings(search_node.NodeSettings):
    """Where the managed Elasticsearch node lives and how it listens."""

    version: str = ELASTICSEARCH_VERSION
    port: int = DEFAULT_PORT

    @classmethod
    def from_env(cls, port: int | None = None, heap: str | None = None) -> "ElasticsearchSettings":
        """Arguments, else PINTEXT_ELASTICSEARCH_PORT (9400) and PINTEXT_ELASTICSEARCH_HEAP (512m)."""
        if port is None:
            port = search_node.env_int("PINTEXT_ELASTICSEARCH_PORT", DEFAULT_PORT, ElasticsearchNodeError)
        return cls(home=pintext_home(), port=port,
                   heap=heap or os.environ.get("PINTEXT_ELASTICSEARCH_HEAP") or DEFAULT_HEAP)


class ElasticsearchNode(search_node.SearchNode):
    """The managed Elasticsearch node (see the module docstring)."""

    key = "elasticsearch"
    engine = "Elasticsearch"
    error = ElasticsearchNodeError
    launcher = "elasticsearch"
    config_name = "elasticsearch.yml"
    java_home_variables = ("ES_JAVA_HOME",)
    java_opts_variable = "ES_JAVA_OPTS"
    # The launcher JVM's main class; its command line also carries -Des.path.home=<node folder>.
    main_class = "org.elasticsearch.launcher.CliToolLauncher"
    path_home_property = "es.path.home"
    assembly_layout = 1

    settings: ElasticsearchSettings

    def java_range(self) -> JavaRange:
        return JAVA_RANGE

    def distribution_artifact(self) -> MavenArtifact:
        return MavenArtifact("org.elasticsearch.distribution.integ-test-zip", "elasticsearch",
                             self.settings.version, "zip")

    def java_env(self, java_home: Path) -> dict[str, str]:
        env = super().java_env(java_home)
        # bin/elasticsearch reads only ES_JAVA_HOME and warns on every start that it ignores a JAVA_HOME.
        env.pop("JAVA_HOME", None)
        return env

    def config_extra(self) -> dict[str, str]:
        return {
            # A secured node (TLS, users) is later work; without this line 8.x auto-configures security on start.
            "xpack.security.enabled": "false",
        }


def managed_node(port: int | None = None, heap: str | None = None) -> ElasticsearchNode:
    return ElasticsearchNode(ElasticsearchSettings.from_env(port=port, heap=heap))


def check_version(version: str | None) -> None:
    """Only 8.15.0 is managed; None means the default."""
    if version not in (None, ELASTICSEARCH_VERSION):
        raise ElasticsearchNodeError(
            f"Elasticsearch {version!r} is not managed by PinText; the managed version is {ELASTICSEARCH_VERSION}"
        )


def managed_url() -> str:
    """The URL of the managed node: the one `up` recorded, else the configured one."""
    return managed_node().address()
