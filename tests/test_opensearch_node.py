"""The managed OpenSearch node: pure parts (config, descriptor, POM resolution, URL rules, downloads against a
local HTTP server), and integration tests against a real node with the k-NN plugin (exact rescoring, the
Lucene HNSW engine, and the `pintext opensearch up|status|down` lifecycle)."""

from __future__ import annotations

import functools
import hashlib
import http.server
import os
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

import numpy as np
import pytest

from pintext.mapping import pins_index_body
from pintext.servers import maven, process
from pintext.servers import opensearch_node as node
from pintext.serving import opensearch_client
from tests.fixtures_cli import Ran, run_pintext
from tests.fixtures_engines import in_ci
from tests.serving_helpers import free_port


def parse_properties(text: str) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in text.splitlines() if line.strip() and not line.startswith("#"))
    return {key.strip(): value.strip() for key, value in pairs}


# ---- configuration -------------------------------------------------------------------------------------------


def test_opensearch_yml_is_a_loopback_single_node_with_our_port_and_folders(tmp_path):
    settings = node.NodeSettings(home=tmp_path, port=9333)
    rendered = parse_properties(node.render_opensearch_yml(settings).replace(": ", "="))
    assert rendered["network.host"] == "127.0.0.1"
    assert rendered["http.port"] == "9333"
    assert rendered["discovery.type"] == "single-node"
    assert rendered["cluster.routing.allocation.disk.threshold_enabled"] == "false"
    assert rendered["path.data"] == str(tmp_path / "opensearch" / node.OPENSEARCH_VERSION / "data")
    assert rendered["path.logs"] == str(tmp_path / "opensearch" / node.OPENSEARCH_VERSION / "logs")


def test_settings_read_version_port_and_heap_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("PINTEXT_HOME", str(tmp_path))
    monkeypatch.delenv("PINTEXT_OPENSEARCH_VERSION", raising=False)
    monkeypatch.setenv("PINTEXT_OPENSEARCH_PORT", "9444")
    monkeypatch.setenv("PINTEXT_OPENSEARCH_HEAP", "1g")
    settings = node.NodeSettings.from_env()
    assert (settings.version, settings.port, settings.heap) == ("3.5.0", 9444, "1g")
    assert settings.url == "http://127.0.0.1:9444"
    assert node.NodeSettings.from_env(port=9555, heap="256m").port == 9555
    # 2.19.1 listens one port up by default, so both versions run side by side without flags.
    older = node.NodeSettings.from_env(version="2.19.1")
    assert (older.version, older.port, older.knn_version) == ("2.19.1", 9445, "2.19.1.0")
    monkeypatch.setenv("PINTEXT_OPENSEARCH_VERSION", "2.19.1")
    assert node.NodeSettings.from_env().version == "2.19.1"
    monkeypatch.setenv("PINTEXT_OPENSEARCH_VERSION", "1.3.0")
    with pytest.raises(node.OpenSearchNodeError, match="not managed by PinText; choose one of 3.5.0, 2.19.1"):
        node.NodeSettings.from_env()
    monkeypatch.delenv("PINTEXT_OPENSEARCH_VERSION")
    monkeypatch.setenv("PINTEXT_OPENSEARCH_PORT", "ninety")
    with pytest.raises(node.OpenSearchNodeError, match="PINTEXT_OPENSEARCH_PORT"):
        node.NodeSettings.from_env()


def test_each_version_has_its_own_folders_and_run_files(tmp_path):
    new, old = (node.OpenSearchNode(node.NodeSettings(home=tmp_path, version=version, port=port))
                for version, port in (("3.5.0", 9200), ("2.19.1", 9201)))
    assert new.node_dir == tmp_path / "opensearch" / "3.5.0" and old.node_dir == tmp_path / "opensearch" / "2.19.1"
    paths = {new.pid_file, new.state_file, new.lock_file, old.pid_file, old.state_file, old.lock_file}
    assert len(paths) == 6
    assert new.java_range().accepts(25) and not new.java_range().accepts(17)
    assert old.java_range().accepts(17) and not old.java_range().accepts(24)  # the Security Manager is gone in 24
    assert [server.settings.version for server in node.managed_nodes()] == ["3.5.0", "2.19.1"]


