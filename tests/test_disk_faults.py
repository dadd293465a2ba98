"""A full disk, a read-only file system (issue 22, class 3): `pintext train --out`, `pintext pairs --out` and ingest's
state folder on a small file system each test mounts itself (tmpfs, else a loop-mounted ext2 image; root only).

Each failing run is one line naming the path (exit 1 for no space, 2 for a read-only place), never a traceback;
nothing half-written is left where a later command would take it for output; the previous model folder, pairs
folder and index are untouched and usable.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

from pintext.encoder import Encoder
from tests.factories import make_model, make_pins, synthetic_pairs, write_pins
from tests.fixtures_cli import PINTEXT, Ran, run_pintext
from tests.fixtures_engines import in_ci

TIMEOUT_S = 300
FULL, READ_ONLY = 1, 2  # exit codes: the run failed (free space, run again) / the place is wrong (pintext.cli.disk)


# ---- a small file system of the test's own ----------------------------------------------------------------------


def _mount_small(folder: Path, size_kib: int) -> None:
    try:
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kib}k", "tmpfs", str(folder)], check=True,
                       capture_output=True)
    except (OSError, subprocess.CalledProcessError):  # no tmpfs here: a loop-mounted ext2 image instead
        image = folder.with_suffix(".img")
        subprocess.run(["truncate", "-s", f"{size_kib}k", str(image)], check=True)
        subprocess.run(["mkfs.ext2", "-q", "-m", "0", "-F", str(image)], check=True, capture_output=True)
        subprocess.run(["mount", "-o", "loop", str(image), str(folder)], check=True, capture_output=True)


@pytest.fixture
def small_fs(request: pytest.FixtureRequest) -> Callable[[int], Path]:
    """`small_fs(kib)`: a fresh file system of that size, mounted on a folder of its own under the temporary folder
    (one every user may reach: pytest's tmp_path is root's alone), unmounted and removed after the test."""
    if os.geteuid() != 0:
        why = "mounting a small file system needs root (CI and this sandbox run as root)"
        pytest.fail(why) if in_ci() else pytest.skip(why)
    mounted: list[Path] = []

    def mount(size_kib: int) -> Path:
        folder = Path(tempfile.mkdtemp(prefix="pintext-small-fs-"))
        os.chmod(folder, 0o755)
        mounted.append(folder)
        _mount_small(folder, size_kib)
        return folder

    def unmount_all() -> None:
        for folder in reversed(mounted):
            subprocess.run(["umount", "-l", str(folder)], check=False, capture_output=True)
            shutil.rmtree(folder, ignore_errors=True)
            folder.with_suffix(".img").unlink(missing_ok=True)

    request.addfinalizer(unmount_all)
    return mount


def remount(folder: Path, options: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{options}", str(folder)], check=True, capture_output=True)


def fill_up(folder: Path) -> Path:
    """Write a file until the file system has no block left; returns it (delete it to make room)."""
    filler = folder / "filler"
    with open(filler, "wb", buffering=0) as handle:
        try:
            while True:
                handle.write(b"\0" * 4096)
        except OSError:
            pass
    return filler


def pintext(*args: str, env: dict | None = None) -> Ran:
    """A real process: a full disk or a read-only folder must end it with one line and its exit code."""
    return run_pintext(args, env=env, real_process=True)


def one_error_line(run: Ran, code: int, *words: str) -> str:
    """The run failed with `code` and said so in one `error:` line holding `words`, without a traceback."""
    assert "Traceback" not in run.stderr and "Traceback" not in run.stdout, run.stderr[-3000:]
    errors = [line for line in run.stderr.splitlines() if line.startswith("error:")]
    assert run.code == code and len(errors) == 1, (run.code, run.stderr[-3000:])
    for word in words:
        assert word in errors[0], errors[0]
    return errors[0]


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under `folder` with the sha256 of its bytes."""
    return {str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(folder.rglob("*")) if path.is_file()}


def entries(folder: Path) -> set[str]:
    return {path.name for path in folder.iterdir()}


