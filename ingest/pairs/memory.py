"""Engagement events -> positive (anchor, pin) text pairs per task, split by anchor, saved as `datasets`.

Rules (docs/data.md has the long form):

- Tasks: search (anchor = the query), related (anchor = the subject pin's text), homefeed (anchor = the user's
  interest texts joined with ", "; one anchor per user). The positive is always the engaged pin's text.
- Only clicks and saves are positive; impressions are ignored. A user's engagement with a (anchor, pin) counts
  once, with the weight of its strongest action (save > click by default). A hide by the same user on the same
  (anchor, pin), before or after, cancels that user's engagement.
- An event delivered twice (same `event_id`) counts once.
- `count` is the number of users whose engagement survived; `weight` is the sum of their weights. Pairs with
  `count < min_count` are dropped; each anchor keeps its `max_per_anchor` strongest pins.
- Splits are by anchor: a hash of (seed, task, anchor_id) puts every pair of an anchor in the same split.

Output: `DIR/<task>/` (a `DatasetDict` with splits train/validation/test), `DIR/pins.jsonl` (the valid pin
corpus), `DIR/rejected.jsonl` (dead letter), `DIR/stats.json` and `DIR/stats.md`. The folder is built next
to `DIR` and swapped in at the end, so re-running over an existing folder is safe.

Imported pairs (`build_imported_pairs`) add or replace one task each in an existing folder and keep the
others; each imported task has its own dead letter `DIR/rejected.<task>.jsonl`. `stats.json` lists every
build that contributed (`sources`), and its stats and `pins.jsonl` cover all the tasks present.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import shutil
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from functools import partial
from itertools import combinations
from pathlib import Path
from typing import Any

from pintext.atomic import atomic_folder
from pintext.constants import (
    ANCHOR,
    ANCHOR_ID,
    COUNT,
    HOMEFEED,
    PAIR_COLUMNS,
    POSITIVE,
    POSITIVE_ID,
    RELATED,
    SEARCH,
    SPLITS,
    TASKS,
    TEST,
    TRAIN,
    VALIDATION,
    WEIGHT,
)
from pintext.ingest.deadletter import DeadLetter
from pintext.ingest.readers import decode_line, parse_json, raw_lines, read_located_records, read_records
from pintext.schemas import WHOLE_RECORD, RecordError, pin_text, validate_event, validate_pin, validate_user
from pintext.text import words


@dataclass(frozen=True)
class PairOptions:
    """How events become pairs and how pairs are split."""

    save_weight: float = 1.0
    click_weight: float = 0.5
    min_count: int = 1
    max_per_anchor: int = 50
    seed: int = 0
    validation_share: float = 0.1
    test_share: float = 0.1
    strict: bool = False

    def __post_init__(self) -> None:
        if not (0 <= self.validation_share and 0 <= self.test_share and self.validation_share + self.test_share < 1):
            raise ValueError("validation and test shares must be >= 0 and sum to less than 1")
        if self.min_count < 1 or self.max_per_anchor < 1:
            raise ValueError("min_count and max_per_anchor must be at least 1")


@dataclass
class Pair:
    """One merged positive pair; its fields are PAIR_COLUMNS, in that order."""

    anchor: str
    positive: str
    anchor_id: str
    positive_id: str
    count: int
    weight: float


def query_key(query: str) -> str:
    """The anchor id of a query: its normalized words, space-joined (so "Red  Shoes" == "red shoes")."""
    return " ".join(words(query))


def split_of(task: str, anchor_id: str, options: PairOptions) -> str:
    """Deterministic split for an anchor: a seeded hash, so the same anchor always lands in the same split."""
    digest = hashlib.blake2b(f"{options.seed}\x1f{task}\x1f{anchor_id}".encode(), digest_size=8).digest()
    unit = int.from_bytes(digest, "big") / 2**64
    if unit < options.test_share:
        return TEST
    if unit < options.test_share + options.validation_share:
        return VALIDATION
    return TRAIN


def _strongest_first(task: str, anchor_id: str, seed: int, pair: Pair) -> tuple[float, int, int]:
    """Sort key of an anchor's pairs: heaviest, then most users, then a seeded hash (stable across runs)."""
    return -pair.weight, -pair.count, _tie_break(task, anchor_id, pair.positive_id, seed)


