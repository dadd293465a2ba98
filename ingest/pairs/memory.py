"""The pairs step in memory (`pintext pairs --engine memory`, the reference the other engines must equal): one pass
over the events, every event id and engagement in Python dicts, then the pairs folder (`folder.write_events_build`).
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from pintext.constants import (
    TASKS,
)
from pintext.ingest.deadletter import DeadLetter
from pintext.ingest.pairs.folder import EVENTS_REJECTED_FILE, build_aside, write_events_build
from pintext.ingest.pairs.rules import (
    ENGAGED,
    Pair,
    PairOptions,
    classify_engagement,
    load_pins,
    load_users,
    strongest_first,
)
from pintext.ingest.readers import read_located_records
from pintext.schemas import RecordError, pin_text, validate_event


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
            pairs.sort(key=partial(strongest_first, task, anchor_id, self.options.seed))
            self.counters["pairs_over_anchor_cap"] += max(0, len(pairs) - self.options.max_per_anchor)
            result.setdefault(task, []).extend(pairs[: self.options.max_per_anchor])
        return result


def _reject(dead_letter: DeadLetter, strict: bool, source: str, line: int, error: RecordError,
            record: dict[str, Any]) -> None:
    if strict:
        raise error.located(source, line)
    dead_letter.add(source, line, error, json.dumps(record, ensure_ascii=False))


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

    return build_aside(Path(out_dir), fill)
