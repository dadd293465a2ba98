"""A managed local OpenSearch node with the k-NN plugin, assembled from Maven Central (see docs/opensearch.md).

Two versions, side by side if wanted (each has its own folder, pid, state and lock files, and port):

- **3.5.0** (the default): the integ-test distribution zip already has every module (lang-painless,
  lang-mustache, analysis-common, rank-eval, ...); only `opensearch-knn` 3.5.0.0 is installed, with the
  distribution's own `opensearch-plugin install --batch`. Java 21 or newer.
- **2.19.1**: the zip has only transport-netty4, so lang-painless (which k-NN extends), lang-mustache,
  analysis-common and rank-eval are rebuilt from their Maven Central jars and the dependencies their POMs name,
  each a `modules/<name>/` folder with a descriptor and a security policy from the resource files beside this
  module. It runs under the Java Security Manager, gone in JDK 24: Java 17..23.

Every download is checked against the checksum Maven Central publishes; `opensearch-3.5.0.zip` is served
without one, so its sha512 is pinned below. The node is assembled in a staging folder and renamed to
`pintext_home()/opensearch/<version>/`, run detached on loopback as the `pintext` system user (OpenSearch refuses
root), and healthy once `/_cluster/health` is yellow or green. The lifecycle itself is `pintext.servers.lifecycle`.
Only the standard library is used here, so `pintext opensearch status` stays light.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from pintext.paths import pintext_home
from pintext.servers import maven, search_node
from pintext.servers.java import JavaRange

# Re-exported for callers and tests that read logs or build a failure report through this module.
from pintext.servers.lifecycle import Progress, ServerError, StartResult, follow_lines, no_progress, tail_lines  # noqa: F401
from pintext.servers.maven import MAVEN_REPO, MavenArtifact
from pintext.servers.search_node import CLUSTER_NAME, DEFAULT_HEAP, SERVICE_USER  # noqa: F401

DEFAULT_VERSION = "3.5.0"
OPENSEARCH_VERSION = DEFAULT_VERSION  # the name callers used before two versions were managed
DEFAULT_PORT = 9200
DEFAULT_START_TIMEOUT_S = 180.0
DEFAULT_STOP_TIMEOUT_S = 60.0
MAIN_CLASS = "org.opensearch.bootstrap.OpenSearch"
MODULE_DESCRIPTOR_RESOURCE = "opensearch-module-descriptor.properties"
KNN_PLUGIN = "opensearch-knn"
UpResult = StartResult  # the name `start` returned before the lifecycle was shared


class OpenSearchNodeError(ServerError):
    """The managed node could not be downloaded, assembled, started, reached or stopped; the message says why."""


@dataclass(frozen=True)
class VersionSpec:
    """What differs between the managed OpenSearch versions."""

    version: str
    knn_version: str  # k-NN must match the server version exactly
    java: JavaRange
    rebuild_modules: bool  # the integ-test zip lacks lang-painless & co. (2.x)
    # Default port = $PINTEXT_OPENSEARCH_PORT (9200) + this, so both versions can run at once without flags.
    port_offset: int
    # Maven Central serves this distribution zip without a .sha1/.sha512: the digest PinText checked and pins.
    # (3.5.0: computed from the download of 2026-12-01 after its lib/ and module jars matched the sha1 Maven
    # publishes for those same jars: opensearch, -core, -common, -x-content 3.5.0, lucene-core 10.3.2, ...)
    distribution_sha512: str | None = None


VERSIONS = {
    "3.5.0": VersionSpec("3.5.0", "3.5.0.0", JavaRange(21), rebuild_modules=False, port_offset=0,
                         distribution_sha512="ca4c739cb0457de59df464f8f01eafb962ba140c41a649d29a2f5306cb59b436"
                                             "d76742a8e710c1493f3a68080e5f55fe5f9bf929cc3b0a6e04c6f87061a2e2a3"),
    # Maven Central serves k-NN 2.19 only as 2.19.1.0, which fixes the OpenSearch version to 2.19.1.
    "2.19.1": VersionSpec("2.19.1", "2.19.1.0", JavaRange(17, 23), rebuild_modules=True, port_offset=1),
}
SUPPORTED_VERSIONS = tuple(VERSIONS)


def version_spec(version: str) -> VersionSpec:
    try:
        return VERSIONS[version]
    except KeyError:
        raise OpenSearchNodeError(
            f"OpenSearch {version!r} is not managed by PinText; choose one of {', '.join(SUPPORTED_VERSIONS)}"
        ) from None


# ------------------------------------------------------------------------------------------------ settings


@dataclass(frozen=True)
class NodeSettings(search_node.NodeSettings):
    """Where one managed OpenSearch node lives and how it listens."""

    version: str = DEFAULT_VERSION
    port: int = DEFAULT_PORT

    @classmethod
    def from_env(cls, port: int | None = None, heap: str | None = None, version: str | None = None) -> "NodeSettings":
        """Arguments, else PINTEXT_OPENSEARCH_VERSION (3.5.0), PINTEXT_OPENSEARCH_PORT (9200, plus the version's
        offset: 2.19.1 listens one port up), PINTEXT_OPENSEARCH_HEAP (512m)."""
        version = version or os.environ.get("PINTEXT_OPENSEARCH_VERSION") or DEFAULT_VERSION
        spec = version_spec(version)
        if port is None:
            port = search_node.env_int("PINTEXT_OPENSEARCH_PORT", DEFAULT_PORT, OpenSearchNodeError) + spec.port_offset
        return cls(home=pintext_home(), version=version, port=port,
                   heap=heap or os.environ.get("PINTEXT_OPENSEARCH_HEAP") or DEFAULT_HEAP)

    @property
    def spec(self) -> VersionSpec:
        return version_spec(self.version)

    @property
    def knn_version(self) -> str:
        return self.spec.knn_version

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


# -------------------------------------------------------------------------------------- Maven downloads


def distribution_artifact(version: str = DEFAULT_VERSION) -> MavenArtifact:
    """The integ-test distribution: bin/, config/, lib/, modules/ (all of them from 3.x on), no bundled JDK."""
    return MavenArtifact("org.opensearch.distribution.integ-test-zip", "opensearch", version, "zip")


def knn_artifact(knn_version: str) -> MavenArtifact:
    """The k-NN plugin zip (jars only: no FAISS/NMSLIB native libraries)."""
    return MavenArtifact("org.opensearch.plugin", "opensearch-knn", knn_version, "zip")


def download_artifact(
    artifact: MavenArtifact, downloads_dir: Path, repo: str = MAVEN_REPO, progress: Progress = no_progress,
    pinned: maven.Checksum | None = None,
) -> Path:
    """The artifact's file under `downloads_dir`, downloaded and verified once (see `maven.download_artifact`)."""
    try:
        return maven.download_artifact(artifact, downloads_dir, repo, progress, pinned)
    except maven.MavenDownloadError as error:
        raise OpenSearchNodeError(str(error)) from error


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


