"""Engine and client failures turned into `pintext.errors` types, each one line that names no credential.

The serving protocol raises its own errors (index missing, mismatched, unsupported, a bad filter); the engine
clients raise theirs (no node answering, 401/403, an untrusted certificate, a 400 to a user's raw filter). Every
call of the Python API runs inside `translated(...)`, so a caller sees only `PinTextError`s for these.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass

from pintext.errors import BadInput, EngineUnavailable, IndexMismatch, IndexMissing, PinTextError, Unsupported


@dataclass(frozen=True)
class Reach:
    """What a message may say about where the call went (its URL without a password) and how long it waited."""

    url: str | None = None
    user: str | None = None
    password: str | None = None
    timeout: float | None = None
    raw_filters: bool = False  # the call carries a user's raw DSL filter: a 400 is that filter's fault

    def shown_url(self) -> str | None:
        return self.url or os.environ.get("OPENSEARCH_URL") or os.environ.get("ELASTICSEARCH_URL")


def is_unreachable(error: BaseException) -> bool:
    """True for a client's "no node answers" (opensearch-py and elasticsearch-py both call it ConnectionError)."""
    for kind in type(error).__mro__:
        if kind.__name__ in ("ConnectionError", "ConnectionTimeout") and kind.__module__.split(".")[0] in (
                "opensearchpy", "elastic_transport", "elasticsearch"):
            return True
    return False


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


def refused_filter(error: BaseException, raw_filters: bool) -> str | None:
    """The one line for a 400 to a request carrying a raw filter, or for a raw filter of more clauses than Lucene
    takes (a 500 "maxClauseCount"): the user's DSL is at fault, not PinText's request (without a raw filter such an
    error stays an exception: PinText sizes its own requests, `pintext.queries.bm25_text`)."""
    from pintext.serving.engines import error_status

    status = error_status(error)
    if not raw_filters or status != 400 and "maxClauseCount" not in str(error):
        return None
    return f"--filter-json: the engine refused the query ({status}): {engine_reason(error)}"


def translate(error: BaseException, reach: Reach) -> PinTextError | None:
    """The `PinTextError` for a failure of the serving protocol or an engine client; None for anything else (a
    bug, which must stay a traceback)."""
    from pintext.serving.base import IndexMismatchError, IndexNotFoundError, PinNotFoundError, UnsupportedError
    from pintext.serving.engines import access_problem, no_answer_message, redact, safe_url
    from pintext.serving.filters import FilterError

    message = str(error).strip("'\"")
    for kind, ours in ((IndexMismatchError, IndexMismatch), (IndexNotFoundError, IndexMissing),
                       (PinNotFoundError, IndexMissing), (UnsupportedError, Unsupported), (FilterError, BadInput)):
        if isinstance(error, kind):
            return ours(message)
    url = reach.shown_url()
    # 401, 403 and an untrusted certificate first: a TLS failure is also a "connection error".
    problem = access_problem(error, url, reach.user, reach.password)
    if problem:
        return EngineUnavailable(problem)
    refused = refused_filter(error, reach.raw_filters)
    if refused:
        return BadInput(redact(refused, url, reach.password))
    if not is_unreachable(error):
        return None
    if type(error).__name__ == "ConnectionTimeout":
        return EngineUnavailable(no_answer_message(url, reach.timeout))
    detail = getattr(error, "error", None) or getattr(error, "message", None) or type(error).__name__
    detail = redact(str(detail), url, reach.password)
    return EngineUnavailable(f"cannot reach the engine at {safe_url(url) if url else 'the managed node'}: {detail} "
                             "(start one with `pintext opensearch up` / `pintext elasticsearch up`, or pass --url)")


@contextlib.contextmanager
def translated(reach: Reach) -> Iterator[None]:
    """Run a block, raising the `PinTextError` a serving or client failure stands for (see `translate`)."""
    try:
        yield
    except PinTextError:
        raise
    except Exception as error:
        ours = translate(error, reach)
        if ours is None:
            raise
        raise ours from None
