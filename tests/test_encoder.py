"""pintext.Encoder: the numpy runtime, without training (torch-free); equality with the
SentenceTransformer is in tests/test_train.py."""

import json
import subprocess
import sys

import numpy as np
import pytest

from pintext.encoder import Encoder, HashedWords, RuntimeArtifactError, write_runtime
from pintext.trainer.tokenizer import train_word_tokenizer
from tests.factories import word_table


@pytest.fixture()
def runtime_dir(tmp_path):
    tokenizer = train_word_tokenizer(["red apple pie", "green apple tart"], min_count=1)
    table = word_table(tokenizer.get_vocab_size(), dim=8, seed=0)
    write_runtime(tmp_path / "model" / "runtime", tokenizer, table)
    return tmp_path / "model", tokenizer, table


def test_vectors_are_the_mean_of_known_words(runtime_dir):
    model_dir, tokenizer, table = runtime_dir
    encoder = Encoder.load(model_dir)
    vocab = tokenizer.get_vocab()
    vectors = encoder.encode(["Red APPLE, unknownword!", "pie pie tart", "nothing known", ""])
    assert vectors.dtype == np.float32 and vectors.shape == (4, 8)
    np.testing.assert_allclose(vectors[0], (table[vocab["red"]] + table[vocab["apple"]]) / 2, atol=1e-6)
    np.testing.assert_allclose(vectors[1], (2 * table[vocab["pie"]] + table[vocab["tart"]]) / 3, atol=1e-6)
    assert not vectors[2].any() and not vectors[3].any()


def test_batching_does_not_change_vectors(runtime_dir):
    encoder = Encoder.load(runtime_dir[0])
    texts = ["red apple", "green", "tart pie apple", "zzz", ""] * 7
    np.testing.assert_array_equal(encoder.encode(texts, batch_size=3), encoder.encode(texts, batch_size=1000))
    assert encoder.encode([]).shape == (0, 8)


def test_coverage_counts_tokens_and_texts(runtime_dir):
    encoder = Encoder.load(runtime_dir[0])
    coverage = encoder.coverage(["red apple", "red zzz", "zzz yyy", ""])
    assert (coverage.tokens, coverage.known_tokens) == (6, 3)
    token_share, text_share = coverage
    assert token_share == pytest.approx(0.5) and text_share == pytest.approx(0.5)


def test_float16_table_and_fingerprint(tmp_path, runtime_dir):
    _, tokenizer, table = runtime_dir
    write_runtime(tmp_path / "half", tokenizer, table, dtype="float16")
    half = Encoder.load(tmp_path / "half")
    full = Encoder.load(runtime_dir[0])
    assert half.fingerprint != full.fingerprint and half.dim == full.dim == 8
    np.testing.assert_allclose(half.encode(["red apple"]), full.encode(["red apple"]), atol=1e-2)


def test_tampered_table_is_rejected(runtime_dir):
    runtime = runtime_dir[0] / "runtime"
    table = np.load(runtime / "embeddings.npy")
    np.save(runtime / "embeddings.npy", table + 1)
    with pytest.raises(RuntimeArtifactError, match="fingerprint"):
        Encoder.load(runtime_dir[0])
    config = json.loads((runtime / "runtime.json").read_text())
    config["dim"] = 9
    (runtime / "runtime.json").write_text(json.dumps(config))
    with pytest.raises(RuntimeArtifactError, match="runtime.json.*'vocab_size'/'dim'"):
        Encoder.load(runtime_dir[0], verify=False)


def test_missing_runtime_is_a_clear_error(tmp_path):
    with pytest.raises(RuntimeArtifactError, match="missing"):
        Encoder.load(tmp_path)


def test_importing_the_encoder_does_not_import_torch(runtime_dir):
    code = (
        "import sys, pintext\n"
        f"encoder = pintext.Encoder.load({str(runtime_dir[0])!r})\n"
        "encoder.encode(['red apple'])\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
        "assert 'sentence_transformers' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_ascii_fast_path_matches_the_tokenizer(runtime_dir):
    import random
    import string

    encoder = Encoder.load(runtime_dir[0])
    rng = random.Random(0)
    alphabet = string.printable + "REDred APPLE apple_pie"
    texts = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40))) for _ in range(300)]
    texts += ["Red APPLE!", "RED_apple pie-tart", "\tgreen\napple\x00pie", "café red", "ＲＥＤ apple", "İ red"]
    expected = [e.ids for e in encoder.tokenizer.encode_batch(texts, add_special_tokens=False)]
    assert encoder.token_ids(texts) == expected


@pytest.mark.parametrize("unseen", ["ignored", "hashed", "subwords"])
def test_prepared_texts_encode_as_encode_does_with_any_table(runtime_dir, unseen):
    from pintext.subwords import SubwordVectors

    _, tokenizer, table = runtime_dir
    oov = {"ignored": None, "hashed": HashedWords(seed=3, scale=1.5),
           "subwords": SubwordVectors(word_table(97, dim=8, seed=5), scale=2.0)}[unseen]
    texts = ["Red APPLE, unknownword!", "pie pie tart", "nothing known", "", "zzz apple"]
    prepared = Encoder(tokenizer, table, unk_id=0, fingerprint="a", oov=oov).prepare(texts)
    for seed in (1, 2):  # validation prepares once and encodes with the table of each moment
        other = Encoder(tokenizer, word_table(len(table), dim=8, seed=seed), unk_id=0, fingerprint="b", oov=oov)
        np.testing.assert_array_equal(other.encode_prepared(prepared), other.encode(texts))
    if unseen == "ignored":
        assert not other.encode_prepared(prepared)[2].any()
    else:
        assert other.encode_prepared(prepared)[2].any()  # unseen words count, with the table of the moment's oov


def test_prepared_texts_refuse_another_tokenizer(runtime_dir):
    _, tokenizer, table = runtime_dir
    prepared = Encoder(tokenizer, table, unk_id=0, fingerprint="a").prepare(["red apple"])
    other_tokenizer = train_word_tokenizer(["red apple pie", "green apple tart"], min_count=1)
    with pytest.raises(ValueError, match="another tokenizer"):
        Encoder(other_tokenizer, table, unk_id=0, fingerprint="a").encode_prepared(prepared)
    with pytest.raises(ValueError, match="unseen-word handling"):
        Encoder(tokenizer, table, unk_id=0, fingerprint="a", oov=HashedWords(seed=1, scale=1.0)).encode_prepared(prepared)
