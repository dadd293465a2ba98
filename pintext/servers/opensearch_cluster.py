"""A local OpenSearch cluster of N nodes (`pintext opensearch up --nodes 3`), for replicas and for fault tests.

Every member runs from one assembled distribution (the same assembly as the single managed node, but its own copy
under `pintext_home()/opensearch/cluster/<version>/`, so the two never share data, pid or lock files), each with
its own config folder (`OPENSEARCH_PATH_CONF`), data, logs, pid, state and lock under
`cluster/<version>/instances/<name>/node-<i>/` and `cluster/run/<version>/<name>/node-<i>/`. A member's process is
told apart from its siblings by `-Dopensearch.path.conf=<its config folder>` on its command line, so the pid
check never signals a sibling (or the single node).

Ports: HTTP `$PINTEXT_OPENSEARCH_PORT + 20 + i` (or `--port + i`), transport HTTP + 1000 (never 9300-9400, where
the single nodes' defaults live). Members find each other through `discovery.seed_hosts` and bootstrap with
`cluster.initial_cluster_manager_nodes` (one member: `discovery.type: single-node`). `url` is every member's URL,
comma-separated: the form `--url` takes, so a client fails over to the survivors when one member dies.

Replicas: PinText gives a new index `min(1, data nodes - 1)` replicas unless `--replicas` says otherwise, so on
this cluster every shard has one copy on another node, and the single node stays green (docs/opensearch.md).
"""

from __future__ import annotations

import os
import shutil
import signal
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from pintext.servers import process, search_node
from pintext.servers.lifecycle import Launch, Progress, StartResult, no_progress, wait_until_ready
from pintext.servers.opensearch_node import (
    DEFAULT_PORT,
    DEFAULT_VERSION,
    NodeSettings,
    OpenSearchNode,
    OpenSearchNodeError,
    version_spec,
)

CLUSTER_NAME = "pintext-cluster"
DEFAULT_CLUSTER_HEAP = "256m"
DEFAULT_INSTANCE = "cluster"  # the CLI's cluster; tests make their own instances beside it
HTTP_PORT_OFFSET = 20  # first member's HTTP port = $PINTEXT_OPENSEARCH_PORT + this
TRANSPORT_PORT_OFFSET = 1000  # a member's transport port = its HTTP port + this
CONFIG_FILE = "opensearch.yml"


@dataclass(frozen=True)
class MemberSettings(NodeSettings):
    """One member of a local cluster: its place in the cluster, and every member's transport port."""

    instance: str = DEFAULT_INSTANCE
    member: int = 0
    http_ports: tuple[int, ...] = ()
    # Extra node settings for every member (tests: `thread_pool.write.queue_size: 1` for a rejection storm).
    extra: Mapping[str, str] = field(default_factory=dict)

    @property
    def transport_port(self) -> int:
        return self.port + TRANSPORT_PORT_OFFSET

    @property
    def node_name(self) -> str:
        return f"{self.instance}-node-{self.member}"

    def node_names(self) -> list[str]:
        return [f"{self.instance}-node-{i}" for i in range(len(self.http_ports))]

    def seed_hosts(self) -> list[str]:
        return [f"{self.host}:{port + TRANSPORT_PORT_OFFSET}" for port in self.http_ports]


