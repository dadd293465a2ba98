"""The shared parts of the managed servers, without Java or a search engine: the Java rule (fake JDK folders whose
`bin/java` prints a version banner), the lifecycle (a real HTTP server process as the managed server), the CLI
group every server gets, and the CLI error helper."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from pintext.cli import collect as collect_cli
from pintext.cli import elasticsearch as elasticsearch_cli
from pintext.cli import errors
from pintext.cli import opensearch as opensearch_cli
from pintext.cli.servers import ServerGroup, lifecycle_app
from pintext.servers import elasticsearch_node, java, kafka_broker, lifecycle, opensearch_node, process
from tests.serving_helpers import free_port

# ---- the Java rule -------------------------------------------------------------------------------------------


def fake_jdk(root: Path, name: str, banner: str) -> Path:
    """A folder that looks like a JDK: `bin/java -version` prints `banner` on stderr, as java does."""
    home = root / name
    (home / "bin").mkdir(parents=True)
    script = home / "bin" / "java"
    script.write_text(f"#!/bin/sh\necho '{banner}' >&2\n")
    script.chmod(0o755)
    return home


@pytest.fixture
def jdks(tmp_path, monkeypatch):
    """Fake JDK 17, 21 and 25 folders; the machine's own JDK folders and PATH are out of the way."""
    monkeypatch.setattr(java, "KNOWN_JDKS", ())
    return {major: fake_jdk(tmp_path, f"jdk{major}", f'openjdk version "{major}.0.2" 2025-01-21')
            for major in (17, 21, 25)}


def choose(server: str, supported: java.JavaRange, **env: str) -> java.Java:
    return java.choose_java(server, server, supported, {"PATH": "/nonexistent", **env})


def test_the_server_override_comes_first_then_the_shared_ones_then_java_home(jdks):
    both = {"PINTEXT_JAVA_HOME": str(jdks[21]), "JAVA_HOME": str(jdks[25])}
    chosen = choose("opensearch", java.JavaRange(17), PINTEXT_OPENSEARCH_JAVA_HOME=str(jdks[17]), **both)
    assert (chosen.home, chosen.major, chosen.source) == (jdks[17], 17, "PINTEXT_OPENSEARCH_JAVA_HOME")
    assert choose("opensearch", java.JavaRange(17), **both).source == "PINTEXT_JAVA_HOME"
    assert choose("kafka", java.JavaRange(17), JAVA_HOME=str(jdks[25])).major == 25


def test_a_shared_candidate_out_of_range_is_skipped(jdks):
    # One PINTEXT_JAVA_HOME (17) must not stop 3.x (21+) from finding the next JDK that fits.
    chosen = choose("opensearch", java.JavaRange(21), PINTEXT_JAVA_HOME=str(jdks[17]), JAVA_HOME=str(jdks[25]))
    assert (chosen.major, chosen.source) == (25, "JAVA_HOME")
    # ... and a Security Manager server (..23) skips a JDK 25.
    chosen = choose("elasticsearch", java.JavaRange(17, 23), PINTEXT_JAVA_HOME=str(jdks[25]),
                    JAVA_HOME=str(jdks[17]))
    assert chosen.major == 17


def test_an_explicit_override_out_of_range_is_an_error_that_says_so(jdks):
    with pytest.raises(java.JavaNotFoundError, match=r"PINTEXT_OPENSEARCH_JAVA_HOME=.*jdk25 is Java 25; "
                                                     r"opensearch needs Java 17\.\.23"):
        choose("opensearch", java.JavaRange(17, 23), PINTEXT_OPENSEARCH_JAVA_HOME=str(jdks[25]),
               JAVA_HOME=str(jdks[17]))
    with pytest.raises(java.JavaNotFoundError, match="is no working java"):
        choose("kafka", java.JavaRange(17), PINTEXT_KAFKA_JAVA_HOME="/nonexistent/jdk")


def test_the_error_lists_every_candidate_seen(jdks):
    with pytest.raises(java.JavaNotFoundError) as raised:
        choose("opensearch", java.JavaRange(26), PINTEXT_JAVA_HOME=str(jdks[17]), JAVA_HOME=str(jdks[25]))
    message = str(raised.value)
    assert "needs Java 26+" in message and "PINTEXT_OPENSEARCH_JAVA_HOME" in message
    assert f"{jdks[17]} (PINTEXT_JAVA_HOME: Java 17)" in message and f"{jdks[25]} (JAVA_HOME: Java 25)" in message


