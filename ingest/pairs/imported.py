"""Imported pairs (`pintext pairs --import FILE --task NAME`): CSV or JSONL rows of anchor and positive texts.

Each import adds or replaces one task in an existing pairs folder and keeps the others; each imported task has
its own dead letter `DIR/rejected.<task>.jsonl`.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import shutil
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from pintext.constants import (
    ANCHOR,
    ANCHOR_ID,
    COUNT,
    POSITIVE,
    POSITIVE_ID,
    WEIGHT,
)
from pintext.ingest.deadletter import DeadLetter
from pintext.ingest.pairs.folder import (
    EVENTS_REJECTED_FILE,
    PINS_FILE,
    STATS_FILE,
    build_aside,
    load_splits,
    save_splits,
    source_record,
    split_all,
    write_outputs,
)
from pintext.ingest.pairs.rules import Pair, PairOptions, query_key, strongest_first
from pintext.ingest.readers import decode_line, parse_json, raw_lines
from pintext.schemas import WHOLE_RECORD, RecordError
from pintext.text import words


def _text_digest(text: str) -> str:
    """The 16 hex digits that name an imported positive without a `positive_id`."""
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


# ---------------------------------------------------------------------------------------------- import


IMPORT_NEEDED = (ANCHOR, POSITIVE)
IMPORT_OPTIONAL = (WEIGHT, COUNT, ANCHOR_ID, POSITIVE_ID)


def _import_rows(path: Path) -> Iterator[tuple[int, Any, str]]:
    """(line, parsed object or RecordError, raw text) for each row of a CSV (with header) or JSONL file.

    Both: read by `raw_lines` (a leading UTF-8 BOM skipped, CRLF like LF, a truncated `.gz` one dead-letter entry
    after its whole lines); invalid UTF-8 is a bad row, never replaced. CSV: the header is checked first (a
    ValueError naming the file, the columns it has and the ones needed); then ONE ROW A LINE: each physical line
    is parsed alone (quotes may hold commas but not a line break), so a broken quote or a row with more or fewer
    fields than the header is dead-lettered with its own line, and never merges the rows after it into one.
    JSONL: `parse_json` (NaN/Infinity and too-deep nesting are bad rows)."""
    name = path.name.lower().removesuffix(".gz")
    return _csv_import_rows(path) if name.endswith(".csv") else _jsonl_import_rows(path)


def _jsonl_import_rows(path: Path) -> Iterator[tuple[int, Any, str]]:
    for line, raw in raw_lines(path):
        if isinstance(raw, RecordError):
            yield line, raw, ""
        elif raw.strip():
            try:
                yield line, parse_json(raw), raw.decode("utf-8")
            except RecordError as error:
                yield line, error, raw.decode("utf-8", errors="replace")  # the raw text, for the dead letter only


def _csv_import_rows(path: Path) -> Iterator[tuple[int, Any, str]]:
    header: list[str] | None = None
    for line, raw in raw_lines(path):
        try:
            if isinstance(raw, RecordError):
                raise raw
            text = decode_line(raw).rstrip("\r\n")
        except RecordError as error:
            if header is None:
                raise ValueError(f"{path}:{line}: the CSV header: {error.reason} ({error.detail})") from None
            yield line, error, raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else ""
            continue
        if not text.strip():
            continue
        try:
            fields = next(csv.reader([text], strict=True))
        except csv.Error as error:
            if header is None:
                raise ValueError(f"{path}:{line}: the CSV header is not valid CSV ({error})") from None
            yield line, RecordError(WHOLE_RECORD, "not a valid CSV row",
                                    f"{error} (an unclosed quote? a field may not hold a line break)"), text
            continue
        if header is None:
            header = _checked_csv_header(path, line, fields)
        elif len(fields) != len(header):
            yield line, RecordError(WHOLE_RECORD, "wrong number of fields",
                                    f"{len(fields)} fields, the header has {len(header)}"), text
        else:
            yield line, dict(zip(header, fields)), text


def _checked_csv_header(path: Path, line: int, fields: list[str]) -> list[str]:
    header = [field.strip() for field in fields]
    missing = [column for column in IMPORT_NEEDED if column not in header]
    if missing:
        hint = next((f" (is it delimited by {sep!r}? use ',')" for sep in (";", "\t", "|")
                     if len(header) == 1 and sep in header[0]), "")
        raise ValueError(f"{path}:{line}: the CSV header has columns {header}; needed: "
                         f"{', '.join(IMPORT_NEEDED)} (optional: {', '.join(IMPORT_OPTIONAL)}){hint}")
    return header


def validate_import_row(row: Any) -> dict[str, Any]:
    """An imported pair: `anchor` and `positive` texts, optional `weight` (> 0), `count`, `anchor_id`, `positive_id`."""
    if isinstance(row, RecordError):
        raise row
    if not isinstance(row, dict):
        raise RecordError(WHOLE_RECORD, "not a JSON object", f"got {type(row).__name__}")
    result: dict[str, Any] = {}
    for field in (ANCHOR, POSITIVE):
        value = row.get(field)
        if value is None:
            raise RecordError(field, "missing")
        if not isinstance(value, str):
            raise RecordError(field, "not a string", f"got {type(value).__name__}")
        if not words(value):
            raise RecordError(field, "no words")
        result[field] = " ".join(value.split())
    for field, kind, default in ((WEIGHT, float, 1.0), (COUNT, int, 1)):
        value = row.get(field)
        if value in (None, ""):
            result[field] = default
            continue
        try:
            number = kind(value)
        except (TypeError, ValueError):
            raise RecordError(field, "not a number", f"got {value!r}") from None
        if not number > 0:
            raise RecordError(field, "not positive", f"got {value!r}")
        result[field] = number
    result[ANCHOR_ID] = str(row.get(ANCHOR_ID) or query_key(result[ANCHOR]))
    result[POSITIVE_ID] = str(row.get(POSITIVE_ID) or "t" + _text_digest(result[POSITIVE]))
    return result


def import_pairs(paths: list[Path], task: str, options: PairOptions,
                 dead_letter: DeadLetter) -> tuple[list[Pair], Counter[str]]:
    """One task's pairs from CSV/JSONL files of anchor, positive (optional weight): merged over all the files,
    capped and filtered like events."""
    merged: dict[tuple[str, str], Pair] = {}
    counters: Counter[str] = Counter()
    for path in paths:
        for line, row, raw in _import_rows(path):
            try:
                record = validate_import_row(row)
            except RecordError as error:
                if options.strict:
                    raise error.located(str(path), line) from None
                dead_letter.add(str(path), line, error, raw)
                continue
            counters["rows_valid"] += 1
            key = (record[ANCHOR_ID], record[POSITIVE_ID])
            if key in merged:
                counters["rows_merged"] += 1
                merged[key].count += record[COUNT]
                merged[key].weight += record[WEIGHT]
            else:
                merged[key] = Pair(record[ANCHOR], record[POSITIVE], *key, record[COUNT], record[WEIGHT])
    by_anchor: dict[str, list[Pair]] = defaultdict(list)
    for pair in merged.values():
        if pair.count < options.min_count:
            counters["pairs_below_min_count"] += 1
            continue
        by_anchor[pair.anchor_id].append(pair)
    pairs: list[Pair] = []
    for anchor_id, group in sorted(by_anchor.items()):
        group.sort(key=partial(strongest_first, task, anchor_id, options.seed))
        counters["pairs_over_anchor_cap"] += max(0, len(group) - options.max_per_anchor)
        pairs.extend(group[: options.max_per_anchor])
    return pairs, counters


def positives_corpus(pairs: Iterable[Pair]) -> dict[str, dict[str, Any]]:
    """The pin corpus of imported pairs: one record per distinct positive (`id` = positive_id, `title` = text)."""
    return {pair.positive_id: {"id": pair.positive_id, "title": pair.positive} for pair in pairs}


#: An imported task's name becomes its folder's and its dead letter's name, so it must be a plain file name.
TASK_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")


def import_rejected_file(task: str) -> str:
    """Each imported task has its own dead letter, so re-importing one task leaves the others' rejections alone."""
    return f"rejected.{task}.jsonl"


