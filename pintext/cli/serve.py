"""CLI commands: serving — `index create|delete|info`, `ingest`, `search`, `related`, `dsl`.

Every command takes `--model` (default $PINTEXT_MODEL), `--index`, `--url` (default $OPENSEARCH_URL, else the
managed node), `--user/--password`, `--ca-certs`/`--insecure`, and `--backend opensearch|local` with
`--local-dir`. Heavy modules (opensearch-py, the encoder) are imported inside the commands; torch never is.
"""

from __future__ import annotations

import functools
import json
import os
import time
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

DEFAULT_INDEX = "pins"
DEFAULT_LOCAL_DIR = Path("pintext-local-index")


class Backend(str, Enum):
    opensearch = "opensearch"
    local = "local"


ModelOption = Annotated[Optional[Path], typer.Option("--model", envvar="PINTEXT_MODEL",
                                                     help="Model folder (with runtime/); default $PINTEXT_MODEL.")]
IndexOption = Annotated[str, typer.Option("--index", help="Index name.")]
UrlOption = Annotated[Optional[str], typer.Option("--url", help="OpenSearch URL; default $OPENSEARCH_URL, "
                                                                "else the managed local node.")]
UserOption = Annotated[Optional[str], typer.Option("--user", envvar="OPENSEARCH_USER", help="Basic-auth user.")]
PasswordOption = Annotated[Optional[str], typer.Option("--password", envvar="OPENSEARCH_PASSWORD",
                                                       help="Basic-auth password.")]