def _tie_break(task: str, anchor_id: str, positive_id: str, seed: int) -> int:
    key = f"{seed}\x1f{task}\x1f{anchor_id}\x1f{positive_id}"
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big")


def _text_digest(text: str) -> str:
    """The 16 hex digits that name an imported positive without a `positive_id`."""
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


class EngagementAggregator:
    """Collects positive engagement and hides per (task, anchor_id, pin_id, user) and merges them into pairs."""

    def __init__(self, options: PairOptions) -> None:
        self.options = options
        self.positive: dict[tuple[str, str, str], dict[str, float]] = defaultdict(dict)
        self.hidden: set[tuple[str, str, str, str]] = set()
        self.anchor_text: dict[tuple[str, str], str] = {}
        self.counters: Counter[str] = Counter()

    def add(self, task: str, anchor_id: str, anchor: str, pin_id: str, user: str, action: str) -> None:
        """Record one click, save or hide."""
        self.anchor_text.setdefault((task, anchor_id), anchor)
        if action == "hide":
            self.hidden.add((task, anchor_id, pin_id, user))
            return
        weight = self.options.save_weight if action == "save" else self.options.click_weight
        users = self.positive[(task, anchor_id, pin_id)]
        users[user] = max(users.get(user, 0.0), weight)

    def pairs(self, positive_text: Callable[[str], str]) -> dict[str, list[Pair]]:
        """Merged pairs per task after hides, min count and the per-anchor cap."""
        by_anchor: dict[tuple[str, str], list[Pair]] = defaultdict(list)
        for (task, anchor_id, pin_id), users in self.positive.items():
            kept = {user: weight for user, weight in users.items()
                    if (task, anchor_id, pin_id, user) not in self.hidden}
            self.counters["engagements_cancelled_by_hide"] += len(users) - len(kept)
            if not kept:
                self.counters["pairs_cancelled_by_hide"] += 1
                continue
            if len(kept) < self.options.min_count:
                self.counters["pairs_below_min_count"] += 1
                continue
            by_anchor[(task, anchor_id)].append(
                Pair(self.anchor_text[(task, anchor_id)], positive_text(pin_id), anchor_id, pin_id,
                     len(kept), float(sum(kept.values())))
            )
        result: dict[str, list[Pair]] = {task: [] for task in TASKS}
        for (task, anchor_id), pairs in sorted(by_anchor.items()):
            pairs.sort(key=partial(_strongest_first, task, anchor_id, self.options.seed))
            self.counters["pairs_over_anchor_cap"] += max(0, len(pairs) - self.options.max_per_anchor)
            result.setdefault(task, []).extend(pairs[: self.options.max_per_anchor])
        return result


def load_pins(path: Path, dead_letter: DeadLetter, strict: bool, counters: Counter[str]) -> dict[str, dict[str, Any]]:
    """Valid pins by id; a later duplicate id replaces the earlier one (counted)."""
    pins: dict[str, dict[str, Any]] = {}
    for _line, pin in read_records(path, validate_pin, dead_letter, strict):
        if pin["id"] in pins:
            counters["pins_duplicate_id"] += 1
        pins[pin["id"]] = pin
    return pins


def load_users(path: Path, dead_letter: DeadLetter, strict: bool, counters: Counter[str]) -> dict[str, list[str]]:
    """Valid users' interest texts by id."""
    users: dict[str, list[str]] = {}
    for _line, user in read_records(path, validate_user, dead_letter, strict):
        if user["id"] in users:
            counters["users_duplicate_id"] += 1
        users[user["id"]] = [text.strip() for text in user["interests"]]
    return users


def _reject(dead_letter: DeadLetter, strict: bool, source: str, line: int, error: RecordError,
            record: dict[str, Any]) -> None:
    if strict:
        raise error.located(source, line)
    dead_letter.add(source, line, error, json.dumps(record, ensure_ascii=False))


