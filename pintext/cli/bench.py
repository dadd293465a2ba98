"""CLI command `bench`: speed and quality against the alternatives (the token tuners' commands are in
`pintext.cli.tokens`).

Heavy modules (torch, sentence-transformers, matplotlib, opensearch-py) are imported inside the commands.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

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


def register(app: typer.Typer) -> None:
    """Add this module's commands to the main app."""
    app.command("bench")(bench)
