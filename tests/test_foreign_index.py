"""Issue 22, indexes PinText did not make: `index delete --index X` deleted any index; `ingest` and `index promote`
on one gave misleading reasons ("built for another model (fingerprint: index has None)", "made before
versioning"). Now every command names such an index the same way ("X was not made by PinText (no PinText
_meta)"), deleting it needs `--force`, and `index delete --version` takes the model id PinText prints. Real nodes:
OpenSearch 3.5.0, 2.19.1 and Elasticsearch 8.15.0; the foreign index is made with the engine's own client.
"""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path

import pytest

from pintext.serving.engines import EngineOptions, open_engine
from tests.factories import make_model, titled_pins, write_pins
from tests.fixtures_cli import run_pintext
from tests.fixtures_engines import ENGINE_NODE_FIXTURES

TITLES = ["red chair", "oak table", "blue lamp"]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("foreign")
    make_model(folder / "model-a", texts=TITLES, dim=8, seed=0)
    make_model(folder / "model-b", texts=TITLES, dim=8, seed=1)
    write_pins(folder / "pins.jsonl", titled_pins(TITLES))
    return folder


@pytest.fixture(params=ENGINE_NODE_FIXTURES)
def node(request):
    return request.getfixturevalue(request.param)


def invoke(*args: str):
    result = run_pintext(args)
    assert "Traceback" not in result.output and not isinstance(result.exception, (KeyError, AttributeError))
    return result


def error_line(result) -> str:
    assert result.code == 2, (result.output, result.exception)
    lines = [line for line in result.output.splitlines() if line.strip() and not line.startswith("dead letter:")]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    return lines[0]


def make_foreign_index(node, name: str) -> object:
    """An index another tool made: its own mapping and `_meta`, one document; returns the engine's client."""
    client = open_engine(node.engine, EngineOptions(url=node.url)).client  # type: ignore[attr-defined]
    mappings = {"_meta": {"owner": "another-tool"}, "properties": {"title": {"type": "text"}}}
    if node.engine == "elasticsearch":
        client.indices.create(index=name, mappings=mappings)
        client.index(index=name, id="1", document={"title": "red chair"}, refresh=True)
    else:
        client.indices.create(index=name, body={"mappings": mappings})
        client.index(index=name, id="1", body={"title": "red chair"}, refresh=True)
    return client


def test_a_foreign_index_is_named_as_such_and_kept_without_force(workdir, node):
    name = f"foreign-{uuid.uuid4().hex[:8]}"
    client = make_foreign_index(node, name)
    where = ["--engine", node.engine, "--url", node.url, "--index", name]
    model = ["--model", str(workdir / "model-a")]
    named = f"error: {name} was not made by PinText (no PinText _meta): "
    hint = f"pick another --index (or delete it: pintext index delete --index {name} --force)"
    try:
        assert error_line(invoke("ingest", str(workdir / "pins.jsonl"), *model, *where)) == \
            f"{named}PinText does not write into it; {hint}"
        assert error_line(invoke("index", "promote", *model, *where)) == \
            f"{named}there is nothing to promote; {hint}"
        for command in (["search", "red chair"], ["search", "red chair", "--hybrid"], ["related", "1"],
                        ["dsl", "red chair"]):
            assert error_line(invoke(*command, *model, *where)) == f"{named}PinText does not search it; {hint}"
        assert error_line(invoke("index", "delete", *where)) == f"{named}pass --force to delete it anyway"
        assert error_line(invoke("index", "delete", *where, "--version", name)) == \
            f"{named}pass --force to delete it anyway"
        # kept as it was: its document, its own _meta, no PinText field added
        assert int(client.count(index=name)["count"]) == 1
        info = json.loads(invoke("index", "info", *where).stdout)
        assert [row["made_by_pintext"] for row in info["versions"]] == [False]
        assert info["versions"][0]["meta"] == {"owner": "another-tool"}
        deleted = invoke("index", "delete", *where, "--force")
        assert deleted.code == 0 and deleted.stdout.strip() == f"deleted: {name}"
        assert not client.indices.exists(index=name)
    finally:
        if client.indices.exists(index=name):
            client.indices.delete(index=name)


def test_delete_version_takes_the_model_id_pintext_prints(workdir, node):
    name = f"versions-{uuid.uuid4().hex[:8]}"
    where = ["--engine", node.engine, "--url", node.url, "--index", name]
    printed = {}
    for model in ("model-a", "model-b"):
        created = invoke("index", "create", "--model", str(workdir / model), "--no-tune", *where)
        created.ok()
        printed[model] = re.search(r"model ([0-9a-f]{12})", created.stdout).group(1)
    try:
        info = json.loads(invoke("index", "info", *where).stdout)
        fingerprints = {row["index"]: row["model_fingerprint"] for row in info["versions"]}
        assert info["serving"] == f"{name}-{printed['model-a']}" and len(fingerprints) == 2
        # the serving version is refused by its model id too
        assert "serves" in error_line(invoke("index", "delete", *where, "--version", printed["model-a"]))
        waiting = invoke("index", "delete", *where, "--version", printed["model-b"])
        assert waiting.code == 0 and waiting.stdout.strip() == f"deleted: {name}-{printed['model-b']}"
        # the whole fingerprint `index info` prints names the version as well
        created = invoke("index", "create", "--model", str(workdir / "model-b"), "--no-tune", *where)
        assert created.code == 0
        again = invoke("index", "delete", *where, "--version", fingerprints[f"{name}-{printed['model-b']}"])
        assert again.stdout.strip() == f"deleted: {name}-{printed['model-b']}"
        assert invoke("index", "delete", *where, "--version", "0123456789ab").stdout.strip() == \
            "absent: 0123456789ab"
        assert [row["index"] for row in json.loads(invoke("index", "info", *where).stdout)["versions"]] == \
            [f"{name}-{printed['model-a']}"]
    finally:
        invoke("index", "delete", *where)
