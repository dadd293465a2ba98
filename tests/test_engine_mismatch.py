"""Issue 22, the wrong engine and the wrong scheme: `--engine elasticsearch --url <an OpenSearch node>` (and the
reverse pairing, and the same through `PINTEXT_ENGINE` / `ELASTICSEARCH_URL`) is one line saying what answered,
exit 2, in every serving command (was elasticsearch-py's `UnsupportedProductError` traceback, or OpenSearch
requests an Elasticsearch node half understood); `https://` to a plain-HTTP node says so (was "certificate not
trusted"); `dsl` with no node answering prints the request for the defaults (was an error under `--engine auto`).
Real nodes: OpenSearch 3.5.0, 2.19.1 and Elasticsearch 8.15.0.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.factories import make_model, titled_pins, write_pins
from tests.fixtures_cli import run_pintext
from tests.fixtures_engines import ENGINE_NODE_FIXTURES
from tests.serving_helpers import free_port

SECRET = "s3cret-mismatch"
PRODUCTS = {"opensearch": "OpenSearch", "elasticsearch": "Elasticsearch"}
OTHER = {"opensearch": "elasticsearch", "elasticsearch": "opensearch"}
TITLES = ["red chair", "oak table", "blue lamp"]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("mismatch")
    make_model(folder / "model", texts=TITLES, dim=8)
    write_pins(folder / "pins.jsonl", titled_pins(TITLES))
    return folder


def commands(folder: Path) -> list[list[str]]:
    model = ["--model", str(folder / "model")]
    return [["search", "red chair", *model], ["search", "red chair", "--hybrid", *model],
            ["ingest", str(folder / "pins.jsonl"), *model], ["index", "info"], ["index", "create", *model],
            ["index", "delete"], ["index", "promote", *model], ["related", "p0", *model], ["dsl", "red", *model]]


def with_userinfo(url: str) -> str:
    return url.replace("://", f"://pintext:{SECRET}@", 1)


def only_error_line(result) -> str:
    assert "Traceback" not in result.output and not isinstance(result.exception, (AttributeError, KeyError))
    assert SECRET not in result.output and SECRET not in repr(result.exception)
    # --insecure warns once a process (the first of these in-process runs)
    lines = [line for line in result.output.splitlines() if line.strip() and not line.startswith("warning: --insecure")]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    return lines[0]


@pytest.mark.parametrize("node_fixture", ENGINE_NODE_FIXTURES)
def test_the_wrong_engine_is_one_line_naming_what_answered(request, workdir, node_fixture):
    node = request.getfixturevalue(node_fixture)
    named = OTHER[node.engine]
    index = f"mismatch-{node.engine}-{node.version.replace('.', '')}"
    expected = (f"error: the node at {with_userinfo(node.url).replace(f'pintext:{SECRET}', '***')} is "
                f"{PRODUCTS[node.engine]} {node.version}, not {PRODUCTS[named]}: use --engine {node.engine} or auto")
    for command in commands(workdir):
        result = run_pintext([*command, "--engine", named, "--url", with_userinfo(node.url),
                              "--index", index])
        assert result.code == 2, (command, result.output, result.exception)
        assert only_error_line(result) == expected, command
    # the engine and the URL from the environment
    bare = expected.replace(f"{node.url.split('://')[0]}://***@", f"{node.url.split('://')[0]}://")
    result = run_pintext(["index", "info", "--index", index],
                         env={"PINTEXT_ENGINE": named, f"{named.upper()}_URL": node.url})
    assert result.code == 2 and only_error_line(result) == bare
    # under auto, the variable of the other engine naming this node
    result = run_pintext(["index", "info", "--index", index, "--engine", "auto"],
                         env={f"{named.upper()}_URL": node.url, f"{node.engine.upper()}_URL": None,
                              "PINTEXT_ENGINE": None})
    assert result.code == 2 and only_error_line(result) == bare.replace(
        f"use --engine {node.engine} or auto", f"${named.upper()}_URL names it: set ${node.engine.upper()}_URL "
        "instead, or pass --url")
    # nothing was made on the node: the right engine finds no index of that name
    info = run_pintext(["index", "info", "--index", index, "--url", node.url])
    assert info.code == 2 and "does not exist" in only_error_line(info)


@pytest.mark.parametrize("node_fixture", ENGINE_NODE_FIXTURES)
@pytest.mark.parametrize("engine", ["auto", "opensearch", "elasticsearch"])
def test_https_to_a_plain_http_node_says_it_speaks_http(request, workdir, node_fixture, engine):
    node = request.getfixturevalue(node_fixture)
    https = with_userinfo(node.url).replace("http://", "https://", 1)
    for extra in ([], ["--insecure"]):
        for command in (["index", "info"], ["search", "red chair", "--model", str(workdir / "model")]):
            result = run_pintext([*command, "--engine", engine, "--url", https, *extra])
            assert result.code == 1, (command, extra, result.output, result.exception)
            line = only_error_line(result)
            masked = https.replace(f"pintext:{SECRET}", "***")
            assert line == (f"error: the node at {masked} speaks plain HTTP, not HTTPS (its TLS handshake failed "
                            f"before any certificate): use {masked.replace('https://', 'http://')}"), line


# (engine, dsl options): the stored template is OpenSearch's (Elasticsearch's zip has no lang-mustache)
DSL_CASES = [(engine, options) for engine in ("auto", "opensearch", "elasticsearch")
             for options in ([], ["--hybrid"], ["--template"]) if not (engine == "elasticsearch" and options)
             or options == ["--hybrid"]]


@pytest.mark.parametrize(("engine", "options"), DSL_CASES, ids=[f"{engine}{'-'.join(['', *options])}"
                                                               for engine, options in DSL_CASES])
def test_dsl_with_no_node_prints_the_request_for_the_defaults(workdir, engine, options):
    url = f"http://127.0.0.1:{free_port()}"
    for where, env in ((["--url", url], None), ([], {"OPENSEARCH_URL": url, "ELASTICSEARCH_URL": url})):
        result = run_pintext(["dsl", "red chair", "--model", str(workdir / "model"), "--engine", engine,
                              *where, *options], env=env)
        assert result.code == 0, (where, result.output, result.exception)
        assert "note: index 'pins' not found or node unreachable: printing with the default LSH" in result.output
        assert "error:" not in result.output and "GET pins/_search" in result.stdout
        bodies = [json.loads(part[part.index("{"):].split("\n\n#")[0]) for part in
                  result.stdout.split("GET pins/_search")[1:]]
        assert bodies and all(isinstance(body, dict) for body in bodies)
        if options == ["--hybrid"]:
            assert bodies[0]["query"]["multi_match"]["query"] == "red chair"


@pytest.fixture
def stalled_url() -> Iterator[str]:
    """A node that accepts connections and never answers (what a SIGSTOPped node looks like from outside)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            with contextlib.suppress(OSError):
                held.append(server.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    stop.set()
    thread.join()
    for connection in held:
        connection.close()
    server.close()


@pytest.mark.parametrize("engine", ["auto", "opensearch", "elasticsearch"])
def test_a_stalled_node_is_one_line_after_one_timeout(stalled_url, engine):
    """The engine check waits once: the command ends after --timeout with the "did not answer" line (a named
    engine waited twice, for the check and then its own request; auto said "ConnectionTimeout caused by ...")."""
    started = time.monotonic()
    result = run_pintext(["index", "info", "--engine", engine, "--url", stalled_url, "--timeout", "3"])
    took = time.monotonic() - started
    assert result.code == 1, (result.output, result.exception)
    assert only_error_line(result) == (f"error: the engine at {stalled_url} did not answer within 3 s (--timeout "
                                       "SECONDS sets how long to wait)")
    assert 3 <= took < 5.5, took
