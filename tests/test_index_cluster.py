"""`pintext index create --shards/--replicas` and `index info` against a real OpenSearch node.

The test node is a single node: a replica can never be allocated there, so an index with replicas > 0 stays
yellow. The tests assert the settings the index got, and the health `index info` reports, not green health.
"""

from __future__ import annotations

import json

import pytest

from tests.factories import make_model
from tests.fixtures_cli import run_pintext
from tests.serving_helpers import os_args

pytestmark = pytest.mark.opensearch


def run(*args: str) -> str:
    return run_pintext(args).ok()


def index_settings(client, index: str) -> tuple[int, int]:
    # `index` is the alias users search; the settings are those of the one index behind it.
    (found,) = client.indices.get_settings(index=index).values()
    settings = found["settings"]["index"]
    return int(settings["number_of_shards"]), int(settings["number_of_replicas"])


def test_defaults_are_one_shard_no_replica(opensearch, opensearch_index_name, tmp_path):
    model = make_model(tmp_path / "model")
    printed = run("index", "create", "--model", str(model), *os_args(opensearch, opensearch_index_name))
    assert "created" in printed and "1 shards x 0 replicas" in printed
    assert index_settings(opensearch, opensearch_index_name) == (1, 0)
    info = json.loads(run("index", "info", *os_args(opensearch, opensearch_index_name)))
    assert (info["shards"], info["replicas"], info["docs"]) == (1, 0, 0)
    assert info["health"] == "green"


def test_shards_and_replicas_reach_the_index_and_info(opensearch, opensearch_index_name, tmp_path):
    model = make_model(tmp_path / "model")
    printed = run("index", "create", "--model", str(model), "--shards", "3", "--replicas", "1",
                  *os_args(opensearch, opensearch_index_name))
    assert "3 shards x 1 replicas" in printed
    assert index_settings(opensearch, opensearch_index_name) == (3, 1)
    info = json.loads(run("index", "info", *os_args(opensearch, opensearch_index_name)))
    assert (info["shards"], info["replicas"]) == (3, 1)
    assert info["meta"]["dim"] == 16
    nodes = int(opensearch.cluster.health()["number_of_nodes"])
    if nodes == 1:  # the replicas cannot be placed on the only node
        assert info["health"] == "yellow"
    shards = opensearch.cat.shards(index=opensearch_index_name, format="json")
    assert sorted(row["prirep"] for row in shards) == ["p"] * 3 + ["r"] * 3

    # Creating again with other numbers changes nothing and says so; the model check still passes.
    again = run_pintext(["index", "create", "--model", str(model), "--shards", "1",
                         *os_args(opensearch, opensearch_index_name)])
    again.ok()
    assert "exists, same model" in again.stdout and "3 shards x 1 replicas" in again.stdout
    assert "--shards/--replicas were not applied" in again.stderr
    assert index_settings(opensearch, opensearch_index_name) == (3, 1)


def test_invalid_counts_are_refused_before_any_request(opensearch, opensearch_index_name, tmp_path):
    model = make_model(tmp_path / "model")
    for flag, value in (("--shards", "0"), ("--replicas", "-1")):
        result = run_pintext(["index", "create", "--model", str(model), flag, value,
                              *os_args(opensearch, opensearch_index_name)])
        assert result.code == 2
    assert not opensearch.indices.exists(index=opensearch_index_name)