#: `classify_engagement` outcomes: an engagement to aggregate, or the counter that skipped it (a rejection has
#: outcome REJECTED and an error).
ENGAGED = "engaged"
REJECTED = "rejected"
SELF_PAIR = "self_pairs_dropped"
HOMEFEED_WITHOUT_USERS = "homefeed_without_users_file"
HOMEFEED_WITHOUT_INTERESTS = "homefeed_user_without_interests"


def classify_engagement(
    event: dict[str, Any], pins: dict[str, dict[str, Any]], users: dict[str, list[str]] | None
) -> tuple[str, str, str, RecordError | None]:
    """What one valid, first-seen click/save/hide becomes: `(outcome, anchor_id, anchor, error)`.

    The rules shared by every engine: search anchors are the query (id = `query_key`, rejected without words),
    related anchors the subject pin's text (a pin related to itself is dropped), homefeed anchors the user's
    interests (skipped without a users file or interests; an unknown user is rejected).
    """
    task, user, pin = event["surface"], event["user_id"], event["pin_id"]
    if task == SEARCH:
        anchor_id = query_key(event["query"])
        if not anchor_id:
            return REJECTED, "", "", RecordError("query", "no words")
        return ENGAGED, anchor_id, " ".join(event["query"].split()), None
    if task == RELATED:
        anchor_id = event["subject_pin_id"]
        if anchor_id == pin:
            return SELF_PAIR, anchor_id, "", None
        return ENGAGED, anchor_id, pin_text(pins[anchor_id]), None
    if users is None:
        return HOMEFEED_WITHOUT_USERS, "", "", None
    if user not in users:
        return REJECTED, "", "", RecordError("user_id", "unknown user", repr(user))
    if not users[user]:
        return HOMEFEED_WITHOUT_INTERESTS, user, "", None
    return ENGAGED, user, ", ".join(users[user]), None


def collect_engagement(
    events_path: Path,
    pins: dict[str, dict[str, Any]],
    users: dict[str, list[str]] | None,
    options: PairOptions,
    dead_letter: DeadLetter,
    progress: Callable[[int], None] | None = None,
) -> EngagementAggregator:
    """Stream the events once and feed every valid, first-seen click/save/hide to an aggregator.

    `progress(n)` is called with the number of valid events read so far, every 10,000 events. `users=None` (no
    users file): homefeed events are counted as `homefeed_without_users_file` and skipped.
    """
    aggregator = EngagementAggregator(options)
    counters = aggregator.counters
    seen_event_ids: set[str] = set()
    validate = partial(validate_event, known_pins=pins)
    for source, line, event in read_located_records(events_path, validate, dead_letter, options.strict):
        counters["events_valid"] += 1
        if progress and counters["events_valid"] % 10_000 == 0:
            progress(counters["events_valid"])
        if event["event_id"] in seen_event_ids:
            counters["events_duplicate"] += 1
            continue
        seen_event_ids.add(event["event_id"])
        counters[f"action_{event['action']}"] += 1
        if event["action"] == "impression":
            continue
        outcome, anchor_id, anchor, error = classify_engagement(event, pins, users)
        if error is not None:
            _reject(dead_letter, options.strict, source, line, error, event)
        elif outcome != ENGAGED:
            counters[outcome] += 1
        else:
            aggregator.add(event["surface"], anchor_id, anchor, event["pin_id"], event["user_id"], event["action"])
    return aggregator


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
        group.sort(key=partial(_strongest_first, task, anchor_id, options.seed))
        counters["pairs_over_anchor_cap"] += max(0, len(group) - options.max_per_anchor)
        pairs.extend(group[: options.max_per_anchor])
    return pairs, counters


def positives_corpus(pairs: Iterable[Pair]) -> dict[str, dict[str, Any]]:
    """The pin corpus of imported pairs: one record per distinct positive (`id` = positive_id, `title` = text)."""
    return {pair.positive_id: {"id": pair.positive_id, "title": pair.positive} for pair in pairs}


# ----------------------------------------------------------------------------------------------- stats


def _word_set(text: str, cache: dict[str, frozenset[str]]) -> frozenset[str]:
    found = cache.get(text)
    if found is None:
        found = cache[text] = frozenset(words(text))
    return found


