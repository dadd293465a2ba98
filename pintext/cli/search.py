"""CLI commands: `search`, `related`, `dsl` (the query policy is `pintext.api.search`; this module prints)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from pintext.cli.errors import USAGE, fail
from pintext.cli.failures import reports_serving_errors
from pintext.cli.options import (
    DEFAULT_INDEX,
    DEFAULT_LOCAL_DIR,
    CaCertsOption,
    DepthOption,
    EngineName,
    EngineOption,
    ExplainOption,
    FilterJsonOption,
    FilterOption,
    FusionOption,
    FusionWeightOption,
    HybridOption,
    IndexOption,
    InsecureOption,
    JsonOption,
    KOption,
    LocalDirOption,
    MatchWeightOption,
    ModelOption,
    PasswordOption,
    ProbesOption,
    TimeoutOption,
    UrlOption,
    UserOption,
    WindowOption,
    open_pintext,
)


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
    """Search pins by text: token candidates (filtered), exact cosine rescore, then the word-match signal
    (MODEL/match.json, --match-weight); --hybrid fuses BM25 in. A
    query with no known word gets BM25 results."""
    from pintext.api.queries import read_queries, require_query_text
    from pintext.api.search import parse_filters

    texts = read_queries(queries_file) if queries_file else ([require_query_text(text)] if text else [])
    if not texts:
        fail("give a query text or --queries FILE", USAGE)
    served = open_pintext(model, index, url, user, password, ca_certs, insecure, engine, local_dir, timeout)
    plan = served.plan(k, parse_filters(filters, filter_json), hybrid, window, probes,
                       fusion.value if fusion else None, fusion_weight, depth, match_weight)
    served.searcher()
    for query in texts:
        started = time.perf_counter()
        answer = served.search(query, plan=plan, explain=explain)
        emit("query", query, answer, (time.perf_counter() - started) * 1000, json_output, explain)
        if ubi_log is not None:
            from pintext.serving.ubi_log import log_answer

            log_answer(ubi_log, query, answer, served.searcher(), k)


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
    from pintext.api.search import parse_filters

    served = open_pintext(model, index, url, user, password, ca_certs, insecure, engine, local_dir)
    plan = served.plan(k, parse_filters(filters, filter_json), window=window, probes=probes)
    served.searcher()
    started = time.perf_counter()
    answer = served.related(pin_id, plan=plan, explain=explain)
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
    from pintext.api.queries import require_query_text
    from pintext.api.search import parse_filters

    require_query_text(text)
    served = open_pintext(model, index, url, user, password, ca_certs, insecure, engine)
    plan = served.plan(k, parse_filters(filters, filter_json), hybrid, window, probes,
                       fusion.value if fusion else None, fusion_weight, depth)
    sent = served.dsl(text, plan=plan, template=template)
    for comment in sent.comments:
        typer.echo(comment)
    typer.echo("\n\n".join((f"# {label}\n" if label else "") + f"{line}\n{json.dumps(body, indent=2)}"
                           for label, line, body in sent.requests))


# ---- output ----------------------------------------------------------------------------------------------------


def show_hits(title: str, answer: Any, explain: bool, took_ms: float) -> None:
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
    if explain and answer.explanations:
        show_words(answer)


def show_words(answer: Any) -> None:
    """Which words carry each hit's cosine (`pintext.api.explain`): a table of its own, under the hits."""
    from rich.console import Console
    from rich.table import Table

    from pintext.api.explain import SHOWN_WORDS

    table = Table(title="words carrying each hit's cosine (share of it)")
    for column in ("rank", "id", "query words", "pin words"):
        table.add_column(column, justify="right" if column == "rank" else "left")
    for rank, item in enumerate(answer.explanations, start=1):
        query_side, pin_side = (", ".join(f"{word} {share:.2f}" for word, share in terms[:SHOWN_WORDS]) or "-"
                                for terms in (item.query_words, item.pin_words))
        table.add_row(str(rank), shown(item.id), shown(query_side), shown(pin_side))
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


def emit(label: str, query: str, answer: Any, took_ms: float, json_output: bool, explain: bool) -> None:
    if json_output:
        typer.echo(json.dumps(answer.to_json(label, query, took_ms)))
    else:
        show_hits(f"{label}: {query}", answer, explain, took_ms)


def register(app: typer.Typer) -> None:
    app.command("search")(reports_serving_errors(search))
    app.command("related")(reports_serving_errors(related))
    app.command("dsl")(reports_serving_errors(dsl))
