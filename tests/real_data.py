"""Where the shared real data sets are (`../shared/data/real/` beside the repository; never committed).

A checkout can sit anywhere (CI clones into a temporary folder), so the folder is looked for in order:
`$PINTEXT_REAL_DATA`, `<repo>/../shared/data/real`, `/work/shared/data/real` (this machine's shared folder).
Tests that read it skip with a plain reason when it is absent (its sources state no licence, so a machine may
lawfully lack it), except under CI=true: CI runs on this machine, where the folder is, so its absence there is a
broken setup and fails the test rather than skipping it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.fixtures_engines import in_ci

REPO = Path(__file__).resolve().parents[1]
CANDIDATES = (REPO.parent / "shared" / "data" / "real", Path("/work/shared/data/real"))


def real_data_dir() -> Path | None:
    """The first real-data folder that exists, or None."""
    chosen = os.environ.get("PINTEXT_REAL_DATA")
    for folder in ([Path(chosen)] if chosen else []) + list(CANDIDATES):
        if folder.is_dir():
            return folder
    return None


def real_file(relative: str) -> Path:
    """A file of the real data (e.g. `bestbuy/clicks.csv`); the test is skipped, saying why, when it is absent."""
    folder = real_data_dir()
    if folder is None or not (folder / relative).is_file():
        looked = [os.environ.get("PINTEXT_REAL_DATA") or "$PINTEXT_REAL_DATA unset", *map(str, CANDIDATES)]
        why = (f"the real data file {relative} is not on this machine (looked in {', '.join(looked)}; "
               "never committed, see ../shared/data/real/README.md)")
        if in_ci():
            pytest.fail(f"CI=true: {why}", pytrace=False)
        pytest.skip(why)
    return folder / relative
