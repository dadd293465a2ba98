"""Safe writes: the one place PinText writes files and folders that others take for valid output.

- `write_text` / `write_bytes` / `atomic_file`: a file is written under a temporary name beside it, flushed to disk
  (fsync), then renamed over the target; a reader sees the old content or the new one, never half of it.
- `atomic_folder`: a folder (a model, a pairs folder) is built in a temporary sibling and swapped in when complete;
  a failure (a full disk, a crash) leaves the previous folder as it was, and the partial build is removed (by this
  run, or by the next one when this one was killed).
- `append_whole`: an append-only record file (a dead letter) gets a whole line or nothing: a write that fails
  half-way is cut back.
- `DiskWriteError` / `disk_write_error`: a write that failed because of the place (out of space, read-only,
  permission denied) as one line naming the path; `check_writable` finds it before any work is done.
- `FileLock`: one writer at a time for a path (ingest's state, a model folder), naming the holder's pid.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import glob
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

# What a failed write of a full, read-only or forbidden place says, and whose fault it is (see `usage_fault`).
PLACE_ERRORS = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
}
# Less free space than this after a failed write without an errno (numpy's "N requested and M written",
# safetensors' errors) means the disk filled up.
FULL_BELOW_BYTES = 1 << 20
PARTIAL_MARK = ".partial-"
RETIRED_MARK = ".old-"


class DiskWriteError(OSError):
    """A write that failed because of the place it went to; `str()` is one line naming the path."""

    def __init__(self, code: int, path: str | Path, what: str = "") -> None:
        super().__init__(code, PLACE_ERRORS.get(code, os.strerror(code)), str(path))
        self.path = Path(path)
        self.what = what

    def __str__(self) -> str:
        what = f"{self.what} " if self.what else ""
        return f"cannot write {what}{self.path}: {self.strerror}"

    @property
    def usage_fault(self) -> bool:
        """True when the place itself was the wrong one to give (read-only, not allowed): exit 2; a full disk is
        a failure of the run (exit 1: free space, run again)."""
        return self.errno in (errno.EROFS, errno.EACCES, errno.EPERM)


def _errno_of(error: BaseException) -> int | None:
    """The errno of a failed write: an OSError's own, or the `Os { code: N` a Rust library (safetensors,
    tokenizers) puts in its message."""
    if isinstance(error, OSError) and error.errno is not None:
        return error.errno
    found = re.search(r"Os \{ code: (\d+)", str(error))
    return int(found.group(1)) if found else None


def _free_bytes(path: Path) -> int | None:
    for place in (path, *path.parents):
        try:
            stats = os.statvfs(place)
        except OSError:
            continue
        return stats.f_bavail * stats.f_frsize
    return None


def disk_write_error(error: BaseException, path: str | Path, what: str = "",
                     exact_file: bool = True) -> DiskWriteError | None:
    """`error` (or one it was raised from) as a `DiskWriteError` naming `path`, when the place is at fault: an errno
    of `PLACE_ERRORS`, or a write error without one on a device with (almost) no space left. None otherwise.
    With `exact_file` the path is the file the error names, when it names one. Call it before removing what the
    failed write left (the free space it measures includes that)."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, DiskWriteError):
            return seen
        code = _errno_of(seen)
        if code in PLACE_ERRORS:
            named = getattr(seen, "filename", None) if exact_file else None
            return DiskWriteError(code, named or path, what)
        seen = seen.__cause__ or seen.__context__
    if isinstance(error, OSError) or "serializ" in str(error).lower() or "write" in str(error).lower():
        free = _free_bytes(Path(path))
        if free is not None and free < FULL_BELOW_BYTES:
            return DiskWriteError(errno.ENOSPC, path, what)
    return None


