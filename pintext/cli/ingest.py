"""CLI command: `ingest` (the policy is `pintext.api.ingesting`; this module adds the progress bar and the table)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Optional

import typer

from pintext.cli.disk import reports_disk_errors
from pintext.cli.failures import reports_serving_errors
from pintext.cli.options import (
    DEFAULT_INDEX,
    DEFAULT_LOCAL_DIR,
    CaCertsOption,
    EngineName,
    EngineOption,
    IndexOption,
    InsecureOption,
    JsonOption,
    LocalDirOption,
    ModelOption,
    NoTuneOption,
    PasswordOption,
    TargetRecallOption,
    TimeoutOption,
    TokensOption,
    TuneQueriesOption,
    UrlOption,
    UserOption,
    VectorTypeOption,
    open_pintext,
)
from pintext.constants import DEFAULT_INGEST_WORKERS


@reports_disk_errors
def ingest(
    pins_file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="pins.jsonl (or .jsonl.gz)")],
    model: ModelOption = None,
    index: IndexOption = DEFAULT_INDEX,
    batch: Annotated[int, typer.Option("--batch", min=1, help="Pins per embed + bulk batch.")] = 500,
    workers: Annotated[int, typer.Option("--workers", min=1, help="Batches embedded and bulk-written at once "
                                         "(4 was fastest on 2 cores: bench/token-families).")] = DEFAULT_INGEST_WORKERS,
    resume: Annotated[bool, typer.Option("--resume", help="Skip lines the checkpoint marks as done.")] = False,
    strict: Annotated[bool, typer.Option("--strict", help="Stop at the first bad line instead of "
                                                          "dead-lettering it.")] = False,
    dead_letter: Annotated[Optional[Path], typer.Option("--dead-letter", help="Rejected lines go here; default "
                                                        "$PINTEXT_STATE_DIR (else $PINTEXT_HOME/ingest)/INDEX/"
                                                        "FILE-HASH.rejected.jsonl, restarted by each run "
                                                        "without --resume.")] = None,
    checkpoint: Annotated[Optional[Path], typer.Option("--checkpoint", help="Checkpoint file; default beside "
                                                       "the default dead letter, FILE-HASH.checkpoint.json.")]
    = None,
    json_output: JsonOption = False,
    target_recall: TargetRecallOption = 0.95, no_tune: NoTuneOption = False, tune_queries: TuneQueriesOption = None,
    tokens: TokensOption = None, vector_type: VectorTypeOption = None,
    url: UrlOption = None, user: UserOption = None, password: PasswordOption = None,
    ca_certs: CaCertsOption = None, insecure: InsecureOption = False,
    engine: EngineOption = EngineName.auto, local_dir: LocalDirOption = DEFAULT_LOCAL_DIR,
    timeout: TimeoutOption = None,
) -> None:
    """Index a pins JSONL file into this model's index behind --index: validate, embed, hash into LSH tokens,
    bulk-index by pin id, checkpoint.

    A new index is created first, its LSH tuned on this file (unless --no-tune). A second ingest of the same file
    into the same index waits for the first to finish (a lock beside the checkpoint).
    """
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from pintext.api.ingesting import count_lines

    served = open_pintext(model, index, url, user, password, ca_certs, insecure, engine, local_dir, timeout)
    stderr = Console(stderr=True)
    total_lines = count_lines(pins_file)
    progress = Progress(TextColumn("[bold]ingest[/]"), BarColumn(), MofNCompleteColumn(), TextColumn("lines"),
                        TextColumn("{task.fields[rate]:,.0f} docs/s"), TimeElapsedColumn(), console=stderr,
                        disable=json_output or not stderr.is_terminal and not os.environ.get("PINTEXT_PROGRESS"))
    with progress:
        task = progress.add_task("ingest", total=total_lines, rate=0.0)
        summary = served.ingest(pins_file, batch=batch, workers=workers, resume=resume, strict=strict,
                                dead_letter=dead_letter, checkpoint=checkpoint, target_recall=target_recall,
                                tune=not no_tune, tune_queries=tune_queries, tokens=tokens,
                                vector_type=vector_type,
                                on_batch=lambda report: progress.update(task, completed=report.last_line,
                                                                        rate=report.docs_per_second))
        progress.update(task, completed=total_lines, rate=summary["docs_per_second"])
    if json_output:
        typer.echo(json.dumps(summary))
    else:
        print_ingest_summary(summary)


def print_ingest_summary(summary: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"ingest into {summary['index']}", show_header=False)
    for key, label in (("indexed", "indexed"), ("created", "created"), ("updated", "updated"),
                       ("indexed_without_vector", "indexed without a vector"), ("rejected", "rejected"),
                       ("retried", "re-sent (429 or no answer)")):
        table.add_row(label, f"{summary[key]:,}")
    for reason, count in sorted(summary["rejected_by_reason"].items()):
        table.add_row(f"  rejected: {reason}", f"{count:,}")
    if summary["resumed_after_line"]:
        table.add_row("resumed after line", f"{summary['resumed_after_line']:,}")
    if summary["duplicate_ids"]:
        table.add_row("repeated pin ids (last line wins)", f"{summary['duplicate_ids']:,}")
    table.add_row("docs/s", f"{summary['docs_per_second']:,.0f}")
    table.add_row("seconds", f"{summary['seconds']:.2f}")
    table.add_row("dead letter", summary["dead_letter"])
    table.add_row("checkpoint", summary["checkpoint"])
    Console().print(table)


def register(app: typer.Typer) -> None:
    app.command("ingest")(reports_serving_errors(ingest))
