"""Names shared by every stage, defined once: the tasks (one per engagement surface), the splits of a pairs folder
and the columns of a pair (NOTES.md, "Data contracts").

Pure: no imports, no I/O.
"""

from __future__ import annotations

# Tasks: each engagement surface gives one training task of the same name (events.jsonl `surface`).
SEARCH = "search"
RELATED = "related"
HOMEFEED = "homefeed"
TASKS: tuple[str, ...] = (SEARCH, RELATED, HOMEFEED)
SURFACES: tuple[str, ...] = TASKS

# Splits of each task's DatasetDict in a pairs folder.
TRAIN = "train"
VALIDATION = "validation"
TEST = "test"
SPLITS: tuple[str, ...] = (TRAIN, VALIDATION, TEST)

# Columns of a pair, in this order (pintext.ingest.pairs.rules.Pair has the same fields).
ANCHOR = "anchor"
POSITIVE = "positive"
ANCHOR_ID = "anchor_id"
POSITIVE_ID = "positive_id"
COUNT = "count"
WEIGHT = "weight"
PAIR_COLUMNS: tuple[str, ...] = (ANCHOR, POSITIVE, ANCHOR_ID, POSITIVE_ID, COUNT, WEIGHT)

__all__ = [
    "SEARCH", "RELATED", "HOMEFEED", "TASKS", "SURFACES",
    "TRAIN", "VALIDATION", "TEST", "SPLITS",
    "ANCHOR", "POSITIVE", "ANCHOR_ID", "POSITIVE_ID", "COUNT", "WEIGHT", "PAIR_COLUMNS",
]

# `pintext ingest --workers`: batches read, embedded and bulk-written at once. While one batch's bulk waits on the
# node the next ones are embedded and serialized (node and client share the CPU); on 2 cores 4 beat 2 and 1
# (bench/token-families/report.md, "Ingest").
DEFAULT_INGEST_WORKERS = 4
