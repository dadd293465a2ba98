"""OpenSearch User Behavior Insights (UBI) as engagement in: `pintext pairs --ubi FILE|URL`.

UBI keeps engagement in two indices: `ubi_queries` (one doc per search: `query_id`, `client_id`, `user_query`,
`timestamp`) and `ubi_events` (`action_name`, `query_id`, `client_id`/`user_id`, `timestamp`,
`event_attributes.object.object_id`, `event_attributes.position.ordinal`). A source is either a bulk ndjson export
(`{"index": {"_index": ..., "_id": ...}}` action lines, each followed by its document) or a cluster URL, read with
a point in time + `search_after` (bounded memory; plain `search_after` on `_id` where the node has no PIT).

Reading turns them into events in the project's schema (surface `search`, anchor = the query's text joined by
`query_id`) and hands them to the pairs step unchanged (`pintext.ingest.pairs.build_pairs`). Every UBI document
read is either used (a query loaded for the join, an event written) or dropped with a reason; the ones that look
like engagement but cannot be used (malformed, unknown query id, unknown object, ...) are also dead-lettered with
their file and line (or `_index/_id` for a cluster). Actions that are not engagement (`search`, `page_exit`, ...)
are only counted, as `ubi_action_<name>_ignored`.

`pintext search --ubi-log` writes the same bulk format (`pintext.serving.ubi_log`), so a search log reads back
with `pintext pairs --ubi FILE`. docs/data.md ("UBI") has the long form.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections import Counter
from collections.abc import Callable, Container, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit, urlunsplit

from pintext.constants import SEARCH
from pintext.errors import PinTextError
from pintext.ingest.deadletter import DeadLetter
from pintext.ingest.readers import ReportedElsewhere, open_binary, read_records
from pintext.schemas import ACTIONS, WHOLE_RECORD, RecordError, parse_timestamp, validate_pin
from pintext.serving.ubi_log import EVENTS_INDEX, QUERIES_INDEX
from pintext.text import words

IGNORE = "ignore"
#: UBI action -> project action; anything else is counted as `ubi_action_<name>_ignored`.
DEFAULT_ACTIONS: dict[str, str] = {"click": "click", "add_to_cart": "save", "purchase": "save",
                                   "impression": "impression"}
UBI_EVENTS_FILE = "ubi-events.jsonl"
UBI_REJECTED_FILE = "rejected-ubi.jsonl"
PAGE_SIZE = 1000
PIT_KEEP_ALIVE = "2m"
#: The pins index fields that are not pin text (left out when reading pins from a cluster).
INDEX_ONLY_FIELDS = ("vector", "lsh_tokens")

Progress = Callable[[str, int, int | None], None]  # (what, done so far, total or None)


def action_table(overrides: Iterable[str] = ()) -> dict[str, str]:
    """The default UBI -> project action table with `NAME=ACTION` overrides (ACTION: impression, click, save,
    hide, or `ignore`)."""
    table = dict(DEFAULT_ACTIONS)
    for item in overrides:
        name, sep, action = item.partition("=")
        name, action = name.strip(), action.strip()
        if not sep or not name or not action:
            raise ValueError(f"--ubi-action {item!r}: write NAME=ACTION, e.g. add_to_cart=save")
        if action not in (*ACTIONS, IGNORE):
            raise ValueError(f"--ubi-action {item!r}: ACTION must be one of {'|'.join((*ACTIONS, IGNORE))}")
        table[name] = action
    return {name: action for name, action in table.items() if action != IGNORE}


def redact_url(url: str) -> str:
    """A URL without its user:password part: what may be printed or stored."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def is_url(source: str) -> bool:
    return urlsplit(source).scheme in ("http", "https")


# ---------------------------------------------------------------------------------------------- reading


