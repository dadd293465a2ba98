"""The pairs step on DuckDB (`pintext pairs --engine duckdb`, the default): the same pairs folder as the in-memory
engine (`pintext.ingest.pairs.memory.build_pairs`), in bounded memory.

The first pass is the shared one (`pintext.ingest.pairs.two_pass`); DuckDB then does the part whose state grows
with the log: the dedupe by `event_id` (first seen), the strongest action per (task, anchor, pin, user), hides,
counts and weights, `min_count`, the per-anchor cap with the in-memory path's tie order. It runs with
`memory_limit` and a `temp_directory` in the work folder, so it spills to disk instead of growing. Weights are
summed in the order each user first engaged (a left fold, like Python 3.11's `sum` over the in-memory dict), so
they are the same floats.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from pintext.constants import SEARCH
from pintext.ingest.pairs.rules import (
    ENGAGED,
    REJECTED,
    PairOptions,
    tie_break,
)
from pintext.ingest.pairs.two_pass import Rejection, build_two_pass

INSTALL_HINT = "pip install 'pintext[duckdb]'"


def require_duckdb() -> Any:
    """The duckdb module, or an ImportError that names the extra to install."""
    try:
        import duckdb
    except ImportError:
        raise ImportError(f"the DuckDB pairs engine needs duckdb: {INSTALL_HINT} (or use --engine memory)") from None
    return duckdb


def default_memory_limit() -> str:
    """A quarter of the machine's memory, at most 4 GB and at least 256 MB."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        total = 4 << 30
    megabytes = max(256, min(4096, total // 4 // (1 << 20)))
    return f"{megabytes}MB"


def check_memory_limit(limit: str) -> str:
    """`limit` if DuckDB accepts it as a memory limit, else a ValueError naming --memory-limit."""
    duckdb = require_duckdb()
    try:
        duckdb.connect(config={"memory_limit": limit}).close()
    except duckdb.Error as error:
        raise ValueError(f"--memory-limit {limit!r}: {error} (e.g. 512MB, 2GB)") from None
    return limit


# ------------------------------------------------------------------------------------ pass 2: aggregate


def _connect(work: Path, memory_limit: str, threads: int | None) -> Any:
    duckdb = require_duckdb()
    spill = work / "spill"
    spill.mkdir(parents=True, exist_ok=True)
    config = {"memory_limit": memory_limit, "temp_directory": str(spill), "preserve_insertion_order": False}
    if threads:
        config["threads"] = threads
    connection = duckdb.connect(str(work / "pairs.duckdb"), config=config)
    return connection


def _first_seen(connection: Any, parts_glob: str) -> dict[str, int]:
    """Table `firsts`: each event_id's first valid row. Returns events_valid and events_duplicate."""
    connection.execute(f"CREATE OR REPLACE VIEW valid AS SELECT * FROM read_parquet('{parts_glob}')")
    connection.execute("""
        CREATE OR REPLACE TABLE firsts AS
        SELECT v.* FROM valid v SEMI JOIN (SELECT min(seq) AS seq FROM valid GROUP BY event_id) f USING (seq)
    """)
    valid = connection.execute("SELECT count(*) FROM valid").fetchall()[0][0]
    distinct = connection.execute("SELECT count(*) FROM firsts").fetchall()[0][0]
    return {"events_valid": valid, "events_duplicate": valid - distinct}


def _late_rejections(connection: Any) -> Iterator[Rejection]:
    """The first-seen events rejected by a rule after the dedupe, in file order."""
    cursor = connection.execute(
        "SELECT seq, err_field, err_reason, err_detail, raw FROM firsts WHERE outcome = ? ORDER BY seq", [REJECTED])
    while rows := cursor.fetchmany(10_000):
        yield from rows


def _aggregate(connection: Any, options: PairOptions, counters: Counter[str]) -> None:
    """Tables `ranked` (every surviving pair with its rank in its anchor) and `anchors` (search anchor texts)."""
    seed = int(options.seed)
    connection.create_function(
        "pintext_tie", lambda task, anchor_id, pin_id: tie_break(task, anchor_id, pin_id, seed),
        ["VARCHAR", "VARCHAR", "VARCHAR"], "UBIGINT", side_effects=False)
    for action, number in connection.execute("SELECT action, count(*) FROM firsts GROUP BY action").fetchall():
        counters[f"action_{action}"] += number
    skipped = connection.execute(
        "SELECT outcome, count(*) FROM firsts WHERE outcome NOT IN (?, ?) GROUP BY outcome", [ENGAGED, REJECTED])
    for outcome, number in skipped.fetchall():
        counters[outcome] += number
    connection.execute("""
        CREATE OR REPLACE TABLE engagement AS
        SELECT task, anchor_id, pin_id, user_id,
               max(CASE action WHEN 'save' THEN $save WHEN 'click' THEN $click END) AS weight,
               min(seq) FILTER (WHERE action <> 'hide') AS first_seq,
               bool_or(action = 'hide') AS hidden
        FROM firsts WHERE outcome = $engaged GROUP BY ALL
    """, {"save": float(options.save_weight), "click": float(options.click_weight), "engaged": ENGAGED})
    connection.execute("""
        CREATE OR REPLACE TABLE merged AS
        SELECT task, anchor_id, pin_id,
               count(weight) AS engaged_users,
               count(weight) FILTER (WHERE NOT hidden) AS kept,
               list(weight ORDER BY first_seq) FILTER (WHERE NOT hidden AND weight IS NOT NULL) AS weights
        FROM engagement GROUP BY ALL HAVING count(weight) > 0
    """)
    pairs, cancelled, cancelled_pairs, below = connection.execute("""
        SELECT count(*), coalesce(sum(engaged_users - kept), 0), count(*) FILTER (WHERE kept = 0),
               count(*) FILTER (WHERE kept > 0 AND kept < $min)
        FROM merged
    """, {"min": options.min_count}).fetchall()[0]
    if pairs:  # the in-memory path's counters exist once there is a pair (zero or not)
        counters["engagements_cancelled_by_hide"] += int(cancelled)
        if cancelled_pairs:
            counters["pairs_cancelled_by_hide"] += cancelled_pairs
        if below:
            counters["pairs_below_min_count"] += below
    connection.execute("""
        CREATE OR REPLACE TABLE ranked AS
        SELECT task, anchor_id, pin_id, kept AS count, weight,
               row_number() OVER (PARTITION BY task, anchor_id ORDER BY weight DESC, kept DESC, tie) AS rank
        FROM (SELECT *, list_reduce(weights, lambda a, b: a + b) AS weight,
                     pintext_tie(task, anchor_id, pin_id) AS tie
              FROM merged WHERE kept >= $min)
    """, {"min": options.min_count})
    anchors, over = connection.execute(
        "SELECT count(DISTINCT (task, anchor_id)), count(*) FILTER (WHERE rank > $cap) FROM ranked",
        {"cap": options.max_per_anchor}).fetchall()[0]
    if anchors:
        counters["pairs_over_anchor_cap"] += over
    connection.execute("""
        CREATE OR REPLACE TABLE anchors AS
        SELECT task, anchor_id, arg_min(anchor, seq) AS anchor
        FROM firsts WHERE outcome = $engaged AND task = $search GROUP BY ALL
    """, {"engaged": ENGAGED, "search": SEARCH})


class DuckDBAggregation:
    def __init__(self, work: Path, options: PairOptions, memory_limit: str, threads: int | None) -> None:
        self.connection = _connect(work, memory_limit, threads)
        self.options = options
        self.engine = {"name": "duckdb", "memory_limit": memory_limit}
        self.seen: dict[str, int] = {}

    def load(self, parts: Path) -> None:
        self.seen = _first_seen(self.connection, str(parts / "part-*.parquet"))

    def first_late_error(self) -> Rejection | None:
        rows = self.connection.execute(
            "SELECT seq, err_field, err_reason, err_detail, raw FROM firsts WHERE outcome = ? ORDER BY seq LIMIT 1",
            [REJECTED]).fetchall()  # fetchall: DuckDB wants a result finished before other work
        return rows[0] if rows else None

    def count(self, counters: Counter[str]) -> None:
        counters.update({name: n for name, n in self.seen.items() if n})
        _aggregate(self.connection, self.options, counters)

    def late_rejections(self) -> Iterator[Rejection]:
        return _late_rejections(self.connection)

    def kept_rows(self) -> Iterator[tuple[str, str, str | None, str, int, float]]:
        cursor = self.connection.execute("""
            SELECT r.task, r.anchor_id, a.anchor, r.pin_id, r.count, r.weight
            FROM ranked r LEFT JOIN anchors a USING (task, anchor_id)
            WHERE r.rank <= $cap ORDER BY r.task, r.anchor_id, r.rank
        """, {"cap": self.options.max_per_anchor})
        while rows := cursor.fetchmany(50_000):
            yield from rows

    def close(self) -> None:
        self.connection.close()


def build_pairs_duckdb(events: Path, pins: Path, users: Path | None, out_dir: Path, options: PairOptions,
                       progress: Callable[[int], None] | None = None, memory_limit: str | None = None,
                       threads: int | None = None) -> dict[str, Any]:
    """`pintext.ingest.pairs.memory.build_pairs` on DuckDB: the same folder (pairs, splits, dead letter, stats).

    `memory_limit` (DuckDB syntax, e.g. "1GB"; default `default_memory_limit()`) bounds DuckDB's memory; beyond
    it DuckDB spills to a work folder next to `out_dir`, removed at the end.
    """
    limit = check_memory_limit(memory_limit or default_memory_limit())
    out_dir = Path(out_dir).resolve()
    work = out_dir.with_name(f".{out_dir.name}.work-{os.getpid()}")
    return build_two_pass(events, pins, users, out_dir, options, progress, work,
                          lambda folder: DuckDBAggregation(folder, options, limit, threads))


__all__ = ["build_pairs_duckdb", "check_memory_limit", "default_memory_limit", "require_duckdb", "INSTALL_HINT"]
