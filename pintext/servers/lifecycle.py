"""One lifecycle for every managed server (OpenSearch, Elasticsearch, Kafka), as testcontainers gives every
container the same start/stop/get-url surface.

A `ManagedServer` says what is particular to it (how to prepare and launch it, how to ask whether it is ready,
which arguments identify its process); this module does the rest once: an exclusive lock around `start`, reuse of
a server of ours that already runs, refusal of a port someone else holds, the detached launch (as the service
user when the server refuses root), the pid and state files, a bounded readiness wait, a failure report carrying
what the server wrote during this start, and `stop`/`status`. Only the standard library is used.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from pintext.servers import process

Progress = Callable[[str], None]
# Between two readiness probes: prompt enough for a 10 s start, slow enough not to spin one of two cores.
PROBE_INTERVAL_S = 0.25
# Lines of each log a failed start reports.
FAILURE_TAIL_LINES = 40


class ServerError(RuntimeError):
    """A managed server could not be downloaded, prepared, started, reached or stopped; the message says why."""


def no_progress(_message: str) -> None:
    """Default progress callback: say nothing."""


@dataclass(frozen=True)
class StartResult:
    """What `start` did: started the server, or found ours already running (`started=False`)."""

    url: str
    pid: int
    started: bool
    seconds_to_healthy: float
    health: Any


@dataclass(frozen=True)
class Launch:
    """How to launch a prepared server: its command line, working folder and environment."""

    command: list[str]
    cwd: Path
    env: dict[str, str]


class ManagedServer(ABC):
    """A local server PinText downloads, starts, watches and stops. Subclasses fill in the abstract parts."""

    key: ClassVar[str]  # "opensearch": names its Java override (PINTEXT_OPENSEARCH_JAVA_HOME) and CLI group
    error: ClassVar[type[ServerError]] = ServerError
    # OpenSearch and Elasticsearch refuse to run as root: when we are root they run as this system user.
    service_user: ClassVar[str | None] = None
    start_timeout_s: ClassVar[float] = 180.0
    stop_timeout_s: ClassVar[float] = 60.0

    def __init__(self, settings: Any) -> None:
        self.settings = settings

    # ------------------------------------------------------------------------------ what each server says

    @property
    @abstractmethod
    def label(self) -> str:
        """For messages: "OpenSearch 3.5.0"."""

    @property
    @abstractmethod
    def url(self) -> str:
        """Where the server answers once started with the current settings (`host:port` for Kafka)."""

    @property
    @abstractmethod
    def run_dir(self) -> Path:
        """The folder holding this server's pid, state and lock files."""

    @property
    @abstractmethod
    def log_file(self) -> Path:
        """The server's main log."""

    @property
    @abstractmethod
    def console_file(self) -> Path:
        """The JVM's stdout/stderr: where errors from before logging starts (bad JVM options) end up."""

    @abstractmethod
    def identity_args(self) -> tuple[str, ...]:
        """Whole arguments our server's command line holds (main class, our folder): a reused pid lacks them."""

    @abstractmethod
    def ports(self) -> list[int]:
        """The TCP ports it listens on, refused at start when someone else holds one."""

    @abstractmethod
    def prepare(self, progress: Progress) -> Launch:
        """Download, assemble and configure as needed (under the start lock); returns how to launch it."""

    @abstractmethod
    def probe(self, url: str) -> Any:
        """Ask the server whether it is ready: an answer when it is, None (or an exception) when not yet."""

    def is_ready(self, answer: Any) -> bool:
        """Whether `probe`'s answer means ready (HTTP nodes: health yellow or green)."""
        return answer is not None

    def details(self, url: str) -> dict:
        """Extra `status` fields of a running server (version, plugins); an `error` key when it cannot say."""
        return {}

    def problems(self, info: dict) -> list[str]:
        """What is wrong with a running server according to `status` (the CLI exits 1 on any)."""
        return []

    @property
    def owned_dir(self) -> Path | None:
        """The folder the service user must own (data, logs, config); None for servers that run as us."""
        return None

    @property
    def shared_dirs(self) -> list[Path]:
        """Folders outside `owned_dir` the service user must reach to read (Kafka's jars in the download cache)."""
        return []

    @property
    def host(self) -> str:
        return self.settings.host

    @property
    def port_hint(self) -> str:
        """How to pick another port, for the "port taken" message."""
        return f"set PINTEXT_{self.key.upper()}_PORT"

    def state_extra(self) -> dict:
        """Fields recorded in the state file beside url and pid."""
        return {}

    def start_notes(self) -> list[str]:
        """Lines `up` prints after a start or a reuse (the secured node: where its CA and credentials are)."""
        return []

    # ------------------------------------------------------------------------------------------ run files

    @property
    def pid_file(self) -> Path:
        return self.run_dir / "server.pid"

    @property
    def state_file(self) -> Path:
        """JSON beside the pid file: the URL and version the running server was started with."""
        return self.run_dir / "server.json"

    @property
    def lock_file(self) -> Path:
        return self.run_dir / ".start.lock"

    def read_state(self) -> dict:
        try:
            return json.loads(self.state_file.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return {}

    def is_ours(self, pid: int) -> bool:
        """`pid` is a live process started for this server (not a reused pid, not someone else's server)."""
        return process.is_our_process(pid, *self.identity_args())

    def running_pid(self) -> int | None:
        """The pid of the server we started, or None; a stale pid file is removed."""
        pid = process.read_pid(self.pid_file)
        if pid is None:
            return None
        if self.is_ours(pid):
            return pid
        self.forget()
        return None

    def forget(self) -> None:
        self.pid_file.unlink(missing_ok=True)
        self.state_file.unlink(missing_ok=True)

    def address(self) -> str:
        """The URL of the running server as recorded at its start, else the configured one."""
        return self.read_state().get("url", self.url)

    # ---------------------------------------------------------------------------------------- the lifecycle

    def start(self, timeout_s: float | None = None, progress: Progress = no_progress) -> StartResult:
        """Start the server and wait until it is ready; reuse ours when it already runs (`started=False`).

        The lock makes two concurrent starts (two test sessions) start one server, not two.
        """
        timeout_s = self.start_timeout_s if timeout_s is None else timeout_s
        with process.exclusive_lock(self.lock_file):
            pid = self.running_pid()
            if pid is not None:
                url = self.address()
                health, waited = self.wait_until_ready(url, timeout_s, lambda: process.is_alive(pid))
                return StartResult(url, pid, False, waited, health)
            return self._launch(timeout_s, progress)

    def refuse_taken_ports(self) -> None:
        """An error when something else listens on one of our ports (we must not start a second listener)."""
        for port in self.ports():
            if process.port_in_use(self.host, port):
                raise self.error(f"port {port} on {self.host} is taken by a process PinText did not start; "
                                 f"stop it or pick another port ({self.port_hint})")

    def _launch(self, timeout_s: float, progress: Progress) -> StartResult:
        self.refuse_taken_ports()
        try:
            launch = self.prepare(progress)
        except OSError as error:  # a full disk, a permission: one clear line, not a traceback
            raise self.error(f"could not prepare {self.label}: {error}") from error
        account = self._service_account(progress)
        env = dict(launch.env)
        if account is not None:
            env["HOME"] = str(self.owned_dir)
        self.console_file.parent.mkdir(parents=True, exist_ok=True)
        offsets = {path: process.file_size(path) for path in (self.log_file, self.console_file)}
        progress(f"starting {self.label} on {self.url}")
        with self.console_file.open("ab") as console:
            child = subprocess.Popen(
                launch.command, cwd=launch.cwd, env=env, stdin=subprocess.DEVNULL, stdout=console,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own session: it outlives this command and the terminal
                user=account.pw_uid if account else None, group=account.pw_gid if account else None,
                extra_groups=[] if account else None,
            )
        self.run_dir.mkdir(parents=True, exist_ok=True)
        process.write_pid(self.pid_file, child.pid)
        state = {"url": self.url, "pid": child.pid, **self.state_extra()}
        self.state_file.write_text(json.dumps(state, indent=2) + "\n")
        try:
            health, waited = self.wait_until_ready(self.url, timeout_s, lambda: child.poll() is None)
        except ServerError as error:
            process.stop_process(child.pid, self.stop_timeout_s)
            self.forget()
            raise self.error(self.failure_report(f"{self.label} did not become ready: {error}", offsets)) from None
        return StartResult(self.url, child.pid, True, waited, health)

    def _service_account(self, progress: Progress):
        if self.service_user is None or self.owned_dir is None:
            return None
        try:
            account = process.ensure_service_user(self.service_user)
        except process.ServiceUserError as error:
            raise self.error(str(error)) from None
        if account is not None:
            for reachable in (self.owned_dir, *self.shared_dirs):
                for folder in process.grant_traverse_to_ancestors(reachable):
                    progress(f"granted traverse (o+x) on {folder} so user {self.service_user!r} can reach it")
            process.chown_tree(self.owned_dir, account.pw_uid, account.pw_gid)
        return account

    def wait_until_ready(self, url: str, timeout_s: float, is_running: Callable[[], bool]) -> tuple[Any, float]:
        """Probe until ready (answer, seconds waited); an error when the process dies or time runs out."""
        return wait_until_ready(url, timeout_s, self._ready_probe, is_running, self.error)

    def _ready_probe(self, url: str) -> Any:
        answer = self.probe(url)
        return answer if self.is_ready(answer) else None

    def stop(self, timeout_s: float | None = None) -> str | None:
        """Stop the server our pid file names; None when none of ours runs. Never signals other processes."""
        pid = self.running_pid()
        if pid is None:
            return None
        outcome = process.stop_process(pid, self.stop_timeout_s if timeout_s is None else timeout_s)
        self.forget()
        return outcome

    def status(self) -> dict:
        """`running`, `url`, `pid`, `log_file`; for a running server also `health` and `details()`, `problems`."""
        pid = self.running_pid()
        url = self.address()
        info: dict = {"server": self.label, "url": url, "pid": pid, "running": pid is not None,
                      "log_file": str(self.log_file)}
        if pid is None:
            return info
        try:
            info["health"] = self.probe(url)
        except Exception as error:  # noqa: BLE001 - any failure to answer is reported, not raised
            info["health"] = None
            info["error"] = str(error)
        info.update(self.details(url))
        info["problems"] = self.problems(info)
        return info

    def failure_report(self, reason: str, offsets: dict[Path, int]) -> str:
        """`reason`, then what the server wrote during this start (its log and JVM console)."""
        sections = [reason]
        for path, offset in offsets.items():
            lines = lines_since(path, offset, FAILURE_TAIL_LINES)
            if lines:
                sections.append(f"--- last lines of {path} ---\n" + "\n".join(lines))
        if len(sections) == 1:
            sections.append(f"(it wrote nothing to {self.log_file} or {self.console_file})")
        return "\n".join(sections)


def wait_until_ready(
    address: str,
    timeout_s: float,
    probe: Callable[[str], Any],
    is_running: Callable[[], bool] = lambda: True,
    error: type[ServerError] = ServerError,
) -> tuple[Any, float]:
    """Call `probe(address)` until it answers (not None, no exception); returns (answer, seconds waited).

    Fails early when `is_running()` turns false (the process died), and after `timeout_s` otherwise.
    """
    began = time.monotonic()
    last_error: Exception | None = None
    while time.monotonic() - began < timeout_s:
        try:
            answer = probe(address)
        except Exception as failure:  # noqa: BLE001 - a refused or failed probe only means "not yet"
            answer, last_error = None, failure
        if answer is not None:
            return answer, time.monotonic() - began
        if not is_running():
            raise error(f"the process exited before {address} answered")
        time.sleep(PROBE_INTERVAL_S)
    because = f": {last_error}" if last_error else ""
    raise error(f"{address} did not answer within {timeout_s:.0f} s{because}")


# ---------------------------------------------------------------------------------------------- logs


def tail_lines(path: Path, count: int) -> list[str]:
    """The last `count` lines of a text file ([] when it does not exist)."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            block = min(size, max(count, 1) * 400)
            while True:
                handle.seek(size - block)
                lines = handle.read().decode("utf-8", "replace").splitlines()
                if len(lines) > count or block == size:
                    return lines[-count:] if count > 0 else []
                block = min(size, block * 4)
    except FileNotFoundError:
        return []


def lines_since(path: Path, offset: int, count: int) -> list[str]:
    """The last `count` lines written to `path` after byte `offset` (this start's output, not an older run's)."""
    try:
        with path.open("rb") as handle:
            handle.seek(offset)
            return handle.read().decode("utf-8", "replace").splitlines()[-count:]
    except FileNotFoundError:
        return []


def follow_lines(path: Path, poll_s: float = 0.5) -> Iterator[str]:
    """New lines appended to `path`, as they come (for `logs --follow`; ends on KeyboardInterrupt)."""
    with path.open("r", encoding="utf-8", errors="replace") as handle:
        handle.seek(0, os.SEEK_END)
        while True:
            line = handle.readline()
            if line:
                yield line.rstrip("\n")
            else:
                time.sleep(poll_s)
