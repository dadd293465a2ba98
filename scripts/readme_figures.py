"""Render README.md's figures from the committed reports, so the README cannot say what the reports do not.

    python scripts/readme_figures.py           # rewrite the block between the markers in README.md
    python scripts/readme_figures.py --check   # exit 1 with a one-line summary when README.md differs

Every figure is read from the JSON a report was written from (never from its markdown) and names that report and
its data set. The block sits between `<!-- figures:begin -->` and `<!-- figures:end -->`; the rest of the README is
left alone.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
BEGIN = "<!-- figures:begin -->"
END = "<!-- figures:end -->"

# The reports the figures come from (each folder holds the JSON and the report.md written from it).
REAL = "docs/results/real"
SAMPLE_RETRIEVAL = "docs/results/sample-retrieval"
QUERY_KINDS = "docs/results/query-kinds"
TRAIN_EVAL = "docs/results/train-eval"
BENCH_QUICK = "bench"
BENCH_1M = "bench/scale-1m"

# (report folder, data set key in its results.json, the name a reader knows it by, what its corpus holds).
QUALITY_DATASETS = (
    (REAL, "crowdflower", "Crowdflower", "products"),
    (REAL, "bestbuy", "Best Buy clicks", "products"),
    (REAL, "homedepot", "Home Depot", "products"),
    (SAMPLE_RETRIEVAL, "sample", "synthetic sample", "pins"),
)
SYSTEMS = ("bm25", "exact", "served", "hybrid")
QUERY_KIND_ORDER = ("size", "model number", "unseen word", "one word", "plain")

# The `pintext bench` goals the speed summary reads, by their names in report.json.
EXACT_GOAL = "Token path p50 vs exact script"
HNSW_GOAL = "Token path p50 vs HNSW at the same recall"


class ReportError(Exception):
    """A report is missing or lacks a field the README shows: one line naming the file."""


def load(report: str, name: str) -> Any:
    path = ROOT / report / name
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise ReportError(f"{path.relative_to(ROOT)}: cannot read ({error})") from None


def link(report: str, name: str = "report.md") -> str:
    target = f"{report}/{name}"
    return f"[{target}]({target})"


def ratio(value: float) -> str:
    """Speed-ups as the reports print them: three significant figures."""
    return f"{value:.3g}x"


def served_gain(summary: dict[str, Any]) -> float:
    bm25 = summary["bm25"]["ndcg@10"]["mean"]
    return summary["served"]["ndcg@10"]["mean"] / bm25 - 1.0


def quality_cell(summary: dict[str, Any], system: str, bold: bool) -> str:
    ndcg = summary[system]["ndcg@10"]["mean"]
    recall = summary[system]["recall@100"]["mean"]
    cell = f"{ndcg:.3f} ({recall:.3f})"
    return f"**{cell}**" if bold else cell


def dataset_label(name: str, corpus: str, runs: list[dict[str, Any]]) -> str:
    queries = sorted(run["queries"] for run in runs)
    docs = runs[0]["index"]["docs"]
    spread = f"{queries[0]:,}" if queries[0] == queries[-1] else f"{queries[0]:,}-{queries[-1]:,}"
    return f"{name} ({docs:,} {corpus}; {len(runs)} splits of {spread} test queries)"


def quality_table() -> list[str]:
    lines = [
        "| NDCG@10 (Recall@100), mean over splits | BM25 (OpenSearch) | PinText exact | PinText served "
        "| hybrid | served vs BM25 | report |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for report, key, name, corpus in QUALITY_DATASETS:
        dataset = load(report, "results.json")["datasets"].get(key)
        if dataset is None:
            raise ReportError(f"{report}/results.json: no data set {key!r}")
        summary = dataset["summary"]
        label = dataset_label(name, corpus, dataset["runs"])
        cells = [quality_cell(summary, system, system == "served") for system in SYSTEMS]
        gain = f"{served_gain(summary):+.0%}"
        lines.append(f"| {label} | {' | '.join(cells)} | {gain} | {link(report)} |")
    return lines


def query_kinds_line() -> str:
    kinds = load(QUERY_KINDS, "results.json")
    pairs = ", ".join(
        f"{kind} {kinds[kind]['served ndcg@10']:.3f} vs {kinds[kind]['bm25 ndcg@10']:.3f}" for kind in QUERY_KIND_ORDER
    )
    ahead = sum(kinds[kind]["served ndcg@10"] > kinds[kind]["bm25 ndcg@10"] for kind in QUERY_KIND_ORDER)
    every = "every" if ahead == len(QUERY_KIND_ORDER) else f"{ahead} of {len(QUERY_KIND_ORDER)}"
    return (
        f"By kind of query (Home Depot split 0, {kinds['all']['queries']:,} test queries; {link(QUERY_KINDS)}), "
        f"PinText served is ahead of BM25 on {every} kind, NDCG@10: {pairs}."
    )


def multitask_line() -> str:
    results = load(TRAIN_EVAL, "results.json")

    def recall(model: str, task: str) -> str:
        return f"{results[model][task]['recall@100']:.3f}"

    return (
        f"One table for three tasks (synthetic sample, `make eval`; {link(TRAIN_EVAL)}): search recall@100 "
        f"{recall('MTL', 'search')} multitask, {recall('SR', 'search')} search-only, {recall('BM25', 'search')} BM25; "
        f"the home feed gains most, {recall('SR', 'homefeed')} -> {recall('MTL', 'homefeed')}."
    )


def goals(report: str) -> dict[str, dict[str, Any]]:
    return {goal["goal"]: goal for goal in load(report, "report.json")["goals"]}


def goal_cell(goal: dict[str, Any] | None) -> str:
    if goal is None:
        return "—"
    value = goal["measured"]
    shown = ratio(value) if "x" in goal["target"] else f"{value:.3f}"
    verdict = "met" if goal["met"] == "yes" else "**missed**"
    detail = f" ({goal['detail']})" if goal["goal"] == HNSW_GOAL else ""
    return f"{shown}, {verdict}{detail}"


def token_families(report: str) -> dict[str, Any]:
    return load(report, "token-families/results.json")


def token_corpus(report: str) -> str:
    corpus = token_families(report)["corpus"]
    return f"{corpus['pins']:,} pins of real product text ({corpus['kind']}, {corpus['queries']} real queries)"


def served_lsh(report: str) -> dict[str, Any]:
    for row in token_families(report)["results"]:
        if row["method"] == "PinText lsh" and row["setting"].startswith("as served:"):
            return row
    raise ReportError(f"{report}/token-families/results.json: no 'PinText lsh' row 'as served'")


def target_ratio(goal: dict[str, Any]) -> float:
    """'>= 10x faster' -> 10.0."""
    return float(goal["target"].split()[1].rstrip("x"))


def speed_summary() -> str:
    """The sentence the speed table proves: how the token path stands against the exact script and HNSW."""
    quick, scale = goals(BENCH_QUICK), goals(BENCH_1M)
    exact = [quick[EXACT_GOAL], scale[EXACT_GOAL]]
    hnsw = [quick[HNSW_GOAL], scale[HNSW_GOAL]]
    met = sum(goal["met"] == "yes" for goal in exact)
    verdict = {2: "met at both sizes", 1: "met at one size of two", 0: "missed at both sizes"}[met]
    lsh_best = max(served_lsh(report)["speedup_vs_exact"] for report in (BENCH_QUICK, BENCH_1M))
    lsh = "misses the goal" if lsh_best < target_ratio(exact[0]) else "meets the goal too"
    return (
        "**Speed** on one OpenSearch 3.5.0 node, 2-core machine. The token path (learned k-means centroid tokens, "
        f"`--tokens kmeans`) answers {ratio(exact[0]['measured'])} and {ratio(exact[1]['measured'])} faster than the "
        f"exact `knn_score` script at 100k and 1M pins (goal {exact[0]['target']}: {verdict}) and "
        f"{ratio(hnsw[0]['measured'])} and {ratio(hnsw[1]['measured'])} slower than Lucene HNSW at the same recall; "
        f"random-hyperplane LSH as served {lsh} (at best {ratio(lsh_best)})."
    )


def speed_data_line() -> str:
    params = load(BENCH_QUICK, "report.json")["params"]
    return (
        f"100k: {link(BENCH_QUICK, 'REPORT.md')}, the encoder on {params['encode_texts']:,} synthetic texts, tuned LSH "
        f"on {params['pins']:,} synthetic pins, the token path on {token_corpus(BENCH_QUICK)}. "
        f"1M: {link(BENCH_1M, 'REPORT.md')}, {token_corpus(BENCH_1M)}."
    )


def speed_table() -> list[str]:
    quick, scale = goals(BENCH_QUICK), goals(BENCH_1M)
    lines = ["| goal (`pintext bench`) | target | 100k | 1M |", "|---|---|---|---|"]
    for name, goal in quick.items():
        lines.append(f"| {name} | {goal['target']} | {goal_cell(goal)} | {goal_cell(scale.get(name))} |")
    small, large = (served_lsh(report) for report in (BENCH_QUICK, BENCH_1M))
    lines.append(
        "| Random-hyperplane LSH as served (`--tokens lsh`, the default) p50 vs exact script, real text | — "
        f"| {ratio(small['speedup_vs_exact'])} (recall@10 {small['recall']:.3f}) "
        f"| {ratio(large['speedup_vs_exact'])} (recall@10 {large['recall']:.3f}) |"
    )
    return lines


def ingest_line() -> str:
    rates = []
    for report in (BENCH_QUICK, BENCH_1M):
        runs = load(report, "token-families/results.json")["ingest"]
        best = max((run for run in runs if not run.get("client_only")), key=lambda run: run["docs_per_s"])
        rates.append(f"{best['docs_per_s']:,.0f} pins/s (`--workers {best['workers']}`, "
                     f"{link(report + '/token-families')})")
    return f"`pintext ingest` at its best writes {rates[0]} at 100k pins and {rates[1]} at 1M."


def render() -> str:
    """The figures block, markers included."""
    lines = [
        BEGIN,
        "<!-- generated by scripts/readme_figures.py from the committed reports; edit the script, not this block -->",
        "",
        "**Search quality**: held-out queries, whole-corpus retrieval, the project's commands with default flags "
        "(`python -m pintext.bench.real_eval`). PinText served is what `pintext search` answers (token candidates, "
        "exact cosine, the word-match signal); hybrid fuses BM25 in.",
        "",
        *quality_table(),
        "",
        query_kinds_line(),
        "",
        multitask_line(),
        "",
        speed_summary(),
        "",
        speed_data_line(),
        "",
        *speed_table(),
        "",
        ingest_line(),
        END,
    ]
    return "\n".join(lines)


def replace_block(readme: str, block: str) -> str:
    start, end = readme.find(BEGIN), readme.find(END)
    if start < 0 or end < start:
        raise ReportError(f"README.md: no '{BEGIN}' ... '{END}' block")
    return readme[:start] + block + readme[end + len(END):]


def difference(current: str, wanted: str) -> str:
    """One line: how many lines differ, and the first difference as the README has it and as the reports give it."""
    old, new = current.splitlines(), wanted.splitlines()
    changed = [i for i in range(max(len(old), len(new))) if i >= len(old) or i >= len(new) or old[i] != new[i]]
    first = changed[0]
    has = old[first] if first < len(old) else ""
    gives = new[first] if first < len(new) else ""
    column = next((i for i, (a, b) in enumerate(zip(has, gives)) if a != b), min(len(has), len(gives)))
    window = slice(max(0, column - 20), column + 30)
    return (f"README.md: {len(changed)} line(s) differ from the reports; line {first + 1} has {has[window]!r}, "
            f"the reports give {gives[window]!r}; run python scripts/readme_figures.py")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when README.md differs; write nothing")
    args = parser.parse_args(argv)
    try:
        current = README.read_text()
        wanted = replace_block(current, render())
    except ReportError as error:
        print(error, file=sys.stderr)
        return 2
    except KeyError as error:
        print(f"a committed report lacks the field {error} the README shows", file=sys.stderr)
        return 2
    if current == wanted:
        return 0
    if args.check:
        print(difference(current, wanted), file=sys.stderr)
        return 1
    README.write_text(wanted)
    print("README.md: figures rewritten from the reports")
    return 0


if __name__ == "__main__":
    sys.exit(main())
