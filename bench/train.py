"""Training benchmark: `pintext pairs` + `pintext train` on the committed sample, pairs/s and wall time to quality.

Both are the real commands (subprocesses). Quality is the search task's test recall@10 / recall@100 / MRR of
the trained model through `pintext.trainer.evaluate` (what `pintext eval` prints), next to BM25 on the same pool.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from pintext.bench.harness import markdown_table, stopwatch
from pintext.constants import SEARCH


def pintext_command(*arguments: str) -> list[str]:
    return [str(Path(sys.executable).with_name("pintext")), *arguments]


def call(command: list[str]) -> tuple[str, float]:
    """Run a command; returns stdout and wall seconds; a failure raises with the tail of stderr."""
    with stopwatch() as timer:
        finished = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "PINTEXT_PROGRESS": ""})
    if finished.returncode != 0:
        raise RuntimeError(f"`{' '.join(command)}` failed ({finished.returncode}): {finished.stderr[-2000:]}")
    return finished.stdout, timer["seconds"]


def build_pairs(sample_dir: Path, pairs_dir: Path) -> float:
    """`pintext pairs` over the sample's events; returns wall seconds."""
    events = next(path for path in (sample_dir / "events.jsonl.gz", sample_dir / "events.jsonl") if path.exists())
    _, seconds = call(pintext_command("pairs", "--out", str(pairs_dir), "--events", str(events),
                                      "--pins", str(sample_dir / "pins.jsonl"),
                                      "--users", str(sample_dir / "users.jsonl")))
    return seconds


def run(sample_dir: Path, work_dir: Path, epochs: float = 3.0) -> tuple[str, dict, Path, Path]:
    """Pairs, train, evaluate; returns (markdown, data, model folder, pairs folder)."""
    from pintext.encoder import Encoder
    from pintext.trainer.evaluate import evaluate_models
    from pintext.trainer.train import load_pairs

    pairs_dir, model_dir = work_dir / "pairs", work_dir / "model"
    pairs_seconds = build_pairs(sample_dir, pairs_dir)
    stdout, train_wall = call(pintext_command("train", "--pairs", str(pairs_dir), "--out", str(model_dir),
                                              "--epochs", str(epochs), "--json"))
    summary = json.loads(stdout[stdout.index("{"):])
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
        f"(**{summary.get('pairs_per_second'):,.0f} pairs/s**), {train_wall:.1f} s wall for the whole command "
        f"(start-up, vocabulary, export included). Vocabulary: {summary.get('vocab_size'):,} words.",
        "",
        "Quality it reached, search task, test split (the trainer's own evaluation):",
        "",
        markdown_table(rows),
    ])
    return markdown, data, model_dir, pairs_dir