class ClusterMember(OpenSearchNode):
    """A managed OpenSearch node that is one member of a local cluster (see the module docstring)."""

    settings: MemberSettings

    @property
    def label(self) -> str:
        return f"OpenSearch {self.settings.version} {self.settings.node_name}"

    @property
    def base_dir(self) -> Path:
        return self.settings.home / "opensearch" / "cluster"

    @property
    def member_dir(self) -> Path:
        return self.node_dir / "instances" / self.settings.instance / f"node-{self.settings.member}"

    @property
    def run_dir(self) -> Path:
        return self.base_dir / "run" / self.settings.version / self.settings.instance / f"node-{self.settings.member}"

    @property
    def config_dir(self) -> Path:
        return self.member_dir / "config"

    @property
    def data_dir(self) -> Path:
        return self.member_dir / "data"

    @property
    def logs_dir(self) -> Path:
        return self.member_dir / "logs"

    @property
    def log_file(self) -> Path:
        return self.logs_dir / f"{CLUSTER_NAME}.log"

    @property
    def owned_dir(self) -> Path:
        # Only the member's own folder goes to the service user; the shared distribution is made readable once.
        return self.member_dir

    def ports(self) -> list[int]:
        return [self.settings.port, self.settings.transport_port]

    def identity_args(self) -> tuple[str, ...]:
        return (*super().identity_args(), f"-Dopensearch.path.conf={self.config_dir}")

    def running_pid(self) -> int | None:
        # No legacy run files to adopt (the single node's `_adopt_legacy_run_files`): the plain lifecycle check.
        return super(OpenSearchNode, self).running_pid()

    def state_extra(self) -> dict:
        return {**super().state_extra(), "member": self.settings.member, "config_dir": str(self.config_dir)}

    def render_config(self) -> str:
        settings = self.settings
        lines: dict[str, str | list[str]] = {
            "cluster.name": CLUSTER_NAME, "node.name": settings.node_name, "network.host": settings.host,
            "http.port": str(settings.port), "transport.port": str(settings.transport_port),
            "path.data": str(self.data_dir), "path.logs": str(self.logs_dir),
            # Shared build disks are often nearly full; watermarks would make every new index read-only.
            "cluster.routing.allocation.disk.threshold_enabled": "false", "bootstrap.memory_lock": "false",
        }
        if len(settings.http_ports) == 1:
            lines["discovery.type"] = "single-node"
        else:
            lines["discovery.seed_hosts"] = settings.seed_hosts()
            lines["cluster.initial_cluster_manager_nodes"] = settings.node_names()
        lines.update(settings.extra)
        header = "# Written by PinText on every start of this cluster member; edits here are overwritten.\n"
        return header + "".join(f"{key}: {yaml_value(value)}\n" for key, value in lines.items())

    def prepare(self, progress: Progress) -> Launch:
        chosen = self.choose_java()
        env = self.java_env(chosen.home)
        env[self.java_opts_variable] = search_node.heap_java_opts(self.settings.heap, self.error)
        env["OPENSEARCH_PATH_CONF"] = str(self.config_dir)
        self.assemble(chosen.home, progress)
        self._copy_distribution_config()
        (self.config_dir / CONFIG_FILE).write_text(self.render_config())
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        progress(f"{self.label} runs on Java {chosen.major} from {chosen.home} ({chosen.source})")
        return Launch([str(self.node_dir / "bin" / self.launcher)], self.member_dir, env)

    def _copy_distribution_config(self) -> None:
        """The distribution's config folder (jvm.options, log4j2, plugin configs) once per member: each member
        writes its own keystore and opensearch.yml there."""
        if not self.config_dir.is_dir():
            shutil.copytree(self.node_dir / "config", self.config_dir)
            options = self.config_dir / "jvm.options"
            options.write_text(member_jvm_options(options.read_text(), self.data_dir, self.logs_dir))

    def signal(self, signum: int) -> int:
        """Send `signum` to this member's process (tests: SIGKILL, SIGSTOP, SIGCONT); returns its pid."""
        pid = self.running_pid()
        if pid is None:
            raise self.error(f"{self.label} is not running")
        os.kill(pid, signum)
        return pid


def member_jvm_options(text: str, data_dir: Path, logs_dir: Path) -> str:
    """The distribution's jvm.options with its gc log, error file and heap dump paths made absolute, in this
    member's folders: the launcher runs from the shared distribution, where `logs/` and `data/` are nobody's."""
    return (text.replace("HeapDumpPath=data", f"HeapDumpPath={data_dir}")
                .replace("=logs/", f"={logs_dir}/").replace("Xloggc:logs/", f"Xloggc:{logs_dir}/"))


def yaml_value(value: str | list[str]) -> str:
    """A YAML scalar or flow list (JSON is valid YAML)."""
    import json

    if isinstance(value, list):
        return json.dumps(value)
    return json.dumps(value) if " " in value else value


