"""Process plumbing shared by the managed local servers: pid files, recognising our own process, stopping it,
the start lock, and the system user the search engines run as. Only the standard library is used, so status
commands stay light.
"""

from __future__ import annotations

import fcntl
import os
import pwd
import signal
import socket
import stat
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# Poll interval of the bounded waits below: short enough to return promptly, long enough not to spin a core.
POLL_S = 0.2
# After SIGKILL the kernel only needs to tear the process down; no clean shutdown to wait for.
KILL_WAIT_S = 10.0


# --------------------------------------------------------------------------------------------- pid files


def read_pid(pid_file: Path) -> int | None:
    """The pid a server's `up` recorded, or None (no file, or not a number)."""
    try:
        return int(pid_file.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def write_pid(pid_file: Path, pid: int) -> None:
    pid_file.write_text(f"{pid}\n")


# ------------------------------------------------------------------------------------- our own processes


def process_args(pid: int) -> list[str]:
    """The command line of `pid` as a list of arguments ([] when it is gone or unreadable)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode("utf-8", "replace") for part in raw.split(b"\0") if part]


def is_alive(pid: int) -> bool:
    """Running and not a zombie (a server started by this very process stays a zombie until reaped)."""
    _reap(pid)
    try:
        status = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return status.rsplit(")", 1)[-1].split()[0] != "Z"


def _reap(pid: int) -> None:
    """Collect the exit status if `pid` is our child, so it does not linger as a zombie."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def is_our_process(pid: int, *required_args: str) -> bool:
    """True if `pid` is alive and its command line holds every one of `required_args` as a whole argument.

    A pid file can outlive its process and the pid be reused; checking the command line (main class, our
    config or home folder) makes sure we never signal someone else's process.
    """
    args = process_args(pid)
    return bool(args) and all(required in args for required in required_args) and is_alive(pid)


def stop_process(pid: int, grace_s: float) -> str:
    """SIGTERM (the servers shut down cleanly on it), wait up to `grace_s`, then SIGKILL. Returns how it ended.

    Callers check first that `pid` is ours (`is_our_process`).
    """
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return "already gone"
    if _wait_for_exit(pid, grace_s):
        return "stopped"
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return "stopped"
    _wait_for_exit(pid, KILL_WAIT_S)
    return "killed after SIGTERM timed out"


def _wait_for_exit(pid: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not is_alive(pid):
            return True
        time.sleep(POLL_S)
    return not is_alive(pid)


def port_in_use(host: str, port: int) -> bool:
    """Something accepts TCP connections on host:port (a server we must not start a second listener beside)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(1.0)
        return probe.connect_ex((host, port)) == 0


def file_size(path: Path) -> int:
    """Bytes in `path` (0 when it does not exist): where this start's output begins in an appended log."""
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


@contextmanager
def exclusive_lock(lock_file: Path) -> Iterator[None]:
    """Hold an exclusive lock on `lock_file` for the block (released when the process dies, too)."""
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with lock_file.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# ------------------------------------------------------------------------------------------- service user


class ServiceUserError(RuntimeError):
    """The system user a server runs as could not be created."""


def ensure_service_user(name: str) -> pwd.struct_passwd | None:
    """The system user a server runs as; created when we are root. None when we are not root (run as ourselves)."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(name)
    except KeyError:
        pass
    result = subprocess.run(
        ["useradd", "--system", "--user-group", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0 and "already exists" not in result.stderr:
        raise ServiceUserError(f"could not create system user {name!r}: {result.stderr.strip()}")
    return pwd.getpwnam(name)


def grant_traverse_to_ancestors(path: Path) -> list[Path]:
    """Add the 'others may traverse' bit to ancestors that lack it (e.g. /root is 0700), so the service
    user can reach the server folder. Traverse only: it still cannot list or read those folders."""
    changed = []
    for ancestor in reversed(path.resolve().parents):
        mode = ancestor.stat().st_mode
        if not mode & stat.S_IXOTH:
            ancestor.chmod(stat.S_IMODE(mode) | stat.S_IXOTH)
            changed.append(ancestor)
    return changed


def chown_tree(root: Path, uid: int, gid: int) -> None:
    os.chown(root, uid, gid)
    for folder, subfolders, files in os.walk(root):
        for name in subfolders + files:
            os.lchown(os.path.join(folder, name), uid, gid)
