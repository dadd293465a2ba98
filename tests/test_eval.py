"""Evaluation: tie-pessimistic ranking, metric values on hand-made cases, BM25, STS, the report and CLI."""

import json

import numpy as np
import pytest

from pintext.encoder import Encoder, write_runtime
from pintext.trainer.evaluate import (
    evaluate_bm25,
    evaluate_encoder,
    prepare_task,
    random_encoder,
    ranks_of_relevant,
    read_sts,
    sts_spearman,
)
from pintext.trainer.tokenizer import train_word_tokenizer
from pintext.trainer.train import TrainConfig, load_pairs, train
from tests.factories import synthetic_pairs
from tests.fixtures_cli import run_pintext


def test_ties_rank_pessimistically():
    scores = np.array([0.5, 0.9, 0.5, 0.1])
    assert ranks_of_relevant(scores, np.array([1])).tolist() == [1]
    assert ranks_of_relevant(scores, np.array([0])).tolist() == [3]  # tied with item 2: counts as behind it
    assert ranks_of_relevant(np.zeros(50), np.array([7])).tolist() == [50]
    assert ranks_of_relevant(np.array([0.2, 0.2, 0.9]), np.array([0, 1])).tolist() == [2, 2]  # relevant ties


def _toy_pairs():
    from datasets import Dataset, DatasetDict

    rows = [
        {"anchor": "red", "positive": "red apple", "anchor_id": "red", "positive_id": "a"},
        {"anchor": "green", "positive": "green pear", "anchor_id": "green", "positive_id": "b"},
        {"anchor": "blue", "positive": "blue sky", "anchor_id": "blue", "positive_id": "c"},
        {"anchor": "red", "positive": "red cherry", "anchor_id": "red", "positive_id": "d"},
    ]
    part = Dataset.from_list(rows)
    return DatasetDict({"train": part, "validation": part, "test": part})


def _one_hot_encoder(tmp_path):
    """A hand-made model: each colour word and its fruit share one axis, so colour queries find their pins."""
    tokenizer = train_word_tokenizer(["red apple cherry green pear blue sky"], min_count=1)
    vocab = tokenizer.get_vocab()
    axis = {"red": 0, "apple": 0, "cherry": 0, "green": 1, "pear": 1, "blue": 2, "sky": 2}
    table = np.zeros((tokenizer.get_vocab_size(), 3), dtype=np.float32)
    for word, index in axis.items():
        table[vocab[word], index] = 1.0
    write_runtime(tmp_path / "toy", tokenizer, table)
    return Encoder.load(tmp_path / "toy")


def test_a_perfect_model_scores_perfectly(tmp_path):
    task = prepare_task(_toy_pairs(), "test")
    assert len(task.pool_texts) == 4 and len(task.query_texts) == 3
    metrics = evaluate_encoder(_one_hot_encoder(tmp_path), task)
    assert metrics["pairwise_accuracy"] == 1.0
    assert metrics["recall@10"] == metrics["mrr"] == 1.0
    assert metrics["token_coverage"] == metrics["text_coverage"] == 1.0


def test_a_blind_model_does_not_score_well(tmp_path):
    task = prepare_task(_toy_pairs(), "test")
    toy = _one_hot_encoder(tmp_path)
    blind = Encoder(toy.tokenizer, np.zeros((toy.vocab_size, 3), np.float32), unk_id=0, fingerprint="zeros")
    metrics = evaluate_encoder(blind, task)
    assert metrics["pairwise_accuracy"] == 0.0  # ties fail
    # Every item tied: each query's best relevant item ranks behind all non-relevant ones
    # ("red" has 2 relevant of 4 -> rank 3; "green" and "blue" -> rank 4).
    assert metrics["mrr"] == pytest.approx((1 / 3 + 1 / 4 + 1 / 4) / 3)
    assert metrics["token_coverage"] == 1.0


def test_bm25_finds_word_matches():
    metrics = evaluate_bm25(prepare_task(_toy_pairs(), "test"))
    assert metrics["pairwise_accuracy"] == 1.0 and metrics["mrr"] == 1.0


