"""The trainer's choices: lexical start, hashed unseen words, early stopping, settings and fusion picked on validation."""

import json

import numpy as np
import pytest

from pintext.encoder import Encoder, HashedWords, write_runtime
from pintext.fusion import FusionConfig
from pintext.trainer.train import LOSS_NAMES, TrainConfig, train
from tests.factories import synthetic_pairs, word_table
from tests.fixtures_cli import run_pintext

FAST = dict(batch_size=32, dim=32, threads=1)


@pytest.fixture(scope="module")
def pairs_dir(tmp_path_factory):
    return synthetic_pairs(tmp_path_factory.mktemp("pairs"), seed=5)


@pytest.fixture(scope="module")
def search_model(pairs_dir, tmp_path_factory):
    config = TrainConfig(tasks=["search"], epochs=4, **FAST)
    return train(pairs_dir, tmp_path_factory.mktemp("sr"), config, show_progress=False)


def _tokenizer(texts):
    from pintext.trainer.tokenizer import train_word_tokenizer

    return train_word_tokenizer(texts, min_count=1)


def test_loss_names_match_the_registry():
    from pintext.trainer.losses import LOSSES

    assert tuple(LOSSES) == LOSS_NAMES


def test_lexical_start_weighs_words_by_idf():
    from pintext.trainer.init import lexical_table

    documents = ["red sofa", "red chair", "red lamp", "blue sofa"]
    tokenizer = _tokenizer(documents)
    table, n = lexical_table(tokenizer, documents, dim=64, seed=1)
    norms = {word: float(np.linalg.norm(table[word_id])) for word, word_id in tokenizer.get_vocab().items()}
    assert n == 4 and norms["[UNK]"] == 0.0
    assert norms["lamp"] > norms["sofa"] > norms["red"]  # df 1 < df 2 < df 3
    np.testing.assert_allclose(norms["lamp"], np.log(5 / 1.5), rtol=1e-5)


def test_lexical_start_matches_rare_words_before_training():
    from pintext.trainer.init import lexical_table

    documents = [f"item {i} common words here" for i in range(50)] + ["velvet settee common words here"]
    tokenizer = _tokenizer(documents)
    table, _ = lexical_table(tokenizer, documents, dim=256, seed=0)
    encoder = Encoder(tokenizer, table, unk_id=0, fingerprint="t")
    vectors = encoder.encode(documents)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    query = encoder.encode(["velvet"])[0]
    assert int(np.argmax(vectors @ query)) == len(documents) - 1


def test_hashed_words_are_deterministic_and_match_each_other(tmp_path):
    tokenizer = _tokenizer(["red sofa", "blue couch"])
    table = word_table(tokenizer.get_vocab_size(), dim=64, seed=0)
    table *= 3.0 / np.linalg.norm(table, axis=1, keepdims=True)  # known words as long as the hashed ones
    table[0] = 0
    oov = HashedWords(seed=7, scale=3.0)
    np.testing.assert_allclose(np.linalg.norm(oov.vector("zanzibar", 64)), 3.0, rtol=1e-5)
    np.testing.assert_array_equal(oov.vector("zanzibar", 64), HashedWords(seed=7, scale=3.0).vector("zanzibar", 64))
    assert not np.allclose(oov.vector("zanzibar", 64), HashedWords(seed=8, scale=3.0).vector("zanzibar", 64))

    write_runtime(tmp_path / "with", tokenizer, table, oov=oov)
    write_runtime(tmp_path / "without", tokenizer, table)
    hashing, plain = Encoder.load(tmp_path / "with"), Encoder.load(tmp_path / "without")
    assert hashing.fingerprint != plain.fingerprint  # the setting is part of the model
    texts = ["red sofa", "red zanzibar", "zanzibar", "blue zanzibar qwerty", ""]
    a, b = hashing.encode(texts), plain.encode(texts)
    np.testing.assert_allclose(a[0], b[0], atol=1e-6)  # only known words: identical
    np.testing.assert_allclose(a[1], (table[tokenizer.token_to_id("red")] + oov.vector("zanzibar", 64)) / 2, atol=1e-5)
    assert a[2].any() and not b[2].any() and not a[4].any()
    cosine = a[2] @ a[3] / np.linalg.norm(a[2]) / np.linalg.norm(a[3])
    assert cosine > 0.4  # one of three equally long words is shared: about 1/sqrt(3)
    np.testing.assert_allclose(hashing.encode(["ZANZIBAR!"])[0], a[2], atol=1e-6)  # same normalization as words


def test_early_stopping_keeps_the_best_validation_table(search_model):
    saved = json.loads((search_model.model_dir / "pintext_train.json").read_text())
    selection = saved["selection"]
    history = selection["validation_history"]
    assert history[0]["step"] == 0  # the untrained start is a candidate
    best = max(entry["score"] for entry in history)
    assert best - 1e-4 - 1e-5 <= selection["best_validation_score"] <= best + 1e-5  # a gain under 1e-4 is no gain
    encoder = Encoder.load(search_model.model_dir)
    assert encoder.oov is not None and encoder.oov.scale > 0


