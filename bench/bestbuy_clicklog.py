"""The Best Buy click log end to end through the documented commands, from the raw files: `--map`, no prep code.

READS ../shared/data/real/bestbuy/ (clicks.csv, sku_names.tsv: never committed, see that folder's README.md).
Where it is missing, says so and exits 0. For each pairs split seed S:

    pintext pairs --events clicks.csv --map query=query,pin_id=sku,user_id=user,ts=click_time \
        --pins sku_names.tsv --pins-map id=1,title=2 --val 0.08 --test 0.2 --seed S --out WORK/seedS/pairs
    pintext train --pairs WORK/seedS/pairs --out WORK/seedS/model --threads 1
    pintext eval-retrieval --model WORK/seedS/model --corpus WORK/seedS/pairs/pins.jsonl \
        --judgments WORK/seedS/pairs --out WORK/seedS/eval --cleanup

(judgments = the search task's test split: held-out queries -> the SKUs clicked for them, grade 1), and once, for
seed 0, the serving commands a user would run:

    pintext ingest WORK/seed0/pairs/pins.jsonl --model WORK/seed0/model --index bestbuy-clicklog
    pintext search "xbox skyrim" --model WORK/seed0/model --index bestbuy-clicklog --json

`--val 0.08 --test 0.2` gives the shares of `bench/real_eval.py` (20% of queries held out, 10% of the rest for
validation), so the figures can be set against docs/results/real/report.md (same data, the bench's own prep).
Writes docs/results/bestbuy-clicklog/report.md + results.json: aggregate figures only.

    python -m pintext.bench.bestbuy_clicklog [--seeds 3] [--work out/bestbuy-clicklog] [--shared ../shared/data/real]
        [--train-options '{"budget": 60}']

Each step runs in-process through the Python API (`pintext.pairs`, `pintext.train`,
`pintext.evaluation.evaluate_retrieval`, `pintext.open(...).ingest/search`): the code these commands run.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from pintext.bench.harness import machine_info, package_versions
from pintext.bench.real_eval import SYSTEM_LABELS, CommandFailed, aggregate, succeeded, timed_step
from pintext.bench.realdata import DEFAULT_SHARED
from pintext.trainer.retrieval import METRICS

REPO = Path(__file__).resolve().parents[1]
REPORT_DIR = Path("docs/results/bestbuy-clicklog")
REAL_RESULTS = Path("docs/results/real/results.json")
COLUMN_MAP = "query=query,pin_id=sku,user_id=user,ts=click_time"
PINS_MAP = "id=1,title=2"
INDEX = "bestbuy-clicklog"
EXAMPLE_QUERY = "xbox skyrim"


def pairs_options(shared: Path, seed: int) -> dict[str, Any]:
    folder = REPO / shared / "bestbuy"
    return {"events": folder / "clicks.csv", "column_map": COLUMN_MAP, "pins": folder / "sku_names.tsv",
            "pins_map": PINS_MAP, "val": 0.08, "test": 0.2, "seed": seed}


def one_seed(shared: Path, seed: int, work: Path, train_options: dict, serve: bool) -> dict[str, Any]:
    """pairs -> train -> eval-retrieval for one split seed, in-process through the Python API."""
    import pintext
    from pintext.evaluation import EvalInputs, Node, evaluate_retrieval

    log: list[dict] = []
    pairs, model, evaluation = REPO / work / "pairs", REPO / work / "model", REPO / work / "eval"
    options = pairs_options(shared, seed)
    timed_step(f"pintext pairs --events {options['events']} --map {COLUMN_MAP} --pins {options['pins']} --pins-map "
               f"{PINS_MAP} --val 0.08 --test 0.2 --seed {seed} --out {pairs}", log,
               lambda: pintext.pairs(pairs, **options))
    train_options = {"tasks": ["search"], "threads": 1, **train_options}
    timed_step(f"pintext train --pairs {pairs} --out {model} --tasks search --threads 1", log,
               lambda: pintext.train(pairs, model, **train_options))
    command = (f"pintext eval-retrieval --model {model} --corpus {pairs / 'pins.jsonl'} --judgments {pairs} --out "
               f"{evaluation} --cleanup")
    inputs = EvalInputs(pairs / "pins.jsonl", pairs, evaluation, model, cleanup=True, command=command)
    results = timed_step(command, log, lambda: evaluate_retrieval(inputs, Node(os.environ.get("OPENSEARCH_URL"))))
    stats = json.loads((pairs / "stats.json").read_text(encoding="utf-8"))
    clicklog = json.loads((REPO / f"{pairs}.clicklog" / "summary.json").read_text(encoding="utf-8"))
    run: dict[str, Any] = {
        "seed": seed, "commands": log,
        "means": {name: system["mean"] for name, system in results["systems"].items()},
        "queries": results["judgments"]["evaluated_queries"], "judgments": results["judgments"],
        "how": results.get("how", {}), "versions": results.get("versions", {}),
        "rank_eval_check": results.get("rank_eval_check", {}),
        "clicklog": {"counters": clicklog["counters"], "rejected_by_reason": clicklog["rejected_by_reason"],
                     "defaults": clicklog["defaults"]},
        "pairs": {"input": stats["sources"][0]["input"], "rejected_by_reason": stats["sources"][0].get(
            "rejected_by_reason", {}), "search": stats["tasks"]["search"]["splits"]},
    }
    if serve:
        run["serve"] = serve_example(pairs, model, log)
    return run


def serve_example(pairs: Path, model: Path, log: list[dict]) -> dict[str, Any]:
    """ingest the SKU pins, run the example query; keeps only counts (no product text in the report)."""
    import pintext

    served = pintext.open(model, url=os.environ.get("OPENSEARCH_URL"), index=INDEX)
    timed_step(f"pintext index delete --index {INDEX}", log, served.delete)  # no earlier model's version in the way
    timed_step(f"pintext ingest {pairs / 'pins.jsonl'} --model {model} --index {INDEX}", log,
               lambda: served.ingest(pairs / "pins.jsonl"))
    answer = timed_step(f"pintext search {EXAMPLE_QUERY!r} --model {model} --index {INDEX} --json", log,
                        lambda: served.search(EXAMPLE_QUERY))
    timed_step(f"pintext index delete --index {INDEX}", log, served.delete)
    titles = [hit.title.lower() for hit in answer]
    return {"query": EXAMPLE_QUERY, "hits": len(titles),
            "top5_with_skyrim": sum("skyrim" in title for title in titles[:5]),
            "top1_has_skyrim": bool(titles) and "skyrim" in titles[0]}


def bench_bestbuy() -> dict[str, Any]:
    """The bench's own Best Buy figures (docs/results/real/results.json), for the comparison."""
    path = REPO / REAL_RESULTS
    if not path.is_file():
        return {}
    return json.loads(path.read_text(encoding="utf-8")).get("datasets", {}).get("bestbuy", {}).get("summary", {})


