"""The pairs step on Spark: the two-pass job of the DuckDB engine with Spark SQL doing the aggregation (docs/data.md).

The first pass is the shared one (`pintext.ingest.pairs.two_pass`): one streaming validation of the events in
the driver with the shared validator and rules, writing compact Parquet parts and the schema rejections. Spark
then reads the parts and does what grows with the log: the dedupe by `event_id` (first seen), the strongest
action per (task, anchor, pin, user), hides, counts and weights (summed in first-engagement order, like the
in-memory path), `min_count` and the per-anchor cap with the same tie order. The driver merges the dead letter
by line and writes the pairs folder with the same code as the other engines, so the folder is the same.

Local: `pintext pairs --engine spark ...` (a `local[*]` session). On a cluster:

    spark-submit --master yarn --py-files pintext.zip "$(python -c 'import pintext.ingest.pairs.spark_engine as m;
      print(m.__file__)')" --events events.jsonl.gz --pins pins.jsonl --users users.jsonl --out DIR \
      --work /shared/tmp/pairs-work

`--work` must be a folder that the driver writes and the executors read (a shared file system).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from pintext.constants import SEARCH
from pintext.ingest.pairs.rules import ENGAGED, REJECTED, PairOptions
from pintext.ingest.pairs.two_pass import Rejection, build_two_pass
from pintext.schemas import LocatedRecordError

INSTALL_HINT = "pip install 'pintext[spark]'"


def require_pyspark() -> Any:
    """The pyspark module, or an ImportError that names the extra to install."""
    try:
        import pyspark
    except ImportError:
        raise ImportError(f"the Spark pairs engine needs pyspark: {INSTALL_HINT} (and Java 17+)") from None
    return pyspark


def local_session(master: str = "local[*]", app_name: str = "pintext-pairs") -> Any:
    """A small local Spark session (few shuffle partitions, no UI), for `--engine spark` and the tests."""
    require_pyspark()
    from pyspark.sql import SparkSession

    return (SparkSession.builder.master(master).appName(app_name)
            .config("spark.sql.shuffle.partitions", "4")
            .config("spark.ui.enabled", "false")
            .config("spark.sql.session.timeZone", "UTC")
            .config("spark.pyspark.python", sys.executable)
            .getOrCreate())


def _views(spark: Any, parts: str, options: PairOptions) -> None:
    """Temp views firsts, engagement, merged, ranked, anchors: the DuckDB engine's SQL in Spark's dialect."""
    from pyspark.sql.types import StringType

    seed = int(options.seed)

    def tie(task: str, anchor_id: str, pin_id: str) -> str:
        """`pintext.ingest.pairs.rules.tie_break` as 16 hex digits (their order is the number's). Nested, so Spark
        ships it by value: the executors need no pintext."""
        import hashlib

        key = f"{seed}\x1f{task}\x1f{anchor_id}\x1f{pin_id}"
        return hashlib.blake2b(key.encode(), digest_size=8).hexdigest()

    spark.udf.register("pintext_tie", tie, StringType())
    spark.read.parquet(parts).createOrReplaceTempView("valid")
    spark.sql("""
        SELECT v.* FROM valid v LEFT SEMI JOIN (SELECT min(seq) AS seq FROM valid GROUP BY event_id) f
        ON v.seq = f.seq
    """).createOrReplaceTempView("firsts")
    spark.sql(f"""
        SELECT task, anchor_id, pin_id, user_id,
               max(CASE action WHEN 'save' THEN CAST({float(options.save_weight)!r} AS DOUBLE)
                               WHEN 'click' THEN CAST({float(options.click_weight)!r} AS DOUBLE) END) AS weight,
               min(CASE WHEN action <> 'hide' THEN seq END) AS first_seq,
               bool_or(action = 'hide') AS hidden
        FROM firsts WHERE outcome = '{ENGAGED}' GROUP BY task, anchor_id, pin_id, user_id
    """).createOrReplaceTempView("engagement")
    spark.sql("""
        SELECT task, anchor_id, pin_id,
               count(weight) AS engaged_users,
               count(CASE WHEN NOT hidden THEN weight END) AS kept,
               transform(array_sort(collect_list(CASE WHEN NOT hidden AND weight IS NOT NULL
                                                      THEN struct(first_seq, weight) END)), x -> x.weight) AS weights
        FROM engagement GROUP BY task, anchor_id, pin_id HAVING count(weight) > 0
    """).createOrReplaceTempView("merged")
    spark.sql(f"""
        SELECT task, anchor_id, pin_id, kept AS count, weight,
               row_number() OVER (PARTITION BY task, anchor_id ORDER BY weight DESC, kept DESC, tie) AS rank
        FROM (SELECT *, aggregate(weights, CAST(0 AS DOUBLE), (acc, w) -> acc + w) AS weight,
                     pintext_tie(task, anchor_id, pin_id) AS tie
              FROM merged WHERE kept >= {int(options.min_count)})
    """).createOrReplaceTempView("ranked")
    spark.sql(f"""
        SELECT task, anchor_id, min_by(anchor, seq) AS anchor
        FROM firsts WHERE outcome = '{ENGAGED}' AND task = '{SEARCH}' GROUP BY task, anchor_id
    """).createOrReplaceTempView("anchors")


def _counters(spark: Any, options: PairOptions, counters: Counter[str]) -> None:
    """The in-memory path's counters, from the views."""
    valid = spark.sql("SELECT count(*) AS n FROM valid").first()["n"]
    distinct = spark.sql("SELECT count(*) AS n FROM firsts").first()["n"]
    counters.update({name: n for name, n in (("events_valid", valid), ("events_duplicate", valid - distinct)) if n})
    for row in spark.sql("SELECT action, count(*) AS n FROM firsts GROUP BY action").collect():
        counters[f"action_{row['action']}"] += row["n"]
    skipped = spark.sql(f"SELECT outcome, count(*) AS n FROM firsts WHERE outcome NOT IN ('{ENGAGED}', '{REJECTED}') "
                        "GROUP BY outcome").collect()
    for row in skipped:
        counters[row["outcome"]] += row["n"]
    totals = spark.sql(f"""
        SELECT count(*) AS pairs, coalesce(sum(engaged_users - kept), 0) AS cancelled,
               count(CASE WHEN kept = 0 THEN 1 END) AS cancelled_pairs,
               count(CASE WHEN kept > 0 AND kept < {int(options.min_count)} THEN 1 END) AS below
        FROM merged
    """).first()
    if totals["pairs"]:
        counters["engagements_cancelled_by_hide"] += int(totals["cancelled"])
        if totals["cancelled_pairs"]:
            counters["pairs_cancelled_by_hide"] += totals["cancelled_pairs"]
        if totals["below"]:
            counters["pairs_below_min_count"] += totals["below"]
    capped = spark.sql(f"""
        SELECT count(DISTINCT task, anchor_id) AS anchors,
               count(CASE WHEN rank > {int(options.max_per_anchor)} THEN 1 END) AS over FROM ranked
    """).first()
    if capped["anchors"]:
        counters["pairs_over_anchor_cap"] += capped["over"]


class SparkAggregation:
    """The DuckDB engine's aggregation in Spark SQL (`pintext.ingest.pairs.two_pass.Aggregation`)."""

    def __init__(self, spark: Any, options: PairOptions, stop: bool) -> None:
        self.spark, self.options, self.stop = spark, options, stop
        self.engine = {"name": "spark", "master": spark.sparkContext.master}

    def load(self, parts: Path) -> None:
        _views(self.spark, str(parts), self.options)

    def first_late_error(self) -> Rejection | None:
        row = self.spark.sql(f"SELECT seq, err_field, err_reason, err_detail, raw FROM firsts WHERE outcome = "
                             f"'{REJECTED}' ORDER BY seq LIMIT 1").first()
        return None if row is None else (row[0], row[1], row[2], row[3], row[4])

    def count(self, counters: Counter[str]) -> None:
        _counters(self.spark, self.options, counters)

    def late_rejections(self) -> Iterator[Rejection]:
        rows = self.spark.sql(f"SELECT seq, err_field, err_reason, err_detail, raw FROM firsts WHERE outcome = "
                              f"'{REJECTED}' ORDER BY seq").toLocalIterator()
        for row in rows:
            yield row[0], row[1], row[2], row[3], row[4]

    def kept_rows(self) -> Iterator[tuple[str, str, str | None, str, int, float]]:
        rows = self.spark.sql(f"""
            SELECT r.task, r.anchor_id, a.anchor, r.pin_id, r.count, r.weight
            FROM ranked r LEFT JOIN anchors a ON r.task = a.task AND r.anchor_id = a.anchor_id
            WHERE r.rank <= {int(self.options.max_per_anchor)} ORDER BY r.task, r.anchor_id, r.rank
        """).toLocalIterator()
        for row in rows:
            yield tuple(row)

    def close(self) -> None:
        if self.stop:
            self.spark.stop()


def build_pairs_spark(events: Path, pins: Path, users: Path | None, out_dir: Path, options: PairOptions,
                      progress: Callable[[int], None] | None = None, spark: Any = None,
                      work: Path | None = None) -> dict[str, Any]:
    """`pintext.ingest.pairs.memory.build_pairs` with Spark doing the aggregation: the same folder.

    `spark`: a SparkSession (default: the active one, else `local_session()`, stopped at the end). `work`: where
    the first pass writes its Parquet parts (default: next to `out_dir`; on a cluster, a folder the executors can
    read). Removed at the end.
    """
    require_pyspark()
    from pyspark.sql import SparkSession

    out_dir = Path(out_dir).resolve()
    folder = Path(work).resolve() / f"pairs-work-{os.getpid()}" if work else out_dir.with_name(
        f".{out_dir.name}.work-{os.getpid()}")
    session = spark or SparkSession.getActiveSession()  # a caller's session is used, not stopped

    def aggregation(_work: Path) -> SparkAggregation:
        return SparkAggregation(session or local_session(), options, stop=session is None)

    return build_two_pass(events, pins, users, out_dir, options, progress, folder, aggregation)


def main(argv: list[str] | None = None) -> int:
    """`spark-submit spark_engine.py --events ... --pins ... [--users ...] --out DIR [options]`."""
    parser = argparse.ArgumentParser(description="pintext pairs on Spark (spark-submit this file)")
    parser.add_argument("--events", type=Path, required=True)
    parser.add_argument("--pins", type=Path, required=True)
    parser.add_argument("--users", type=Path, default=None)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--work", type=Path, default=None, help="first-pass Parquet parts (shared with executors)")
    defaults = PairOptions()
    for name, flag in (("save_weight", "--save-weight"), ("click_weight", "--click-weight"), ("val", "--val"),
                       ("test", "--test")):
        value = {"val": defaults.validation_share, "test": defaults.test_share}.get(name) or getattr(defaults, name)
        parser.add_argument(flag, type=float, default=value)
    for flag, value in (("--min-count", defaults.min_count), ("--max-per-anchor", defaults.max_per_anchor),
                        ("--seed", defaults.seed)):
        parser.add_argument(flag, type=int, default=value)
    parser.add_argument("--strict", action="store_true")
    args = parser.parse_args(argv)
    options = PairOptions(args.save_weight, args.click_weight, args.min_count, args.max_per_anchor, args.seed,
                          args.val, args.test, args.strict)
    require_pyspark()
    from pyspark.sql import SparkSession

    session = SparkSession.builder.appName("pintext-pairs").getOrCreate()  # master and resources from spark-submit
    try:
        stats = build_pairs_spark(args.events, args.pins, args.users, args.out, options, spark=session,
                                  work=args.work)
    except (LocatedRecordError, ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    finally:
        session.stop()
    print(f"pairs in {args.out}: " + ", ".join(
        f"{task} {sum(split['pairs'] for split in info['splits'].values())}" for task, info in stats["tasks"].items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