CaCertsOption = Annotated[Optional[Path], typer.Option("--ca-certs", help="CA bundle for https.")]
InsecureOption = Annotated[bool, typer.Option("--insecure", help="Do not verify TLS certificates.")]
BackendOption = Annotated[Backend, typer.Option("--backend", help="opensearch, or the local on-disk index.")]
LocalDirOption = Annotated[Path, typer.Option("--local-dir", help="Folder of the local backend's index.")]
KOption = Annotated[int, typer.Option("--k", min=1, help="Hits to return.")]
WindowOption = Annotated[int, typer.Option("--window", min=1, help="First-stage hits rescored by exact cosine.")]
ProbesOption = Annotated[int, typer.Option("--probes", min=0, help="Extra multi-probe buckets per LSH table.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
ExplainOption = Annotated[bool, typer.Option("--explain", help="Show matching tokens and first-stage/final scores.")]


class Connection:
    """The options every serving command shares, resolved lazily into a model, an LSH and a backend."""

    def __init__(self, model: Path | None, index: str, url: str | None, user: str | None, password: str | None,
                 ca_certs: Path | None, insecure: bool, backend: Backend, local_dir: Path) -> None:
        self.model_dir = model
        self.index = index
        self.url, self.user, self.password, self.ca_certs, self.insecure = url, user, password, ca_certs, insecure
        self.backend = backend
        self.local_dir = local_dir
        self._encoder = self._lsh = self._client = None

    @property
    def encoder(self) -> Any:
        if self._encoder is None:
            if self.model_dir is None:
                fail("no model: pass --model MODEL or set PINTEXT_MODEL")
            from pintext.encoder import Encoder

            try:
                self._encoder = Encoder.load(self.model_dir)
            except (OSError, ValueError) as error:
                fail(f"cannot load the model: {error}")
        return self._encoder

    @property
    def lsh(self) -> Any:
        if self._lsh is None:
            from pintext.ingest.indexer import load_or_create_lsh

            try:
                self._lsh = load_or_create_lsh(self.model_dir, self.encoder.dim)
            except ValueError as error:
                fail(str(error))
        return self._lsh

    @property
    def meta(self) -> dict:
        from pintext.ingest.search import index_meta

        return index_meta(self.encoder.fingerprint, self.encoder.dim, self.lsh)

    @property
    def client(self) -> Any:
        if self._client is None:
            from pintext.ingest.opensearch_client import connect

            try:
                self._client = connect(url=self.url, user=self.user, password=self.password,
                                       verify_certs=not self.insecure,
                                       ca_certs=str(self.ca_certs) if self.ca_certs else None)
            except Exception as error:  # noqa: BLE001 - any failure to reach the node is reported the same way
                fail(f"cannot reach OpenSearch: {error}")
        return self._client

    def local_index(self) -> Any:
        from pintext.ingest.local_backend import LocalIndex

        return LocalIndex(self.local_dir)

    def check_index(self) -> None:
        """Refuse an index built for another model (either backend)."""
        from pintext.ingest.search import IndexMismatchError, check_meta, opensearch_meta

        try:
            if self.backend is Backend.local:
                local = self.local_index()
                if not local.exists():
                    fail(f"no local index in {self.local_dir}: build it with `pintext ingest FILE --backend local`")
                check_meta(str(self.local_dir), local.meta(), self.meta, str(self.model_dir))
            else:
                if not self.client.indices.exists(index=self.index):
                    fail(f"index {self.index!r} does not exist: create it with `pintext index create` or ingest")
                check_meta(self.index, opensearch_meta(self.client, self.index), self.meta, str(self.model_dir))
        except IndexMismatchError as error:
            fail(str(error))


def connection(model: Path | None, index: str, url: str | None, user: str | None, password: str | None,
               ca_certs: Path | None, insecure: bool, backend: Backend = Backend.opensearch,
               local_dir: Path = DEFAULT_LOCAL_DIR) -> Connection:
    return Connection(model, index, url, user, password, ca_certs, insecure, backend, local_dir)


def fail(message: str, code: int = 2) -> None:
    """Print a clear error on stderr and stop."""
    from rich.console import Console
    from rich.markup import escape

    Console(stderr=True).print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


# ---- index management ------------------------------------------------------------------------------------------


def ensure_index(conn: Connection, shards: int = 1, replicas: int = 0) -> bool:
    """Create the index (and install the search template) unless it exists; refuse a mismatched one.

    `shards` and `replicas` apply only when the index is created here. Returns True when it created the index.
    """
    if conn.backend is Backend.local:
        local = conn.local_index()
        if local.exists():
            conn.check_index()
            return False
        local.create(conn.meta)
        return True
    from pintext.mapping import pins_index_body
    from pintext.queries import SEARCH_TEMPLATE_ID, search_template_script

    client = conn.client
    created = False
    if client.indices.exists(index=conn.index):
        conn.check_index()
    else:
        client.indices.create(index=conn.index, body=pins_index_body(conn.encoder.dim, conn.meta, shards=shards,
                                                                          replicas=replicas))
        created = True
    install_search_template(client, SEARCH_TEMPLATE_ID, search_template_script())
    return created


def install_search_template(client: Any, template_id: str, script: dict) -> bool:
    """Store the mustache search template; a node without the lang-mustache module gets a warning, not a failure.

    The template is a convenience for Dev Tools and other clients; PinText's own commands send full bodies.
    """
    from opensearchpy.exceptions import RequestError

    try:
        client.put_script(id=template_id, body=script)
    except RequestError as error:
        if "mustache" not in str(error):
            raise
        typer.echo(f"warning: search template {template_id!r} not installed: this node has no lang-mustache "
                   f"module ({error.error})", err=True)
        return False
    return True


def index_create(model: ModelOption = None, index: IndexOption = DEFAULT_INDEX, url: UrlOption = None,
                 user: UserOption = None, password: PasswordOption = None, ca_certs: CaCertsOption = None,
                 insecure: InsecureOption = False, backend: BackendOption = Backend.opensearch,
                 local_dir: LocalDirOption = DEFAULT_LOCAL_DIR,
                 shards: Annotated[int, typer.Option("--shards", min=1, help="Primary shards (fixed once the "
                                                     "index exists).")] = 1,
                 replicas: Annotated[int, typer.Option("--replicas", min=0, help="Replicas of each shard; > 0 "
                                                       "needs that many more data nodes to go green.")] = 0,
                 ) -> None:
    """Create the pins index for a model (writes MODEL/lsh.json if missing) and install the search template."""
    conn = connection(model, index, url, user, password, ca_certs, insecure, backend, local_dir)
    created = ensure_index(conn, shards=shards, replicas=replicas)
    where = str(local_dir) if backend is Backend.local else index
    layout = ""
    if backend is Backend.opensearch:
        settings = conn.client.indices.get_settings(index=index)[index]["settings"]["index"]
        layout = f", {settings['number_of_shards']} shards x {settings['number_of_replicas']} replicas"
        if not created and (int(settings["number_of_shards"]), int(settings["number_of_replicas"])) != (shards,
                                                                                                       replicas):
            typer.echo(f"note: {index} already exists; --shards/--replicas were not applied", err=True)
    typer.echo(f"{'created' if created else 'exists, same model'}: {where} "
               f"(dim {conn.encoder.dim}, LSH {conn.lsh.tables}x{conn.lsh.bits} bits, "
               f"model {conn.encoder.fingerprint[:12]}{layout})")


def index_delete(index: IndexOption = DEFAULT_INDEX, url: UrlOption = None, user: UserOption = None,
                 password: PasswordOption = None, ca_certs: CaCertsOption = None, insecure: InsecureOption = False,
                 backend: BackendOption = Backend.opensearch, local_dir: LocalDirOption = DEFAULT_LOCAL_DIR) -> None:
    """Delete the pins index (no error if it is absent)."""
    conn = connection(None, index, url, user, password, ca_certs, insecure, backend, local_dir)
    if backend is Backend.local:
        conn.local_index().delete()
        typer.echo(f"deleted local index in {local_dir}")
        return
    if conn.client.indices.exists(index=index):
        conn.client.indices.delete(index=index)
        typer.echo(f"deleted: {index}")
    else:
        typer.echo(f"absent: {index}")


def index_info(index: IndexOption = DEFAULT_INDEX, url: UrlOption = None, user: UserOption = None,
               password: PasswordOption = None, ca_certs: CaCertsOption = None, insecure: InsecureOption = False,
               backend: BackendOption = Backend.opensearch, local_dir: LocalDirOption = DEFAULT_LOCAL_DIR) -> None:
    """Print the index's document count and `_meta` (model fingerprint, dim, LSH config) as JSON."""
    conn = connection(None, index, url, user, password, ca_certs, insecure, backend, local_dir)
    if backend is Backend.local:
        local = conn.local_index()
        if not local.exists():
            fail(f"no local index in {local_dir}")
        info = {"index": str(local_dir), "docs": local.count(), "meta": local.meta()}
    else:
        from pintext.ingest.search import opensearch_meta

        if not conn.client.indices.exists(index=index):
            fail(f"index {index!r} does not exist")
        count = conn.client.count(index=index)["count"]
        settings = conn.client.indices.get_settings(index=index)[index]["settings"]["index"]
        health = conn.client.cluster.health(index=index)["status"]
        info = {"index": index, "docs": count, "shards": int(settings["number_of_shards"]),
                "replicas": int(settings["number_of_replicas"]), "health": health,
                "meta": opensearch_meta(conn.client, index)}
    typer.echo(json.dumps(info, indent=2))


# ---- ingest ------------------------------------------------------------------------------------------------------


def count_lines(path: Path) -> int:
    """Lines in a JSONL(.gz) file, for the progress bar's total (one fast pass, constant memory)."""
    from pintext.ingest.readers import open_binary

    with open_binary(path) as handle:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 20), b""))