@dataclass
class UbiDoc:
    """One UBI document as read: its index (None when unknown), `_id`, the parsed object (or the error that
    stopped parsing), where it was read (a line number, or `_index/_id`) and its raw text."""

    index: str | None
    doc_id: str | None
    doc: Any
    where: int | str
    raw: str


BULK_WITH_DOC = ("index", "create")
BULK_OTHER = ("update", "delete")


def _guess_index(doc: Any) -> str | None:
    """The index of a document written without a bulk action line: events have an `action_name`."""
    if not isinstance(doc, dict):
        return None
    if "action_name" in doc:
        return EVENTS_INDEX
    if "user_query" in doc and "query_id" in doc:
        return QUERIES_INDEX
    return None


def _parse_json(raw: bytes) -> Any:
    try:
        return json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as error:
        return RecordError(WHOLE_RECORD, "not valid UTF-8", str(error))
    except json.JSONDecodeError as error:
        return RecordError(WHOLE_RECORD, "not valid JSON", str(error))


def file_docs(path: Path) -> Iterator[UbiDoc]:
    """The documents of a bulk ndjson file (plain or .gz), in order. An action line (`index`/`create`) names
    the next line's index and `_id`; `update`/`delete` actions yield a doc of index `<bulk update>`/`<bulk
    delete>` (counted, never used); a line that is not an action line is a document whose index is guessed."""
    with open_binary(path) as handle:
        pending: tuple[str | None, str | None, int] | None = None  # (index, _id, action line) awaiting its doc
        for line, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            text = raw.decode("utf-8", errors="replace")
            parsed = _parse_json(raw)
            if pending is not None:
                index, doc_id, _ = pending
                pending = None
                yield UbiDoc(index, doc_id, parsed, line, text)
                continue
            if isinstance(parsed, dict) and len(parsed) == 1:
                (action, meta), = parsed.items()
                if action in BULK_WITH_DOC + BULK_OTHER and isinstance(meta, dict):
                    index = meta.get("_index") if isinstance(meta.get("_index"), str) else None
                    doc_id = meta.get("_id")
                    doc_id = str(doc_id) if doc_id is not None else None
                    if action == "delete":
                        yield UbiDoc("<bulk delete>", doc_id, parsed, line, text)
                    elif action == "update":
                        pending = ("<bulk update>", doc_id, line)
                    else:
                        pending = (index, doc_id, line)
                    continue
            yield UbiDoc(_guess_index(parsed), None, parsed, line, text)
        if pending is not None:
            error = RecordError(WHOLE_RECORD, "bulk action line without its document", "the file ends after it")
            yield UbiDoc(pending[0], pending[1], error, pending[2], "")


