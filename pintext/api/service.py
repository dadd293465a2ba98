"""`pintext.open(model, url=..., index=...)`: a model served through one index name on one engine.

    import pintext

    pins = pintext.open("model", url="http://localhost:9200", index="pins")
    pins.ingest("pins.jsonl")                  # creates the index (tokens tuned on the file) when it is new
    for hit in pins.search("red running shoes", k=10):
        print(hit.id, round(hit.score, 3), hit.title)

Every method raises `pintext.PinTextError` subclasses with one clear message (`pintext.errors`); the `pintext`
command is a thin caller of these methods that prints what they return.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from pintext.api.connection import AUTO, DEFAULT_INDEX, DEFAULT_LOCAL_DIR, Connection, Notes, Target, quiet
from pintext.api.failures import Reach, translated
from pintext.api.indexing import Created, Tuning, checked_vector_type, token_family
from pintext.api.ingesting import IngestOptions
from pintext.api.search import Answer, QueryPlan
from pintext.threads import one_blas_thread

DEFAULT_K = 10
DEFAULT_DEPTH = 100


class PinText:
    """A PinText model and the index name users search, on one engine (see the module docstring)."""

    def __init__(self, model: str | Path | None, url: str | None = None, index: str = DEFAULT_INDEX, *,
                 engine: str = AUTO, user: str | None = None, password: str | None = None,
                 ca_certs: str | Path | None = None, insecure: bool = False,
                 local_dir: str | Path = DEFAULT_LOCAL_DIR, timeout: float | None = None,
                 notes: Notes = quiet) -> None:
        target = Target(engine, url, user, password, Path(ca_certs) if ca_certs else None, insecure,
                        Path(local_dir), timeout)
        self.connection = Connection(Path(model) if model is not None else None, index, target, notes)
        self._searcher: Any = None

    # ---- plumbing ------------------------------------------------------------------------------------------

    def _reach(self, raw_filters: bool = False) -> Reach:
        target = self.connection.target
        return Reach(target.url, target.user, target.password, target.timeout, raw_filters)

    def searcher(self) -> Any:
        """The searcher of the index the name serves (resolved once; a promote or create through this object
        resolves it again)."""
        if self._searcher is None:
            with translated(self._reach()):
                self._searcher = self.connection.searcher()
        return self._searcher

    @property
    def encoder(self) -> Any:
        return self.connection.encoder

    @property
    def index(self) -> str:
        return self.connection.name

    @property
    def engine(self) -> Any:
        with translated(self._reach()):
            return self.connection.engine

    def plan(self, k: int = DEFAULT_K, filters: Any = None, hybrid: bool = False, window: int | None = None,
             probes: int | None = None, fusion: str | None = None, fusion_weight: float | None = None,
             depth: int = DEFAULT_DEPTH, match_weight: float | None = None) -> QueryPlan:
        """The ranking choices of a search, checked before any request: the model's MODEL/match.json and (with
        hybrid) MODEL/hybrid.json, with the given overrides."""
        from pintext.api.search import check_result_limits, exact_match_config, filters_from, fusion_config

        check_result_limits(k, window)
        chosen = filters_from(filters)
        encoder = self.connection.encoder  # no model (or a broken one) is said before its files are read
        model = self.connection.model_dir
        return QueryPlan(k=k, window=window, probes=probes, hybrid=hybrid,
                         fusion=fusion_config(model, fusion, fusion_weight) if hybrid else None, depth=depth,
                         filters=chosen, match=exact_match_config(model, encoder, match_weight))

    # ---- the index -----------------------------------------------------------------------------------------

    def create_index(self, pins: str | Path | None = None, *, shards: int = 1, replicas: int | None = None,
                     target_recall: float = 0.95, tune: bool = True, tune_queries: str | Path | None = None,
                     tokens: str | None = None, vector_type: str | None = None) -> Created:
        """This model's index behind the name, its tokens tuned on `pins` (a pins JSONL file) when given; the
        name's first index serves at once, later ones after `promote()`. `vector_type`: what the new index's
        vector field holds, "int8" (the default) or "float32"; an existing index keeps its own."""
        from pintext.api.indexing import create_index

        tuning = Tuning(Path(pins) if pins else None, target_recall, tune,
                        Path(tune_queries) if tune_queries else None, token_family(tokens),
                        checked_vector_type(vector_type))
        with translated(self._reach()):
            created = create_index(self.connection, shards, replicas, tuning)
        self._searcher = None
        return created

    def ingest(self, pins: str | Path | Iterable[Mapping[str, Any]], *, batch: int = 500, workers: int | None = None,
               resume: bool = False, strict: bool = False, dead_letter: str | Path | None = None,
               checkpoint: str | Path | None = None, target_recall: float = 0.95, tune: bool = True,
               tune_queries: str | Path | None = None, tokens: str | None = None, vector_type: str | None = None,
               on_batch: Callable[[Any], None] | None = None) -> dict:
        """Index pins (a JSONL(.gz) file, or pin dicts) by id; bad records go to the dead letter and are counted.
        Returns the summary: indexed, created, updated, rejected (by reason), docs/s, dead letter, checkpoint.
        `tokens`, `vector_type` (and tuning) apply when this call creates the index (see `create_index`)."""
        from pintext.api.ingesting import ingest_file

        options = IngestOptions(batch=batch, resume=resume, strict=strict,
                                dead_letter=Path(dead_letter) if dead_letter else None,
                                checkpoint=Path(checkpoint) if checkpoint else None,
                                **({"workers": workers} if workers else {}))
        with _as_file(pins) as path, translated(self._reach()):
            tuning = Tuning(path, target_recall, tune, Path(tune_queries) if tune_queries else None,
                            token_family(tokens), checked_vector_type(vector_type))
            summary = ingest_file(self.connection, path, options, tuning, on_batch)
        self._searcher = None
        return summary

    def promote(self, *, delete_old: bool = False, allow_empty: bool = False) -> Any:
        """Serve this model's index under the name (one atomic alias swap); returns what moved."""
        from pintext.api.indexing import promote

        with translated(self._reach()):
            done = promote(self.connection, delete_old, allow_empty)
        self._searcher = None
        return done

    def delete(self, *, version: str | None = None, force: bool = False) -> list[tuple[str, bool]]:
        """Delete the name's indexes (or one `version`); (index, deleted) each."""
        from pintext.api.indexing import delete_versions

        with translated(self._reach()):
            done = delete_versions(self.connection, version, force)
        # What this handle read of the deleted indexes goes with them: a later create_index makes the index anew.
        self._searcher = None
        self.connection.forget_index_meta()
        return done

    def info(self) -> dict:
        """The name's alias, serving index and versions (docs, shards, `_meta`)."""
        from pintext.api.indexing import index_info

        with translated(self._reach()):
            return index_info(self.connection)

    # ---- queries -------------------------------------------------------------------------------------------

    def search(self, text: str, k: int = DEFAULT_K, *, filters: Any = None, hybrid: bool = False,
               explain: bool = False, plan: QueryPlan | None = None, **choices: Any) -> Answer:
        """Ranked pins for a query text; iterate the answer for its hits. `filters`: {field: value or [values]}
        on keyword fields (id, board, annotations, link). `hybrid` fuses BM25 in; `explain` adds, per hit, the
        query words and pin words that carry its score. Other choices (window, probes, fusion, fusion_weight,
        depth, match_weight) as `plan()` takes them."""
        from pintext.api.queries import require_query_text
        from pintext.api.search import answer_query, check_probes

        require_query_text(text)
        plan = plan or self.plan(k, filters, hybrid, **choices)
        searcher = self.searcher()
        check_probes(searcher, plan.probes)
        with translated(self._reach(raw_filters=bool(plan.filters and plan.filters.raw))), one_blas_thread():
            answer = answer_query(self.connection, searcher, text, plan)
        if explain:
            from pintext.api.explain import explain_hits

            answer.explanations = explain_hits(self.encoder, text, answer.hits)
        return answer

    def related(self, pin_id: str, k: int = DEFAULT_K, *, filters: Any = None, explain: bool = False,
                plan: QueryPlan | None = None, **choices: Any) -> Answer:
        """Pins nearest to a stored pin, itself excluded."""
        from pintext.api.search import answer_related, check_probes

        plan = plan or self.plan(k, filters, **choices)
        searcher = self.searcher()
        check_probes(searcher, plan.probes)
        with translated(self._reach(raw_filters=bool(plan.filters and plan.filters.raw))), one_blas_thread():
            answer = answer_related(searcher, pin_id, plan)
            if explain:
                from pintext.api.explain import explain_hits

                source, _vector = searcher.engine.get(searcher.index, pin_id)
                answer.explanations = explain_hits(self.encoder, None, answer.hits, query_pin=source)
        return answer

    def dsl(self, text: str, k: int = DEFAULT_K, *, filters: Any = None, hybrid: bool = False,
            template: bool = False, plan: QueryPlan | None = None, **choices: Any) -> Any:
        """The requests `search` would send (`pintext.api.dsl.Requests`); without a node, for OpenSearch with the
        model's own token config."""
        from pintext.api.dsl import dsl_requests
        from pintext.api.queries import require_query_text

        require_query_text(text)
        plan = plan or self.plan(k, filters, hybrid, **choices)
        with translated(self._reach(raw_filters=bool(plan.filters and plan.filters.raw))):
            return dsl_requests(self.connection, text, plan, template)


