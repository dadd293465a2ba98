"""What the managed OpenSearch and Elasticsearch nodes share: a distribution zip from Maven Central assembled once
under `pintext_home()/<engine>/<version>/`, a loopback single-node config, a fixed heap, the `pintext` service user
(both refuse root), and health on `/_cluster/health`. Only the standard library is used.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from abc import abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from pintext.servers import java, maven
from pintext.servers.lifecycle import Launch, ManagedServer, Progress
from pintext.servers.maven import MAVEN_REPO, MavenArtifact

CLUSTER_NAME = "pintext"
NODE_NAME = "pintext-local"
SERVICE_USER = "pintext"
DEFAULT_HEAP = "512m"
ASSEMBLED_MARKER = ".pintext-assembled.json"
READY_STATUSES = ("yellow", "green")


@dataclass(frozen=True)
class NodeSettings:
    """Where a managed search node lives and how it listens."""

    home: Path
    version: str
    port: int
    heap: str = DEFAULT_HEAP
    host: str = "127.0.0.1"


def env_int(name: str, default: int, error: type[Exception]) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise error(f"environment variable {name}={raw!r} is not a TCP port number")
    return int(raw)


def heap_java_opts(heap: str, error: type[Exception]) -> str:
    """JVM options for a fixed heap (min = max avoids resizing pauses)."""
    if not heap or not heap[:-1].isdigit() or heap[-1].lower() not in "kmg":
        raise error(f"heap size {heap!r} is not like 512m or 1g")
    return f"-Xms{heap} -Xmx{heap}"


def http_json(url: str, timeout: float = 5.0) -> dict | list:
    """GET a JSON document from the node."""
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read().decode("utf-8"))


def cluster_health(url: str, timeout: float = 5.0) -> dict | None:
    """`/_cluster/health`, or None when nothing answers there."""
    try:
        health = http_json(f"{url}/_cluster/health", timeout)
    except (urllib.error.URLError, OSError, ValueError):
        return None
    return health if isinstance(health, dict) else None


def extract_zip_stripping_top(archive: Path, destination: Path) -> None:
    """Unzip `archive` into `destination`, dropping its single top folder and keeping the Unix modes
    (zipfile drops them, and bin/ scripts must stay executable)."""
    with zipfile.ZipFile(archive) as bundle:
        for member in bundle.infolist():
            parts = Path(member.filename).parts[1:]
            if not parts:
                continue
            target = destination.joinpath(*parts)
            if member.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with bundle.open(member) as source, target.open("wb") as out:
                shutil.copyfileobj(source, out)
            mode = (member.external_attr >> 16) & 0o777
            if mode:
                target.chmod(mode)


class SearchNode(ManagedServer):
    """A managed OpenSearch or Elasticsearch node; subclasses name the engine's files, variables and extras."""

    service_user = SERVICE_USER
    engine: ClassVar[str]  # "OpenSearch"
    launcher: ClassVar[str]  # bin/<launcher>
    config_name: ClassVar[str]  # config/<config_name>
    java_home_variables: ClassVar[tuple[str, ...]]  # what the launcher reads for its JDK
    java_opts_variable: ClassVar[str]
    main_class: ClassVar[str]
    path_home_property: ClassVar[str]  # -D<this>=<node_dir> is on our node's command line
    # Bumped when the assembled layout changes, so an older node folder is rebuilt (its data and logs are kept).
    assembly_layout: ClassVar[int] = 1

    settings: NodeSettings

    # --------------------------------------------------------------------------------- what subclasses give

    @abstractmethod
    def java_range(self) -> java.JavaRange:
        """The Java major versions this engine version runs on."""

    @abstractmethod
    def distribution_artifact(self) -> MavenArtifact:
        """The server zip on Maven Central."""

    def pinned_checksum(self, artifact: MavenArtifact) -> maven.Checksum | None:
        """A digest PinText pins for an artifact Maven Central serves without a checksum file."""
        return None

    def complete_assembly(self, staging: Path, java_home: Path, progress: Progress) -> dict:
        """Add what the distribution lacks (modules, plugins) into `staging`; returns manifest fields."""
        return {}

    def config_extra(self) -> dict[str, str]:
        """Engine-specific lines of the node config."""
        return {}

    # ------------------------------------------------------------------------------------------- folders

    @property
    def label(self) -> str:
        return f"{self.engine} {self.settings.version}"

    @property
    def url(self) -> str:
        return f"http://{self.settings.host}:{self.settings.port}"

    @property
    def base_dir(self) -> Path:
        """`pintext_home()/<key>`: a node folder per version, and `run/<version>/` for its pid and state."""
        return self.settings.home / self.key

    @property
    def node_dir(self) -> Path:
        return self.base_dir / self.settings.version

    @property
    def run_dir(self) -> Path:
        return self.base_dir / "run" / self.settings.version

    @property
    def downloads_dir(self) -> Path:
        return self.settings.home / "downloads"

    @property
    def data_dir(self) -> Path:
        return self.node_dir / "data"

    @property
    def logs_dir(self) -> Path:
        return self.node_dir / "logs"

    @property
    def log_file(self) -> Path:
        """The node's plain-text log (log4j's `<cluster.name>.log`)."""
        return self.logs_dir / f"{CLUSTER_NAME}.log"

    @property
    def console_file(self) -> Path:
        return self.logs_dir / "console.log"

    @property
    def owned_dir(self) -> Path:
        return self.node_dir

    @property
    def port_hint(self) -> str:
        return f"--port / PINTEXT_{self.key.upper()}_PORT"

    def ports(self) -> list[int]:
        return [self.settings.port]

    def identity_args(self) -> tuple[str, ...]:
        return self.main_class, f"-D{self.path_home_property}={self.node_dir}"

    def state_extra(self) -> dict:
        return {"version": self.settings.version, "node_dir": str(self.node_dir)}

    # ------------------------------------------------------------------------------------------ assembly

    def download(self, artifact: MavenArtifact, progress: Progress, repo: str = MAVEN_REPO) -> Path:
        try:
            return maven.download_artifact(artifact, self.downloads_dir, repo, progress,
                                           pinned=self.pinned_checksum(artifact))
        except maven.MavenDownloadError as error:
            raise self.error(str(error)) from error

    def is_assembled(self) -> bool:
        """The node folder is complete and of the current layout."""
        try:
            manifest = json.loads((self.node_dir / ASSEMBLED_MARKER).read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return False
        return manifest.get("layout") == self.assembly_layout

    def assemble(self, java_home: Path, progress: Progress) -> Path:
        """The assembled node folder, built once in a staging folder and renamed into place."""
        if self.is_assembled():
            return self.node_dir
        began = time.monotonic()
        distribution = self.download(self.distribution_artifact(), progress)
        self.base_dir.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{self.settings.version}.staging-", dir=self.base_dir))
        try:
            progress(f"assembling {self.label} in {self.node_dir}")
            extract_zip_stripping_top(distribution, staging)
            manifest = {"layout": self.assembly_layout, "version": self.settings.version,
                        **self.complete_assembly(staging, java_home, progress),
                        "assembled_in_s": round(time.monotonic() - began, 2)}
            (staging / ASSEMBLED_MARKER).write_text(json.dumps(manifest, indent=2) + "\n")
            if self.node_dir.exists():  # an older layout: keep its data and logs, rebuild the rest
                for kept in ("data", "logs"):
                    if (self.node_dir / kept).is_dir():
                        os.replace(self.node_dir / kept, staging / kept)
                shutil.rmtree(self.node_dir)
            os.replace(staging, self.node_dir)
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
        return self.node_dir

    def choose_java(self) -> java.Java:
        try:
            return java.choose_java(self.key, self.label, self.java_range())
        except java.JavaNotFoundError as error:
            raise self.error(str(error)) from None

    def java_env(self, java_home: Path) -> dict[str, str]:
        env = dict(os.environ)
        for name in self.java_home_variables:
            env[name] = str(java_home)
        return env

    def render_config(self) -> str:
        """The node config: one loopback node, no disk watermarks, data and logs in the cache folder."""
        lines = {
            "cluster.name": CLUSTER_NAME,
            "node.name": NODE_NAME,
            "network.host": self.settings.host,
            "http.port": str(self.settings.port),
            "discovery.type": "single-node",
            "path.data": str(self.data_dir),
            "path.logs": str(self.logs_dir),
            # Shared build disks are often nearly full; watermarks would make every new index read-only.
            "cluster.routing.allocation.disk.threshold_enabled": "false",
            "bootstrap.memory_lock": "false",
            **self.config_extra(),
        }
        header = f"# Written by `pintext {self.key} up` on every start; edits here are overwritten.\n"
        return header + "".join(f"{key}: {json.dumps(value) if ' ' in value else value}\n"
                                for key, value in lines.items())

    def prepare(self, progress: Progress) -> Launch:
        chosen = self.choose_java()
        env = self.java_env(chosen.home)
        env[self.java_opts_variable] = heap_java_opts(self.settings.heap, self.error)
        self.assemble(chosen.home, progress)
        (self.node_dir / "config" / self.config_name).write_text(self.render_config())
        self.data_dir.mkdir(exist_ok=True)
        self.logs_dir.mkdir(exist_ok=True)
        progress(f"{self.label} runs on Java {chosen.major} from {chosen.home} ({chosen.source})")
        return Launch([str(self.node_dir / "bin" / self.launcher)], self.node_dir, env)

    # ------------------------------------------------------------------------------------------- health

    def probe(self, url: str) -> dict | None:
        return cluster_health(url, timeout=2.0)

    def is_ready(self, answer: dict | None) -> bool:
        return answer is not None and answer.get("status") in READY_STATUSES

    def details(self, url: str) -> dict:
        return node_details(url)


def node_details(url: str) -> dict:
    """Version (from `_nodes/_local`: Elasticsearch's integ-test zip has no `GET /`), modules and plugins of the
    node at `url`, or an `error` key saying why it could not tell."""
    try:
        answer = http_json(f"{url}/_nodes/_local/plugins")
        if not isinstance(answer, dict):
            raise ValueError("not a JSON object")
        nodes = answer["nodes"]
        node = next(iter(nodes.values()))
        return {"version": node["version"],
                "modules": sorted(module["name"] for module in node.get("modules", [])),
                "plugins": sorted(f"{plugin['name']} {plugin['version']}" for plugin in node.get("plugins", []))}
    except (urllib.error.URLError, OSError, ValueError, KeyError, StopIteration) as error:
        return {"error": str(error)}
