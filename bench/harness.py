"""Benchmark plumbing: machine and version facts, timing, percentile and ratio math, the report writer.

Pure helpers (percentiles, ratios, markdown tables) are unit-tested in tests/test_bench.py. Every speed the
report shows is a ratio against a baseline measured in the same run, so figures from different machines or
different loads are never compared directly.
"""

from __future__ import annotations

import json
import math
import os
import platform
import sys
import time
from collections.abc import Iterable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Iterator

import numpy as np

VERSIONED_PACKAGES = ("numpy", "torch", "sentence-transformers", "opensearch-py", "tokenizers", "scipy",
                      "datasets", "bm25s")


# ---- math ------------------------------------------------------------------------------------------------------


def percentiles(samples_ms: Sequence[float], points: Iterable[int] = (50, 95, 99)) -> dict[str, float]:
    """{'p50': ..., 'p95': ..., 'p99': ...} of latency samples (linear interpolation); NaN when empty."""
    values = np.asarray(list(samples_ms), dtype=np.float64)
    if values.size == 0:
        return {f"p{point}": float("nan") for point in points}
    return {f"p{point}": float(np.percentile(values, point)) for point in points}


def ratio(value: float, baseline: float) -> float:
    """value / baseline, NaN when either is missing or the baseline is zero (never a division error)."""
    if value is None or baseline is None:
        return float("nan")
    if not math.isfinite(value) or not math.isfinite(baseline) or baseline == 0:
        return float("nan")
    return float(value) / float(baseline)


def per_million(size_bytes: float, documents: int) -> float:
    """Linear extrapolation of an index size to one million documents."""
    return float("nan") if documents <= 0 else size_bytes / documents * 1_000_000


def human_bytes(size: float) -> str:
    """1536 -> '1.5 KiB'."""
    if size is None or not math.isfinite(size):
        return "n/a"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(size) < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"


def fmt(value: Any, digits: int = 3) -> str:
    """A table cell: floats with `digits` significant places, NaN/None as 'n/a', big numbers with commas."""
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if not math.isfinite(value):
            return "n/a"
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        return f"{value:.{digits}g}"
    return str(value)


def markdown_table(rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None) -> str:
    """Rows of dicts as a GitHub markdown table (columns default to the first row's keys)."""
    if not rows:
        return "_(no rows)_"
    columns = list(columns or rows[0].keys())
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(fmt(row.get(column)) for column in columns) + " |")
    return "\n".join(lines)


# ---- timing ----------------------------------------------------------------------------------------------------


@contextmanager
def stopwatch() -> Iterator[dict[str, float]]:
    """`with stopwatch() as t: ...` then `t['seconds']`."""
    record = {"seconds": float("nan")}
    started = time.perf_counter()
    try:
        yield record
    finally:
        record["seconds"] = time.perf_counter() - started


def best_rate(run: Any, items: int, repeats: int = 3) -> tuple[float, list[float]]:
    """items/s of the fastest of `repeats` calls of `run()` (the least disturbed by other load), and all times."""
    times = []
    for _ in range(max(1, repeats)):
        with stopwatch() as timer:
            run()
        times.append(timer["seconds"])
    return items / min(times), times


# ---- machine ---------------------------------------------------------------------------------------------------


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def memory_bytes() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def load_average() -> list[float]:
    try:
        return [round(value, 2) for value in os.getloadavg()]
    except OSError:
        return []


def package_versions() -> dict[str, str]:
    """Installed versions, read from package metadata (importing torch just for its version is not needed)."""
    versions = {"python": platform.python_version()}
    for name in VERSIONED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def machine_info() -> dict[str, Any]:
    return {
        "cpu_model": cpu_model(),
        "cores": os.cpu_count(),
        "memory_bytes": memory_bytes(),
        "memory": human_bytes(memory_bytes()),
        "platform": platform.platform(),
        "load_average_at_start": load_average(),
    }


# ---- the report ------------------------------------------------------------------------------------------------


