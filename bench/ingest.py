"""Ingest benchmark: PinText's ingest (validate + encode + tokens + bulk: `pintext.open(...).ingest`, in-process)
against a plain bulk of the same pins.

The baseline is what a team has before PinText: the same pins, read and bulk-indexed by the engine's plain bulk
(`write_docs`: the same `streaming_bulk` as PinText's own writes), same batch size and one request in flight, into
an index of the same mapping, without the vector and the tokens. Both runs happen in this process's run, against
the same node, one after the other. Index size is the primary store after a flush (what `_cat/indices` shows),
extrapolated linearly to one million pins.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pintext.bench.harness import human_bytes, markdown_table, per_million, ratio, stopwatch

BATCH = 500


def pintext_ingest(pins: Path, model: Path, index: str, url: str, workers: int = 1) -> tuple[dict, float]:
    """PinText's ingest as `pintext ingest` runs it (`pintext.open(...).ingest`, in-process); returns its summary
    and its wall seconds."""
    import pintext

    served = pintext.open(model, url=url, index=index, engine="opensearch")
    with stopwatch() as timer:
        summary = served.ingest(pins, batch=BATCH, workers=workers,
                                checkpoint=pins.with_name(f"{pins.name}.{index}.bench-checkpoint.json"))
    return summary, timer["seconds"]


def plain_bulk(engine: Any, pins: Path, index: str, dim: int) -> tuple[int, float]:
    """Bulk the pins as they are (no vector, no tokens) into a fresh index of the pins mapping."""
    engine.delete(index)
    engine.create(index, dim, {})

    def docs() -> Iterator[tuple[str, dict]]:
        with open(pins, encoding="utf-8") as handle:
            for line in handle:
                pin = json.loads(line)
                yield pin["id"], pin

    with stopwatch() as timer:
        outcome = engine.write_docs(index, docs(), batch=BATCH)
        engine.refresh(index)
    if outcome.failed:
        raise RuntimeError(f"plain bulk failed: {list(outcome.failed.items())[:3]}")
    return outcome.created + outcome.updated, timer["seconds"]


def drop(engine: Any, name: str) -> None:
    """Delete the index `name`, or the index behind it when it is an alias (ingest writes pins-<fingerprint>
    behind the name, and deleting an alias by name is refused)."""
    target = engine.alias_target(name)
    if target is not None:
        engine.delete(target)


def run(engine: Any, url: str, pins: Path, model: Path, index: str, dim: int, n_pins: int) -> tuple[str, dict]:
    """Both ingests and both index sizes; returns (markdown, data). Leaves `index` filled for retrieval."""
    drop(engine, index)
    summary, wall = pintext_ingest(pins, model, index, url)
    pintext_size = engine.stats(index, flush=True).size_bytes
    plain_index = f"{index}-plain"
    plain_docs, plain_seconds = plain_bulk(engine, pins, plain_index, dim)
    plain_size = engine.stats(plain_index, flush=True).size_bytes
    engine.delete(plain_index)
    pintext_rate = summary["indexed"] / wall
    plain_rate = plain_docs / plain_seconds
    rows = [
        {"run": "pintext ingest (validate, encode, hash, bulk)", "docs": summary["indexed"], "seconds": wall,
         "docs/s": pintext_rate, "x plain bulk": ratio(pintext_rate, plain_rate), "store": human_bytes(pintext_size),
         "store per 1M pins": human_bytes(per_million(pintext_size, summary["indexed"]))},
        {"run": "plain bulk (no vector, no tokens): baseline", "docs": plain_docs, "seconds": plain_seconds,
         "docs/s": plain_rate, "x plain bulk": 1.0, "store": human_bytes(plain_size),
         "store per 1M pins": human_bytes(per_million(plain_size, plain_docs))},
    ]
    data = {"pintext": {**summary, "wall_seconds": wall, "docs_per_second": pintext_rate,
                        "store_bytes": pintext_size, "store_bytes_per_million": per_million(pintext_size,
                                                                                            summary["indexed"])},
            "plain": {"docs": plain_docs, "seconds": plain_seconds, "docs_per_second": plain_rate,
                      "store_bytes": plain_size, "store_bytes_per_million": per_million(plain_size, plain_docs)},
            "speed_ratio": ratio(pintext_rate, plain_rate), "size_ratio": ratio(pintext_size, plain_size),
            "pins_in_file": n_pins}
    markdown = "\n".join([
        f"{n_pins:,} synthetic pins, batches of {BATCH}, one bulk request in flight, same node, one after the "
        "other. PinText's ingest is `pintext.open(...).ingest`, the code `pintext ingest` runs, in-process; "
        "store size is the primary store after a flush, as `_cat/indices` shows it (segments not force-merged).",
        "",
        markdown_table(rows),
        "",
        f"The command itself reports {summary['docs_per_second']:,.0f} docs/s over its ingest loop (without "
        "interpreter start-up and the line count for the progress bar).",
        "",
        f"pintext ingest runs at **{data['speed_ratio']:.2f}x** the docs/s of a plain bulk; its index is "
        f"**{data['size_ratio']:.2f}x** the size (the {dim}-d vector and the LSH tokens).",
    ])
    return markdown, data
