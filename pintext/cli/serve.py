"""CLI commands: serving — `index create|delete|info`, `ingest`, `search`, `related`, `dsl`.

Every command takes `--model` (default $PINTEXT_MODEL), `--index`, `--url` (default $OPENSEARCH_URL, else the
managed node), `--user/--password`, `--ca-certs`/`--insecure`, and `--backend opensearch|local` with
`--local-dir`. Heavy modules (opensearch-py, the encoder) are imported inside the commands; torch never is.

An index's LSH config and its default window/probes live in its `_meta` (tuned on the corpus when the index is
created with one: `index create --pins FILE`, or `ingest FILE` creating it). `search`, `related` and `dsl` read
them from there; no command writes into the model folder. A `MODEL/lsh.json` a user wrote is honoured: a new
index keeps its tables/bits (only probes and window are tuned) and an index built with another config is refused.
"""

from __future__ import annotations

import functools
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
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
WindowOption = Annotated[Optional[int], typer.Option("--window", min=1, help="First-stage hits rescored by exact "
                                                     "cosine; default: the index's tuned window.")]
ProbesOption = Annotated[Optional[int], typer.Option("--probes", min=0, help="Extra multi-probe buckets per LSH "
                                                     "table; default: the index's tuned probes.")]
TargetRecallOption = Annotated[float, typer.Option("--target-recall", min=0.0, max=1.0,
                                                   help="When the index is created: tune LSH for this recall@10 "
                                                        "vs exact cosine.")]
NoTuneOption = Annotated[bool, typer.Option("--no-tune", help="When the index is created: skip tuning, use "
                                                              "the default LSH (64x8 bits, window 500).")]
TuneQueriesOption = Annotated[Optional[Path], typer.Option("--tune-queries", exists=True, dir_okay=False,
                                                           help="Query texts to tune on (one JSON line each); "
                                                                "default: sampled pins.")]
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
        self._index_meta: dict | None = None
        self._index_meta_read = False

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
    def model_lsh(self) -> Any:
        """The LSH config the user set in MODEL/lsh.json, or None."""
        from pintext.ingest.indexer import read_model_lsh

        try:
            return read_model_lsh(self.model_dir, self.encoder.dim)
        except ValueError as error:
            fail(str(error))

    def index_meta(self) -> dict | None:
        """The existing index's `_meta` (None when there is no index yet)."""
        if not self._index_meta_read:
            from pintext.ingest.search import opensearch_meta

            if self.backend is Backend.local:
                local = self.local_index()
                self._index_meta = local.meta() if local.exists() else None
            elif self.client.indices.exists(index=self.index):
                self._index_meta = opensearch_meta(self.client, self.index)
            self._index_meta_read = True
        return self._index_meta

    def without_index(self) -> None:
        """Go on as if there were no index (dsl without a node)."""
        self._index_meta, self._index_meta_read = None, True

    def forget_index_meta(self) -> None:
        """The index was deleted: read its `_meta` afresh next time."""
        self._index_meta, self._index_meta_read, self._lsh = None, False, None

    def adopt(self, meta: dict) -> None:
        """Use the `_meta` of an index just created (its LSH, its window and probes)."""
        from pintext.lsh import RandomHyperplaneLSH

        self._index_meta, self._index_meta_read = meta, True
        self._lsh = RandomHyperplaneLSH.from_dict(meta["lsh"])

    @property
    def lsh(self) -> Any:
        """The index's LSH config; before an index exists, MODEL/lsh.json or the default."""
        if self._lsh is None:
            from pintext.ingest.indexer import default_lsh
            from pintext.lsh import RandomHyperplaneLSH

            meta = self.index_meta() or {}
            if meta.get("lsh"):
                try:
                    self._lsh = RandomHyperplaneLSH.from_dict(meta["lsh"])
                except ValueError as error:
                    fail(f"index {self.where}: {error}")
            else:
                self._lsh = self.model_lsh or default_lsh(self.encoder.dim)
        return self._lsh

    @property
    def serving(self) -> Any:
        """The index's default window and probes (the untuned defaults before an index exists)."""
        from pintext.ingest.search import ServingDefaults

        return ServingDefaults.from_meta(self.index_meta() or {})

    @property
    def meta(self) -> dict:
        """What the index must match: this model, and the LSH config MODEL/lsh.json sets (else the index's own)."""
        from pintext.ingest.search import index_meta

        return index_meta(self.encoder.fingerprint, self.encoder.dim, self.model_lsh or self.lsh)

    @property
    def where(self) -> str:
        return str(self.local_dir) if self.backend is Backend.local else self.index

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = open_client(self.url, self.user, self.password, self.ca_certs, self.insecure)
        return self._client

    def local_index(self) -> Any:
        from pintext.ingest.local_backend import LocalIndex

        return LocalIndex(self.local_dir)

    def searcher(self) -> Any:
        """The OpenSearch searcher with this index's LSH and default window/probes."""
        from pintext.ingest.search import OpenSearchSearcher

        return OpenSearchSearcher(self.client, self.index, self.lsh, self.serving)

    def check_index(self) -> None:
        """Refuse an index built for another model (either backend)."""
        from pintext.ingest.search import IndexMismatchError, check_meta

        found = self.index_meta()
        if found is None:
            if self.backend is Backend.local:
                fail(f"no local index in {self.local_dir}: build it with `pintext ingest FILE --backend local`")
            fail(f"index {self.index!r} does not exist: create it with `pintext index create` or ingest")
        try:
            check_meta(self.where, found, self.meta, str(self.model_dir))
        except IndexMismatchError as error:
            fail(str(error))


