"""Throughput of the synthetic data generator (`pintext synth`).

`run(n_pins, ...)` generates a data set into a temporary folder (deleted afterwards unless `keep_dir` is
given), and returns the sizes, the seconds per stage and the rates. It writes nothing to the benchmark report:
the benchmark driver decides what to show. From a shell:

    .venv/bin/python -m pintext.bench.bench_synth --pins 1000000
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from pintext.ingest.synth.generator import SynthConfig, generate


def run(
    n_pins: int,
    n_users: int | None = None,
    n_events: int | None = None,
    seed: int = 0,
    gzip_events: bool = False,
    work_dir: str | Path | None = None,
    keep_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Generate `n_pins` pins (users default to pins/5, events to 2 per pin) and time it.

    Returns counts, bytes written, seconds per stage, and `pins_per_s` (pins over the world + pin stages),
    `events_per_s` and `total_s`. Output goes to a temporary folder under `work_dir` (default: the system
    temporary folder) that is removed afterwards, or to `keep_dir` when given.
    """
    users = n_users if n_users is not None else max(1, n_pins // 5)
    events = n_events if n_events is not None else 2 * n_pins
    config = SynthConfig(n_pins=n_pins, n_users=users, n_events=events, seed=seed)
    out = Path(keep_dir) if keep_dir else Path(tempfile.mkdtemp(prefix="pintext-bench-synth-", dir=work_dir))
    try:
        started = time.perf_counter()
        summary = generate(config, out, gzip_events=gzip_events)
        total = time.perf_counter() - started
        written = sum(path.stat().st_size for path in out.iterdir() if path.is_file())
    finally:
        if not keep_dir:
            shutil.rmtree(out, ignore_errors=True)
    pin_seconds = summary["world_s"] + summary["pins_s"]
    return {
        "pins": n_pins,
        "users": users,
        "events": events,
        "topics": summary["topics"],
        "vocabulary": summary["vocabulary"],
        "bytes_written": written,
        "world_s": summary["world_s"],
        "pins_s": summary["pins_s"],
        "users_s": summary["users_s"],
        "events_s": summary["events_s"],
        "total_s": round(total, 3),
        "pins_per_s": round(n_pins / pin_seconds, 1) if pin_seconds else float("nan"),
        "events_per_s": round(events / summary["events_s"], 1) if summary["events_s"] else float("nan"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pins", type=int, default=100_000)
    parser.add_argument("--users", type=int, default=None)
    parser.add_argument("--events", type=int, default=None)
    parser.add_argument("--work-dir", default=None, help="where the temporary output goes (deleted after)")
    args = parser.parse_args()
    print(json.dumps(run(args.pins, args.users, args.events, work_dir=args.work_dir), indent=2))


if __name__ == "__main__":
    main()