def scan_index(client: Any, index: str, progress: Progress | None = None, source_excludes: Iterable[str] = (),
               notes: list[str] | None = None, pit: bool = True) -> Iterator[dict[str, Any]]:
    """Every hit of `index` (with `_index`, `_id`, `_source`), a page at a time: a point in time + `search_after`
    on `_shard_doc`; where the node has no PIT, `search_after` on `_id` (stable, but it does not see a fixed
    snapshot: a note says so; `pit=False` takes that path on purpose). `progress(index, done, total)` after each
    page."""
    from opensearchpy.exceptions import NotFoundError, RequestError, TransportError

    total = int(client.count(index=index)["count"])
    excludes = list(source_excludes)
    pit_id: str | None = None
    try:
        if not pit:
            raise RequestError(400, "point in time not used", {})
        pit_id = client.create_pit(index=index, params={"keep_alive": PIT_KEEP_ALIVE})["pit_id"]
    except (NotFoundError, RequestError, TransportError) as error:
        if isinstance(error, NotFoundError) and "index_not_found" in str(error):
            raise
        if notes is not None:
            notes.append(f"{index}: the node has no point in time ({getattr(error, 'error', error)}): read with "
                         "search_after on _id, which does not see a fixed snapshot (writes meanwhile may show)")
    done = 0
    after: list[Any] | None = None
    # The PIT's own tiebreaker; OpenSearch 2.x has PIT but not `_shard_doc`, so there the PIT is read on `_id`
    # (still one fixed snapshot, and `_id` is a total order).
    pit_sort: list[dict[str, str]] = [{"_shard_doc": "asc"}]
    try:
        while True:
            body: dict[str, Any] = {"size": PAGE_SIZE, "track_total_hits": False}
            if excludes:
                body["_source"] = {"excludes": excludes}
            if after is not None:
                body["search_after"] = after
            if pit_id is not None:
                body["pit"] = {"id": pit_id, "keep_alive": PIT_KEEP_ALIVE}
                body["sort"] = pit_sort
                try:
                    response = client.search(body=body)
                except RequestError as error:
                    if after is not None or "_shard_doc" not in str(error) or pit_sort != [{"_shard_doc": "asc"}]:
                        raise
                    pit_sort = [{"_id": "asc"}]
                    continue
            else:
                body["sort"] = [{"_id": "asc"}]
                response = client.search(index=index, body=body)
            hits = response["hits"]["hits"]
            if not hits:
                return
            yield from hits
            done += len(hits)
            if progress:
                progress(index, done, total)
            after = hits[-1]["sort"]
    finally:
        if pit_id is not None:
            try:
                client.delete_pit(body={"pit_id": [pit_id]})
            except TransportError:
                pass  # it expires on its own after PIT_KEEP_ALIVE


def cluster_docs(client: Any, index: str, kind: str, progress: Progress | None,
                 notes: list[str]) -> Iterator[UbiDoc]:
    """The documents of one UBI index of a cluster, as `UbiDoc`s located by `_index/_id`."""
    for hit in scan_index(client, index, progress, notes=notes):
        source = hit.get("_source")
        where = f"{hit.get('_index', index)}/{hit.get('_id')}"
        yield UbiDoc(kind, str(hit.get("_id")), source, where, json.dumps(source, ensure_ascii=False))


def write_index_pins(client: Any, index: str, path: Path, progress: Progress | None = None,
                     notes: list[str] | None = None) -> int:
    """The pins of a pins index (what `pintext ingest` writes: `id`, `title`, `description`, ...) as a pins
    file, without the index-only fields; returns how many were written."""
    written = 0
    with path.open("w", encoding="utf-8") as handle:
        for hit in scan_index(client, index, progress, INDEX_ONLY_FIELDS, notes):
            pin = {key: value for key, value in (hit.get("_source") or {}).items() if key not in INDEX_ONLY_FIELDS}
            pin.setdefault("id", str(hit.get("_id")))
            handle.write(json.dumps(pin, ensure_ascii=False) + "\n")
            written += 1
    return written


# ------------------------------------------------------------------------------------------ normalizing


@dataclass
class UbiQuery:
    key: str  # the anchor id the pairs step gives it (query_key)
    text: str
    timestamp: Any
    user: str | None
    doc: UbiDoc


def _str_field(doc: dict[str, Any], name: str) -> str | None:
    value = doc.get(name)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    if isinstance(value, str) and value.strip():
        return value
    return None


def object_id_of(doc: dict[str, Any]) -> str | None:
    """`event_attributes.object.object_id` as a string (None when absent or empty)."""
    attributes = doc.get("event_attributes")
    target = attributes.get("object") if isinstance(attributes, dict) else None
    return _str_field(target, "object_id") if isinstance(target, dict) else None