@dataclass(frozen=True)
class Tuning:
    """How to choose the LSH settings of an index about to be created."""

    pins_file: Path | None = None  # the corpus; None: no tuning (the defaults)
    target_recall: float = 0.95
    enabled: bool = True
    queries_file: Path | None = None


def open_client(url: str | None, user: str | None, password: str | None, ca_certs: Path | None, insecure: bool,
                ping: bool = False, where: str = "", advice: str = "") -> Any:
    """An opensearch-py client for the CLI's connection options; any failure to reach the node (when `ping`, the
    node is asked for its info first) is one clear error line."""
    from pintext.ingest.opensearch_client import connect

    try:
        client = connect(url=url, user=user, password=password, verify_certs=not insecure,
                         ca_certs=str(ca_certs) if ca_certs else None)
        if ping:
            client.info()
    except Exception as error:  # noqa: BLE001 - any failure to reach the node is reported the same way
        fail(f"cannot reach OpenSearch{where}: {error}{advice}")
    return client


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


def ensure_index(conn: Connection, shards: int = 1, replicas: int = 0, tuning: Tuning = Tuning()) -> bool:
    """Create the index (and install the search template) unless it exists; refuse a mismatched one.

    A new index gets its LSH settings tuned on `tuning.pins_file` (see `creation_meta`). `shards` and `replicas`
    apply only when the index is created here. Returns True when it created the index.
    """
    if conn.index_meta() is not None and awaits_tuning(conn, tuning):
        shards, replicas = drop_empty_untuned_index(conn)
    elif conn.index_meta() is not None:
        conn.check_index()
        if conn.backend is Backend.opensearch:
            install_search_template_of(conn.client)
        return False
    meta = creation_meta(conn, tuning)
    if conn.backend is Backend.local:
        conn.local_index().create(meta)
    else:
        from pintext.mapping import pins_index_body

        conn.client.indices.create(index=conn.index, body=pins_index_body(conn.encoder.dim, meta, shards=shards,
                                                                          replicas=replicas))
        install_search_template_of(conn.client)
    conn.adopt(meta)
    return True


NO_CORPUS_YET = "no corpus given (index create without --pins)"


def awaits_tuning(conn: Connection, tuning: Tuning) -> bool:
    """An index that `index create` made without a corpus, still empty, for this model, when ingest brings the
    corpus and tuning is on: the first ingest tunes it (the usual `index create` then `ingest FILE` flow)."""
    meta = conn.index_meta() or {}
    if not (tuning.enabled and tuning.pins_file is not None and (meta.get("tuning") or {}).get("pending")):
        return False
    if meta.get("model_fingerprint") != conn.encoder.fingerprint:
        return False  # another model's index: check_index refuses it with the full explanation
    if conn.backend is Backend.local:
        return conn.local_index().count() == 0
    conn.client.indices.refresh(index=conn.index)
    return int(conn.client.count(index=conn.index)["count"]) == 0


