"""The exact requests a search sends, for pasting into Dev Tools / Kibana Console; works without a node (then with
MODEL/lsh.json or the default token family, and the default window, on the engine asked for)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pintext.api.connection import AUTO, Connection
from pintext.api.search import QueryPlan, fusion_config, query_vector, serving_window
from pintext.errors import Unsupported, UsageError
from pintext.mapping import ID_FIELD


@dataclass
class Requests:
    """Comment lines (`# ...`) and the requests, each (label or None, request line, body)."""

    comments: list[str] = field(default_factory=list)
    requests: list[tuple[str | None, str, dict]] = field(default_factory=list)


def searcher_for_dsl(conn: Connection) -> tuple[Any, bool]:
    """The searcher of the serving index, and whether the node answered; without a node (or index), say so and
    use MODEL/lsh.json or the defaults on the engine asked for (OpenSearch under auto)."""
    from pintext.api.failures import is_unreachable
    from pintext.ingest.indexer import default_lsh
    from pintext.quantize import DEFAULT_VECTOR_TYPE
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
        answering = choose_engine(named, options)
        if named != AUTO or not options.url:
            check_engine(answering, options, by_variable=named == AUTO)
    except EngineUnreachableError:
        answering, offline = ("opensearch" if named == AUTO else named), True
    except (EngineMismatchError, ValueError) as error:  # another engine answers; a URL no client takes
        raise UsageError(redact_options(str(error), options)) from None
    except EngineError:
        answering = named  # refused access: `conn.engine` says so in one line
    conn.retarget(answering)
    conn.engine_checked = True
    try:
        if not offline and conn.engine.exists(conn.name):
            return conn.searcher(), True
    except Exception as error:  # noqa: BLE001 - no node answering is expected here: dsl works offline
        untrusted = is_certificate_failure(error)  # a node answers, over TLS we do not trust: say so
        if untrusted or not is_unreachable(error) and not isinstance(error, (EngineError, IndexNotFoundError)):
            raise
    if conn.target.engine == AUTO:
        conn.retarget("opensearch")
    fixed = conn.model_tokens
    conn.notes(f"note: index {conn.name!r} not found or node unreachable: printing with "
               f"{'MODEL/lsh.json' if fixed else 'the default LSH'}, the default window and the default vector "
               f"type ({DEFAULT_VECTOR_TYPE}): what a new index gets")
    return Searcher(conn.engine, conn.name, fixed or default_lsh(conn.encoder.dim),
                    vector_type=DEFAULT_VECTOR_TYPE), False


def dsl_requests(conn: Connection, text: str, plan: QueryPlan, template: bool = False) -> Requests:
    """What `search` would send for `text` (BM25 when no word is known; both sides with `plan.hybrid`)."""
    from pintext import queries
    from pintext.api.search import check_probes
    from pintext.serving.base import UnsupportedError

    searcher, online = searcher_for_dsl(conn)
    check_probes(searcher, plan.probes)
    vector, known = query_vector(conn, text)
    out = Requests()
    shortened = queries.bm25_note(text)
    if shortened and (plan.hybrid or not known):
        out.comments.append(f"# {shortened}")
    index, k, window, filters = conn.name, plan.k, plan.window, plan.filters
    if not known:
        out.comments.append(f"# no word of {text!r} is in the model's vocabulary: search falls back to BM25")
        out.requests.append((None, *searcher.engine.bm25_request(index, text, k, filters)))
        return out
    serving_window(searcher, k, window)
    if plan.hybrid:
        config = plan.fusion or fusion_config(conn.model_dir)
        size = queries.fusion_depth(k, plan.depth)
        out.requests.append(("bm25", *searcher.engine.bm25_request(index, text, size, filters)))
        request = searcher.query(vector, size, searcher.hybrid_window(size, window), plan.probes, filters,
                                 exact_filter=online)
        out.requests += [("pintext", line, body) for line, body in searcher.engine.requests(index, request)]
        union = (f"; before it, one more request scores BM25's pins that PinText's list lacks by exact cosine (the "
                 f"exact path, filtered by `terms` on `{ID_FIELD}`)" if config.scores_every_candidate else "")
        out.comments.append(f"# hybrid: both requests, then {config.method} fusion in the client (PinText weight "
                            f"{config.weight:g}, rrf_k {config.rrf_k}), top {k}{union}")
        return out
    # Offline there is no count to tell whether a filter is selective: print the token path.
    request = searcher.query(vector, k, window, plan.probes, filters, exact_filter=online)
    if template:
        if filters:
            raise UsageError("--template: the stored template takes no filters; drop --template to print the full "
                             "body")
        params = queries.template_params(request.tokens, request.vector, k=request.k, window=request.window)
        out.requests.append((None, f"GET {index}/_search/template", {"id": queries.SEARCH_TEMPLATE_ID,
                                                                     "params": params}))
        return out
    try:
        out.requests += [(None, line, body) for line, body in searcher.engine.requests(index, request)]
    except UnsupportedError as error:
        raise Unsupported(str(error)) from None
    return out