# ------------------------------------------------------------------------------------------------- the node


class OpenSearchNode(search_node.SearchNode):
    """One managed OpenSearch node of one version (see the module docstring)."""

    key = "opensearch"
    engine = "OpenSearch"
    error = OpenSearchNodeError
    launcher = "opensearch"
    config_name = "opensearch.yml"
    java_home_variables = ("OPENSEARCH_JAVA_HOME", "JAVA_HOME")
    java_opts_variable = "OPENSEARCH_JAVA_OPTS"
    main_class = MAIN_CLASS
    path_home_property = "opensearch.path.home"
    assembly_layout = 3
    start_timeout_s = DEFAULT_START_TIMEOUT_S
    stop_timeout_s = DEFAULT_STOP_TIMEOUT_S

    settings: NodeSettings

    def java_range(self) -> JavaRange:
        return self.settings.spec.java

    def distribution_artifact(self) -> MavenArtifact:
        return distribution_artifact(self.settings.version)

    def pinned_checksum(self, artifact: MavenArtifact) -> maven.Checksum | None:
        digest = self.settings.spec.distribution_sha512
        return ("sha512", digest) if digest and artifact == self.distribution_artifact() else None

    def complete_assembly(self, staging: Path, java_home: Path, progress: Progress) -> dict:
        manifest: dict = {"knn": self.settings.knn_version}
        if self.settings.spec.rebuild_modules:
            manifest["modules"] = self._rebuild_modules(staging, progress)
        knn_zip = self.download(knn_artifact(self.settings.knn_version), progress)
        self._install_knn_plugin(staging, knn_zip, java_home)
        return manifest

    def _rebuild_modules(self, staging: Path, progress: Progress) -> dict[str, list[str]]:
        core_jars = {path.name for path in (staging / "lib").glob("*.jar")}

        def fetch_pom(artifact: MavenArtifact) -> str:
            return self.download(artifact.with_packaging("pom"), progress).read_text("utf-8")

        def fetch_jar(artifact: MavenArtifact) -> Path:
            return self.download(artifact, progress)

        return {module.name: _assemble_module(module, staging, core_jars, fetch_pom, fetch_jar, self.settings.version)
                for module in MODULES}

    def _install_knn_plugin(self, staging: Path, knn_zip: Path, java_home: Path) -> None:
        """Install k-NN with the distribution's own plugin tool (it checks the descriptor, the version match and
        that the plugins k-NN extends are present)."""
        command = [str(staging / "bin" / "opensearch-plugin"), "install", "--batch", knn_zip.resolve().as_uri()]
        result = subprocess.run(command, env=self.java_env(java_home), capture_output=True, text=True, timeout=300)
        if result.returncode != 0 or not (staging / "plugins" / KNN_PLUGIN).is_dir():
            raise OpenSearchNodeError(
                f"`{' '.join(command)}` failed (exit {result.returncode}):\n"
                f"{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
            )

    def problems(self, info: dict) -> list[str]:
        if "plugins" in info and not any(plugin.startswith(f"{KNN_PLUGIN} ") for plugin in info["plugins"]):
            return [f"the k-NN plugin ({KNN_PLUGIN}) is not loaded"]
        return []

    def running_pid(self) -> int | None:
        self._adopt_legacy_run_files()
        return super().running_pid()

    def _adopt_legacy_run_files(self) -> None:
        """Before two versions were managed, one node's pid and state lived in `opensearch/opensearch.pid` and
        `opensearch/node.json`: move them to this version's run folder when they name this version."""
        legacy_pid, legacy_state = self.base_dir / "opensearch.pid", self.base_dir / "node.json"
        if not legacy_pid.exists() or self.pid_file.exists():
            return
        if f'"version": "{self.settings.version}"' not in (legacy_state.read_text() if legacy_state.exists() else ""):
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        os.replace(legacy_pid, self.pid_file)
        os.replace(legacy_state, self.state_file)