@contextlib.contextmanager
def naming_the_place(path: str | Path, what: str = "", exact_file: bool = True) -> Iterator[None]:
    """Turn a write failure of the place (see `disk_write_error`) inside the block into a `DiskWriteError`."""
    try:
        yield
    except DiskWriteError:
        raise
    except Exception as error:
        problem = disk_write_error(error, path, what, exact_file)
        if problem is None:
            raise
        raise problem from error


def _fsync_folder(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


# ---- files -----------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def atomic_file(path: str | Path, mode: str = "w", what: str = "") -> Iterator[IO[Any]]:
    """A handle on a temporary file beside `path` (unique to this writer); when the block ends without error the
    file is flushed to disk and renamed over `path`, else removed. Write failures of the place are
    `DiskWriteError`s naming `path`."""
    path = Path(path)
    with naming_the_place(path, what, exact_file=False):
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            os.fchmod(descriptor, 0o666 & ~_umask())  # what a plain open() would give, not mkstemp's 0600
            with os.fdopen(descriptor, mode, encoding=None if "b" in mode else "utf-8") as handle:
                yield handle
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, path)
            _fsync_folder(path.parent)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise


def write_text(path: str | Path, text: str, what: str = "") -> None:
    """Write a text file so that readers see the old or the new content, never half of it."""
    with atomic_file(path, "w", what) as handle:
        handle.write(text)


def write_bytes(path: str | Path, data: bytes, what: str = "") -> None:
    """`write_text` for bytes."""
    with atomic_file(path, "wb", what) as handle:
        handle.write(data)


def append_whole(handle: IO[bytes], data: bytes, path: str | Path, what: str = "") -> None:
    """Append `data` (one record) to a file opened in binary append mode, and flush it: on a failure (a full disk)
    the file is cut back to where it was, so it never ends in half a record."""
    handle.flush()
    start = os.fstat(handle.fileno()).st_size
    try:
        handle.write(data)
        handle.flush()
    except OSError as error:
        with contextlib.suppress(OSError):
            os.ftruncate(handle.fileno(), start)  # needs no space; drops what reached the file
        raise disk_write_error(error, path, what) or error from error


def check_writable(folder: str | Path, what: str = "", room: int = 64 * 1024) -> None:
    """Fail now, with a `DiskWriteError` naming `folder`, when files cannot be written there (read-only, not
    allowed, or not even `room` bytes free): before work that would otherwise stop half-way."""
    folder = Path(folder)
    with naming_the_place(folder, what):
        folder.mkdir(parents=True, exist_ok=True)
        descriptor, probe = tempfile.mkstemp(prefix=".pintext-probe.", dir=folder)
        try:
            os.write(descriptor, b"\0" * room)
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
            os.unlink(probe)


# ---- folders ---------------------------------------------------------------------------------------------------


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_leftovers(target: Path) -> None:
    """Remove the partial builds and retired copies of `target` that runs which are no longer alive left beside it
    (a run killed mid-build cannot clean up after itself)."""
    if not target.parent.is_dir():
        return
    for mark in (PARTIAL_MARK, RETIRED_MARK):
        prefix = f".{target.name}{mark}"
        for item in target.parent.glob(f"{glob.escape(prefix)}*"):
            pid = item.name[len(prefix):].split("-", 1)[0]
            if pid.isdigit() and not _pid_alive(int(pid)) and item.is_dir():
                shutil.rmtree(item, ignore_errors=True)


def _swap_in(partial: Path, target: Path) -> None:
    """Put the finished `partial` folder at `target`: the old one is renamed aside, the new one renamed in, then
    the old one removed (both renames on one file system, no data copied)."""
    retired = target.with_name(f".{target.name}{RETIRED_MARK}{os.getpid()}-{partial.name.rsplit('-', 1)[-1]}")
    if target.exists() or target.is_symlink():
        os.rename(target, retired)
    try:
        os.rename(partial, target)
    except BaseException:
        if retired.exists():
            os.rename(retired, target)
        raise
    _fsync_folder(target.parent)
    if retired.is_dir() and not retired.is_symlink():
        shutil.rmtree(retired, ignore_errors=True)
    else:
        retired.unlink(missing_ok=True)


