"""`pintext ingest`: counts, dead letters, idempotent re-runs, crash + resume; local backend and real OpenSearch.

The tiny model with a random word table and the pins file with known bad lines come from tests/factories.py.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from pintext.constants import DEFAULT_INGEST_WORKERS
from pintext.encoder import Encoder
from pintext.ingest.indexer import FAIL_AFTER_BATCHES_ENV, default_state
from tests.factories import BAD_LINES, DIM, OOV_ID, make_model, make_pins, model_snapshot, write_pins_file
from tests.fixtures_cli import PINTEXT, run_pintext
from tests.serving_helpers import free_port, local_index, only, os_args


def cli(*args: str, env: dict | None = None) -> dict:
    """Run a pintext command in-process with --json and return its parsed last stdout line."""
    return run_pintext([*args, "--json"], env=env).json()


@pytest.fixture()
def model_dir(tmp_path) -> Path:
    return make_model(tmp_path / "model")


# ---- local backend (no server) ---------------------------------------------------------------------------------


def local_ingest(pins_file: Path, model: Path, local_dir: Path, *extra: str, env: dict | None = None) -> dict:
    return cli("ingest", str(pins_file), "--model", str(model), "--backend", "local", "--local-dir", str(local_dir),
               "--batch", "50", *extra, env=env)


def test_local_ingest_counts_and_dead_letters(tmp_path, model_dir):
    pins_file = tmp_path / "pins.jsonl"
    valid = write_pins_file(pins_file, make_pins(300))
    before = model_snapshot(model_dir)
    summary = local_ingest(pins_file, model_dir, tmp_path / "local")
    assert summary["indexed"] == summary["created"] == valid
    assert summary["updated"] == 0
    assert summary["indexed_without_vector"] == 1
    assert summary["rejected"] == len(BAD_LINES)
    local = local_index(tmp_path / "local")
    assert local.count() == valid and local.count_without_vector() == 1
    doc, vector = local.get(OOV_ID)
    assert vector is None and doc["title"] == "zzz qqq"
    entries = [json.loads(line) for line in Path(summary["dead_letter"]).read_text().splitlines()]
    assert {entry["line"]: entry["reason"] for entry in entries} == BAD_LINES
    assert all(entry["source"] == str(pins_file) for entry in entries)
    # The LSH config was tuned on the file and lives in the index meta; the model folder is untouched.
    assert model_snapshot(model_dir) == before
    meta = local.meta()
    assert meta["tuning"]["tuned"] and meta["tuning"]["recall_at_10"] >= meta["tuning"]["target_recall"]
    assert meta["serving"]["window"] >= 10


def test_local_reingest_updates_and_never_duplicates(tmp_path, model_dir):
    pins_file = tmp_path / "pins.jsonl"
    valid = write_pins_file(pins_file, make_pins(120), with_bad_lines=False)
    local_ingest(pins_file, model_dir, tmp_path / "local")
    again = local_ingest(pins_file, model_dir, tmp_path / "local")
    assert (again["created"], again["updated"]) == (0, valid)
    assert local_index(tmp_path / "local").count() == valid


def test_local_crash_then_resume_loses_nothing(tmp_path, model_dir):
    pins_file = tmp_path / "pins.jsonl"
    valid = write_pins_file(pins_file, make_pins(400))
    crashed = run_pintext(["ingest", str(pins_file), "--model", str(model_dir), "--backend", "local",
                           "--local-dir", str(tmp_path / "local"), "--batch", "50", "--json"],
                          env={FAIL_AFTER_BATCHES_ENV: "3"})
    assert "stopping after 3 acknowledged batches" in str(crashed.exception), crashed.exception
    # 3 batches of 50 schema-valid pins (one of them, line 48, indexed without a vector).
    assert local_index(tmp_path / "local").count() == 150
    resumed = local_ingest(pins_file, model_dir, tmp_path / "local", "--resume")
    assert resumed["resumed_after_line"] > 150
    assert (resumed["created"], resumed["updated"]) == (valid - 150, 0)
    assert local_index(tmp_path / "local").count() == valid
    # Bad lines before the checkpoint were dead-lettered by the first run, and not again.
    lines = [json.loads(line)["line"] for line in Path(resumed["dead_letter"]).read_text().splitlines()]
    assert sorted(lines) == sorted(BAD_LINES)


def test_strict_stops_at_the_first_bad_line_naming_file_line_field(tmp_path, model_dir):
    pins_file = tmp_path / "pins.jsonl"
    write_pins_file(pins_file, make_pins(60))
    result = run_pintext(["ingest", str(pins_file), "--model", str(model_dir), "--backend", "local",
                          "--local-dir", str(tmp_path / "local"), "--strict"])
    assert result.code == 2
    assert f"{pins_file}:5:" in result.output and "not valid JSON" in result.output


def test_another_model_gets_its_own_index_and_search_refuses_it_until_promoted(tmp_path, model_dir):
    pins_file = tmp_path / "pins.jsonl"
    write_pins_file(pins_file, make_pins(30), with_bad_lines=False)
    local = ["--backend", "local", "--local-dir", str(tmp_path / "local")]
    local_ingest(pins_file, model_dir, tmp_path / "local")
    other = make_model(tmp_path / "other", seed=5)
    result = run_pintext(["ingest", str(pins_file), "--model", str(other), "--json", *local])
    result.ok()
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    first, second = Encoder.load(model_dir).fingerprint, Encoder.load(other).fingerprint
    assert summary["index"] == f"pins-{second[:12]}" and summary["serving"] is False
    refused = run_pintext(["search", "w001", "--model", str(other), *local])
    assert refused.code == 2
    text = " ".join(refused.output.split())
    assert first in text and second in text and "model fingerprint" in text
    assert f"pintext index promote --index pins --model {other}" in text
    served = run_pintext(["search", "w001", "--model", str(model_dir), "--json", *local])
    assert served.code == 0 and json.loads(served.stdout)["hits"]


# ---- real OpenSearch -------------------------------------------------------------------------------------------


@pytest.mark.opensearch
def test_opensearch_ingest_reingest_and_counts(opensearch, opensearch_index_name, tmp_path, model_dir):
    pins_file = tmp_path / "pins.jsonl"
    valid = write_pins_file(pins_file, make_pins(500))
    first = cli("ingest", str(pins_file), "--model", str(model_dir), "--batch", "100", "--workers", "2",
                *os_args(opensearch, opensearch_index_name))
    assert (first["indexed"], first["created"], first["updated"]) == (valid, valid, 0)
    assert first["rejected"] == len(BAD_LINES) and first["indexed_without_vector"] == 1
    assert opensearch.count(index=opensearch_index_name)["count"] == valid
    second = cli("ingest", str(pins_file), "--model", str(model_dir), "--batch", "100",
                 *os_args(opensearch, opensearch_index_name))
    assert (second["created"], second["updated"]) == (0, valid)
    assert opensearch.count(index=opensearch_index_name)["count"] == valid
    meta = only(opensearch.indices.get_mapping(index=opensearch_index_name))["mappings"]["_meta"]
    assert meta["model_fingerprint"] == Encoder.load(model_dir).fingerprint
    assert meta["tuning"]["tuned"] and meta["tuning"]["corpus"] == valid - 1  # the OOV pin has no vector
    stored = opensearch.get(index=opensearch_index_name, id="pin-00003")["_source"]
    pin = make_pins(500)[3]
    # One token per LSH table; a learned codebook stores each pin under its `spill` nearest centroids.
    per_table = meta["tokens"].get("spill", 1)
    assert stored["title"] == pin["title"] and len(stored["lsh_tokens"]) == meta["tokens"]["tables"] * per_table
    text_only = opensearch.get(index=opensearch_index_name, id=OOV_ID)["_source"]
    assert text_only["title"] == "zzz qqq" and "vector" not in text_only and "lsh_tokens" not in text_only
    assert not (model_dir / "lsh.json").exists()


@pytest.mark.opensearch
def test_opensearch_crash_mid_ingest_then_resume(opensearch, opensearch_index_name, tmp_path, model_dir):
    pins_file = tmp_path / "pins.jsonl"
    valid = write_pins_file(pins_file, make_pins(600))
    command = ["ingest", str(pins_file), "--model", str(model_dir), "--batch", "100", "--workers", "1", "--json",
               *os_args(opensearch, opensearch_index_name)]
    crashed = run_pintext(command, env={FAIL_AFTER_BATCHES_ENV: "2"}, real_process=True)
    assert crashed.code != 0 and "InjectedCrash" in crashed.stderr
    checkpoint = json.loads(default_state(pins_file, opensearch_index_name).checkpoint.read_text())
    assert checkpoint["line"] > 0 and not checkpoint["complete"]
    opensearch.indices.refresh(index=opensearch_index_name)
    # 2 batches of 100 schema-valid pins (one of them, line 48, indexed without a vector).
    assert opensearch.count(index=opensearch_index_name)["count"] == 200
    summary = run_pintext([*command, "--resume"], real_process=True).json()
    assert summary["resumed_after_line"] == checkpoint["line"]
    assert (summary["created"], summary["updated"]) == (valid - 200, 0)
    assert opensearch.count(index=opensearch_index_name)["count"] == valid


@pytest.mark.opensearch
def test_opensearch_another_model_waits_behind_the_alias_until_promoted(opensearch, opensearch_index_name, tmp_path,
                                                                        model_dir):
    pins_file = tmp_path / "pins.jsonl"
    write_pins_file(pins_file, make_pins(20), with_bad_lines=False)
    cli("ingest", str(pins_file), "--model", str(model_dir), *os_args(opensearch, opensearch_index_name))
    other = make_model(tmp_path / "other", seed=7)
    first, second = Encoder.load(model_dir).fingerprint, Encoder.load(other).fingerprint
    cli("ingest", str(pins_file), "--model", str(other), *os_args(opensearch, opensearch_index_name))
    refused = run_pintext(["search", "w001 w002", "--model", str(other),
                           *os_args(opensearch, opensearch_index_name)])
    assert refused.code == 2, refused.output
    text = " ".join(refused.output.split())
    assert first in text and second in text and "pintext index promote" in text
    assert sorted(opensearch.indices.get_alias(name=opensearch_index_name)) == [
        f"{opensearch_index_name}-{first[:12]}"]
    assert opensearch.count(index=opensearch_index_name)["count"] == 20


@pytest.mark.opensearch
def test_index_create_info_delete(opensearch, opensearch_index_name, tmp_path, model_dir):
    args = ["--model", str(model_dir), *os_args(opensearch, opensearch_index_name)]
    created = run_pintext(["index", "create", *args])
    assert created.code == 0 and created.stdout.startswith("created"), created.output
    again = run_pintext(["index", "create", *args])
    assert again.code == 0 and again.stdout.startswith("exists, same model"), again.output
    info = run_pintext(["index", "info", *os_args(opensearch, opensearch_index_name)])
    described = json.loads(info.stdout)
    assert described["docs"] == 0
    assert described["meta"]["model_fingerprint"] == Encoder.load(model_dir).fingerprint
    # No --pins: nothing to tune on, so the defaults, and the meta says why.
    assert described["meta"]["dim"] == DIM and described["meta"]["tokens"]["tables"] == 64
    assert described["meta"]["serving"] == {"window": 500, "probes": 0}
    assert described["meta"]["tuning"] == {"tuned": False, "pending": True,
                                           "reason": "no corpus given (index create without --pins)"}
    mapping = only(opensearch.indices.get_mapping(index=opensearch_index_name))["mappings"]
    assert mapping["properties"]["vector"]["dimension"] == DIM
    deleted = run_pintext(["index", "delete", *os_args(opensearch, opensearch_index_name)])
    assert deleted.code == 0 and not opensearch.indices.exists(index=opensearch_index_name)


def wait_for(condition, timeout_s: float, what: str, poll_s: float = 0.01):
    """Poll `condition()` until it returns something truthy, failing after `timeout_s`."""
    import time

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(poll_s)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")


def bulk_tasks_running(client) -> bool:
    """True while the node still executes a bulk request (the tasks API lists it until it completes)."""
    tasks = client.tasks.list(actions="indices:data/write/bulk*")
    return any(node["tasks"] for node in tasks.get("nodes", {}).values())


@pytest.mark.opensearch
def test_opensearch_sigkill_mid_ingest_then_resume(opensearch, opensearch_index_name, tmp_path, model_dir):
    import signal

    pins_file = tmp_path / "pins.jsonl"
    valid = write_pins_file(pins_file, make_pins(6_000), with_bad_lines=False)
    checkpoint_file = default_state(pins_file, opensearch_index_name).checkpoint
    command = ["ingest", str(pins_file), "--model", str(model_dir), "--batch", "100", "--json",
               *os_args(opensearch, opensearch_index_name)]
    process = subprocess.Popen([PINTEXT, *command], stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # killed below
    try:
        def progress_made():
            if checkpoint_file.is_file():
                state = json.loads(checkpoint_file.read_text())
                return state if state["line"] >= 300 else None
            return None

        state = wait_for(progress_made, 120, "the checkpoint to pass line 300")
    finally:
        process.send_signal(signal.SIGKILL)
        process.communicate(timeout=60)
    assert process.returncode == -signal.SIGKILL
    killed_at = json.loads(checkpoint_file.read_text())
    assert not killed_at["complete"] and killed_at["line"] >= state["line"], "the ingest finished before the kill"
    # A bulk request sent just before the kill may still be running on the node: count only once it has settled.
    wait_for(lambda: not bulk_tasks_running(opensearch), 60, "in-flight bulk requests to finish")
    opensearch.indices.refresh(index=opensearch_index_name)
    survived = opensearch.count(index=opensearch_index_name)["count"]
    assert killed_at["line"] <= survived < valid  # acknowledged lines are all there; batches past it may be too

    summary = run_pintext([*command, "--resume"], real_process=True, timeout=600).json()
    assert summary["resumed_after_line"] == killed_at["line"]
    # A bulk request sent just before the kill can still land after the count above (the tasks API lists it only
    # once the node has read it, and a refresh can show part of one): one CI run counted 608 and its resume found
    # 92 more already there. So up to one batch a worker may turn from created to updated; every line after the
    # checkpoint is still sent once, and none is lost.
    in_flight = DEFAULT_INGEST_WORKERS * 100
    assert valid - survived - in_flight <= summary["created"] <= valid - survived
    assert summary["created"] + summary["updated"] == valid - killed_at["line"]
    assert opensearch.count(index=opensearch_index_name)["count"] == valid


def test_local_gzip_input_and_rerun_keeps_one_dead_letter_entry_per_line(tmp_path, model_dir):
    import gzip

    plain = tmp_path / "pins.jsonl"
    valid = write_pins_file(plain, make_pins(80))
    packed = tmp_path / "pins.jsonl.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    for _ in range(2):
        summary = local_ingest(packed, model_dir, tmp_path / "local")
    assert summary["indexed"] == valid and summary["rejected"] == len(BAD_LINES)
    lines = [json.loads(line)["line"] for line in Path(summary["dead_letter"]).read_text().splitlines()]
    assert sorted(lines) == sorted(BAD_LINES)


def test_local_cli_index_info_search_related(tmp_path, model_dir):
    pins_file = tmp_path / "pins.jsonl"
    valid = write_pins_file(pins_file, make_pins(200), with_bad_lines=False)
    local = ["--backend", "local", "--local-dir", str(tmp_path / "local")]
    created = run_pintext(["index", "create", "--model", str(model_dir), *local])
    assert created.code == 0 and created.stdout.startswith("created"), created.output
    local_ingest(pins_file, model_dir, tmp_path / "local")
    info = json.loads(run_pintext(["index", "info", *local]).stdout)
    assert info["docs"] == valid and info["meta"]["model_fingerprint"] == Encoder.load(model_dir).fingerprint

    found = cli("search", "w001 w002 w003", "--model", str(model_dir), "--k", "5", *local)
    assert len(found["hits"]) == 5
    assert [h["score"] for h in found["hits"]] == sorted((h["score"] for h in found["hits"]), reverse=True)
    related = cli("related", "pin-00004", "--model", str(model_dir), "--k", "5", *local)
    assert len(related["hits"]) == 5 and "pin-00004" not in [h["id"] for h in related["hits"]]
    unknown = cli("search", "zzzz", "--model", str(model_dir), *local)
    assert unknown["hits"] == [] and unknown["mode"] == "bm25_fallback"
    assert "no BM25" in unknown["note"]
    hybrid = run_pintext(["search", "w001", "--hybrid", "--model", str(model_dir), *local])
    assert hybrid.code == 2 and "BM25" in hybrid.output


def test_unreachable_node_is_one_clear_error(tmp_path, model_dir):
    pins_file = tmp_path / "pins.jsonl"
    write_pins_file(pins_file, make_pins(5), with_bad_lines=False)
    url = f"http://127.0.0.1:{free_port()}"
    result = run_pintext(["ingest", str(pins_file), "--model", str(model_dir), "--url", url])
    assert result.code == 1
    assert f"cannot reach the engine at {url}" in " ".join(result.output.split())


def test_bulk_sink_retries_connection_errors_then_gives_up(model_dir):
    from opensearchpy import OpenSearch
    from opensearchpy.exceptions import ConnectionError as TransportConnectionError

    from pintext.serving.opensearch import OpenSearchEngine

    client = OpenSearch(f"http://127.0.0.1:{free_port()}", max_retries=0)
    attempts = []
    engine = OpenSearchEngine(client, initial_backoff=0.01, connection_retries=2)
    original = engine._send
    engine._send = lambda *args: attempts.append(1) or original(*args)
    with pytest.raises(TransportConnectionError):
        engine.write("pins", [{"id": "a"}], np.ones((1, DIM), dtype=np.float32), [["t00_00"]])
    assert len(attempts) == 3


def test_a_corpus_too_small_to_tune_gets_the_defaults_and_says_why(tmp_path, model_dir):
    pins_file = tmp_path / "pins.jsonl"
    write_pins_file(pins_file, make_pins(6), with_bad_lines=False)
    result = run_pintext(["ingest", str(pins_file), "--model", str(model_dir), "--backend", "local",
                          "--local-dir", str(tmp_path / "local"), "--json"])
    result.ok()
    assert "LSH not tuned" in result.stderr
    meta = local_index(tmp_path / "local").meta()
    assert meta["tuning"]["tuned"] is False and "at least 11 pins" in meta["tuning"]["reason"]
    assert (meta["tokens"]["tables"], meta["tokens"]["bits"], meta["serving"]["window"]) == (64, 8, 500)


def test_an_explicit_model_lsh_json_fixes_tables_and_bits_of_a_tuned_index(tmp_path, model_dir):
    from pintext.tokens.lsh import RandomHyperplaneLSH

    (model_dir / "lsh.json").write_text(json.dumps(RandomHyperplaneLSH(dim=DIM, tables=24, bits=5).to_dict()))
    pins_file = tmp_path / "pins.jsonl"
    write_pins_file(pins_file, make_pins(200), with_bad_lines=False)
    result = run_pintext(["ingest", str(pins_file), "--model", str(model_dir), "--backend", "local",
                          "--local-dir", str(tmp_path / "local"), "--json"])
    result.ok()
    assert "lsh.json fixes 24 tables x 5 bits" in " ".join(result.stderr.split())
    meta = local_index(tmp_path / "local").meta()
    assert (meta["tokens"]["tables"], meta["tokens"]["bits"], meta["tuning"]["tuned"]) == (24, 5, True)
    # Another config in MODEL/lsh.json now no longer matches the index: refused, naming both.
    (model_dir / "lsh.json").write_text(json.dumps(RandomHyperplaneLSH(dim=DIM, tables=32, bits=5).to_dict()))
    refused = run_pintext(["search", "w001", "--model", str(model_dir), "--backend", "local",
                           "--local-dir", str(tmp_path / "local")])
    assert refused.code == 2 and "LSH config" in " ".join(refused.output.split())


def _create_then_ingest(pins_file: Path, model: Path, where: list[str], shards: list[str] = ()) -> tuple[dict, str]:
    created = run_pintext(["index", "create", "--model", str(model), *where, *shards])
    created.ok()
    ingested = run_pintext(["ingest", str(pins_file), "--model", str(model), *where, "--json"])
    ingested.ok()
    return json.loads(ingested.stdout), ingested.stderr


def test_index_create_then_ingest_tunes_on_the_ingested_file_local(tmp_path, model_dir):
    pins_file = tmp_path / "pins.jsonl"
    write_pins_file(pins_file, make_pins(300), with_bad_lines=False)
    where = ["--backend", "local", "--local-dir", str(tmp_path / "local")]
    report, stderr = _create_then_ingest(pins_file, model_dir, where)
    assert "re-created with tokens tuned" in " ".join(stderr.split())
    meta = local_index(tmp_path / "local").meta()
    assert meta["tuning"]["tuned"] and meta["tuning"]["corpus"] == 300
    assert report["indexed"] == 300 and local_index(tmp_path / "local").count() == 300
    # A second file into the now non-empty index keeps the tuned settings.
    other = tmp_path / "more.jsonl"
    write_pins_file(other, make_pins(20, seed=9), with_bad_lines=False)
    again = run_pintext(["ingest", str(other), "--model", str(model_dir), *where, "--json"])
    assert again.code == 0 and "re-created" not in again.stderr
    assert local_index(tmp_path / "local").meta()["tuning"] == meta["tuning"]


@pytest.mark.opensearch
def test_index_create_then_ingest_tunes_on_the_ingested_file(opensearch, opensearch_index_name, tmp_path, model_dir):
    pins_file = tmp_path / "pins.jsonl"
    write_pins_file(pins_file, make_pins(300), with_bad_lines=False)
    report, stderr = _create_then_ingest(pins_file, model_dir, os_args(opensearch, opensearch_index_name),
                                         ["--shards", "2"])
    assert "re-created with tokens tuned" in " ".join(stderr.split())
    meta = only(opensearch.indices.get_mapping(index=opensearch_index_name))["mappings"]["_meta"]
    assert meta["tuning"]["tuned"] and meta["serving"]["window"] >= 10
    settings = only(opensearch.indices.get_settings(index=opensearch_index_name))["settings"]
    assert settings["index"]["number_of_shards"] == "2"  # kept from `index create`
    opensearch.indices.refresh(index=opensearch_index_name)
    assert opensearch.count(index=opensearch_index_name)["count"] == report["indexed"] == 300
