"""The pairs step at scale: `pintext pairs` on a large synthetic log, per engine, with wall time and peak memory.

Generates (or reuses) a synthetic data set with `pintext synth`'s generator (it streams events to disk), then runs
`pintext pairs` in a child process once per engine and samples the child's resident memory (RSS, the process
and its children) every 0.1 s. When several engines run on the same data, their pairs folders are compared
(same rows in the same splits). Writes one JSON per run into `--results` and rebuilds `report.md` there from all
the JSONs. From a shell:

    .venv/bin/python -m pintext.bench.pairs_scale --events 1000000 --engines duckdb,memory
    .venv/bin/python -m pintext.bench.pairs_scale --events 10000000 --engines duckdb --memory-limit 1GB
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from pintext.constants import SPLITS

RESULTS = Path(__file__).resolve().parents[1] / "docs" / "results" / "pairs-scale"


def ensure_data(folder: Path, events: int, pins: int, users: int, seed: int) -> dict[str, Any]:
    """The synthetic files in `folder`, generated once per (events, pins, users, seed)."""
    from pintext.ingest.synth.generator import SynthConfig, generate

    marker = folder / "synth.json"
    config = {"events": events, "pins": pins, "users": users, "seed": seed}
    if marker.is_file() and json.loads(marker.read_text())["config"] == config:
        return json.loads(marker.read_text())
    shutil.rmtree(folder, ignore_errors=True)
    started = time.perf_counter()
    summary = generate(SynthConfig(n_pins=pins, n_users=users, n_events=events, seed=seed), folder, gzip_events=True)
    record = {"config": config, "generate_s": round(time.perf_counter() - started, 1),
              "events_bytes": (folder / "events.jsonl.gz").stat().st_size, "summary": summary}
    marker.write_text(json.dumps(record, indent=2) + "\n")
    return record


def _tree_rss(process: Any) -> int:
    import psutil

    total = 0
    try:
        for member in [process, *process.children(recursive=True)]:
            try:
                total += member.memory_info().rss
            except psutil.Error:
                continue
    except psutil.Error:
        pass
    return total


def run_pairs(data: Path, out: Path, engine: str, memory_limit: str | None) -> dict[str, Any]:
    """One `pintext pairs` child: wall seconds, peak RSS (sampled every 0.1 s), exit code, stats."""
    import psutil

    command = [str(Path(sys.executable).with_name("pintext")), "pairs", "--events", str(data / "events.jsonl.gz"),
               "--pins", str(data / "pins.jsonl"), "--users", str(data / "users.jsonl"), "--out", str(out),
               "--engine", engine]
    if memory_limit and engine == "duckdb":
        command += ["--memory-limit", memory_limit]
    started = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    watched = psutil.Process(child.pid)
    peak = 0
    while child.poll() is None:
        peak = max(peak, _tree_rss(watched))
        time.sleep(0.1)
    wall = time.perf_counter() - started
    stderr = child.stderr.read().decode(errors="replace") if child.stderr else ""
    result: dict[str, Any] = {"engine": engine, "command": " ".join(command[1:]), "exit_code": child.returncode,
                              "wall_s": round(wall, 1), "peak_rss_mb": round(peak / 2**20), "memory_limit":
                              memory_limit if engine == "duckdb" else None}
    if child.returncode != 0:
        result["error"] = stderr[-2000:]
        return result
    stats = json.loads((out / "stats.json").read_text())
    result["input"] = stats["input"]
    result["pairs"] = {task: sum(info["splits"][split]["pairs"] for split in SPLITS)
                       for task, info in stats["tasks"].items()}
    return result


def same_pairs(first: Path, second: Path) -> bool:
    """Same tasks, same rows in the same splits (compared in order: both engines write the same order)."""
    from datasets import load_from_disk

    tasks = sorted(path.name for path in first.iterdir() if (path / "dataset_dict.json").is_file())
    if tasks != sorted(path.name for path in second.iterdir() if (path / "dataset_dict.json").is_file()):
        return False
    for task in tasks:
        one, other = load_from_disk(str(first / task)), load_from_disk(str(second / task))
        for split in SPLITS:
            if one[split].to_pandas().equals(other[split].to_pandas()) is False:
                return False
    return (first / "rejected.jsonl").read_bytes() == (second / "rejected.jsonl").read_bytes()


def machine() -> dict[str, Any]:
    import duckdb
    import psutil

    return {"cpus": os.cpu_count(), "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
            "load_average_at_start": [round(value, 2) for value in os.getloadavg()],
            "python": platform.python_version(), "duckdb": duckdb.__version__, "platform": platform.platform()}


def write_report(folder: Path) -> Path:
    """report.md from every run-*.json in `folder` (the prose around the table is in the JSON's `note`)."""
    runs = [json.loads(path.read_text()) for path in sorted(folder.glob("run-*.json"))]
    lines = ["# Pairs at scale: DuckDB vs in-memory", "",
             "Generated by `bench/pairs_scale.py` from the `run-*.json` files next to this report "
             "(`.venv/bin/python -m pintext.bench.pairs_scale --help`). Peak RSS is the `pintext pairs` process "
             "and its children, sampled every 0.1 s; events/s is events over the whole command's wall time "
             "(imports, validation, aggregation, saving the datasets).", "",
             "| events | engine | memory limit | wall s | events/s | peak RSS MB | pairs | same pairs "
             "| load at start |",
             "|---:|---|---|---:|---:|---:|---:|---|---|"]
    for run in runs:
        events = run["data"]["config"]["events"]
        for result in run["results"]:
            rate = f"{events / result['wall_s']:,.0f}" if result["exit_code"] == 0 else "failed"
            pairs = sum(result.get("pairs", {}).values())
            lines.append(f"| {events:,} | {result['engine']} | {result['memory_limit'] or '-'} | {result['wall_s']} | "
                         f"{rate} | {result['peak_rss_mb']:,} | {pairs:,} | {run.get('same_pairs', '-')} | "
                         f"{run['machine']['load_average_at_start']} |")
    lines.append("")
    described = set()
    for run in runs:
        machine_info = run["machine"]
        if run["data"]["config"]["events"] in described:
            continue
        described.add(run["data"]["config"]["events"])
        lines += [f"- {run['data']['config']['events']:,} events ({run['data']['events_bytes'] / 2**20:,.0f} MB "
                  f"gzip, {run['data']['config']['pins']:,} pins, {run['data']['config']['users']:,} users, "
                  f"generated in {run['data']['generate_s']} s): {machine_info['cpus']} CPUs, "
                  f"{machine_info['memory_gb']} GB, Python {machine_info['python']}, DuckDB {machine_info['duckdb']}."]
    path = folder / "report.md"
    notes = folder / "notes.md"
    text = "\n".join(lines) + "\n"
    if notes.is_file():
        text += "\n" + notes.read_text()
    path.write_text(text)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--pins", type=int, default=50_000)
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--engines", default="duckdb,memory", help="comma-separated: duckdb,memory")
    parser.add_argument("--memory-limit", default="1GB", help="DuckDB's --memory-limit")
    parser.add_argument("--work", type=Path, default=Path("/tmp/pintext-pairs-scale"), help="data and outputs")
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    data = args.work / f"data-{args.events}"
    generated = ensure_data(data, args.events, args.pins, args.users, args.seed)
    run: dict[str, Any] = {"machine": machine(), "data": generated, "results": []}
    outs = []
    for engine in args.engines.split(","):
        out = args.work / f"pairs-{args.events}-{engine}"
        result = run_pairs(data, out, engine, args.memory_limit)
        print(json.dumps({key: value for key, value in result.items() if key != "input"}), flush=True)
        run["results"].append(result)
        if result["exit_code"] == 0:
            outs.append(out)
    if len(outs) == 2:
        run["same_pairs"] = same_pairs(*outs)
    args.results.mkdir(parents=True, exist_ok=True)
    name = f"run-{args.events:09d}-{'-'.join(args.engines.split(','))}.json"
    (args.results / name).write_text(json.dumps(run, indent=2) + "\n")
    print(write_report(args.results))
    return 0 if all(result["exit_code"] == 0 for result in run["results"]) else 1


if __name__ == "__main__":
    raise SystemExit(main())
