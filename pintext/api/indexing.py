"""The index stage's policy: create a model's index (its token family tuned on the corpus), delete, describe and
promote versions behind the name users search (`pintext.serving.rollout`).

A new index gets its token family and default window/probes from tuning on a sample of the pins (`pintext.tokens.tune`);
MODEL/lsh.json, when a user wrote one, fixes tables and bits and only probes and window are tuned.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pintext.api.connection import Connection
from pintext.errors import IndexMismatch, IndexMissing, UsageError

NO_CORPUS_YET = "no corpus given (index create without --pins)"


@dataclass(frozen=True)
class Tuning:
    """How to make an index about to be created: its token settings, tuned or not, and what its vector field
    holds."""

    pins_file: Path | None = None  # the corpus; None: no tuning (the defaults)
    target_recall: float = 0.95
    enabled: bool = True
    queries_file: Path | None = None
    family: str | None = None  # lsh | kmeans | auto (pintext.tokens.tune.FAMILY_CHOICES); None: DEFAULT_FAMILY
    vector_type: str | None = None  # int8 | float32 (pintext.quantize.VECTOR_TYPES); None: DEFAULT_VECTOR_TYPE


@dataclass(frozen=True)
class Created:
    """What `create_index` did: the concrete index, whether this call made it, and how it serves."""

    index: str
    created: bool
    serving: str | None  # the index the name serves now
    shards: int | None
    replicas: int | None


def token_family(name: str | None) -> str | None:
    """A token family name checked (one error line naming the choices); None when not given."""
    from pintext.tokens.tune import check_family_choice

    try:
        return None if name is None else check_family_choice(name)
    except ValueError as error:
        raise UsageError(f"--tokens: {error}") from None


def checked_vector_type(name: str | None) -> str | None:
    """A vector type name checked (one error line naming the choices); None when not given."""
    from pintext.quantize import check_vector_type

    try:
        return None if name is None else check_vector_type(name)
    except ValueError as error:
        raise UsageError(f"--vector-type: {error}") from None


def describe_tokens(family: Any) -> str:
    from pintext.tokens import describe

    return describe(family)


def ensure_index(conn: Connection, shards: int = 1, replicas: int | None = None, tuning: Tuning = Tuning()) -> bool:
    """Create this model's index unless it exists (refusing a mismatched one); the first version of a name gets
    the alias at once. A new index gets its tokens tuned on `tuning.pins_file` (see `creation_meta`).
    `shards` and `replicas` apply only when the index is created here; no `replicas`: the engine's default (1 on
    a cluster with another data node to hold them, else 0). Returns True when it created the index."""
    from pintext.serving.rollout import alias_if_first

    engine, index = conn.engine, conn.write_index
    if conn.index_meta() is not None and awaits_tuning(conn, tuning):
        from pintext.serving.meta import vector_type_of

        pending = conn.index_meta() or {}
        tuning = dataclasses.replace(tuning, family=tuning.family or pending.get("tuning", {}).get("family"),
                                     vector_type=tuning.vector_type or vector_type_of(pending))
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
        conn.notes(f"note: {note}")
    alias_if_first(engine, conn.name, index)
    # What the index holds, not what this run sent: a concurrent run may have created it first (with tokens tuned
    # on its own file), and pins must be hashed with the index's own token family.
    conn.forget_index_meta()
    conn.check_written_index()
    return created


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
    conn.notes(f"note: {conn.write_index} was created without a corpus and is empty: re-created with tokens tuned "
               "on this file")
    return layout.shards or 1, layout.replicas or 0


def creation_meta(conn: Connection, tuning: Tuning) -> dict:
    """The `_meta` of a new index: this model, and token settings tuned on the corpus when one is given.

    MODEL/lsh.json (if the user wrote one) fixes tables and bits; tuning then picks only probes and window.
    Without a corpus, or with --no-tune, the index gets that config (or the default) and the default window.
    """
    from pintext.ingest.indexer import default_lsh
    from pintext.quantize import DEFAULT_VECTOR_TYPE
    from pintext.serving.meta import ServingDefaults, index_meta
    from pintext.tokens.tune import DEFAULT_FAMILY, LSH

    encoder, fixed = conn.encoder, conn.model_tokens
    vectors = tuning.vector_type or DEFAULT_VECTOR_TYPE
    if tuning.family not in (None, LSH) and not tuning.enabled:
        raise UsageError(f"--tokens {tuning.family} is tuned (and fitted) on the corpus: drop --no-tune")
    if not tuning.enabled or tuning.pins_file is None:
        reason = "--no-tune" if not tuning.enabled else NO_CORPUS_YET
    else:
        result, reason = tune_on_corpus(conn, dataclasses.replace(tuning, family=tuning.family or DEFAULT_FAMILY),
                                        fixed)
        if result is not None:
            serving = ServingDefaults(window=result.window, probes=result.probes, window_at_100=result.deep_window,
                                      probes_at_100=result.deep_probes)
            return index_meta(encoder.fingerprint, encoder.dim, result.family, serving, result.to_meta(), vectors)
    family = fixed or default_lsh(encoder.dim)
    record = {"tuned": False, "reason": reason, "pending": reason == NO_CORPUS_YET}
    if record["pending"] and tuning.family:
        record["family"] = tuning.family  # what the first ingest tunes when it brings the corpus
    return index_meta(encoder.fingerprint, encoder.dim, family, ServingDefaults(), record, vectors)


def tune_on_corpus(conn: Connection, tuning: Tuning, fixed: Any) -> tuple[Any, str]:
    """Tune the tokens on a sample of the pins file, noting what it chose and why.

    The queries tuned on are the given ones (`--tune-queries`), else pins' titles cut to a query's length
    (`pintext.tokens.tuning.query_like_texts`): what users send, so the recall printed is the recall they get.
    Returns (result, "") or, when the corpus cannot be tuned on (too few pins with a known word), (None, why).
    """
    from pintext.ingest.indexer import default_lsh, sample_pins
    from pintext.pin_vectors import pin_vectors
    from pintext.serving.meta import ServingDefaults
    from pintext.tokens.tune import DEFAULT_FAMILY, LSH, sample_size, tune_tokens

    assert tuning.pins_file is not None
    started = time.perf_counter()
    family = tuning.family or DEFAULT_FAMILY
    sample, total = sample_pins(tuning.pins_file, sample_size(family))
    queries, source = tuning_queries(conn, tuning, sample)
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
            if family == LSH or fixed:
                raise
            # Learned centroids cannot be fitted on this corpus: tune random hyperplanes instead, and say why.
            result = tune(LSH)
            chosen = f"lsh, not {family}: {error}"
    except ValueError as error:
        lsh = fixed or default_lsh(conn.encoder.dim)
        conn.notes(f"note: {'--tokens ' + family + ': no centroids fitted and ' if family != LSH else ''}LSH not "
                   f"tuned on {tuning.pins_file} ({error}): untuned random hyperplanes ({lsh.tables} tables x "
                   f"{lsh.bits} bits, window {ServingDefaults().window})")
        return None, f"not tunable: {error}"
    if fixed:
        conn.notes(f"note: {conn.model_dir}/lsh.json fixes {fixed.tables} tables x {fixed.bits} bits, so only probes "
                   f"and window are tuned (delete it to let tuning choose tables and bits too)")
    if source is not None:
        result.query_source = source
    conn.notes(tuning_note(result, chosen, tuning.target_recall, time.perf_counter() - started))
    return result, ""


def tuning_queries(conn: Connection, tuning: Tuning, sample: list[dict]) -> tuple[Any, str | None]:
    """The query vectors to tune on and their source: `--tune-queries`' texts, else sampled pins' titles cut to
    a query's length with a known word, else (None, None): sampled pins whole."""
    import numpy as np

    from pintext.api.queries import read_queries
    from pintext.tokens.tuning import SOURCE_QUERIES, SOURCE_TITLES, query_like_texts

    if tuning.queries_file:
        return conn.encoder.encode(read_queries(tuning.queries_file)), SOURCE_QUERIES
    titles = query_like_texts([str(pin.get("title") or "") for pin in sample], np.random.default_rng(0))
    vectors = conn.encoder.encode(titles) if titles else np.zeros((0, conn.encoder.dim), dtype=np.float32)
    vectors = vectors[np.linalg.norm(vectors, axis=1) > 0]
    if len(vectors) == 0:
        return None, None  # no title with a known word: the tuner takes sampled pins whole
    return vectors, SOURCE_TITLES


