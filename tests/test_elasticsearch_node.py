"""The managed Elasticsearch 8.15.0 node: its settings and config, and, on a real node, the features PinText's
Elasticsearch serving relies on (exact `dense_vector` kNN with filters and its score, `_meta`, `_bulk`, BM25,
aliases), checked against numpy; plus the `pintext elasticsearch up|status|down` lifecycle."""

from __future__ import annotations

import shutil
import tempfile
import uuid
from pathlib import Path

import numpy as np
import pytest

from pintext.servers import elasticsearch_node as es_node
from tests.fixtures_cli import Ran, run_pintext
from tests.fixtures_engines import unavailable
from tests.fixtures_opensearch import drop_indexes


def parse_yml(text: str) -> dict[str, str]:
    pairs = (line.split(": ", 1) for line in text.splitlines() if line.strip() and not line.startswith("#"))
    return {key: value for key, value in pairs}


# ---- settings and config -------------------------------------------------------------------------------------


def test_settings_come_from_the_environment_with_a_port_clear_of_opensearch(monkeypatch, tmp_path):
    monkeypatch.setenv("PINTEXT_HOME", str(tmp_path))
    monkeypatch.delenv("PINTEXT_ELASTICSEARCH_PORT", raising=False)
    monkeypatch.delenv("PINTEXT_ELASTICSEARCH_HEAP", raising=False)
    settings = es_node.ElasticsearchSettings.from_env()
    assert (settings.version, settings.port, settings.heap) == ("8.15.0", 9400, "512m")
    monkeypatch.setenv("PINTEXT_ELASTICSEARCH_PORT", "9555")
    monkeypatch.setenv("PINTEXT_ELASTICSEARCH_HEAP", "1g")
    assert (es_node.managed_node().url, es_node.managed_node().settings.heap) == ("http://127.0.0.1:9555", "1g")
    monkeypatch.setenv("PINTEXT_ELASTICSEARCH_PORT", "ninety")
    with pytest.raises(es_node.ElasticsearchNodeError, match="PINTEXT_ELASTICSEARCH_PORT"):
        es_node.managed_node()


def test_config_is_a_loopback_single_node_without_security_or_watermarks(tmp_path):
    server = es_node.ElasticsearchNode(es_node.ElasticsearchSettings(home=tmp_path, port=9433))
    config = parse_yml(server.render_config())
    assert config["network.host"] == "127.0.0.1" and config["http.port"] == "9433"
    assert config["discovery.type"] == "single-node"
    assert config["xpack.security.enabled"] == "false"
    assert config["cluster.routing.allocation.disk.threshold_enabled"] == "false"
    assert config["path.data"] == str(tmp_path / "elasticsearch" / "8.15.0" / "data")
    assert server.identity_args() == ("org.elasticsearch.launcher.CliToolLauncher",
                                      f"-Des.path.home={tmp_path / 'elasticsearch' / '8.15.0'}")


def test_the_distribution_is_the_integ_test_zip_and_java_is_17_to_23(tmp_path):
    server = es_node.managed_node()
    assert server.distribution_artifact().url().endswith(
        "/org/elasticsearch/distribution/integ-test-zip/elasticsearch/8.15.0/elasticsearch-8.15.0.zip")
    assert server.java_range().accepts(17) and server.java_range().accepts(23)
    assert not server.java_range().accepts(24)  # 8.15 runs under the Security Manager, gone in JDK 24
    assert server.java_env(Path("/opt/jdk17"))["ES_JAVA_HOME"] == "/opt/jdk17"
    assert "JAVA_HOME" not in server.java_env(Path("/opt/jdk17"))


def test_only_8_15_0_is_managed():
    es_node.check_version(None)
    es_node.check_version("8.15.0")
    with pytest.raises(es_node.ElasticsearchNodeError, match="the managed version is 8.15.0"):
        es_node.check_version("9.0.0")


# ---- a real node ---------------------------------------------------------------------------------------------

DIM = 16


