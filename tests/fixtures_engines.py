"""Session fixtures: one live search node per engine and version, as `EngineNode`s (the conformance suite runs
the same tests on each), and the shared "managed server for a test session" logic.

Where a node comes from, first match wins:

1. an environment URL (`OPENSEARCH_URL`, `PINTEXT_TEST_OPENSEARCH_219_URL`, `ELASTICSEARCH_URL`): a node someone
   else runs; it must answer, and it is never stopped here;
2. (OpenSearch only) a Docker engine that answers: a throwaway `opensearchproject/opensearch:<version>` container;
3. the managed node (`pintext opensearch|elasticsearch up`): reused when it already runs (and then left running),
   otherwise started for the session and stopped at its end, unless another pytest session still uses it.

`--opensearch-version 2.19.1` (or `PINTEXT_TEST_OPENSEARCH_VERSION`) makes `opensearch_node`, and so the
`opensearch` client fixtures, use that managed version, so the whole `-m opensearch` set can run on 2.19.1.
With CI=true a node that cannot be had fails the run; elsewhere the tests that need it are skipped.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

import pytest

ENGINE_NODE_FIXTURES = ("opensearch_node", "opensearch_219_node", "elasticsearch_node")
VERSION_OPTION = "--opensearch-version"
VERSION_ENV = "PINTEXT_TEST_OPENSEARCH_VERSION"
# How long a node named by URL may take to answer yellow/green (it may be starting too).
URL_NODE_WAIT_S = 60.0


@dataclass(frozen=True)
class EngineNode:
    """A live search node the tests may use."""

    engine: str  # "opensearch" | "elasticsearch"
    version: str  # "3.5.0", "2.19.1", "8.15.0"
    url: str

    @property
    def id(self) -> str:
        return f"{self.engine}-{self.version}"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(VERSION_OPTION, default=None,
                     help="managed OpenSearch version behind the `opensearch` fixtures (3.5.0 or 2.19.1; "
                          f"default ${VERSION_ENV}, else 3.5.0)")


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def unavailable(what: str, reason: str) -> None:
    """Fail under CI (a missing server is never a silent skip there), skip elsewhere."""
    if in_ci():
        pytest.fail(f"{what} is required when CI=true: {reason}", pytrace=False)
    pytest.skip(f"no {what}: {reason}")


# --------------------------------------------------------------------------- a managed server for a session


def _live_leases(lease_dir: Path) -> list[Path]:
    """Leases of pytest sessions whose process still exists (a crashed session's lease is ignored)."""
    live = []
    for lease in lease_dir.glob("*"):
        with suppress(ValueError):
            if Path(f"/proc/{int(lease.name)}").exists():
                live.append(lease)
    return live


def lease_managed_server(server, what: str) -> tuple[str, Callable[[], None]]:
    """Start `server` (a `ManagedServer`) unless ours runs; returns its URL and the release to call at the end.

    The release stops the server only when a pytest session started it (the marker holds that pid, so a stale
    marker never stops a newer server) and no other live session holds a lease; a server brought up by
    `pintext <server> up` is the caller's to stop.
    """
    from pintext.servers.lifecycle import ServerError

    try:
        result = server.start()
    except ServerError as error:
        unavailable(what, f"the managed {server.label} could not be started: {error}")
    lease_dir = server.run_dir / "test-leases"
    lease = lease_dir / str(os.getpid())
    lease_dir.mkdir(parents=True, exist_ok=True)
    lease.write_text(result.url + "\n")
    started_marker = server.run_dir / "started-by-tests"
    if result.started:
        started_marker.write_text(f"{result.pid}\n")

    def release() -> None:
        lease.unlink(missing_ok=True)
        with suppress(FileNotFoundError, ValueError):
            if int(started_marker.read_text()) == server.running_pid() and not _live_leases(lease_dir):
                server.stop()
                started_marker.unlink(missing_ok=True)

    return result.url, release


# ---------------------------------------------------------------------------------------------- nodes


def _node_from_url(engine: str, what: str, url: str) -> EngineNode:
    """The node at `url`, once it answers yellow/green; its version is asked from the node itself."""
    from pintext.servers import lifecycle, search_node

    url = url.rstrip("/")
    try:
        lifecycle.wait_until_ready(url, URL_NODE_WAIT_S, _healthy)
    except lifecycle.ServerError as error:
        unavailable(what, f"{url} does not answer: {error}")
    details = search_node.node_details(url)
    if "error" in details:
        unavailable(what, f"{url} does not say its version: {details['error']}")
    if engine == "opensearch":
        _require_knn(what, url, details["plugins"])
    return EngineNode(engine, details["version"], url)


def _healthy(url: str) -> dict | None:
    from pintext.servers.search_node import READY_STATUSES, cluster_health

    health = cluster_health(url, timeout=2.0)
    return health if health and health.get("status") in READY_STATUSES else None


def _require_knn(what: str, url: str, plugins: list[str]) -> None:
    if not any(plugin.startswith("opensearch-knn ") for plugin in plugins):
        unavailable(what, f"{url} has no opensearch-knn plugin (plugins: {plugins or 'none'})")


def _docker_answers() -> bool:
    """True when a Docker engine answers a ping (none does on the build machines)."""
    try:
        import docker

        docker.from_env(timeout=3).ping()
        return True
    except Exception:  # noqa: BLE001 - no socket, no permission, no engine: all mean "no Docker"
        return False


def _opensearch_from_docker(version: str) -> tuple[EngineNode, Callable[[], None]]:
    from testcontainers.community.opensearch import OpenSearchContainer

    container = OpenSearchContainer(f"opensearchproject/opensearch:{version}", security_enabled=False).start()
    config = container.get_config()
    return EngineNode("opensearch", version, f"http://{config['host']}:{config['port']}"), container.stop


def _engine_node(engine: str, version: str, url_variable: str) -> Iterator[EngineNode]:
    """The session's node of `engine` `version`: from `$url_variable`, Docker (OpenSearch), or managed."""
    what = f"{engine} {version}"
    url = os.environ.get(url_variable)
    if url:
        yield _node_from_url(engine, what, url)
        return
    if engine == "opensearch" and _docker_answers():
        node, release = _opensearch_from_docker(version)
    else:
        server = _managed_server(engine, version, what)
        managed_url, release = lease_managed_server(server, what)
        node = EngineNode(engine, version, managed_url)
    try:
        if engine == "opensearch":
            from pintext.servers.search_node import node_details

            _require_knn(what, node.url, node_details(node.url).get("plugins", []))
        yield node
    finally:
        release()


def _managed_server(engine: str, version: str, what: str):
    from pintext.servers.lifecycle import ServerError

    try:
        if engine == "opensearch":
            from pintext.servers import opensearch_node

            return opensearch_node.OpenSearchNode(opensearch_node.NodeSettings.from_env(version=version))
        from pintext.servers import elasticsearch_node

        elasticsearch_node.check_version(version)
        return elasticsearch_node.managed_node()
    except ServerError as error:
        unavailable(what, str(error))


def selected_opensearch_version(config: pytest.Config) -> str:
    from pintext.servers.opensearch_node import DEFAULT_VERSION

    return config.getoption(VERSION_OPTION) or os.environ.get(VERSION_ENV) or DEFAULT_VERSION


@pytest.fixture(scope="session")
def opensearch_node(request: pytest.FixtureRequest) -> Iterator[EngineNode]:
    """OpenSearch of the selected version (default 3.5.0, see --opensearch-version); $OPENSEARCH_URL overrides."""
    yield from _engine_node("opensearch", selected_opensearch_version(request.config), "OPENSEARCH_URL")


@pytest.fixture(scope="session")
def opensearch_219_node() -> Iterator[EngineNode]:
    """OpenSearch 2.19.1; $PINTEXT_TEST_OPENSEARCH_219_URL overrides."""
    yield from _engine_node("opensearch", "2.19.1", "PINTEXT_TEST_OPENSEARCH_219_URL")


@pytest.fixture(scope="session")
def elasticsearch_node() -> Iterator[EngineNode]:
    """Elasticsearch 8.15.0; $ELASTICSEARCH_URL overrides."""
    yield from _engine_node("elasticsearch", "8.15.0", "ELASTICSEARCH_URL")
