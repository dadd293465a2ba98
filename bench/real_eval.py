"""Retrieval on real judgments, as a user would get it: the project's documented commands with default flags.

READS ../shared/data/real/ (the real data sets, never committed: see its README.md) through
`python -m pintext.bench.realdata`, which writes out/real/<crowdflower|bestbuy>/corpus.jsonl and
split<S>/{train_pairs.csv,test_qrels.csv} (git-ignored). Where that folder is missing the real data sets are
skipped with a message and exit status 0. Then for each data set and split, in-process through the Python API
(`pintext.pairs`, `pintext.train`, `pintext.evaluation.evaluate_retrieval`: the code these commands run):

    pintext pairs --import split<S>/train_pairs.csv --task search --val 0.1 --test 0 --out WORK/pairs
    pintext train --pairs WORK/pairs --out WORK/model [TRAIN OPTIONS]
    pintext eval-retrieval --model WORK/model --corpus corpus.jsonl --judgments split<S>/test_qrels.csv \
        --out WORK/eval --cleanup

and for the synthetic sample (data/sample), one run per pairs split seed:

    pintext pairs --events data/sample/events.jsonl.gz --pins data/sample/pins.jsonl \
        --users data/sample/users.jsonl --seed S --out WORK/pairs
    pintext train ...; pintext eval-retrieval ... --judgments WORK/pairs (its search test split)

Mean +- standard deviation over the splits go to docs/results/real/ and docs/results/sample-retrieval/
(report.md, results.json, retrieval.png); figures only, never data.

    python -m pintext.bench.real_eval [--datasets crowdflower,bestbuy,sample] [--splits 3]
        [--train-options '{"epochs": 1}'] [--work out/real-eval] [--shared ../shared/data/real]

`--train-options` (keyword arguments of `pintext.train`) is for trying the runner quickly; a report made with it
says so at the top.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pintext.bench.harness import machine_info, package_versions
from pintext.bench.realdata import DATASETS, DEFAULT_SHARED
from pintext.constants import RELATED, SEARCH
from pintext.trainer.retrieval import METRICS, mean_and_std

REPO = Path(__file__).resolve().parents[1]
SAMPLE = Path("data/sample")
REAL_REPORT_DIR = Path("docs/results/real")
SAMPLE_REPORT_DIR = Path("docs/results/sample-retrieval")
NODE_START_TIMEOUT_S = 300.0
SYSTEM_LABELS = {"bm25": "BM25 (OpenSearch)", "exact": "PinText exact", "served": "PinText served",
                 "hybrid": "hybrid"}


class CommandFailed(RuntimeError):
    """A step of a run failed (a `PinTextError`, or the node could not be started)."""


def timed_step(command: str, log: list[dict], step: Any) -> Any:
    """Run one step in-process through the Python API; record the command it stands for and its seconds."""
    from pintext.errors import PinTextError

    started = time.perf_counter()
    try:
        result = step()
    except PinTextError as error:
        log.append({"command": command, "seconds": round(time.perf_counter() - started, 1), "exit": error.exit_code})
        raise CommandFailed(f"`{command}` failed (exit {error.exit_code}): {error}") from None
    log.append({"command": command, "seconds": round(time.perf_counter() - started, 1), "exit": 0})
    return result


@dataclass(frozen=True)
class PairsStep:
    """`pintext.pairs` keyword arguments, and the `pintext pairs` command line they stand for."""

    options: dict
    command: str


def train_and_evaluate(pairs_step: PairsStep, pairs: Path, corpus: Path, judgments: Path, work: Path,
                       train_options: dict) -> dict:
    """pairs -> train -> eval-retrieval in `work`, in-process; the eval's results plus the commands and seconds."""
    import pintext
    from pintext.evaluation import EvalInputs, Node, evaluate_retrieval

    log: list[dict] = []
    model, evaluation = REPO / work / "model", REPO / work / "eval"
    pairs = REPO / pairs
    timed_step(f"{pairs_step.command} --out {pairs}", log, lambda: pintext.pairs(pairs, **pairs_step.options))
    extra = "".join(f" --{key.replace('_', '-')} {value}" for key, value in train_options.items())
    timed_step(f"pintext train --pairs {pairs} --out {model}{extra}", log,
               lambda: pintext.train(pairs, model, **train_options))
    command = (f"pintext eval-retrieval --model {model} --corpus {corpus} --judgments {judgments} --out {evaluation} "
               "--cleanup")
    inputs = EvalInputs(REPO / corpus, REPO / judgments, evaluation, model, cleanup=True, command=command)
    results = timed_step(command, log, lambda: evaluate_retrieval(inputs, Node(os.environ.get("OPENSEARCH_URL"))))
    return {"commands": log, "means": {name: system["mean"] for name, system in results["systems"].items()},
            "queries": results["judgments"]["evaluated_queries"], "judgments": results["judgments"],
            "index": results.get("index", {}), "rank_eval_check": results.get("rank_eval_check", {}),
            "how": results.get("how", {}), "versions": results.get("versions", {})}


