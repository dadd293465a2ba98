"""The OpenSearch Dashboards saved objects (mappings/dashboards.ndjson) and `pintext dashboards export`.

Dashboards itself cannot run on the build machines (no Docker engine; it is on neither PyPI nor Maven Central),
so these tests check what can go wrong without it: the ndjson's syntax, ids, references, and that the index
pattern describes exactly the fields the pins mapping has.
"""

from __future__ import annotations

import json
from importlib import resources

import pytest

from pintext import dashboards
from pintext.mapping import pins_index_body
from tests.fixtures_cli import run_pintext

PACKAGED = resources.files("pintext.mappings").joinpath("dashboards.ndjson").read_text(encoding="utf-8")


def parse(text: str) -> list[dict]:
    assert text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()]


def test_every_line_is_a_json_saved_object():
    objects = parse(PACKAGED)
    assert all(line.strip() for line in PACKAGED.splitlines())
    assert [obj["type"] for obj in objects].count("index-pattern") == 1
    assert {obj["type"] for obj in objects} == {"index-pattern", "search", "visualization", "dashboard"}
    for obj in objects:
        assert set(obj) >= {"id", "type", "attributes", "references", "migrationVersion"}
        assert obj["attributes"]["title"]
        for key in ("fields", "fieldFormatMap", "sourceFilters", "visState", "uiStateJSON", "panelsJSON",
                    "optionsJSON"):
            if key in obj["attributes"]:
                json.loads(obj["attributes"][key])  # Dashboards stores these as JSON strings
        meta = obj["attributes"].get("kibanaSavedObjectMeta")
        if meta:
            json.loads(meta["searchSourceJSON"])


@pytest.mark.parametrize("index", ["pins", "pins-v2", "pins-*"])
def test_ids_unique_and_references_resolve(index):
    objects = parse(dashboards.export_ndjson(index))
    ids = [obj["id"] for obj in objects]
    assert len(ids) == len(set(ids))
    pattern = next(obj for obj in objects if obj["type"] == "index-pattern")
    assert pattern["attributes"]["title"] == index
    assert pattern["id"] == dashboards.index_pattern_id(index)
    by_id = {obj["id"]: obj for obj in objects}
    for obj in objects:
        assert obj["id"].startswith(pattern["id"])
        for reference in obj["references"]:
            assert reference["id"] in by_id, reference
            assert by_id[reference["id"]]["type"] == reference["type"]
        if obj["type"] in ("search", "visualization"):
            source = json.loads(obj["attributes"]["kibanaSavedObjectMeta"]["searchSourceJSON"])
            ref = next(r for r in obj["references"] if r["name"] == source["indexRefName"])
            assert (ref["type"], ref["id"]) == ("index-pattern", pattern["id"])
            assert f"[{index}]" in obj["attributes"]["title"]
        if obj["type"] == "dashboard":
            names = {panel["panelRefName"] for panel in json.loads(obj["attributes"]["panelsJSON"])}
            assert names == {reference["name"] for reference in obj["references"]}


def test_default_export_is_the_packaged_file():
    assert parse(dashboards.export_ndjson()) == parse(PACKAGED)
    assert dashboards.index_pattern_id("pins-*") == "pintext-pins-_"


def test_index_pattern_fields_match_the_mapping():
    properties = pins_index_body(8)["mappings"]["properties"]
    pattern = next(obj for obj in parse(PACKAGED) if obj["type"] == "index-pattern")
    fields = {field["name"]: field for field in json.loads(pattern["attributes"]["fields"])}
    assert {name for name in fields if not name.startswith("_")} == set(properties)
    for name, spec in properties.items():
        field = fields[name]
        assert field["esTypes"] == [spec["type"]]
        assert field["type"] == ("string" if spec["type"] in ("keyword", "text") else "unknown")
        assert field["aggregatable"] == (spec["type"] == "keyword" and spec.get("doc_values", True))
        assert field["searchable"] == (spec["type"] != "knn_vector" and spec.get("index", True))
    # The big machine fields stay out of Discover's documents.
    assert {f["value"] for f in json.loads(pattern["attributes"]["sourceFilters"])} == {"vector", "lsh_tokens", "token_cell"}


def test_saved_views_use_mapped_aggregatable_fields():
    objects = parse(PACKAGED)
    pattern = next(obj for obj in objects if obj["type"] == "index-pattern")
    fields = {field["name"]: field for field in json.loads(pattern["attributes"]["fields"])}
    searches = [obj for obj in objects if obj["type"] == "search"]
    discover = next(obj for obj in searches if obj["id"] == "pintext-pins-discover")
    assert discover["attributes"]["columns"] == ["title", "description", "board", "annotations"]
    for search in searches:
        assert set(search["attributes"]["columns"]) <= set(fields)
        for field, _direction in search["attributes"]["sort"]:
            assert fields[field]["aggregatable"]
    bucket_fields = set()
    for vis in (obj for obj in objects if obj["type"] == "visualization"):
        for agg in json.loads(vis["attributes"]["visState"])["aggs"]:
            if "field" in agg["params"]:
                assert fields[agg["params"]["field"]]["aggregatable"], agg
                bucket_fields.add(agg["params"]["field"])
    assert bucket_fields == {"board", "annotations"}


def test_cli_export_to_stdout_and_file(tmp_path):
    printed = run_pintext(["dashboards", "export", "--index", "pins-v2"])
    printed.ok()
    assert parse(printed.stdout) == parse(dashboards.export_ndjson("pins-v2"))
    out = tmp_path / "sub" / "pins.ndjson"
    written = run_pintext(["dashboards", "export", "--out", str(out)])
    written.ok()
    assert out.read_text(encoding="utf-8") == dashboards.export_ndjson("pins")
    bad = run_pintext(["dashboards", "export", "--index", "a,b"])
    assert bad.code == 2
    assert "not a usable index name" in bad.output