@dataclass
class UbiReader:
    """Turns UBI documents into project events: queries first (`add_query`), then events (`event`).

    Counts every document as used or dropped by reason (`counters`); dead-letters the unusable ones.
    """

    actions: dict[str, str]
    known_pins: Container[str]
    dead_letter: DeadLetter
    source: str
    strict: bool = False
    used: Counter[str] = field(default_factory=Counter)
    dropped: Counter[str] = field(default_factory=Counter)
    by_action: Counter[str] = field(default_factory=Counter)
    queries: dict[str, UbiQuery] = field(default_factory=dict)
    _canonical: dict[str, str] = field(default_factory=dict)
    _wordless: set[str] = field(default_factory=set)
    _again: dict[str, list[UbiQuery]] = field(default_factory=dict)

    @property
    def read(self) -> int:
        return sum(self.used.values()) + sum(self.dropped.values())

    def reject(self, doc: UbiDoc, reason: str, error: RecordError) -> None:
        self.dropped[reason] += 1
        if self.strict:
            raise error.located(self.source, doc.where)
        self.dead_letter.add(self.source, doc.where, error, doc.raw)

    def other(self, doc: UbiDoc) -> None:
        """A document that is neither a query nor an event: malformed, or of another index / bulk action."""
        if isinstance(doc.doc, RecordError):
            self.reject(doc, "malformed", doc.doc)
        elif doc.index in ("<bulk delete>", "<bulk update>"):
            self.dropped[f"bulk_{doc.index[6:-1]}_ignored"] += 1
        elif doc.index is None:
            self.reject(doc, "index_unknown", RecordError("_index", "not a UBI document",
                                                          "no bulk action line and no action_name/user_query"))
        else:
            self.dropped["index_other"] += 1

    def add_query(self, doc: UbiDoc) -> None:
        """One `ubi_queries` document: kept for the join by `query_id`."""
        record = doc.doc
        if isinstance(record, RecordError):
            self.reject(doc, "malformed", record)
            return
        if not isinstance(record, dict):
            self.reject(doc, "malformed", RecordError(WHOLE_RECORD, "not a JSON object"))
            return
        query_id = _str_field(record, "query_id")
        if query_id is None:
            self.reject(doc, "query_id_missing", RecordError("query_id", "missing"))
            return
        text = record.get("user_query")
        if not isinstance(text, str) or not text.strip():
            self.reject(doc, "query_text_missing", RecordError("user_query", "missing"))
            return
        key = " ".join(words(text))
        if not key:
            self._wordless.add(query_id)
            self.reject(doc, "query_no_words", RecordError("user_query", "no words", repr(text)))
            return
        text = " ".join(text.split())
        query = UbiQuery(key, text, record.get("timestamp"),
                         _str_field(record, "user_id") or _str_field(record, "client_id"), doc)
        known = self._canonical.get(key)
        if known is None or text < known:
            self._canonical[key] = text  # one text per anchor, whatever the read order
        if query_id in self.queries:
            self._again.setdefault(query_id, []).append(query)
            return
        self.queries[query_id] = query
        self.used["queries"] += 1

    def finish_queries(self) -> None:
        """After the last query: a query_id seen more than once keeps the smallest of its texts (the same in any
        read order); the docs with that text again are duplicates, the others conflicts (dead-lettered)."""
        for query_id, again in self._again.items():
            every = sorted([self.queries[query_id], *again], key=lambda q: (q.text, str(q.timestamp), q.user or ""))
            kept = self.queries[query_id] = every[0]
            for other in every[1:]:
                if other.text == kept.text:
                    self.dropped["query_duplicate"] += 1
                    continue
                self.reject(other.doc, "query_id_conflict", RecordError(
                    "query_id", "another query has this id", f"kept {kept.text!r}, not {other.text!r}"))
        self._again.clear()
        self._wordless -= self.queries.keys()

    def event(self, doc: UbiDoc) -> dict[str, Any] | None:
        """One `ubi_events` document as a project event, or None (counted, and dead-lettered when it is bad)."""
        record = doc.doc
        if isinstance(record, RecordError):
            self.reject(doc, "malformed", record)
            return None
        if not isinstance(record, dict):
            self.reject(doc, "malformed", RecordError(WHOLE_RECORD, "not a JSON object"))
            return None
        name = _str_field(record, "action_name")
        if name is None:
            self.reject(doc, "action_name_missing", RecordError("action_name", "missing"))
            return None
        action = self.actions.get(name)
        if action is None:
            self.dropped[f"ubi_action_{name}_ignored"] += 1
            return None
        query_id = _str_field(record, "query_id")
        if query_id is None:
            self.reject(doc, "query_id_missing", RecordError("query_id", "missing", f"{name} without a query"))
            return None
        query = self.queries.get(query_id)
        if query is None:
            why = "its query has no words" if query_id in self._wordless else f"no ubi_queries doc has {query_id!r}"
            self.reject(doc, "query_id_unknown", RecordError("query_id", "unknown query", why))
            return None
        pin_id = object_id_of(record)
        if pin_id is None:
            self.reject(doc, "object_id_missing", RecordError("event_attributes.object.object_id", "missing"))
            return None
        if pin_id not in self.known_pins:
            self.reject(doc, "object_unknown", RecordError("event_attributes.object.object_id", "unknown pin",
                                                           repr(pin_id)))
            return None
        user = _str_field(record, "user_id") or _str_field(record, "client_id") or query.user
        if user is None:
            self.reject(doc, "user_missing", RecordError("client_id", "missing", "no user_id or client_id"))
            return None
        timestamp = record.get("timestamp", query.timestamp)
        try:
            parse_timestamp(timestamp, "timestamp")
        except RecordError as error:
            self.reject(doc, "timestamp_invalid", error)
            return None
        event_id = doc.doc_id or hashlib.blake2b(
            json.dumps(record, sort_keys=True, ensure_ascii=False).encode(), digest_size=12).hexdigest()
        self.used["events"] += 1
        self.by_action[f"{name}->{action}"] += 1
        return {"event_id": f"ubi:{event_id}", "ts": timestamp, "user_id": user, "surface": SEARCH,
                "action": action, "pin_id": pin_id, "query": self._canonical[query.key],
                "ubi_query_id": query_id, "ubi_source": self.source, "ubi_line": doc.where}

    def stats(self, notes: list[str]) -> dict[str, Any]:
        return {
            "source": self.source,
            "read": self.read,
            "used": sum(self.used.values()),
            "queries_used": self.used["queries"],
            "events_used": self.used["events"],
            "dropped": dict(sorted(self.dropped.items())),
            "events_by_action": dict(sorted(self.by_action.items())),
            "actions": dict(sorted(self.actions.items())),
            "rejected": self.dead_letter.count,
            "rejected_file": UBI_REJECTED_FILE,
            "notes": notes,
        }