@dataclass
class Report:
    """What a benchmark run found: sections in order, each with markdown text, a JSON payload and plots."""

    command: str
    profile: str
    params: dict[str, Any]
    machine: dict[str, Any] = field(default_factory=machine_info)
    versions: dict[str, str] = field(default_factory=package_versions)
    sections: list[dict[str, Any]] = field(default_factory=list)
    goals: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    started_at: str = field(default_factory=lambda: time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()))
    seconds: float = 0.0

    def add(self, key: str, title: str, markdown: str, data: dict[str, Any], seconds: float,
            plots: Sequence[str] = ()) -> None:
        self.sections.append({"key": key, "title": title, "markdown": markdown, "data": data,
                              "seconds": round(seconds, 2), "plots": list(plots)})

    def failed(self, key: str, title: str, error: str, seconds: float) -> None:
        self.sections.append({"key": key, "title": title, "markdown": f"**Not measured**: {error}",
                              "data": {"error": error}, "seconds": round(seconds, 2), "plots": []})

    def goal(self, name: str, target: str, measured: float | None, met: bool | None, detail: str = "") -> None:
        self.goals.append({"goal": name, "target": target, "measured": measured,
                           "met": "yes" if met else ("not measured" if met is None else "NO"), "detail": detail})

    def section(self, key: str) -> dict[str, Any]:
        return next((section["data"] for section in self.sections if section["key"] == key), {})

    def to_json(self) -> dict[str, Any]:
        return {"command": self.command, "profile": self.profile, "params": self.params, "machine": self.machine,
                "versions": self.versions, "started_at": self.started_at, "seconds": round(self.seconds, 1),
                "goals": self.goals, "notes": self.notes,
                "sections": [{k: v for k, v in s.items() if k != "markdown"} for s in self.sections]}

    def to_markdown(self) -> str:
        machine = self.machine
        lines = [
            "# PinText benchmark report",
            "",
            f"Generated by `{self.command}` (profile **{self.profile}**) on {self.started_at}, "
            f"{self.seconds / 60:.1f} minutes in all. Raw figures: `report.json`. How to read it: "
            "`docs/benchmarks.md`.",
            "",
            f"- machine: {machine['cpu_model']}, {machine['cores']} cores, {machine['memory']} memory, "
            f"{machine['platform']}",
            f"- load average (1, 5, 15 min) at start {machine.get('load_average_at_start')}, "
            f"at end {machine.get('load_average_at_end')}",
            "- versions: " + ", ".join(f"{name} {version}" for name, version in self.versions.items()),
            "- parameters: " + ", ".join(f"{key}={value}" for key, value in self.params.items()),
            "",
        ]
        if self.notes:
            lines += ["## Notes", ""] + [f"- {note}" for note in self.notes] + [""]
        lines += ["## Goals", "", markdown_table(self.goals, ["goal", "target", "measured", "met", "detail"]), ""]
        for section in self.sections:
            lines += [f"## {section['title']}", "", section["markdown"], ""]
            lines += [f"![{Path(plot).stem}]({Path(plot).name})" for plot in section["plots"]]
            load = f", load average at its start {section['load']}" if section.get("load") else ""
            lines += ["", f"_section time: {section['seconds']:.1f} s{load}_", ""]
        return "\n".join(lines).rstrip() + "\n"

    def write(self, out_dir: Path) -> tuple[Path, Path]:
        out_dir.mkdir(parents=True, exist_ok=True)
        self.machine.setdefault("load_average_at_end", load_average())
        markdown = out_dir / "REPORT.md"
        raw = out_dir / "report.json"
        markdown.write_text(self.to_markdown(), encoding="utf-8")
        raw.write_text(json.dumps(without_nan(self.to_json()), indent=2, default=_jsonable) + "\n",
                       encoding="utf-8")
        return markdown, raw


def without_nan(value: Any) -> Any:
    """NaN and infinities become null, so report.json is strict JSON."""
    if isinstance(value, dict):
        return {key: without_nan(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [without_nan(item) for item in value]
    if isinstance(value, (float, np.floating)) and not math.isfinite(float(value)):
        return None
    return value


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    return str(value)


RELEVANT_ENV = ("PINTEXT_HOME", "OPENSEARCH_URL", "PINTEXT_OPENSEARCH_PORT", "PINTEXT_OPENSEARCH_HEAP")


def command_line() -> str:
    """How this process was started, as a shell line, with the environment variables that change what runs."""
    program = Path(sys.argv[0]).name if sys.argv else "pintext"
    settings = [f"{name}={os.environ[name]}" for name in RELEVANT_ENV if os.environ.get(name)]
    return " ".join([*settings, program, *sys.argv[1:]])