# ---- train --out ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pairs_dir(tmp_path_factory) -> Path:
    return synthetic_pairs(tmp_path_factory.mktemp("pairs"))


def train_args(pairs: Path, out: Path, *extra: str) -> list[str]:
    return ["train", "--pairs", str(pairs), "--out", str(out), "--tasks", "search", "--no-tune", "--epochs", "1",
            "--threads", "1", *extra]


def test_train_into_a_full_disk_is_one_line_and_keeps_the_previous_model(small_fs, pairs_dir):
    fs = small_fs(384)
    model = make_model(fs / "model")  # the previous model: a small one that fits
    before = snapshot(model)
    previous = Encoder.load(model).fingerprint
    # A 64-d model with its sub-word table does not fit beside it.
    run = pintext(*train_args(pairs_dir, fs / "model", "--dim", "64"))
    one_error_line(run, FULL, f"cannot write model folder {fs / 'model'}", "no space left")
    assert snapshot(model) == before and Encoder.load(model).fingerprint == previous
    # Nothing half-written beside it (no partial build, no trials/): only the model and its lock.
    assert entries(fs) == {"model", ".model.lock"}
    assert not (model / "trials").exists()


def test_train_into_a_read_only_place_is_one_line_and_keeps_the_previous_model(small_fs, pairs_dir):
    fs = small_fs(512)
    model = make_model(fs / "model")
    before = snapshot(model)
    remount(fs, "ro")
    run = pintext(*train_args(pairs_dir, fs / "model", "--dim", "8", "--no-subwords"))
    one_error_line(run, READ_ONLY, str(fs), "read-only")
    assert snapshot(model) == before


def test_a_train_killed_mid_build_leaves_no_debris_for_the_next_run(small_fs, pairs_dir, tmp_path):
    """A run that cannot clean up (killed) leaves its partial build; the next run into the same --out removes it
    and still swaps in a complete model."""
    fs = small_fs(2048)
    leftover = fs / ".model.partial-999999999-abc"  # no process has this pid
    (leftover / "trials").mkdir(parents=True)
    (leftover / "model.safetensors").write_bytes(b"\0" * 1000)
    run = pintext(*train_args(pairs_dir, fs / "model", "--dim", "8", "--no-subwords"))
    assert run.code == 0, run.stderr[-3000:]
    assert entries(fs) == {"model", ".model.lock"}
    assert Encoder.load(fs / "model").dim == 8
    record = json.loads((fs / "model" / "pintext_train.json").read_text())
    assert record["model_dir"] == str(fs / "model")  # not the folder it was built in


# ---- pairs --out ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def events(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("synth")
    run = pintext("synth", "--out", str(folder), "--pins", "200", "--users", "50", "--events", "3000")
    assert run.code == 0, run.stderr[-3000:]
    return folder


def pairs_args(events: Path, out: Path, *extra: str) -> list[str]:
    return ["pairs", "--events", str(events / "events.jsonl"), "--pins", str(events / "pins.jsonl"),
            "--users", str(events / "users.jsonl"), "--out", str(out), "--engine", "memory", *extra]


def test_pairs_into_a_full_disk_is_one_line_and_keeps_the_previous_pairs_folder(small_fs, events):
    fs = small_fs(320)  # one pairs folder fits (~230 KiB), not a second one beside it
    first = pintext(*pairs_args(events, fs / "pairs"))
    assert first.code == 0, first.stderr[-3000:]
    before = snapshot(fs / "pairs")
    again = pintext(*pairs_args(events, fs / "pairs", "--seed", "1"))
    one_error_line(again, FULL, f"cannot write pairs folder {fs / 'pairs'}", "no space left")
    assert snapshot(fs / "pairs") == before
    assert entries(fs) == {"pairs"}
    from pintext.trainer.train import load_pairs

    assert len(load_pairs(fs / "pairs", ["search"])["search"]["train"]) > 0  # still usable
    remount(fs, "ro")
    read_only = pintext(*pairs_args(events, fs / "pairs", "--seed", "1"))
    one_error_line(read_only, READ_ONLY, str(fs), "read-only")
    assert snapshot(fs / "pairs") == before


