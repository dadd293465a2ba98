"""CLI commands of the token stage: `lsh tune` (the whole random-hyperplane grid on a corpus) and `tokens tune`
(every token family tuned as index creation does, and the one `--tokens auto` keeps).

The tuning itself lives in `pintext.tokens`; these commands read the model and the pins and print. numpy and the
tuners are imported inside the commands.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from pintext.cli.errors import USAGE, fail


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

    The same tuner (pintext/tokens/tune_lsh.py) runs by default when an index is created for a corpus; this command
    shows the whole sweep. Recall is tie-aware (a hit as close as the exact 10th counts).
    """
    from rich.console import Console
    from rich.table import Table

    from pintext.tokens.lsh import RandomHyperplaneLSH
    from pintext.tokens.tune_lsh import TuneGrid, sweep_grid
    from pintext.tokens.tuning import TARGET_CONFIDENCE_Z, reaches

    grid = TuneGrid(*(tuple(_int_list(name, text)) for name, text in
                      (("--tables", tables), ("--bits", bits), ("--probes", probes), ("--windows", windows))))
    encoder = _load_encoder(model)
    corpus = encoder.encode(_read_pins(pins))
    queries = encoder.encode(_read_queries(queries_file)) if queries_file else None
    console = Console(stderr=True)
    try:
        sweep = sweep_grid(corpus, queries, grid, target_recall, sample,
                           on_config=lambda t, b: console.print(f"swept {t} tables x {b} bits", highlight=False))
    except ValueError as error:
        fail(str(error), USAGE)
    choice, reached, points = sweep.choice, sweep.reached, sweep.points
    if choice is None:
        fail("no LSH setting of the grid is allowed (clause limit); widen the grid", USAGE)
    if write:
        lsh = RandomHyperplaneLSH(dim=encoder.dim, tables=choice.tables, bits=choice.bits)
        (model / "lsh.json").write_text(json.dumps(lsh.to_dict(), indent=2) + "\n", encoding="utf-8")
    if json_output:
        typer.echo(json.dumps({"choice": choice.to_json(), "reached": reached, "target_recall": target_recall,
                               "queries": sweep.queries, "corpus": sweep.corpus,
                               "points": [point.to_json() for point in points]}))
        return
    table = Table(title=f"LSH settings on {sweep.corpus:,} pins, {sweep.queries} queries (cheapest first, "
                        f"recall - {TARGET_CONFIDENCE_Z} standard errors >= {target_recall})")
    for column in ("tables", "bits", "probes", "window", "recall@10", "matched %", "rescored %", "cost"):
        table.add_column(column, justify="right")
    for point in sorted((p for p in points if reaches(p, target_recall)), key=lambda p: p.cost)[:10]:
        table.add_row(str(point.tables), str(point.bits), str(point.probes), str(point.window), f"{point.recall:.3f}",
                      f"{100 * point.candidate_share:.2f}", f"{100 * point.rescored_share:.2f}", f"{point.cost:,.0f}")
    Console().print(table)
    verdict = "reaches" if reached else "does NOT reach (best recall shown)"
    Console().print(f"choice: {choice.tables} tables x {choice.bits} bits, probes {choice.probes}, window "
                    f"{choice.window}: recall@10 {choice.recall:.3f} ± {choice.recall_se:.3f} {verdict} the target "
                    f"{target_recall}"
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

    from pintext.ingest.indexer import sample_pins
    from pintext.pin_vectors import pin_vectors
    from pintext.tokens import KMEANS_KIND, LSH_KIND
    from pintext.tokens.tune import AUTO, TUNERS, cheapest, choice_of, describe_choice, sample_size
    from pintext.tokens.tuning import TUNE_K

    # What the status line says while each family's tuner runs.
    activity = {LSH_KIND: "tuning random hyperplanes", KMEANS_KIND: "fitting and tuning learned centroids"}

    encoder = _load_encoder(model)
    sample, total = sample_pins(pins, sample_size(AUTO))
    vectors = pin_vectors(encoder, sample)
    queries = encoder.encode(_read_queries(queries_file)) if queries_file else None
    if int(np.sum(np.linalg.norm(vectors, axis=1) > 0)) < TUNE_K + 1:
        fail(f"{pins}: need at least {TUNE_K + 1} pins with a known word to tune on", USAGE)
    status = Console(stderr=True)
    results = []
    for kind, tuner in TUNERS.items():
        with status.status(activity.get(kind, f"tuning {kind}")):
            results.append(tuner.tune(vectors, target_recall, queries=queries, total_pins=total))
    keeps = choice_of(cheapest(results))
    rows = [(choice_of(result), result) for result in results]
    if json_output:
        typer.echo(json.dumps({"target_recall": target_recall, "corpus": total, "auto_keeps": keeps,
                               "families": {name: {"setting": describe_choice(result),
                                                   "recall": result.recall, "reached": result.reached,
                                                   "cost": result.choice.cost, "seconds": result.seconds,
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
    Console().print(f"--tokens auto keeps {keeps} (the cost: postings visited + 10 x "
                    "pins scored exactly + 200 x term clauses, the node fit in docs/benchmarks.md)", highlight=False)


def _load_encoder(model: Path) -> Any:
    from pintext.encoder import Encoder

    try:
        return Encoder.load(model)
    except (OSError, ValueError) as error:
        fail(f"cannot load the model: {error}", USAGE)


def _read_queries(path: Path) -> list[str]:
    from pintext.api.queries import read_queries
    from pintext.cli.errors import fail_with
    from pintext.errors import PinTextError

    try:
        return read_queries(path)
    except PinTextError as error:
        fail_with(error)


def _read_pins(path: Path) -> list[str]:
    """Pin texts; a bad line stops with its file, line and field."""
    from pintext.ingest.readers import read_records
    from pintext.schemas import LocatedRecordError, pin_text, validate_pin

    texts = []
    try:
        for _line, pin in read_records(path, validate_pin, None, strict=True):
            texts.append(pin_text(pin))
    except LocatedRecordError as error:
        fail(f"{error} (fix the line, or ingest with its dead letter and tune on what was indexed)", USAGE)
    return texts


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
    lsh_app = typer.Typer(help="LSH settings: tune tables, bits, probes and window for a target recall.",
                          no_args_is_help=True)
    lsh_app.command("tune")(lsh_tune)
    app.add_typer(lsh_app, name="lsh")
    tokens_app = typer.Typer(help="Token families: tune random hyperplanes and learned centroids, compare them.",
                             no_args_is_help=True)
    tokens_app.command("tune")(tokens_tune)
    app.add_typer(tokens_app, name="tokens")
