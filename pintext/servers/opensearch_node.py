"""A managed local OpenSearch node with the k-NN plugin, assembled from Maven Central.

Route (see docs/opensearch.md):

1. download, once, into `pintext_home()/downloads`: the integ-test distribution zip of OpenSearch, the
   jars of the modules it lacks (lang-painless, lang-mustache, analysis-common) with the dependencies their POMs
   name, and the opensearch-knn plugin zip; every file is
   checked against the `.sha512` (else `.sha1`) Maven Central publishes and lands by an atomic rename;
2. assemble the node in a staging folder and rename it to `pintext_home()/opensearch/<version>/`: the
   distribution, `modules/<name>/` for each module (its jars + a plugin descriptor + a security policy, from
   the resource files beside this module), and `plugins/opensearch-knn` installed with the distribution's
   `opensearch-plugin`;
3. start it detached (own session) on loopback as a dedicated system user (OpenSearch refuses root), wait for
   `/_cluster/health` to be yellow or green, and record its pid; stop only the process that pid file names.

Only the standard library is used here, so `pintext opensearch status` stays light.
"""

from __future__ import annotations

import fcntl
import json
import os
import pwd
import shutil
import stat
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import xml.etree.ElementTree as ElementTree
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from pintext.servers import maven, process
from pintext.servers.maven import MAVEN_REPO, MavenArtifact, Progress, no_progress
from pintext.paths import pintext_home

OPENSEARCH_VERSION = "2.19.1"
# Maven Central serves k-NN 2.19 only as 2.19.1.0, which fixes the OpenSearch version to 2.19.1.
KNN_VERSION = "2.19.1.0"
DEFAULT_PORT = 9200
DEFAULT_HEAP = "512m"
DEFAULT_START_TIMEOUT_S = 180.0
DEFAULT_STOP_TIMEOUT_S = 60.0
CLUSTER_NAME = "pintext"
SERVICE_USER = "pintext"
DEFAULT_JAVA_HOME = "/usr/lib/jvm/java-17-openjdk-amd64"
MAIN_CLASS = "org.opensearch.bootstrap.OpenSearch"
ASSEMBLED_MARKER = ".pintext-assembled.json"
# Bumped when the assembled layout changes, so an older node folder is rebuilt (its data and logs are kept).
ASSEMBLY_LAYOUT = 3
MODULE_DESCRIPTOR_RESOURCE = "opensearch-module-descriptor.properties"


class OpenSearchNodeError(RuntimeError):
    """The managed node could not be downloaded, assembled, started, reached or stopped; the message says why."""


# ------------------------------------------------------------------------------------------------ settings


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as error:
        raise OpenSearchNodeError(f"environment variable {name}={raw!r} is not an integer") from error


@dataclass(frozen=True)
class NodeSettings:
    """Where the managed node lives and how it listens."""

    home: Path
    version: str = OPENSEARCH_VERSION
    knn_version: str = KNN_VERSION
    port: int = DEFAULT_PORT
    heap: str = DEFAULT_HEAP
    host: str = "127.0.0.1"
    java_home: Path = Path(DEFAULT_JAVA_HOME)
    user: str = SERVICE_USER

    @classmethod
    def from_env(cls, port: int | None = None, heap: str | None = None) -> "NodeSettings":
        """Settings from arguments, else PINTEXT_OPENSEARCH_PORT / PINTEXT_OPENSEARCH_HEAP / PINTEXT_JAVA_HOME."""
        return cls(
            home=pintext_home(),
            port=port if port is not None else _env_int("PINTEXT_OPENSEARCH_PORT", DEFAULT_PORT),
            heap=heap or os.environ.get("PINTEXT_OPENSEARCH_HEAP") or DEFAULT_HEAP,
            java_home=Path(os.environ.get("PINTEXT_JAVA_HOME") or DEFAULT_JAVA_HOME),
        )

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def downloads_dir(self) -> Path:
        return self.home / "downloads"

    @property
    def base_dir(self) -> Path:
        """`pintext_home()/opensearch`: node folders per version, plus the pid and state files."""
        return self.home / "opensearch"

    @property
    def node_dir(self) -> Path:
        return self.base_dir / self.version

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
        """The JVM's stdout/stderr: where errors before logging starts (bad JVM options) end up."""
        return self.logs_dir / "console.log"

    @property
    def pid_file(self) -> Path:
        return self.base_dir / "opensearch.pid"

    @property
    def state_file(self) -> Path:
        """JSON beside the pid file: the URL, version and node folder of the node we started."""
        return self.base_dir / "node.json"


