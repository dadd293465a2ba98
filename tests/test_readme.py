"""README.md says what the committed reports say, and names only paths that exist (no server needed)."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"


def load_figures_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("readme_figures", ROOT / "scripts" / "readme_figures.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


figures = load_figures_script()


def section(title: str) -> str:
    text = README.read_text()
    start = text.index(f"\n## {title}\n")
    following = text.find("\n## ", start + 1)
    return text[start:] if following < 0 else text[start:following]


def layout_paths() -> list[str]:
    """Every backticked path in the first column of the layout table."""
    rows = [line for line in section("Where things live").splitlines() if line.startswith("| `")]
    return [path for row in rows for path in re.findall(r"`([^`]+)`", row.split("|")[1])]


def test_the_figures_block_is_what_the_reports_render_now() -> None:
    text = README.read_text()
    block = text[text.index(figures.BEGIN):text.index(figures.END) + len(figures.END)]
    assert block == figures.render()


def test_check_passes_on_the_committed_readme() -> None:
    assert figures.main(["--check"]) == 0


def test_check_names_the_first_line_that_differs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    current = re.search(r"\| (\+\d+%) \|", README.read_text())
    assert current is not None and current.group(1) != "+99%", "the figures table lost its 'served vs BM25' column"
    stale = README.read_text().replace(f"| {current.group(1)} |", "| +99% |", 1)
    assert stale != README.read_text()
    copy = tmp_path / "README.md"
    copy.write_text(stale)
    monkeypatch.setattr(figures, "README", copy)
    assert figures.main(["--check"]) == 1
    message = capsys.readouterr().err.strip().splitlines()
    assert len(message) == 1
    assert "1 line(s) differ" in message[0] and "+99%" in message[0] and current.group(1) in message[0]
    assert copy.read_text() == stale  # --check writes nothing


def test_the_speed_figures_state_what_the_bench_reports_measured() -> None:
    """The README once said the 10x goal was missed at both sizes; the reports say 12.7x and 54.7x, both met."""
    quick = figures.goals(figures.BENCH_QUICK)[figures.EXACT_GOAL]
    scale = figures.goals(figures.BENCH_1M)[figures.EXACT_GOAL]
    summary = figures.speed_summary()
    assert f"{quick['measured']:.3g}x" in summary and f"{scale['measured']:.3g}x" in summary
    assert (quick["met"], scale["met"]) == ("yes", "yes")
    assert "goal >= 10x faster: met at both sizes" in summary


def test_every_path_in_the_layout_table_exists() -> None:
    paths = layout_paths()
    assert len(paths) >= 10
    missing = [path for path in paths if not (ROOT / path).exists()]
    assert missing == []


def test_every_relative_link_in_the_readme_exists() -> None:
    links = re.findall(r"\]\(([^)#]+)\)", README.read_text())
    local = [link for link in links if "://" not in link]
    assert local
    assert [link for link in local if not (ROOT / link).exists()] == []


def test_the_intro_names_both_token_families() -> None:
    intro = README.read_text().split("\n## ", 1)[0]
    assert "LSH token strings" not in intro
    assert "k-means centroids" in intro and "random-hyperplane" in intro
