"""The model/index contract every engine's index carries in its `_meta`, and the query-time defaults in it.

`_meta` = `{model_fingerprint, dim, tokens (the token family config, with its kind), pin_vector, vector_type,
serving: {window, probes[, window_at_100, probes_at_100]}, tuning, pintext_version}`. Ingest and search refuse an
index whose `_meta` names another model, dimension, token config or pin-vector rule (`check_meta`).

`vector_type` (`int8` or `float32`, `pintext.quantize`) is what the index's vector field holds; an index without the
key (made before it existed) holds float32. It is the index's own choice, not the model's: ingest and search follow
it and never refuse an index for it.

Indexes written before the token stage had a name of its own keep the family config under `lsh`
(`LEGACY_TOKENS_KEY`, whatever the family); `token_config` reads either, so they still serve and take writes.
"""

from __future__ import annotations

from dataclasses import dataclass

from pintext import __version__, queries
from pintext.quantize import FLOAT32
from pintext.serving.base import IndexMismatchError
from pintext.tokens import TokenFamily, family_from_dict
from pintext.tokens.centroids import EXACT_MATCHES, KMEANS_KIND, scoring_of

TOKENS_KEY = "tokens"  # the token family config in `_meta`
VECTOR_TYPE_KEY = "vector_type"  # what the vector field holds: `pintext.quantize.VECTOR_TYPES`
LEGACY_TOKENS_KEY = "lsh"  # where indexes written before kept it (read, never written)


