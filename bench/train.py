"""Training benchmark: `pintext pairs` + `pintext train` on the committed sample, pairs/s and wall time to quality.

Both run in-process through the Python API (`pintext.pairs`, `pintext.train`: the code the commands run).
Quality is the search task's test recall@10 / recall@100 / MRR of
the trained model through `pintext.trainer.evaluate` (what `pintext eval` prints), next to BM25 on the same pool.
"""

from __future__ import annotations

from pathlib import Path

from pintext.bench.harness import markdown_table, stopwatch
from pintext.constants import SEARCH


def build_pairs(sample_dir: Path, pairs_dir: Path) -> float:
    """`pintext.pairs` over the sample's events (what `pintext pairs` runs); returns wall seconds."""
    import pintext

    events = next(path for path in (sample_dir / "events.jsonl.gz", sample_dir / "events.jsonl") if path.exists())
    with stopwatch() as timer:
        pintext.pairs(pairs_dir, events=events, pins=sample_dir / "pins.jsonl", users=sample_dir / "users.jsonl")
    return timer["seconds"]


def run(sample_dir: Path, work_dir: Path, epochs: float = 3.0) -> tuple[str, dict, Path, Path]:
    """Pairs, train, evaluate; returns (markdown, data, model folder, pairs folder)."""
    from pintext.encoder import Encoder
    from pintext.trainer.evaluate import evaluate_models
    from pintext.trainer.train import load_pairs

    pairs_dir, model_dir = work_dir / "pairs", work_dir / "model"
    import pintext

    pairs_seconds = build_pairs(sample_dir, pairs_dir)
    with stopwatch() as timer:
        trained = pintext.train(pairs_dir, model_dir, epochs=epochs)
    train_wall = timer["seconds"]
    summary = {**trained.summary(), "coverage": trained.coverage, "selection": trained.selection}
    results = evaluate_models(load_pairs(pairs_dir, [SEARCH]), {"PinText": Encoder.load(model_dir)}, bm25=True)
    search = {name: results[name][SEARCH] for name in results}
    rows = [{"model": name, **{metric: values.get(metric) for metric in ("recall@10", "recall@100", "mrr",
                                                                          "pairwise_accuracy")}}
            for name, values in search.items()]
    data = {"pairs_seconds": pairs_seconds, "train_wall_seconds": train_wall, "train_summary": summary,
            "epochs": epochs, "search_test": search}
    markdown = "\n".join([
        f"`pintext pairs` on the sample's events took {pairs_seconds:.1f} s. `pintext train --epochs {epochs:g}` "
        f"(multitask, dim 64, {summary.get('device')}) trained {summary.get('train_pairs'):,} pairs x "
        f"{epochs:g} epochs in **{summary.get('seconds'):.1f} s** of training "
        f"(**{summary.get('pairs_per_second'):,.0f} pairs/s**), {train_wall:.1f} s wall for the whole "
        "`pintext.train` call "
        f"(selection, vocabulary, export included). Vocabulary: {summary.get('vocab_size'):,} words.",
        "",
        "Quality it reached, search task, test split (the trainer's own evaluation):",
        "",
        markdown_table(rows),
    ])
    return markdown, data, model_dir, pairs_dir
