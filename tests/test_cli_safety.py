"""Issue 13 (CLI safety): credentials never reach the output, and bad options are one `error:` line (exit 2)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pintext.serving.engines import redact, safe_url
from tests.factories import make_model, make_pins, write_pins
from tests.fixtures_cli import run_pintext

SECRET = "s3cretpw"
# Unreachable or malformed URLs with credentials: each reaches a different error path (refused connection, a
# scheme the client refuses, a port out of range, a broken IPv6 host).
URLS = [f"http://user:{SECRET}@127.0.0.1:1", f"ftp://user:{SECRET}@127.0.0.1:1",
        f"http://user:{SECRET}@127.0.0.1:99999", f"http://user:{SECRET}@[::1"]
ENGINES = ["auto", "opensearch", "elasticsearch"]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("safety")
    make_model(folder / "model")
    write_pins(folder / "pins.jsonl", make_pins(5))
    return folder


def commands(folder: Path) -> list[list[str]]:
    model = ["--model", str(folder / "model")]
    return [["ingest", str(folder / "pins.jsonl"), *model], ["search", "hello", *model], ["dsl", "hello", *model],
            ["index", "info"]]


def test_safe_url_and_redact_hide_credentials():
    assert safe_url(f"http://user:{SECRET}@host:9200/x") == "http://***@host:9200/x"
    assert safe_url(f"http://user:{SECRET}@host:99999") == "http://***@host:99999"
    assert safe_url(f"http://user:{SECRET}@[::1") == "http://***@[::1"
    assert safe_url("http://host:9200") == "http://host:9200"
    text = f"Could not parse URL 'http://user:{SECRET}@h:1' (password {SECRET})"
    assert redact(text, password=SECRET) == "Could not parse URL 'http://***@h:1' (password ***)"


@pytest.mark.parametrize("url", URLS)
@pytest.mark.parametrize("engine", ENGINES)
def test_no_command_prints_the_password_of_an_unreachable_url(workdir, url, engine):
    for command in commands(workdir):
        for args, env in (([*command, "--url", url, "--engine", engine], None),
                          ([*command, "--engine", engine], {"OPENSEARCH_URL": url, "ELASTICSEARCH_URL": url}),
                          ([*command, "--engine", engine, "--url", "http://127.0.0.1:1", "--user", "u",
                            "--password", SECRET], None)):
            result = run_pintext(args, env=env)
            # dsl works offline: without a node it may print the body (exit 0, no error line).
            offline = command[0] == "dsl" and result.code == 0
            assert offline or result.code in (1, 2), (args, result.output, result.exception)
            assert SECRET not in result.output, (args, result.output)
            assert SECRET not in repr(result.exception), (args, result.exception)
            assert result.output.count("error:") == (0 if offline else 1), (args, result.output)


def one_usage_error(result, *words: str) -> str:
    """The output is one `error:` line (exit 2, no traceback) that holds each of `words`."""
    assert result.code == 2, (result.output, result.exception)
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit), result.exception
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.output
    for word in words:
        assert word in lines[0], (word, lines[0])
    return lines[0]


@pytest.mark.parametrize("name", ["UPPER", "a b", "_hidden", "a,b", "a*", "..", "x" * 256])
@pytest.mark.parametrize("engine", [["--engine", "local"], ["--url", "http://127.0.0.1:1"]])
def test_an_invalid_index_name_is_refused_before_any_request(workdir, name, engine):
    for command in (["index", "info"], ["search", "w000", "--model", str(workdir / "model")]):
        result = run_pintext([*command, "--index", name, *engine, "--local-dir", str(workdir / "local")])
        one_usage_error(result, "--index")


@pytest.fixture(scope="module")
def local_pins(workdir) -> list[str]:
    args = ["--model", str(workdir / "model"), "--engine", "local", "--local-dir", str(workdir / "local")]
    assert run_pintext(["ingest", str(workdir / "pins.jsonl"), *args]).code == 0
    return args


def test_probes_above_the_index_bits_is_one_error_line(local_pins):
    line = one_usage_error(run_pintext(["search", "w000", *local_pins, "--probes", "1000"]), "--probes", "1000")
    assert "bits" in line
    assert run_pintext(["search", "w000", *local_pins, "--probes", "1", "--json"]).code == 0


@pytest.mark.parametrize("options", [["--k", "100000", "--window", "100000"], ["--window", "10001"],
                                     ["--k", "10001"]])
def test_k_or_window_above_the_engines_cap_is_one_error_line(workdir, local_pins, options):
    one_usage_error(run_pintext(["search", "w000", *local_pins, *options]), "10000")
    one_usage_error(run_pintext(["dsl", "w000", "--model", str(workdir / "model"), "--url", "http://127.0.0.1:1",
                         *options]), "10000")


def test_a_garbage_tokenizer_is_one_error_line(workdir, local_pins):
    bad = workdir / "bad-model"
    (bad / "runtime").mkdir(parents=True)
    for item in (workdir / "model" / "runtime").iterdir():
        (bad / "runtime" / item.name).write_bytes(item.read_bytes())
    (bad / "runtime" / "tokenizer.json").write_text("garbage")
    args = [arg if arg != str(workdir / "model") else str(bad) for arg in local_pins]
    one_usage_error(run_pintext(["search", "w000", *args]), "tokenizer.json")


# ---- pairs --import CSV: the header is checked first, one row a line, broken rows dead-lettered with their line

CSV_ROWS = ["red shoes,crimson sneakers", "blue sofa,velvet couch", "camp tent,hiking trail backpack",
            "chocolate cake,layer sponge icing"]


def import_csv(tmp_path: Path, text: str | bytes, name: str = "pairs.csv"):
    source = tmp_path / name
    source.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    out = tmp_path / "out"
    result = run_pintext(["pairs", "--out", str(out), "--import", str(source), "--task", "search"])
    return result, source, out


def imported(out: Path) -> tuple[dict, list[dict]]:
    stats = json.loads((out / "stats.json").read_text())
    rejected = [json.loads(line) for line in (out / "rejected.search.jsonl").read_text().splitlines()]
    return stats, rejected


def test_a_broken_quote_rejects_its_line_and_keeps_the_rows_after_it(tmp_path):
    rows = [CSV_ROWS[0], 'blue sofa,"velvet couch', *CSV_ROWS[2:]]
    result, source, out = import_csv(tmp_path, "anchor,positive\n" + "\n".join(rows) + "\n")
    result.ok()
    stats, rejected = imported(out)
    assert stats["input"]["rows_valid"] == 3 and stats["input"]["rejected"] == 1
    assert [(entry["source"], entry["line"]) for entry in rejected] == [(str(source), 3)]
    assert stats["tasks"]["search"]["pairs"] == 3


def test_a_row_with_too_many_fields_is_rejected_with_its_line(tmp_path):
    result, source, out = import_csv(tmp_path, "anchor,positive\n" + "\n".join([*CSV_ROWS, "a b,c d,extra"]) + "\n")
    result.ok()
    stats, rejected = imported(out)
    assert stats["input"]["rows_valid"] == 4 and [entry["line"] for entry in rejected] == [6]


def test_a_bom_is_accepted(tmp_path):
    result, _, out = import_csv(tmp_path, b"\xef\xbb\xbf" + ("anchor,positive\n" + "\n".join(CSV_ROWS) + "\n").encode())
    result.ok()
    stats, rejected = imported(out)
    assert stats["input"]["rows_valid"] == 4 and rejected == []


@pytest.mark.parametrize("header", ["anchor;positive", "query,positive", "anchor"])
def test_a_header_without_the_needed_columns_is_one_error_line(tmp_path, header):
    body = "\n".join(row.replace(",", ";") if ";" in header else row for row in CSV_ROWS)
    result, source, out = import_csv(tmp_path, f"{header}\n{body}\n")
    line = one_usage_error(result, str(source), "anchor", "positive")
    assert "has" in line and not (out / "search").exists()
