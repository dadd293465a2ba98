"""`pintext eval-retrieval`: BM25, PinText exact, PinText served and hybrid on the same judged queries (the
evaluation is `pintext.evaluation`; this module parses options, shows progress and prints the table)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from pintext.cli.failures import reports_serving_errors
from pintext.cli.options import CaCertsOption, InsecureOption, ModelOption, PasswordOption, UrlOption, UserOption
from pintext.constants import TEST
from pintext.evaluation import SYSTEMS


def eval_retrieval(
    corpus: Annotated[Path, typer.Option("--corpus", exists=True, dir_okay=False,
                                         help="pins.jsonl(.gz): the documents retrieved from.")],
    judgments: Annotated[Path, typer.Option("--judgments", exists=True,
                                            help="TREC qrels (with --queries), a query,doc_id,grade CSV, or a "
                                                 "pairs folder (its search split).")],
    out: Annotated[Path, typer.Option("--out", help="Folder for report.md, results.json, retrieval.png.")],
    model: ModelOption = None,
    queries: Annotated[Optional[Path], typer.Option("--queries", exists=True, dir_okay=False,
                                                    help="qid<TAB>text, for TREC qrels.")] = None,
    split: Annotated[str, typer.Option("--split", help="Split of a pairs folder's search task.")] = TEST,
    index: Annotated[Optional[str], typer.Option("--index", help="Index to ingest into and search; default "
                                                 "pintext-eval-<model fingerprint>-<corpus hash>.")] = None,
    systems: Annotated[str, typer.Option("--systems", help="Comma-separated: bm25,exact,served,hybrid.")]
    = ",".join(SYSTEMS),
    cleanup: Annotated[bool, typer.Option("--cleanup", help="Delete the index afterwards.")] = False,
    json_output: Annotated[bool, typer.Option("--json", help="Print the means as one JSON line.")] = False,
    url: UrlOption = None, user: UserOption = None, password: PasswordOption = None,
    ca_certs: CaCertsOption = None, insecure: InsecureOption = False,
) -> None:
    """Evaluate retrieval on judged queries: BM25, PinText exact, PinText served and hybrid, same queries."""
    from pintext.evaluation import EvalInputs, Node, command_line, evaluate_retrieval, parse_systems

    inputs = EvalInputs(corpus, judgments, out, model, queries, split, index, tuple(parse_systems(systems)), cleanup,
                        command_line())
    with progress_bar(json_output) as progress:
        results = evaluate_retrieval(inputs, Node(url, user, password, ca_certs, insecure), progress)
    if json_output:
        typer.echo(json.dumps({"out": str(out), "systems": {name: r["mean"] for name, r in
                                                            results["systems"].items()}}))
    else:
        print_table(results)


def progress_bar(json_output: bool) -> Any:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    stderr = Console(stderr=True)
    return Progress(TextColumn("[bold]{task.description}[/]"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("queries"), TimeElapsedColumn(), console=stderr,
                    disable=json_output or not stderr.is_terminal and not os.environ.get("PINTEXT_PROGRESS"))


def print_table(results: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    from pintext.trainer.retrieval import METRICS

    table = Table(title=f"retrieval: {results['judgments']['evaluated_queries']} judged queries")
    for column in ("system", *METRICS, "seconds"):
        table.add_column(column, justify="left" if column == "system" else "right")
    for name, result in results["systems"].items():
        table.add_row(name, *(f"{result['mean'][m]:.3f}" for m in METRICS), f"{result['seconds']:.1f}")
    Console().print(table)


def register(app: typer.Typer) -> None:
    """Add `eval-retrieval` to the main app."""
    app.command("eval-retrieval")(reports_serving_errors(eval_retrieval))
