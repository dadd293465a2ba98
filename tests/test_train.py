"""Training end to end on tiny synthetic pairs: files, the runtime, Encoder == SentenceTransformer, errors."""

import json

import numpy as np
import pytest

from pintext.encoder import Encoder
from pintext.trainer.train import PairDataError, TrainConfig, load_pairs, parse_task_weights, train
from tests.factories import synthetic_pairs
from tests.fixtures_cli import run_pintext

# The original PinText recipe (random start, radius 1, fixed epochs, unseen words ignored): the paths these tests
# pin down; the defaults (lexical start, early stopping, hashed unseen words) are tested in test_train_selection.py.
# 1 thread: steadier on a shared machine.
SMALL = dict(epochs=2, batch_size=32, dim=16, min_count=1, threads=1, radius=1.0, init="random",
             early_stopping=False, hash_unseen=False, subwords=False)


@pytest.fixture(scope="module")
def pairs_dir(tmp_path_factory):
    return synthetic_pairs(tmp_path_factory.mktemp("pairs"))


@pytest.fixture(scope="module")
def mtl(pairs_dir, tmp_path_factory):
    return train(pairs_dir, tmp_path_factory.mktemp("mtl"), TrainConfig(**SMALL), show_progress=False)


@pytest.fixture(scope="module")
def sr(pairs_dir, tmp_path_factory):
    return train(pairs_dir, tmp_path_factory.mktemp("sr"), TrainConfig(tasks=["search"], **SMALL), show_progress=False)


def test_training_writes_model_config_log_and_runtime(mtl):
    model_dir = mtl.model_dir
    for name in ("modules.json", "pintext_train.json", "training_log.json", "runtime/runtime.json", "runtime/embeddings.npy"):
        assert (model_dir / name).is_file(), name
    saved = json.loads((model_dir / "pintext_train.json").read_text())
    assert saved["model"] == "MTL" and saved["config"]["tasks"] == ["search", "related", "homefeed"]
    # Auxiliary pairs touching a pin the search task holds out for validation or test are left out (no leak).
    held_out = saved["selection"]["auxiliary_pairs_held_out"]
    kept = [192, 192 - held_out.get("related", 0), 192 - held_out.get("homefeed", 0)]
    assert held_out and saved["train_pairs"] == sum(kept) and saved["pairs_per_second"] > 0
    log = json.loads((model_dir / "training_log.json").read_text())
    assert len(log["train"]) == mtl.config.epochs * np.ceil(np.array(kept) / 32).sum()
    eval_keys = {key for entry in log["validation"] for key in entry}
    assert {"eval_search_loss", "eval_related_loss", "eval_homefeed_loss"} <= eval_keys


def test_training_lowers_the_loss(mtl):
    log = json.loads((mtl.model_dir / "training_log.json").read_text())
    losses = [entry["loss"] for entry in log["train"]]
    assert np.mean(losses[-5:]) < np.mean(losses[:5])


def test_radius_bounds_the_exported_table(mtl):
    table = np.load(mtl.model_dir / "runtime" / "embeddings.npy")
    assert np.linalg.norm(table, axis=1).max() <= mtl.config.radius + 1e-5
    assert not table[0].any()  # the unknown token's row stays zero


def test_encoder_equals_sentence_transformer(mtl):
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(mtl.model_dir), trust_remote_code=True, device="cpu")
    vocabulary = [w for w in model[0].tokenizer.get_vocab() if w != "[UNK]"]
    texts = [
        " ".join(vocabulary[:3]),
        f"{vocabulary[4].upper()}, {vocabulary[5]}!! notaword",  # case, punctuation and one OOV word
        "zzzunknown qqqunknown",  # OOV only
        "",
        "?!",
        " ".join(vocabulary[i % len(vocabulary)] for i in range(40)),
    ]
    expected = model.encode(texts, convert_to_numpy=True)
    actual = Encoder.load(mtl.model_dir).encode(texts, batch_size=2)
    np.testing.assert_allclose(actual, expected, atol=1e-5)
    assert not actual[2].any() and not actual[3].any() and not actual[4].any()