def test_java_on_path_is_the_last_resort(jdks):
    chosen = java.choose_java("kafka", "Kafka", java.JavaRange(17), {"PATH": str(jdks[21] / "bin")})
    assert (chosen.home, chosen.source) == (jdks[21], "PATH")


def test_the_known_jdk_folders_are_tried_before_path(jdks, monkeypatch):
    monkeypatch.setattr(java, "KNOWN_JDKS", (jdks[17], jdks[25]))
    assert choose("opensearch", java.JavaRange(21)).home == jdks[25]
    assert choose("opensearch", java.JavaRange(17, 23)).home == jdks[17]


@pytest.mark.parametrize("banner, major", [('openjdk version "17.0.15" 2025-04-15', 17),
                                           ('java version "1.8.0_392"', 8), ('openjdk version "25" 2025-09-16', 25),
                                           ("garbage", 0)])
def test_java_version_banners(banner, major):
    assert java.parse_java_version(banner) == major


def test_each_server_declares_the_java_it_runs_on():
    assert str(opensearch_node.VERSIONS["3.5.0"].java) == "21+"
    assert str(opensearch_node.VERSIONS["2.19.1"].java) == "17..23"
    assert str(elasticsearch_node.JAVA_RANGE) == "17..23"


# ---- the lifecycle, on a real (tiny) server -----------------------------------------------------------------


class HttpServer(lifecycle.ManagedServer):
    """`python -m http.server` as a managed server: started, probed and stopped like the real ones."""

    key = "toy"
    start_timeout_s = 30.0
    stop_timeout_s = 10.0

    def __init__(self, home: Path, port: int, command: list[str] | None = None) -> None:
        super().__init__(settings=type("Settings", (), {"host": "127.0.0.1", "port": port})())
        self.home, self.port = home, port
        self.command = command or [sys.executable, "-u", "-m", "http.server", str(port), "--bind", "127.0.0.1",
                                   "--directory", str(home)]

    label = property(lambda self: f"Toy {self.home.name}")
    url = property(lambda self: f"http://127.0.0.1:{self.port}")
    run_dir = property(lambda self: self.home / "run")
    log_file = property(lambda self: self.home / "toy.log")
    console_file = property(lambda self: self.home / "console.log")

    def identity_args(self) -> tuple[str, ...]:
        return "http.server", str(self.home)

    def ports(self) -> list[int]:
        return [self.port]

    def prepare(self, progress) -> lifecycle.Launch:
        progress("prepared")
        return lifecycle.Launch(self.command, self.home, dict(os.environ))

    def probe(self, url: str) -> dict:
        with urllib.request.urlopen(url, timeout=2) as response:
            return {"status": response.status}


def test_start_reuse_status_and_stop(tmp_path):
    server = HttpServer(tmp_path, free_port())
    said: list[str] = []
    first = server.start(progress=said.append)
    try:
        assert first.started and first.health == {"status": 200}
        assert said == ["prepared", f"starting {server.label} on {server.url}"]
        assert json.loads(server.state_file.read_text()) == {"url": server.url, "pid": first.pid}
        again = server.start()
        assert (again.started, again.pid, again.url) == (False, first.pid, server.url)
        info = server.status()
        assert (info["running"], info["pid"], info["health"]) == (True, first.pid, {"status": 200})
        assert info["problems"] == []
    finally:
        assert server.stop() == "stopped"
    assert not process.is_alive(first.pid) and not server.pid_file.exists() and not server.state_file.exists()
    assert server.stop() is None and server.status()["running"] is False


def test_a_port_someone_else_holds_is_refused(tmp_path):
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        server = HttpServer(tmp_path, listener.getsockname()[1])
        with pytest.raises(lifecycle.ServerError, match="is taken by a process PinText did not start"):
            server.start()


def test_a_server_that_dies_at_start_is_reported_with_what_it_wrote(tmp_path):
    dying = [sys.executable, "-c", "import sys; print('bad option -Xmx0', flush=True); sys.exit(3)", "http.server",
             str(tmp_path)]
    server = HttpServer(tmp_path, free_port(), command=dying)
    with pytest.raises(lifecycle.ServerError) as raised:
        server.start()
    message = str(raised.value)
    assert message.startswith(f"{server.label} did not become ready: the process exited")
    assert "bad option -Xmx0" in message and str(server.console_file) in message
    assert not server.pid_file.exists()


def test_a_pid_file_naming_someone_elses_process_is_never_signalled(tmp_path):
    server = HttpServer(tmp_path, free_port())
    bystander = subprocess.Popen(["sleep", "60"])
    try:
        server.run_dir.mkdir()
        process.write_pid(server.pid_file, bystander.pid)
        assert server.stop(timeout_s=1) is None and bystander.poll() is None
        assert not server.pid_file.exists()
    finally:
        bystander.kill()
        bystander.wait()