def test_exported_table_scores_what_early_stopping_recorded(pairs_dir, search_model):
    from pintext.trainer.selection import ValidationScorer
    from pintext.trainer.train import load_pairs

    encoder = Encoder.load(search_model.model_dir)
    corpus = [json.loads(line) for line in (pairs_dir / "pins.jsonl").read_text().splitlines()]
    scorer = ValidationScorer(load_pairs(pairs_dir, ["search"]), ["search"], {"oov": encoder.oov}, distractors=corpus)
    score = scorer.score(scorer.metrics(encoder.tokenizer, np.load(search_model.model_dir / "runtime" / "embeddings.npy")))
    recorded = json.loads((search_model.model_dir / "pintext_train.json").read_text())["selection"]
    assert score == pytest.approx(recorded["best_validation_score"], abs=1e-4)


def test_train_without_flags_chooses_on_validation_and_writes_why(pairs_dir, tmp_path):
    out = tmp_path / "auto"
    result = run_pintext(["train", "--pairs", str(pairs_dir), "--out", str(out), "--dim", "32",
                          "--epochs", "2", "--threads", "1", "--budget", "60", "--json"])
    result.ok()
    selection = json.loads((out / "selection.json").read_text())
    ran = [trial for trial in selection["trials"] if trial["score"] is not None]
    assert ran and selection["chosen"] in {trial["name"] for trial in ran}
    best = max(ran, key=lambda trial: trial["score"])
    assert selection["chosen"] == best["name"] and best["name"] in selection["why"]
    assert {trial["settings"]["loss"] for trial in selection["trials"]} >= {"pintext", "mnrl"}
    assert any(trial["name"].startswith("MTL") for trial in selection["trials"])  # the folder has three tasks
    assert not (out / "trials").exists()
    fusion = FusionConfig.load(out)
    hybrid = json.loads((out / "hybrid_selection.json").read_text())
    assert hybrid["chosen"] == fusion.to_dict()
    # The best candidate replaces the default only with enough queries and a gain beyond its noise.
    from pintext.exact_match import ExactMatch
    from pintext.trainer.selection import MIN_QUERIES_TO_CHOOSE, STANDARD_ERRORS_TO_CHOOSE

    def expected(candidates: list[dict], default: dict, error: float) -> dict:
        best = max(candidates, key=lambda c: c["score"])
        chosen_default = next(c for c in candidates if all(c[key] == value for key, value in default.items()))
        beats = best["score"] - chosen_default["score"] > STANDARD_ERRORS_TO_CHOOSE * error
        return best if hybrid["queries"] >= MIN_QUERIES_TO_CHOOSE and beats else chosen_default

    fused = expected(hybrid["candidates"], hybrid["fusion_default"], hybrid["fusion_standard_error"])
    assert (fused["method"], fused["weight"]) == (fusion.method, fusion.weight)
    best_match = max(hybrid["match"], key=lambda c: c["score"])  # a smooth weight: the best with enough queries
    enough = hybrid["queries"] >= MIN_QUERIES_TO_CHOOSE
    match = best_match if enough else next(c for c in hybrid["match"] if c["weight"] == hybrid["match_default"])
    chosen = ExactMatch(match["weight"], nearest_words=True)  # every trained model counts nearest words
    assert ExactMatch.load(out) == chosen == ExactMatch.load(out).with_weight(hybrid["chosen_match"]["weight"])
    assert hybrid["chosen_match"] == chosen.to_dict() == {"weight": match["weight"], "nearest_words": True}


def test_budget_skips_trials_but_always_runs_one(pairs_dir, tmp_path):
    from pintext.trainer.autotune import tune_and_train

    result, record = tune_and_train(pairs_dir, tmp_path / "m", TrainConfig(tasks=["search"], epochs=1, **FAST),
                                    budget_s=0.0)
    ran = [trial for trial in record["trials"] if trial["score"] is not None]
    skipped = [trial for trial in record["trials"] if trial["skipped"]]
    assert len(ran) == 1 and len(skipped) == len(record["trials"]) - 1 and "time budget" in skipped[0]["skipped"]
    assert Encoder.load(tmp_path / "m").dim == 32


def test_refit_trains_on_every_split(pairs_dir, tmp_path):
    from pintext.trainer.autotune import tune_and_train

    result, record = tune_and_train(pairs_dir, tmp_path / "m", TrainConfig(tasks=["search"], epochs=2, **FAST),
                                    budget_s=0.0, refit=True)
    assert result.config.refit and record["chosen_settings"]["refit"]
    from pintext.trainer.train import load_pairs

    search = load_pairs(pairs_dir, ["search"])["search"]
    assert result.train_pairs == len(search["train"]) + len(search["validation"]) + len(search["test"])


def test_every_candidate_runs_without_a_budget(pairs_dir, tmp_path):
    from pintext.trainer.autotune import SEARCH_GRID, tune_and_train

    _, record = tune_and_train(pairs_dir, tmp_path / "m", TrainConfig(epochs=1, **FAST), refit=False)
    assert all(trial["skipped"] is None and trial["score"] is not None for trial in record["trials"])
    assert len(record["trials"]) == len(SEARCH_GRID) + 3  # the search grid, then three auxiliary weights