def drop_empty_untuned_index(conn: Connection) -> tuple[int, int]:
    """Delete the empty, untuned index so it can be made again with tuned settings; returns its shards/replicas.
    (Its `_meta` cannot be updated in place: a mapping update on an index with a knn_vector field fails.)"""
    shards, replicas = 1, 0
    if conn.backend is Backend.local:
        conn.local_index().delete()
    else:
        settings = conn.client.indices.get_settings(index=conn.index)[conn.index]["settings"]["index"]
        shards, replicas = int(settings["number_of_shards"]), int(settings["number_of_replicas"])
        conn.client.indices.delete(index=conn.index)
    conn.forget_index_meta()
    typer.echo(f"note: {conn.where} was created without a corpus and is empty: re-created with LSH tuned on "
               "this file", err=True)
    return shards, replicas


def install_search_template_of(client: Any) -> bool:
    from pintext.queries import SEARCH_TEMPLATE_ID, search_template_script

    return install_search_template(client, SEARCH_TEMPLATE_ID, search_template_script())


def creation_meta(conn: Connection, tuning: Tuning) -> dict:
    """The `_meta` of a new index: this model, and LSH settings tuned on the corpus when one is given.

    MODEL/lsh.json (if the user wrote one) fixes tables and bits; tuning then picks only probes and window.
    Without a corpus, or with --no-tune, the index gets that config (or the default) and the default window.
    """
    from pintext.ingest.indexer import default_lsh
    from pintext.ingest.search import ServingDefaults, index_meta

    encoder, fixed = conn.encoder, conn.model_lsh
    if not tuning.enabled or tuning.pins_file is None:
        reason = "--no-tune" if not tuning.enabled else NO_CORPUS_YET
    else:
        result, reason = tune_on_corpus(conn, tuning, fixed)
        if result is not None:
            serving = ServingDefaults(window=result.window, probes=result.probes, window_at_100=result.deep_window,
                                      probes_at_100=result.deep_probes)
            return index_meta(encoder.fingerprint, encoder.dim, result.lsh, serving, result.to_meta())
    lsh = fixed or default_lsh(encoder.dim)
    record = {"tuned": False, "reason": reason, "pending": reason == NO_CORPUS_YET}
    return index_meta(encoder.fingerprint, encoder.dim, lsh, ServingDefaults(), record)


