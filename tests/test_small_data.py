"""Tiny or broken inputs to training and serving (issue 22): one line each, never a traceback.

- `pintext train` on a pairs folder too small to split: how many pairs there are, per split, and how many are needed;
- a garbage `runtime.json` (or table, or tokenizer): the error names the file;
- two `pintext train` into one `--out`: the second waits for the first, naming its pid;
- `--tokens kmeans` on a corpus too small for centroids, or of identical titles: one line saying what was chosen
  and why, and no raw library warning.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from pintext.atomic import FileLock
from pintext.api.training import model_folder_lock
from pintext.encoder import Encoder, RuntimeArtifactError
from pintext.trainer.train import load_pairs, split_counts
from tests.factories import make_model, make_pins, synthetic_pairs, write_pins
from tests.fixtures_cli import run_pintext

PINTEXT = str(Path(sys.executable).parent / "pintext")
TIMEOUT_S = 300


def one_error_line(result, code: int) -> str:
    assert result.code == code, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    lines = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    return lines[0]


def import_pairs(tmp_path: Path, count: int) -> Path:
    source = tmp_path / f"pairs-{count}.csv"
    source.write_text("anchor,positive\n" + "".join(f"query{i} red,pin{i} red shoes\n" for i in range(count)))
    out = tmp_path / f"pairs-{count}"
    result = run_pintext(["pairs", "--out", str(out), "--import", str(source), "--task", "search"])
    result.ok()
    return out


# ---- train on too few pairs ---------------------------------------------------------------------------------


@pytest.mark.parametrize("count, tune", [(1, False), (1, True), (3, True)])
def test_train_on_too_few_pairs_says_how_many_there_are_and_are_needed(tmp_path, count, tune):
    pairs = import_pairs(tmp_path, count)
    counts = split_counts(load_pairs(pairs, ["search"])["search"])
    assert counts.startswith(f"{count} pairs (")
    args = ["train", "--pairs", str(pairs), "--out", str(tmp_path / "model"), "--epochs", "1", "--dim", "8",
            "--threads", "1", *([] if tune else ["--no-tune"])]
    line = one_error_line(run_pintext(args), 2)
    assert f"task 'search' has {counts}" in line and "needs at least 1 in" in line
    assert not (tmp_path / "model").exists()


# ---- a broken model folder --------------------------------------------------------------------------------------


GARBAGE = {
    "runtime.json": [b"garbage", b"\xff\xfe not utf-8", b"[1, 2]", b'{"dim": "x", "dtype": 1, "vocab_size": [], '
                     b'"unk_id": 0, "fingerprint": "f"}'],
    "embeddings.npy": [b"garbage", b""],
    "tokenizer.json": [b"garbage"],
}


@pytest.mark.parametrize("name, content", [(name, content) for name, contents in GARBAGE.items()
                                           for content in contents])
def test_a_garbage_runtime_file_is_an_error_naming_it(tmp_path, name, content):
    model = make_model(tmp_path / "model")
    (model / "runtime" / name).write_bytes(content)
    with pytest.raises(RuntimeArtifactError, match=str(model / "runtime" / name).replace(".", r"\.")):
        Encoder.load(model)
    pins = tmp_path / "pins.jsonl"
    write_pins(pins, make_pins(5))
    line = one_error_line(run_pintext(["ingest", str(pins), "--model", str(model), "--engine", "local", "--local-dir",
                               str(tmp_path / "local")]), 2)
    assert str(model / "runtime" / name) in line


# ---- two trains into one --out -----------------------------------------------------------------------------------


def test_a_second_train_into_the_same_out_waits_for_the_first_naming_it(tmp_path):
    pairs = synthetic_pairs(tmp_path / "pairs", n_topics=4, pins_per_topic=8, pairs_per_task=120, seed=1)
    out = tmp_path / "model"
    # This test holds the model folder's lock, as a first `train` would.
    with model_folder_lock(out) as lock:
        assert isinstance(lock, FileLock) and lock.holder() == str(os.getpid())
        second = subprocess.Popen([PINTEXT, "train", "--pairs", str(pairs), "--out", str(out), "--tasks", "search",
                                   "--no-tune", "--epochs", "1", "--dim", "8", "--threads", "1", "--json"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            assert second.stderr is not None
            first_line = second.stderr.readline()  # blocks until it says something: that it waits
            assert f"waiting: pid {os.getpid()} is training into {out}" in first_line, first_line
            assert second.poll() is None and not out.exists()  # it waits, and has built nothing
        except BaseException:
            second.kill()
            raise
    stdout, stderr = second.communicate(timeout=TIMEOUT_S)
    assert second.returncode == 0, stderr[-3000:]
    assert json.loads(stdout)["model_dir"] == str(out)
    assert Encoder.load(out).dim == 8


# ---- --tokens kmeans on a small or degenerate corpus -----------------------------------------------------------


def test_centroids_on_identical_or_repeated_vectors_say_so_without_a_library_warning():
    from pintext.tokens.centroids import fit_centroids

    rng = np.random.default_rng(0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning (sklearn's ConvergenceWarning) fails the test
        with pytest.raises(ValueError, match="all 50 pins with a known word have the same vector"):
            fit_centroids(np.tile(rng.standard_normal(16), (50, 1)), centroids=16)
        three = rng.standard_normal((3, 16))
        family = fit_centroids(three[np.arange(60) % 3], centroids=16)
    assert family.centroids == 3  # one centroid a distinct vector, not 16 with repeats


def kmeans_run(tmp_path: Path, pins: list[dict], command: str) -> tuple[str, list[str]]:
    """`ingest FILE` or `index create --pins FILE` with --tokens kmeans on the local engine: its stderr and the
    warnings raised."""
    pins_file = write_pins(tmp_path / "pins.jsonl", pins)
    model = make_model(tmp_path / "model")
    engine = ["--model", str(model), "--engine", "local", "--local-dir", str(tmp_path / "local"), "--tokens", "kmeans"]
    args = ["ingest", str(pins_file), *engine] if command == "ingest" else ["index", "create", "--pins",
                                                                            str(pins_file), *engine]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = run_pintext(args)
    result.ok()
    return result.stderr, [f"{w.category.__name__}: {w.message}" for w in caught]


@pytest.mark.parametrize("command", ["ingest", "index create"])
def test_kmeans_on_a_corpus_too_small_says_what_it_chose_and_why(tmp_path, command):
    stderr, caught = kmeans_run(tmp_path, make_pins(5), command)
    notes = [line for line in stderr.splitlines() if "--tokens kmeans" in line]
    assert len(notes) == 1, stderr
    assert "got 5" in notes[0] and "at least 11" in notes[0] and "untuned random hyperplanes (64 tables x 8 bits" \
        in notes[0]
    assert not caught and "Warning" not in stderr


@pytest.mark.parametrize("command", ["ingest", "index create"])
def test_kmeans_on_identical_titles_tunes_hyperplanes_and_says_why(tmp_path, command):
    title = make_pins(1)[0]["title"]
    stderr, caught = kmeans_run(tmp_path, [{"id": f"p{i}", "title": title} for i in range(50)], command)
    lines = [line for line in stderr.splitlines() if line.startswith("tuned tokens")]
    assert len(lines) == 1 and lines[0].startswith("tuned tokens (lsh, not kmeans: all 50 pins with a known word "
                                                   "have the same vector (identical texts)"), stderr
    assert not caught and "Warning" not in stderr