# -------------------------------------------------------------------------------------- Maven downloads


def distribution_artifact(version: str = OPENSEARCH_VERSION) -> MavenArtifact:
    """The integ-test distribution: bin/, config/, lib/, transport-netty4 only, no bundled JDK."""
    return MavenArtifact("org.opensearch.distribution.integ-test-zip", "opensearch", version, "zip")


def knn_artifact(knn_version: str = KNN_VERSION) -> MavenArtifact:
    """The k-NN plugin zip (jars only: no FAISS/NMSLIB native libraries)."""
    return MavenArtifact("org.opensearch.plugin", "opensearch-knn", knn_version, "zip")


@dataclass(frozen=True)
class ModuleSpec:
    """A distribution module rebuilt from its Maven Central jars: Maven has the jars, not the module zips."""

    name: str
    artifact: str  # under org.opensearch.plugin
    classname: str
    description: str
    extended_plugins: str = ""
    policy_resource: str | None = None  # a plugin-security.policy beside this module, when it needs permissions

    def maven_artifact(self, version: str) -> MavenArtifact:
        return MavenArtifact("org.opensearch.plugin", self.artifact, version)


MODULES = (
    # k-NN extends lang-painless (extended.plugins), and its knn_score script is served through it.
    ModuleSpec("lang-painless", "lang-painless", "org.opensearch.painless.PainlessPlugin",
               "An easy, safe and fast scripting language for OpenSearch",
               policy_resource="opensearch-lang-painless.policy"),
    # Search templates (`_scripts/<id>` with lang mustache); Maven names the module's jar lang-mustache-client.
    ModuleSpec("lang-mustache", "lang-mustache-client", "org.opensearch.script.mustache.MustachePlugin",
               "Mustache scripting integration for OpenSearch", policy_resource="opensearch-lang-mustache.policy"),
    # Language analyzers, stemmers and the usual token filters for text fields.
    ModuleSpec("analysis-common", "analysis-common", "org.opensearch.analysis.common.CommonAnalysisPlugin",
               "Adds \"built in\" analyzers to OpenSearch.", extended_plugins="lang-painless"),
    # `_rank_eval` (NDCG, recall, MRR of search requests): `pintext eval-retrieval` checks its metrics with it.
    ModuleSpec("rank-eval", "rank-eval-client", "org.opensearch.index.rankeval.RankEvalPlugin",
               "The Rank Eval module adds APIs to evaluate ranking quality."),
)


def download_artifact(
    artifact: MavenArtifact, downloads_dir: Path, repo: str = MAVEN_REPO, progress: Progress = no_progress
) -> Path:
    """The artifact's file under `downloads_dir`, downloaded and verified once (see `maven.download_artifact`)."""
    try:
        return maven.download_artifact(artifact, downloads_dir, repo, progress)
    except maven.MavenDownloadError as error:
        raise OpenSearchNodeError(str(error)) from error


def pom_dependencies(pom_xml: str) -> list[tuple[MavenArtifact, bool]]:
    """Compile/runtime dependencies a POM declares, each with whether it excludes all its own dependencies."""
    namespace = {"m": "http://maven.apache.org/POM/4.0.0"}
    root = ElementTree.fromstring(pom_xml)
    found = []
    for dep in root.findall("m:dependencies/m:dependency", namespace):
        scope = dep.findtext("m:scope", "compile", namespace).strip()
        if scope not in ("compile", "runtime") or dep.findtext("m:optional", "false", namespace).strip() == "true":
            continue
        artifact = MavenArtifact(
            dep.findtext("m:groupId", "", namespace).strip(),
            dep.findtext("m:artifactId", "", namespace).strip(),
            dep.findtext("m:version", "", namespace).strip(),
        )
        excludes_all = any(
            exclusion.findtext("m:groupId", "", namespace) == "*"
            and exclusion.findtext("m:artifactId", "", namespace) == "*"
            for exclusion in dep.findall("m:exclusions/m:exclusion", namespace)
        )
        found.append((artifact, excludes_all))
    return found


