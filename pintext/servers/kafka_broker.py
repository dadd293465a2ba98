"""A managed local Apache Kafka broker (KRaft, one node that is both broker and controller).

Everything comes from Maven Central: the broker's jars (listed in `kafka-artifacts.txt` beside this module,
each checked against the `.sha1` Maven publishes) are downloaded once into `pintext_home()/downloads`, and a
broker folder `pintext_home()/kafka/` holds its config, data, logs and pid file. `up` formats the KRaft storage
the first time, starts the JVM detached and waits until the broker answers a metadata request; `down` stops
only the process whose pid it recorded (and only if that pid is still our broker).

Ports: PLAINTEXT on 127.0.0.1:$PINTEXT_KAFKA_PORT (default 9092), CONTROLLER on the next port up unless
$PINTEXT_KAFKA_CONTROLLER_PORT says otherwise. Java: the shared rule of `pintext.servers.java`
($PINTEXT_KAFKA_JAVA_HOME first); Kafka 4 needs Java 17 or newer. The lifecycle (lock, pid and state files,
readiness wait, failure report) is `pintext.servers.lifecycle`'s, like the search nodes'.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from pintext.paths import pintext_home
from pintext.servers import java, lifecycle, maven

# parse_java_version is re-exported: callers and tests use kafka_broker.parse_java_version.
from pintext.servers.java import parse_java_version  # noqa: F401
from pintext.servers.lifecycle import Launch, Progress, ServerError
from pintext.servers.maven import MAVEN_REPO, MavenArtifact
from pintext.servers.search_node import SERVICE_USER

KAFKA_VERSION = "4.1.1"
ARTIFACTS_RESOURCE = "kafka-artifacts.txt"
LOG4J_RESOURCE = "kafka-log4j2.properties"
DEFAULT_PORT = 9092
# Kafka's own default heap is 1 GB; a local node for tests and demos is happy with far less.
DEFAULT_HEAP = "384m"
MAIN_CLASS = "kafka.Kafka"
STORAGE_TOOL = "kafka.tools.StorageTool"
JAVA_RANGE = java.JavaRange(17)
START_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 30.0


class KafkaBrokerError(ServerError):
    """The managed broker could not be downloaded, started, reached or stopped; the message says why."""


# ----------------------------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class BrokerSettings:
    """Where the managed broker listens and keeps its state."""

    home: Path
    port: int = DEFAULT_PORT
    controller_port: int = DEFAULT_PORT + 1
    host: str = "127.0.0.1"
    heap: str = DEFAULT_HEAP
    node_id: int = 1
    default_partitions: int = 1

    @property
    def bootstrap(self) -> str:
        """The `host:port` clients connect to."""
        return f"{self.host}:{self.port}"

    @property
    def broker_dir(self) -> Path:
        return self.home / "kafka"

    @property
    def data_dir(self) -> Path:
        return self.broker_dir / "data"

    @property
    def logs_dir(self) -> Path:
        return self.broker_dir / "logs"

    @property
    def config_path(self) -> Path:
        return self.broker_dir / "server.properties"

    @property
    def log4j_path(self) -> Path:
        return self.broker_dir / "log4j2.properties"

    @property
    def pid_path(self) -> Path:
        return self.broker_dir / "kafka.pid"

    @property
    def console_path(self) -> Path:
        return self.logs_dir / "console.log"

    @property
    def libs_dir(self) -> Path:
        return self.home / "downloads" / f"kafka-{KAFKA_VERSION}"


def settings_from_env(env: dict[str, str] | None = None) -> BrokerSettings:
    """Broker settings from PINTEXT_HOME, PINTEXT_KAFKA_PORT, PINTEXT_KAFKA_CONTROLLER_PORT, PINTEXT_KAFKA_HEAP."""
    env = dict(os.environ if env is None else env)
    port = _port_from(env, "PINTEXT_KAFKA_PORT", DEFAULT_PORT)
    controller_port = _port_from(env, "PINTEXT_KAFKA_CONTROLLER_PORT", port + 1)
    if controller_port == port:
        raise KafkaBrokerError(f"PINTEXT_KAFKA_CONTROLLER_PORT must differ from PINTEXT_KAFKA_PORT ({port})")
    home = Path(env["PINTEXT_HOME"]).expanduser().resolve() if env.get("PINTEXT_HOME") else pintext_home()
    return BrokerSettings(
        home=home, port=port, controller_port=controller_port, heap=env.get("PINTEXT_KAFKA_HEAP", DEFAULT_HEAP)
    )


def _port_from(env: dict[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise KafkaBrokerError(f"{name} must be a TCP port number, got {raw!r}")
    return int(raw)


def render_server_properties(settings: BrokerSettings) -> str:
    """The broker's `server.properties`: one KRaft node acting as broker and controller, on loopback only."""
    host = settings.host
    lines = {
        "process.roles": "broker,controller",
        "node.id": str(settings.node_id),
        "controller.quorum.voters": f"{settings.node_id}@{host}:{settings.controller_port}",
        "listeners": f"PLAINTEXT://{host}:{settings.port},CONTROLLER://{host}:{settings.controller_port}",
        "advertised.listeners": f"PLAINTEXT://{host}:{settings.port}",
        "inter.broker.listener.name": "PLAINTEXT",
        "controller.listener.names": "CONTROLLER",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "log.dirs": str(settings.data_dir),
        "num.partitions": str(settings.default_partitions),
        # One node: every internal topic must make do with one replica.
        "offsets.topic.replication.factor": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        # A consumer group of one should not wait the default 3 s for more members before it gets partitions.
        "group.initial.rebalance.delay.ms": "0",
        "auto.create.topics.enable": "true",
        # Keep the disk use of a development node small.
        "log.retention.hours": "168",
        "log.segment.bytes": str(64 * 1024 * 1024),
        "offsets.topic.num.partitions": "5",
    }
    header = "# Written by pintext.servers.kafka_broker; edits are overwritten on the next `pintext kafka up`.\n"
    return header + "".join(f"{key}={value}\n" for key, value in lines.items())