def test_a_pid_file_from_before_versions_is_adopted_by_its_version(tmp_path):
    base = tmp_path / "opensearch"
    base.mkdir()
    (base / "opensearch.pid").write_text("12345\n")
    (base / "node.json").write_text('{"url": "http://127.0.0.1:9200", "version": "2.19.1"}')
    new = node.OpenSearchNode(node.NodeSettings(home=tmp_path, version="3.5.0"))
    assert new.running_pid() is None and (base / "opensearch.pid").exists()  # not 3.5.0's
    old = node.OpenSearchNode(node.NodeSettings(home=tmp_path, version="2.19.1"))
    old._adopt_legacy_run_files()
    assert old.pid_file.read_text() == "12345\n" and not (base / "opensearch.pid").exists()


@pytest.mark.parametrize("heap, expected", [("512m", "-Xms512m -Xmx512m"), ("2g", "-Xms2g -Xmx2g")])
def test_heap_becomes_equal_min_and_max(heap, expected):
    assert node.heap_java_opts(heap) == expected


@pytest.mark.parametrize("heap", ["", "512", "lots", "m"])
def test_a_malformed_heap_is_refused(heap):
    with pytest.raises(node.OpenSearchNodeError, match="heap size"):
        node.heap_java_opts(heap)


def test_module_descriptors_name_what_k_nn_and_the_search_templates_need():
    modules = {module.name: module for module in node.MODULES}
    assert set(modules) == {"lang-painless", "lang-mustache", "analysis-common", "rank-eval"}
    painless = parse_properties(node.render_module_descriptor(modules["lang-painless"], "2.19.1"))
    assert painless["name"] == "lang-painless"  # k-NN's extended.plugins
    assert painless["version"] == painless["opensearch.version"] == "2.19.1"
    assert painless["classname"] == "org.opensearch.painless.PainlessPlugin"
    assert painless["extended.plugins"] == ""
    policy = node.module_security_policy(modules["lang-painless"])
    assert '"createClassLoader"' in policy and '"getClassLoader"' in policy
    mustache = parse_properties(node.render_module_descriptor(modules["lang-mustache"], "2.19.1"))
    assert mustache["classname"] == "org.opensearch.script.mustache.MustachePlugin"
    assert '"accessDeclaredMembers"' in node.module_security_policy(modules["lang-mustache"])
    analysis = parse_properties(node.render_module_descriptor(modules["analysis-common"], "2.19.1"))
    assert analysis["extended.plugins"] == "lang-painless"  # it ships a Painless allow-list extension
    assert node.module_security_policy(modules["analysis-common"]) is None


# ---- Maven: POMs and downloads -------------------------------------------------------------------------------

POM = """<project xmlns="http://maven.apache.org/POM/4.0.0"><dependencies>
  <dependency><groupId>org.antlr</groupId><artifactId>antlr4-runtime</artifactId><version>4.13.1</version>
    <scope>compile</scope><exclusions><exclusion><groupId>*</groupId><artifactId>*</artifactId></exclusion></exclusions>
  </dependency>
  <dependency><groupId>org.example</groupId><artifactId>spi</artifactId><version>1.0</version></dependency>
  <dependency><groupId>junit</groupId><artifactId>junit</artifactId><version>4.13</version><scope>test</scope></dependency>
  <dependency><groupId>org.example</groupId><artifactId>extra</artifactId><version>2</version><optional>true</optional></dependency>
</dependencies></project>"""
SPI_POM = """<project xmlns="http://maven.apache.org/POM/4.0.0"><dependencies>
  <dependency><groupId>org.opensearch</groupId><artifactId>opensearch</artifactId><version>2.19.1</version></dependency>
</dependencies></project>"""
EMPTY_POM = '<project xmlns="http://maven.apache.org/POM/4.0.0"></project>'


def test_pom_dependencies_keep_compile_and_runtime_scopes_only():
    found = {(dep.artifact, excludes_all) for dep, excludes_all in node.pom_dependencies(POM)}
    assert found == {("antlr4-runtime", True), ("spi", False)}


