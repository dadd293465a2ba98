"""The Spark pairs engine (local mode) gives the in-memory path's pairs folder: same rows, splits, dead letter."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from tests.fixtures_engines import in_ci

try:
    import pyspark  # noqa: F401
except ImportError:
    if in_ci():  # `make test` installs every extra: a missing one is a broken install, never a skip
        pytest.fail("CI=true but the spark extra is not installed (pip install 'pintext[spark]')", pytrace=False)
    pytest.skip("the spark extra is not installed (pip install 'pintext[spark]')", allow_module_level=True)

from typer.testing import CliRunner  # noqa: E402

from pintext.cli import app  # noqa: E402
from pintext.ingest.pairs.memory import build_pairs  # noqa: E402
from pintext.ingest.pairs.rules import PairOptions  # noqa: E402
from pintext.ingest.pairs.spark_engine import build_pairs_spark, local_session  # noqa: E402
from pintext.ingest.synth.generator import SynthConfig, generate  # noqa: E402
from pintext.schemas import LocatedRecordError  # noqa: E402
from tests.test_pairs import EVENTS, PINS, USERS, event, write_jsonl  # noqa: E402
from tests.test_pairs_duckdb import assert_same_folders, make_odd_inputs  # noqa: E402

runner = CliRunner()
JAVA_17 = Path("/usr/lib/jvm/java-17-openjdk-amd64")


@pytest.fixture(scope="module")
def spark():
    if not os.environ.get("JAVA_HOME"):
        if JAVA_17.is_dir():
            os.environ["JAVA_HOME"] = str(JAVA_17)
        elif not shutil.which("java"):
            if in_ci():
                pytest.fail("no Java for Spark in CI (JAVA_HOME or the Debian JDK 17)")
            pytest.skip("no Java 17+ for Spark")
    session = local_session("local[2]")
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


@pytest.fixture()
def odd_inputs(tmp_path) -> dict[str, Path]:
    return make_odd_inputs(tmp_path)


@pytest.mark.parametrize("options", [PairOptions(), PairOptions(max_per_anchor=1, save_weight=0.7, click_weight=0.3,
                                                                min_count=1, seed=1)], ids=["default", "cap1-odd"])
def test_same_pairs_and_dead_letter_on_the_unit_fixtures(tmp_path, odd_inputs, spark, options):
    build_pairs(odd_inputs["events"], odd_inputs["pins"], odd_inputs["users"], tmp_path / "mem", options)
    stats = build_pairs_spark(odd_inputs["events"], odd_inputs["pins"], odd_inputs["users"], tmp_path / "spark",
                              options, spark=spark)
    assert_same_folders(tmp_path / "mem", tmp_path / "spark")
    assert stats["sources"][0]["engine"]["name"] == "spark"
    assert stats["rejected_by_reason"]["query: no words"] == 1 and stats["input"]["events_duplicate"] == 3
    assert not list(tmp_path.glob(".spark.*")), "the work folder is removed"


def test_same_pairs_on_a_synthetic_log_without_users(tmp_path, spark):
    generate(SynthConfig(n_pins=600, n_users=150, n_events=15_000, seed=4), tmp_path)
    options = PairOptions(min_count=2, max_per_anchor=3, seed=7)
    build_pairs(tmp_path / "events.jsonl", tmp_path / "pins.jsonl", None, tmp_path / "mem", options)
    build_pairs_spark(tmp_path / "events.jsonl", tmp_path / "pins.jsonl", None, tmp_path / "spark", options,
                      spark=spark)
    assert_same_folders(tmp_path / "mem", tmp_path / "spark", ("search", "related"))
    stats = json.loads((tmp_path / "spark" / "stats.json").read_text())
    assert stats["input"]["pairs_below_min_count"] > 0 and stats["input"]["pairs_over_anchor_cap"] > 0


def test_strict_raises_the_first_bad_record(tmp_path, spark):
    pins = write_jsonl(tmp_path / "pins.jsonl", PINS)
    users = write_jsonl(tmp_path / "users.jsonl", USERS)
    events = write_jsonl(tmp_path / "strict.jsonl", EVENTS[:3] + [event("s1", "search", "save", "p1", query="?"),
                                                                   event("s2", "search", "save", 3, query="x")])
    with pytest.raises(LocatedRecordError) as memory:
        build_pairs(events, pins, users, tmp_path / "mem", PairOptions(strict=True))
    with pytest.raises(LocatedRecordError) as spark_error:
        build_pairs_spark(events, pins, users, tmp_path / "spark", PairOptions(strict=True), spark=spark)
    assert str(spark_error.value) == str(memory.value) and ":4:" in str(spark_error.value)
    assert not (tmp_path / "spark").exists()


def test_cli_engine_spark(tmp_path, odd_inputs, spark):
    common = ["pairs", "--events", str(odd_inputs["events"]), "--pins", str(odd_inputs["pins"]),
              "--users", str(odd_inputs["users"])]
    result = runner.invoke(app, [*common, "--out", str(tmp_path / "spark"), "--engine", "spark"])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "spark" / "stats.json").read_text())["sources"][0]["engine"]["name"] == "spark"
    result = runner.invoke(app, [*common, "--out", str(tmp_path / "mem"), "--engine", "memory"])
    assert result.exit_code == 0, result.output
    assert_same_folders(tmp_path / "mem", tmp_path / "spark")
