"""Where the serving calls go, resolved lazily: the model, the engine, the concrete index behind the name users
search, and the token family and window/probes that index's `_meta` holds.

Nothing is loaded or asked before it is needed: `dsl` offline never opens an engine, `index delete` never loads a
model. Every fault is a `pintext.errors` exception with one line; notes (what was chosen, what was skipped) go to
the `notes` callable the caller gives.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pintext.errors import EngineUnavailable, IndexMismatch, IndexMissing, ModelError, UsageError

AUTO = "auto"
DEFAULT_INDEX = "pins"
DEFAULT_LOCAL_DIR = Path("pintext-local-index")

Notes = Callable[[str], None]


def quiet(_note: str) -> None:
    """The default for library callers: notes are for a person at a terminal (the CLI prints them)."""


@dataclass(frozen=True)
class Target:
    """Which engine serves (by name, or "auto": the one answering at `url`) and how to reach it."""

    engine: str = AUTO
    url: str | None = None
    user: str | None = None
    password: str | None = None
    ca_certs: Path | None = None
    insecure: bool = False
    local_dir: Path = DEFAULT_LOCAL_DIR
    timeout: float | None = None  # seconds per request, and how long a write keeps re-sending

    def options(self) -> Any:
        from pintext.serving.engines import EngineOptions

        return EngineOptions(self.url, self.user, self.password, self.ca_certs, self.insecure, self.local_dir,
                             timeout=self.timeout)


def require_index_name(index: str, option: str = "--index") -> None:
    """A name the engines refuse (or that a wildcard would widen) is refused before any request."""
    from pintext.serving.engines import index_name_problem

    problem = index_name_problem(index)
    if problem:
        raise UsageError(f"{option} {index!r} is not a valid index name: it {problem}")


class Connection:
    """A model, an index name and a target, resolved lazily into an encoder, a token family and an engine."""

    def __init__(self, model: Path | None, index: str, target: Target, notes: Notes = quiet) -> None:
        require_index_name(index)
        self.model_dir = None if model is None else Path(model)
        self.name = index
        self.target = target
        self.notes = notes
        self._encoder: Any = None
        self._tokens: Any = None
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
                raise ModelError("no model: pass --model MODEL or set PINTEXT_MODEL")
            from pintext.encoder import Encoder

            try:
                self._encoder = Encoder.load(self.model_dir)
            except (OSError, ValueError) as error:
                raise ModelError(f"cannot load the model: {error}") from None
            except Exception as error:  # noqa: BLE001 - `tokenizers` raises a bare Exception on a broken file
                raise ModelError(f"cannot load the model: {self.model_dir}/runtime/tokenizer.json: {error}") from None
        return self._encoder

    @property
    def model_tokens(self) -> Any:
        """The LSH config the user set in MODEL/lsh.json, or None."""
        from pintext.ingest.indexer import read_model_lsh

        try:
            return read_model_lsh(self.model_dir, self.encoder.dim)
        except ValueError as error:
            raise ModelError(str(error)) from None

    # ---- the engine and the index --------------------------------------------------------------------------

    def use_target(self, target: Target) -> None:
        """Go on with another engine (dsl without a node answering: print for OpenSearch)."""
        self.target, self._engine, self._write_index = target, None, None
        self.forget_index_meta()

    def retarget(self, engine: str) -> None:
        self.use_target(dataclasses.replace(self.target, engine=engine))

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
                self._engine = open_engine(self.target.engine, options, check=not self.engine_checked)
            except (EngineUnreachableError, EngineAccessError) as error:
                raise EngineUnavailable(redact_options(str(error), options)) from None
            except (EngineError, ValueError) as error:
                raise UsageError(redact_options(str(error), options)) from None
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
        """The index was deleted (or just made): read its `_meta` afresh next time."""
        self._index_meta, self._index_meta_read, self._tokens = None, False, None

    @property
    def tokens(self) -> Any:
        """The index's token family; before an index exists, MODEL/lsh.json or the default."""
        if self._tokens is None:
            from pintext.ingest.indexer import default_lsh
            from pintext.serving.meta import IndexMismatchError, family_from_meta, made_by_pintext

            meta = self.index_meta()
            if made_by_pintext(meta):
                try:
                    self._tokens = family_from_meta(self.write_index, meta or {})
                except IndexMismatchError as error:
                    raise IndexMismatch(str(error)) from None
            else:
                self._tokens = self.model_tokens or default_lsh(self.encoder.dim)
        return self._tokens

    @property
    def serving(self) -> Any:
        """The index's default window and probes (the untuned defaults before an index exists)."""
        from pintext.serving.meta import ServingDefaults

        return ServingDefaults.from_meta(self.index_meta() or {})

    def expected_meta(self, family: Any = None) -> dict:
        """What an index must match: this model, and the token config MODEL/lsh.json sets (else `family`)."""
        from pintext.serving.meta import index_meta

        return index_meta(self.encoder.fingerprint, self.encoder.dim, self.model_tokens or family or self.tokens)

    def check_written_index(self) -> None:
        """Refuse to write into an index built for another model."""
        from pintext.serving.meta import IndexMismatchError, check_meta

        try:
            check_meta(self.write_index, self.index_meta() or {}, self.expected_meta(), str(self.model_dir))
        except IndexMismatchError as error:
            raise IndexMismatch(str(error)) from None

    def searcher(self) -> Any:
        """A searcher over the alias users search, refusing an index built for another model."""
        from pintext.serving.base import IndexNotFoundError
        from pintext.serving.meta import IndexMismatchError
        from pintext.serving.rollout import version_name
        from pintext.serving.searcher import Searcher

        try:
            searcher = Searcher.for_index(self.engine, self.name)
        except IndexNotFoundError:
            raise IndexMissing(f"index {self.name!r} does not exist in {self.engine.describe()}: create it with "
                               "`pintext index create` or `pintext ingest FILE`") from None
        except IndexMismatchError as error:
            raise IndexMismatch(str(error)) from None
        try:
            searcher.check(self.expected_meta(searcher.family), str(self.model_dir))
        except IndexMismatchError as error:
            waiting = version_name(self.name, self.encoder.fingerprint)
            if waiting != self.name and self.engine.exists(waiting):
                raise IndexMismatch(f"{error} This model's index {waiting!r} exists but does not serve yet: "
                                    f"pintext index promote --index {self.name} --model {self.model_dir}") from None
            raise IndexMismatch(str(error)) from None
        return searcher