def test_module_jars_are_transitive_minus_the_servers_own_jars():
    poms = {"root": POM, "spi": SPI_POM, "opensearch": EMPTY_POM}
    fetched = []

    def fetch_pom(artifact):
        fetched.append(artifact.artifact)
        return poms[artifact.artifact]

    root = node.MavenArtifact("org.example", "root", "1.0")
    jars = node.resolve_module_jars(root, {"opensearch-2.19.1.jar"}, fetch_pom)
    assert [jar.file_name for jar in jars] == ["antlr4-runtime-4.13.1.jar", "root-1.0.jar", "spi-1.0.jar"]
    assert "antlr4-runtime" not in fetched  # "exclude *:*" means its own POM is never needed


def test_artifact_urls_follow_the_maven_layout():
    assert node.knn_artifact("2.19.1.0").url() == (
        "https://repo1.maven.org/maven2/org/opensearch/plugin/opensearch-knn/2.19.1.0/opensearch-knn-2.19.1.0.zip"
    )
    assert node.distribution_artifact("2.19.1").url("http://mirror").endswith(
        "/org/opensearch/distribution/integ-test-zip/opensearch/2.19.1/opensearch-2.19.1.zip"
    )


@pytest.fixture
def maven_repo(tmp_path):
    """A real HTTP server over a folder laid out like Maven Central (GET only, 404 for missing files)."""
    root = tmp_path / "repo"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def publish(root: Path, artifact: node.MavenArtifact, payload: bytes, sha1: str | None = None) -> Path:
    folder = root / artifact.group.replace(".", "/") / artifact.artifact / artifact.version
    folder.mkdir(parents=True, exist_ok=True)
    (folder / artifact.file_name).write_bytes(payload)
    (folder / f"{artifact.file_name}.sha1").write_text(sha1 or hashlib.sha1(payload).hexdigest())
    return folder / artifact.file_name


def test_download_verifies_the_published_sha1_and_is_reused(maven_repo, tmp_path):
    root, url = maven_repo
    artifact = node.MavenArtifact("org.example", "thing", "1.0")
    payload = os.urandom(300_000)
    published = publish(root, artifact, payload)
    downloads = tmp_path / "downloads"
    first = node.download_artifact(artifact, downloads, repo=url)
    assert first.read_bytes() == payload
    assert (downloads / "thing-1.0.jar.sha1").read_text().strip() == hashlib.sha1(payload).hexdigest()
    published.unlink()  # the second call must not need the server
    assert node.download_artifact(artifact, downloads, repo=url) == first
    assert sorted(path.name for path in downloads.iterdir()) == ["thing-1.0.jar", "thing-1.0.jar.sha1"]


def test_a_checksum_mismatch_leaves_no_file_behind(maven_repo, tmp_path):
    root, url = maven_repo
    artifact = node.MavenArtifact("org.example", "bad", "1.0")
    publish(root, artifact, b"real bytes", sha1="0" * 40)
    downloads = tmp_path / "downloads"
    with pytest.raises(node.OpenSearchNodeError, match="checksum mismatch"):
        node.download_artifact(artifact, downloads, repo=url)
    assert list(downloads.iterdir()) == []


def test_a_pinned_digest_stands_in_for_a_missing_checksum_and_must_match(maven_repo, tmp_path):
    root, url = maven_repo
    artifact = node.MavenArtifact("org.example", "unsigned", "1.0", "zip")
    payload = os.urandom(1000)
    publish(root, artifact, payload).with_name("unsigned-1.0.zip.sha1").unlink()
    pinned = ("sha512", hashlib.sha512(payload).hexdigest())
    with pytest.raises(node.OpenSearchNodeError, match="checksum mismatch"):
        node.download_artifact(artifact, tmp_path / "bad", repo=url, pinned=("sha512", "0" * 128))
    assert node.download_artifact(artifact, tmp_path / "good", repo=url, pinned=pinned).read_bytes() == payload
    signed = node.MavenArtifact("org.example", "signed", "1.0")
    publish(root, signed, payload)  # published sha1; a pin of another algorithm cannot contradict it
    assert maven.expected_checksum(signed, url, pinned)[0] == "sha1"
    with pytest.raises(maven.MavenDownloadError, match="not the digest PinText pins"):
        maven.expected_checksum(signed, url, ("sha1", "f" * 40))