def tune_on_corpus(conn: Connection, tuning: Tuning, fixed: Any) -> tuple[Any, str]:
    """Tune LSH on a sample of the pins file (and the given queries), saying what it chose on stderr.

    Returns (result, "") or, when the corpus cannot be tuned on (too few pins with a known word), (None, why).
    """
    from pintext.ingest.indexer import sample_pins
    from pintext.lsh_tune import MAX_TUNE_CORPUS, tune_for_corpus

    started = time.perf_counter()
    from pintext.pin_vectors import pin_vectors

    sample, total = sample_pins(tuning.pins_file, MAX_TUNE_CORPUS)
    queries = conn.encoder.encode(read_queries(tuning.queries_file)) if tuning.queries_file else None
    try:
        result = tune_for_corpus(pin_vectors(conn.encoder, sample), tuning.target_recall, queries=queries,
                                 fixed=(fixed.tables, fixed.bits) if fixed else None, seed=fixed.seed if fixed else 0,
                                 total_pins=total)
    except ValueError as error:
        typer.echo(f"note: LSH not tuned on {tuning.pins_file} ({error}): default LSH and window", err=True)
        return None, f"not tunable: {error}"
    if fixed:
        typer.echo(f"note: {conn.model_dir}/lsh.json fixes {fixed.tables} tables x {fixed.bits} bits, so only probes "
                   f"and window are tuned (delete it to let tuning choose tables and bits too)", err=True)
    verdict = "reached" if result.reached else "NOT reached (best recall kept)"
    asked = "sampled pins as queries" if result.query_source == "pins" else "given queries"
    typer.echo(f"tuned LSH on {result.tuned_on:,} of {result.corpus:,} pins, {result.queries} {asked} "
               f"in {time.perf_counter() - started:.1f}s: {result.lsh.tables} tables x {result.lsh.bits} bits, "
               f"probes {result.probes}, window {result.window}; recall@10 vs exact {result.recall:.3f}, target "
               f"{tuning.target_recall} {verdict}"
               + (f"; for 100 hits probes {result.deep_probes}, window {result.deep_window} (recall@100 "
                  f"{result.deep_recall:.3f})" if result.deep_window else ""), err=True)
    return result, ""


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
                 pins: Annotated[Optional[Path], typer.Option("--pins", exists=True, dir_okay=False,
                                                              help="The corpus (pins.jsonl): tune LSH on it.")]
                 = None,
                 target_recall: TargetRecallOption = 0.95, no_tune: NoTuneOption = False,
                 tune_queries: TuneQueriesOption = None,
                 ) -> None:
    """Create the pins index for a model, its LSH tuned on --pins FILE, and install the search template."""
    conn = connection(model, index, url, user, password, ca_certs, insecure, backend, local_dir)
    created = ensure_index(conn, shards=shards, replicas=replicas,
                           tuning=Tuning(pins, target_recall, not no_tune, tune_queries))
    if created and pins is None and not no_tune:
        typer.echo("note: no --pins FILE, so LSH is not tuned yet (default 64x8 bits, window 500); the first "
                   "`pintext ingest FILE` into this empty index tunes it on FILE", err=True)
    where = str(local_dir) if backend is Backend.local else index
    layout = ""
    if backend is Backend.opensearch:
        settings = conn.client.indices.get_settings(index=index)[index]["settings"]["index"]
        layout = f", {settings['number_of_shards']} shards x {settings['number_of_replicas']} replicas"
        if not created and (int(settings["number_of_shards"]), int(settings["number_of_replicas"])) != (shards,
                                                                                                       replicas):
            typer.echo(f"note: {index} already exists; --shards/--replicas were not applied", err=True)
    typer.echo(f"{'created' if created else 'exists, same model'}: {where} "
               f"(dim {conn.encoder.dim}, LSH {conn.lsh.tables}x{conn.lsh.bits} bits, probes {conn.serving.probes}, "
               f"window {conn.serving.window}, model {conn.encoder.fingerprint[:12]}{layout})")


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
    target_recall: TargetRecallOption = 0.95, no_tune: NoTuneOption = False, tune_queries: TuneQueriesOption = None,
    url: UrlOption = None, user: UserOption = None, password: PasswordOption = None,
    ca_certs: CaCertsOption = None, insecure: InsecureOption = False,
    backend: BackendOption = Backend.opensearch, local_dir: LocalDirOption = DEFAULT_LOCAL_DIR,
) -> None:
    """Index a pins JSONL file: validate, embed, hash into LSH tokens, bulk-index by pin id, checkpoint.

    A new index is created first, its LSH tuned on this file (unless --no-tune).
    """
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from pintext.ingest.deadletter import DeadLetter
    from pintext.ingest.indexer import Checkpoint, Ingestor, LocalSink, OpenSearchSink, default_checkpoint_path
    from pintext.schemas import LocatedRecordError

    conn = connection(model, index, url, user, password, ca_certs, insecure, backend, local_dir)
    ensure_index(conn, tuning=Tuning(pins_file, target_recall, not no_tune, tune_queries))
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
    for key, label in (("indexed", "indexed"), ("created", "created"), ("updated", "updated"),
                       ("indexed_without_vector", "indexed without a vector"), ("rejected", "rejected")):
        table.add_row(label, f"{summary[key]:,}")
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


class FusionMethod(str, Enum):
    rrf = "rrf"
    blend = "blend"


@dataclass
class Answer:
    """One query's hits and how they were found: mode "pintext", "hybrid", "bm25_fallback" (no known word)."""

    hits: list[Any]
    mode: str
    note: str | None = None
    window: int | None = None
    probes: int | None = None


def serving_window(conn: Connection, k: int, window: int | None) -> int:
    """The rescore window: --window, else the index's (widened to k); refuses k above an explicit window."""
    if window is not None and k > window:
        fail(f"--k ({k}) must not exceed --window ({window})")
    return conn.serving.window_for(k, window)