def test_the_readiness_wait_is_bounded():
    with pytest.raises(lifecycle.ServerError, match="did not answer within 0 s: refused"):
        lifecycle.wait_until_ready("x", 0.3, lambda _url: (_ for _ in ()).throw(ConnectionError("refused")))
    answers = iter([None, None, {"ok": True}])
    answer, waited = lifecycle.wait_until_ready("x", 10, lambda _url: next(answers))
    assert answer == {"ok": True} and waited >= 0


# ---- the CLI group every server gets -------------------------------------------------------------------------


@pytest.fixture
def toy_cli(tmp_path):
    servers = {version: HttpServer(tmp_path / version, free_port()) for version in ("1.0", "2.0")}
    for server in servers.values():
        server.home.mkdir()

    def select(version, port, heap):
        if version not in (None, *servers):
            raise lifecycle.ServerError(f"Toy {version} is not managed")
        return servers[version or "1.0"]

    group = ServerGroup(name="toy", title="Toy", noun="server", help="toy", versions=tuple(servers),
                        default_port=1, select=select, select_every=lambda: list(servers.values()))
    app = typer.Typer()
    app.add_typer(lifecycle_app(group))
    yield app, servers
    for server in servers.values():
        server.stop()


def test_the_cli_group_runs_up_status_logs_down(toy_cli):
    app, servers = toy_cli
    runner = CliRunner()
    up = runner.invoke(app, ["toy", "up", "--version", "2.0"])
    assert up.exit_code == 0 and "Toy 2.0 up at" in up.stdout, up.output
    assert servers["2.0"].running_pid() is not None and servers["1.0"].running_pid() is None
    assert "already running" in runner.invoke(app, ["toy", "up", "--version", "2.0"]).stdout
    status = runner.invoke(app, ["toy", "status", "--version", "2.0", "--json"])
    assert status.exit_code == 0 and json.loads(status.stdout)["running"] is True
    assert runner.invoke(app, ["toy", "status"]).exit_code == 1  # 1.0 is not running
    assert runner.invoke(app, ["toy", "logs", "--version", "1.0"]).exit_code == 1
    down = runner.invoke(app, ["toy", "down"])  # no --version: every managed version
    assert down.exit_code == 0 and down.stdout.strip() == "Toy 2.0 stopped"
    assert servers["2.0"].running_pid() is None
    assert "no managed Toy server is running" in runner.invoke(app, ["toy", "down"]).stdout


def test_an_unknown_version_is_a_usage_error(toy_cli):
    app, _servers = toy_cli
    result = CliRunner().invoke(app, ["toy", "up", "--version", "9.9"])
    assert result.exit_code == errors.USAGE and "error: Toy 9.9 is not managed" in result.stderr


def test_fail_prints_one_line_on_stderr_and_exits_with_the_code():
    app = typer.Typer()

    @app.command()
    def broken(usage: bool = False) -> None:
        errors.fail("the [bold]node[/bold] is gone", errors.USAGE if usage else errors.FAILURE)

    result = CliRunner().invoke(app, [])
    assert (result.exit_code, result.stdout, result.stderr) == (1, "", "error: the [bold]node[/bold] is gone\n")
    assert CliRunner().invoke(app, ["--usage"]).exit_code == 2


def test_the_cli_literals_match_the_servers():
    assert opensearch_cli.VERSIONS == opensearch_node.SUPPORTED_VERSIONS
    assert opensearch_cli.DEFAULT_PORT == opensearch_node.DEFAULT_PORT
    assert elasticsearch_cli.VERSIONS == (elasticsearch_node.ELASTICSEARCH_VERSION,)
    assert elasticsearch_cli.DEFAULT_PORT == elasticsearch_node.DEFAULT_PORT
    assert collect_cli.KAFKA_VERSIONS == (kafka_broker.KAFKA_VERSION,)
    assert collect_cli.KAFKA_DEFAULT_PORT == kafka_broker.DEFAULT_PORT


def test_a_failure_to_prepare_is_a_server_error(tmp_path):
    class Unpreparable(HttpServer):
        def prepare(self, progress):
            raise PermissionError(13, "Permission denied", str(self.home / "node"))

    with pytest.raises(lifecycle.ServerError, match=r"could not prepare Toy .*Permission denied"):
        Unpreparable(tmp_path, free_port()).start()
