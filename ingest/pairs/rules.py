"""The rules every pairs engine shares: options, the pair, anchors, splits, the order of an anchor's pairs, and what
one engagement event becomes (`classify_engagement`). docs/data.md ("Pairs") has the long form.

- Tasks: search (anchor = the query), related (anchor = the subject pin's text), homefeed (anchor = the user's
  interest texts joined with ", "; one anchor per user). The positive is always the engaged pin's text.
- Only clicks and saves are positive; impressions are ignored. A user's engagement with a (anchor, pin) counts
  once, with the weight of its strongest action (save > click by default). A hide by the same user on the same
  (anchor, pin), before or after, cancels that user's engagement.
- An event delivered twice (same `event_id`) counts once.
- `count` is the number of users whose engagement survived; `weight` is the sum of their weights. Pairs with
  `count < min_count` are dropped; each anchor keeps its `max_per_anchor` strongest pins.
- Splits are by anchor: a hash of (seed, task, anchor_id) puts every pair of an anchor in the same split.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pintext.constants import (
    RELATED,
    SEARCH,
    TEST,
    TRAIN,
    VALIDATION,
)
from pintext.ingest.deadletter import DeadLetter
from pintext.ingest.readers import read_records
from pintext.schemas import RecordError, pin_text, validate_pin, validate_user
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


def strongest_first(task: str, anchor_id: str, seed: int, pair: Pair) -> tuple[float, int, int]:
    """Sort key of an anchor's pairs: heaviest, then most users, then a seeded hash (stable across runs)."""
    return -pair.weight, -pair.count, tie_break(task, anchor_id, pair.positive_id, seed)


def tie_break(task: str, anchor_id: str, positive_id: str, seed: int) -> int:
    key = f"{seed}\x1f{task}\x1f{anchor_id}\x1f{positive_id}"
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big")


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
