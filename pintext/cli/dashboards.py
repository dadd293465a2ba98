"""CLI commands: `pintext dashboards export` — OpenSearch Dashboards saved objects for the pins index."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from pintext.cli.errors import USAGE, fail


def export(
    index: Annotated[str, typer.Option("--index", help="Index name (or pattern, e.g. 'pins-*') the objects "
                                                       "point at.")] = "pins",
    out: Annotated[Optional[Path], typer.Option("--out", dir_okay=False, help="Write the ndjson here instead "
                                                                              "of stdout.")] = None,
) -> None:
    """Write the saved objects (index pattern, saved searches, visualizations, dashboard) as ndjson.

    Import them in Dashboards under Dashboards Management > Saved objects > Import, or with
    `curl -X POST localhost:5601/api/saved_objects/_import?overwrite=true -H 'osd-xsrf: true'
    --form file=@pins.ndjson` (docs/dashboards.md).
    """
    from pintext.dashboards import export_ndjson

    try:
        text = export_ndjson(index)
    except ValueError as error:
        fail(str(error), USAGE)
    if out is None:
        typer.echo(text, nl=False)
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    typer.echo(f"wrote {len(text.splitlines())} saved objects for index {index!r} to {out}", err=True)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the main app."""
    dashboards_app = typer.Typer(help="OpenSearch Dashboards saved objects for inspecting the pins index.",
                                 no_args_is_help=True)
    dashboards_app.command("export")(export)
    app.add_typer(dashboards_app, name="dashboards")
