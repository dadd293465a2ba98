"""The Python API (`pintext.open`) against the real node: the README's example as a user would run it, typed errors,
records given as dicts, and `explain`'s per-word split of the cosine."""

from __future__ import annotations

import re
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest

from tests.factories import WORDS, make_model, make_pins, write_pins
from tests.fixtures_opensearch import drop_indexes

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.opensearch


def readme_python_blocks() -> list[str]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


@pytest.fixture
def served(tmp_path, opensearch_url, opensearch):
    """A tiny model, 200 pins in a file, and a fresh index name (deleted afterwards, every version)."""
    model = make_model(tmp_path / "model")
    pins = make_pins(200)
    pins_file = write_pins(tmp_path / "pins.jsonl", pins)
    name = f"pintext-api-{uuid.uuid4().hex[:10]}"
    yield model, pins, pins_file, name
    drop_indexes(opensearch, name)


def test_the_readme_python_example_runs_as_written(served, opensearch_url, tmp_path):
    model, pins, pins_file, name = served
    (block,) = readme_python_blocks()
    code = block.replace('"out/model"', repr(str(model))).replace('"data/sample/pins.jsonl"', repr(str(pins_file)))
    code = code.replace('index="pins"', f"index={name!r}").replace('"red running shoes"', repr(" ".join(WORDS[:3])))
    assert code != block and "import pintext" in code
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=tmp_path,
                            env={**_environment(), "OPENSEARCH_URL": opensearch_url})
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    ids = {pin["id"] for pin in pins}
    assert len(lines) == 5 and all(line.split()[0] in ids for line in lines)
    scores = [float(line.split()[1]) for line in lines]
    assert scores == sorted(scores, reverse=True)


def _environment() -> dict:
    import os

    return {key: value for key, value in os.environ.items() if key not in ("OPENSEARCH_URL", "ELASTICSEARCH_URL")}


# How far the cosine of two int8-quantized 16-d vectors (an index of one-byte vectors serves it) may be from the
# float cosine `explain` splits per word (measured: ~3e-4 here; the quantizer's tests bound it at 256-d).
QUANTIZED_COSINE_TOLERANCE = 5e-3


@pytest.mark.parametrize("vector_type", ["int8", "float32"])
def test_ingest_takes_records_and_search_explains_each_hit(served, opensearch_url, vector_type):
    import pintext

    model, pins, _pins_file, name = served
    index = pintext.open(model, url=opensearch_url, index=name)
    summary = index.ingest(pins + [{"id": "no-title", "title": 7}],  # one bad record among good ones
                           vector_type=vector_type)
    assert (summary["indexed"], summary["rejected"]) == (len(pins), 1)
    query = " ".join(WORDS[:2])
    answer = index.search(query, k=5, explain=True)
    assert answer.mode == "pintext" and len(answer) == 5 and len(answer.explanations) == 5
    for hit, why in zip(answer, answer.explanations):
        assert why.id == hit.id
        # The per-word shares sum to the float cosine, on both sides, and it is the engine's (float32), or within
        # the quantization of it (int8: the engine scores the int8 values, which no per-word split can give).
        assert sum(share for _, share in why.query_words) == pytest.approx(why.cosine, abs=1e-5)
        assert sum(share for _, share in why.pin_words) == pytest.approx(why.cosine, abs=1e-5)
        tolerance = QUANTIZED_COSINE_TOLERANCE if vector_type == "int8" else 1e-4
        assert why.cosine == pytest.approx(hit.cosine, abs=tolerance)
        assert {word for word, _ in why.query_words} <= set(query.split())
    related = index.related(answer[0].id, k=3)
    assert answer[0].id not in {hit.id for hit in related} and len(related) == 3


def test_the_same_handle_deletes_and_builds_the_index_again(served, opensearch_url):
    """`delete` forgets the deleted index's `_meta`: the next `create_index` + `ingest` on the same handle makes a
    new index instead of pointing the alias at the one just deleted."""
    import pintext

    model, pins, pins_file, name = served
    index = pintext.open(model, url=opensearch_url, index=name)
    for _ in range(2):
        index.delete(force=True)
        index.create_index(pins_file)
        summary = index.ingest(pins_file)
        assert (summary["indexed"], summary["rejected"]) == (len(pins), 0)
        assert len(index.search(" ".join(WORDS[:2]), k=5)) == 5
    assert [deleted for _, deleted in index.delete()] == [True]