@pytest.fixture(scope="module")
def es(elasticsearch_node):
    try:
        from elasticsearch import Elasticsearch
    except ImportError:
        unavailable("the Elasticsearch client", "pip install 'pintext[elasticsearch]'")
    return Elasticsearch(elasticsearch_node.url, request_timeout=60)


@pytest.fixture
def es_index(es):
    name = f"pintext-test-{uuid.uuid4().hex[:12]}"
    yield name
    drop_indexes(es, name)


def unit_rows(matrix: np.ndarray) -> np.ndarray:
    return matrix / np.linalg.norm(matrix, axis=1, keepdims=True)


def create_pins_index(es, name: str, meta: dict | None = None) -> None:
    es.indices.create(index=name, settings={"number_of_shards": 1, "number_of_replicas": 0}, mappings={
        "dynamic": False, "_meta": meta or {},
        "properties": {"id": {"type": "keyword"}, "title": {"type": "text"}, "lsh_tokens": {"type": "keyword"},
                       "vector": {"type": "dense_vector", "dims": DIM, "index": True, "similarity": "cosine",
                                  "index_options": {"type": "flat"}}}})


@pytest.mark.elasticsearch
def test_the_node_is_8_15_0_on_loopback(elasticsearch_node):
    assert elasticsearch_node.version == "8.15.0" and elasticsearch_node.id == "elasticsearch-8.15.0"


@pytest.mark.elasticsearch
def test_filtered_flat_knn_returns_exactly_the_filtered_docs_scored_half_of_one_plus_cosine(es, es_index):
    rng = np.random.default_rng(5)
    vectors = rng.normal(size=(120, DIM)).astype(np.float32)
    query = rng.normal(size=DIM).astype(np.float32)
    create_pins_index(es, es_index, {"model_fingerprint": "abc", "dim": DIM, "lsh": {"tables": 4, "bits": 8}})
    operations: list[dict] = []
    for number, vector in enumerate(vectors):
        operations += [{"index": {"_index": es_index, "_id": f"pin-{number}"}},
                       {"id": f"pin-{number}", "title": f"pin {number}", "vector": vector.tolist()}]
    operations += [{"index": {"_index": es_index, "_id": "no-vector"}}, {"id": "no-vector", "title": "text only"}]
    bulk = es.bulk(operations=operations, refresh=True)
    assert bulk["errors"] is False and es.count(index=es_index)["count"] == 121
    assert es.indices.get_mapping(index=es_index)[es_index]["mappings"]["_meta"]["lsh"] == {"tables": 4, "bits": 8}

    allowed = [f"pin-{number}" for number in range(0, 120, 4)] + ["no-vector"]
    cosines = unit_rows(vectors) @ (query / np.linalg.norm(query))
    expected = sorted(allowed[:-1], key=lambda pin_id: -cosines[int(pin_id.split("-")[1])])
    for id_filter in ({"ids": {"values": allowed}}, {"terms": {"id": allowed}}):
        response = es.search(index=es_index, size=len(allowed), knn={
            "field": "vector", "query_vector": query.tolist(), "k": len(allowed), "num_candidates": len(allowed),
            "filter": id_filter})
        hits = response["hits"]["hits"]
        assert [hit["_id"] for hit in hits] == expected  # every filtered pin with a vector, in exact order
        for hit in hits:
            cosine = cosines[int(hit["_id"].split("-")[1])]
            assert hit["_score"] == pytest.approx((1 + cosine) / 2, abs=1e-6)
    top = es.search(index=es_index, size=5, knn={"field": "vector", "query_vector": query.tolist(), "k": 5,
                                                  "num_candidates": 5, "filter": {"ids": {"values": allowed}}})
    assert [hit["_id"] for hit in top["hits"]["hits"]] == expected[:5]  # flat is exact: no candidate pool loss


@pytest.mark.elasticsearch
def test_a_zero_vector_is_refused_under_cosine(es, es_index):
    from elasticsearch import BadRequestError

    create_pins_index(es, es_index)
    with pytest.raises(BadRequestError, match="zero magnitude"):
        es.index(index=es_index, id="zero", document={"vector": [0.0] * DIM})