def vector_search(conn: Connection, vector: Any, k: int, window: int | None, probes: int | None,
                  exclude_ids: list[str]) -> Answer:
    """PinText served on the chosen backend, with the index's window/probes unless given."""
    window = serving_window(conn, k, window)
    probes = conn.serving.probes_for(k, probes)
    if conn.backend is Backend.local:
        tokens = conn.lsh.query_tokens(vector, probes=probes)[0]
        hits = conn.local_index().search(tokens, vector, k=k, window=window, exclude_ids=exclude_ids)
    else:
        hits = conn.searcher().search(vector, k=k, window=window, probes=probes, exclude_ids=exclude_ids)
    return Answer(hits, "pintext", window=window, probes=probes)


def bm25_fallback(conn: Connection, text: str, k: int, why: str, exclude_ids: list[str] = ()) -> Answer:
    """BM25 alone, for a query (or pin) with no known word; the local backend has no BM25 and says so."""
    if conn.backend is Backend.local:
        return Answer([], "bm25_fallback", f"{why}; the local backend has no BM25 to fall back on")
    return Answer(conn.searcher().bm25_search(text, k=k, exclude_ids=list(exclude_ids)), "bm25_fallback",
                  f"{why}: BM25 results")


def fusion_config(conn: Connection, method: FusionMethod | None, weight: float | None) -> Any:
    """The model's MODEL/hybrid.json (default RRF, equal weights), with --fusion/--fusion-weight on top."""
    from pintext.fusion import HYBRID_FILE, FusionConfig

    try:
        config = FusionConfig.load(conn.model_dir)
        return FusionConfig(method=method.value if method else config.method, rrf_k=config.rrf_k,
                            weight=config.weight if weight is None else weight)
    except (ValueError, TypeError, json.JSONDecodeError) as error:
        fail(f"{Path(str(conn.model_dir)) / HYBRID_FILE}: not a valid fusion config: {error}")


def answer_query(conn: Connection, query: str, k: int, window: int | None, probes: int | None, hybrid: bool,
                 fusion: Any, depth: int) -> Answer:
    """One query: PinText, or the hybrid of BM25 and PinText; BM25 alone when no word of it is known."""
    from pintext.queries import fusion_depth

    vector = conn.encoder.encode([query])[0]
    # With hashed unseen words (pintext.encoder.HashedWords) such a query still has a vector, but BM25, with the
    # index's own statistics, ranks a pure word match better than hashed directions do.
    known = bool(vector.any()) and conn.encoder.coverage([query]).known_tokens > 0
    why = f"no word of {query!r} is in the model's vocabulary"
    if hybrid:
        if conn.backend is Backend.local:
            fail("--hybrid needs BM25, which only the opensearch backend has")
        serving_window(conn, k, window)  # refuses --k above an explicit --window
        hits = conn.searcher().hybrid_search(query, vector if known else None, k=k, window=window, fusion=fusion,
                                             depth=depth, probes=probes)
        if not known:
            return Answer(hits, "bm25_fallback", f"{why}: BM25 results")
        # The PinText side returns `size` hits, with the index's window and probes for that many.
        size = fusion_depth(k, depth)
        return Answer(hits, "hybrid", f"fused by {fusion.method}, PinText weight {fusion.weight:g}",
                      window=max(conn.serving.window_for(size, window), size),
                      probes=conn.serving.probes_for(size, probes))
    if not known:
        return bm25_fallback(conn, query, k, why)
    return vector_search(conn, vector, k, window, probes, [])


def show_hits(title: str, answer: Answer, explain: bool, took_ms: float) -> None:
    from rich.console import Console
    from rich.table import Table

    hits = answer.hits
    caption = f"{len(hits)} hits in {took_ms:.1f} ms" + (f"; {answer.note}" if answer.note else "")
    table = Table(title=title, caption=caption)
    # The board is the pin's own grouping: seeing it beside the title shows whether the hits hang together.
    for column in ("rank", "id", "title", "board", "score"):
        table.add_column(column, justify="right" if column in ("rank", "score") else "left")
    fused = answer.mode == "hybrid"
    if explain and fused:
        for column in ("cosine", "PinText rank", "BM25", "BM25 rank"):
            table.add_column(column, justify="right")
    if explain:
        table.add_column("first stage", justify="right")
        table.add_column("matching tokens")
    for rank, hit in enumerate(hits, start=1):
        row = [str(rank), hit.id, hit.title[:60], str(hit.source.get("board") or ""), f"{hit.score:.4f}"]
        if explain and fused:
            row += [_number(hit.cosine, ".4f"), _number(hit.pintext_rank, "d"), _number(hit.bm25_score, ".3f"),
                    _number(hit.bm25_rank, "d")]
        if explain:
            shown = " ".join(hit.matched_tokens[:6]) + (" ..." if len(hit.matched_tokens) > 6 else "")
            row += [f"{hit.first_stage_score:g}" if hit.first_stage_score is not None else "-", shown]
        table.add_row(*row)
    Console().print(table)


