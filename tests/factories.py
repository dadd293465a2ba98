"""What tests build their data from: tiny models, pins, pairs, queries. Everything is seeded, so a test that
asserts on numbers gets the same data every run.

- `make_model(folder, texts=..., dim=..., seed=...)`: a PinText model folder whose tokenizer knows the words of
  `texts` (default: the WORDS vocabulary), with a seeded random word table (`word_table`).
- `make_pins(count, seed=...)`: pins with random titles and descriptions from WORDS; `titled_pins(titles)`: one
  pin per title. `write_pins(path, pins)` writes them as JSONL; `write_pins_file` adds known bad lines.
- `synthetic_pairs(folder, ...)`: a pairs folder from the synthetic generator; `write_csv(path, rows)`.
- `random_queries(count, seed=...)`: query texts of one to three WORDS.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pintext.encoder import write_runtime
from pintext.trainer.tokenizer import train_word_tokenizer

WORDS = [f"w{i:03d}" for i in range(240)]
DIM = 16

# ---- models ----------------------------------------------------------------------------------------------------


def word_table(rows: int, *, dim: int, seed: int) -> np.ndarray:
    """A seeded standard-normal word table, float32."""
    return np.random.default_rng(seed).standard_normal((rows, dim)).astype(np.float32)


def make_model(folder: Path, *, texts: Sequence[str] | None = None, dim: int = DIM, seed: int = 0,
               oov: Any = None) -> Path:
    """A model folder (`folder/runtime`) whose tokenizer knows the words of `texts` (default: one text of all
    WORDS), with a random word table seeded by `seed`; `oov` is how unseen words are encoded (None: ignored)."""
    tokenizer = train_word_tokenizer(list(texts) if texts is not None else [" ".join(WORDS)], min_count=1)
    write_runtime(folder / "runtime", tokenizer, word_table(tokenizer.get_vocab_size(), dim=dim, seed=seed), oov=oov)
    return folder


def model_snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file under a model folder with its size and mtime: to show a command left it untouched."""
    return {str(path.relative_to(folder)): (path.stat().st_size, path.stat().st_mtime_ns)
            for path in sorted(folder.rglob("*")) if path.is_file()}


# ---- pins ------------------------------------------------------------------------------------------------------

BAD_LINES = {  # line number (1-based, in the file write_pins_file writes) -> the reason the dead letter must give
    5: "not valid JSON",
    17: "missing",  # no id
    33: "not a string",  # title is a number
}
OOV_LINE = 48  # a valid pin with only out-of-vocabulary words: indexed for BM25, without a vector
OOV_ID = "oov"


def make_pins(count: int, *, seed: int = 1) -> list[dict]:
    """`count` pins `pin-00000`...: 2-5 title words and 0-7 description words from WORDS, boards b0..b6."""
    rng = np.random.default_rng(seed)
    pins = []
    for i in range(count):
        title = " ".join(rng.choice(WORDS, size=int(rng.integers(2, 6))))
        description = " ".join(rng.choice(WORDS, size=int(rng.integers(0, 8))))
        pins.append({"id": f"pin-{i:05d}", "title": title, "description": description, "board": f"b{i % 7}"})
    return pins


def titled_pins(titles: Sequence[str], *, prefix: str = "p") -> list[dict]:
    """One pin per title, ids `p0`, `p1`, ... in order."""
    return [{"id": f"{prefix}{row}", "title": title} for row, title in enumerate(titles)]


def write_pins(path: Path, pins: Sequence[dict]) -> Path:
    """The pins as a JSONL file, one per line."""
    path.write_text("".join(json.dumps(pin) + "\n" for pin in pins), encoding="utf-8")
    return path


def write_pins_file(path: Path, pins: list[dict], *, with_bad_lines: bool = True) -> int:
    """Write pins, with BAD_LINES and the OOV_LINE pin at their line numbers; returns the number of valid lines
    (the pins, plus the OOV pin when written)."""
    lines, pending = [], list(pins)
    specials = {**BAD_LINES, OOV_LINE: "oov"} if with_bad_lines else {}
    for line_no in range(1, len(pins) + len(specials) + 1):
        if line_no in specials:
            lines.append({
                5: '{"id": "broken", "title": ',
                17: json.dumps({"title": "no id here"}),
                33: json.dumps({"id": "numeric-title", "title": 42}),
                OOV_LINE: json.dumps({"id": OOV_ID, "title": "zzz qqq", "description": "unknown words only"}),
            }[line_no])
        else:
            lines.append(json.dumps(pending.pop(0)))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return len(pins) + (1 if with_bad_lines else 0)


# ---- queries and pairs -----------------------------------------------------------------------------------------


def random_queries(count: int, *, seed: int) -> list[str]:
    """`count` query texts of 1-3 WORDS."""
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, size=int(rng.integers(1, 4)))) for _ in range(count)]


def synthetic_pairs(folder: Path, *, n_topics: int = 6, pins_per_topic: int = 12, pairs_per_task: int = 240,
                    seed: int = 3) -> Path:
    """A pairs folder from the synthetic generator (the defaults: a small corpus one epoch trains in seconds)."""
    from pintext.trainer.synthetic import make_pairs

    return make_pairs(folder, n_topics=n_topics, pins_per_topic=pins_per_topic, pairs_per_task=pairs_per_task,
                      seed=seed)


def write_csv(path: Path, rows: Sequence[Sequence[str]]) -> Path:
    """Rows (header first) as a CSV file."""
    with path.open("w", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerows(rows)
    return path
