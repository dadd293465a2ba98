"""The engine registry: which module serves `--engine NAME`, and how an engine is opened from the CLI's options.

Each engine module has `open_engine(options: EngineOptions) -> Engine`; the module is imported only when its engine
is used, so the client library of an engine nobody asked for is never needed. `--engine auto` (the default) asks
the node at the URL which engine it is (`GET /`): OpenSearch says `version.distribution: opensearch`.
"""

from __future__ import annotations

import importlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pintext.serving.base import Engine

# engine name -> module with `open_engine(options)`
ENGINES: dict[str, str] = {
    "opensearch": "pintext.serving.opensearch",
    "elasticsearch": "pintext.serving.elasticsearch",
    "local": "pintext.serving.local",
}
AUTO = "auto"
# Environment variables naming a node, per engine (the first that is set wins under --engine auto).
URL_ENV = {"opensearch": "OPENSEARCH_URL", "elasticsearch": "ELASTICSEARCH_URL"}
ENGINE_ENV = "PINTEXT_ENGINE"


class EngineError(RuntimeError):
    """The engine could not be chosen or opened; the message says why (never a credential)."""


class EngineUnreachableError(EngineError):
    """No engine answers at the URL."""


class EngineTimeoutError(EngineUnreachableError):
    """The node at the URL accepts connections but does not answer within the timeout."""


def no_answer_message(url: str | None, timeout: float | None) -> str:
    """A node that accepts connections but does not answer (stalled, overloaded, SIGSTOPped)."""
    from pintext.serving.opensearch_client import DEFAULT_TIMEOUT_S

    return (f"the engine at {safe_url(url) if url else 'the managed node'} did not answer within "
            f"{timeout or DEFAULT_TIMEOUT_S:g} s (--timeout SECONDS sets how long to wait)")


class EngineMismatchError(EngineError):
    """The node at the URL is another engine than the one `--engine` names (a usage error)."""


# engine name -> the product's name in messages
PRODUCTS = {"opensearch": "OpenSearch", "elasticsearch": "Elasticsearch"}


@dataclass(frozen=True)
class EngineOptions:
    """How to reach an engine: what the CLI's connection options say."""

    url: str | None = None
    user: str | None = None
    password: str | None = None
    ca_certs: Path | None = None
    insecure: bool = False
    local_dir: Path = Path("pintext-local-index")
    # Seconds a request may wait for an answer, and how long a write keeps retrying a node that does not answer
    # (None: the client's 30 s, and 5 re-sends).
    timeout: float | None = None


# What OpenSearch and Elasticsearch accept as an index (or alias) name, checked before any request.
INDEX_NAME_FORBIDDEN = set('\\/*?"<>| ,#:')
INDEX_NAME_MAX_BYTES = 255
# The engines' `index.max_result_window`: no request may ask for more hits (k) or rescore more (window).
MAX_RESULT_WINDOW = 10_000


def index_name_problem(name: str) -> str | None:
    """Why `name` is not a valid index name for the engines (lowercase, none of `\\ / * ? " < > | , # :` or
    a space, not starting with `_ - +`, not `.` or `..`, at most 255 bytes), or None when it is."""
    if not name:
        return "is empty"
    if name != name.lower():
        return "must be lowercase"
    bad = sorted(set(name) & INDEX_NAME_FORBIDDEN)
    if bad:
        return f"must not contain {' '.join(repr(char) for char in bad)}"
    if name[0] in "_-+":
        return f"must not start with {name[0]!r}"
    if name in (".", ".."):
        return "must not be '.' or '..'"
    if len(name.encode("utf-8")) > INDEX_NAME_MAX_BYTES:
        return f"must be at most {INDEX_NAME_MAX_BYTES} bytes"
    return None


def engine_names() -> list[str]:
    return [AUTO, *ENGINES]