class NotAFolder(ValueError):
    """The target of `atomic_folder` is a file: it is never replaced by a folder (a wrong --out would lose it)."""


@contextlib.contextmanager
def atomic_folder(target: str | Path, what: str = "", start_from: Callable[[Path], None] | None = None
                  ) -> Iterator[Path]:
    """Build the folder `target` in a temporary sibling (yielded) and swap it in when the block ends without error.

    On any failure the sibling is removed and `target` is left as it was; a write failure of the place becomes a
    `DiskWriteError` naming `target`. Files in the folder are flushed to disk before the swap. `start_from(partial)`
    may fill the sibling first (e.g. with what the old folder keeps)."""
    target = Path(target).absolute()
    if target.exists() and not target.is_dir():
        raise NotAFolder(f"{target}: exists and is not a folder (give a folder's path to write {what or 'into'})")
    with naming_the_place(target, what, exact_file=False):
        target.parent.mkdir(parents=True, exist_ok=True)
        remove_leftovers(target)
        partial = Path(tempfile.mkdtemp(prefix=f".{target.name}{PARTIAL_MARK}{os.getpid()}-", dir=target.parent))
        os.chmod(partial, 0o777 & ~_umask())  # mkdtemp's 0700 is for a secret; this folder is an ordinary one
    try:
        with naming_the_place(target, what, exact_file=False):
            if start_from is not None:
                start_from(partial)
            yield partial
            _fsync_tree(partial)
            _swap_in(partial, target)
    finally:
        if partial.exists():
            shutil.rmtree(partial, ignore_errors=True)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _fsync_tree(folder: Path) -> None:
    for root, _folders, files in os.walk(folder):
        for name in files:
            descriptor = os.open(Path(root) / name, os.O_RDONLY)
            try:
                os.fsync(descriptor)
            finally:
                os.close(descriptor)
        _fsync_folder(Path(root))


# ---- one writer at a time --------------------------------------------------------------------------------------


class FileLock:
    """An exclusive `fcntl` lock on `path`: a second taker waits (`on_wait(holder pid)` is told first) or, with
    `wait=False`, gets `LockHeld`. The holder writes its pid into the file. The kernel drops the lock when its
    process ends, crash included: a stale lock never blocks. The file stays (unlinking it would race a waiter)."""

    def __init__(self, path: Path, on_wait: Callable[[str], None] = lambda holder: None, wait: bool = True,
                 what: str = "lock") -> None:
        self.path = Path(path)
        self.on_wait = on_wait
        self.wait = wait
        self.what = what
        self._handle: Any = None

    def __enter__(self) -> "FileLock":
        with naming_the_place(self.path, self.what):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            handle = open(self.path, "a+", encoding="utf-8")
        try:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if not self.wait:
                    raise LockHeld(self.path, self.holder()) from None
                self.on_wait(self.holder())
                fcntl.flock(handle, fcntl.LOCK_EX)
            with naming_the_place(self.path, self.what):
                handle.seek(0)
                handle.truncate()
                handle.write(f"{os.getpid()}\n")
                handle.flush()
        except BaseException:
            handle.close()
            raise
        self._handle = handle
        return self

    def holder(self) -> str:
        """The pid written by whoever holds the lock ("?" if it has not written it yet)."""
        try:
            return self.path.read_text(encoding="utf-8").strip() or "?"
        except OSError:
            return "?"

    def __exit__(self, *exc_info: object) -> None:
        if self._handle is not None:
            self._handle.close()  # closing releases the lock
            self._handle = None


class LockHeld(RuntimeError):
    """`FileLock(wait=False)` found the lock taken."""

    def __init__(self, path: Path, holder: str) -> None:
        super().__init__(f"{path} is held by pid {holder}")
        self.path = path
        self.holder = holder