def test_errors_are_typed_with_one_line(served, opensearch_url, tmp_path):
    import pintext

    model, _pins, _pins_file, name = served
    with pytest.raises(pintext.IndexMissing, match=f"index '{name}' does not exist"):
        pintext.open(model, url=opensearch_url, index=name).search("w001")
    with pytest.raises(pintext.ModelError, match="cannot load the model"):
        pintext.open(tmp_path / "nowhere", url=opensearch_url, index=name).search("w001")
    with pytest.raises(pintext.UsageError, match="not a valid index name"):
        pintext.open(model, url=opensearch_url, index="Bad*Name")
    with pytest.raises(pintext.EngineUnavailable) as caught:
        pintext.open(model, url="http://user:s3cret@127.0.0.1:9", index=name, engine="opensearch").search("w001")
    assert "s3cret" not in str(caught.value) and "\n" not in str(caught.value)
    assert caught.value.exit_code == 1 and pintext.IndexMissing("x").exit_code == 2


def test_explain_splits_a_cosine_exactly(tmp_path):
    """Unit test of the split: a query and a pin of known words, against numpy's cosine of the same vectors."""
    from pintext.api.explain import explain_hit, pin_terms
    from pintext.encoder import Encoder
    from pintext.pin_vectors import pin_vectors

    encoder = Encoder.load(make_model(tmp_path / "model"))
    pin = {"id": "p", "title": "w001 w002 w002", "description": "w003 w004"}
    query = "w002 w005 w005 unknownword"
    why = explain_hit("p", encoder.word_terms(query), pin_terms(encoder, pin))
    q, p = encoder.encode([query])[0], pin_vectors(encoder, [pin])[0]
    assert why.cosine == pytest.approx(float(q @ p / np.linalg.norm(q) / np.linalg.norm(p)), abs=1e-6)
    assert [word for word, _ in why.query_words] == sorted({"w002", "w005"}, key=lambda w: -abs(dict(
        why.query_words)[w]))
    assert {word for word, _ in why.pin_words} == {"w001", "w002", "w003", "w004"}
    assert sum(dict(why.query_words).values()) == pytest.approx(why.cosine, abs=1e-6)


def test_a_query_of_unseen_words_is_pintexts_when_the_model_embeds_sub_words(tmp_path):
    """With sub-word vectors (what `pintext train` writes) a misspelled or unseen query word has a meaningful
    vector, so PinText serves it; with hashed unseen words (a random direction) or none, BM25 answers alone."""
    import pintext
    from pintext.encoder import Encoder, HashedWords
    from pintext.pin_vectors import pin_vectors
    from pintext.subwords import SubwordVectors

    pins = make_pins(60)
    ngrams = np.random.default_rng(4).normal(size=(256, 16)).astype(np.float32)
    misspelled = "w001x"  # not in the vocabulary (w000 ... w239 are)
    for name, oov, served_by in (("subwords", SubwordVectors(ngrams, scale=1.0), "pintext"),
                                 ("hashed", HashedWords(seed=3, scale=1.0), "bm25_fallback"),
                                 ("ignored", None, "bm25_fallback")):
        model = make_model(tmp_path / name, dim=16, oov=oov)
        service = pintext.open(model, index=f"unseen-{name}", engine="local", local_dir=tmp_path / f"local-{name}")
        service.ingest(pins)
        encoder = Encoder.load(model)
        assert encoder.encode_query(misspelled)[1] == 0 and encoder.embeds_unseen_words == (name == "subwords")
        answer = service.search(misspelled, k=5)
        assert answer.mode == served_by, (name, answer.note)
        if served_by == "pintext":
            vectors = pin_vectors(encoder, pins)
            query = encoder.encode([misspelled])[0]
            cosines = vectors @ query / np.linalg.norm(vectors, axis=1) / np.linalg.norm(query)
            assert answer.hits[0].cosine == pytest.approx(float(np.max(cosines)), abs=1e-2)  # int8 vectors


def test_pairs_and_train_from_python(tmp_path):
    """`pintext.pairs` imports judged pairs, `pintext.train` trains on them: the same code as the commands."""
    import pintext
    from pintext.encoder import Encoder
    from tests.factories import write_csv

    rows = [["anchor", "positive"]] + [[f"{WORDS[i]} {WORDS[i + 1]}", f"{WORDS[i + 1]} {WORDS[i + 2]} title"]
                                       for i in range(0, 200)]
    counts = pintext.pairs(tmp_path / "pairs", imports=[(write_csv(tmp_path / "search.csv", rows), "search")],
                           val=0.2, test=0.1)
    assert counts["tasks"]["search"]["pairs"] == 200 and counts["input"]["rejected"] == 0
    result = pintext.train(tmp_path / "pairs", tmp_path / "model", tune=False, epochs=1, dim=16)
    encoder = Encoder.load(result.model_dir)
    assert encoder.dim == 16 and encoder.encode_query(f"{WORDS[1]} {WORDS[2]}")[1] == 2
    assert (result.model_dir / "match.json").is_file()  # the exact-match weight is chosen (or defaulted) too
    with pytest.raises(pintext.UsageError, match="missing --events, --pins"):
        pintext.pairs(tmp_path / "more")
    with pytest.raises(pintext.UsageError, match="missing"):
        pintext.train(tmp_path / "no-pairs", tmp_path / "model2")
