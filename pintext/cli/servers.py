"""The command group every managed server gets, alike: `pintext <server> up|down|status|logs`.

A server's CLI module names its servers (`ServerGroup.select`) and this module builds the four commands over the
shared lifecycle (`pintext.servers.lifecycle.ManagedServer`). Servers are imported inside the commands, so
`pintext --help` stays light. Exit codes: 0 done, 1 the server failed (or is not running, for `status`),
2 bad usage (an unknown version, a malformed port or heap in the environment).
"""

# No `from __future__ import annotations`: Typer reads the option aliases defined inside lifecycle_app at run time.
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from pintext.cli.errors import USAGE, fail

if TYPE_CHECKING:
    from pintext.servers.lifecycle import ManagedServer

console = Console(highlight=False, soft_wrap=True)

# select(version, port, heap) -> the server a command acts on (None: the default, from the environment or built in).
Selector = Callable[[Optional[str], Optional[int], Optional[str]], "ManagedServer"]


@dataclass(frozen=True)
class Topology:
    """Which shape of a server a command acts on: the plain single node, a secured node, or a local cluster."""

    secure: bool = False
    nodes: int = 1

    @property
    def plain(self) -> bool:
        return not self.secure and self.nodes == 1


# select_topology(version, port, heap, topology) -> the secured node or the cluster (only groups that have them).
TopologySelector = Callable[[Optional[str], Optional[int], Optional[str], Topology], "ManagedServer"]


@dataclass(frozen=True)
class ServerGroup:
    """What the generic commands need to know about one kind of server."""

    name: str  # the CLI group: "opensearch"
    title: str  # "OpenSearch"
    noun: str  # "node" / "broker", for "no managed OpenSearch node is running"
    help: str
    versions: tuple[str, ...]
    default_port: int
    select: Selector
    select_every: Callable[[], "Sequence[ManagedServer]"]  # one per managed version, for `down`
    select_topology: Optional[TopologySelector] = None  # --secure / --nodes N (OpenSearch only)


