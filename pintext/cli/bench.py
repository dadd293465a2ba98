"""CLI commands: `bench` (speed and quality against the alternatives), `lsh tune` (pick LSH settings) and
`tokens tune` (both token families on a corpus).

Heavy modules (torch, sentence-transformers, matplotlib, opensearch-py) are imported inside the commands.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from pintext.cli.errors import USAGE, fail

PROFILE_NAMES = ("tiny", "quick", "full")


def bench(
    profile: Annotated[str, typer.Option("--profile", help="quick (100k pins, < 20 min on 2 cores), full (1M pins), "
                                                           "scale (1M pins: latency at a small LSH grid; "
                                                           "token families vs HNSW on 1M real-text pins), "
                                                           "or tiny (a smoke run).")] = "quick",
    out: Annotated[Path, typer.Option("--out", help="Folder for REPORT.md, report.json and the plots.")]
    = Path("bench"),
    only: Annotated[Optional[str], typer.Option("--only", help="Comma-separated sections (and what they need): "
                                                               "synth,corpus,train,encode,tune,node,ingest,"
                                                               "retrieval,quality,tokens.")] = None,
) -> None:
    """Benchmark PinText against the systems users would pick instead; writes OUT/REPORT.md and report.json."""
    from rich.console import Console

    from pintext.bench.run import PROFILES, SECTIONS, run

    if profile not in PROFILES:
        fail(f"--profile must be one of {', '.join(PROFILES)}, got {profile!r}", USAGE)
    sections = {part.strip() for part in only.split(",")} if only else None
    unknown = sorted((sections or set()) - {key for key, *_ in SECTIONS})
    if unknown:
        fail(f"--only: unknown section(s) {unknown}", USAGE)
    console = Console(stderr=True)
    report = run(profile, out, sections, log=lambda message: console.print(message, highlight=False))
    Console().print(f"[green]wrote[/] {out / 'REPORT.md'} and {out / 'report.json'} "
                    f"({report.seconds / 60:.1f} min)")
    for goal in report.goals:
        Console().print(f"  {goal['met']:>12}  {goal['goal']}: {goal['measured']} (target {goal['target']})",
                        highlight=False)


def lsh_tune(
    model: Annotated[Path, typer.Option("--model", envvar="PINTEXT_MODEL", help="Model folder (with runtime/).")],
    pins: Annotated[Path, typer.Option("--pins", exists=True, dir_okay=False, help="pins.jsonl: the corpus.")],
    target_recall: Annotated[float, typer.Option("--target-recall", min=0.0, max=1.0,
                                                 help="recall@10 vs exact cosine to reach.")] = 0.95,
    sample: Annotated[int, typer.Option("--sample", min=1, help="Queries to tune on.")] = 300,
    queries_file: Annotated[Optional[Path], typer.Option("--queries", exists=True, dir_okay=False,
                                                         help="Query texts, one JSON line each (a string or "
                                                              "{\"query\": ...}); default: sampled pins, "
                                                              "each excluded from its own results.")] = None,
    tables: Annotated[str, typer.Option("--tables", help="Tables to try.")] = "16,32,64,128",
    bits: Annotated[str, typer.Option("--bits", help="Bits per table to try.")] = "8,10,12,14",
    probes: Annotated[str, typer.Option("--probes", help="Multi-probe buckets per table to try.")] = "0,1,2",
    windows: Annotated[str, typer.Option("--windows", help="Rescore windows to try.")] = "500,1000,2000,4000",
    write: Annotated[bool, typer.Option("--write", help="Write the chosen tables/bits to MODEL/lsh.json "
                                                        "(re-ingest afterwards).")] = False,
    json_output: Annotated[bool, typer.Option("--json", help="Print the choice and every setting as JSON.")] = False,
) -> None:
    """Pick the cheapest LSH settings (tables, bits, probes, window) reaching a target recall@10 on a sample.

    The same tuner (pintext/lsh_tune.py) runs by default when an index is created for a corpus; this command
    shows the whole sweep. Recall is tie-aware (a hit as close as the exact 10th counts).
    """
    import numpy as np
    from rich.console import Console
    from rich.table import Table

    from pintext.encoder import Encoder
    from pintext.lsh import RandomHyperplaneLSH
    from pintext.lsh_tune import tune

    grids = {name: _int_list(name, text) for name, text in
             (("--tables", tables), ("--bits", bits), ("--probes", probes), ("--windows", windows))}
    try:
        encoder = Encoder.load(model)
    except (OSError, ValueError) as error:
        fail(f"cannot load the model: {error}", USAGE)
    texts, ids = _read_pins(pins)
    corpus = encoder.encode(texts)
    known = np.flatnonzero(np.linalg.norm(corpus, axis=1) > 0)
    corpus = corpus[known]
    rng = np.random.default_rng(0)
    if queries_file:
        from pintext.cli.serve import read_queries

        query_vectors = encoder.encode(read_queries(queries_file))
        query_vectors = query_vectors[np.linalg.norm(query_vectors, axis=1) > 0]
        query_vectors = query_vectors[rng.permutation(len(query_vectors))[:sample]]
        exclude = None
    else:
        rows = rng.permutation(len(corpus))[:sample]
        query_vectors, exclude = corpus[rows], rows
    if len(query_vectors) == 0 or len(corpus) < 10:
        fail("need at least one query with a known word and 10 pins with a known word", USAGE)
    console = Console(stderr=True)
    choice, reached, points = tune(corpus, query_vectors, grids["--tables"], grids["--bits"], grids["--probes"],
                                   grids["--windows"], target_recall, exclude_rows=exclude,
                                   on_config=lambda t, b: console.print(f"swept {t} tables x {b} bits",
                                                                        highlight=False))
    if choice is None:
        fail("no LSH setting of the grid is allowed (clause limit); widen the grid", USAGE)
    if write:
        lsh = RandomHyperplaneLSH(dim=encoder.dim, tables=choice.tables, bits=choice.bits)
        (model / "lsh.json").write_text(json.dumps(lsh.to_dict(), indent=2) + "\n", encoding="utf-8")
    if json_output:
        typer.echo(json.dumps({"choice": choice.to_json(), "reached": reached, "target_recall": target_recall,
                               "queries": len(query_vectors), "corpus": len(corpus),
                               "points": [point.to_json() for point in points]}))
        return
    table = Table(title=f"LSH settings on {len(corpus):,} pins, {len(query_vectors)} queries (cheapest first, "
                        f"recall >= {target_recall})")
    for column in ("tables", "bits", "probes", "window", "recall@10", "matched %", "rescored %", "cost"):
        table.add_column(column, justify="right")
    for point in sorted((p for p in points if p.recall >= target_recall), key=lambda p: p.cost)[:10]:
        table.add_row(str(point.tables), str(point.bits), str(point.probes), str(point.window), f"{point.recall:.3f}",
                      f"{100 * point.candidate_share:.2f}", f"{100 * point.rescored_share:.2f}", f"{point.cost:,.0f}")
    Console().print(table)
    verdict = "reaches" if reached else "does NOT reach (best recall shown)"
    Console().print(f"choice: {choice.tables} tables x {choice.bits} bits, probes {choice.probes}, window "
                    f"{choice.window}: recall@10 {choice.recall:.3f} {verdict} the target {target_recall}"
                    + (f"; wrote {model / 'lsh.json'}" if write else "; --write stores tables/bits in MODEL/lsh.json")
                    + f". Search with --probes {choice.probes} --window {choice.window} (an index created with "
                      f"--pins tunes and stores these itself).", highlight=False)


def tokens_tune(
    model: Annotated[Path, typer.Option("--model", envvar="PINTEXT_MODEL", help="Model folder (with runtime/).")],
    pins: Annotated[Path, typer.Option("--pins", exists=True, dir_okay=False, help="pins.jsonl: the corpus.")],
    target_recall: Annotated[float, typer.Option("--target-recall", min=0.0, max=1.0,
                                                 help="recall@10 vs exact cosine to reach.")] = 0.95,
    queries_file: Annotated[Optional[Path], typer.Option("--queries", exists=True, dir_okay=False,
                                                         help="Query texts, one JSON line each; default: sampled "
                                                              "pins, each excluded from its own results.")] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print both families' choices as JSON.")] = False,
) -> None:
    """Tune both token families on the corpus as index creation does (random hyperplanes and learned centroids)
    and say which `--tokens auto` keeps: the cheaper setting that reaches the target recall@10."""
    import numpy as np
    from rich.console import Console
    from rich.table import Table

    from pintext.centroid_tune import tune_centroids_for_corpus
    from pintext.encoder import Encoder
    from pintext.ingest.indexer import sample_pins
    from pintext.lsh_tune import tune_for_corpus
    from pintext.pin_vectors import pin_vectors
    from pintext.token_tune import cheapest, describe_choice, sample_size

    try:
        encoder = Encoder.load(model)
    except (OSError, ValueError) as error:
        fail(f"cannot load the model: {error}", USAGE)
    sample, total = sample_pins(pins, sample_size("auto"))
    vectors = pin_vectors(encoder, sample)
    queries = None
    if queries_file:
        from pintext.cli.serve import read_queries

        queries = encoder.encode(read_queries(queries_file))
    if int(np.sum(np.linalg.norm(vectors, axis=1) > 0)) < 11:
        fail(f"{pins}: need at least 11 pins with a known word to tune on", USAGE)
    status = Console(stderr=True)
    with status.status("tuning random hyperplanes"):
        lsh = tune_for_corpus(vectors, target_recall, queries=queries, total_pins=total)
    with status.status("fitting and tuning learned centroids"):
        kmeans = tune_centroids_for_corpus(vectors, target_recall, queries=queries, total_pins=total)
    chosen = cheapest([lsh, kmeans])
    rows: list[tuple[str, Any]] = [("lsh", lsh), ("kmeans", kmeans)]
    if json_output:
        typer.echo(json.dumps({"target_recall": target_recall, "corpus": total, "auto_keeps": "lsh" if chosen is lsh
                               else "kmeans", "families": {name: {"setting": describe_choice(result),
                                                                  "recall": result.recall, "reached": result.reached,
                                                                  "cost": result.choice.cost,
                                                                  "seconds": result.seconds,
                                                                  "choice": result.choice.to_json()}
                                                           for name, result in rows}}))
        return
    table = Table(title=f"token families on {total:,} pins (target recall@10 {target_recall})")
    for column in ("family", "tuned setting", "recall@10", "reached", "cost", "tuning s"):
        table.add_column(column)
    for name, result in rows:
        table.add_row(name, describe_choice(result), f"{result.recall:.3f}", "yes" if result.reached else "no",
                      f"{result.choice.cost:,.0f}", f"{result.seconds:.1f}")
    Console().print(table)
    Console().print(f"--tokens auto keeps {'lsh' if chosen is lsh else 'kmeans'} (the cost: postings visited + 10 x "
                    "pins scored exactly + 200 x term clauses, the node fit in docs/benchmarks.md)", highlight=False)


def _read_pins(path: Path) -> tuple[list[str], list[str]]:
    """Pin texts and ids; a bad line stops with its file, line and field."""
    from pintext.ingest.readers import read_records
    from pintext.schemas import LocatedRecordError, pin_text, validate_pin

    texts, ids = [], []
    try:
        for _line, pin in read_records(path, validate_pin, None, strict=True):
            texts.append(pin_text(pin))
            ids.append(pin["id"])
    except LocatedRecordError as error:
        fail(f"{error} (fix the line, or ingest with its dead letter and tune on what was indexed)", USAGE)
    return texts, ids


def _int_list(option: str, text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        fail(f"{option}: expected comma-separated integers, got {text!r}", USAGE)
    if not values or min(values) < 0:
        fail(f"{option}: expected non-negative integers, got {text!r}", USAGE)
    return values


def register(app: typer.Typer) -> None:
    """Add this module's commands to the main app."""
    app.command("bench")(bench)
    lsh_app = typer.Typer(help="LSH settings: tune tables, bits, probes and window for a target recall.",
                          no_args_is_help=True)
    lsh_app.command("tune")(lsh_tune)
    app.add_typer(lsh_app, name="lsh")
    tokens_app = typer.Typer(help="Token families: tune random hyperplanes and learned centroids, compare them.",
                             no_args_is_help=True)
    tokens_app.command("tune")(tokens_tune)
    app.add_typer(tokens_app, name="tokens")
