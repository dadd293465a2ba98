"""Session fixtures for a live OpenSearch node with the k-NN plugin.

Where the node comes from, first match wins:

1. `$OPENSEARCH_URL`: a node someone else runs (it must answer; it is never stopped here);
2. a Docker engine that answers: a throwaway `opensearchproject/opensearch` container via testcontainers;
3. the managed local node (`pintext opensearch up`): reused when it already runs (and then left running),
   otherwise started for the session and stopped afterwards — unless another pytest session still uses it.

With CI=true a node that cannot be had fails the run; elsewhere the tests that need it are skipped.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import suppress
from pathlib import Path

import pytest

DOCKER_IMAGE = "opensearchproject/opensearch:2.19.1"


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def _unavailable(reason: str) -> None:
    """Fail under CI, skip elsewhere."""
    if _in_ci():
        pytest.fail(f"OpenSearch is required when CI=true: {reason}", pytrace=False)
    pytest.skip(f"no OpenSearch: {reason}")


def _require_knn(client) -> None:
    plugins = {row["component"] for row in client.cat.plugins(format="json")}
    if "opensearch-knn" not in plugins:
        _unavailable(f"the node has no opensearch-knn plugin (plugins: {sorted(plugins) or 'none'})")


def _docker_answers() -> bool:
    """True when a Docker engine answers a ping (none does on the build machines)."""
    try:
        import docker

        docker.from_env(timeout=3).ping()
        return True
    except Exception:  # noqa: BLE001 - no socket, no permission, no engine: all mean "no Docker"
        return False


def _from_url(url: str):
    from pintext.ingest.opensearch_client import connect

    client = connect(url)
    try:
        client.cluster.health(wait_for_status="yellow")  # the server waits up to 30 s
    except Exception as error:  # noqa: BLE001 - any transport failure means the node cannot be used
        _unavailable(f"OPENSEARCH_URL={url} does not answer: {error}")
    return client, lambda: None


def _from_docker():
    from testcontainers.community.opensearch import OpenSearchContainer

    from pintext.ingest.opensearch_client import connect

    container = OpenSearchContainer(DOCKER_IMAGE, security_enabled=False).start()
    config = container.get_config()
    return connect(f"http://{config['host']}:{config['port']}"), container.stop


def _lease_path(settings) -> Path:
    return settings.base_dir / "test-leases" / str(os.getpid())


def _live_leases(settings) -> list[Path]:
    """Leases of pytest sessions whose process still exists (a crashed session's lease is ignored)."""
    live = []
    for lease in (settings.base_dir / "test-leases").glob("*"):
        with suppress(ValueError):
            if Path(f"/proc/{int(lease.name)}").exists():
                live.append(lease)
    return live


def _from_managed_node():
    from pintext.ingest.opensearch_client import connect
    from pintext.servers import opensearch_node as node

    settings = node.NodeSettings.from_env()
    try:
        result = node.start(settings)
    except (node.OpenSearchNodeError, TimeoutError) as error:
        _unavailable(f"the managed node could not be started: {error}")
    lease = _lease_path(settings)
    lease.parent.mkdir(parents=True, exist_ok=True)
    lease.write_text(result.url + "\n")
    started_marker = settings.base_dir / "started-by-tests"
    if result.started:
        started_marker.write_text(str(result.pid) + "\n")

    def release() -> None:
        lease.unlink(missing_ok=True)
        # Stop only a node some pytest session started, and only when no other session still uses it;
        # a node brought up by `pintext opensearch up` is the caller's to stop.
        # The marker holds the pid a test session started, so a stale marker never stops a newer node.
        with suppress(FileNotFoundError, ValueError):
            started_pid = int(started_marker.read_text())
            if started_pid == node.running_pid(settings) and not _live_leases(settings):
                node.stop(settings)
                started_marker.unlink(missing_ok=True)

    return connect(result.url), release


def _acquire() -> tuple[object, Callable[[], None]]:
    url = os.environ.get("OPENSEARCH_URL")
    if url:
        return _from_url(url)
    if _docker_answers():
        return _from_docker()
    return _from_managed_node()


@pytest.fixture(scope="session")
def opensearch() -> Iterator[object]:
    """An opensearch-py client connected to a live node that has the k-NN plugin."""
    client, release = _acquire()
    try:
        _require_knn(client)
        yield client
    finally:
        release()


@pytest.fixture(scope="session")
def opensearch_url(opensearch) -> str:
    """The URL of the session's node, for commands run as subprocesses."""
    host = opensearch.transport.hosts[0]
    scheme = "https" if host.get("use_ssl") or host.get("scheme") == "https" else "http"
    return f"{scheme}://{host['host']}:{host['port']}"


@pytest.fixture
def opensearch_index_name(opensearch) -> Iterator[str]:
    """A fresh index name; whatever index gets that name is deleted after the test."""
    name = f"pintext-test-{uuid.uuid4().hex[:12]}"
    yield name
    opensearch.indices.delete(index=name, ignore_unavailable=True)