def choose_engine(name: str | None, options: EngineOptions) -> str:
    """The engine to use: the one named; under `auto`, the one whose URL variable is set, else the one that
    answers at --url, else the managed OpenSearch node."""
    chosen = (name or os.environ.get(ENGINE_ENV) or AUTO).lower()
    if chosen != AUTO:
        if chosen not in ENGINES:
            raise EngineError(f"unknown engine {chosen!r} (known: {', '.join(engine_names())})")
        return chosen
    if options.url:
        return detect_engine(options)
    for engine, variable in URL_ENV.items():
        if os.environ.get(variable):
            return engine
    return "opensearch"


def detect_engine(options: EngineOptions) -> str:
    """Which engine answers at `options.url` (asked with opensearch-py, which talks to both)."""
    return ask_node(options, options.url)[0]


def ask_node(options: EngineOptions, url: str | None) -> tuple[str, str | None]:
    """(engine, version) of the node at `url` (`GET /`, asked with opensearch-py, which talks to both; the version
    is None when `GET /` does not say it: `node_version` asks). EngineAccessError for a 401/403/TLS failure,
    EngineUnreachableError when nothing answers."""
    try:
        info = node_client(options, url).info()
    except Exception as error:  # noqa: BLE001 - any failure to reach the node is one message
        problem = access_problem(error, url, options.user, options.password)
        if problem:
            raise EngineAccessError(problem) from None
        # Elasticsearch without its rest-root module (the integ-test distribution) refuses `GET /` with 405;
        # OpenSearch always answers it.
        if getattr(error, "status_code", None) == 405:
            return "elasticsearch", None
        if type(error).__name__ == "ConnectionTimeout":
            raise EngineTimeoutError(no_answer_message(url, options.timeout)) from None
        raise EngineUnreachableError(f"cannot reach the engine at {safe_url(url)}: "
                                     f"{redact(str(error), url, options.password)} (start one, "
                                     "or pass another --url; --engine NAME skips asking which engine it is)")
    version = info.get("version", {}) if isinstance(info, dict) else {}
    engine = "opensearch" if version.get("distribution") == "opensearch" else "elasticsearch"
    return engine, str(version.get("number") or "")


def node_client(options: EngineOptions, url: str | None) -> Any:
    """An opensearch-py client for `url` with the options' credentials and TLS settings."""
    from pintext.serving.opensearch_client import DEFAULT_TIMEOUT_S, connect

    return connect(url=url, user=options.user, password=options.password, verify_certs=not options.insecure,
                   ca_certs=str(options.ca_certs) if options.ca_certs else None,
                   timeout=options.timeout or DEFAULT_TIMEOUT_S)


def node_version(options: EngineOptions, url: str | None) -> str:
    """The version `GET /_nodes/_local` gives (what the integ-test Elasticsearch says instead of `GET /`); "" when
    it does not answer that."""
    try:
        nodes = node_client(options, url).nodes.info(node_id="_local")["nodes"]
        return str(next(iter(nodes.values()))["version"])
    except Exception:  # noqa: BLE001 - the version only decorates the message
        return ""


def engine_url(chosen: str, options: EngineOptions) -> str | None:
    """The URL the engine `chosen` will talk to (its own variable and managed node when --url is not given)."""
    if chosen == "elasticsearch":
        from pintext.serving.elasticsearch import resolve_url

        return resolve_url(options.url)
    from pintext.serving.opensearch_client import resolve_urls

    return ",".join(resolve_urls(options.url))


def check_engine(chosen: str, options: EngineOptions, by_variable: bool = False) -> None:
    """The one place an engine/URL mismatch is named: `--engine elasticsearch` at an OpenSearch node (or the
    reverse; or, under `auto`, `$OPENSEARCH_URL` naming an Elasticsearch node: `by_variable`) is an
    EngineMismatchError saying what answered, before any request of the engine's own (which gave elasticsearch-py's
    UnsupportedProductError traceback, or OpenSearch requests an Elasticsearch node half understands). Nothing
    answering is left to the engine's own requests to report."""
    if chosen not in PRODUCTS:
        return
    url = engine_url(chosen, options)
    try:
        answered, version = ask_node(options, url)
    except EngineTimeoutError:
        raise  # a stalled node: one line after one timeout, not a second wait for the engine's own request
    except EngineUnreachableError:
        return
    if answered != chosen:
        version = node_version(options, url) if version is None else version
        raise EngineMismatchError(mismatch_message(url, answered, version, chosen, by_variable))