def pair_stats(splits: dict[str, dict[str, list[Pair]]]) -> dict[str, Any]:
    """Pairs and anchors per task and split, vocabularies, cross-task word overlap, zero-overlap shares."""
    cache: dict[str, frozenset[str]] = {}
    tasks: dict[str, Any] = {}
    vocabularies: dict[str, set[str]] = {}
    for task, by_split in splits.items():
        vocabulary: set[str] = set()
        zero_overlap = total = 0
        per_split = {}
        for split, pairs in by_split.items():
            per_split[split] = {"pairs": len(pairs), "anchors": len({pair.anchor_id for pair in pairs}),
                                "positives": len({pair.positive_id for pair in pairs})}
            for pair in pairs:
                anchor_words, positive_words = _word_set(pair.anchor, cache), _word_set(pair.positive, cache)
                vocabulary |= anchor_words | positive_words
                zero_overlap += not (anchor_words & positive_words)
                total += 1
        vocabularies[task] = vocabulary
        tasks[task] = {
            "splits": per_split,
            "pairs": total,
            "vocabulary": len(vocabulary),
            "zero_word_overlap_share": round(zero_overlap / total, 4) if total else None,
        }
    overlap = {
        f"{first}~{second}": {
            "shared_words": len(vocabularies[first] & vocabularies[second]),
            "jaccard": round(len(vocabularies[first] & vocabularies[second])
                             / max(1, len(vocabularies[first] | vocabularies[second])), 4),
        }
        for first, second in combinations(sorted(vocabularies), 2)
    }
    union = set().union(*vocabularies.values()) if vocabularies else set()
    return {"tasks": tasks, "vocabulary": len(union), "task_word_overlap": overlap}


def stats_markdown(stats: dict[str, Any]) -> str:
    """The stats as a short Markdown report."""
    lines = ["# Pair data", "", "| task | split | pairs | anchors | positives |", "|---|---|---:|---:|---:|"]
    for task, info in stats["tasks"].items():
        for split, numbers in info["splits"].items():
            lines.append(f"| {task} | {split} | {numbers['pairs']} | {numbers['anchors']} | {numbers['positives']} |")
    lines += ["", "| task | pairs | vocabulary | pairs sharing no word (anchor vs positive) |", "|---|---:|---:|---:|"]
    for task, info in stats["tasks"].items():
        share = info["zero_word_overlap_share"]
        shown = "-" if share is None else f"{share:.1%}"
        lines.append(f"| {task} | {info['pairs']} | {info['vocabulary']} | {shown} |")
    lines += ["", f"Vocabulary over all tasks: {stats['vocabulary']} words.", ""]
    if stats["task_word_overlap"]:
        lines += ["| tasks | shared words | Jaccard |", "|---|---:|---:|"]
        for name, numbers in stats["task_word_overlap"].items():
            lines.append(f"| {name.replace('~', ' / ')} | {numbers['shared_words']} | {numbers['jaccard']} |")
        lines.append("")
    for source in stats.get("sources", []):
        files = ", ".join(f"`{name}`" for name in source["files"]) or "(not recorded)"
        lines += [f"## Input: {', '.join(source['tasks'])} (from {source['kind']})", "", f"Files: {files}. "
                  f"Rejected: {source['input'].get('rejected', 0)} -> `{source['rejected_file']}`.", "",
                  "| counter | value |", "|---|---:|"]
        lines += [f"| {key} | {value} |" for key, value in sorted(source["input"].items())]
        lines.append("")
    return "\n".join(lines).rstrip("\n") + "\n"


# ---------------------------------------------------------------------------------------------- output


FEATURES_SPEC = {ANCHOR: "string", POSITIVE: "string", ANCHOR_ID: "string", POSITIVE_ID: "string",
                 COUNT: "int64", WEIGHT: "float64"}