def one_split(label: str, split: int, run: Any) -> dict:
    """One split's run; a failed command is recorded (and printed) so the other splits still run."""
    print(f"{label} split {split} ...", flush=True)
    try:
        return {"split": split, **run()}
    except CommandFailed as error:
        print(f"error: {error}", file=sys.stderr)
        return {"split": split, "error": str(error)}


# Data sets whose related pairs (two products relevant to one training query) join the search pairs, as a user
# with such judgments would import them: the multitask candidates of `pintext train` then have a task to use.
WITH_RELATED = {"homedepot"}


def real_runs(name: str, prepared: Path, work: Path, splits: int, train_options: dict) -> list[dict]:
    runs = []
    for split in range(splits):
        folder, split_work = prepared / f"split{split}", work / name / f"split{split}"
        imports = [(REPO / folder / "train_pairs.csv", SEARCH)]
        if name in WITH_RELATED:
            imports.append((REPO / folder / "related_pairs.csv", RELATED))
        command = "pintext pairs " + " ".join(f"--import {file} --task {task}" for file, task in imports)
        step = PairsStep({"imports": imports, "val": 0.1, "test": 0.0}, command + " --val 0.1 --test 0")
        runs.append(one_split(name, split, lambda: train_and_evaluate(
            step, split_work / "pairs", prepared / "corpus.jsonl", folder / "test_qrels.csv", split_work,
            train_options)))
    return runs


def sample_runs(work: Path, splits: int, train_options: dict) -> list[dict]:
    runs = []
    for seed in range(splits):
        split_work = work / "sample" / f"seed{seed}"
        files = {"events": REPO / SAMPLE / "events.jsonl.gz", "pins": REPO / SAMPLE / "pins.jsonl",
                 "users": REPO / SAMPLE / "users.jsonl"}
        step = PairsStep({**files, "seed": seed}, "pintext pairs " + " ".join(
            f"--{key} {value}" for key, value in files.items()) + f" --seed {seed}")
        runs.append(one_split("sample", seed, lambda: train_and_evaluate(
            step, split_work / "pairs", SAMPLE / "pins.jsonl", split_work / "pairs", split_work, train_options)))
    return runs


def succeeded(runs: list[dict]) -> list[dict]:
    return [run for run in runs if "error" not in run]


# ---- aggregation and report ------------------------------------------------------------------------------------


def aggregate(runs: list[dict]) -> dict:
    """{system: {metric: {"mean", "std", "values"}}} over the runs (splits) that succeeded."""
    runs = succeeded(runs)
    if not runs:
        return {}
    systems = list(runs[0]["means"])
    return {system: {metric: dict(zip(("mean", "std"), mean_and_std([run["means"][system][metric] for run in runs])),
                                  values=[run["means"][system][metric] for run in runs])
                     for metric in METRICS} for system in systems}