def test_multitask_learns_words_single_task_never_sees(mtl, sr, pairs_dir):
    related = load_pairs(pairs_dir, ["related"])["related"]["test"]
    texts = list(related["anchor"])
    assert Encoder.load(mtl.model_dir).coverage(texts).token_share >= Encoder.load(sr.model_dir).coverage(texts).token_share
    assert mtl.vocab_size > sr.vocab_size


def test_float16_export(pairs_dir, tmp_path):
    result = train(pairs_dir, tmp_path / "half", TrainConfig(tasks=["search"], float16=True, **{**SMALL, "epochs": 1}), show_progress=False)
    runtime = json.loads((result.model_dir / "runtime" / "runtime.json").read_text())
    assert runtime["dtype"] == "float16" and np.load(result.model_dir / "runtime" / "embeddings.npy").dtype == np.float16


def test_missing_task_folder_is_a_clear_error(tmp_path, pairs_dir):
    with pytest.raises(PairDataError, match=r"homefeed.*missing"):
        load_pairs(tmp_path, ["homefeed"])


def test_missing_column_names_the_field(tmp_path):
    from datasets import Dataset, DatasetDict

    broken = Dataset.from_list([{"anchor": "a", "text": "b"}])
    DatasetDict({"train": broken, "validation": broken, "test": broken}).save_to_disk(str(tmp_path / "search"))
    with pytest.raises(PairDataError, match=r"search/train: field\(s\) \['positive'\] missing"):
        load_pairs(tmp_path, ["search"])


def test_config_and_task_weights_are_validated():
    assert parse_task_weights("related=0.5")["related"] == 0.5
    with pytest.raises(ValueError, match="task=number"):
        parse_task_weights("clicks=1")
    with pytest.raises(ValueError, match="not a number"):
        parse_task_weights("search=high")
    with pytest.raises(ValueError, match="--tasks"):
        TrainConfig(tasks=["search", "ads"]).validate()
    with pytest.raises(ValueError, match="--sampling"):
        TrainConfig(sampling="random").validate()


def test_cli_train_json_and_bad_input(pairs_dir, tmp_path):
    result = run_pintext(["train", "--pairs", str(pairs_dir), "--out", str(tmp_path / "m"), "--tasks",
                          "search,related", "--epochs", "1", "--batch-size", "32", "--dim", "8", "--min-count", "1",
                          "--sampling", "round-robin", "--loss", "mnrl", "--lr", "0.05", "--json"])
    result.ok()
    summary = json.loads(result.output[result.output.index("{"):])
    assert summary["model"] == "search+related" and summary["vocab_size"] > 1
    assert Encoder.load(tmp_path / "m").dim == 8
    bad = run_pintext(["train", "--pairs", str(tmp_path / "nowhere"), "--out", str(tmp_path / "x")])
    assert bad.code == 2 and "missing" in bad.output


def test_model_preprocess_matches_the_tokenizer(mtl):
    from pintext.trainer.model import load_model

    module = load_model(mtl.model_dir, device="cpu")[0]
    texts = ["Kado NEW, diy!", "café kado", "", "zzz", "ＦＵＬＬ width"]
    encodings = module.tokenizer.encode_batch(texts, add_special_tokens=False)
    features = module.preprocess(texts)
    assert features["input_ids"].tolist() == [i for e in encodings for i in e.ids]
    assert features["offsets"].tolist() == list(np.cumsum([0] + [len(e.ids) for e in encodings[:-1]]))


@pytest.mark.parametrize(("raised", "code"), [(PairDataError("bad pairs"), 2), (RuntimeError("training broke"), 1)])
def test_train_exit_code_says_whose_fault(pairs_dir, tmp_path, monkeypatch, raised, code):
    """pintext.cli.errors: bad input is a usage error (2), a failure of the work itself is 1."""
    import pintext.api.training as train_cli

    def broken_fit(*_args, **_kwargs):
        raise raised

    monkeypatch.setattr(train_cli, "fit", broken_fit)
    result = run_pintext(["train", "--pairs", str(pairs_dir), "--out", str(tmp_path / "m")])
    assert result.code == code
    assert f"error: {raised}" in result.output