def managed_nodes(version: str | None = None, port: int | None = None, heap: str | None = None) -> list[OpenSearchNode]:
    """The node of `version`, or (None) one per supported version, default settings otherwise."""
    versions = [version] if version else list(SUPPORTED_VERSIONS)
    return [OpenSearchNode(NodeSettings.from_env(port=port, heap=heap, version=name)) for name in versions]


# ------------------------------------------------------------ functions over settings (bench/, tests call these)


def render_opensearch_yml(settings: NodeSettings) -> str:
    return OpenSearchNode(settings).render_config()


def heap_java_opts(heap: str) -> str:
    return search_node.heap_java_opts(heap, OpenSearchNodeError)


def start(settings: NodeSettings, timeout_s: float = DEFAULT_START_TIMEOUT_S,
          progress: Progress = no_progress) -> StartResult:
    """Start the managed node (assembling it first if needed) and wait until it is healthy."""
    return OpenSearchNode(settings).start(timeout_s, progress)


def stop(settings: NodeSettings, timeout_s: float = DEFAULT_STOP_TIMEOUT_S) -> str | None:
    """Stop the node our pid file names; None when none of ours runs. Never touches other processes."""
    return OpenSearchNode(settings).stop(timeout_s)


def running_pid(settings: NodeSettings) -> int | None:
    return OpenSearchNode(settings).running_pid()


def managed_url(settings: NodeSettings | None = None) -> str:
    """The URL of the managed node: the one `up` recorded, else the configured one."""
    return OpenSearchNode(settings or NodeSettings.from_env()).address()