def test_trials_sharing_a_cache_train_the_models_they_would_alone(pairs_dir, tmp_path):
    from pintext.trainer.train import TrialCache

    def tables(folder):
        runtime = folder / "runtime"
        return np.load(runtime / "embeddings.npy"), np.load(runtime / "subwords.npy")

    cache = TrialCache()
    first = TrainConfig(tasks=["search", "related"], loss="mnrl", lr=0.02, epochs=2, **FAST)
    second = TrainConfig(tasks=["search", "related"], loss="pintext", lr=0.01, epochs=2, **FAST)
    # The second trial reuses what the first made (and trained from); a third run makes everything itself.
    train(pairs_dir, tmp_path / "first", first, show_progress=False, cache=cache)
    shared = train(pairs_dir, tmp_path / "shared", second, show_progress=False, cache=cache)
    alone = train(pairs_dir, tmp_path / "alone", second, show_progress=False)
    for with_cache, without in zip(tables(tmp_path / "shared"), tables(tmp_path / "alone")):
        np.testing.assert_array_equal(with_cache, without)
    assert shared.selection["validation_history"] == alone.selection["validation_history"]
    assert len(cache._made) >= 5  # tokenizer, start, n-grams, each task's packed pairs, the scorer: made once


def test_default_tasks_are_the_folders_present(tmp_path):
    import shutil

    pairs = synthetic_pairs(tmp_path / "p", n_topics=4, pins_per_topic=8, pairs_per_task=120, seed=1)
    shutil.rmtree(pairs / "homefeed")
    shutil.rmtree(pairs / "related")
    result = run_pintext(["train", "--pairs", str(pairs), "--out", str(tmp_path / "m"), "--dim", "16",
                          "--epochs", "1", "--threads", "1", "--no-tune", "--json"])
    result.ok()
    assert json.loads((tmp_path / "m" / "pintext_train.json").read_text())["config"]["tasks"] == ["search"]


def test_epochs_is_the_ceiling_of_every_trial(pairs_dir, tmp_path):
    from pintext.trainer.autotune import tune_and_train

    _, record = tune_and_train(pairs_dir, tmp_path / "m", TrainConfig(tasks=["search"], epochs=1, **FAST),
                               budget_s=0.0, refit=False)
    saved = json.loads((tmp_path / "m" / "pintext_train.json").read_text())
    assert saved["config"]["epochs"] == 1
    assert max(entry["epoch"] for entry in saved["selection"]["validation_history"]) <= 1.0


def test_default_model_learns_subwords_and_the_torch_model_agrees(search_model):
    from sentence_transformers import SentenceTransformer

    from pintext.subwords import SubwordVectors

    encoder = Encoder.load(search_model.model_dir)
    assert isinstance(encoder.oov, SubwordVectors) and encoder.oov.scale > 0
    model = SentenceTransformer(str(search_model.model_dir), trust_remote_code=True, device="cpu")
    vocabulary = sorted(w for w in encoder.tokenizer.get_vocab() if w != "[UNK]" and len(w) >= 6)
    texts = [" ".join(vocabulary[:3]), vocabulary[3].upper() + "!"]
    np.testing.assert_allclose(encoder.encode(texts), model.encode(texts, convert_to_numpy=True), atol=1e-5)
    # A misspelled word (its last letter doubled: unseen) is nearer its word than the other words are.
    unit = lambda v: v / np.linalg.norm(v, axis=-1, keepdims=True)  # noqa: E731
    words = vocabulary[:20]
    typos = [w + w[-1] for w in words]
    assert not set(typos) & set(vocabulary)
    similarity = unit(encoder.encode(typos)) @ unit(encoder.encode(words)).T
    assert np.mean(np.diag(similarity)) > np.mean(similarity[~np.eye(len(words), dtype=bool)]) + 0.3
    assert (similarity.argmax(axis=1) == np.arange(len(words))).mean() >= 0.5  # chance: 0.05


def test_auxiliary_pairs_touching_held_out_pins_are_left_out():
    from datasets import Dataset, DatasetDict

    from pintext.trainer.train import held_out_texts, training_pairs

    def task(rows):
        return DatasetDict({split: Dataset.from_dict({"anchor": [a for a, _ in r], "positive": [p for _, p in r],
                                                      "weight": [1.0] * len(r)})
                            for split, r in rows.items()})

    search = task({"train": [("q1", "sofa")], "validation": [("q2", "lamp")], "test": [("q3", "rug")]})
    related = task({"train": [("sofa", "lamp"), ("sofa", "chair"), ("rug", "chair")], "validation": [],
                    "test": []})
    config = TrainConfig(tasks=["search", "related"])
    held = held_out_texts({"search": search, "related": related}, config)
    assert held == {"lamp", "rug"}
    anchors, positives, weights, dropped = training_pairs(related, refit=False, held_out=held)
    assert list(zip(anchors, positives)) == [("sofa", "chair")] and dropped == 2 and weights is None
    # A refit trains on everything: nothing is held out.
    from dataclasses import replace

    assert held_out_texts({"search": search, "related": related}, replace(config, refit=True)) == frozenset()