def lifecycle_app(group: ServerGroup) -> typer.Typer:
    """A Typer group with `up`, `down`, `status` and `logs` for `group`."""
    app = typer.Typer(name=group.name, help=group.help, no_args_is_help=True)
    version_help = f"Which version: {', '.join(group.versions)} (default {group.versions[0]})."
    VersionOption = Annotated[Optional[str], typer.Option("--version", help=version_help)]
    PortOption = Annotated[Optional[int], typer.Option(
        "--port", min=1, max=65535, help=f"Port; default ${f'PINTEXT_{group.name.upper()}_PORT'} "
                                         f"or {group.default_port}.")]
    HeapOption = Annotated[Optional[str], typer.Option(
        "--heap", help=f"JVM heap like 512m or 1g; default $PINTEXT_{group.name.upper()}_HEAP.")]
    has_topologies = group.select_topology is not None
    SecureOption = Annotated[bool, typer.Option(
        "--secure", hidden=not has_topologies,
        help="The secured node: TLS, users and the pintext_writer / pintext_reader roles (docs/security.md).")]
    NodesOption = Annotated[int, typer.Option(
        "--nodes", min=1, max=9, hidden=not has_topologies,
        help="A local cluster of this many nodes (1 replica) instead of the single node (docs/reliability.md).")]

    def selected(version: str | None, port: int | None = None, heap: str | None = None,
                 topology: Topology = Topology()) -> "ManagedServer":
        from pintext.servers.lifecycle import ServerError

        if not topology.plain and group.select_topology is None:
            fail(f"--secure and --nodes are not offered for {group.title}", USAGE)
        if topology.secure and topology.nodes > 1:
            fail("--secure and --nodes > 1 cannot be combined yet: choose one", USAGE)
        try:
            if topology.plain:
                return group.select(version, port, heap)
            assert group.select_topology is not None
            return group.select_topology(version, port, heap, topology)
        except ServerError as error:  # an unknown version, a malformed port or heap setting
            fail(str(error), USAGE)

    def every_selected(version: str | None, topology: Topology) -> "Sequence[ManagedServer]":
        from pintext.servers.lifecycle import ServerError

        if not topology.plain:
            return [selected(version, None, None, topology)]
        try:
            return [group.select(version, None, None)] if version else group.select_every()
        except ServerError as error:
            fail(str(error), USAGE)

    @app.command("up")
    def up(version: VersionOption = None, port: PortOption = None, heap: HeapOption = None,
           timeout: Annotated[float, typer.Option("--timeout", min=1.0, help="Seconds to wait until ready.")] = 180.0,
           secure: SecureOption = False, nodes: NodesOption = 1) -> None:
        """Start it (download and prepare first if needed) and wait until it is ready; nothing if ours runs."""
        from pintext.servers.lifecycle import ServerError

        server = selected(version, port, heap, Topology(secure, nodes))
        began = time.monotonic()
        try:
            with console.status(f"preparing {server.label}") as spinner:
                result = server.start(timeout, progress=lambda line: spinner.update(escape(line)))
        except ServerError as error:
            fail(str(error))
        if not result.started:
            console.print(f"{server.label} already running at {result.url} (pid {result.pid}); nothing to do")
        else:
            console.print(f"[green]{server.label} up[/green] at {result.url} (pid {result.pid}), ready "
                          f"{result.seconds_to_healthy:.1f}s after launch, {time.monotonic() - began:.1f}s in all")
        for line in server.start_notes():
            console.print(line, markup=False)

    @app.command("down")
    def down(version: Annotated[Optional[str], typer.Option(
                 "--version", help=f"Which version; default every managed version ({', '.join(group.versions)}).")]
             = None,
             timeout: Annotated[float, typer.Option("--timeout", min=1.0, help="Seconds before SIGKILL.")] = 60.0,
             secure: SecureOption = False, nodes: NodesOption = 1) -> None:
        """Stop what `up` started (SIGTERM, then SIGKILL after --timeout); other processes are never touched."""
        stopped = 0
        for server in every_selected(version, Topology(secure, nodes)):
            outcome = server.stop(timeout)
            if outcome is not None:
                stopped += 1
                console.print(f"{server.label} {outcome}")
        if not stopped:
            console.print(f"no managed {group.title} {group.noun} is running")

    @app.command("status")
    def status(version: VersionOption = None,
               as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
               secure: SecureOption = False, nodes: NodesOption = 1) -> None:
        """Where it listens, pid, health, version, plugins; exit 1 when it is not running or something is wrong."""
        server = selected(version, topology=Topology(secure, nodes))
        info = server.status()
        if as_json:
            typer.echo(json.dumps(info, indent=2))
        else:
            flags = (f" --version {version}" if version else "") + (" --secure" if secure else "") + \
                (f" --nodes {nodes}" if nodes > 1 else "")
            print_status(info, f"pintext {group.name} up{flags}")
        if not info["running"]:
            raise typer.Exit(1)
        if info.get("problems"):
            fail("; ".join(info["problems"]))

    @app.command("logs")
    def logs(version: VersionOption = None,
             lines: Annotated[int, typer.Option("-n", "--lines", min=0, help="How many lines from the end.")] = 50,
             follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new lines (Ctrl-C stops).")]
             = False, secure: SecureOption = False, nodes: NodesOption = 1) -> None:
        """Print the tail of its log."""
        from pintext.servers.lifecycle import follow_lines, tail_lines

        server = selected(version, topology=Topology(secure, nodes))
        if not server.log_file.exists():
            fail(f"no log yet at {server.log_file} ({server.label} has never started)")
        for line in tail_lines(server.log_file, lines):
            console.print(line, markup=False, soft_wrap=True)
        if follow:
            try:
                for line in follow_lines(server.log_file):
                    console.print(line, markup=False, soft_wrap=True)
            except KeyboardInterrupt:
                pass

    return app


def print_status(info: dict, start_command: str) -> None:
    """`status()` as a two-column table."""
    table = Table(title=f"managed {info['server']}", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value")
    table.add_row("url", info["url"])
    if not info["running"]:
        table.add_row("state", f"[red]not running[/red] (start it with `{start_command}`)")
        console.print(table)
        return
    table.add_row("pid", str(info["pid"]))
    health = info.get("health")
    if isinstance(health, dict) and "status" in health:
        colour = {"green": "green", "yellow": "yellow"}.get(health["status"], "red")
        table.add_row("health", f"[{colour}]{health['status']}[/{colour}]")
    elif isinstance(health, dict) and "topics" in health:
        table.add_row("answers", "yes")
        table.add_row("topics", ", ".join(t for t in health["topics"] if not t.startswith("__")) or "-")
    else:
        table.add_row("health", "[red]no answer[/red]")
    for key in ("version", "plugins", "modules", "ca_certs", "credentials"):
        if key in info:
            value = info[key]
            table.add_row(key, escape(", ".join(value) if isinstance(value, list) else str(value)) or "none")
    table.add_row("log", info["log_file"])
    for key in ("error", "problems"):
        if info.get(key):
            table.add_row(key, f"[red]{escape(str(info[key]))}[/red]")
    console.print(table)