class OpenSearchCluster:
    """N `ClusterMember`s started, watched and stopped together, with the surface the CLI uses of a
    `ManagedServer` (`label`, `url`, `start`, `stop`, `status`, `log_file`) plus per-member faults for tests."""

    key = "opensearch"
    error = OpenSearchNodeError

    def __init__(self, members: list[ClusterMember]) -> None:
        if not members:
            raise OpenSearchNodeError("a cluster needs at least one node")
        self.members = members

    @classmethod
    def from_env(cls, nodes: int, version: str | None = None, port: int | None = None, heap: str | None = None,
                 instance: str = DEFAULT_INSTANCE, extra: Mapping[str, str] | None = None) -> "OpenSearchCluster":
        """`nodes` members of `version` (default $PINTEXT_OPENSEARCH_VERSION or 3.5.0) on HTTP ports `port + i`
        (default $PINTEXT_OPENSEARCH_PORT + 20 + i), heap `heap` each (default $PINTEXT_OPENSEARCH_CLUSTER_HEAP,
        else 256m)."""
        if nodes < 1:
            raise OpenSearchNodeError(f"a cluster needs at least one node, not {nodes}")
        version = version or os.environ.get("PINTEXT_OPENSEARCH_VERSION") or DEFAULT_VERSION
        version_spec(version)
        if port is None:
            port = search_node.env_int("PINTEXT_OPENSEARCH_PORT", DEFAULT_PORT, OpenSearchNodeError) + HTTP_PORT_OFFSET
        heap = heap or os.environ.get("PINTEXT_OPENSEARCH_CLUSTER_HEAP") or DEFAULT_CLUSTER_HEAP
        search_node.heap_java_opts(heap, OpenSearchNodeError)
        if port + nodes - 1 + TRANSPORT_PORT_OFFSET > 65535:
            raise OpenSearchNodeError(f"ports {port}..{port + nodes - 1} (+{TRANSPORT_PORT_OFFSET} for transport) "
                                      "do not fit below 65536")
        base = NodeSettings.from_env(port=port, heap=heap, version=version)
        http_ports = tuple(port + i for i in range(nodes))
        members = [ClusterMember(MemberSettings(home=base.home, version=version, port=http_ports[i], heap=heap,
                                                instance=instance, member=i, http_ports=http_ports,
                                                extra=dict(extra or {})))
                   for i in range(nodes)]
        return cls(members)

    # ---- what the CLI reads ------------------------------------------------------------------------------

    @property
    def label(self) -> str:
        first = self.members[0].settings
        return f"OpenSearch {first.version} cluster {first.instance!r} of {len(self.members)} nodes"

    @property
    def urls(self) -> list[str]:
        return [member.url for member in self.members]

    @property
    def url(self) -> str:
        """Every member's URL, comma-separated: what `--url` takes."""
        return ",".join(self.urls)

    def start_notes(self) -> list[str]:
        """Lines `up` prints after a start or a reuse: each member's URL and log."""
        return [f"{member.settings.node_name}: {member.url} (log {member.log_file})" for member in self.members]

    @property
    def log_file(self) -> Path:
        """The first member's log (each member's is in `status()['nodes']`)."""
        return self.members[0].log_file

    @property
    def run_dir(self) -> Path:
        return self.members[0].run_dir.parent

    @property
    def instance_dir(self) -> Path:
        return self.members[0].member_dir.parent

    # ---- the lifecycle ---------------------------------------------------------------------------------

    def start(self, timeout_s: float | None = None, progress: Progress = no_progress) -> StartResult:
        """Start every member that is not running (in parallel: they need each other to elect a cluster
        manager) and wait until the cluster has all its nodes and is yellow or green."""
        timeout_s = self.members[0].start_timeout_s if timeout_s is None else timeout_s
        began = time.monotonic()
        self._assemble_once(progress)
        with ThreadPoolExecutor(max_workers=len(self.members), thread_name_prefix="pintext-member") as pool:
            results = list(pool.map(lambda member: member.start(timeout_s, progress), self.members))
        remaining = max(1.0, timeout_s - (time.monotonic() - began))
        health = self.wait_for_nodes(len(self.members), remaining)
        return StartResult(self.url, results[0].pid, any(result.started for result in results),
                           time.monotonic() - began, health)

    def _assemble_once(self, progress: Progress) -> None:
        """Assemble the shared distribution before the members start in parallel (one of them would race the
        others into the staging folder otherwise), under the first member's start lock."""
        first = self.members[0]
        if not first.is_assembled():
            with process.exclusive_lock(first.lock_file):
                if not first.is_assembled():
                    first.assemble(first.choose_java().home, progress)
        # The staging folder it was renamed from is private (0700): the service user must read the shared
        # distribution (its lib/, agent/, modules/), while each member's own folder becomes the user's.
        first.node_dir.chmod(0o755)

    def wait_for_nodes(self, count: int, timeout_s: float) -> dict:
        """Cluster health once `count` nodes have joined and the status is yellow or green."""
        def joined(_url: str) -> dict | None:
            health = self.health()
            ready = health and health.get("number_of_nodes") == count and health.get("status") in ("yellow", "green")
            return health if ready else None

        health, _ = wait_until_ready(self.url, timeout_s, joined, error=self.error)
        return health

    def health(self, wait_for: str = "") -> dict | None:
        """`/_cluster/health` from the first member that answers (None when none does)."""
        for member in self.members:
            if member.running_pid() is None:
                continue
            answer = search_node.cluster_health(member.url + wait_for, timeout=2.0)
            if answer is not None:
                return answer
        return None

    def stop(self, timeout_s: float | None = None) -> str | None:
        """Stop every running member (SIGTERM, then SIGKILL after `timeout_s`); None when none of ours runs."""
        with ThreadPoolExecutor(max_workers=len(self.members), thread_name_prefix="pintext-member") as pool:
            outcomes = list(pool.map(lambda member: member.stop(timeout_s), self.members))
        done = [f"{member.settings.node_name} {outcome}" for member, outcome in zip(self.members, outcomes)
                if outcome is not None]
        return ", ".join(done) if done else None

    def status(self) -> dict:
        """`running` (every member), `url`, `pid` (one per member), `health`, `nodes` (each member's status),
        `problems` (a member down, a missing node, a red cluster, no k-NN)."""
        nodes = [member.status() for member in self.members]
        running = [node for node in nodes if node["running"]]
        info: dict = {"server": self.label, "url": self.url, "pid": [node["pid"] for node in nodes],
                      "running": bool(running), "log_file": str(self.log_file), "nodes": nodes}
        if not running:
            return info
        info["health"] = self.health()
        for key in ("version", "plugins", "modules"):
            if key in running[0]:
                info[key] = running[0][key]
        info["problems"] = self.problems(nodes, info["health"])
        return info

    def problems(self, nodes: list[dict], health: dict | None) -> list[str]:
        found = [f"{node['server']} is not running" for node in nodes if not node["running"]]
        for node in nodes:
            found += [f"{node['server']}: {problem}" for problem in node.get("problems") or []]
        if health is None:
            found.append("no member answers /_cluster/health")
        elif health.get("number_of_nodes") != len(self.members):
            found.append(f"{health.get('number_of_nodes')} of {len(self.members)} nodes in the cluster")
        elif health.get("status") == "red":
            found.append("cluster health is red")
        return found

    # ---- faults, for tests -----------------------------------------------------------------------------

    def kill(self, member: int) -> int:
        """SIGKILL one member (no clean shutdown: what a crash or the OOM killer does); returns its pid."""
        target = self.members[member]
        pid = target.signal(signal.SIGKILL)
        deadline = time.monotonic() + process.KILL_WAIT_S
        while process.is_alive(pid) and time.monotonic() < deadline:
            time.sleep(process.POLL_S)
        target.forget()
        return pid

    def pause(self, member: int) -> int:
        """SIGSTOP one member: it keeps its sockets but answers nothing (a stalled JVM, a frozen VM)."""
        return self.members[member].signal(signal.SIGSTOP)

    def resume(self, member: int) -> int:
        return self.members[member].signal(signal.SIGCONT)

    def restart(self, member: int, timeout_s: float | None = None) -> StartResult:
        """Start a stopped or killed member again and wait until the cluster has every node back."""
        began = time.monotonic()
        result = self.members[member].start(timeout_s)
        remaining = max(1.0, (timeout_s or self.members[member].start_timeout_s) - (time.monotonic() - began))
        self.wait_for_nodes(len(self.members), remaining)
        return result

    def wipe(self) -> None:
        """Delete this instance's data, logs and configs (every member must be stopped): a fresh cluster."""
        if any(member.running_pid() is not None for member in self.members):
            raise self.error(f"{self.label} is running: stop it before wiping its data")
        shutil.rmtree(self.instance_dir, ignore_errors=True)