def resolve_module_jars(
    root: MavenArtifact, core_jar_names: set[str], fetch_pom: Callable[[MavenArtifact], str]
) -> list[MavenArtifact]:
    """The jars a module folder needs: `root` and its transitive compile/runtime dependencies from the POMs,
    minus the jars the server already has in `lib/` (the same jar twice is "jar hell" and stops the node)."""
    resolved: dict[tuple[str, str], MavenArtifact] = {}
    pending: list[tuple[MavenArtifact, bool]] = [(root, False)]
    while pending:
        artifact, excludes_all = pending.pop()
        key = (artifact.group, artifact.artifact)
        if key in resolved or artifact.file_name in core_jar_names:
            continue
        resolved[key] = artifact
        if not excludes_all:
            pending.extend(pom_dependencies(fetch_pom(artifact)))
    return sorted(resolved.values(), key=lambda item: item.file_name)


# ----------------------------------------------------------------------------------------------- assembly


def _resource_text(name: str) -> str:
    return resources.files("pintext.servers").joinpath(name).read_text("utf-8")


def render_module_descriptor(module: ModuleSpec, version: str) -> str:
    """A module's `plugin-descriptor.properties` for this OpenSearch version."""
    fields = {"name": module.name, "description": module.description, "version": version,
              "classname": module.classname, "extended_plugins": module.extended_plugins}
    text = _resource_text(MODULE_DESCRIPTOR_RESOURCE)
    for key, value in fields.items():
        text = text.replace("{" + key + "}", value)
    return text


def module_security_policy(module: ModuleSpec) -> str | None:
    return _resource_text(module.policy_resource) if module.policy_resource else None


def _assemble_module(module: ModuleSpec, staging: Path, core_jars: set[str],
                     fetch_pom: Callable[[MavenArtifact], str], fetch_jar: Callable[[MavenArtifact], Path],
                     version: str) -> list[str]:
    """Fill `modules/<name>/` with the module's jars, descriptor and policy; returns the jar names."""
    module_dir = staging / "modules" / module.name
    module_dir.mkdir(parents=True)
    jars = resolve_module_jars(module.maven_artifact(version), core_jars, fetch_pom)
    for artifact in jars:
        shutil.copy2(fetch_jar(artifact), module_dir / artifact.file_name)
    (module_dir / "plugin-descriptor.properties").write_text(render_module_descriptor(module, version))
    policy = module_security_policy(module)
    if policy:
        (module_dir / "plugin-security.policy").write_text(policy)
    return [artifact.file_name for artifact in jars]


def _extract_zip_stripping_top(archive: Path, destination: Path) -> None:
    """Unzip `archive` into `destination`, dropping its single top folder and keeping the Unix modes
    (zipfile drops them, and bin/opensearch must stay executable)."""
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