def _reasons(by_reason: dict[str, int]) -> str:
    return ", ".join(f"{reason} x{count}" for reason, count in by_reason.items()) or "none"


def write_report(results: dict[str, Any], seconds: float) -> None:
    folder = REPO / REPORT_DIR
    folder.mkdir(parents=True, exist_ok=True)
    runs, summary, theirs = succeeded(results["runs"]), results["summary"], results["bench_bestbuy"]
    lines = ["# Best Buy click log, end to end through `pintext pairs --map`", ""]
    if results["train_args"]:
        lines += [f"**Not the defaults: `pintext.train` got `{json.dumps(results['train_args'])}`.**", ""]
    lines += ["Data: the raw Best Buy click log and SKU names, read from `../shared/data/real/bestbuy/` (never "
              "committed; aggregate figures only), mapped with `--map` / `--pins-map` (no preparation code). "
              "Judgments: the search task's test split (held-out queries -> the SKUs clicked for them, grade 1), "
              "whole-corpus retrieval over the SKU pins.", ""]
    for run in results["runs"]:
        if "error" in run:
            lines += [f"- **seed {run['seed']} failed**: {run['error']}"]
    if runs:
        first = runs[0]
        c, p = first["clicklog"]["counters"], first["pairs"]
        lines += ["## Every row accounted for", "",
                  f"- click log rows: {c['rows']:,}; events written: {c['events_written']:,}; rejected by the "
                  f"mapping: {c['rows_rejected']:,} ({_reasons(first['clicklog']['rejected_by_reason'])})",
                  f"- SKU rows: {c['pin_rows']:,}, pins written: {c['pins_written']:,}, rejected: "
                  f"{c.get('pin_rows_rejected', 0)}",
                  f"- pairs step: {p['input']['events_valid']:,} events read, {p['input'].get('rejected', 0)} "
                  f"rejected ({_reasons(p['rejected_by_reason'])}), "
                  f"{p['input'].get('pairs_over_anchor_cap', 0)} pairs over the 50-per-query cap",
                  f"- defaults used: {'; '.join(first['clicklog']['defaults'])}",
                  f"- search pairs (seed {first['seed']}): " + ", ".join(
                      f"{split} {info['pairs']:,} pairs / {info['anchors']:,} queries"
                      for split, info in p["search"].items()),
                  "", "## Retrieval", "", "| system | " + " | ".join(METRICS) + " | bench prep (docs/results/real) |",
                  "|---|" + "---:|" * len(METRICS) + "---|"]
        for system, metrics in summary.items():
            bench = theirs.get(system, {})
            bench_text = ", ".join(f"{bench[m]['mean']:.3f}" for m in METRICS if m in bench) or "-"
            lines.append(f"| {SYSTEM_LABELS.get(system, system)} | " + " | ".join(
                f"{metrics[m]['mean']:.3f} ± {metrics[m]['std']:.3f}" for m in METRICS) + f" | {bench_text} |")
        lines += ["", f"Mean ± standard deviation over {len(runs)} pairs split seeds; the last column is the bench's "
                  "own Best Buy figures (same metrics in the same order, mean over its 3 splits). Per seed:", "",
                  "| seed | " + " | ".join(f"{s} ndcg@10" for s in summary) + " | test queries | seconds |",
                  "|---|" + "---:|" * (len(summary) + 2)]
        for run in runs:
            lines.append(f"| {run['seed']} | " + " | ".join(f"{run['means'][s]['ndcg@10']:.3f}" for s in summary)
                         + f" | {run['queries']} | {sum(c['seconds'] for c in run['commands']):.0f} |")
        lines += ["", results["comparison"], "",
                  "Other differences between the two paths: here a pair's `count` is the number of users and its "
                  "weight 0.5 per user (`--click-weight`), there one row per click with weight 1; here the "
                  "judgments are the test split's pairs (at most 50 SKUs per query, `--max-per-anchor`), there "
                  "every SKU clicked for a test query; both train on the search task alone (here `--tasks search`, "
                  "there the only task), other flags default.", ""]
        serve = first.get("serve")
        if serve:
            lines += ["## Serving the example query", "",
                      f"`pintext search \"{serve['query']}\"` on the ingested SKUs: {serve['hits']} hits; "
                      f"{serve['top5_with_skyrim']} of the top 5 titles contain \"skyrim\" (top hit: "
                      f"{'yes' if serve['top1_has_skyrim'] else 'no'}).", ""]
        lines += ["## Commands (seed %d)" % first["seed"], "", "```",
                  *(command["command"] for command in first["commands"]), "```", "",
                  "## Systems", "", *(f"- {name}: {how}" for name, how in first["how"].items()), ""]
    machine = results["machine"]
    lines += ["## Machine, versions, time", "",
              f"- {machine['platform']}, {machine['cores']} cores ({machine['cpu_model']}), {machine['memory']}; "
              f"{results['load_note']}",
              "- " + ", ".join(f"{k} {v}" for k, v in results["versions"].items()),
              f"- `{results['command']}`: {seconds / 60:.1f} min in all", ""]
    (folder / "report.md").write_text("\n".join(lines), encoding="utf-8")
    (folder / "results.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


def compare(summary: dict, theirs: dict) -> str:
    """One sentence: do the --map figures agree with the bench's own prep (within 2 std of the larger spread)?"""
    if not summary or not theirs:
        return "No bench figures to compare with."
    parts, agree = [], True
    for system in summary:
        if system not in theirs:
            continue
        ours, bench = summary[system]["ndcg@10"], theirs[system]["ndcg@10"]
        tolerance = 2 * max(ours["std"], bench["std"], 0.005)
        agree &= abs(ours["mean"] - bench["mean"]) <= tolerance
        parts.append(f"{SYSTEM_LABELS.get(system, system)} {ours['mean']:.3f} vs {bench['mean']:.3f}")
    verdict = "agree (every NDCG@10 within two standard deviations)" if agree else \
        "differ by more than two standard deviations for at least one system"
    sentence = f"NDCG@10, `--map` path vs the bench's prep: {'; '.join(parts)}: they {verdict}."
    if "bm25" in summary and "bm25" in theirs:  # BM25 has no training: its gap is the held-out queries' doing
        lifts = [f"{SYSTEM_LABELS.get(system, system)} {_lift(summary, system):+.3f} vs {_lift(theirs, system):+.3f}"
                 for system in summary if system != "bm25" and system in theirs]
        sentence += (" BM25, which learns nothing from the pairs, moves by "
                     f"{summary['bm25']['ndcg@10']['mean'] - theirs['bm25']['ndcg@10']['mean']:+.3f}: the two paths "
                     "hold out different queries (the pairs step's split hash vs the bench's). NDCG@10 gained over "
                     f"BM25 on the same queries, `--map` vs bench: {'; '.join(lifts)}.")
    return sentence


def _lift(summary: dict, system: str) -> float:
    return summary[system]["ndcg@10"]["mean"] - summary["bm25"]["ndcg@10"]["mean"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--work", type=Path, default=Path("out/bestbuy-clicklog"))
    parser.add_argument("--shared", type=Path, default=DEFAULT_SHARED)
    parser.add_argument("--train-options", type=json.loads, default={},
                        help='extra `pintext.train` keyword arguments as JSON, e.g. \'{"budget": 60}\'')
    parser.add_argument("--load-note", default="", help="what else ran on the machine (for the timings)")
    parser.add_argument("--from-results", type=Path, help="re-write the report from a results.json (no runs)")
    args = parser.parse_args(argv)
    if args.from_results:
        results = json.loads(args.from_results.read_text(encoding="utf-8"))
        results["comparison"] = compare(results["summary"], results["bench_bestbuy"])
        write_report(results, results["seconds"])
        print(f"wrote {REPORT_DIR}/report.md")
        return 0
    if not (REPO / args.shared / "bestbuy" / "clicks.csv").is_file():
        print(f"no Best Buy data at {args.shared}/bestbuy: nothing to run")
        return 0
    train_args: dict = args.train_options
    started = time.perf_counter()
    runs = []
    for seed in range(args.seeds):
        print(f"bestbuy click log, seed {seed} ...", flush=True)
        try:
            runs.append(one_seed(args.shared, seed, args.work / f"seed{seed}", train_args, serve=seed == 0))
        except CommandFailed as error:
            print(f"error: {error}", file=sys.stderr)
            runs.append({"seed": seed, "error": str(error)})
    summary, theirs = aggregate(runs), bench_bestbuy()
    results = {"command": "python -m pintext.bench.bestbuy_clicklog " + shlex.join(
                   argv if argv is not None else sys.argv[1:]),
               "machine": machine_info(), "versions": package_versions(), "train_args": train_args,
               "load_note": args.load_note or "load not recorded", "runs": runs, "summary": summary,
               "bench_bestbuy": theirs, "comparison": compare(summary, theirs),
               "seconds": round(time.perf_counter() - started, 1)}
    write_report(results, results["seconds"])
    print(f"wrote {REPORT_DIR}/report.md")
    return 0 if len(succeeded(runs)) == len(runs) else 1


if __name__ == "__main__":
    raise SystemExit(main())