# ----------------------------------------------------------------------------------------------- download


def parse_artifact_list(text: str) -> list[MavenArtifact]:
    """`group:artifact:version` lines (comments with # and blank lines ignored)."""
    artifacts = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split(":")
        if len(parts) != 3 or not all(parts):
            raise KafkaBrokerError(f"{ARTIFACTS_RESOURCE}:{number}: expected group:artifact:version, got {line!r}")
        artifacts.append(MavenArtifact(*parts))
    return artifacts


def kafka_artifacts() -> list[MavenArtifact]:
    """The broker's runtime classpath, from the resource file shipped with this module."""
    text = resources.files(__package__).joinpath(ARTIFACTS_RESOURCE).read_text(encoding="utf-8")
    return parse_artifact_list(text)


def download_artifact(artifact: MavenArtifact, target_dir: Path, repo: str = MAVEN_REPO) -> Path:
    """Fetch one jar unless it is already there, verified against Maven's published checksum; returns its path."""
    try:
        return maven.download_artifact(artifact, target_dir, repo)
    except maven.MavenDownloadError as error:
        raise KafkaBrokerError(str(error)) from error


def ensure_downloaded(
    settings: BrokerSettings,
    on_progress: Callable[[MavenArtifact], None] | None = None,
    repo: str | None = None,
) -> list[Path]:
    """Make sure every jar of the broker is in the download cache; returns the classpath entries."""
    repo = repo or os.environ.get("PINTEXT_MAVEN_REPO", MAVEN_REPO)
    settings.libs_dir.mkdir(parents=True, exist_ok=True)
    artifacts = kafka_artifacts()

    def fetch_one(artifact: MavenArtifact) -> Path:
        path = download_artifact(artifact, settings.libs_dir, repo)
        if on_progress:
            on_progress(artifact)
        return path

    # Downloads are network-bound: a few at a time cut the first start from a minute to seconds.
    with ThreadPoolExecutor(max_workers=6) as pool:
        return list(pool.map(fetch_one, artifacts))