def _known_pin_ids(pins: Path) -> set[str]:
    """The ids of the valid pins of a pins file (the pairs step reads it again and dead-letters the bad lines)."""
    return {pin["id"] for _, pin in read_records(pins, validate_pin, ReportedElsewhere())}


@dataclass(frozen=True)
class UbiSource:
    """Where UBI comes from: a bulk ndjson file, or a cluster (URL) with its index names."""

    location: str
    queries_index: str = QUERIES_INDEX
    events_index: str = EVENTS_INDEX
    pins_index: str | None = None
    user: str | None = None
    password: str | None = None

    @property
    def on_cluster(self) -> bool:
        return is_url(self.location)

    @property
    def shown(self) -> str:
        return redact_url(self.location) if self.on_cluster else self.location

    def client(self) -> Any:
        from pintext.serving.opensearch_client import connect

        return connect(self.location if self.on_cluster else None, self.user, self.password)


def normalize(source: UbiSource, pins: Path, events_out: Path, actions: dict[str, str], dead_letter: DeadLetter,
              strict: bool = False, progress: Progress | None = None) -> dict[str, Any]:
    """Read `source`, write its engagement as project events to `events_out`; returns the UBI stats."""
    notes: list[str] = []
    reader = UbiReader(actions, _known_pin_ids(pins), dead_letter, source.shown, strict)
    with events_out.open("w", encoding="utf-8") as handle:
        if source.on_cluster:
            client = source.client()
            for doc in cluster_docs(client, source.queries_index, QUERIES_INDEX, progress, notes):
                reader.add_query(doc)
            reader.finish_queries()
            _write_events(reader, cluster_docs(client, source.events_index, EVENTS_INDEX, progress, notes), handle)
        else:
            path = Path(source.location)
            if not path.is_file():
                raise FileNotFoundError(2, "no such file", str(path))
            for doc in file_docs(path):  # pass 1: the queries (events may come before their query)
                if doc.index == QUERIES_INDEX:
                    reader.add_query(doc)
                elif doc.index != EVENTS_INDEX:
                    reader.other(doc)
                if progress:
                    progress("queries", reader.read, None)
            reader.finish_queries()
            events = (doc for doc in file_docs(path) if doc.index == EVENTS_INDEX)
            _write_events(reader, events, handle, progress)
    return reader.stats(notes)


