"""Issue 22, property-based: random query texts (long, unicode, empty, blank, control characters, lone surrogates
as a shell hands undecodable bytes to Python, texts that look like options) through the CLI in process, on the
local engine (`--engine local --local-dir DIR`): every run is an answer (exit 0, one JSON line with hits) or exactly
one `error:` line with a documented exit code (2 bad usage, 1 a failure), never a traceback.

Derandomized under CI=true (the same examples every run); random elsewhere. About 20 s on the 2-core machine.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.factories import make_model, titled_pins, write_pins
from tests.fixtures_cli import run_pintext
from tests.fixtures_engines import in_ci

TITLES = ["red chair", "oak table", "blue lamp", "red velvet cake", "garden ideas", "hiking boots"]
DOCUMENTED_EXIT_CODES = {0, 1, 2}
FUZZ = settings(max_examples=40, deadline=None, database=None, derandomize=in_ci(), print_blob=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

known_words = st.sampled_from(sorted({word for title in TITLES for word in title.split()}))
odd_pieces = st.sampled_from(["", " ", "\t", "\n", "\x00", "\x1b[2J", "\u202e", "\udcff", "\ud800", "--k", "-x",
                              "[/]", "{{x}}", "\"}]}", "漢字", "😀", "e\u0301", "\ufeff", "İ"])
query_texts = st.one_of(
    st.text(max_size=200),
    st.lists(st.one_of(known_words, odd_pieces, st.text(min_size=1, max_size=12)), max_size=60).map(" ".join),
    st.lists(st.text(alphabet=st.characters(categories=["Ll", "Lo", "Nd"]), min_size=1, max_size=8),
             min_size=200, max_size=400).map(" ".join),
    st.builds(lambda word, count: (word + " ") * count, known_words, st.integers(1, 5_000)),
)


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> list[str]:
    """A local index of the titles, and the options that reach it."""
    folder = tmp_path_factory.mktemp("cli-fuzz")
    model = make_model(folder / "model", texts=TITLES, dim=8)
    pins = write_pins(folder / "pins.jsonl", titled_pins(TITLES))
    options = ["--model", str(model), "--engine", "local", "--local-dir", str(folder / "local")]
    run_pintext(["ingest", str(pins), "--no-tune", "--json", *options]).ok()
    return options


def check_one_outcome(args: list[str]) -> str:
    """Run the CLI; assert an answer or exactly one error line with a documented code; return the outcome."""
    result = run_pintext(args)
    assert result.code in DOCUMENTED_EXIT_CODES, (args, result.output)
    assert result.exception is None or isinstance(result.exception, SystemExit), (args, repr(result.exception))
    assert "Traceback" not in result.output
    if result.code == 0:
        answer = json.loads(result.stdout.strip().splitlines()[-1])
        assert isinstance(answer["hits"], list) and answer["mode"] in ("pintext", "bm25_fallback")
        assert "error:" not in result.output
        return "answer"
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), (args, result.output)
    return "error"


@FUZZ
@given(text=query_texts)
@example(text="")
@example(text="   \t ")
@example(text="\udcff\udcfe")
@example(text=" ".join(f"w{i}" for i in range(400)))
def test_any_query_text_is_an_answer_or_one_line(served, text):
    outcome = check_one_outcome(["search", "--json", "--k", "5", *served, "--", text])
    if not text.strip():
        assert outcome == "error"


@FUZZ
@given(text=query_texts)
@example(text="red chair\nblue lamp")
def test_any_query_in_a_queries_file_is_an_answer_or_one_line(served, tmp_path_factory, text):
    path: Path = tmp_path_factory.mktemp("queries") / "queries.jsonl"
    path.write_text(json.dumps(text) + "\n", encoding="utf-8", errors="surrogatepass")
    check_one_outcome(["search", "--json", "--k", "5", *served, "--queries", str(path)])