def test_the_3_5_0_zip_is_the_only_pinned_download():
    server = node.OpenSearchNode(node.NodeSettings(home=Path("/nonexistent"), version="3.5.0"))
    assert server.pinned_checksum(node.distribution_artifact("3.5.0"))[0] == "sha512"
    assert server.pinned_checksum(node.knn_artifact("3.5.0.0")) is None
    older = node.OpenSearchNode(node.NodeSettings(home=Path("/nonexistent"), version="2.19.1"))
    assert older.pinned_checksum(node.distribution_artifact("2.19.1")) is None


def test_a_missing_checksum_is_an_error(maven_repo, tmp_path):
    root, url = maven_repo
    artifact = node.MavenArtifact("org.example", "unsigned", "1.0")
    publish(root, artifact, b"bytes").with_name("unsigned-1.0.jar.sha1").unlink()
    with pytest.raises(node.OpenSearchNodeError, match="no .sha512 or .sha1"):
        node.download_artifact(artifact, tmp_path / "downloads", repo=url)


# ---- URLs, pid files, logs -----------------------------------------------------------------------------------


def test_url_comes_from_the_argument_then_the_environment_then_the_managed_node(monkeypatch, tmp_path):
    monkeypatch.setenv("PINTEXT_HOME", str(tmp_path))
    monkeypatch.delenv("PINTEXT_OPENSEARCH_PORT", raising=False)
    monkeypatch.delenv("OPENSEARCH_URL", raising=False)
    assert opensearch_client.resolve_url() == "http://127.0.0.1:9200"
    monkeypatch.delenv("PINTEXT_OPENSEARCH_VERSION", raising=False)
    state = node.OpenSearchNode(node.NodeSettings.from_env()).state_file
    state.parent.mkdir(parents=True)
    state.write_text('{"url": "http://127.0.0.1:9299"}')
    assert opensearch_client.managed_node_url() == "http://127.0.0.1:9299"
    assert opensearch_client.resolve_url() == "http://127.0.0.1:9299"
    monkeypatch.setenv("OPENSEARCH_URL", "https://search.example:9201/")
    assert opensearch_client.resolve_url() == "https://search.example:9201"
    assert opensearch_client.resolve_url("http://other:9200") == "http://other:9200"
    with pytest.raises(ValueError, match="not like"):
        opensearch_client.resolve_url("localhost:9200")


def test_connect_sets_auth_and_tls_from_the_arguments():
    client = opensearch_client.connect("https://search.example:9201", user="reader", password="secret",
                                       verify_certs=False)
    host = client.transport.hosts[0]
    assert (host["host"], host["port"], host["use_ssl"]) == ("search.example", 9201, True)
    assert client.transport.kwargs["http_auth"] == ("reader", "secret")
    assert client.transport.kwargs["verify_certs"] is False


@pytest.mark.parametrize("cosine", [-1.0, -0.25, 0.0, 0.6, 1.0])
def test_knn_score_transform_round_trips(cosine):
    score = opensearch_client.knn_score_from_cosine(cosine)
    assert 0.0 <= score <= 1.0
    assert opensearch_client.cosine_from_knn_score(score) == pytest.approx(cosine)


def test_down_never_signals_a_process_it_did_not_start(tmp_path):
    settings = node.NodeSettings(home=tmp_path)
    pid_file = node.OpenSearchNode(settings).pid_file
    bystander = subprocess.Popen(["sleep", "60"])
    try:
        pid_file.parent.mkdir(parents=True)
        pid_file.write_text(f"{bystander.pid}\n")
        assert node.stop(settings, timeout_s=2) is None
        assert bystander.poll() is None  # still running
        assert not pid_file.exists()  # the stale pid file is gone
    finally:
        bystander.kill()
        bystander.wait()


def test_tail_lines_returns_the_last_lines(tmp_path):
    log = tmp_path / "node.log"
    log.write_text("".join(f"line {number}\n" for number in range(5000)))
    assert node.tail_lines(log, 3) == ["line 4997", "line 4998", "line 4999"]
    assert node.tail_lines(log, 0) == []
    assert node.tail_lines(tmp_path / "missing.log", 5) == []


# ---- a real node ---------------------------------------------------------------------------------------------

DIM = 8