def is_assembled(settings: NodeSettings) -> bool:
    """The node folder is complete and of the current layout."""
    try:
        manifest = json.loads((settings.node_dir / ASSEMBLED_MARKER).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return False
    return manifest.get("layout") == ASSEMBLY_LAYOUT


def _java_env(settings: NodeSettings) -> dict[str, str]:
    java = settings.java_home / "bin" / "java"
    if not java.is_file():
        raise OpenSearchNodeError(
            f"no Java at {java}: OpenSearch {settings.version} needs JDK 17 (set PINTEXT_JAVA_HOME to a JDK 17 folder)"
        )
    env = dict(os.environ)
    env["OPENSEARCH_JAVA_HOME"] = str(settings.java_home)
    env["JAVA_HOME"] = str(settings.java_home)
    return env


def _install_knn_plugin(staging: Path, knn_zip: Path, settings: NodeSettings) -> None:
    """Install k-NN with the distribution's own plugin tool (it checks the descriptor, the version match and
    that the extended lang-painless is present)."""
    command = [str(staging / "bin" / "opensearch-plugin"), "install", "--batch", knn_zip.resolve().as_uri()]
    result = subprocess.run(command, env=_java_env(settings), capture_output=True, text=True, timeout=300)
    if result.returncode != 0 or not (staging / "plugins" / "opensearch-knn").is_dir():
        raise OpenSearchNodeError(
            f"`{' '.join(command)}` failed (exit {result.returncode}):\n"
            f"{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
        )


def assemble(settings: NodeSettings, progress: Progress = no_progress, repo: str = MAVEN_REPO) -> Path:
    """The assembled node folder, built once from the downloads and reused afterwards."""
    if is_assembled(settings):
        return settings.node_dir
    started = time.monotonic()
    downloads = settings.downloads_dir
    distribution_zip = download_artifact(distribution_artifact(settings.version), downloads, repo, progress)
    knn_zip = download_artifact(knn_artifact(settings.knn_version), downloads, repo, progress)
    settings.base_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{settings.version}.staging-", dir=settings.base_dir))
    try:
        progress(f"assembling OpenSearch {settings.version} in {settings.node_dir}")
        _extract_zip_stripping_top(distribution_zip, staging)
        core_jars = {path.name for path in (staging / "lib").glob("*.jar")}

        def fetch_pom(artifact: MavenArtifact) -> str:
            return download_artifact(artifact.with_packaging("pom"), downloads, repo, progress).read_text("utf-8")

        def fetch_jar(artifact: MavenArtifact) -> Path:
            return download_artifact(artifact, downloads, repo, progress)

        module_jars = {module.name: _assemble_module(module, staging, core_jars, fetch_pom, fetch_jar, settings.version)
                       for module in MODULES}
        _install_knn_plugin(staging, knn_zip, settings)
        manifest = {
            "layout": ASSEMBLY_LAYOUT,
            "opensearch": settings.version,
            "knn": settings.knn_version,
            "modules": module_jars,
            "assembled_in_s": round(time.monotonic() - started, 2),
        }
        (staging / ASSEMBLED_MARKER).write_text(json.dumps(manifest, indent=2) + "\n")
        if settings.node_dir.exists():  # an older layout: keep its data and logs, rebuild the rest
            for kept in ("data", "logs"):
                if (settings.node_dir / kept).is_dir():
                    os.replace(settings.node_dir / kept, staging / kept)
            shutil.rmtree(settings.node_dir)
        os.replace(staging, settings.node_dir)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return settings.node_dir


# ------------------------------------------------------------------------------------------ configuration


def render_opensearch_yml(settings: NodeSettings) -> str:
    """The node's `opensearch.yml`: one loopback node, no disk watermarks, data and logs in the cache folder."""
    lines = {
        "cluster.name": CLUSTER_NAME,
        "node.name": "pintext-local",
        "network.host": settings.host,
        "http.port": str(settings.port),
        "discovery.type": "single-node",
        "path.data": str(settings.data_dir),
        "path.logs": str(settings.logs_dir),
        # Shared build disks are often nearly full; watermarks would make every new index read-only.
        "cluster.routing.allocation.disk.threshold_enabled": "false",
        "bootstrap.memory_lock": "false",
    }
    header = "# Written by `pintext opensearch up` on every start; edits here are overwritten.\n"
    return header + "".join(f"{key}: {json.dumps(value) if ' ' in value else value}\n" for key, value in lines.items())


def heap_java_opts(heap: str) -> str:
    """OPENSEARCH_JAVA_OPTS for a fixed heap (min = max avoids resizing pauses)."""
    if not heap or not heap[:-1].isdigit() or heap[-1].lower() not in "kmg":
        raise OpenSearchNodeError(f"heap size {heap!r} is not like 512m or 1g")
    return f"-Xms{heap} -Xmx{heap}"


# ------------------------------------------------------------------------------------ user and permissions


def ensure_service_user(name: str = SERVICE_USER) -> pwd.struct_passwd | None:
    """The system user the node runs as; created when we are root. None when we are not root (run as ourselves)."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(name)
    except KeyError:
        pass
    result = subprocess.run(
        ["useradd", "--system", "--user-group", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0 and "already exists" not in result.stderr:
        raise OpenSearchNodeError(f"could not create system user {name!r}: {result.stderr.strip()}")
    return pwd.getpwnam(name)


def _grant_traverse_to_ancestors(path: Path) -> list[Path]:
    """Add the 'others may traverse' bit to ancestors that lack it (e.g. /root is 0700), so the service
    user can reach the node folder. Traverse only: it still cannot list or read those folders."""
    changed = []
    for ancestor in reversed(path.resolve().parents):
        mode = ancestor.stat().st_mode
        if not mode & stat.S_IXOTH:
            ancestor.chmod(stat.S_IMODE(mode) | stat.S_IXOTH)
            changed.append(ancestor)
    return changed


def _chown_tree(root: Path, uid: int, gid: int) -> None:
    os.chown(root, uid, gid)
    for folder, subfolders, files in os.walk(root):
        for name in subfolders + files:
            os.lchown(os.path.join(folder, name), uid, gid)


# ---------------------------------------------------------------------------------------- process control


def is_our_node(pid: int, settings: NodeSettings) -> bool:
    """The pid is a live OpenSearch JVM whose home is our node folder (not a reused pid, not someone else's node)."""
    return process.is_our_process(pid, MAIN_CLASS, f"-Dopensearch.path.home={settings.node_dir}")


def running_pid(settings: NodeSettings) -> int | None:
    """The pid of the node we started, or None; a stale pid file is removed."""
    pid = process.read_pid(settings.pid_file)
    if pid is None:
        return None
    if is_our_node(pid, settings):
        return pid
    _forget(settings)
    return None


def _forget(settings: NodeSettings) -> None:
    settings.pid_file.unlink(missing_ok=True)
    settings.state_file.unlink(missing_ok=True)


def read_state(settings: NodeSettings) -> dict:
    """What `up` recorded about the running node (url, port, version), or {}."""
    try:
        return json.loads(settings.state_file.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


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


def tail_lines(path: Path, count: int) -> list[str]:
    """The last `count` lines of a text file ([] when it does not exist)."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            block = min(size, max(count, 1) * 400)
            while True:
                handle.seek(size - block)
                lines = handle.read().decode("utf-8", "replace").splitlines()
                if len(lines) > count or block == size:
                    return lines[-count:] if count > 0 else []
                block = min(size, block * 4)
    except FileNotFoundError:
        return []


def _file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _lines_since(path: Path, offset: int, count: int) -> list[str]:
    """The last `count` lines written to `path` after byte `offset` (this start's output, not an older run's)."""
    try:
        with path.open("rb") as handle:
            handle.seek(offset)
            return handle.read().decode("utf-8", "replace").splitlines()[-count:]
    except FileNotFoundError:
        return []


def _failure_report(settings: NodeSettings, reason: str, offsets: dict[Path, int]) -> OpenSearchNodeError:
    """An error carrying what the node wrote during this start: its log, and the JVM console (where errors
    from before logging starts, such as bad JVM options, end up)."""
    sections = [reason]
    for path, offset in offsets.items():
        lines = _lines_since(path, offset, 40)
        if lines:
            sections.append(f"--- last lines of {path} ---\n" + "\n".join(lines))
    if len(sections) == 1:
        sections.append(f"(the node wrote nothing to {settings.log_file} or {settings.console_file})")
    return OpenSearchNodeError("\n".join(sections))


def wait_for_health(url: str, timeout_s: float, is_running: Callable[[], bool]) -> dict:
    """Poll `/_cluster/health` until yellow or green; stop early when the process died."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        health = cluster_health(url, timeout=2.0)
        if health and health.get("status") in ("yellow", "green"):
            return health
        if not is_running():
            raise OpenSearchNodeError("the OpenSearch process exited during startup")
        time.sleep(0.5)
    raise TimeoutError(f"{url}/_cluster/health was not yellow or green within {timeout_s:.0f} s")


@dataclass(frozen=True)
class UpResult:
    """What `up` did: started a node, or found ours already running."""

    url: str
    pid: int
    started: bool
    seconds_to_healthy: float
    health: dict


@contextmanager
def _exclusive(lock_file: Path) -> Iterator[None]:
    """Hold an exclusive lock on `lock_file`: two `up`s at once (two test sessions) start one node, not two."""
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with lock_file.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def start(
    settings: NodeSettings, timeout_s: float = DEFAULT_START_TIMEOUT_S, progress: Progress = no_progress
) -> UpResult:
    """Start the managed node (assembling it first if needed) and wait until it is healthy.

    When our node already runs, nothing is started: the result says `started=False`.
    """
    with _exclusive(settings.base_dir / ".start.lock"):
        return _start_locked(settings, timeout_s, progress)


def _start_locked(settings: NodeSettings, timeout_s: float, progress: Progress) -> UpResult:
    pid = running_pid(settings)
    if pid is not None:
        state = read_state(settings)
        url = state.get("url", settings.url)
        began = time.monotonic()
        health = wait_for_health(url, timeout_s, lambda: process.is_alive(pid))
        return UpResult(url, pid, False, time.monotonic() - began, health)
    if process.port_in_use(settings.host, settings.port):
        raise OpenSearchNodeError(
            f"port {settings.port} on {settings.host} is taken by a process PinText did not start; "
            f"stop it, pick another port (--port / PINTEXT_OPENSEARCH_PORT), or point OPENSEARCH_URL at it"
        )
    assemble(settings, progress)
    env = _java_env(settings)
    env["OPENSEARCH_JAVA_OPTS"] = heap_java_opts(settings.heap)
    (settings.node_dir / "config" / "opensearch.yml").write_text(render_opensearch_yml(settings))
    settings.data_dir.mkdir(exist_ok=True)
    settings.logs_dir.mkdir(exist_ok=True)
    account = ensure_service_user(settings.user)
    if account is not None:
        for folder in _grant_traverse_to_ancestors(settings.node_dir):
            progress(f"granted traverse (o+x) on {folder} so user {settings.user!r} can reach the node folder")
        _chown_tree(settings.node_dir, account.pw_uid, account.pw_gid)
        env["HOME"] = str(settings.node_dir)
    progress(f"starting OpenSearch {settings.version} on {settings.url} (heap {settings.heap})")
    offsets = {path: _file_size(path) for path in (settings.log_file, settings.console_file)}
    began = time.monotonic()
    with settings.console_file.open("ab") as console:
        node = subprocess.Popen(
            [str(settings.node_dir / "bin" / "opensearch")],
            cwd=settings.node_dir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=console,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own session: it outlives this command and the terminal
            user=account.pw_uid if account else None,
            group=account.pw_gid if account else None,
            extra_groups=[] if account else None,
        )
    # bin/opensearch execs the JVM, so this pid is the node's.
    process.write_pid(settings.pid_file, node.pid)
    settings.state_file.write_text(
        json.dumps({"url": settings.url, "port": settings.port, "version": settings.version,
                    "node_dir": str(settings.node_dir), "pid": node.pid}, indent=2) + "\n"
    )
    try:
        health = wait_for_health(settings.url, timeout_s, lambda: node.poll() is None)
    except (OpenSearchNodeError, TimeoutError) as error:
        process.stop_process(node.pid, DEFAULT_STOP_TIMEOUT_S)
        _forget(settings)
        raise _failure_report(settings, f"OpenSearch did not become healthy: {error}", offsets) from error
    return UpResult(settings.url, node.pid, True, time.monotonic() - began, health)


def stop(settings: NodeSettings, timeout_s: float = DEFAULT_STOP_TIMEOUT_S) -> str | None:
    """Stop the node our pid file names; None when none of ours runs. Never touches other processes."""
    pid = running_pid(settings)
    if pid is None:
        return None
    outcome = process.stop_process(pid, timeout_s)
    _forget(settings)
    return outcome


def node_status(settings: NodeSettings) -> dict:
    """URL, pid, health, version and plugins of the managed node (`running: False` when none of ours runs)."""
    pid = running_pid(settings)
    url = read_state(settings).get("url", settings.url)
    status: dict = {"url": url, "pid": pid, "running": pid is not None, "log_file": str(settings.log_file)}
    if pid is None:
        return status
    status["health"] = cluster_health(url)
    try:
        status["version"] = http_json(url)["version"]["number"]
        plugins = http_json(f"{url}/_cat/plugins?format=json")
        status["plugins"] = sorted({f"{row['component']} {row['version']}" for row in plugins})
        nodes = http_json(f"{url}/_nodes/plugins?filter_path=nodes.*.modules.name")
        status["modules"] = sorted({module["name"] for info in nodes.get("nodes", {}).values()
                                    for module in info.get("modules", [])})
    except (urllib.error.URLError, OSError, ValueError, KeyError) as error:
        status["error"] = str(error)
    return status


def follow_lines(path: Path, poll_s: float = 0.5) -> Iterator[str]:
    """New lines appended to `path`, as they come (for `logs --follow`; ends on KeyboardInterrupt)."""
    with path.open("r", encoding="utf-8", errors="replace") as handle:
        handle.seek(0, os.SEEK_END)
        while True:
            line = handle.readline()
            if line:
                yield line.rstrip("\n")
            else:
                time.sleep(poll_s)


def managed_url(settings: NodeSettings | None = None) -> str:
    """The URL of the managed node: the one `up` recorded, else the configured one."""
    settings = settings or NodeSettings.from_env()
    return read_state(settings).get("url", settings.url)
