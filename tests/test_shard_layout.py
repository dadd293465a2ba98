"""`pintext index info` shows every shard copy (primary or replica, node, state) on each engine, and a new index
gets the engine's default replicas: 0 on a single node (tests/test_faults.py checks 1 on three nodes)."""

from __future__ import annotations

import json
import uuid

import pytest

from pintext.serving.engines import EngineOptions, open_engine
from tests.factories import make_model, make_pins, write_pins_file
from tests.fixtures_cli import run_pintext

ENGINES = {  # engine -> the session node fixture (None: the local engine, no server)
    "local": None,
    "opensearch": "opensearch_node",
    "elasticsearch": "elasticsearch_node",
}
MARKS = {"opensearch": pytest.mark.opensearch, "elasticsearch": pytest.mark.elasticsearch}


def run(*args: str) -> str:
    return run_pintext(args).ok()


@pytest.mark.parametrize("engine", [pytest.param(name, marks=[MARKS[name]] if name in MARKS else [])
                                    for name in ENGINES])
def test_index_info_lists_the_shard_copies_and_a_single_node_gets_no_replica(engine, request, tmp_path):
    index = f"layout-{uuid.uuid4().hex[:8]}"
    if ENGINES[engine] is None:
        options = EngineOptions(local_dir=tmp_path / "local")
        where = ["--local-dir", str(tmp_path / "local")]
    else:
        url = request.getfixturevalue(ENGINES[engine]).url
        options = EngineOptions(url=url)
        where = ["--url", url]
    cli = ["--engine", engine, "--index", index, *where]
    pins_file = tmp_path / "pins.jsonl"
    valid = write_pins_file(pins_file, make_pins(60))
    run("ingest", str(pins_file), "--model", str(make_model(tmp_path / "model")), "--no-tune", "--json", *cli)
    try:
        assert open_engine(engine, options).default_replicas() == 0
        info = json.loads(run("index", "info", *cli))
        assert info["replicas"] in (0, None)
        assert info["shard_copies"] == [{"shard": 0, "primary": True, "state": "STARTED",
                                         "node": info["shard_copies"][0]["node"], "docs": valid}]
        assert info["shard_copies"][0]["node"]
    finally:
        run("index", "delete", *cli)