def dataset_section(name: str, result: dict) -> list[str]:
    summary, runs = result["summary"], succeeded(result["runs"])
    failures = [f"- **split {run['split']} failed**: {run['error']}" for run in result["runs"] if "error" in run]
    if not runs:
        return [f"## {name}", "", "Every split failed:", "", *failures, ""]
    lines = [f"## {name}", "", *(failures + [""] if failures else []), "| system | " + " | ".join(METRICS) + " |",
             "|---|" + "---:|" * len(METRICS)]
    for system, metrics in summary.items():
        lines.append(f"| {SYSTEM_LABELS.get(system, system)} | "
                     + " | ".join(f"{metrics[m]['mean']:.3f} ± {metrics[m]['std']:.3f}" for m in METRICS) + " |")
    lines += ["", f"Mean ± standard deviation over {len(runs)} splits. Per split (NDCG@10 of each system; "
              "queries evaluated; judged docs absent from the corpus; pins ingest rejected; seconds):", "",
              "| split | " + " | ".join(summary) + " | queries | absent docs | rejected pins | seconds |",
              "|---|" + "---:|" * (len(summary) + 4)]
    for run in runs:
        ingest = run["index"].get("ingest", {})
        lines.append(f"| {run['split']} | " + " | ".join(f"{run['means'][s]['ndcg@10']:.3f}" for s in summary)
                     + f" | {run['queries']} | {run['judgments']['absent']['docs_absent_from_corpus']} | "
                     f"{ingest.get('rejected', '?')} | {sum(c['seconds'] for c in run['commands']):.0f} |")
    check = runs[0].get("rank_eval_check", {})
    if check:
        worst = max(max(run["rank_eval_check"][m]["max_abs_diff"] for m in check) for run in runs)
        verdict = "equal to" if worst < 1e-9 else "DIFFERENT from"
        lines += ["", f"BM25 metrics on every split are {verdict} OpenSearch `_rank_eval`'s on the same requests "
                  f"(largest per-query difference {worst:.2g})."]
    lines += ["", f"Commands of split {runs[0]['split']}:", "", "```", *(c["command"] for c in runs[0]["commands"]),
              "```", ""]
    return lines


def write_report(folder: Path, title: str, source_note: str, results: dict, train_args: dict,
                 seconds: float) -> None:
    folder = REPO / folder
    folder.mkdir(parents=True, exist_ok=True)
    lines = [f"# {title}", ""]
    if train_args:
        lines += [f"**Not the defaults: `pintext.train` got `{json.dumps(train_args)}`** (a quick run of the "
                  "runner, not the final figures).", ""]
    lines += [source_note, "", "![metrics per system](retrieval.png)", ""]
    for name, result in results["datasets"].items():
        lines += dataset_section(name, result)
    first_name, first_run = next(((name, run) for name, result in results["datasets"].items()
                                  for run in succeeded(result["runs"])), ("none", {"how": {}, "versions": {}}))
    lines += ["## Systems", "", f"As run for split {first_run.get('split', '-')} of {first_name}:", "",
              *(f"- {name}: {how}" for name, how in first_run["how"].items()), "",
              "## Machine, versions, time", "",
              f"- {results['machine']['platform']}, {results['machine']['cores']} cores "
              f"({results['machine']['cpu_model']}), {results['machine']['memory']}",
              "- " + ", ".join(f"{k} {v}" for k, v in {**results["versions"], **first_run["versions"]}.items()),
              f"- `{results['command']}`: {seconds / 60:.1f} min in all", ""]
    (folder / "report.md").write_text("\n".join(lines), encoding="utf-8")
    (folder / "results.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    write_plot({name: result["summary"] for name, result in results["datasets"].items() if result["summary"]},
               folder / "retrieval.png")


