"""CLI commands: serving — `index create|delete|info|promote`, `ingest`, `search`, `related`, `dsl`.

Every command takes `--model` (default $PINTEXT_MODEL), `--index` (the name users search: an alias over one index
per model, `pintext.serving.rollout`), `--engine auto|opensearch|elasticsearch|local` (auto: the engine answering
at `--url`, else the one whose URL variable is set, else the managed OpenSearch node), `--url`, `--user/--password`,
`--ca-certs`/`--insecure`, and `--local-dir` for the local engine. The commands talk to the engine only through
the serving protocol (`pintext.serving.base.Engine`): there is no engine-specific code here. Heavy modules
(engine clients, the encoder) are imported inside the commands; torch never is.

An index's token family and its default window/probes live in its `_meta` (tuned on the corpus when the index is
created with one: `index create --pins FILE`, or `ingest FILE` creating it). `search`, `related` and `dsl` only
read: no command writes into the model folder. A `MODEL/lsh.json` a user wrote is honoured: a new index keeps its
tables/bits (only probes and window are tuned) and an index built with another config is refused.
"""

from __future__ import annotations

import dataclasses
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

from pintext.cli.disk import reports_disk_errors
from pintext.cli.errors import FAILURE, USAGE, fail
from pintext.constants import DEFAULT_INGEST_WORKERS

DEFAULT_INDEX = "pins"
DEFAULT_LOCAL_DIR = Path("pintext-local-index")


class EngineName(str, Enum):
    auto = "auto"
    opensearch = "opensearch"
    elasticsearch = "elasticsearch"
    local = "local"


ModelOption = Annotated[Optional[Path], typer.Option("--model", envvar="PINTEXT_MODEL",
                                                     help="Model folder (with runtime/); default $PINTEXT_MODEL.")]
IndexOption = Annotated[str, typer.Option("--index", help="Index name users search (an alias over one index per "
                                                          "model).")]
UrlOption = Annotated[Optional[str], typer.Option("--url", help="Engine URL (OpenSearch: a comma-separated list "
                                                                "of a cluster's nodes fails over between them); "
                                                                "default $OPENSEARCH_URL (or $ELASTICSEARCH_URL), "
                                                                "else the managed local node.")]
UserOption = Annotated[Optional[str], typer.Option("--user", envvar=["OPENSEARCH_USER", "ELASTICSEARCH_USER"],
                                                   help="Basic-auth user; default $OPENSEARCH_USER "
                                                        "(else $ELASTICSEARCH_USER).")]
PasswordOption = Annotated[Optional[str], typer.Option("--password", envvar=["OPENSEARCH_PASSWORD",
                                                                             "ELASTICSEARCH_PASSWORD"],
                                                       show_envvar=False, help="Basic-auth password; default "
                                                       "$OPENSEARCH_PASSWORD (else $ELASTICSEARCH_PASSWORD).")]
CaCertsOption = Annotated[Optional[Path], typer.Option("--ca-certs", exists=True, dir_okay=False,
                                                       help="CA bundle (PEM) to verify the node's TLS certificate "
                                                            "(`pintext opensearch up --secure` prints its CA).")]
InsecureOption = Annotated[bool, typer.Option("--insecure", help="Do not verify TLS certificates (warns once).")]
EngineOption = Annotated[EngineName, typer.Option("--engine", "--backend", envvar="PINTEXT_ENGINE",
                                                  help="Serving engine: auto (ask the node at --url), opensearch, "
                                                       "elasticsearch, or the local on-disk index.")]
LocalDirOption = Annotated[Path, typer.Option("--local-dir", help="Folder of the local engine's indices.")]
KOption = Annotated[int, typer.Option("--k", min=1, help="Hits to return.")]
WindowOption = Annotated[Optional[int], typer.Option("--window", min=1, help="First-stage hits rescored by exact "
                                                     "cosine; default: the index's tuned window.")]
ProbesOption = Annotated[Optional[int], typer.Option("--probes", min=0, help="Extra multi-probe buckets per LSH "
                                                     "table; default: the index's tuned probes.")]
FilterOption = Annotated[Optional[list[str]], typer.Option("--filter", help="FIELD=VALUE on a keyword field (id, "
                                                           "board, annotations, link); repeat: OR within a field, "
                                                           "AND across fields. Applied in the first stage.")]
FilterJsonOption = Annotated[Optional[list[str]], typer.Option("--filter-json", help="A raw query DSL filter "
                                                               "clause (JSON), AND-ed with the others.")]
TargetRecallOption = Annotated[float, typer.Option("--target-recall", min=0.0, max=1.0,
                                                   help="When the index is created: tune LSH for this recall@10 "
                                                        "vs exact cosine.")]
NoTuneOption = Annotated[bool, typer.Option("--no-tune", help="When the index is created: skip tuning, use "
                                                              "the default LSH (64x8 bits, window 500).")]
TokensOption = Annotated[Optional[str], typer.Option(
    "--tokens", help="When the index is created: its token family, lsh (random hyperplanes), kmeans (learned "
                     "centroids, fitted on the corpus) or auto (tune both, keep the cheaper at the target recall); "
                     "default lsh.")]
