"""Multitask on a user's own pairs, on real data: PinText-SR vs PinText-MTL on the Best Buy click log.

READS ../shared/data/real/ (never committed) through `python -m pintext.bench.realdata`: the search pairs
(query -> clicked SKU) and the related pairs (two SKUs one user clicked, training queries only). Per split:

    pintext pairs --import train_pairs.csv --task search --import related_pairs.csv --task related \\
        --val 0.1 --test 0 --out WORK/pairs
    pintext train --pairs WORK/pairs --out WORK/MTL                  # default: every task in the folder
    pintext train --pairs WORK/pairs --tasks search --out WORK/SR
    pintext eval-retrieval --model WORK/<model> --corpus corpus.jsonl --judgments test_qrels.csv --systems exact

each step in-process through the Python API (`pintext.pairs`, `pintext.train`,
`pintext.evaluation.evaluate_retrieval`: the code these commands run), and writes
docs/results/real/multitask.md (mean +- std over the splits, which model each default run kept).

    python -m pintext.bench.real_mtl [--splits 3] [--work out/real-mtl]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from pintext.bench.real_eval import REAL_REPORT_DIR, REPO, CommandFailed, prepare_real, timed_step
from pintext.bench.realdata import DEFAULT_SHARED
from pintext.constants import RELATED, SEARCH
from pintext.trainer.retrieval import METRICS, mean_and_std

MODELS: dict[str, dict] = {"SR": {"tasks": [SEARCH]}, "MTL": {}}


def one_split(prepared: Path, work: Path, split: int) -> dict:
    """pairs, then SR and MTL trained and evaluated (exact), in-process through the Python API."""
    import pintext
    from pintext.evaluation import EvalInputs, Node, evaluate_retrieval

    folder = REPO / prepared / f"split{split}"
    log: list[dict] = []
    pairs = REPO / work / f"split{split}" / "pairs"
    imports = [(folder / "train_pairs.csv", SEARCH), (folder / "related_pairs.csv", RELATED)]
    timed_step(f"pintext pairs --import {imports[0][0]} --task {SEARCH} --import {imports[1][0]} --task {RELATED} "
               f"--val 0.1 --test 0 --out {pairs}", log,
               lambda: pintext.pairs(pairs, imports=imports, val=0.1, test=0.0))
    result: dict = {"split": split, "commands": log}
    for name, options in MODELS.items():
        model = REPO / work / f"split{split}" / name
        flags = " --tasks search" if options else ""
        timed_step(f"pintext train --pairs {pairs} --out {model}{flags}", log,
                   lambda: pintext.train(pairs, model, **options))
        command = (f"pintext eval-retrieval --model {model} --corpus {REPO / prepared / 'corpus.jsonl'} --judgments "
                   f"{folder / 'test_qrels.csv'} --systems exact --out {model / 'eval'}")
        inputs = EvalInputs(REPO / prepared / "corpus.jsonl", folder / "test_qrels.csv", model / "eval", model,
                            systems=("exact",), command=command)
        evaluation = timed_step(command, log, lambda: evaluate_retrieval(inputs, Node()))
        selection = json.loads((model / "selection.json").read_text(encoding="utf-8"))
        result[name] = {"means": evaluation["systems"]["exact"]["mean"], "chosen": selection["chosen"],
                        "why": selection["why"]}
    return result


def write_report(runs: list[dict], seconds: float, path: Path) -> None:
    lines = ["# Multitask on real pairs: PinText-SR vs PinText-MTL (Best Buy clicks)", "",
             "Read from `../shared/data/real` (never committed). Search pairs: query -> clicked SKU; related pairs: "
             "two SKUs clicked by one user (training queries only). Test: held-out queries, whole-corpus retrieval, "
             "PinText exact (`eval-retrieval --systems exact`). `pintext train` with default flags chooses on the "
             "validation split, search alone (SR) being one candidate of the multitask run.", "",
             "| model | " + " | ".join(METRICS) + " |", "|---|" + "---:|" * len(METRICS)]
    for name in MODELS:
        cells = []
        for metric in METRICS:
            mean, std = mean_and_std([run[name]["means"][metric] for run in runs])
            cells.append(f"{mean:.3f} ± {std:.3f}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "| split | SR NDCG@10 | MTL NDCG@10 | the multitask run kept |", "|---:|---:|---:|---|"]
    for run in runs:
        lines.append(f"| {run['split']} | {run['SR']['means']['ndcg@10']:.3f} | {run['MTL']['means']['ndcg@10']:.3f} "
                     f"| {run['MTL']['chosen']}: {run['MTL']['why']} |")
    lines += ["", "Commands of split 0:", "", "```", *(entry["command"] for entry in runs[0]["commands"]), "```", "",
              f"`python -m pintext.bench.real_mtl --splits {len(runs)}`: {seconds / 60:.1f} min in all.", ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--splits", type=int, default=3)
    parser.add_argument("--work", type=Path, default=Path("out/real-mtl"))
    parser.add_argument("--shared", type=Path, default=DEFAULT_SHARED)
    args = parser.parse_args(argv)
    prepared = Path("out/real")
    if not prepare_real(args.shared, prepared, args.splits):
        return 0
    started = time.perf_counter()
    try:
        runs = [one_split(prepared / "bestbuy", args.work, split) for split in range(args.splits)]
    except CommandFailed as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    write_report(runs, time.perf_counter() - started, REAL_REPORT_DIR / "multitask.md")
    print(f"wrote {REAL_REPORT_DIR / 'multitask.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
