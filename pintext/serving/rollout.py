"""Model rollout without downtime: one concrete index per model behind the alias users search.

`--index NAME` names the alias. The index for a model is `NAME-<first 12 hex of its fingerprint>` (`version_name`):
`pintext index create` / `ingest` make and fill it; the first version of a name gets the alias at once, a later one
waits until `pintext index promote` swaps the alias to it in one atomic `_aliases` call (the old version is kept,
or deleted with `--delete-old`). Search always goes through the alias and refuses an index whose `_meta` does not
match the model, so a new model is searched only once it is promoted. A NAME that is itself a concrete index (made
before versioning) keeps working as it is: it is written and searched directly.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pintext.serving.base import Engine, IndexNotFoundError

FINGERPRINT_CHARS = 12


def version_name(name: str, fingerprint: str) -> str:
    """The concrete index of `name` for a model: `name-<fingerprint[:12]>` (engines want lower case)."""
    return f"{name}-{fingerprint[:FINGERPRINT_CHARS]}".lower()


def is_legacy_index(engine: Engine, name: str) -> bool:
    """`name` is a concrete index itself (made before versioning), not an alias."""
    return engine.alias_target(name) == name


def write_target(engine: Engine, name: str, fingerprint: str) -> str:
    """The concrete index ingest writes for this model: the legacy index `name` when there is one, else the
    model's version of `name`."""
    return name if is_legacy_index(engine, name) else version_name(name, fingerprint)


def alias_if_first(engine: Engine, name: str, index: str) -> bool:
    """Point the alias at `index` when the alias names nothing yet (the first version of a name serves at once).
    Returns True when it did."""
    if index == name or engine.alias_target(name) is not None:
        return False
    engine.point_alias(name, index)
    return True


@dataclass
class Promotion:
    """What `promote` did."""

    alias: str
    serving: str
    previous: str | None
    deleted: list[str] = field(default_factory=list)


def promote(engine: Engine, name: str, fingerprint: str, delete_old: bool = False) -> Promotion:
    """Swap the alias `name` to the model's version, atomically; then delete the older versions if asked."""
    from pintext.serving.meta import made_by_pintext, not_made_by_pintext

    target = version_name(name, fingerprint)
    if is_legacy_index(engine, name) and not made_by_pintext(engine.meta(name)):
        raise ValueError(f"{not_made_by_pintext(name)}: there is nothing to promote; pick another --index (or "
                         f"delete it: pintext index delete --index {name} --force)")
    if is_legacy_index(engine, name):
        raise ValueError(f"{name!r} is a concrete index made before versioning, not an alias: re-ingest into a "
                         f"new name, or delete it (pintext index delete --index {name}) and ingest again")
    if not engine.exists(target):
        raise IndexNotFoundError(f"no index {target!r} for this model: make it first (pintext index create / "
                                 f"pintext ingest FILE --index {name})")
    previous = engine.alias_target(name)
    engine.point_alias(name, target)
    deleted = []
    if delete_old:
        for old in versions(engine, name):
            if old != target and engine.delete(old):
                deleted.append(old)
    return Promotion(name, target, previous if previous != target else None, deleted)


def versions(engine: Engine, name: str) -> list[str]:
    """The concrete versions of `name` (`name-<12 hex>`), sorted."""
    prefix = f"{name}-".lower()
    return [index for index in engine.indices(prefix)
            if len(index) == len(prefix) + FINGERPRINT_CHARS
            and all(char in "0123456789abcdef" for char in index[len(prefix):])]


def version_of(engine: Engine, name: str, version: str) -> str | None:
    """The concrete index `version` names among `name`'s: the index itself, or a model id as PinText prints it
    (the first 12 hex of the fingerprint, as `index create` shows; the whole fingerprint, as `index info` does)."""
    if engine.exists(version):
        return version
    model_id = version.lower()
    if len(model_id) >= FINGERPRINT_CHARS and all(char in "0123456789abcdef" for char in model_id):
        named = version_name(name, model_id)
        if engine.exists(named):
            return named
    return None


def describe(engine: Engine, name: str) -> dict:
    """The alias, which version serves, and every version with its model and size (`pintext index info`)."""
    from pintext.serving.meta import made_by_pintext, token_config

    serving = engine.alias_target(name)
    legacy = serving == name
    rows = []
    for index in ([name] if legacy else versions(engine, name)):
        meta = engine.meta(index)
        layout = engine.layout(index)
        rows.append({"index": index, "serving": index == serving, "made_by_pintext": made_by_pintext(meta),
                     "docs": engine.count(index),
                     "model_fingerprint": meta.get("model_fingerprint"), "dim": meta.get("dim"),
                     "tokens": token_config(meta), "shards": layout.shards, "replicas": layout.replicas,
                     "health": layout.health, "meta": meta})
    return {"alias": None if legacy else name, "serving": serving, "versions": rows}