def save_task(pairs: Iterable[tuple[str, Pair]], folder: Path) -> None:
    """One task's pairs, each with its split, as a DatasetDict on disk."""
    from datasets import Dataset, DatasetDict, Features, Value, disable_progress_bars

    disable_progress_bars()  # callers print their own summary

    features = Features({name: Value(kind) for name, kind in FEATURES_SPEC.items()})
    by_split: dict[str, list[Pair]] = {split: [] for split in SPLITS}
    for split, pair in pairs:
        by_split[split].append(pair)
    dataset = DatasetDict({
        split: Dataset.from_dict({name: [getattr(pair, name) for pair in rows] for name in PAIR_COLUMNS},
                                 features=features)
        for split, rows in by_split.items()
    })
    # At least one shard per split: an empty split saved with zero shards cannot be loaded back.
    shards = {split: max(1, len(rows) // 500_000 + 1) for split, rows in by_split.items()}
    dataset.save_to_disk(str(folder), num_shards=shards)


def _split_all(pairs_by_task: dict[str, list[Pair]], options: PairOptions) -> dict[str, dict[str, list[Pair]]]:
    splits: dict[str, dict[str, list[Pair]]] = {}
    for task, pairs in pairs_by_task.items():
        splits[task] = {split: [] for split in SPLITS}
        for pair in pairs:
            splits[task][split_of(task, pair.anchor_id, options)].append(pair)
    return splits


def _build_aside(out_dir: Path, fill: Callable[[Path], dict[str, Any]]) -> dict[str, Any]:
    """Let `fill` write a complete pairs folder next to `out_dir`, then swap it in (`pintext.atomic.atomic_folder`);
    a failure (a full disk included) leaves `out_dir` as it was. Returns what `fill` returns (the stats)."""
    with atomic_folder(Path(out_dir).resolve(), "pairs folder") as partial_dir:
        return fill(partial_dir)


def _source_record(kind: str, tasks: Iterable[str], files: Iterable[Path], counters: Counter[str],
                   dead_letter: DeadLetter, options: PairOptions) -> dict[str, Any]:
    """What one build contributed to a pairs folder: its tasks, input files, counters and dead letter."""
    return {
        "kind": kind,
        "tasks": list(tasks),
        "files": [str(path) for path in files],
        "input": {**dict(counters), "rejected": dead_letter.count},
        "rejected_file": dead_letter.path.name,
        "rejected_by_reason": dict(dead_letter.by_reason),
        "options": asdict(options),
    }


def _task_order(task: str) -> tuple[int, str]:
    return (TASKS.index(task), "") if task in TASKS else (len(TASKS), task)


def _write_outputs(folder: Path, splits: dict[str, dict[str, list[Pair]]], corpus: dict[str, dict[str, Any]],
                   sources: list[dict[str, Any]], options: PairOptions) -> dict[str, Any]:
    """pins.jsonl, stats.json and stats.md over every task in `splits`; `input` sums the sources' counters."""
    with (folder / PINS_FILE).open("w", encoding="utf-8") as handle:
        handle.writelines(json.dumps(pin, ensure_ascii=False) + "\n" for pin in corpus.values())
    stats = pair_stats({task: splits[task] for task in sorted(splits, key=_task_order)})
    totals: Counter[str] = Counter({"rejected": 0})
    reasons: Counter[str] = Counter()
    for source in sources:
        totals.update(source["input"])
        reasons.update(source["rejected_by_reason"])
    stats["input"] = dict(totals)
    stats["rejected_by_reason"] = dict(reasons)
    stats["sources"] = sources
    stats["options"] = asdict(options)
    (folder / STATS_FILE).write_text(json.dumps(stats, indent=2) + "\n", encoding="utf-8")
    (folder / "stats.md").write_text(stats_markdown(stats), encoding="utf-8")
    return stats


def write_events_build(folder: Path, pairs_by_task: dict[str, list[Pair]], with_users: bool,
                       pin_records: dict[str, dict[str, Any]], inputs: tuple[Path, ...], counters: Counter[str],
                       dead_letter: DeadLetter, options: PairOptions,
                       engine: dict[str, Any] | None = None) -> dict[str, Any]:
    """Split, save and describe an events build (every engine ends here); returns the stats."""
    if not with_users:
        pairs_by_task.pop(HOMEFEED, None)  # no users file: no homefeed task (not an empty one)
    # A task no event gave a single pair (a search-only click log has no related pairs) is not written: training's
    # default is every task folder present, and an empty one would stop it.
    without_pairs = sorted(task for task, pairs in pairs_by_task.items() if not pairs)
    for task in without_pairs:
        del pairs_by_task[task]
    splits = _split_all(pairs_by_task, options)
    for task, by_split in splits.items():
        _save_splits(by_split, folder / task)
    source = _source_record("events", splits, inputs, counters, dead_letter, options)
    if without_pairs:
        source["tasks_without_pairs"] = without_pairs
    if engine is not None:
        source["engine"] = engine
    return _write_outputs(folder, splits, pin_records, [source], options)


def build_pairs(
    events: Path,
    pins: Path,
    users: Path | None,
    out_dir: Path,
    options: PairOptions,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """The `pintext pairs` job for engagement events: writes all three tasks and replaces `out_dir` whole;
    `progress(n)` reports valid events read so far. Without a users file (logs that have no user interests, such
    as UBI or a click log) homefeed events are rejected as of an unknown user and the other tasks are built."""

    def fill(folder: Path) -> dict[str, Any]:
        counters: Counter[str] = Counter()
        with DeadLetter(folder / EVENTS_REJECTED_FILE) as dead_letter:
            pin_records = load_pins(Path(pins), dead_letter, options.strict, counters)
            user_records = load_users(Path(users), dead_letter, options.strict, counters) if users else None
            counters["pins"], counters["users"] = len(pin_records), len(user_records or {})
            aggregator = collect_engagement(Path(events), pin_records, user_records, options, dead_letter, progress)
        texts = {pin_id: pin_text(pin) for pin_id, pin in pin_records.items()}
        pairs_by_task = aggregator.pairs(texts.__getitem__)
        counters.update(aggregator.counters)
        inputs = tuple(Path(path) for path in (events, pins, users) if path is not None)
        return write_events_build(folder, pairs_by_task, user_records is not None, pin_records, inputs, counters,
                                  dead_letter, options)

    return _build_aside(Path(out_dir), fill)


# ------------------------------------------------------------------------------ import into a pairs folder

EVENTS_REJECTED_FILE = "rejected.jsonl"
PINS_FILE = "pins.jsonl"
STATS_FILE = "stats.json"
#: An imported task's name becomes its folder's and its dead letter's name, so it must be a plain file name.
TASK_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")


def import_rejected_file(task: str) -> str:
    """Each imported task has its own dead letter, so re-importing one task leaves the others' rejections alone."""
    return f"rejected.{task}.jsonl"


def check_task_name(task: str) -> str:
    if not TASK_NAME.fullmatch(task or ""):
        raise ValueError(f"task name {task!r}: use letters, digits, '_' and '-' (it names the folder DIR/<task>/)")
    return task


def _save_splits(by_split: dict[str, list[Pair]], folder: Path) -> None:
    save_task(((split, pair) for split, rows in by_split.items() for pair in rows), folder)


def _load_splits(folder: Path) -> dict[str, list[Pair]]:
    """A saved task back as pairs per split (for the folder-wide stats)."""
    from datasets import load_from_disk

    data = load_from_disk(str(folder))
    return {split: [Pair(*(row[column] for column in PAIR_COLUMNS)) for row in data[split].to_list()]
            for split in SPLITS if split in data}


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
        splits = {task: _load_splits(folder / task) for source in kept for task in source["tasks"]}
        corpus = _kept_corpus(out_dir, sources, kept, splits)
        added = []
        for task, paths in by_task.items():
            with DeadLetter(folder / import_rejected_file(task)) as dead_letter:
                pairs, counters = import_pairs(paths, task, options, dead_letter)
            splits[task] = _split_all({task: pairs}, options)[task]
            _save_splits(splits[task], folder / task)
            corpus.update(positives_corpus(pairs))
            added.append(_source_record("import", [task], paths, counters, dead_letter, options))
        return _write_outputs(folder, splits, corpus, kept + added, options)

    return _build_aside(out_dir, fill)


__all__ = [
    "PairOptions", "Pair", "build_pairs", "build_imported_pairs", "split_of",
    "query_key", "pair_stats", "import_rejected_file", "EVENTS_REJECTED_FILE",
]