def _write_events(reader: UbiReader, docs: Iterable[UbiDoc], handle: IO[str],
                  progress: Progress | None = None) -> None:
    for doc in docs:
        event = reader.event(doc)
        if event is not None:
            handle.write(json.dumps(event, ensure_ascii=False) + "\n")
        if progress and not reader.read % 1000:
            progress("events", reader.read, None)


def build_ubi_pairs(source: UbiSource, pins: Path | None, users: Path | None, out_dir: Path, options: Any,
                    actions: dict[str, str], progress: Progress | None = None,
                    pairs_progress: Callable[[int], None] | None = None,
                    build: Callable[..., dict[str, Any]] | None = None) -> dict[str, Any]:
    """`pintext pairs --ubi`: UBI -> project events (a work file) -> the pairs step (`build`, with
    `build_pairs`' signature: the DuckDB or the in-memory step; default in-memory). The pairs folder gets the
    normalized events (`ubi-events.jsonl`), the UBI dead letter (`rejected-ubi.jsonl`), and `stats.json` /
    `stats.md` a `ubi` section (read / used / dropped by reason)."""
    from pintext.ingest.pairs.folder import STATS_FILE
    from pintext.ingest.pairs.memory import build_pairs

    if pins is None and source.pins_index is None:
        raise ValueError("--ubi needs the pins' texts: --pins FILE or --ubi-pins-index NAME")
    out_dir = Path(out_dir).resolve()
    work = out_dir.with_name(f".{out_dir.name}.ubi-{os.getpid()}")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        notes: list[str] = []
        if source.pins_index is not None:
            pins = work / "pins.jsonl"
            write_index_pins(source.client(), source.pins_index, pins, progress, notes)
        assert pins is not None
        events = work / UBI_EVENTS_FILE
        with DeadLetter(work / UBI_REJECTED_FILE) as dead_letter:
            ubi = normalize(source, Path(pins), events, actions, dead_letter, options.strict, progress)
        ubi["notes"] = notes + ubi["notes"]
        if source.pins_index is not None:
            ubi["pins_index"] = source.pins_index
        stats = (build or build_pairs)(events, Path(pins), users, out_dir, options, pairs_progress)
        for name in (UBI_EVENTS_FILE, UBI_REJECTED_FILE):
            shutil.move(str(work / name), str(out_dir / name))
        if source.pins_index is not None:
            shutil.move(str(work / "pins.jsonl"), str(out_dir / "ubi-pins.jsonl"))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for record in stats.get("sources", []):
        record["files"] = [str(out_dir / UBI_EVENTS_FILE) if name == str(events) else name
                           for name in record["files"]]
    stats["ubi"] = ubi
    (out_dir / STATS_FILE).write_text(json.dumps(stats, indent=2) + "\n", encoding="utf-8")
    with (out_dir / "stats.md").open("a", encoding="utf-8") as handle:
        handle.write("\n" + ubi_markdown(ubi))
    return stats


