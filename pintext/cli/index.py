"""CLI commands: `index create|delete|info|promote` (the policy is `pintext.api.indexing`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from pintext.cli.failures import reports_serving_errors
from pintext.cli.options import (
    DEFAULT_INDEX,
    DEFAULT_LOCAL_DIR,
    CaCertsOption,
    EngineName,
    EngineOption,
    IndexOption,
    InsecureOption,
    LocalDirOption,
    ModelOption,
    NoTuneOption,
    PasswordOption,
    ReplicasOption,
    ShardsOption,
    TargetRecallOption,
    TimeoutOption,
    TokensOption,
    TuneQueriesOption,
    UrlOption,
    UserOption,
    VectorTypeOption,
    open_pintext,
)


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
                 vector_type: VectorTypeOption = None,
                 ) -> None:
    """Create this model's index behind the alias --index (the alias moves to it at once only when it is the
    name's first index; later ones wait for `pintext index promote`), its LSH tuned on --pins FILE."""
    from pintext.api.indexing import describe_tokens
    from pintext.serving.meta import vector_type_of

    served = open_pintext(model, index, url, user, password, ca_certs, insecure, engine, local_dir, timeout)
    done = served.create_index(pins, shards=shards, replicas=replicas, target_recall=target_recall,
                               tune=not no_tune, tune_queries=tune_queries, tokens=tokens, vector_type=vector_type)
    conn = served.connection
    shape = f", {done.shards} shards x {done.replicas} replicas" if done.shards is not None else ""
    route = (f"serving as {index!r}" if done.serving == done.index and index != done.serving
             else "the name's own index" if done.serving == index
             else f"not serving yet ({index!r} serves {done.serving!r}): `pintext index promote --index {index}`")
    typer.echo(f"{'created' if done.created else 'exists, same model'}: {done.index}, {route} "
               f"(dim {conn.encoder.dim}, tokens {describe_tokens(conn.tokens)}, probes {conn.serving.probes}, "
               f"window {conn.serving.window}, vectors {vector_type_of(conn.index_meta())}, "
               f"model {conn.encoder.fingerprint[:12]}{shape})")


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
    done = open_pintext(None, index, url, user, password, ca_certs, insecure, engine, local_dir).delete(
        version=version, force=force)
    if not done:
        typer.echo(f"absent: {index}")
    for name, deleted in done:
        typer.echo(f"{'deleted' if deleted else 'absent'}: {name}")


def index_info(index: IndexOption = DEFAULT_INDEX, url: UrlOption = None, user: UserOption = None,
               password: PasswordOption = None, ca_certs: CaCertsOption = None, insecure: InsecureOption = False,
               engine: EngineOption = EngineName.auto, local_dir: LocalDirOption = DEFAULT_LOCAL_DIR,
               timeout: TimeoutOption = None) -> None:
    """Print the alias, which index serves, and every version (model, docs, shards, `_meta`) as JSON; for the
    serving version also `shard_copies`: each shard copy's role (primary or replica), node and state."""
    info = open_pintext(None, index, url, user, password, ca_certs, insecure, engine, local_dir, timeout).info()
    typer.echo(json.dumps(info, indent=2))


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
    served = open_pintext(model, index, url, user, password, ca_certs, insecure, engine, local_dir)
    done = served.promote(delete_old=delete_old, allow_empty=allow_empty)
    was = f" (was {done.previous})" if done.previous else ""
    typer.echo(f"promoted: {index} -> {done.serving}{was}"
               + (f"; deleted {', '.join(done.deleted)}" if done.deleted else ""))


def register(app: typer.Typer) -> None:
    """Add the `index` command group to the main app."""
    index_app = typer.Typer(help="Create, inspect, promote and delete the pins index (an alias over one index "
                                 "per model).", no_args_is_help=True)
    index_app.command("create")(reports_serving_errors(index_create))
    index_app.command("delete")(reports_serving_errors(index_delete))
    index_app.command("info")(reports_serving_errors(index_info))
    index_app.command("promote")(reports_serving_errors(index_promote))
    app.add_typer(index_app, name="index")
