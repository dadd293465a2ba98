"""CLI commands: `pintext opensearch up|down|status|logs` — the managed local OpenSearch node with k-NN.

The node is downloaded from Maven Central once, assembled under $PINTEXT_HOME/opensearch/<version>/ and run
detached as a dedicated system user; see docs/opensearch.md. Only the standard library and Rich load here.
"""

from __future__ import annotations

import time
from typing import Annotated, NoReturn, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

console = Console()
errors = Console(stderr=True)

PortOption = Annotated[
    Optional[int], typer.Option("--port", min=1, max=65535, help="HTTP port; default $PINTEXT_OPENSEARCH_PORT or 9200.")
]
HeapOption = Annotated[
    Optional[str], typer.Option("--heap", help="JVM heap, like 512m or 1g; default $PINTEXT_OPENSEARCH_HEAP or 512m.")
]
TimeoutOption = Annotated[float, typer.Option("--timeout", min=1.0, help="Seconds to wait for health yellow/green.")]

opensearch_app = typer.Typer(
    name="opensearch",
    help="Run a local OpenSearch node with the k-NN plugin (downloaded from Maven Central once).",
    no_args_is_help=True,
)


def _fail(message: str, code: int = 1) -> NoReturn:
    errors.print(f"[red]error:[/red] {escape(message)}")
    raise typer.Exit(code)


@opensearch_app.command("up")
def up(port: PortOption = None, heap: HeapOption = None, timeout: TimeoutOption = 180.0) -> None:
    """Start the managed node (download and assemble it first if needed); does nothing if ours already runs."""
    from pintext.servers import opensearch_node as node

    settings = node.NodeSettings.from_env(port=port, heap=heap)
    began = time.monotonic()
    try:
        with console.status("preparing OpenSearch") as spinner:
            result = node.start(settings, timeout_s=timeout, progress=lambda line: spinner.update(escape(line)))
    except (node.OpenSearchNodeError, TimeoutError) as error:
        _fail(str(error))
    if not result.started:
        console.print(f"OpenSearch already running at {result.url} (pid {result.pid}), "
                      f"health [bold]{result.health.get('status')}[/bold]; nothing to do")
        return
    console.print(
        f"[green]OpenSearch {settings.version} up[/green] at {result.url} (pid {result.pid}), health "
        f"[bold]{result.health.get('status')}[/bold] {result.seconds_to_healthy:.1f}s after start, "
        f"{time.monotonic() - began:.1f}s in all"
    )


@opensearch_app.command("down")
def down(timeout: Annotated[float, typer.Option("--timeout", min=1.0, help="Seconds before SIGKILL.")] = 60.0) -> None:
    """Stop the node `up` started (SIGTERM, then SIGKILL after --timeout); other processes are never touched."""
    from pintext.servers import opensearch_node as node

    outcome = node.stop(node.NodeSettings.from_env(), timeout_s=timeout)
    console.print("no managed OpenSearch node is running" if outcome is None else f"OpenSearch {outcome}")


@opensearch_app.command("status")
def status(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """URL, health, version and plugins of the managed node; exit 1 when it is not running or lacks k-NN."""
    import json

    from pintext.servers import opensearch_node as node

    info = node.node_status(node.NodeSettings.from_env())
    if as_json:
        typer.echo(json.dumps(info, indent=2))
    else:
        _print_status(info)
    if not info["running"]:
        raise typer.Exit(1)
    if not any(plugin.startswith("opensearch-knn ") for plugin in info.get("plugins", [])):
        _fail("the k-NN plugin (opensearch-knn) is not loaded")


def _print_status(info: dict) -> None:
    table = Table(title="managed OpenSearch node", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value")
    table.add_row("url", info["url"])
    if not info["running"]:
        table.add_row("state", "[red]not running[/red] (start it with `pintext opensearch up`)")
        console.print(table)
        return
    health = info.get("health") or {}
    colour = {"green": "green", "yellow": "yellow"}.get(health.get("status"), "red")
    table.add_row("pid", str(info["pid"]))
    table.add_row("health", f"[{colour}]{health.get('status', 'no answer')}[/{colour}]")
    table.add_row("version", str(info.get("version", "?")))
    table.add_row("plugins", "\n".join(info.get("plugins", [])) or "[red]none[/red]")
    table.add_row("modules", ", ".join(info.get("modules", [])))
    table.add_row("log", info["log_file"])
    if "error" in info:
        table.add_row("error", escape(info["error"]))
    console.print(table)


@opensearch_app.command("logs")
def logs(
    lines: Annotated[int, typer.Option("-n", "--lines", min=0, help="How many lines from the end.")] = 50,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new lines (Ctrl-C stops).")] = False,
) -> None:
    """Print the tail of the node's log."""
    from pintext.servers import opensearch_node as node

    settings = node.NodeSettings.from_env()
    if not settings.log_file.exists():
        _fail(f"no log yet at {settings.log_file} (the node has never started)")
    for line in node.tail_lines(settings.log_file, lines):
        console.print(line, markup=False, highlight=False, soft_wrap=True)
    if follow:
        try:
            for line in node.follow_lines(settings.log_file):
                console.print(line, markup=False, highlight=False, soft_wrap=True)
        except KeyboardInterrupt:
            pass


def register(app: typer.Typer) -> None:
    """Add `pintext opensearch ...` to the main app."""
    app.add_typer(opensearch_app)
