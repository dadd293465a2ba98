"""The pairs folder every build writes: `DIR/<task>/` (a `DatasetDict` with splits train/validation/test),
`DIR/pins.jsonl` (the valid pin corpus), `DIR/rejected.jsonl` (dead letter), `DIR/stats.json` and `DIR/stats.md`.
The folder is built next to `DIR` and swapped in at the end, so re-running over an existing folder is safe.
`stats.json` lists every build that contributed (`sources`); its stats and `pins.jsonl` cover all the tasks present.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import asdict
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
    SPLITS,
    TASKS,
    WEIGHT,
)
from pintext.ingest.deadletter import DeadLetter
from pintext.ingest.pairs.rules import Pair, PairOptions, split_of
from pintext.text import words

EVENTS_REJECTED_FILE = "rejected.jsonl"
PINS_FILE = "pins.jsonl"
STATS_FILE = "stats.json"


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


def split_all(pairs_by_task: dict[str, list[Pair]], options: PairOptions) -> dict[str, dict[str, list[Pair]]]:
    splits: dict[str, dict[str, list[Pair]]] = {}
    for task, pairs in pairs_by_task.items():
        splits[task] = {split: [] for split in SPLITS}
        for pair in pairs:
            splits[task][split_of(task, pair.anchor_id, options)].append(pair)
    return splits


def build_aside(out_dir: Path, fill: Callable[[Path], dict[str, Any]]) -> dict[str, Any]:
    """Let `fill` write a complete pairs folder next to `out_dir`, then swap it in (`pintext.atomic.atomic_folder`);
    a failure (a full disk included) leaves `out_dir` as it was. Returns what `fill` returns (the stats)."""
    with atomic_folder(Path(out_dir).resolve(), "pairs folder") as partial_dir:
        return fill(partial_dir)


def source_record(kind: str, tasks: Iterable[str], files: Iterable[Path], counters: Counter[str],
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


def write_outputs(folder: Path, splits: dict[str, dict[str, list[Pair]]], corpus: dict[str, dict[str, Any]],
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
    splits = split_all(pairs_by_task, options)
    for task, by_split in splits.items():
        save_splits(by_split, folder / task)
    source = source_record("events", splits, inputs, counters, dead_letter, options)
    if without_pairs:
        source["tasks_without_pairs"] = without_pairs
    if engine is not None:
        source["engine"] = engine
    return write_outputs(folder, splits, pin_records, [source], options)


def save_splits(by_split: dict[str, list[Pair]], folder: Path) -> None:
    save_task(((split, pair) for split, rows in by_split.items() for pair in rows), folder)


def load_splits(folder: Path) -> dict[str, list[Pair]]:
    """A saved task back as pairs per split (for the folder-wide stats)."""
    from datasets import load_from_disk

    data = load_from_disk(str(folder))
    return {split: [Pair(*(row[column] for column in PAIR_COLUMNS)) for row in data[split].to_list()]
            for split in SPLITS if split in data}