# ---- ingest's state folder (a real node) ---------------------------------------------------------------------


def ingest_args(pins_file: Path, model: Path, url: str, index: str, *extra: str) -> list[str]:
    return ["ingest", str(pins_file), "--model", str(model), "--index", index, "--url", url, "--batch", "100",
            "--json", *extra]


def index_names(client, name: str) -> list[str]:
    return sorted(client.indices.get(index=f"{name}*", ignore_unavailable=True, allow_no_indices=True))


@pytest.mark.opensearch
def test_ingest_with_a_full_state_folder_is_one_line_and_makes_no_index(opensearch, opensearch_url,
                                                                       opensearch_index_name, small_fs, tmp_path):
    fs = small_fs(256)
    model = make_model(tmp_path / "model")
    pins_file = tmp_path / "pins.jsonl"
    write_pins(pins_file, make_pins(300))
    filler = fill_up(fs)
    state = {"PINTEXT_STATE_DIR": str(fs / "state")}
    run = pintext(*ingest_args(pins_file, model, opensearch_url, opensearch_index_name), env=state)
    one_error_line(run, FULL, str(fs / "state"), "no space left")
    assert index_names(opensearch, opensearch_index_name) == []  # no empty index left behind
    assert not [path for path in fs.rglob("*") if path.is_file() and path != filler]  # no lock, no dead letter
    filler.unlink()  # room again: the same command goes through
    again = pintext(*ingest_args(pins_file, model, opensearch_url, opensearch_index_name), env=state)
    assert again.code == 0, again.stderr[-3000:]
    assert json.loads(again.stdout.strip().splitlines()[-1])["indexed"] == 300
    remount(fs, "ro")
    read_only = pintext(*ingest_args(pins_file, model, opensearch_url, opensearch_index_name), env=state)
    one_error_line(read_only, READ_ONLY, str(fs / "state"), "read-only")


@pytest.mark.opensearch
def test_a_dead_letter_filling_the_disk_mid_ingest_keeps_whole_lines_and_resumes(opensearch, opensearch_url,
                                                                                 opensearch_index_name, small_fs,
                                                                                 tmp_path):
    fs = small_fs(256)
    model = make_model(tmp_path / "model")
    pins_file = tmp_path / "pins.jsonl"
    pins = make_pins(600)
    bad_lines = list(range(300, 500, 10))  # 20 lines of 20 KB: their dead-letter entries need ~400 KiB
    lines = [json.dumps(pin) for pin in pins]
    for line_no in bad_lines:
        lines.insert(line_no - 1, '{"id": "bad", "title": ' + "9" * 20_000)  # not JSON
    pins_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
    dead_letter, checkpoint = fs / "rejected.jsonl", fs / "checkpoint.json"
    args = ingest_args(pins_file, model, opensearch_url, opensearch_index_name, "--dead-letter", str(dead_letter),
                       "--checkpoint", str(checkpoint), "--workers", "1")  # batches acknowledged in turn
    run = pintext(*args)
    one_error_line(run, FULL, f"cannot write dead letter {dead_letter}", "no space left", "--resume")
    # Only whole entries in the dead letter, a whole checkpoint, no temporary files.
    entries_written = [json.loads(line) for line in dead_letter.read_text(encoding="utf-8").splitlines()]
    assert 0 < len(entries_written) < len(bad_lines)
    assert {entry["line"] for entry in entries_written} <= set(bad_lines)
    state = json.loads(checkpoint.read_text(encoding="utf-8"))
    assert state["complete"] is False and 200 <= state["line"] < max(bad_lines)
    assert f"lines up to {state['line']:,} are indexed" in run.stderr
    assert entries(fs) == {"rejected.jsonl", "checkpoint.json", "checkpoint.json.lock"}
    remount(fs, "size=2m")  # room again
    resumed = pintext(*args, "--resume")
    assert resumed.code == 0, resumed.stderr[-3000:]
    opensearch.indices.refresh(index=f"{opensearch_index_name}*")
    assert opensearch.count(index=opensearch_index_name)["count"] == len(pins)
    assert {json.loads(line)["line"] for line in dead_letter.read_text().splitlines()} == set(bad_lines)
    assert json.loads(checkpoint.read_text())["complete"] is True


