"""The local backend: first stage = tokens matched, exact cosine rescore, tie rule, upsert by id."""

import numpy as np
import pytest

from pintext.serving.local import LocalIndex, LocalIndexError
from pintext.tokens.lsh import RandomHyperplaneLSH
from tests.serving_helpers import local_index


def build(tmp_path, count=300, dim=16, seed=0):
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((count, dim)).astype(np.float32)
    lsh = RandomHyperplaneLSH(dim=dim, tables=16, bits=4, seed=1)
    pins = [{"id": f"p{i:04d}", "title": f"pin {i}", "description": ""} for i in range(count)]
    index = LocalIndex(tmp_path / "local")
    index.create({"dim": dim, "lsh": lsh.to_dict()})
    assert index.upsert(pins, vectors, lsh.tokens(vectors)) == (count, 0)
    return index, lsh, pins, vectors


def test_window_limits_what_gets_rescored(tmp_path):
    index, lsh, _, vectors = build(tmp_path)
    query = vectors[3]
    tokens = lsh.tokens(query)[0]
    window = 5
    hits = index.search(tokens, query, k=5, window=window)
    top_first_stage = {pin_id for _, pin_id, _ in index.first_stage(tokens)[:window]}
    assert {hit.id for hit in hits} == top_first_stage


def test_ties_break_by_pin_id(tmp_path):
    index = LocalIndex(tmp_path / "ties")
    lsh = RandomHyperplaneLSH(dim=4, tables=4, bits=2, seed=0)
    index.create({"dim": 4})
    same = np.ones((3, 4), dtype=np.float32)
    index.upsert([{"id": "b"}, {"id": "c"}, {"id": "a"}], same, lsh.tokens(same))
    hits = index.search(lsh.tokens(same[0])[0], same[0], k=3, window=3)
    assert [hit.id for hit in hits] == ["a", "b", "c"]


def test_upsert_replaces_by_id_and_exclusion(tmp_path):
    index, lsh, pins, vectors = build(tmp_path, count=20)
    moved = -vectors[:5]
    assert index.upsert(pins[:5], moved, lsh.tokens(moved)) == (0, 5)
    assert index.count() == 20
    doc, vector = index.get("p0002")
    np.testing.assert_array_equal(vector, moved[2])
    assert doc["lsh_tokens"] == lsh.tokens(moved[2])[0]
    hits = index.search(lsh.tokens(moved[2])[0], moved[2], k=3, window=20, exclude_ids=["p0002"])
    assert "p0002" not in [hit.id for hit in hits]
    assert index.get("nope") is None


def test_missing_index_is_a_clear_error(tmp_path):
    with pytest.raises(LocalIndexError, match="no local index"):
        LocalIndex(tmp_path / "absent").count()


def test_serving_modules_import_neither_torch_nor_opensearch():
    import subprocess
    import sys

    code = (
        "import sys\n"
        "import pintext.cli, pintext.cli.search, pintext.api.service, pintext.ingest.indexer, pintext.serving.opensearch\n"
        "import pintext.serving.local, pintext.queries, pintext.tokens.lsh\n"
        "heavy = [m for m in ('torch', 'sentence_transformers', 'datasets', 'opensearchpy') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""


def test_an_id_twice_in_one_batch_keeps_the_last_version_and_no_stale_tokens(tmp_path):
    lsh = RandomHyperplaneLSH(dim=8, tables=8, bits=4, seed=0)
    index = LocalIndex(tmp_path / "dups")
    index.create({"dim": 8})
    vectors = np.random.default_rng(1).standard_normal((3, 8)).astype(np.float32)
    pins = [{"id": "a", "v": 1}, {"id": "b"}, {"id": "a", "v": 2}]
    assert index.upsert(pins, vectors, lsh.tokens(vectors)) == (2, 1)
    doc, vector = index.get("a")
    assert doc["v"] == 2
    np.testing.assert_array_equal(vector, vectors[2])
    stale = set(lsh.tokens(vectors[0])[0]) - set(lsh.tokens(vectors[2])[0]) - set(lsh.tokens(vectors[1])[0])
    assert all(pin_id != "a" for token in stale for _, pin_id, _ in index.first_stage([token]))
    moved = -vectors[2:]
    assert index.upsert([{"id": "a"}], moved, lsh.tokens(moved)) == (0, 1)
    matched = {pin_id: n for _, pin_id, n in index.first_stage(lsh.tokens(moved)[0])}
    assert matched["a"] == 8
    gone = set(lsh.tokens(vectors[2])[0]) - set(lsh.tokens(moved)[0])
    assert all(pin_id != "a" for token in gone for _, pin_id, _ in index.first_stage([token]))


def test_an_index_tuned_at_ingest_serves_the_recall_its_meta_reports(tmp_path):
    """Ingest tunes LSH on the file (pin titles cut to a query's length as queries); replaying those queries on the
    built index gives its recall."""
    import json

    from pintext.encoder import Encoder
    from pintext.pin_vectors import pin_vectors
    from pintext.tokens.tuning import query_like_texts
    from tests.factories import make_model, make_pins, model_snapshot, write_pins_file
    from tests.fixtures_cli import run_pintext

    model = make_model(tmp_path / "model")
    pins = make_pins(600, seed=4)
    write_pins_file(tmp_path / "pins.jsonl", pins, with_bad_lines=False)
    before = model_snapshot(model)
    result = run_pintext(["ingest", str(tmp_path / "pins.jsonl"), "--model", str(model), "--backend",
                          "local", "--local-dir", str(tmp_path / "local"), "--target-recall", "0.9",
                          # float32: the replay below measures recall against numpy's float cosine, as tuning does
                          "--tokens", "lsh", "--vector-type", "float32", "--json"])
    result.ok()
    assert model_snapshot(model) == before
    index = local_index(tmp_path / "local")
    meta = index.meta()
    assert meta["tuning"]["target_recall"] == 0.9 and meta["tuning"]["reached"]
    assert meta["tuning"]["query_source"] == "pin titles"
    lsh = RandomHyperplaneLSH.from_dict(meta["tokens"])
    window, probes = meta["serving"]["window"], meta["serving"]["probes"]
    encoder = Encoder.load(model)
    vectors = pin_vectors(encoder, pins)
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    queries = encoder.encode(query_like_texts([pin["title"] for pin in pins], np.random.default_rng(0)))
    queries = queries[np.linalg.norm(queries, axis=1) > 0]
    assert len(queries) == meta["tuning"]["queries"]
    shares = []
    for query in queries:
        hits = index.search(lsh.query_tokens(query, probes=probes)[0], query, k=10, window=window)
        kth_best = np.sort(unit @ (query / np.linalg.norm(query)))[-10]
        shares.append(sum(1 for hit in hits if hit.cosine >= kth_best - 1e-6) / 10)
    assert np.mean(shares) == pytest.approx(meta["tuning"]["recall_at_10"], abs=1e-3)
    assert np.mean(shares) >= 0.9
    searched = json.loads(run_pintext(["search", "w001 w002", "--model", str(model), "--backend",
                                       "local", "--local-dir", str(tmp_path / "local"), "--json"]).stdout)
    assert (searched["window"], searched["probes"]) == (window, probes)
