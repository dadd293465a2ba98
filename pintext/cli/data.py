"""CLI commands: data (`pintext synth`, `pintext pairs`).

numpy, datasets and the generators are imported inside the commands so `pintext --help` stays light.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from pintext.api.training import PAIRS_ENGINES
from pintext.cli.disk import reports_disk_errors
from pintext.cli.errors import USAGE, fail
from pintext.constants import SPLITS


def register(app: typer.Typer) -> None:
    """Add this module's commands to the main app."""
    app.command("synth")(reports_disk_errors(synth))
    app.command("pairs")(reports_disk_errors(pairs))


def synth(
    out: Annotated[Path, typer.Option("--out", help="Folder for pins.jsonl, users.jsonl, events.jsonl.")],
    pins: Annotated[int, typer.Option("--pins", min=1, help="Number of pins.")] = 4000,
    users: Annotated[int, typer.Option("--users", min=1, help="Number of users.")] = 800,
    events: Annotated[int, typer.Option("--events", min=1, help="Number of events (exactly).")] = 120_000,
    seed: Annotated[int, typer.Option("--seed", help="Random seed: same seed, same files.")] = 0,
    topics: Annotated[int, typer.Option("--topics", min=0, help="Latent topics (0: from --pins, 50..200).")] = 0,
    gzip_events: Annotated[bool, typer.Option("--gzip-events", help="Write events.jsonl.gz instead.")] = False,
) -> None:
    """Generate a synthetic engagement data set with a known topic structure (see docs/data.md)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from pintext.ingest.synth.generator import SynthConfig, generate

    config = SynthConfig(n_pins=pins, n_users=users, n_events=events, seed=seed, n_topics=topics)
    console = Console(stderr=True)
    columns = (TextColumn("{task.description:>7}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console) as progress:
        bars = {
            "pins": progress.add_task("pins", total=pins),
            "users": progress.add_task("users", total=users),
            "events": progress.add_task("events", total=events),
        }
        summary = generate(config, out, lambda kind, n: progress.advance(bars[kind], n), gzip_events=gzip_events)
    console.print(
        f"[green]wrote[/] {summary['pins']} pins, {summary['users']} users, {summary['events']} events "
        f"({summary['topics']} topics, {summary['vocabulary']} words) to {out} "
        f"in {summary['world_s'] + summary['pins_s'] + summary['users_s'] + summary['events_s']:.1f}s"
    )


def pairs(
    out: Annotated[Path, typer.Option("--out", help="Output folder (built aside, swapped in atomically).")],
    events: Annotated[Optional[Path], typer.Option("--events", help="events.jsonl(.gz)")] = None,
    pins: Annotated[Optional[Path], typer.Option("--pins", help="pins.jsonl(.gz)")] = None,
    users: Annotated[Optional[Path], typer.Option("--users", help="users.jsonl(.gz); optional: without it the "
                                                               "homefeed task is not built")] = None,
    import_files: Annotated[
        Optional[list[Path]],
        typer.Option("--import", help="CSV or JSONL of anchor, positive[, weight] to add as the task given by the "
                     "matching --task (repeatable; other tasks in --out are kept)."),
    ] = None,
    tasks: Annotated[
        Optional[list[str]], typer.Option("--task", help="Task name for each --import, in the same order.")
    ] = None,
    save_weight: Annotated[float, typer.Option("--save-weight", min=0.0)] = 1.0,
    click_weight: Annotated[float, typer.Option("--click-weight", min=0.0)] = 0.5,
    min_count: Annotated[int, typer.Option("--min-count", min=1, help="Drop pairs engaged by fewer users.")] = 1,
    max_per_anchor: Annotated[
        int, typer.Option("--max-per-anchor", min=1, help="Keep the N strongest pins per anchor.")
    ] = 50,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the hash split.")] = 0,
    val: Annotated[float, typer.Option("--val", min=0.0, max=0.9, help="Share of anchors in validation.")] = 0.1,
    test: Annotated[float, typer.Option("--test", min=0.0, max=0.9, help="Share of anchors in test.")] = 0.1,
    engine: Annotated[str, typer.Option(
        "--engine", help="duckdb (default: bounded memory, spills to disk), memory (the reference, all in RAM) or "
        "spark (a local Spark session; spark-submit for a cluster: docs/data.md); the same pairs.")] = "duckdb",
    memory_limit: Annotated[Optional[str], typer.Option(
        "--memory-limit", help="DuckDB's memory bound, e.g. 1GB (default: a quarter of RAM, at most 4GB).")] = None,
    strict: Annotated[
        bool, typer.Option("--strict", help="Stop at the first bad record instead of dead-lettering it.")
    ] = False,
    column_map: Annotated[Optional[str], typer.Option(
        "--map", help="--events is a click log (CSV/TSV/Parquet/JSONL): FIELD=COLUMN,... with query, pin_id "
        "[, user_id, ts, action, event_id, subject_pin_id] (docs/data.md, Click logs).")] = None,
    log_format: Annotated[Optional[str], typer.Option(
        "--format", help="Format of a --map log: csv|tsv|parquet|jsonl (default: from the extension).")] = None,
    surface: Annotated[str, typer.Option("--surface", help="Surface of a --map log: search|related.")] = "search",
    action: Annotated[str, typer.Option("--action", help="Action of a --map log without an action column.")]
    = "click",
    pins_map: Annotated[Optional[str], typer.Option(
        "--pins-map", help="--pins is a product file: id=COLUMN,title=COLUMN[,description=...]; numbers = "
        "1-based positions in a file without a header (id=1,title=2).")] = None,
    pins_format: Annotated[Optional[str], typer.Option(
        "--pins-format", help="Format of a --pins-map file (default: from the extension).")] = None,
    ubi: Annotated[Optional[str], typer.Option(
        "--ubi", help="Engagement from OpenSearch UBI: a bulk ndjson export FILE, or a cluster URL "
        "(docs/data.md, UBI).")] = None,
    ubi_actions: Annotated[Optional[list[str]], typer.Option(
        "--ubi-action", help="UBI action NAME=ACTION (impression|click|save|hide|ignore), repeatable; default "
        "click=click, add_to_cart=save, purchase=save, impression=impression.")] = None,
    ubi_queries_index: Annotated[str, typer.Option("--ubi-queries-index", help="--ubi URL: the queries index.")]
    = "ubi_queries",
    ubi_events_index: Annotated[str, typer.Option("--ubi-events-index", help="--ubi URL: the events index.")]
    = "ubi_events",
    ubi_pins_index: Annotated[Optional[str], typer.Option(
        "--ubi-pins-index", help="Read the pins' texts from this index of the cluster (--ubi URL, else "
        "$OPENSEARCH_URL) instead of --pins.")] = None,
) -> None:
    """Turn engagement events into positive text pairs per task (search, related, homefeed), split by anchor;
    or add imported pairs as tasks of a pairs folder (`--import FILE --task NAME`, repeatable)."""
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from pintext.api.training import event_pairs
    from pintext.api.training import pairs as build_pairs
    from pintext.errors import PinTextError
    from pintext.ingest.pairs.rules import PairOptions
    from pintext.schemas import RecordError

    console = Console(stderr=True)
    try:
        options = PairOptions(save_weight, click_weight, min_count, max_per_anchor, seed, val, test, strict)
    except ValueError as error:
        raise typer.BadParameter(str(error)) from None
    imports = _paired_imports(import_files or [], tasks or [], events)
    if engine not in PAIRS_ENGINES:
        raise typer.BadParameter(f"--engine {engine!r}: use one of {', '.join(PAIRS_ENGINES)}")
    if ubi is None and not imports and (events is None or pins is None):
        missing = [name for name, value in (("--events", events), ("--pins", pins)) if value is None]
        raise typer.BadParameter(f"missing {', '.join(missing)} (or use --import FILE --task NAME)")
    if ubi is not None:
        _check_ubi_index_names(ubi_queries_index, ubi_events_index, ubi_pins_index)
    _silence_datasets()
    try:
        columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
        with Progress(*columns, console=console, transient=True) as progress:
            reading = progress.add_task("building pairs")
            report = lambda n: progress.update(reading, description=f"building pairs: {n:,} events read")  # noqa: E731
            if ubi is not None:
                from pintext.ingest.collect.ubi import build_ubi_pairs_shown as ubi_pairs

                stats = ubi_pairs(progress, ubi, events, pins, users, out, options, ubi_actions or [],
                                  ubi_queries_index, ubi_events_index, ubi_pins_index, report,
                                  event_pairs(engine, memory_limit))
            else:
                stats = build_pairs(out, events=events, pins=pins, users=users, imports=imports, engine=engine,
                                    memory_limit=memory_limit, save_weight=save_weight, click_weight=click_weight,
                                    min_count=min_count, max_per_anchor=max_per_anchor, seed=seed, val=val,
                                    test=test, strict=strict, column_map=column_map, log_format=log_format,
                                    surface=surface, action=action, pins_map=pins_map, pins_format=pins_format,
                                    on_events=report,
                                    notes=lambda line: console.print(line, highlight=False, markup=False))
    except PinTextError as error:  # a UBI cluster that fails
        fail(str(error), error.exit_code)
    except RecordError as error:
        fail(str(error), USAGE)
    except FileNotFoundError as error:
        fail(f"no such file: {error.filename}", USAGE)
    except IsADirectoryError as error:  # --pins/--users/--import name a file (only --events may be a folder)
        fail(f"{error.filename}: a folder, not a file", USAGE)
    except ValueError as error:
        fail(str(error), USAGE)
    _print_pairs_summary(console, out, stats, {task for _, task in imports})
    if "ubi" in stats:
        from pintext.ingest.collect.ubi import ubi_summary

        console.print(ubi_summary(stats["ubi"]), highlight=False, markup=False)


def _check_ubi_index_names(queries_index: str, events_index: str, pins_index: str | None) -> None:
    """The --ubi-*-index names are read from the cluster: a wildcard or a path would read other indexes."""
    from pintext.api.connection import require_index_name
    from pintext.cli.errors import fail_with
    from pintext.errors import UsageError

    for option, name in (("--ubi-queries-index", queries_index), ("--ubi-events-index", events_index),
                         ("--ubi-pins-index", pins_index)):
        try:
            if name is not None:
                require_index_name(name, option)
        except UsageError as error:
            fail_with(error)


def _paired_imports(import_files: list[Path], tasks: list[str], events: Optional[Path]) -> list[tuple[Path, str]]:
    """(file, task) for each --import, paired with the --task at the same position."""
    if not import_files and not tasks:
        return []
    if events is not None:
        raise typer.BadParameter("use either --events (rebuilds every task) or --import/--task, not both")
    if len(import_files) != len(tasks):
        raise typer.BadParameter(
            f"{len(import_files)} --import but {len(tasks)} --task: "
            "give one --task NAME per --import FILE, in the same order"
        )
    return list(zip(import_files, tasks))


def _print_pairs_summary(console, out: Path, stats: dict, imported: set[str]) -> None:
    """The per-task table, then one line per build: which tasks it made, its rejected rows and their file."""
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=f"pairs in {out}")
    for column in ("task", *SPLITS, "anchors", "no shared word"):
        table.add_column(column, justify="left" if column == "task" else "right")
    for name, info in stats["tasks"].items():
        splits = info["splits"]
        share = info["zero_word_overlap_share"]
        table.add_row(
            name,
            *(str(splits[split]["pairs"]) for split in SPLITS),
            str(sum(split["anchors"] for split in splits.values())),
            "-" if share is None else f"{share:.1%}",
        )
    console.print(table)
    for source in stats["sources"]:
        names = ", ".join(source["tasks"])
        rejected = source["input"].get("rejected", 0)
        colour = "yellow" if rejected else "green"
        if source["kind"] == "import" and not set(source["tasks"]) & imported:
            console.print(f"kept {names} (imported earlier): {rejected} rejected in {out / source['rejected_file']}",
                          highlight=False)
            continue
        if source["kind"] == "events" and imported:
            console.print(f"kept {names} (from events): {rejected} rejected in {out / source['rejected_file']}",
                          highlight=False)
            continue
        files = ", ".join(escape(name) for name in source["files"])
        valid = f"{source['input']['rows_valid']} rows, " if "rows_valid" in source["input"] else ""
        console.print(f"{names} from {files}: {valid}[{colour}]{rejected} rejected[/] -> "
                      f"{escape(str(out / source['rejected_file']))}", highlight=False)
        _print_repeated_ids(console, source["input"])
    console.print(f"stats in {out / 'stats.md'}", highlight=False)


def _print_repeated_ids(console, counters: dict) -> None:
    """A repeated pin or user id is legal (the later record wins) but worth knowing: say how many."""
    for key, what in (("pins_duplicate_id", "pin"), ("users_duplicate_id", "user")):
        if counters.get(key):
            console.print(f"note: {counters[key]} {what} record(s) repeat an earlier {what} id; the later record "
                          f"wins (stats.json input.{key})", highlight=False)


def _silence_datasets() -> None:
    """Our own summary replaces the per-split progress bars `datasets` prints on save."""
    import datasets

    datasets.disable_progress_bars()
