"""Process plumbing shared by the managed local servers: Java discovery, pid files, recognising our own process,
stopping it. Only the standard library is used, so status commands stay light.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

# The Debian/Ubuntu JDK 17, tried after the environment and before `java` on PATH.
DEBIAN_JDK17 = Path("/usr/lib/jvm/java-17-openjdk-amd64")
# Poll interval of the bounded waits below: short enough to return promptly, long enough not to spin a core.
POLL_S = 0.2
# After SIGKILL the kernel only needs to tear the process down; no clean shutdown to wait for.
KILL_WAIT_S = 10.0


class JavaNotFoundError(RuntimeError):
    """No candidate `java` is new enough; the message lists what was found."""


# ------------------------------------------------------------------------------------------------- java


def java_candidates(env: dict[str, str] | None = None) -> list[Path]:
    """Where to look for `java`, in order: $PINTEXT_JAVA_HOME, $JAVA_HOME, the Debian JDK 17, PATH."""
    env = dict(os.environ if env is None else env)
    candidates = [Path(env[name]) / "bin" / "java" for name in ("PINTEXT_JAVA_HOME", "JAVA_HOME") if env.get(name)]
    candidates.append(DEBIAN_JDK17 / "bin" / "java")
    on_path = shutil.which("java")
    if on_path:
        candidates.append(Path(on_path))
    return candidates


def find_java(min_version: int, env: dict[str, str] | None = None) -> Path:
    """The first candidate `java` of `min_version` or newer; JavaNotFoundError lists the ones seen otherwise."""
    seen = []
    for candidate in java_candidates(env):
        if not candidate.exists():
            continue
        version = java_major_version(candidate)
        seen.append(f"{candidate} ({version})")
        if version >= min_version:
            return candidate
    raise JavaNotFoundError(", ".join(seen) or "none")


def java_major_version(java: Path) -> int:
    """The major version `java -version` reports (8 for 1.8), 0 if it cannot be read."""
    result = subprocess.run([str(java), "-version"], capture_output=True, text=True, timeout=30)
    return parse_java_version(result.stderr + result.stdout)


def parse_java_version(banner: str) -> int:
    """Major version from a `java -version` banner: `version "17.0.15"` -> 17, `"1.8.0_392"` -> 8."""
    match = re.search(r'version "(\d+)(?:\.(\d+))?', banner)
    if not match:
        return 0
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major


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