class _as_file:
    """A pins file as given, or pin dicts written to a temporary JSONL file (removed afterwards), so every record
    takes the same checked path (line numbers in the dead letter are the records' 1-based positions)."""

    def __init__(self, pins: str | Path | Iterable[Mapping[str, Any]]) -> None:
        self.pins = pins
        self.temporary: Path | None = None

    def __enter__(self) -> Path:
        if isinstance(self.pins, (str, Path)):
            return Path(self.pins)
        import json
        import tempfile

        with tempfile.NamedTemporaryFile("w", suffix=".jsonl", prefix="pintext-records-", delete=False,
                                         encoding="utf-8") as out:
            for record in self.pins:
                out.write(json.dumps(record, ensure_ascii=False) + "\n")
        self.temporary = Path(out.name)
        return self.temporary

    def __exit__(self, *exc: object) -> None:
        if self.temporary is not None:
            self.temporary.unlink(missing_ok=True)


def open(model: str | Path | None, url: str | None = None, index: str = DEFAULT_INDEX, **options: Any) -> PinText:
    """A model served through `index` on the engine at `url` (see `PinText`; `engine=` "auto", "opensearch",
    "elasticsearch" or "local"; `user`, `password`, `ca_certs`, `insecure`, `local_dir`, `timeout`)."""
    return PinText(model, url, index, **options)