def test_atomic_folder_leaves_the_old_folder_when_the_build_fails(tmp_path):
    from pintext.atomic import atomic_folder

    target = tmp_path / "out"
    target.mkdir()
    (target / "a.txt").write_text("old")
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_folder(target) as building:
            (building / "a.txt").write_text("new, half")
            raise RuntimeError("boom")
    assert (target / "a.txt").read_text() == "old" and entries(tmp_path) == {"out"}
    with atomic_folder(target) as building:
        (building / "b.txt").write_text("new")
    assert entries(target) == {"b.txt"} and entries(tmp_path) == {"out"}


def test_an_out_that_is_a_file_is_refused_and_kept(tmp_path, pairs_dir):
    out = tmp_path / "notes.txt"
    out.write_text("keep me")
    run = pintext(*train_args(pairs_dir, out, "--dim", "8", "--no-subwords"))
    one_error_line(run, READ_ONLY, f"{out}: exists and is not a folder")
    assert out.read_text() == "keep me"


# ---- a place the user may not write ------------------------------------------------------------------------------


def test_a_place_the_user_may_not_write_is_one_line_each(small_fs):
    """As an unprivileged user (root may write anywhere): pairs --out, train --out and ingest's state folder in a
    folder owned by root."""
    if shutil.which("setpriv") is None:
        why = "setpriv (util-linux) is needed to run a command as another user"
        pytest.fail(why) if in_ci() else pytest.skip(why)
    fs = small_fs(2048)
    os.chmod(fs, 0o755)
    locked = fs / "locked"
    locked.mkdir(mode=0o755)
    source = fs / "pairs.csv"
    source.write_text("anchor,positive\n" + "".join(f"query{i} red,pin{i} red shoes\n" for i in range(30)))
    model = make_model(fs / "model")
    pins_file = fs / "pins.jsonl"
    write_pins(pins_file, make_pins(20))
    writable = fs / "writable"
    writable.mkdir(mode=0o777)
    os.chmod(writable, 0o777)
    as_nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "env", f"HOME={writable}",
                 f"PINTEXT_STATE_DIR={locked / 'state'}", PINTEXT]

    def run(*args: str) -> Ran:
        return Ran.of_process(args, subprocess.run([*as_nobody, *args], capture_output=True, text=True,
                                                   timeout=TIMEOUT_S, cwd=writable))

    one_error_line(run("pairs", "--import", str(source), "--task", "search", "--out", str(locked / "pairs")),
                   READ_ONLY, f"cannot write pairs folder {locked / 'pairs'}", "permission denied")
    one_error_line(run(*train_args(fs / "nowhere", locked / "model")), READ_ONLY, str(locked), "permission denied")
    one_error_line(run("ingest", str(pins_file), "--model", str(model), "--engine", "local", "--local-dir",
                       str(writable / "local")), READ_ONLY, str(locked / "state"), "permission denied")
    assert sorted(path.name for path in locked.iterdir()) == []


# ---- other commands with --out -----------------------------------------------------------------------------------


def test_synth_and_eval_into_a_full_disk_are_one_line_each(small_fs, pairs_dir, tmp_path):
    fs = small_fs(100)
    model = make_model(tmp_path / "model")
    one_error_line(pintext("synth", "--out", str(fs / "synth"), "--pins", "2000", "--users", "100", "--events",
                           "20000"), FULL, f"cannot write {fs / 'synth'}", "no space left")
    fill_up(fs)
    one_error_line(pintext("eval", "--model", str(model), "--pairs", str(pairs_dir), "--out", str(fs / "report")),
                   FULL, f"cannot write {fs / 'report'}", "no space left")