def write_plot(summaries: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, max(1, len(summaries)), figsize=(6.5 * max(1, len(summaries)), 4), squeeze=False)
    for axis, (name, summary) in zip(axes[0], summaries.items()):
        width = 0.8 / max(1, len(summary))
        for offset, (system, metrics) in enumerate(summary.items()):
            positions = [i + offset * width for i in range(len(METRICS))]
            axis.bar(positions, [metrics[m]["mean"] for m in METRICS], width,
                     yerr=[metrics[m]["std"] for m in METRICS], capsize=3, label=SYSTEM_LABELS.get(system, system))
        axis.set_xticks([i + width * (len(summary) - 1) / 2 for i in range(len(METRICS))], METRICS)
        axis.set_ylim(0, 1)
        axis.set_title(f"{name} (mean ± std over splits)")
        axis.legend(loc="lower right", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


# ---- main ------------------------------------------------------------------------------------------------------


def ensure_node() -> None:
    """The node eval-retrieval talks to: $OPENSEARCH_URL if set, else the managed one (started if needed)."""
    from pintext.servers.lifecycle import ServerError
    from pintext.servers.opensearch_node import managed_nodes

    if not os.environ.get("OPENSEARCH_URL"):
        try:
            for node in managed_nodes():
                node.start(NODE_START_TIMEOUT_S)
        except ServerError as error:
            raise CommandFailed(f"the managed OpenSearch node did not start: {error}") from None


def prepare_real(shared: Path, prepared: Path, splits: int) -> bool:
    """Build out/real/ from the shared folder; False (with a message) when the folder is missing."""
    if not (REPO / shared).is_dir():
        print(f"no real data at {shared} (resolved from {REPO}): skipping the real data sets")
        return False
    print(f"reading the real data sets from {shared} (never committed; figures only)", flush=True)
    from pintext.bench.realdata import main as prepare

    if prepare(["--shared", str(REPO / shared), "--out", str(REPO / prepared), "--splits", str(splits)]) != 0:
        raise CommandFailed(f"python -m pintext.bench.realdata could not prepare {shared}")
    return True


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", default=",".join([*DATASETS, "sample"]),
                        help="comma-separated: crowdflower, bestbuy, homedepot, sample")
    parser.add_argument("--splits", type=int, default=3)
    parser.add_argument("--train-options", type=json.loads, default={},
                        help='extra `pintext.train` keyword arguments as JSON, e.g. \'{"epochs": 1}\'')
    parser.add_argument("--work", type=Path, default=Path("out/real-eval"), help="pairs, models, eval outputs")
    parser.add_argument("--shared", type=Path, default=DEFAULT_SHARED, help="the shared real-data folder")
    parser.add_argument("--prepared", type=Path, default=Path("out/real"), help="where realdata writes")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    chosen = [name.strip() for name in args.datasets.split(",") if name.strip()]
    unknown = set(chosen) - {*DATASETS, "sample"}
    if unknown:
        print(f"unknown data set(s): {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    train_args: dict = args.train_options
    common = {"machine": machine_info(), "versions": package_versions(),
              "command": "python -m pintext.bench.real_eval " + shlex.join(argv if argv is not None else sys.argv[1:]),
              "train_args": train_args}
    failed = False
    try:
        real = [name for name in chosen if name in DATASETS]
        if real and prepare_real(args.shared, args.prepared, args.splits):
            ensure_node()
            started = time.perf_counter()
            datasets = {}
            for name in real:
                runs = real_runs(name, args.prepared / name, args.work, args.splits, train_args)
                datasets[name] = {"runs": runs, "summary": aggregate(runs)}
                failed |= len(succeeded(runs)) < len(runs)
            write_report(REAL_REPORT_DIR, "Retrieval on real judgments",
                         f"Data: read from `{args.shared}` (see its README.md; never committed) by "
                         "`python -m pintext.bench.realdata`, queries split by text into train (+ validation) and "
                         "held-out test queries; test judgments are whole-corpus retrieval.",
                         {**common, "datasets": datasets}, train_args, time.perf_counter() - started)
            print(f"wrote {REAL_REPORT_DIR}/report.md")
        if "sample" in chosen:
            ensure_node()
            started = time.perf_counter()
            runs = sample_runs(args.work, args.splits, train_args)
            failed |= len(succeeded(runs)) < len(runs)
            write_report(SAMPLE_REPORT_DIR, "Retrieval on the synthetic sample",
                         f"Data: the committed synthetic sample `{SAMPLE}`; judgments = the search test split of "
                         "`pintext pairs` (query = anchor, relevant = positive pin, grade 1), one pairs split seed "
                         "per run; corpus = all sample pins.",
                         {**common, "datasets": {"sample": {"runs": runs, "summary": aggregate(runs)}}}, train_args,
                         time.perf_counter() - started)
            print(f"wrote {SAMPLE_REPORT_DIR}/report.md")
    except CommandFailed as error:  # starting the node
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