def _number(value: Any, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def emit(label: str, query: str, answer: Answer, took_ms: float, json_output: bool, explain: bool) -> None:
    if json_output:
        typer.echo(json.dumps({label: query, "mode": answer.mode, "note": answer.note, "window": answer.window,
                               "probes": answer.probes, "took_ms": round(took_ms, 2),
                               "hits": [hit.to_json() for hit in answer.hits]}))
    else:
        show_hits(f"{label}: {query}", answer, explain, took_ms)


FusionOption = Annotated[Optional[FusionMethod], typer.Option("--fusion", help="With --hybrid: rrf or blend; "
                                                              "default MODEL/hybrid.json, else rrf.")]
FusionWeightOption = Annotated[Optional[float], typer.Option("--fusion-weight", min=0.0, max=1.0,
                                                             help="With --hybrid: PinText's share (BM25 gets "
                                                                  "the rest); default MODEL/hybrid.json, else 0.5.")]
DepthOption = Annotated[int, typer.Option("--depth", min=1, help="With --hybrid: hits each side contributes to "
                                                                 "the fusion (at least --k).")]
HybridOption = Annotated[bool, typer.Option("--hybrid", help="Fuse BM25 and PinText rankings (client side).")]


def search(
    text: Annotated[Optional[str], typer.Argument(help="Query text (or use --queries FILE).")] = None,
    k: KOption = 10, window: WindowOption = None, probes: ProbesOption = None,
    hybrid: HybridOption = False, fusion: FusionOption = None, fusion_weight: FusionWeightOption = None,
    depth: DepthOption = 100,
    json_output: JsonOption = False, explain: ExplainOption = False,
    queries_file: Annotated[Optional[Path], typer.Option("--queries", exists=True, dir_okay=False,
                                                         help="One JSON line per query.")] = None,
    model: ModelOption = None, index: IndexOption = DEFAULT_INDEX, url: UrlOption = None, user: UserOption = None,
    password: PasswordOption = None, ca_certs: CaCertsOption = None, insecure: InsecureOption = False,
    backend: BackendOption = Backend.opensearch, local_dir: LocalDirOption = DEFAULT_LOCAL_DIR,
) -> None:
    """Search pins by text: LSH token candidates, exact cosine rescore; --hybrid fuses BM25 in. A query with
    no known word gets BM25 results."""
    texts = read_queries(queries_file) if queries_file else ([text] if text else [])
    if not texts:
        fail("give a query text or --queries FILE")
    conn = connection(model, index, url, user, password, ca_certs, insecure, backend, local_dir)
    conn.check_index()
    fused = fusion_config(conn, fusion, fusion_weight) if hybrid else None
    for query in texts:
        started = time.perf_counter()
        answer = answer_query(conn, query, k, window, probes, hybrid, fused, depth)
        emit("query", query, answer, (time.perf_counter() - started) * 1000, json_output, explain)


def related(
    pin_id: Annotated[str, typer.Argument(help="Id of a pin in the index.")],
    k: KOption = 10, window: WindowOption = None, probes: ProbesOption = None,
    json_output: JsonOption = False, explain: ExplainOption = False,
    model: ModelOption = None, index: IndexOption = DEFAULT_INDEX, url: UrlOption = None, user: UserOption = None,
    password: PasswordOption = None, ca_certs: CaCertsOption = None, insecure: InsecureOption = False,
    backend: BackendOption = Backend.opensearch, local_dir: LocalDirOption = DEFAULT_LOCAL_DIR,
) -> None:
    """Pins related to a stored pin: nearest by its own vector, itself excluded (BM25 on its text when it was
    indexed without a vector)."""
    from pintext.schemas import pin_text

    conn = connection(model, index, url, user, password, ca_certs, insecure, backend, local_dir)
    conn.check_index()
    started = time.perf_counter()
    if backend is Backend.local:
        found = conn.local_index().get(pin_id)
        if found is None:
            fail(f"pin {pin_id!r} is not in the local index {local_dir}")
        doc, vector = found
    else:
        import numpy as np

        from pintext.ingest.search import PinNotFoundError
        from pintext.mapping import VECTOR_FIELD

        try:
            doc = conn.searcher().stored_pin(pin_id)
        except PinNotFoundError as error:
            fail(str(error))
        vector = np.asarray(doc[VECTOR_FIELD], dtype=np.float32) if VECTOR_FIELD in doc else None
    if vector is None:
        answer = bm25_fallback(conn, pin_text(doc), k, f"pin {pin_id!r} has no vector (no known word)", [pin_id])
    else:
        answer = vector_search(conn, vector, k, window, probes, [pin_id])
    emit("related", pin_id, answer, (time.perf_counter() - started) * 1000, json_output, explain)


def dsl(
    text: Annotated[str, typer.Argument(help="Query text.")],
    k: KOption = 10, window: WindowOption = None, probes: ProbesOption = None,
    hybrid: Annotated[bool, typer.Option("--hybrid", help="Print the BM25 and PinText requests a hybrid search "
                                                          "sends (fused in the client).")] = False,
    fusion: FusionOption = None, fusion_weight: FusionWeightOption = None, depth: DepthOption = 100,
    template: Annotated[bool, typer.Option("--template", help="Print a call of the stored search template "
                                                               "instead of the full body.")] = False,
    model: ModelOption = None, index: IndexOption = DEFAULT_INDEX, url: UrlOption = None, user: UserOption = None,
    password: PasswordOption = None, ca_certs: CaCertsOption = None, insecure: InsecureOption = False,
) -> None:
    """Print the exact query DSL for a text, ready to paste into Dashboards Dev Tools (LSH config, window and
    probes from the index's `_meta` when the node answers)."""
    from pintext import queries

    conn = connection(model, index, url, user, password, ca_certs, insecure)
    read_index_settings_for_dsl(conn)
    vector = conn.encoder.encode([text])[0]
    asked_window, asked_probes = window, probes
    probes = conn.serving.probes_for(k, asked_probes)
    window = serving_window(conn, k, asked_window)
    if not vector.any():
        typer.echo(f"# no word of {text!r} is in the model's vocabulary: search falls back to BM25")
        typer.echo(queries.dev_tools_request(index, queries.bm25_body(text, k)))
        return
    tokens = conn.lsh.query_tokens(vector, probes=probes)[0]
    if hybrid:
        # As `hybrid_search` sends it: the PinText side with the index's window and probes for `size` hits.
        config = fusion_config(conn, fusion, fusion_weight)
        size = queries.fusion_depth(k, depth)
        deep_tokens = conn.lsh.query_tokens(vector, probes=conn.serving.probes_for(size, asked_probes))[0]
        requests = queries.hybrid_requests(text, deep_tokens, vector, k=k,
                                           window=conn.serving.window_for(size, asked_window), depth=depth)
        typer.echo(f"# hybrid: both requests, then {config.method} fusion in the client (PinText weight "
                   f"{config.weight:g}, rrf_k {config.rrf_k}), top {k}")
        typer.echo("\n\n".join(f"# {side}\n" + queries.dev_tools_request(index, body)
                                for side, body in requests.items()))
        return
    if template:
        params = queries.template_params(tokens, vector, k=k, window=window)
        body = {"id": queries.SEARCH_TEMPLATE_ID, "params": params}
        typer.echo(f"GET {index}/_search/template\n{json.dumps(body, indent=2)}")
        return
    body = queries.search_body(tokens, vector, k=k, window=window)
    typer.echo(queries.dev_tools_request(index, body))


def read_index_settings_for_dsl(conn: Connection) -> None:
    """Read the index's `_meta` for dsl; without a node (or index), say so and use MODEL/lsh.json or the defaults."""
    from opensearchpy.exceptions import ConnectionError as TransportConnectionError

    try:
        found = conn.index_meta()
    except TransportConnectionError:
        found = None
        conn.without_index()
    if found is None:
        typer.echo(f"note: index {conn.index!r} not found or node unreachable: printing with "
                   f"{'MODEL/lsh.json' if conn.model_lsh else 'the default LSH'} and the default window", err=True)


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
    app.command("dsl")(reports_unreachable_node(dsl))
