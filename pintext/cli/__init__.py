"""The `pintext` command: one Typer app, each pipeline stage registering its own commands.

Command modules import their heavy dependencies (torch, datasets, opensearch-py) inside the command
functions, so `pintext --help` and the serving commands never load torch.
"""

import typer

from pintext.cli import (
    bench,
    collect,
    dashboards,
    data,
    elasticsearch,
    index,
    ingest,
    opensearch,
    retrieval,
    search,
    tokens,
    train,
)

app = typer.Typer(
    name="pintext",
    help="Learn a word-level text embedding from engagement and serve it through OpenSearch.",
    no_args_is_help=True,
    rich_markup_mode="rich",
)



@app.callback()
def _root() -> None:
    """Learn a word-level text embedding from engagement and serve it through OpenSearch."""


@app.command()
def version() -> None:
    """Print the installed PinText version."""
    from pintext import __version__

    typer.echo(__version__)


for module in (opensearch, elasticsearch, data, collect, train, index, ingest, search, bench, tokens, dashboards,
               retrieval):
    module.register(app)


def main() -> None:
    app()