def unit(vector: np.ndarray) -> np.ndarray:
    return vector / np.linalg.norm(vector)


@pytest.mark.opensearch
def test_lucene_hnsw_engine_works_without_native_libraries(opensearch, opensearch_index_name):
    """FAISS/NMSLIB need native libraries the Maven zip lacks; Lucene's HNSW is pure Java."""
    rng = np.random.default_rng(11)
    vectors = rng.normal(size=(30, DIM)).astype(np.float32)
    opensearch.indices.create(index=opensearch_index_name, body={
        "settings": {"index": {"knn": True, "number_of_shards": 1, "number_of_replicas": 0}},
        "mappings": {"properties": {"vector": {"type": "knn_vector", "dimension": DIM, "method": {
            "name": "hnsw", "engine": "lucene", "space_type": "cosinesimil"}}}},
    })
    for number, vector in enumerate(vectors):
        opensearch.index(index=opensearch_index_name, id=str(number), body={"vector": vector.tolist()})
    opensearch.indices.refresh(index=opensearch_index_name)
    query = rng.normal(size=DIM).astype(np.float32)
    response = opensearch.search(index=opensearch_index_name,
                                 body={"size": 5, "query": {"knn": {"vector": {"vector": query.tolist(), "k": 5}}}})
    cosines = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)) @ unit(query)
    top = [hit["_id"] for hit in response["hits"]["hits"]]
    assert top[0] == str(int(np.argmax(cosines)))  # 30 points: HNSW finds the true nearest
    for hit in response["hits"]["hits"]:
        assert opensearch_client.cosine_from_knn_score(hit["_score"]) == pytest.approx(cosines[int(hit["_id"])],
                                                                                       abs=1e-5)
    assert opensearch.cluster.health()["status"] in ("green", "yellow")


# ---- the managed node's lifecycle through the CLI ------------------------------------------------------------


def pintext_command(*args: str, env: dict[str, str | None]) -> Ran:
    """`pintext opensearch ARGS` as a real process: the node it starts must outlive the command."""
    return run_pintext(["opensearch", *args], env=env, real_process=True, timeout=400)


def recorded_pid(env: dict[str, str | None]) -> int:
    return int(node.OpenSearchNode(node.NodeSettings(home=Path(env["PINTEXT_HOME"]))).pid_file.read_text())


@pytest.fixture
def lifecycle_env():
    """A private PINTEXT_HOME (sharing the download cache) and a free port, so the session's node is untouched.

    Not under pytest's tmp_path: pytest keeps /tmp/pytest-of-<user> at mode 0700 (and re-applies that when any
    other session starts), which the node's service user cannot traverse.
    """
    settings = node.NodeSettings.from_env(version=node.DEFAULT_VERSION)
    try:
        node.OpenSearchNode(settings).choose_java()
    except node.OpenSearchNodeError as error:
        if in_ci():
            pytest.fail(f"{error} (CI=true)")
        pytest.skip(str(error))
    home = Path(tempfile.mkdtemp(prefix="pintext-lifecycle-"))
    downloads = node.OpenSearchNode(settings).downloads_dir
    downloads.mkdir(parents=True, exist_ok=True)
    (home / "downloads").symlink_to(downloads)
    env = {"PINTEXT_HOME": str(home), "PINTEXT_OPENSEARCH_PORT": str(free_port()), "PINTEXT_OPENSEARCH_HEAP": "384m",
           "COLUMNS": "200", "OPENSEARCH_URL": None, "PINTEXT_OPENSEARCH_VERSION": None}
    yield env
    pintext_command("down", env=env)
    shutil.rmtree(home, ignore_errors=True)