def ingest(
    pins_file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="pins.jsonl (or .jsonl.gz)")],
    model: ModelOption = None,
    index: IndexOption = DEFAULT_INDEX,
    batch: Annotated[int, typer.Option("--batch", min=1, help="Pins per embed + bulk batch.")] = 500,
    workers: Annotated[int, typer.Option("--workers", min=1, help="Bulk requests in flight.")] = 1,
    resume: Annotated[bool, typer.Option("--resume", help="Skip lines the checkpoint marks as done.")] = False,
    strict: Annotated[bool, typer.Option("--strict", help="Stop at the first bad line instead of "
                                                          "dead-lettering it.")] = False,
    dead_letter: Annotated[Optional[Path], typer.Option("--dead-letter", help="Rejected lines go here; default "
                                                        "FILE.rejected.jsonl (restarted by each run "
                                                        "without --resume).")] = None,
    checkpoint: Annotated[Optional[Path], typer.Option("--checkpoint", help="Checkpoint file; default "
                                                       "FILE.<index>.checkpoint.json.")] = None,
    json_output: JsonOption = False,
    url: UrlOption = None, user: UserOption = None, password: PasswordOption = None,
    ca_certs: CaCertsOption = None, insecure: InsecureOption = False,
    backend: BackendOption = Backend.opensearch, local_dir: LocalDirOption = DEFAULT_LOCAL_DIR,
) -> None:
    """Index a pins JSONL file: validate, embed, hash into LSH tokens, bulk-index by pin id, checkpoint."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from pintext.ingest.deadletter import DeadLetter
    from pintext.ingest.indexer import Checkpoint, Ingestor, LocalSink, OpenSearchSink, default_checkpoint_path
    from pintext.schemas import LocatedRecordError

    conn = connection(model, index, url, user, password, ca_certs, insecure, backend, local_dir)
    ensure_index(conn)
    target = f"local:{local_dir.resolve()}" if backend is Backend.local else f"opensearch:{index}"
    sink = LocalSink(conn.local_index()) if backend is Backend.local else OpenSearchSink(conn.client, index)
    dead_letter_path = dead_letter or pins_file.with_name(pins_file.name + ".rejected.jsonl")
    if dead_letter is None and not resume:
        # The default dead letter belongs to this input alone: a fresh run starts it afresh, so re-running
        # never lists a line twice. A --dead-letter path may be shared, so it is only ever appended to.
        dead_letter_path.unlink(missing_ok=True)
    checkpoint_path = checkpoint or default_checkpoint_path(pins_file, index if backend is Backend.opensearch
                                                            else "local")
    stderr = Console(stderr=True)
    total_lines = count_lines(pins_file)
    progress = Progress(TextColumn("[bold]ingest[/]"), BarColumn(), MofNCompleteColumn(), TextColumn("lines"),
                        TextColumn("{task.fields[rate]:,.0f} docs/s"), TimeElapsedColumn(), console=stderr,
                        disable=json_output or not stderr.is_terminal and not os.environ.get("PINTEXT_PROGRESS"))
    with progress, DeadLetter(dead_letter_path) as rejected:
        task = progress.add_task("ingest", total=total_lines, rate=0.0)
        ingestor = Ingestor(
            conn.encoder, conn.lsh, sink, rejected, Checkpoint(checkpoint_path, str(pins_file.resolve()), target),
            batch_size=batch, workers=workers, strict=strict,
            on_batch=lambda report: progress.update(task, completed=report.last_line,
                                                    rate=report.docs_per_second),
        )
        try:
            report = ingestor.run(pins_file, resume=resume)
        except LocatedRecordError as error:
            fail(f"{error} (--strict: nothing after this line was indexed; fix it or drop --strict)")
        except ValueError as error:
            fail(str(error))
        progress.update(task, completed=total_lines, rate=report.docs_per_second)
    if backend is Backend.opensearch:
        conn.client.indices.refresh(index=index)
    summary = {**report.to_json(), "dead_letter": str(dead_letter_path), "checkpoint": str(checkpoint_path),
               "index": str(local_dir) if backend is Backend.local else index}
    if json_output:
        typer.echo(json.dumps(summary))
    else:
        print_ingest_summary(summary)


def print_ingest_summary(summary: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"ingest into {summary['index']}", show_header=False)
    for key in ("indexed", "created", "updated", "rejected"):
        table.add_row(key, f"{summary[key]:,}")
    for reason, count in sorted(summary["rejected_by_reason"].items()):
        table.add_row(f"  rejected: {reason}", f"{count:,}")
    if summary["resumed_after_line"]:
        table.add_row("resumed after line", f"{summary['resumed_after_line']:,}")
    table.add_row("docs/s", f"{summary['docs_per_second']:,.0f}")
    table.add_row("seconds", f"{summary['seconds']:.2f}")
    table.add_row("dead letter", summary["dead_letter"])
    table.add_row("checkpoint", summary["checkpoint"])
    Console().print(table)


# ---- search / related / dsl ------------------------------------------------------------------------------------


def read_queries(path: Path) -> list[str]:
    """One query per line: a JSON string, or an object with `query` (or `text`)."""
    texts = []
    for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as error:
            fail(f"{path}:{line_no}: not valid JSON ({error})")
        text = value if isinstance(value, str) else (value.get("query") or value.get("text")
                                                     if isinstance(value, dict) else None)
        if not isinstance(text, str) or not text.strip():
            fail(f"{path}:{line_no}: field 'query': missing (want a JSON string or {{\"query\": \"...\"}})")
        texts.append(text)
    return texts


def run_search(conn: Connection, vector: Any, k: int, window: int, probes: int, hybrid_text: str | None,
               exclude_ids: list[str]) -> list[Any]:
    """One search on the chosen backend."""
    if k > window:
        fail(f"--k ({k}) must not exceed --window ({window})")
    if conn.backend is Backend.local:
        if hybrid_text:
            fail("--hybrid needs BM25, which only the opensearch backend has")
        tokens = conn.lsh.query_tokens(vector, probes=probes)[0]
        return conn.local_index().search(tokens, vector, k=k, window=window, exclude_ids=exclude_ids)
    from pintext.ingest.search import OpenSearchSearcher

    return OpenSearchSearcher(conn.client, conn.index, conn.lsh).search(
        vector, k=k, window=window, probes=probes, hybrid_text=hybrid_text, exclude_ids=exclude_ids)


def show_hits(title: str, hits: list[Any], explain: bool, took_ms: float) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, caption=f"{len(hits)} hits in {took_ms:.1f} ms")
    # The board is the pin's own grouping: seeing it beside the title shows whether the hits hang together.
    for column in ("rank", "id", "title", "board", "score"):
        table.add_column(column, justify="right" if column in ("rank", "score") else "left")
    if explain:
        table.add_column("first stage", justify="right")
        table.add_column("matching tokens")
    for rank, hit in enumerate(hits, start=1):
        row = [str(rank), hit.id, hit.title[:60], str(hit.source.get("board") or ""), f"{hit.score:.4f}"]
        if explain:
            shown = " ".join(hit.matched_tokens[:6]) + (" ..." if len(hit.matched_tokens) > 6 else "")
            row += [f"{hit.first_stage_score:g}" if hit.first_stage_score is not None else "-", shown]
        table.add_row(*row)
    Console().print(table)


def emit(label: str, query: str, hits: list[Any], took_ms: float, json_output: bool, explain: bool) -> None:
    if json_output:
        typer.echo(json.dumps({label: query, "took_ms": round(took_ms, 2), "hits": [hit.to_json() for hit in hits]}))
    else:
        show_hits(f"{label}: {query}", hits, explain, took_ms)


def search(
    text: Annotated[Optional[str], typer.Argument(help="Query text (or use --queries FILE).")] = None,
    k: KOption = 10, window: WindowOption = 500, probes: ProbesOption = 0,
    hybrid: Annotated[bool, typer.Option("--hybrid", help="Add BM25 on title/description to the first stage.")]
    = False,
    json_output: JsonOption = False, explain: ExplainOption = False,
    queries_file: Annotated[Optional[Path], typer.Option("--queries", exists=True, dir_okay=False,
                                                         help="One JSON line per query.")] = None,
    model: ModelOption = None, index: IndexOption = DEFAULT_INDEX, url: UrlOption = None, user: UserOption = None,
    password: PasswordOption = None, ca_certs: CaCertsOption = None, insecure: InsecureOption = False,
    backend: BackendOption = Backend.opensearch, local_dir: LocalDirOption = DEFAULT_LOCAL_DIR,
) -> None:
    """Search pins by text: LSH token candidates, exact cosine rescore."""
    texts = read_queries(queries_file) if queries_file else ([text] if text else [])
    if not texts:
        fail("give a query text or --queries FILE")
    conn = connection(model, index, url, user, password, ca_certs, insecure, backend, local_dir)
    conn.check_index()
    for query in texts:
        started = time.perf_counter()
        vector = conn.encoder.encode([query])[0]
        if not vector.any():
            hits: list[Any] = []
            if not json_output:
                typer.echo(f"no word of {query!r} is in the model's vocabulary: nothing to search with", err=True)
        else:
            hits = run_search(conn, vector, k, window, probes, query if hybrid else None, [])
        emit("query", query, hits, (time.perf_counter() - started) * 1000, json_output, explain)


def related(
    pin_id: Annotated[str, typer.Argument(help="Id of a pin in the index.")],
    k: KOption = 10, window: WindowOption = 500, probes: ProbesOption = 0,
    json_output: JsonOption = False, explain: ExplainOption = False,
    model: ModelOption = None, index: IndexOption = DEFAULT_INDEX, url: UrlOption = None, user: UserOption = None,
    password: PasswordOption = None, ca_certs: CaCertsOption = None, insecure: InsecureOption = False,
    backend: BackendOption = Backend.opensearch, local_dir: LocalDirOption = DEFAULT_LOCAL_DIR,
) -> None:
    """Pins related to a stored pin: nearest by its own vector, itself excluded."""
    conn = connection(model, index, url, user, password, ca_certs, insecure, backend, local_dir)
    conn.check_index()
    started = time.perf_counter()
    if backend is Backend.local:
        found = conn.local_index().get(pin_id)
        if found is None:
            fail(f"pin {pin_id!r} is not in the local index {local_dir}")
        vector = found[1]
    else:
        from pintext.ingest.search import OpenSearchSearcher, PinNotFoundError

        try:
            vector = OpenSearchSearcher(conn.client, index, conn.lsh).stored_vector(pin_id)
        except PinNotFoundError as error:
            fail(str(error))
    hits = run_search(conn, vector, k, window, probes, None, [pin_id])
    emit("related", pin_id, hits, (time.perf_counter() - started) * 1000, json_output, explain)


def dsl(
    text: Annotated[str, typer.Argument(help="Query text.")],
    k: KOption = 10, window: WindowOption = 500, probes: ProbesOption = 0,
    hybrid: Annotated[bool, typer.Option("--hybrid", help="Add BM25 on title/description.")] = False,
    template: Annotated[bool, typer.Option("--template", help="Print a call of the stored search template "
                                                               "instead of the full body.")] = False,
    model: ModelOption = None, index: IndexOption = DEFAULT_INDEX,
) -> None:
    """Print the exact query DSL for a text, ready to paste into Dashboards Dev Tools."""
    from pintext import queries

    conn = connection(model, index, None, None, None, None, False)
    vector = conn.encoder.encode([text])[0]
    if not vector.any():
        fail(f"no word of {text!r} is in the model's vocabulary: there is no query to print")
    tokens = conn.lsh.query_tokens(vector, probes=probes)[0]
    if template:
        params = queries.template_params(tokens, vector, k=k, window=window)
        body = {"id": queries.SEARCH_TEMPLATE_ID, "params": params}
        typer.echo(f"GET {index}/_search/template\n{json.dumps(body, indent=2)}")
        return
    body = queries.search_body(tokens, vector, k=k, window=window, hybrid_text=text if hybrid else None)
    typer.echo(queries.dev_tools_request(index, body))


def reports_unreachable_node(command: Callable[..., None]) -> Callable[..., None]:
    """Turn "no node answers" into one clear line instead of a traceback."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        from opensearchpy.exceptions import ConnectionError as TransportConnectionError

        try:
            command(*args, **kwargs)
        except TransportConnectionError as error:
            url = kwargs.get("url") or os.environ.get("OPENSEARCH_URL") or "the managed node"
            fail(f"cannot reach OpenSearch at {url}: {error.error if hasattr(error, 'error') else error} "
                 f"(start one with `pintext opensearch up`, or pass --url / set OPENSEARCH_URL)")

    return wrapper


def register(app: typer.Typer) -> None:
    """Add this module's commands to the main app."""
    index_app = typer.Typer(help="Create, delete and inspect the pins index.", no_args_is_help=True)
    index_app.command("create")(reports_unreachable_node(index_create))
    index_app.command("delete")(reports_unreachable_node(index_delete))
    index_app.command("info")(reports_unreachable_node(index_info))
    app.add_typer(index_app, name="index")
    app.command("ingest")(reports_unreachable_node(ingest))
    app.command("search")(reports_unreachable_node(search))
    app.command("related")(reports_unreachable_node(related))
    app.command("dsl")(dsl)