TuneQueriesOption = Annotated[Optional[Path], typer.Option("--tune-queries", exists=True, dir_okay=False,
                                                           help="Query texts to tune on (one JSON line each); "
                                                                "default: sampled pins.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
ExplainOption = Annotated[bool, typer.Option("--explain", help="Show matching tokens and first-stage/final scores.")]
TimeoutOption = Annotated[Optional[float], typer.Option(
    "--timeout", envvar="PINTEXT_TIMEOUT", min=0.1,
    help="Seconds to wait for the engine's answer to each request, and how long a write keeps re-sending to a "
         "node that does not answer before the command gives up (default 30 s per request, 5 re-sends).")]


@dataclass(frozen=True)
class Target:
    """Where serving commands go: an engine (by name, or auto) and how to reach it."""

    engine: EngineName = EngineName.auto
    url: str | None = None
    user: str | None = None
    password: str | None = None
    ca_certs: Path | None = None
    insecure: bool = False
    local_dir: Path = DEFAULT_LOCAL_DIR
    timeout: float | None = None  # --timeout

    def options(self) -> Any:
        from pintext.serving.engines import EngineOptions

        return EngineOptions(self.url, self.user, self.password, self.ca_certs, self.insecure, self.local_dir,
                             timeout=self.timeout)


class Connection:
    """The options every serving command shares, resolved lazily into a model, a token family and an engine."""

    def __init__(self, model: Path | None, index: str, target: Target) -> None:
        self.model_dir = model
        self.name = index
        self.target = target
        self._encoder: Any = None
        self._lsh: Any = None
        self._engine: Any = None
        self._index_meta: dict | None = None
        self._index_meta_read = False
        self._write_index: str | None = None
        self.engine_checked = False  # checked against the node already (dsl): open the engine without asking again

    # ---- the model -----------------------------------------------------------------------------------------

    @property
    def encoder(self) -> Any:
        if self._encoder is None:
            if self.model_dir is None:
                fail("no model: pass --model MODEL or set PINTEXT_MODEL", USAGE)
            from pintext.encoder import Encoder

            try:
                self._encoder = Encoder.load(self.model_dir)
            except (OSError, ValueError) as error:
                fail(f"cannot load the model: {error}", USAGE)
            except Exception as error:  # noqa: BLE001 - `tokenizers` raises a bare Exception on a broken file
                fail(f"cannot load the model: {self.model_dir}/runtime/tokenizer.json: {error}", USAGE)
        return self._encoder

    @property
    def model_lsh(self) -> Any:
        """The LSH config the user set in MODEL/lsh.json, or None."""
        from pintext.ingest.indexer import read_model_lsh

        try:
            return read_model_lsh(self.model_dir, self.encoder.dim)
        except ValueError as error:
            fail(str(error), USAGE)

    # ---- the engine and the index --------------------------------------------------------------------------

    def use_target(self, target: Target) -> None:
        """Go on with another engine (dsl without a node answering: print for OpenSearch)."""
        self.target, self._engine, self._write_index = target, None, None
        self.forget_index_meta()

    @property
    def engine(self) -> Any:
        if self._engine is None:
            from pintext.serving.engines import (
                EngineAccessError,
                EngineError,
                EngineUnreachableError,
                open_engine,
                redact_options,
            )

            options = self.target.options()
            try:
                self._engine = open_engine(self.target.engine.value, options, check=not self.engine_checked)
            except (EngineUnreachableError, EngineAccessError) as error:
                fail(redact_options(str(error), options), FAILURE)
            except (EngineError, ValueError) as error:
                fail(redact_options(str(error), options), USAGE)
        return self._engine

    @property
    def write_index(self) -> str:
        """The concrete index ingest writes for this model (`pintext.serving.rollout.write_target`)."""
        if self._write_index is None:
            from pintext.serving.rollout import write_target

            self._write_index = write_target(self.engine, self.name, self.encoder.fingerprint)
        return self._write_index

    def index_meta(self, index: str | None = None) -> dict | None:
        """The `_meta` of the index this model writes (or of `index`); None when there is none yet."""
        if index is not None:
            return self.engine.meta(index) if self.engine.exists(index) else None
        if not self._index_meta_read:
            self._index_meta = self.index_meta(self.write_index)
            self._index_meta_read = True
        return self._index_meta

    def forget_index_meta(self) -> None:
        """The index was deleted: read its `_meta` afresh next time."""
        self._index_meta, self._index_meta_read, self._lsh = None, False, None

    def adopt(self, meta: dict) -> None:
        """Use the `_meta` of an index just created (its token family, its window and probes)."""
        from pintext.tokens import family_from_dict

        self._index_meta, self._index_meta_read = meta, True
        self._lsh = family_from_dict(meta["lsh"])

    @property
    def lsh(self) -> Any:
        """The index's token family; before an index exists, MODEL/lsh.json or the default."""
        if self._lsh is None:
            from pintext.ingest.indexer import default_lsh
            from pintext.tokens import family_from_dict

            meta = self.index_meta() or {}
            if meta.get("lsh"):
                try:
                    self._lsh = family_from_dict(meta["lsh"])
                except ValueError as error:
                    fail(f"index {self.write_index}: {error}", USAGE)
            else:
                self._lsh = self.model_lsh or default_lsh(self.encoder.dim)
        return self._lsh

    @property
    def serving(self) -> Any:
        """The index's default window and probes (the untuned defaults before an index exists)."""
        from pintext.serving.meta import ServingDefaults

        return ServingDefaults.from_meta(self.index_meta() or {})

    def expected_meta(self, family: Any = None) -> dict:
        """What an index must match: this model, and the LSH config MODEL/lsh.json sets (else `family`)."""
        from pintext.serving.meta import index_meta

        return index_meta(self.encoder.fingerprint, self.encoder.dim, self.model_lsh or family or self.lsh)

    def check_written_index(self) -> None:
        """Refuse to write into an index built for another model."""
        from pintext.serving.meta import IndexMismatchError, check_meta

        try:
            check_meta(self.write_index, self.index_meta() or {}, self.expected_meta(), str(self.model_dir))
        except IndexMismatchError as error:
            fail(str(error), USAGE)

    def searcher(self) -> Any:
        """A searcher over the alias users search, refusing an index built for another model."""
        from pintext.serving.base import IndexNotFoundError
        from pintext.serving.meta import IndexMismatchError
        from pintext.serving.rollout import version_name
        from pintext.serving.searcher import Searcher

        try:
            searcher = Searcher.for_index(self.engine, self.name)
        except IndexNotFoundError:
            fail(f"index {self.name!r} does not exist in {self.engine.describe()}: create it with "
                 "`pintext index create` or `pintext ingest FILE`", USAGE)
        except IndexMismatchError as error:
            fail(str(error), USAGE)
        try:
            searcher.check(self.expected_meta(searcher.family), str(self.model_dir))
        except IndexMismatchError as error:
            waiting = version_name(self.name, self.encoder.fingerprint)
            if waiting != self.name and self.engine.exists(waiting):
                fail(f"{error} This model's index {waiting!r} exists but does not serve yet: "
                     f"pintext index promote --index {self.name} --model {self.model_dir}", USAGE)
            fail(str(error), USAGE)
        return searcher


@dataclass(frozen=True)
class Tuning:
    """How to choose the LSH settings of an index about to be created."""

    pins_file: Path | None = None  # the corpus; None: no tuning (the defaults)
    target_recall: float = 0.95
    enabled: bool = True
    queries_file: Path | None = None
    family: str | None = None  # lsh | kmeans | auto (pintext.token_tune.FAMILY_CHOICES); None: lsh


def open_client(url: str | None, user: str | None, password: str | None, ca_certs: Path | None, insecure: bool,
                ping: bool = False, where: str = "", advice: str = "") -> Any:
    """An opensearch-py client for the CLI's connection options (eval-retrieval talks to OpenSearch directly);
    any failure to reach the node (when `ping`, the node is asked for its info first) is one clear error line."""
    from pintext.serving.engines import EngineOptions, access_problem, warn_if_insecure
    from pintext.serving.opensearch_client import connect

    warn_if_insecure(EngineOptions(url=url, insecure=insecure))
    try:
        client = connect(url=url, user=user, password=password, verify_certs=not insecure,
                         ca_certs=str(ca_certs) if ca_certs else None)
        if ping:
            client.info()
    except Exception as error:  # noqa: BLE001 - any failure to reach the node is reported the same way
        from pintext.serving.engines import redact

        problem = access_problem(error, url or os.environ.get("OPENSEARCH_URL"), user, password)
        if problem:
            fail(problem, FAILURE)
        fail(f"cannot reach OpenSearch{where}: {redact(str(error), url, password)}{advice}", FAILURE)
    return client


def require_index_name(index: str, option: str = "--index") -> None:
    """One error line (exit 2) for a name the engines refuse (or that a wildcard would widen), before any request."""
    from pintext.serving.engines import index_name_problem

    problem = index_name_problem(index)
    if problem:
        fail(f"{option} {index!r} is not a valid index name: it {problem}", USAGE)


def connection(model: Path | None, index: str, url: str | None, user: str | None, password: str | None,
               ca_certs: Path | None, insecure: bool, engine: EngineName = EngineName.auto,
               local_dir: Path = DEFAULT_LOCAL_DIR, timeout: float | None = None) -> Connection:
    require_index_name(index)
    return Connection(model, index, Target(engine, url, user, password, ca_certs, insecure, local_dir, timeout))


# ---- index management ------------------------------------------------------------------------------------------


def ensure_index(conn: Connection, shards: int = 1, replicas: int | None = None, tuning: Tuning = Tuning()) -> bool:
    """Create this model's index unless it exists (refusing a mismatched one); the first version of a name gets
    the alias at once. A new index gets its LSH settings tuned on `tuning.pins_file` (see `creation_meta`).
    `shards` and `replicas` apply only when the index is created here; no `replicas`: the engine's default (1 on
    a cluster with another data node to hold them, else 0). Returns True when it created the index."""
    from pintext.serving.rollout import alias_if_first

    engine, index = conn.engine, conn.write_index
    if conn.index_meta() is not None and awaits_tuning(conn, tuning):
        pending_family = (conn.index_meta() or {}).get("tuning", {}).get("family")
        tuning = dataclasses.replace(tuning, family=tuning.family or pending_family)
        shards, replicas = drop_empty_untuned_index(conn)
    elif conn.index_meta() is not None:
        conn.check_written_index()
        alias_if_first(engine, conn.name, index)
        return False
    meta = creation_meta(conn, tuning)
    replicas = engine.default_replicas() if replicas is None else replicas
    created = True
    try:
        notes = engine.create(index, conn.encoder.dim, meta, shards=shards, replicas=replicas) or []
    except Exception:  # noqa: BLE001 - each engine's client has its own "already exists" error
        if not engine.exists(index):
            raise
        created, notes = False, [f"{index} was created at the same moment by another run: using it"]
    for note in notes:
        typer.echo(f"note: {note}", err=True)
    alias_if_first(engine, conn.name, index)
    # What the index holds, not what this run sent: a concurrent run may have created it first (with LSH tuned
    # on its own file), and pins must be hashed with the index's own token family.
    conn.forget_index_meta()
    conn.check_written_index()
    return created


NO_CORPUS_YET = "no corpus given (index create without --pins)"


def awaits_tuning(conn: Connection, tuning: Tuning) -> bool:
    """An index that `index create` made without a corpus, still empty, for this model, when ingest brings the
    corpus and tuning is on: the first ingest tunes it (the usual `index create` then `ingest FILE` flow)."""
    meta = conn.index_meta() or {}
    if not (tuning.enabled and tuning.pins_file is not None and (meta.get("tuning") or {}).get("pending")):
        return False
    if meta.get("model_fingerprint") != conn.encoder.fingerprint:
        return False  # another model's index: check_written_index refuses it with the full explanation
    conn.engine.refresh(conn.write_index)
    return conn.engine.count(conn.write_index) == 0


def drop_empty_untuned_index(conn: Connection) -> tuple[int, int]:
    """Delete the empty, untuned index so it can be made again with tuned settings; returns its shards/replicas.
    (Its `_meta` cannot be updated in place: a mapping update on an index with a knn_vector field fails.)"""
    layout = conn.engine.layout(conn.write_index)
    conn.engine.delete(conn.write_index)
    conn.forget_index_meta()
    typer.echo(f"note: {conn.write_index} was created without a corpus and is empty: re-created with LSH tuned "
               "on this file", err=True)
    return layout.shards or 1, layout.replicas or 0


def token_family(name: str | None) -> str | None:
    """--tokens checked (one error line naming the choices); None when not given."""
    from pintext.token_tune import check_family_choice

    try:
        return None if name is None else check_family_choice(name)
    except ValueError as error:
        fail(f"--tokens: {error}", USAGE)


def describe_tokens(family: Any) -> str:
    from pintext.tokens import describe

    return describe(family)


def creation_meta(conn: Connection, tuning: Tuning) -> dict:
    """The `_meta` of a new index: this model, and LSH settings tuned on the corpus when one is given.

    MODEL/lsh.json (if the user wrote one) fixes tables and bits; tuning then picks only probes and window.
    Without a corpus, or with --no-tune, the index gets that config (or the default) and the default window.
    """
    from pintext.ingest.indexer import default_lsh
    from pintext.serving.meta import ServingDefaults, index_meta
    from pintext.token_tune import LSH

    encoder, fixed = conn.encoder, conn.model_lsh
    if tuning.family not in (None, LSH) and not tuning.enabled:
        fail(f"--tokens {tuning.family} is tuned (and fitted) on the corpus: drop --no-tune", USAGE)
    if not tuning.enabled or tuning.pins_file is None:
        reason = "--no-tune" if not tuning.enabled else NO_CORPUS_YET
    else:
        result, reason = tune_on_corpus(conn, dataclasses.replace(tuning, family=tuning.family or LSH), fixed)
        if result is not None:
            serving = ServingDefaults(window=result.window, probes=result.probes, window_at_100=result.deep_window,
                                      probes_at_100=result.deep_probes)
            return index_meta(encoder.fingerprint, encoder.dim, result.lsh, serving, result.to_meta())
    lsh = fixed or default_lsh(encoder.dim)
    record = {"tuned": False, "reason": reason, "pending": reason == NO_CORPUS_YET}
    if record["pending"] and tuning.family:
        record["family"] = tuning.family  # what the first ingest tunes when it brings the corpus
    return index_meta(encoder.fingerprint, encoder.dim, lsh, ServingDefaults(), record)


def tune_on_corpus(conn: Connection, tuning: Tuning, fixed: Any) -> tuple[Any, str]:
    """Tune LSH on a sample of the pins file (and the given queries), saying what it chose on stderr.

    Returns (result, "") or, when the corpus cannot be tuned on (too few pins with a known word), (None, why).
    """
    from pintext.ingest.indexer import default_lsh, sample_pins
    from pintext.pin_vectors import pin_vectors
    from pintext.serving.meta import ServingDefaults
    from pintext.token_tune import describe_choice, sample_size, tune_tokens

    started = time.perf_counter()
    family = tuning.family or "lsh"
    sample, total = sample_pins(tuning.pins_file, sample_size(family))
    queries = conn.encoder.encode(read_queries(tuning.queries_file)) if tuning.queries_file else None
    vectors = pin_vectors(conn.encoder, sample)

    def tune(chosen: str) -> Any:
        return tune_tokens(vectors, chosen, tuning.target_recall, queries=queries,
                           fixed=(fixed.tables, fixed.bits) if fixed else None, seed=fixed.seed if fixed else 0,
                           total_pins=total)

    chosen = family
    try:
        try:
            result = tune(family)
        except ValueError as error:
            if family == "lsh" or fixed:
                raise
            # Learned centroids cannot be fitted on this corpus: tune random hyperplanes instead, and say why.
            result = tune("lsh")
            chosen = f"lsh, not {family}: {error}"
    except ValueError as error:
        lsh = fixed or default_lsh(conn.encoder.dim)
        typer.echo(f"note: {'--tokens ' + family + ': no centroids fitted and ' if family != 'lsh' else ''}LSH not "
                   f"tuned on {tuning.pins_file} ({error}): untuned random hyperplanes ({lsh.tables} tables x "
                   f"{lsh.bits} bits, window {ServingDefaults().window})", err=True)
        return None, f"not tunable: {error}"
    if fixed:
        typer.echo(f"note: {conn.model_dir}/lsh.json fixes {fixed.tables} tables x {fixed.bits} bits, so only probes "
                   f"and window are tuned (delete it to let tuning choose tables and bits too)", err=True)
    verdict = "reached" if result.reached else "NOT reached (best recall kept)"
    asked = "sampled pins as queries" if result.query_source == "pins" else "given queries"
    if chosen == "auto":
        chosen = f"auto: {'kmeans' if hasattr(result.lsh, 'centroids') else 'lsh'}"
    typer.echo(f"tuned tokens ({chosen}) on {result.tuned_on:,} of {result.corpus:,} pins, {result.queries} "
               f"{asked} in {time.perf_counter() - started:.1f}s: {describe_choice(result)}; recall@10 vs exact "
               f"{result.recall:.3f}, target "
               f"{tuning.target_recall} {verdict}"
               + (f"; for 100 hits probes {result.deep_probes}, window {result.deep_window} (recall@100 "
                  f"{result.deep_recall:.3f})" if result.deep_window else ""), err=True)
    return result, ""


ShardsOption = Annotated[int, typer.Option("--shards", min=1, help="Primary shards (fixed once the index exists).")]
ReplicasOption = Annotated[Optional[int], typer.Option(
    "--replicas", min=0, help="Replicas of each shard; > 0 needs that many more data nodes to go green. Default: 1 "
                              "on a cluster of 2 or more data nodes, 0 on a single node.")]


def index_create(model: ModelOption = None, index: IndexOption = DEFAULT_INDEX, url: UrlOption = None,
                 user: UserOption = None, password: PasswordOption = None, ca_certs: CaCertsOption = None,
                 insecure: InsecureOption = False, engine: EngineOption = EngineName.auto,
                 local_dir: LocalDirOption = DEFAULT_LOCAL_DIR, shards: ShardsOption = 1,
                 replicas: ReplicasOption = None, timeout: TimeoutOption = None,
                 pins: Annotated[Optional[Path], typer.Option("--pins", exists=True, dir_okay=False,
                                                              help="The corpus (pins.jsonl): tune LSH on it.")]
                 = None,
                 target_recall: TargetRecallOption = 0.95, no_tune: NoTuneOption = False,
                 tune_queries: TuneQueriesOption = None, tokens: TokensOption = None,
                 ) -> None:
    """Create this model's index behind the alias --index (the alias moves to it at once only when it is the
    name's first index; later ones wait for `pintext index promote`), its LSH tuned on --pins FILE."""
    conn = connection(model, index, url, user, password, ca_certs, insecure, engine, local_dir, timeout)
    created = ensure_index(conn, shards=shards, replicas=replicas,
                           tuning=Tuning(pins, target_recall, not no_tune, tune_queries,
                                         token_family(tokens)))
    if created and pins is None and not no_tune:
        typer.echo("note: no --pins FILE, so LSH is not tuned yet (default 64x8 bits, window 500); the first "
                   "`pintext ingest FILE` into this empty index tunes it on FILE", err=True)
    layout = conn.engine.layout(conn.write_index)
    shape = f", {layout.shards} shards x {layout.replicas} replicas" if layout.shards is not None else ""
    asked = (shards, layout.replicas if replicas is None else replicas)
    if not created and layout.shards is not None and (layout.shards, layout.replicas) != asked:
        typer.echo(f"note: {conn.write_index} already exists; --shards/--replicas were not applied", err=True)
    serving = conn.engine.alias_target(index)
    route = (f"serving as {index!r}" if serving == conn.write_index and index != serving
             else "the name's own index" if serving == index
             else f"not serving yet ({index!r} serves {serving!r}): `pintext index promote --index {index}`")
    typer.echo(f"{'created' if created else 'exists, same model'}: {conn.write_index}, {route} "
               f"(dim {conn.encoder.dim}, tokens {describe_tokens(conn.lsh)}, probes {conn.serving.probes}, "
               f"window {conn.serving.window}, model {conn.encoder.fingerprint[:12]}{shape})")


def index_delete(index: IndexOption = DEFAULT_INDEX, url: UrlOption = None, user: UserOption = None,
                 password: PasswordOption = None, ca_certs: CaCertsOption = None, insecure: InsecureOption = False,
                 engine: EngineOption = EngineName.auto, local_dir: LocalDirOption = DEFAULT_LOCAL_DIR,
                 version: Annotated[Optional[str], typer.Option("--version", help="Delete only this version "
                                                                "(not the one serving): its index, or the model id "
                                                                "PinText prints (first 12 hex of the fingerprint, "
                                                                "or all of it).")] = None,
                 force: Annotated[bool, typer.Option("--force", help="Also delete an index PinText did not make "
                                                     "(no PinText _meta).")] = False) -> None:
    """Delete the name: every index behind the alias (or only --version); no error if there is none. An index
    PinText did not make is refused unless --force."""
    from pintext.serving.rollout import version_of, versions

    conn = connection(None, index, url, user, password, ca_certs, insecure, engine, local_dir)
    serving = conn.engine.alias_target(index)
    if version is not None:
        target = version_of(conn.engine, index, version)
        if target is None:
            typer.echo(f"absent: {version}")
            return
        if target == serving and target != index:
            fail(f"{target!r} serves {index!r}: promote another version first, or delete the whole name", USAGE)
        refuse_foreign_index(conn.engine, [target], force)
        typer.echo(f"{'deleted' if conn.engine.delete(target) else 'absent'}: {target}")
        return
    doomed = [index] if serving == index else versions(conn.engine, index)
    if not doomed:
        typer.echo(f"absent: {index}")
    refuse_foreign_index(conn.engine, doomed, force)
    for name in doomed:
        conn.engine.delete(name)
        typer.echo(f"deleted: {name}")


def refuse_foreign_index(engine: Any, indexes: list[str], force: bool) -> None:
    """One line (exit 2), before anything is deleted, when one of `indexes` was not made by PinText, unless
    --force."""
    from pintext.serving.meta import made_by_pintext, not_made_by_pintext

    foreign = [name for name in indexes if not made_by_pintext(engine.meta(name))]
    if foreign and not force:
        fail(f"{not_made_by_pintext(', '.join(foreign))}: pass --force to delete it anyway", USAGE)


def index_info(index: IndexOption = DEFAULT_INDEX, url: UrlOption = None, user: UserOption = None,
               password: PasswordOption = None, ca_certs: CaCertsOption = None, insecure: InsecureOption = False,
               engine: EngineOption = EngineName.auto, local_dir: LocalDirOption = DEFAULT_LOCAL_DIR,
               timeout: TimeoutOption = None) -> None:
    """Print the alias, which index serves, and every version (model, docs, shards, `_meta`) as JSON; for the
    serving version also `shard_copies`: each shard copy's role (primary or replica), node and state."""
    from pintext.serving.rollout import describe

    conn = connection(None, index, url, user, password, ca_certs, insecure, engine, local_dir, timeout)
    info = describe(conn.engine, index)
    serving = next((row for row in info["versions"] if row["serving"]), None)
    if serving is None and not info["versions"]:
        fail(f"index {index!r} does not exist in {conn.engine.describe()}", USAGE)
    # The serving version's figures at the top level, as `index info` printed them before versioning.
    head = ({"index": serving["index"], "docs": serving["docs"], "shards": serving["shards"],
             "replicas": serving["replicas"], "health": serving["health"],
             "shard_copies": conn.engine.shards(serving["index"]), "meta": serving["meta"]}
            if serving else {"index": None})
    typer.echo(json.dumps({"engine": conn.engine.name, **head, **info}, indent=2))


def index_promote(model: ModelOption = None, index: IndexOption = DEFAULT_INDEX, url: UrlOption = None,
                  user: UserOption = None, password: PasswordOption = None, ca_certs: CaCertsOption = None,
                  insecure: InsecureOption = False, engine: EngineOption = EngineName.auto,
                  local_dir: LocalDirOption = DEFAULT_LOCAL_DIR,
                  delete_old: Annotated[bool, typer.Option("--delete-old", help="Delete the other versions once "
                                                           "the alias has moved.")] = False,
                  allow_empty: Annotated[bool, typer.Option("--allow-empty", help="Promote an index that holds "
                                                            "no pins yet.")] = False) -> None:
    """Serve this model's index: swap the alias --index to it in one atomic step (searches never fail or see an
    empty page), keeping the old version unless --delete-old."""
    from pintext.serving.base import IndexNotFoundError
    from pintext.serving.rollout import promote, version_name

    conn = connection(model, index, url, user, password, ca_certs, insecure, engine, local_dir)
    target = version_name(index, conn.encoder.fingerprint)
    if conn.engine.exists(target):
        conn.engine.refresh(target)
        if not allow_empty and conn.engine.count(target) == 0:
            fail(f"{target!r} holds no pins yet: ingest first (or pass --allow-empty)", USAGE)
    try:
        done = promote(conn.engine, index, conn.encoder.fingerprint, delete_old=delete_old)
    except (IndexNotFoundError, ValueError) as error:
        fail(str(error), USAGE)
    was = f" (was {done.previous})" if done.previous else ""
    typer.echo(f"promoted: {index} -> {done.serving}{was}"
               + (f"; deleted {', '.join(done.deleted)}" if done.deleted else ""))


# ---- ingest ------------------------------------------------------------------------------------------------------


def count_lines(path: Path) -> int:
    """Lines in a JSONL(.gz) file, for the progress bar's total (one fast pass, constant memory)."""
    from pintext.ingest.readers import count_lines as count

    return count(path)


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
    tokens: TokensOption = None,
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

    from pintext.atomic import DiskWriteError, check_writable
    from pintext.ingest.deadletter import DeadLetter
    from pintext.ingest.indexer import Checkpoint, EngineSink, Ingestor, default_state
    from pintext.schemas import LocatedRecordError

    conn = connection(model, index, url, user, password, ca_certs, insecure, engine, local_dir, timeout)
    # Per (file, name users search) in the state folder, never beside the input; the checkpoint records the
    # concrete index, so --resume refuses another model's run.
    state = default_state(pins_file, index)
    dead_letter_path, checkpoint_path = dead_letter or state.dead_letter, checkpoint or state.checkpoint
    for folder in sorted({dead_letter_path.parent, checkpoint_path.parent}):
        check_writable(folder, "ingest state in")  # a full or read-only state folder: one line, no index made
    ensure_index(conn, tuning=Tuning(pins_file, target_recall, not no_tune, tune_queries, token_family(tokens)))
    written = conn.write_index
    where = f"{conn.engine.describe()}: {written}"  # what the checkpoint is for: --resume refuses another target
    typer.echo(f"dead letter: {dead_letter_path}; checkpoint: {checkpoint_path}", err=True)
    stderr = Console(stderr=True)
    total_lines = count_lines(pins_file)
    progress = Progress(TextColumn("[bold]ingest[/]"), BarColumn(), MofNCompleteColumn(), TextColumn("lines"),
                        TextColumn("{task.fields[rate]:,.0f} docs/s"), TimeElapsedColumn(), console=stderr,
                        disable=json_output or not stderr.is_terminal and not os.environ.get("PINTEXT_PROGRESS"))
    # The default dead letter belongs to this (file, index) alone: a fresh run starts it afresh (under the lock,
    # so a concurrent run of the same pair never loses the other's entries), so re-running never lists a line
    # twice. A --dead-letter path may be shared, so it is only ever appended to.
    with (ingest_lock(checkpoint_path, pins_file, index), progress,
          DeadLetter(dead_letter_path, restart=dead_letter is None and not resume) as rejected):
        task = progress.add_task("ingest", total=total_lines, rate=0.0)
        ingestor = Ingestor(
            conn.encoder, conn.lsh, EngineSink(conn.engine, written), rejected,
            Checkpoint(checkpoint_path, str(pins_file.resolve()), where),
            batch_size=batch, workers=workers, strict=strict,
            on_batch=lambda report: progress.update(task, completed=report.last_line,
                                                    rate=report.docs_per_second),
        )
        try:
            report = ingestor.run(pins_file, resume=resume)
        except DiskWriteError as error:
            done = ingestor.checkpoint.read()
            fail(f"{error}; lines up to {done:,} are indexed (checkpoint {checkpoint_path}): make room and run again "
                 "with --resume", USAGE if error.usage_fault else FAILURE)
        except LocatedRecordError as error:
            fail(f"{error} (--strict: nothing after this line was indexed; fix it or drop --strict)", USAGE)
        except ValueError as error:
            fail(str(error), USAGE)
        progress.update(task, completed=total_lines, rate=report.docs_per_second)
    conn.engine.refresh(written)
    summary = {**report.to_json(), "dead_letter": str(dead_letter_path), "checkpoint": str(checkpoint_path),
               "index": written, "alias": index, "serving": conn.engine.alias_target(index) == written}
    if json_output:
        typer.echo(json.dumps(summary))
    else:
        print_ingest_summary(summary)
    if summary["duplicate_ids"]:
        typer.echo(f"note: {summary['duplicate_ids']:,} line(s) of {pins_file} repeat an earlier pin id (first: "
                   f"{summary['first_duplicate']}); the index keeps the last line's pin", err=True)


def ingest_lock(checkpoint_path: Path, pins_file: Path, index: str) -> Any:
    """The lock of one (file, index) pair, beside its checkpoint; says so when another ingest holds it."""
    from pintext.ingest.indexer import IngestLock

    lock_path = checkpoint_path.with_name(checkpoint_path.name + ".lock")
    return IngestLock(lock_path, on_wait=lambda pid: typer.echo(
        f"waiting: pid {pid} is ingesting {pins_file} into {index!r} (lock {lock_path})", err=True))


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


# ---- search / related / dsl ------------------------------------------------------------------------------------


def read_queries(path: Path) -> list[str]:
    """One query per line (plain or `.gz`, read like every JSONL input: a BOM skipped, CRLF fine): a JSON string,
    or an object with `query` (or `text`). The first bad line stops the command with one error naming the file,
    line and field (a queries file is a short list its author fixes, not a stream to dead-letter)."""
    from pintext.ingest.readers import parse_json, raw_lines
    from pintext.schemas import LocatedRecordError, RecordError

    texts = []
    for line_no, raw in raw_lines(path):
        try:
            if isinstance(raw, RecordError):
                raise raw
            if raw.strip():
                texts.append(query_text(parse_json(raw)))
        except RecordError as error:
            fail(str(LocatedRecordError(str(path), line_no, error.field, error.reason, error.detail)), USAGE)
    if not texts:
        fail(f"{path}: no queries (every line is blank)", USAGE)
    return texts


def require_query_text(text: str) -> str:
    """The query text given on the command line; a blank one is one error line (as a blank line of --queries is)."""
    if not text.strip():
        fail(f"the query text {text!r} is blank: give at least one word", USAGE)
    return text


def query_text(value: Any) -> str:
    """The query of one parsed line of a queries file, or a RecordError on field 'query'."""
    from pintext.schemas import RecordError

    text = value.get("query") or value.get("text") if isinstance(value, dict) else value
    if text is None:
        raise RecordError("query", "missing", 'want a JSON string or {"query": "..."}')
    if not isinstance(text, str):
        raise RecordError("query", "not a string", f"got {type(text).__name__}")
    if not text.strip():
        raise RecordError("query", "empty")
    return text


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


def parse_filters(pairs: list[str] | None, raw: list[str] | None) -> Any:
    from pintext.serving.filters import FilterError, Filters

    try:
        return Filters.parse(pairs or [], raw or [])
    except FilterError as error:
        fail(str(error), USAGE)


def check_result_limits(k: int, window: int | None) -> None:
    """--k and --window within the engines' result window (before anything is asked of a node)."""
    from pintext.serving.engines import MAX_RESULT_WINDOW

    for option, value in (("--k", k), ("--window", window)):
        if value is not None and value > MAX_RESULT_WINDOW:
            fail(f"{option} ({value}) is above the engines' {MAX_RESULT_WINDOW} hits (index.max_result_window)",
                 USAGE)


def check_probes(searcher: Any, probes: int | None) -> None:
    """--probes within what the index's token family allows (LSH: its bits per table; centroids: their number
    less one)."""
    centroids = getattr(searcher.lsh, "max_probes", None)
    bits = getattr(searcher.lsh, "bits", None)
    if probes is not None and centroids is not None and probes > centroids:
        fail(f"--probes ({probes}) is above the index's {centroids + 1} centroids per codebook (use 0..{centroids})",
             USAGE)
    if probes is not None and bits is not None and probes > bits:
        fail(f"--probes ({probes}) is above the index's {bits} bits per LSH table (use 0..{bits})", USAGE)


def serving_window(searcher: Any, k: int, window: int | None) -> int:
    """The rescore window: --window, else the index's (widened to k); refuses k above an explicit window."""
    if window is not None and k > window:
        fail(f"--k ({k}) must not exceed --window ({window})", USAGE)
    return searcher.serving.window_for(k, window)


def vector_search(searcher: Any, vector: Any, k: int, window: int | None, probes: int | None,
                  exclude_ids: list[str], filters: Any, text: str | None = None, match: Any = None) -> Answer:
    """PinText served, with the index's window/probes unless given; with a query `text`, re-ranked by `match`'s
    exact-match signal (pintext.exact_match)."""
    from pintext.exact_match import ExactMatch, match_depth

    match = match or ExactMatch()
    window = serving_window(searcher, k, window)
    probes = searcher.serving.probes_for(k, probes)
    hits = searcher.search(vector, k=k, window=window, probes=probes, exclude_ids=exclude_ids, filters=filters,
                           text=text, match=match)
    if text is None or not match.on:
        return Answer(hits, "pintext", window=window, probes=probes)
    note = f"cosine + {match.weight:g} x share of query words matched, top {match_depth(k)} re-ranked"
    return Answer(hits, "pintext", note, window=max(window, match_depth(k)), probes=probes)


def bm25_fallback(searcher: Any, text: str, k: int, why: str, filters: Any,
                  exclude_ids: list[str] | None = None) -> Answer:
    """BM25 alone, for a query (or pin) with no known word; an engine without BM25 says so."""
    from pintext.serving.base import UnsupportedError

    try:
        hits = searcher.bm25_search(text, k=k, exclude_ids=list(exclude_ids or []), filters=filters)
    except UnsupportedError as error:
        return Answer([], "bm25_fallback", f"{why}; {error}")
    return Answer(hits, "bm25_fallback", bm25_noted(f"{why}: BM25 results", text))


def bm25_noted(note: str, text: str) -> str:
    """An answer's note, plus what `pintext.queries.bm25_note` says when BM25 searched a shortened text."""
    from pintext.queries import bm25_note

    shortened = bm25_note(text)
    return f"{note}; {shortened}" if shortened else note


def fusion_config(conn: Connection, method: FusionMethod | None, weight: float | None) -> Any:
    """The model's MODEL/hybrid.json (default RRF, equal weights), with --fusion/--fusion-weight on top."""
    from pintext.fusion import HYBRID_FILE, FusionConfig

    try:
        config = FusionConfig.load(conn.model_dir)
        return FusionConfig(method=method.value if method else config.method, rrf_k=config.rrf_k,
                            weight=config.weight if weight is None else weight)
    except (ValueError, TypeError, json.JSONDecodeError) as error:
        fail(f"{Path(str(conn.model_dir)) / HYBRID_FILE}: not a valid fusion config: {error}", USAGE)


def query_vector(conn: Connection, query: str) -> tuple[Any, bool]:
    """The query's vector, and whether any of its words is in the vocabulary.

    With hashed unseen words (pintext.encoder.HashedWords) a query of unknown words still has a vector, but BM25,
    with the index's own statistics, ranks a pure word match better than hashed directions do."""
    vector = conn.encoder.encode([query])[0]
    return vector, bool(vector.any()) and conn.encoder.coverage([query]).known_tokens > 0


def exact_match_config(conn: Connection, weight: float | None) -> Any:
    """The model's MODEL/match.json (plain cosine without one), or --match-weight."""
    from pintext.exact_match import MATCH_FILE, ExactMatch

    try:
        return ExactMatch.load(conn.model_dir) if weight is None else ExactMatch(weight)
    except (ValueError, TypeError, json.JSONDecodeError) as error:
        source = "--match-weight" if weight is not None else str(Path(str(conn.model_dir)) / MATCH_FILE)
        fail(f"{source}: not a valid exact-match weight: {error}", USAGE)


def answer_query(conn: Connection, searcher: Any, query: str, k: int, window: int | None, probes: int | None,
                 hybrid: bool, fusion: Any, depth: int, filters: Any, match: Any = None) -> Answer:
    """One query: PinText, or the hybrid of BM25 and PinText; BM25 alone when no word of it is known."""
    from pintext.exact_match import ExactMatch
    from pintext.queries import fusion_depth
    from pintext.serving.base import UnsupportedError

    vector, known = query_vector(conn, query)
    why = f"no word of {query!r} is in the model's vocabulary"
    if hybrid:
        serving_window(searcher, k, window)  # refuses --k above an explicit --window
        try:
            hits = searcher.hybrid_search(query, vector if known else None, k=k, window=window, fusion=fusion,
                                          depth=depth, probes=probes, filters=filters, match=match or ExactMatch())
        except UnsupportedError as error:
            fail(f"--hybrid needs BM25: {error}", USAGE)
        if not known:
            return Answer(hits, "bm25_fallback", bm25_noted(f"{why}: BM25 results", query))
        # The PinText side returns `size` hits, with the index's window and probes for that many.
        size = fusion_depth(k, depth)
        return Answer(hits, "hybrid", bm25_noted(f"fused by {fusion.method}, PinText weight {fusion.weight:g}", query),
                      window=searcher.hybrid_window(size, window), probes=searcher.serving.probes_for(size, probes))
    if not known:
        return bm25_fallback(searcher, query, k, why, filters)
    return vector_search(searcher, vector, k, window, probes, [], filters, query, match)


def show_hits(title: str, answer: Answer, explain: bool, took_ms: float) -> None:
    from rich.console import Console
    from rich.table import Table

    hits = answer.hits
    caption = f"{len(hits)} hits in {took_ms:.1f} ms" + (f"; {answer.note}" if answer.note else "")
    table = Table(title=shown(title), caption=shown(caption))
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
        row = [str(rank), shown(hit.id), shown(hit.title[:60]), shown(str(hit.source.get("board") or "")),
               f"{hit.score:.4f}"]
        if explain and fused:
            row += [_number(hit.cosine, ".4f"), _number(hit.pintext_rank, "d"), _number(hit.bm25_score, ".3f"),
                    _number(hit.bm25_rank, "d")]
        if explain:
            tokens = " ".join(hit.matched_tokens[:6]) + (" ..." if len(hit.matched_tokens) > 6 else "")
            row += [f"{hit.first_stage_score:g}" if hit.first_stage_score is not None else "-", shown(tokens)]
        table.add_row(*row)
    Console().print(table)


# Shown escaped in the hits table: control characters (a title's ESC sequences would drive the terminal, a newline
# would break the row) and the bidi overrides and isolates (they reorder what is printed after them).
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def shown(value: str) -> Any:
    """Text from the index or the user (a title, board, id, the query) as a table cell: literal, never Rich
    markup (`[/]` in a title would crash the table, `[link=...]` would make a link), controls escaped."""
    import unicodedata

    from rich.text import Text

    return Text("".join(ascii(char)[1:-1] if unicodedata.category(char) == "Cc" or char in _BIDI_CONTROLS else char
                        for char in value))


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
MatchWeightOption = Annotated[Optional[float], typer.Option(
    "--match-weight", min=0.0, max=10.0, help="Exact-match signal: a hit's score is its cosine + this x the share of "
    "the query's words its text holds (0: plain cosine); default MODEL/match.json, chosen by `pintext train`.")]


def search(
    text: Annotated[Optional[str], typer.Argument(help="Query text (or use --queries FILE).")] = None,
    k: KOption = 10, window: WindowOption = None, probes: ProbesOption = None,
    hybrid: HybridOption = False, fusion: FusionOption = None, fusion_weight: FusionWeightOption = None,
    depth: DepthOption = 100, match_weight: MatchWeightOption = None, filters: FilterOption = None,
    filter_json: FilterJsonOption = None, json_output: JsonOption = False, explain: ExplainOption = False,
    queries_file: Annotated[Optional[Path], typer.Option("--queries", exists=True, dir_okay=False,
                                                         help="One JSON line per query.")] = None,
    model: ModelOption = None, index: IndexOption = DEFAULT_INDEX, url: UrlOption = None, user: UserOption = None,
    password: PasswordOption = None, ca_certs: CaCertsOption = None, insecure: InsecureOption = False,
    engine: EngineOption = EngineName.auto, local_dir: LocalDirOption = DEFAULT_LOCAL_DIR,
    timeout: TimeoutOption = None,
    ubi_log: Annotated[Optional[Path], typer.Option("--ubi-log", dir_okay=False, help="Append each query served "
                                                    "and its hits (impressions) as UBI bulk ndjson.")] = None,
) -> None:
    """Search pins by text: token candidates (filtered), exact cosine rescore, then the exact-match signal
    (MODEL/match.json, --match-weight); --hybrid fuses BM25 in. A
    query with no known word gets BM25 results."""
    texts = read_queries(queries_file) if queries_file else ([require_query_text(text)] if text else [])
    if not texts:
        fail("give a query text or --queries FILE", USAGE)
    check_result_limits(k, window)
    chosen = parse_filters(filters, filter_json)
    conn = connection(model, index, url, user, password, ca_certs, insecure, engine, local_dir, timeout)
    searcher = conn.searcher()
    check_probes(searcher, probes)
    fused = fusion_config(conn, fusion, fusion_weight) if hybrid else None
    match = exact_match_config(conn, match_weight)
    for query in texts:
        started = time.perf_counter()
        answer = answer_query(conn, searcher, query, k, window, probes, hybrid, fused, depth, chosen, match)
        emit("query", query, answer, (time.perf_counter() - started) * 1000, json_output, explain)
        if ubi_log is not None:
            from pintext.ingest.ubi import log_answer

            log_answer(ubi_log, query, answer, searcher, k)


def related(
    pin_id: Annotated[str, typer.Argument(help="Id of a pin in the index.")],
    k: KOption = 10, window: WindowOption = None, probes: ProbesOption = None,
    filters: FilterOption = None, filter_json: FilterJsonOption = None,
    json_output: JsonOption = False, explain: ExplainOption = False,
    model: ModelOption = None, index: IndexOption = DEFAULT_INDEX, url: UrlOption = None, user: UserOption = None,
    password: PasswordOption = None, ca_certs: CaCertsOption = None, insecure: InsecureOption = False,
    engine: EngineOption = EngineName.auto, local_dir: LocalDirOption = DEFAULT_LOCAL_DIR,
) -> None:
    """Pins related to a stored pin: nearest by its own vector, itself excluded (BM25 on its text when it was
    indexed without a vector)."""
    from pintext.schemas import pin_text
    from pintext.serving.base import PinNotFoundError

    check_result_limits(k, window)
    chosen = parse_filters(filters, filter_json)
    conn = connection(model, index, url, user, password, ca_certs, insecure, engine, local_dir)
    searcher = conn.searcher()
    check_probes(searcher, probes)
    started = time.perf_counter()
    try:
        doc, vector = searcher.engine.get(searcher.index, pin_id)
    except PinNotFoundError as error:
        fail(str(error), USAGE)
    if vector is None:
        answer = bm25_fallback(searcher, pin_text(doc), k, f"pin {pin_id!r} has no vector (no known word)", chosen,
                               [pin_id])
    else:
        answer = vector_search(searcher, vector, k, window, probes, [pin_id], chosen)
    emit("related", pin_id, answer, (time.perf_counter() - started) * 1000, json_output, explain)


def dsl(
    text: Annotated[str, typer.Argument(help="Query text.")],
    k: KOption = 10, window: WindowOption = None, probes: ProbesOption = None,
    hybrid: Annotated[bool, typer.Option("--hybrid", help="Print the BM25 and PinText requests a hybrid search "
                                                          "sends (fused in the client).")] = False,
    fusion: FusionOption = None, fusion_weight: FusionWeightOption = None, depth: DepthOption = 100,
    filters: FilterOption = None, filter_json: FilterJsonOption = None,
    template: Annotated[bool, typer.Option("--template", help="OpenSearch: print a call of the stored search "
                                                               "template instead of the full body.")] = False,
    model: ModelOption = None, index: IndexOption = DEFAULT_INDEX, url: UrlOption = None, user: UserOption = None,
    password: PasswordOption = None, ca_certs: CaCertsOption = None, insecure: InsecureOption = False,
    engine: EngineOption = EngineName.auto,
) -> None:
    """Print the exact requests a search sends, ready to paste into Dev Tools / Kibana Console (token config,
    window and probes from the index's `_meta` when the node answers). Reads only: never writes anywhere."""
    from pintext import queries
    from pintext.serving.base import UnsupportedError

    require_query_text(text)
    check_result_limits(k, window)
    chosen = parse_filters(filters, filter_json)
    conn = connection(model, index, url, user, password, ca_certs, insecure, engine)
    searcher, online = searcher_for_dsl(conn)
    check_probes(searcher, probes)
    vector, known = query_vector(conn, text)
    shortened = queries.bm25_note(text)
    if shortened and (hybrid or not known):
        typer.echo(f"# {shortened}")
    if not known:
        typer.echo(f"# no word of {text!r} is in the model's vocabulary: search falls back to BM25")
        line, body = searcher.engine.bm25_request(index, text, k, chosen)
        typer.echo(f"{line}\n{json.dumps(body, indent=2)}")
        return
    serving_window(searcher, k, window)
    if hybrid:
        config = fusion_config(conn, fusion, fusion_weight)
        size = queries.fusion_depth(k, depth)
        bm25_line, bm25_body = searcher.engine.bm25_request(index, text, size, chosen)
        requests = [("bm25", bm25_line, bm25_body)] + [
            ("pintext", line, body) for line, body in searcher.engine.requests(
                index, searcher.query(vector, size, searcher.hybrid_window(size, window), probes, chosen,
                                      exact_filter=online))]
        typer.echo(f"# hybrid: both requests, then {config.method} fusion in the client (PinText weight "
                   f"{config.weight:g}, rrf_k {config.rrf_k}), top {k}")
        typer.echo("\n\n".join(f"# {side}\n{line}\n{json.dumps(body, indent=2)}" for side, line, body in requests))
        return
    # Offline there is no count to tell whether a filter is selective: print the token path.
    request = searcher.query(vector, k, window, probes, chosen, exact_filter=online)
    if template:
        if chosen:
            fail("--template: the stored template takes no filters; drop --template to print the full body", USAGE)
        params = queries.template_params(request.tokens, request.vector, k=request.k, window=request.window)
        body = {"id": queries.SEARCH_TEMPLATE_ID, "params": params}
        typer.echo(f"GET {index}/_search/template\n{json.dumps(body, indent=2)}")
        return
    try:
        sent = searcher.engine.requests(index, request)
    except UnsupportedError as error:
        fail(str(error), USAGE)
    typer.echo("\n\n".join(f"{line}\n{json.dumps(body, indent=2)}" for line, body in sent))


def searcher_for_dsl(conn: Connection) -> tuple[Any, bool]:
    """The searcher of the serving index, and whether the node answered; without a node (or index), say so and
    use MODEL/lsh.json or the defaults on the engine asked for (OpenSearch under auto)."""
    from pintext.ingest.indexer import default_lsh
    from pintext.serving.base import IndexNotFoundError
    from pintext.serving.engines import (
        EngineError,
        EngineMismatchError,
        EngineUnreachableError,
        check_engine,
        choose_engine,
        is_certificate_failure,
        redact_options,
    )
    from pintext.serving.searcher import Searcher

    named, options, offline = conn.target.engine, conn.target.options(), False
    try:  # which engine answers (auto), or whether the one named does; none (or stalled): print offline
        answering = EngineName(choose_engine(named.value, options))
        if named is not EngineName.auto or not options.url:
            check_engine(answering.value, options, by_variable=named is EngineName.auto)
    except EngineUnreachableError:
        answering, offline = (EngineName.opensearch if named is EngineName.auto else named), True
    except (EngineMismatchError, ValueError) as error:  # another engine answers; a URL no client takes
        fail(redact_options(str(error), options), USAGE)
    except EngineError:
        answering = named  # refused access: `conn.engine` says so in one line
    conn.use_target(dataclasses.replace(conn.target, engine=answering))
    conn.engine_checked = True
    try:
        if not offline and conn.engine.exists(conn.name):
            return conn.searcher(), True
    except Exception as error:  # noqa: BLE001 - no node answering is expected here: dsl works offline
        untrusted = is_certificate_failure(error)  # a node answers, over TLS we do not trust: say so
        if untrusted or not is_unreachable(error) and not isinstance(error, (EngineError, IndexNotFoundError)):
            raise
    if conn.target.engine is EngineName.auto:
        conn.use_target(dataclasses.replace(conn.target, engine=EngineName.opensearch))
    fixed = conn.model_lsh
    typer.echo(f"note: index {conn.name!r} not found or node unreachable: printing with "
               f"{'MODEL/lsh.json' if fixed else 'the default LSH'} and the default window", err=True)
    return Searcher(conn.engine, conn.name, fixed or default_lsh(conn.encoder.dim)), False


def is_unreachable(error: BaseException) -> bool:
    """True for a client's "no node answers" (opensearch-py and elasticsearch-py both call it ConnectionError)."""
    for kind in type(error).__mro__:
        if kind.__name__ in ("ConnectionError", "ConnectionTimeout") and kind.__module__.split(".")[0] in (
                "opensearchpy", "elastic_transport", "elasticsearch"):
            return True
    return False


def refused_filter(error: BaseException, filter_json: list[str] | None) -> str | None:
    """The one line for a 400 to a request carrying `--filter-json`, or for a raw filter of more clauses than Lucene
    takes (a 500 "maxClauseCount"): the user's DSL is at fault, not PinText's request (without a raw filter such an
    error stays a traceback: PinText sizes its own requests, `pintext.queries.bm25_text`)."""
    from pintext.serving.engines import error_status

    status = error_status(error)
    if not filter_json or status != 400 and "maxClauseCount" not in str(error):
        return None
    return f"--filter-json: the engine refused the query ({status}): {engine_reason(error)}"


def engine_reason(error: BaseException) -> str:
    """The innermost cause an engine gives for a refused request (opensearch-py's `info`, elasticsearch-py's
    `body`): `_count` answers "Failed to parse" and nests the clause's own reason in `caused_by`; `_search` answers
    "all shards failed" and holds each shard's reason in `failed_shards`."""
    for body in (getattr(error, "info", None), getattr(error, "body", None)):
        cause = body.get("error") if isinstance(body, dict) else None
        if isinstance(cause, dict):
            failed = cause.get("failed_shards")
            if "caused_by" not in cause and isinstance(failed, list) and failed and isinstance(failed[0], dict) \
                    and isinstance(failed[0].get("reason"), dict):
                cause = failed[0]["reason"]
            while isinstance(cause.get("caused_by"), dict):
                cause = cause["caused_by"]
            return f"{cause.get('type')}: {cause.get('reason')}"
    return str(getattr(error, "error", None) or error)


def no_answer_message(url: str | None, timeout: float | None) -> str:
    """A node that accepts connections but does not answer (stalled, overloaded, SIGSTOPped)."""
    from pintext.serving.engines import no_answer_message as message

    return message(url, timeout)


# How a command's arguments are named in messages (an option's own name otherwise: --filter-json).
ARGUMENT_NAMES = {"text": "the query text", "pin_id": "the pin id", "filters": "--filter"}


def not_utf8_argument(kwargs: dict) -> str | None:
    """The one line for a text argument or option that is not valid UTF-8, else None. A shell hands Python the
    bytes it cannot decode as lone surrogates (`pintext search $'\\xff'` gives '\\udcff'): no engine, tokenizer or
    JSON encoder takes them (the tokenizer raised a TypeError)."""
    for name, value in kwargs.items():
        for item in value if isinstance(value, list) else [value]:
            if not isinstance(item, str):
                continue
            try:
                item.encode("utf-8")
            except UnicodeEncodeError as error:
                char = ord(item[error.start])
                what = f"byte 0x{char - 0xDC00:02x}" if 0xDC80 <= char <= 0xDCFF else f"lone surrogate U+{char:04X}"
                shown_name = ARGUMENT_NAMES.get(name, "--" + name.replace("_", "-"))
                return (f"{shown_name} is not valid UTF-8 ({what} at character {error.start + 1}): give it as UTF-8 "
                        "text")
    return None


def reports_serving_errors(command: Callable[..., None]) -> Callable[..., None]:
    """Turn "no node answers" and the serving protocol's errors into one clear line instead of a traceback."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        from pintext.serving.base import IndexMismatchError, IndexNotFoundError, PinNotFoundError, UnsupportedError
        from pintext.serving.engines import access_problem, redact, safe_url
        from pintext.serving.filters import FilterError

        undecodable = not_utf8_argument(kwargs)
        if undecodable:
            fail(undecodable, USAGE)
        try:
            command(*args, **kwargs)
        except (IndexMismatchError, IndexNotFoundError, PinNotFoundError, UnsupportedError, FilterError) as error:
            fail(str(error).strip("'\""), USAGE)
        except Exception as error:
            url = kwargs.get("url") or os.environ.get("OPENSEARCH_URL") or os.environ.get("ELASTICSEARCH_URL")
            # 401, 403 and an untrusted certificate first: a TLS failure is also a "connection error".
            problem = access_problem(error, url, kwargs.get("user"), kwargs.get("password"))
            if problem:
                fail(problem, FAILURE)
            refused = refused_filter(error, kwargs.get("filter_json"))
            if refused:
                fail(redact(refused, url, kwargs.get("password")), USAGE)
            if not is_unreachable(error):
                raise
            if type(error).__name__ == "ConnectionTimeout":
                fail(no_answer_message(url, kwargs.get("timeout")), FAILURE)
            detail = getattr(error, "error", None) or getattr(error, "message", None) or type(error).__name__
            detail = redact(str(detail), url, kwargs.get("password"))
            fail(f"cannot reach the engine at {safe_url(url) if url else 'the managed node'}: {detail} (start one "
                 f"with `pintext opensearch up` / `pintext elasticsearch up`, or pass --url)", FAILURE)

    return wrapper


def register(app: typer.Typer) -> None:
    """Add this module's commands to the main app."""
    index_app = typer.Typer(help="Create, inspect, promote and delete the pins index (an alias over one index "
                                 "per model).", no_args_is_help=True)
    index_app.command("create")(reports_serving_errors(index_create))
    index_app.command("delete")(reports_serving_errors(index_delete))
    index_app.command("info")(reports_serving_errors(index_info))
    index_app.command("promote")(reports_serving_errors(index_promote))
    app.add_typer(index_app, name="index")
    app.command("ingest")(reports_serving_errors(ingest))
    app.command("search")(reports_serving_errors(search))
    app.command("related")(reports_serving_errors(related))
    app.command("dsl")(reports_serving_errors(dsl))