@pytest.mark.opensearch
@pytest.mark.slow
def test_up_is_idempotent_and_down_then_up_works(lifecycle_env):
    first = pintext_command("up", env=lifecycle_env)
    assert first.code == 0, first.stdout + first.stderr
    assert "up at" in first.stdout
    pid = recorded_pid(lifecycle_env)

    again = pintext_command("up", env=lifecycle_env)
    assert again.code == 0 and "already running" in again.stdout and f"pid {pid}" in again.stdout

    status = pintext_command("status", "--json", env=lifecycle_env)
    assert status.code == 0, status.stdout + status.stderr
    knn = node.VERSIONS[node.DEFAULT_VERSION].knn_version
    assert f'"opensearch-knn {knn}"' in status.stdout and f'"pid": {pid}' in status.stdout

    logs = pintext_command("logs", "-n", "5", env=lifecycle_env)
    assert logs.code == 0 and len(logs.stdout.splitlines()) >= 5 and "pintext-local" in logs.stdout

    down = pintext_command("down", env=lifecycle_env)
    assert down.code == 0 and "stopped" in down.stdout
    assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]
    assert pintext_command("status", env=lifecycle_env).code == 1
    assert "no managed OpenSearch node" in pintext_command("down", env=lifecycle_env).stdout

    restarted = pintext_command("up", env=lifecycle_env)
    assert restarted.code == 0 and "up at" in restarted.stdout, restarted.stdout + restarted.stderr
    assert recorded_pid(lifecycle_env) != pid
    assert "stopped" in pintext_command("down", env=lifecycle_env).stdout


# ---- docker-compose.yml --------------------------------------------------------------------------------------


def test_docker_compose_is_the_default_version_without_security_and_with_a_health_check():
    import yaml  # the test extra pins PyYAML; no Docker runs here, so parsing is what can be checked
    compose = yaml.safe_load((Path(__file__).parents[1] / "docker-compose.yml").read_text())
    opensearch, dashboards = compose["services"]["opensearch"], compose["services"]["dashboards"]
    assert opensearch["image"] == f"opensearchproject/opensearch:{node.OPENSEARCH_VERSION}"
    assert dashboards["image"].split(":")[1] == opensearch["image"].split(":")[1]
    assert opensearch["environment"]["discovery.type"] == "single-node"
    assert opensearch["environment"]["DISABLE_SECURITY_PLUGIN"] == "true"
    assert "_cluster/health" in " ".join(opensearch["healthcheck"]["test"])
    assert dashboards["depends_on"]["opensearch"]["condition"] == "service_healthy"
    assert "http://opensearch:9200" in dashboards["environment"]["OPENSEARCH_HOSTS"]
    elasticsearch = compose["services"]["elasticsearch"]
    assert elasticsearch["image"].endswith(":8.15.0") and elasticsearch["profiles"] == ["elasticsearch"]
    assert elasticsearch["environment"]["xpack.security.enabled"] == "false"


def test_a_failed_start_reports_only_what_this_start_wrote(tmp_path):
    server = node.OpenSearchNode(node.NodeSettings(home=tmp_path))
    server.logs_dir.mkdir(parents=True)
    server.log_file.write_text("old run: started\n")
    offsets = {path: process.file_size(path) for path in (server.log_file, server.console_file)}
    server.console_file.write_text("Error occurred during initialization of VM\nToo small maximum heap\n")
    message = server.failure_report("did not start", offsets)
    assert message.startswith("did not start")
    assert "Too small maximum heap" in message and "old run" not in message


@pytest.mark.opensearch
def test_assembled_modules_serve_search_templates_and_language_analyzers(opensearch, opensearch_index_name):
    """lang-mustache (stored search templates) and analysis-common (language analyzers) are rebuilt from Maven."""
    tokens = opensearch.indices.analyze(body={"analyzer": "english", "text": "Running boards"})["tokens"]
    assert [token["token"] for token in tokens] == ["run", "board"]
    opensearch.indices.create(index=opensearch_index_name, body=pins_index_body(DIM))
    opensearch.index(index=opensearch_index_name, id="pin-a", body={"id": "pin-a", "board": "kitchen"}, refresh=True)
    opensearch.index(index=opensearch_index_name, id="pin-b", body={"id": "pin-b", "board": "garden"}, refresh=True)
    script_id = f"{opensearch_index_name}-board"
    opensearch.put_script(id=script_id, body={"script": {
        "lang": "mustache", "source": {"query": {"term": {"board": "{{board}}"}}}}})
    try:
        response = opensearch.search_template(index=opensearch_index_name,
                                              body={"id": script_id, "params": {"board": "garden"}})
        assert [hit["_id"] for hit in response["hits"]["hits"]] == ["pin-b"]
    finally:
        opensearch.delete_script(id=script_id)