@dataclass(frozen=True)
class ServingDefaults:
    """Query-time settings an index was tuned for (`_meta.serving`); what search uses unless told otherwise.

    `window`/`probes` keep recall@10 at the tuning target; `window_at_100`/`probes_at_100` (tuned indexes) keep
    recall@100 as close to it as the index's tables allow, for searches asking for more than 10 hits.
    """

    window: int = queries.DEFAULT_WINDOW
    probes: int = 0
    window_at_100: int | None = None
    probes_at_100: int | None = None

    def to_dict(self) -> dict:
        serving = {"window": int(self.window), "probes": int(self.probes)}
        if self.window_at_100 is not None:
            serving["window_at_100"] = int(self.window_at_100)
            serving["probes_at_100"] = int(self.probes_at_100 if self.probes_at_100 is not None else self.probes)
        return serving

    @classmethod
    def from_meta(cls, meta: dict) -> "ServingDefaults":
        serving = meta.get("serving") or {}
        deep_window, deep_probes = serving.get("window_at_100"), serving.get("probes_at_100")
        return cls(window=int(serving.get("window", queries.DEFAULT_WINDOW)), probes=int(serving.get("probes", 0)),
                   window_at_100=int(deep_window) if deep_window is not None else None,
                   probes_at_100=int(deep_probes) if deep_probes is not None else None)

    def probes_for(self, k: int, probes: int | None = None) -> int:
        """The probes to use: the ones asked for; else this index's for k hits."""
        from pintext.tokens.tuning import TUNE_K

        if probes is not None:
            return int(probes)
        if k <= TUNE_K or self.probes_at_100 is None:
            return self.probes
        return self.probes_at_100

    def window_for(self, k: int, window: int | None = None) -> int:
        """The rescore window to use: the one asked for; else this index's for k hits: its recall@10 window up to
        10 hits, its recall@100 window up to 100 (grown in proportion beyond), never below k."""
        from pintext.tokens.tuning import DEEP_K, MAX_RESCORE_WINDOW, TUNE_K

        if window is not None:
            return int(window)
        if k <= TUNE_K or self.window_at_100 is None:
            return max(self.window, int(k))
        deep = self.window_at_100 if k <= DEEP_K else min(MAX_RESCORE_WINDOW, self.window_at_100 * k // DEEP_K)
        return max(deep, int(k))


def index_meta(fingerprint: str, dim: int, family: TokenFamily, serving: ServingDefaults | None = None,
               tuning: dict | None = None, vector_type: str = FLOAT32) -> dict:
    """The `_meta` an index carries: which model and token family its vectors and tokens come from, what its
    vector field holds (`vector_type`), the window and probes search uses by default, and how they were chosen
    (`tuning`). `vector_type` defaults to float32, what a caller that writes its own float vectors with
    `Engine.write` needs; indexes made by `index create`/`ingest` get `pintext.quantize.DEFAULT_VECTOR_TYPE`
    (`pintext.api.indexing.creation_meta`)."""
    from pintext.pin_vectors import DEFAULT_PIN_VECTOR
    from pintext.quantize import check_vector_type

    meta = {"model_fingerprint": fingerprint, "dim": int(dim), TOKENS_KEY: family.to_dict(),
            "pintext_version": __version__, "serving": (serving or ServingDefaults()).to_dict(),
            "pin_vector": DEFAULT_PIN_VECTOR.to_dict(),
            VECTOR_TYPE_KEY: check_vector_type(vector_type)}
    if tuning is not None:
        meta["tuning"] = tuning
    return meta


def vector_type_of(meta: dict | None) -> str:
    """What an index's vector field holds, by its `_meta`: `int8` or `float32` (an index that records none was
    made before one-byte vectors existed: float32). A value PinText does not know is refused (ValueError)."""
    from pintext.quantize import UNRECORDED_VECTOR_TYPE, check_vector_type

    recorded = meta.get(VECTOR_TYPE_KEY) if isinstance(meta, dict) else None
    return check_vector_type(str(recorded)) if recorded is not None else UNRECORDED_VECTOR_TYPE


def token_config(meta: dict | None) -> dict | None:
    """The token family config an index's `_meta` records (under `tokens`, or `lsh` in an older index); None when
    it records none."""
    if not isinstance(meta, dict):
        return None
    config = meta.get(TOKENS_KEY) or meta.get(LEGACY_TOKENS_KEY)
    return config if isinstance(config, dict) and config else None


def sorted_by_cell(meta: dict | None) -> bool:
    """Whether a new index with this `_meta` is sorted by the pins' cell (`pintext.mapping.CELL_SORT`): when its
    tokens are one codebook of centroids, whose every match is scored exactly (no rescore window)."""
    config = token_config(meta) or {}
    return config.get("kind") == KMEANS_KIND and scoring_of(int(config.get("tables", 0))) == EXACT_MATCHES


def made_by_pintext(meta: dict | None) -> bool:
    """Whether an index's `_meta` is PinText's: every index PinText makes records its token family (`index_meta`);
    an index another tool made has no `_meta`, or its own."""
    return token_config(meta) is not None


def not_made_by_pintext(index: str) -> str:
    """The words for an index PinText did not make, the same in every command."""
    return f"{index} was not made by PinText (no PinText _meta)"


def foreign_index_error(index: str, what: str) -> IndexMismatchError:
    """Refusing to `what` (write into, promote, search) an index PinText did not make."""
    return IndexMismatchError(f"{not_made_by_pintext(index)}: PinText does not {what} it; pick another --index "
                              f"(or delete it: pintext index delete --index {index} --force)")


def family_from_meta(index: str, meta: dict) -> TokenFamily:
    """The token family an index's tokens were made with."""
    if not made_by_pintext(meta):
        raise foreign_index_error(index, "search")
    try:
        return family_from_dict(token_config(meta) or {})
    except ValueError as error:
        raise IndexMismatchError(f"index {index!r}: {error}") from None


def check_meta(index: str, found: dict, expected: dict, model_dir: str = "the model") -> None:
    """Refuse an index PinText did not make, or whose `_meta` names another model fingerprint, dimension, token
    config or pin-vector rule (an index written under the old `lsh` key compares by its config alike)."""
    if not made_by_pintext(found):
        raise foreign_index_error(index, "write into")
    problems = []
    for key, label in (("model_fingerprint", "model fingerprint"), ("dim", "dimension"), (TOKENS_KEY, "LSH config"),
                       ("pin_vector", "pin vector (how a pin's fields are embedded)")):
        has, wants = (token_config(found), token_config(expected)) if key == TOKENS_KEY else \
            (found.get(key), expected.get(key))
        if has != wants:
            problems.append(f"{label}: index has {_shown(has)}, {model_dir} has {_shown(wants)}")
    if problems:
        raise IndexMismatchError(
            f"index {index!r} was built for another model ({'; '.join(problems)}). "
            f"Use the model it was built with, or re-create it: pintext index delete --index {index}, then ingest."
        )


def _shown(value: object) -> str:
    """A `_meta` value for an error message: a learned codebook (kilobytes of base64) by its fingerprint only."""
    if isinstance(value, dict) and "codebook" in value:
        value = {**{key: item for key, item in value.items() if key not in ("codebook", "fingerprint")},
                 "fingerprint": str(value.get("fingerprint", ""))[:12]}
    return repr(value)