def check_task_name(task: str) -> str:
    if not TASK_NAME.fullmatch(task or ""):
        raise ValueError(f"task name {task!r}: use letters, digits, '_' and '-' (it names the folder DIR/<task>/)")
    return task


def _positive_ids(folder: Path) -> set[str]:
    from datasets import load_from_disk

    data = load_from_disk(str(folder))
    return {pin_id for split in data.values() for pin_id in split[POSITIVE_ID]}


def _existing_sources(out_dir: Path) -> list[dict[str, Any]]:
    """The builds that made the pairs folder at `out_dir` (none when it does not exist yet)."""
    if not out_dir.exists():
        return []
    stats_path = out_dir / STATS_FILE
    if not stats_path.is_file():
        if out_dir.is_dir() and not any(out_dir.iterdir()):
            return []
        raise ValueError(f"{out_dir}: exists but is not a pairs folder (no {STATS_FILE}); "
                         "pick another --out or remove it")
    try:
        stats = json.loads(stats_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{stats_path}: not valid JSON ({error}); rebuild the folder or pick another --out") from None
    if "sources" in stats:
        return stats["sources"]
    # Written before builds were recorded: one build (from events when it counted events) made every task.
    kind = "events" if "events_valid" in stats.get("input", {}) else "import"
    return [{"kind": kind, "tasks": list(stats.get("tasks", {})), "files": [], "input": stats.get("input", {}),
             "rejected_file": EVENTS_REJECTED_FILE, "rejected_by_reason": stats.get("rejected_by_reason", {}),
             "options": stats.get("options", {})}]


def _link_or_copy(source: str, target: str) -> None:
    """Kept files are hard links (instant, no extra space): nothing in a pairs folder is modified in place."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def _keep_other_tasks(out_dir: Path, sources: list[dict[str, Any]], replaced: set[str],
                      folder: Path) -> list[dict[str, Any]]:
    """Carry the tasks not being replaced (and their builds' dead letters) into `folder`; returns their sources."""
    kept = []
    for source in sources:
        tasks = [task for task in source["tasks"] if task not in replaced and (out_dir / task).is_dir()]
        if not tasks:
            continue  # every task of that build is replaced: its record and dead letter go with it
        for task in tasks:
            shutil.copytree(out_dir / task, folder / task, copy_function=_link_or_copy)
        rejected = source.get("rejected_file")
        if rejected and (out_dir / rejected).is_file() and not (folder / rejected).exists():
            _link_or_copy(str(out_dir / rejected), str(folder / rejected))
        kept.append({**source, "tasks": tasks})
    return kept


def _read_pins(path: Path) -> Iterator[dict[str, Any]]:
    if path.is_file():
        with path.open(encoding="utf-8") as handle:
            yield from (json.loads(line) for line in handle if line.strip())


def _kept_corpus(out_dir: Path, sources: list[dict[str, Any]], kept: list[dict[str, Any]],
                 kept_splits: dict[str, dict[str, list[Pair]]]) -> dict[str, dict[str, Any]]:
    """The pins of the kept tasks, from the old pins.jsonl: an events build's whole pin corpus while one of its
    tasks is kept, else only the pins that kept pairs point to."""
    kept_pairs = [pair for by_split in kept_splits.values() for rows in by_split.values() for pair in rows]
    wanted = {pair.positive_id for pair in kept_pairs}
    events_kept = any(source["kind"] == "events" for source in kept)
    imported: set[str] = set()
    if events_kept:  # the old corpus mixes the events pins with imported positives: tell them apart
        for source in sources:
            if source["kind"] == "import":
                for task in source["tasks"]:
                    if (out_dir / task).is_dir():
                        imported |= _positive_ids(out_dir / task)
    corpus = {pin["id"]: pin for pin in _read_pins(out_dir / PINS_FILE)
              if pin.get("id") in wanted or (events_kept and pin.get("id") not in imported)}
    for pin_id, pin in positives_corpus(kept_pairs).items():
        corpus.setdefault(pin_id, pin)  # an older folder's pins.jsonl may lack some
    return corpus


def build_imported_pairs(imports: Sequence[tuple[Path, str]], out_dir: Path, options: PairOptions) -> dict[str, Any]:
    """The `pintext pairs --import` job: (file, task) pairs in the same output format, added to `out_dir`.

    Each named task replaces only `out_dir/<task>/` (several files for one task are merged); every other task
    of an existing pairs folder, from events or earlier imports, is kept with its dead letter. Each imported
    task's rejected rows go to `rejected.<task>.jsonl`. stats and pins.jsonl are rebuilt over all the tasks.
    """
    by_task: dict[str, list[Path]] = {}
    for source, task in imports:
        by_task.setdefault(check_task_name(task), []).append(Path(source))
    if not by_task:
        raise ValueError("nothing to import: give --import FILE --task NAME")
    for paths in by_task.values():
        for path in paths:
            if path.is_dir():
                raise IsADirectoryError(21, "a folder, not a file", str(path))
            if not path.is_file():
                raise FileNotFoundError(2, "no such file", str(path))
    out_dir = Path(out_dir).resolve()
    sources = _existing_sources(out_dir)

    def fill(folder: Path) -> dict[str, Any]:
        kept = _keep_other_tasks(out_dir, sources, set(by_task), folder)
        splits = {task: load_splits(folder / task) for source in kept for task in source["tasks"]}
        corpus = _kept_corpus(out_dir, sources, kept, splits)
        added = []
        for task, paths in by_task.items():
            with DeadLetter(folder / import_rejected_file(task)) as dead_letter:
                pairs, counters = import_pairs(paths, task, options, dead_letter)
            splits[task] = split_all({task: pairs}, options)[task]
            save_splits(splits[task], folder / task)
            corpus.update(positives_corpus(pairs))
            added.append(source_record("import", [task], paths, counters, dead_letter, options))
        return write_outputs(folder, splits, corpus, kept + added, options)

    return build_aside(out_dir, fill)