def tuning_note(result: Any, chosen: str, target_recall: float, seconds: float) -> str:
    """The line saying what tuning chose and why: the family (under auto, each family's cost), what it was tuned
    on, the setting, the recall@10 measured, and the setting for 100 hits."""
    from pintext.tokens.tune import AUTO, choice_of, describe_choice, describe_comparison
    from pintext.tokens.tuning import QUERY_WORDS, SOURCE_PINS, SOURCE_QUERIES, TARGET_CONFIDENCE_Z

    verdict = "reached" if result.reached else "NOT reached (best recall kept)"
    asked = {SOURCE_PINS: "sampled pins as queries", SOURCE_QUERIES: "given queries"}.get(
        result.query_source, f"pin titles cut to {QUERY_WORDS[0]}-{QUERY_WORDS[1]} words as queries")
    if chosen == AUTO:
        chosen = f"auto: {choice_of(result)}, the cheapest at the target; {describe_comparison(result)}"
    # A family that scores every matching pin exactly has no rescore window to report.
    deep_window = "" if getattr(result.family, "scoring", "") == "exact_matches" else f", window {result.deep_window}"
    return (f"tuned tokens ({chosen}) on {result.tuned_on:,} of {result.corpus:,} pins, {result.queries} {asked} in "
            f"{seconds:.1f}s: {describe_choice(result)}; recall@10 vs exact {result.recall:.3f} ± "
            f"{result.recall_se:.3f}, target {target_recall} {verdict} (at {TARGET_CONFIDENCE_Z} standard errors)"
            + (f"; for 100 hits probes {result.deep_probes}{deep_window} (recall@100 {result.deep_recall:.3f})"
               if result.deep_window else ""))