def mismatch_message(url: str | None, answered: str, version: str, chosen: str, by_variable: bool = False) -> str:
    what = f"{PRODUCTS[answered]} {version}".strip()
    where = safe_url(url) if url else "the managed node"
    advice = f"use --engine {answered} or auto"
    if by_variable and os.environ.get(URL_ENV[chosen]):
        advice = f"${URL_ENV[chosen]} names it: set ${URL_ENV[answered]} instead, or pass --url"
    return f"the node at {where} is {what}, not {PRODUCTS[chosen]}: {advice}"


def open_engine(name: str | None, options: EngineOptions, check: bool = True) -> Engine:
    """The engine `name` (or `auto`) names, opened with `options`; a named cluster engine is first checked
    against what answers at the URL (`check_engine`) unless `check` is False (the caller did)."""
    warn_if_insecure(options)
    chosen = choose_engine(name, options)
    named = (name or os.environ.get(ENGINE_ENV) or AUTO).lower() != AUTO
    if check and (named or not options.url):  # under auto with --url, choose_engine asked the node already
        check_engine(chosen, options, by_variable=not named)
    module = importlib.import_module(ENGINES[chosen])
    return module.open_engine(options)


# The userinfo of any URL in a text: `scheme://USER:PASSWORD@`. Matched on the text, not parsed, so that a URL the
# parser refuses (a port out of range, a broken IPv6 host) is redacted too.
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^/?#\s'\"@]*@")


def safe_url(url: str | None) -> str:
    """A URL fit for a message: any credentials in it are replaced by `***` (also in a URL no parser accepts)."""
    if not url:
        return "(no URL)"
    return _USERINFO.sub(r"\g<scheme>***@", url)


def url_password(url: str | None) -> str | None:
    """The password in `url`'s userinfo (as typed and decoded), or None; never raises."""
    if not url:
        return None
    match = _USERINFO.search(url)
    if not match:
        return None
    userinfo = match.group(0)[len(match.group("scheme")):-1]
    return userinfo.split(":", 1)[1] if ":" in userinfo else None


def redact(text: str, url: str | None = None, password: str | None = None) -> str:
    """`text` (an error message, maybe the client's own) without credentials: every URL's userinfo becomes `***`,
    and the password (given, or the one in `url` and the URL variables) wherever else it appears."""
    from urllib.parse import unquote

    cleaned = safe_url(text) if text else text
    secrets = {password, url_password(url), *(url_password(os.environ.get(name)) for name in URL_ENV.values())}
    for secret in sorted({s for item in secrets if item for s in (item, unquote(item))}, key=len, reverse=True):
        cleaned = cleaned.replace(secret, "***")
    return cleaned


def redact_options(text: str, options: EngineOptions) -> str:
    """`redact` for the CLI's connection options."""
    return redact(text, options.url, options.password)


# ---- access failures: one line each, the same for every command and both cluster engines ------------------------

# Engine-neutral: the same lines serve OpenSearch and Elasticsearch (both variables feed --user/--password).
CREDENTIALS_HINT = "check --user/--password or OPENSEARCH_USER/OPENSEARCH_PASSWORD (or ELASTICSEARCH_*)"
CA_HINT = "the CA printed by `pintext opensearch|elasticsearch up --secure`"
# The security plugin's 403 body: "no permissions for [indices:data/write/bulk] and User [name=reader, ...]";
# Elasticsearch's: "action [indices:admin/delete] is unauthorized for user [reader] ..." (a bulk item's names the
# shard-level action, `indices:data/write/bulk[s]`: the `[s]` is dropped, so both engines name the same action).
_DENIED_ACTION = re.compile(r"no permissions for \[(?P<actions>[^\]]*)\]"
                            r"|action \[(?P<action>[^\[\]]+)(?:\[\w+\])?\] is unauthorized")