def test_sts_reader_and_spearman(tmp_path):
    sts = tmp_path / "sts.csv"
    sts.write_text(
        "g\tf\t2012\t1\t5.0\tred apple\tred apple\n"
        "g\tf\t2012\t2\t2.5\tred apple\tred cherry pear\n"
        "g\tf\t2012\t3\t0.0\tred apple\tblue sky\n"
    )
    first, second, gold = read_sts(sts)
    assert first[1] == "red apple" and gold.tolist() == [5.0, 2.5, 0.0]
    assert sts_spearman(_one_hot_encoder(tmp_path), sts) == pytest.approx(1.0)
    sts.write_text("g\tf\t2012\t1\tfive\ta\tb\n")
    with pytest.raises(ValueError, match=r"sts.csv:1: field 5 \(score\)"):
        read_sts(sts)


def test_random_encoder_keeps_vocabulary_and_shape(tmp_path):
    toy = _one_hot_encoder(tmp_path)
    baseline = random_encoder(toy)
    assert (baseline.vocab_size, baseline.dim) == (toy.vocab_size, toy.dim)
    assert baseline.encode(["red"]).any() and not baseline.encode(["unknownword"]).any()


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    pairs = synthetic_pairs(root / "pairs", seed=5)
    # dim 64: with 16 dimensions the random n-gram rows of the sub-word start drown the words (docs/training.md).
    config = TrainConfig(epochs=3, batch_size=32, dim=64, min_count=1, threads=1, early_stopping=False)
    return pairs, train(pairs, root / "model", config, show_progress=False).model_dir


def test_trained_model_beats_random_on_search(trained):
    pairs, model_dir = trained
    task = prepare_task(load_pairs(pairs, ["search"])["search"], "test")
    encoder = Encoder.load(model_dir)
    learned, untrained = evaluate_encoder(encoder, task), evaluate_encoder(random_encoder(encoder), task)
    assert learned["pairwise_accuracy"] > untrained["pairwise_accuracy"]
    assert learned["mrr"] > untrained["mrr"]  # the pool (72 pins) is under 100: recall@100 is 1 for both


def test_cli_eval_json_and_report(trained, tmp_path):
    pairs, model_dir = trained
    report = tmp_path / "report"
    result = run_pintext(["eval", "--model", str(model_dir), "--pairs", str(pairs), "--bm25", "--random", "--out",
                          str(report), "--json"])
    result.ok()
    figures = json.loads(result.output[result.output.index("{"):])
    assert set(figures) == {"MTL", "random", "BM25"}
    assert set(figures["MTL"]) >= {"search", "related", "homefeed"}
    assert 0.0 <= figures["MTL"]["search"]["recall@100"] <= 1.0
    text = (report / "report.md").read_text()
    assert "| search | MTL |" in text and "| search | BM25 |" in text
    for image in ("loss_curves.png", "pairwise_accuracy.png", "recall_at_100.png"):
        assert (report / image).stat().st_size > 1000, image


def test_cli_eval_bad_model_folder(tmp_path, trained):
    result = run_pintext(["eval", "--model", str(tmp_path), "--pairs", str(trained[0])])
    assert result.code == 2 and "runtime/tokenizer.json: missing" in result.output


def test_cli_train_eval_one_command(trained, tmp_path):
    pairs, _ = trained
    result = run_pintext(["train-eval", "--pairs", str(pairs), "--out", str(tmp_path), "--epochs", "1",
                          "--batch-size", "32", "--dim", "8", "--no-tune", "--json"])
    result.ok()
    output = json.loads(result.output[result.output.index("{"):])
    assert set(output["results"]) == {"MTL", "SR", "random", "BM25"}
    assert set(output["results"]["SR"]) >= {"search", "related", "homefeed"}  # SR is evaluated on every task too
    assert output["training"]["MTL"]["pairs_per_second"] > 0
    assert (tmp_path / "report" / "report.md").is_file() and (tmp_path / "SR" / "runtime" / "runtime.json").is_file()