def make_readable(paths: Iterable[Path]) -> None:
    """Let every user read the jars (public artifacts, downloaded to private 0600 temporary files): the broker may
    run as the service user, and a JVM skips an unreadable jar of a `dir/*` classpath without a word."""
    for path in paths:
        mode = path.stat().st_mode
        if mode & 0o444 != 0o444:
            path.chmod(mode | 0o444)


def missing_artifacts(settings: BrokerSettings) -> list[MavenArtifact]:
    """The jars not yet in the download cache."""
    return [a for a in kafka_artifacts() if not maven.is_downloaded(a, settings.libs_dir)]


# ----------------------------------------------------------------------------------------------- java


def find_java(env: dict[str, str] | None = None) -> Path:
    """The `java` executable the broker runs on (the shared rule; Kafka 4 needs 17+)."""
    try:
        return java.choose_java("kafka", f"Kafka {KAFKA_VERSION}", JAVA_RANGE, env).executable
    except java.JavaNotFoundError as error:
        raise KafkaBrokerError(str(error)) from None


def java_command(java: Path, settings: BrokerSettings, main_class: str, *args: str) -> list[str]:
    """The JVM command line that runs one of Kafka's main classes with the downloaded classpath."""
    return [
        str(java),
        f"-Xms{settings.heap}",
        f"-Xmx{settings.heap}",
        "-XX:+UseG1GC",
        "-XX:MaxGCPauseMillis=20",
        "-Djava.awt.headless=true",
        f"-Dkafka.logs.dir={settings.logs_dir}",
        f"-Dlog4j2.configurationFile={settings.log4j_path}",
        "-cp",
        str(settings.libs_dir / "*"),
        main_class,
        *args,
    ]


# ----------------------------------------------------------------------------------------------- lifecycle


def write_config(settings: BrokerSettings) -> None:
    """(Re)write server.properties and the log4j2 config for the current settings."""
    settings.broker_dir.mkdir(parents=True, exist_ok=True)
    settings.logs_dir.mkdir(parents=True, exist_ok=True)
    settings.config_path.write_text(render_server_properties(settings), encoding="utf-8")
    log4j = resources.files(__package__).joinpath(LOG4J_RESOURCE).read_text(encoding="utf-8")
    settings.log4j_path.write_text(log4j, encoding="utf-8")


def is_formatted(settings: BrokerSettings) -> bool:
    """KRaft storage is formatted once it holds meta.properties."""
    return (settings.data_dir / "meta.properties").exists()


def format_storage(settings: BrokerSettings, java: Path) -> str:
    """Give the storage a fresh cluster id with Kafka's StorageTool and format it; returns the cluster id."""
    cluster_id = _run_tool(java, settings, "random-uuid").strip().splitlines()[-1].strip()
    _run_tool(java, settings, "format", "-t", cluster_id, "-c", str(settings.config_path))
    return cluster_id


def _run_tool(java: Path, settings: BrokerSettings, *args: str) -> str:
    command = java_command(java, settings, STORAGE_TOOL, *args)
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        raise KafkaBrokerError(f"StorageTool {args[0]} failed ({result.returncode}): {result.stderr or result.stdout}")
    return result.stdout


def metadata_topics(bootstrap: str, timeout: float = 3.0) -> list[str]:
    """Ask the broker for its metadata (a real request); raises KafkaException if it does not answer."""
    from confluent_kafka.admin import AdminClient

    # log_level 0: a broker that is still starting refuses connections, and librdkafka would print each refusal.
    admin = AdminClient({"bootstrap.servers": bootstrap, "socket.connection.setup.timeout.ms": 2000, "log_level": 0})
    metadata = admin.list_topics(timeout=timeout)
    return sorted(metadata.topics)