_insecure_warned = False


class EngineAccessError(EngineError):
    """The engine answered but refused us: bad credentials (401), a missing permission (403), or its TLS
    certificate is not trusted."""


def error_status(error: BaseException) -> int | None:
    """The HTTP status of a client error: opensearch-py's `status_code`, elasticsearch-py's `meta.status`."""
    for status in (getattr(error, "status_code", None), getattr(getattr(error, "meta", None), "status", None)):
        if isinstance(status, int):
            return status
    return None


def is_certificate_failure(error: BaseException) -> bool:
    """opensearch-py's SSLError, elastic-transport's TlsError, or any text naming a failed verification."""
    names = {kind.__name__ for kind in type(error).__mro__}
    return bool(names & {"SSLError", "TlsError", "SSLCertVerificationError"}) or \
        "CERTIFICATE_VERIFY_FAILED" in str(error)


# What OpenSSL says when the other side of a TLS handshake answers in plain HTTP.
_PLAIN_HTTP_ANSWERS = ("WRONG_VERSION_NUMBER", "wrong version number", "record layer failure",
                       "packet length too long")


def speaks_plain_http(error: BaseException) -> bool:
    """An `https://` URL at a node that answers plain HTTP: the TLS handshake fails on its first bytes."""
    return any(answer in str(error) for answer in _PLAIN_HTTP_ANSWERS)


def plain_http_url(where: str) -> str:
    """`where` (a URL, maybe several comma-separated) with `https://` replaced by `http://`."""
    return re.sub(r"\bhttps://", "http://", where) if "https://" in where else "http://"


def denied_action(error: BaseException) -> str | None:
    """The action(s) a 403 names (`indices:data/write/bulk`), from the error's text or body."""
    for text in (str(getattr(error, "info", "") or ""), str(getattr(error, "body", "") or ""), str(error)):
        match = _DENIED_ACTION.search(text)
        if match:
            return match.group("actions") or match.group("action")
    return None


def access_problem(error: BaseException, url: str | None, user: str | None, password: str | None = None) -> str | None:
    """The one line for an authentication (401), authorization (403) or TLS certificate failure, else None."""
    where = safe_url(url) if url else "the managed node"
    if speaks_plain_http(error):
        return (f"the node at {where} speaks plain HTTP, not HTTPS (its TLS handshake failed before any "
                f"certificate): use {plain_http_url(where)}")
    if is_certificate_failure(error):
        return (f"TLS certificate of {where} not trusted: pass --ca-certs FILE ({CA_HINT}), or --insecure to skip "
                "verification")
    status = error_status(error)
    if status == 401:
        if not user:
            return f"authentication failed at {where} (401): no credentials were given: {CREDENTIALS_HINT}"
        return f"authentication failed for user {user} at {where} (401): {CREDENTIALS_HINT}"
    if status == 403:
        action = denied_action(error)
        missing = f"no permission for [{action}]" if action else redact(str(error), url, password)
        return (f"permission denied for user {user or '(none)'} at {where} (403): {missing}; ask for a role that "
                "grants it (docs/security.md)")
    return None


def warn_if_insecure(options: EngineOptions) -> None:
    """`--insecure`: one warning line on stderr per process, and no per-request warning from urllib3."""
    global _insecure_warned
    if not options.insecure:
        return
    import sys
    import warnings

    try:
        from urllib3.exceptions import InsecureRequestWarning

        warnings.simplefilter("ignore", InsecureRequestWarning)
    except ImportError:  # urllib3 comes with both clients; nothing to silence without it
        pass
    if not _insecure_warned:
        _insecure_warned = True
        print(f"warning: --insecure: the TLS certificate of {safe_url(options.url) if options.url else 'the node'} "
              "is not verified (anyone in between can read the credentials and the data)", file=sys.stderr)