@pytest.mark.elasticsearch
def test_multi_match_bm25_and_alias_actions(es, es_index):
    create_pins_index(es, es_index)
    es.bulk(refresh=True, operations=[
        {"index": {"_index": es_index, "_id": "a"}}, {"id": "a", "title": "red running shoe"},
        {"index": {"_index": es_index, "_id": "b"}}, {"id": "b", "title": "blue hat"},
        {"index": {"_index": es_index, "_id": "c"}}, {"id": "c", "title": "red hat"}])
    hits = es.search(index=es_index, query={"multi_match": {"query": "red shoe", "fields": ["title"]}})["hits"]["hits"]
    assert [hit["_id"] for hit in hits] == ["a", "c"] and hits[0]["_score"] > hits[1]["_score"] > 0
    alias = f"{es_index}-live"
    es.indices.update_aliases(actions=[{"add": {"index": es_index, "alias": alias}}])
    assert es.count(index=alias)["count"] == 3
    es.indices.update_aliases(actions=[{"remove": {"index": es_index, "alias": alias}}])
    assert not es.indices.exists_alias(name=alias)


# ---- the managed node's lifecycle through the CLI ------------------------------------------------------------


def processes_mentioning(text: str) -> list[int]:
    """Live processes whose command line mentions `text` (zombies excluded)."""
    from pintext.servers import process

    pids = (int(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdigit())
    return [pid for pid in pids if any(text in arg for arg in process.process_args(pid)) and process.is_alive(pid)]


def pintext_command(*args: str, env: dict[str, str | None]) -> Ran:
    """`pintext elasticsearch ARGS` as a real process: the node it starts must outlive the command."""
    return run_pintext(["elasticsearch", *args], env=env, real_process=True, timeout=400)


@pytest.mark.elasticsearch
@pytest.mark.slow
def test_up_status_down_with_a_private_home():
    """A fresh PINTEXT_HOME sharing the download cache (not under pytest's 0700 tmp folder: the service user
    must reach it), on a free port, so the session's node is untouched."""
    from tests.serving_helpers import free_port

    shared_downloads = es_node.managed_node().downloads_dir
    home = Path(tempfile.mkdtemp(prefix="pintext-es-lifecycle-"))
    shared_downloads.mkdir(parents=True, exist_ok=True)
    (home / "downloads").symlink_to(shared_downloads)
    env = {"PINTEXT_HOME": str(home), "PINTEXT_ELASTICSEARCH_PORT": str(free_port()),
           "PINTEXT_ELASTICSEARCH_HEAP": "384m", "COLUMNS": "200", "ELASTICSEARCH_URL": None}
    try:
        up = pintext_command("up", env=env)
        assert up.code == 0 and "Elasticsearch 8.15.0 up at" in up.stdout, up.stdout + up.stderr
        status = pintext_command("status", "--json", env=env)
        assert status.code == 0 and '"version": "8.15.0"' in status.stdout, status.stdout + status.stderr
        down = pintext_command("down", env=env)
        assert down.code == 0 and "Elasticsearch 8.15.0 stopped" in down.stdout
        assert processes_mentioning(str(home)) == []  # the launcher took its server JVM down with it
        assert pintext_command("status", env=env).code == 1
    finally:
        pintext_command("down", env=env)
        shutil.rmtree(home, ignore_errors=True)


def test_managed_url_is_the_recorded_one_else_the_configured_one(monkeypatch, tmp_path):
    monkeypatch.setenv("PINTEXT_HOME", str(tmp_path))
    monkeypatch.setenv("PINTEXT_ELASTICSEARCH_PORT", "9477")
    assert es_node.managed_url() == "http://127.0.0.1:9477"
    state = es_node.managed_node().state_file
    state.parent.mkdir(parents=True)
    state.write_text('{"url": "http://127.0.0.1:9488"}')
    assert es_node.managed_url() == "http://127.0.0.1:9488"