class KafkaBroker(lifecycle.ManagedServer):
    """The managed broker: prepared (downloaded, configured, formatted) and run by the shared lifecycle."""

    key = "kafka"
    error = KafkaBrokerError
    # Like the search nodes: when we are root the broker runs as the `pintext` system user, owning its folder.
    service_user = SERVICE_USER
    start_timeout_s = START_TIMEOUT_S
    stop_timeout_s = STOP_TIMEOUT_S

    settings: BrokerSettings

    @property
    def label(self) -> str:
        return f"Kafka {KAFKA_VERSION}"

    @property
    def url(self) -> str:
        return self.settings.bootstrap

    @property
    def run_dir(self) -> Path:
        return self.settings.broker_dir

    @property
    def pid_file(self) -> Path:
        return self.settings.pid_path

    @property
    def state_file(self) -> Path:
        return self.settings.broker_dir / "broker.json"

    @property
    def log_file(self) -> Path:
        return self.settings.logs_dir / "server.log"

    @property
    def owned_dir(self) -> Path:
        """Config, data and logs: the service user writes them (the jars in downloads/ only need reading)."""
        return self.settings.broker_dir

    @property
    def shared_dirs(self) -> list[Path]:
        return [self.settings.libs_dir]

    @property
    def console_file(self) -> Path:
        return self.settings.console_path

    @property
    def port_hint(self) -> str:
        return "set PINTEXT_KAFKA_PORT (and PINTEXT_KAFKA_CONTROLLER_PORT) to free ports"

    def identity_args(self) -> tuple[str, ...]:
        return MAIN_CLASS, str(self.settings.config_path)

    def ports(self) -> list[int]:
        return [self.settings.port, self.settings.controller_port]

    def state_extra(self) -> dict:
        return {"bootstrap": self.settings.bootstrap, "kafka": KAFKA_VERSION}

    def prepare(self, progress: Progress) -> Launch:
        executable = find_java()
        jars = ensure_downloaded(self.settings,
                                 on_progress=lambda artifact: progress(f"downloaded {artifact.file_name}"))
        make_readable(jars)
        write_config(self.settings)
        if not is_formatted(self.settings):
            progress(f"formatting the KRaft storage in {self.settings.data_dir}")
            format_storage(self.settings, executable)
        command = java_command(executable, self.settings, MAIN_CLASS, str(self.settings.config_path))
        return Launch(command, self.settings.broker_dir, dict(os.environ))

    def probe(self, url: str) -> dict:
        """A real metadata request; raises (KafkaException) while the broker does not answer."""
        return {"topics": metadata_topics(url, timeout=3.0)}


def managed_bootstrap(settings: BrokerSettings | None = None) -> str:
    """Where clients find the managed broker: the address the running one was started on (broker.json), else the
    one `up` would start it on (`127.0.0.1:$PINTEXT_KAFKA_PORT`)."""
    broker = KafkaBroker(settings or settings_from_env())
    return broker.address() if broker.running_pid() is not None else broker.url


def is_our_broker(pid: int, settings: BrokerSettings) -> bool:
    """True if `pid` is alive and is a Kafka JVM started with this broker folder's config (not a reused pid)."""
    return KafkaBroker(settings).is_ours(pid)


def wait_until_ready(
    bootstrap: str,
    deadline_s: float,
    still_running: Callable[[], bool] = lambda: True,
    probe: Callable[[str], Iterable[str]] = metadata_topics,
) -> float:
    """Poll the broker with metadata requests until one succeeds; returns seconds waited."""
    _answer, waited = lifecycle.wait_until_ready(bootstrap, deadline_s, probe, still_running, KafkaBrokerError)
    return waited


def _refuse_if_port_taken(settings: BrokerSettings) -> None:
    KafkaBroker(settings).refuse_taken_ports()


def down(settings: BrokerSettings | None = None, grace_s: float = STOP_TIMEOUT_S) -> bool:
    """Stop the broker this folder started; returns False if none was running. Other processes are never touched."""
    return KafkaBroker(settings or settings_from_env()).stop(grace_s) is not None