class UbiSourceError(PinTextError):
    """The UBI source (a cluster, or a file that cannot be read) failed; the message names it, never its password."""


def build_ubi_pairs_shown(progress: Any, location: str, events: Path | None, pins: Path | None, users: Path | None,
                          out_dir: Path, options: Any, overrides: list[str], queries_index: str, events_index: str,
                          pins_index: str | None, pairs_progress: Callable[[int], None] | None = None,
                          build: Callable[..., dict[str, Any]] | None = None) -> dict[str, Any]:
    """`build_ubi_pairs` from the command's options: checks them (bad usage raises ValueError), shows reading
    progress on a Rich `progress`, and turns a source that fails into one `UbiSourceError` (exit 1)."""
    if events is not None:
        raise ValueError("use either --events or --ubi, not both")
    source = UbiSource(location, queries_index, events_index, pins_index)
    if pins is not None and pins_index is not None:
        raise ValueError("give the pins' texts once: --pins FILE or --ubi-pins-index NAME")
    task = progress.add_task(f"reading UBI from {source.shown}", total=None)

    def report(what: str, done: int, total: int | None) -> None:
        of = f"/{total:,}" if total is not None else ""
        progress.update(task, description=f"reading UBI {what}: {done:,}{of} documents")

    try:
        return build_ubi_pairs(source, pins, users, out_dir, options, action_table(overrides), report,
                               pairs_progress, build)
    except OSError as error:
        if isinstance(error, FileNotFoundError):
            raise
        raise UbiSourceError(f"UBI {source.shown}: {error}") from None
    except Exception as error:  # opensearch-py's errors: the node did not answer or refused
        from opensearchpy.exceptions import NotFoundError, OpenSearchException

        if isinstance(error, NotFoundError):
            raise UbiSourceError(f"UBI {source.shown}: no such index ({getattr(error, 'info', error)}); check "
                                 "--ubi-queries-index, --ubi-events-index, --ubi-pins-index") from None
        if isinstance(error, OpenSearchException):
            raise UbiSourceError(f"UBI {source.shown}: the cluster failed: {type(error).__name__}: "
                                 f"{getattr(error, 'error', '') or error}") from None
        raise


def ubi_markdown(ubi: dict[str, Any]) -> str:
    lines = ["## Input: UBI", "", f"Source: `{ubi['source']}`. Read {ubi['read']} documents: used {ubi['used']} "
             f"({ubi['queries_used']} queries, {ubi['events_used']} events), dropped "
             f"{sum(ubi['dropped'].values())}; {ubi['rejected']} dead-lettered -> `{ubi['rejected_file']}`.", "",
             "| dropped because | documents |", "|---|---:|"]
    lines += [f"| {reason} | {count} |" for reason, count in ubi["dropped"].items()]
    lines += ["", "| UBI action -> action | events |", "|---|---:|"]
    lines += [f"| {name} | {count} |" for name, count in ubi["events_by_action"].items()]
    lines += [f"\nNote: {note}" for note in ubi.get("notes", [])]
    return "\n".join(lines) + "\n"


def ubi_summary(ubi: dict[str, Any]) -> str:
    """One line for the terminal."""
    dropped = sum(ubi["dropped"].values())
    top = ", ".join(f"{reason} x{count}" for reason, count in Counter(ubi["dropped"]).most_common(4))
    return (f"UBI {ubi['source']}: read {ubi['read']}, used {ubi['used']} ({ubi['queries_used']} queries, "
            f"{ubi['events_used']} events), dropped {dropped}" + (f" ({top})" if top else "")
            + f"; {ubi['rejected']} dead-lettered -> {ubi['rejected_file']}")


__all__ = ["DEFAULT_ACTIONS", "UbiReader", "UbiSource", "UbiSourceError", "action_table", "build_ubi_pairs",
           "build_ubi_pairs_shown", "file_docs", "normalize", "redact_url", "scan_index", "ubi_summary"]