def create_index(conn: Connection, shards: int = 1, replicas: int | None = None,
                 tuning: Tuning = Tuning()) -> Created:
    """This model's index behind the name (see `ensure_index`), and how it serves afterwards."""
    created = ensure_index(conn, shards=shards, replicas=replicas, tuning=tuning)
    if created and tuning.pins_file is None and tuning.enabled:
        conn.notes("note: no --pins FILE, so the tokens are not tuned yet (default LSH 64x8 bits, window 500); the "
                   "first `pintext ingest FILE` into this empty index tunes it on FILE")
    layout = conn.engine.layout(conn.write_index)
    asked = (shards, layout.replicas if replicas is None else replicas)
    if not created and layout.shards is not None and (layout.shards, layout.replicas) != asked:
        conn.notes(f"note: {conn.write_index} already exists; --shards/--replicas were not applied")
    return Created(conn.write_index, created, conn.engine.alias_target(conn.name), layout.shards, layout.replicas)


def delete_versions(conn: Connection, version: str | None = None, force: bool = False) -> list[tuple[str, bool]]:
    """Delete the name (every index behind the alias) or only `version` (not the serving one); an index PinText
    did not make only with `force`. Returns (index, deleted) for each index named; [] when there is none."""
    from pintext.serving.rollout import version_of, versions

    engine, name = conn.engine, conn.name
    serving = engine.alias_target(name)
    if version is not None:
        target = version_of(engine, name, version)
        if target is None:
            return [(version, False)]
        if target == serving and target != name:
            raise UsageError(f"{target!r} serves {name!r}: promote another version first, or delete the whole name")
        refuse_foreign_index(engine, [target], force)
        return [(target, engine.delete(target))]
    doomed = [name] if serving == name else versions(engine, name)
    refuse_foreign_index(engine, doomed, force)
    for index in doomed:
        engine.delete(index)
    return [(index, True) for index in doomed]


def refuse_foreign_index(engine: Any, indexes: list[str], force: bool) -> None:
    """Refuse, before anything is deleted, when one of `indexes` was not made by PinText, unless `force`."""
    from pintext.serving.meta import made_by_pintext, not_made_by_pintext

    foreign = [name for name in indexes if not made_by_pintext(engine.meta(name))]
    if foreign and not force:
        raise IndexMismatch(f"{not_made_by_pintext(', '.join(foreign))}: pass --force to delete it anyway")


def index_info(conn: Connection) -> dict:
    """The alias, which index serves, and every version (model, docs, shards, `_meta`); for the serving version
    also `shard_copies`: each shard copy's role (primary or replica), node and state."""
    from pintext.serving.meta import vector_type_of
    from pintext.serving.rollout import describe

    engine = conn.engine
    info = describe(engine, conn.name)
    serving = next((row for row in info["versions"] if row["serving"]), None)
    if serving is None and not info["versions"]:
        raise IndexMissing(f"index {conn.name!r} does not exist in {engine.describe()}")
    # The serving version's figures at the top level, as `index info` printed them before versioning.
    head = ({"index": serving["index"], "docs": serving["docs"], "shards": serving["shards"],
             "replicas": serving["replicas"], "health": serving["health"],
             "vector_type": vector_type_of(serving["meta"]),
             "shard_copies": engine.shards(serving["index"]), "meta": serving["meta"]}
            if serving else {"index": None})
    return {"engine": engine.name, **head, **info}


def promote(conn: Connection, delete_old: bool = False, allow_empty: bool = False) -> Any:
    """Serve this model's index: swap the alias to it in one atomic step (searches never fail or see an empty
    page), keeping the old version unless `delete_old`. Returns `pintext.serving.rollout.Promotion`."""
    from pintext.serving.base import IndexNotFoundError
    from pintext.serving.rollout import promote as swap
    from pintext.serving.rollout import version_name

    engine = conn.engine
    target = version_name(conn.name, conn.encoder.fingerprint)
    if engine.exists(target):
        engine.refresh(target)
        if not allow_empty and engine.count(target) == 0:
            raise UsageError(f"{target!r} holds no pins yet: ingest first (or pass --allow-empty)")
    try:
        return swap(engine, conn.name, conn.encoder.fingerprint, delete_old=delete_old)
    except IndexNotFoundError as error:
        raise IndexMissing(str(error).strip("'\"")) from None
    except ValueError as error:
        raise UsageError(str(error)) from None
