"""The secured Elasticsearch node (`pintext elasticsearch up --secure`) through the real CLI, tested like the
secured OpenSearch node (tests/test_security.py, whose runner and factories this module reuses): the writer creates
the index and ingests, the reader searches and is refused writes, a request without credentials or with an
untrusted CA is one line, and no password appears in any output (docs/security.md).
"""

from __future__ import annotations

import json
import os
import stat

import pytest

from tests import test_security as opensearch_security
from tests.factories import BAD_LINES, make_model, make_pins, write_pins_file
from tests.fixtures_cli import Ran
from tests.test_security import QUERY, one_error_line, search_ids

pytestmark = [pytest.mark.secure, pytest.mark.elasticsearch]

PIN_COUNT = 60
INDEX = f"pins-essec{os.getpid()}"  # matches the roles' `pins*`; per session, so two sessions never collide
READER, WRITER, ADMIN = "pintext_reader", "pintext_writer", "admin"
# Every run's stdout + stderr in this module, for test_no_password_appears_anywhere.
SEEN: list[str] = []


def pintext(*args: str, env: dict[str, str] | None = None) -> Ran:
    """The installed `pintext` without any credential variables of the caller's (tests/test_security.py's runner)."""
    done = opensearch_security.pintext(*args, env=env)
    SEEN.extend([done.stdout, done.stderr])
    return done


def target(node, with_ca: bool = True) -> list[str]:
    return ["--engine", "elasticsearch", "--index", INDEX, "--url", node.url,
            *(["--ca-certs", str(node.ca_certs)] if with_ca else [])]


def as_user(node, corpus, user: str, with_ca: bool = True) -> list[str]:
    return ["--model", str(corpus["model"]), *target(node, with_ca), "--user", user,
            "--password", node.passwords[user]]


def served_count(node) -> int:
    """How many pins the index holds, asked as admin (the fixture's own HTTPS client, not the CLI under test)."""
    return int(node.server.https_json(f"{node.url}/{INDEX}/_count")["count"])


@pytest.fixture(scope="module")
def corpus(secure_elasticsearch_node, tmp_path_factory):
    """A tiny model and pins file; the writer creates the index and ingests (with --ca-certs); the index is
    dropped at the end."""
    node = secure_elasticsearch_node
    folder = tmp_path_factory.mktemp("secure-es")
    model = make_model(folder / "model")
    pins = make_pins(PIN_COUNT, seed=7)
    pins_file = folder / "pins.jsonl"
    valid = write_pins_file(pins_file, pins)  # with the bad lines: they must be dead-lettered, not lost
    corpus = {"model": model, "pins": pins, "pins_file": pins_file, "valid": valid, "folder": folder,
              "dead_letter": folder / "rejected.jsonl", "checkpoint": folder / "checkpoint.json"}
    created = pintext("index", "create", *as_user(node, corpus, WRITER), "--pins", str(pins_file))
    assert created.code == 0, created.stderr
    corpus["created"] = created.stdout
    ingested = pintext("ingest", str(pins_file), *as_user(node, corpus, WRITER), "--json",
                       "--dead-letter", str(corpus["dead_letter"]), "--checkpoint", str(corpus["checkpoint"]))
    assert ingested.code == 0, ingested.stderr
    corpus["ingested"] = json.loads(ingested.stdout.strip().splitlines()[-1])
    yield corpus
    dropped = pintext("index", "delete", *target(node), "--user", ADMIN, "--password", node.passwords[ADMIN])
    assert dropped.code == 0, dropped.stderr


# ---- what each user may do -------------------------------------------------------------------------------------


def test_writer_creates_and_ingests_and_reader_finds_the_pins(secure_elasticsearch_node, corpus):
    node = secure_elasticsearch_node
    ingested = corpus["ingested"]
    count = served_count(node)
    print(f"pins in: {corpus['valid']} valid lines (+{len(BAD_LINES)} bad); indexed {ingested['indexed']}, "
          f"rejected {ingested['rejected']}; in the index: {count}")
    assert corpus["created"].startswith(f"created: {INDEX}-"), corpus["created"]
    assert (ingested["indexed"], ingested["rejected"], count) == (corpus["valid"], len(BAD_LINES), corpus["valid"])
    assert ingested["alias"] == INDEX and ingested["serving"] is True
    reader = search_ids(pintext("search", QUERY, *as_user(node, corpus, READER), "--k", "5", "--json"))
    writer = search_ids(pintext("search", QUERY, *as_user(node, corpus, WRITER), "--k", "5", "--json"))
    print(f"pins out: the reader's top 5 {reader}")
    assert len(reader) == 5 and set(reader) <= {pin["id"] for pin in corpus["pins"]}
    assert reader == writer  # one index, one ranking, whoever asks
    info = pintext("index", "info", *target(node), "--user", READER, "--password", node.passwords[READER])
    assert info.code == 0 and INDEX in info.stdout, info.stdout + info.stderr


def test_reader_cannot_ingest(secure_elasticsearch_node, corpus):
    node = secure_elasticsearch_node
    before = served_count(node)
    extra = corpus["folder"] / "more.jsonl"
    extra.write_text(json.dumps({"id": "reader-was-here", "title": "w001 w002"}) + "\n")
    done = pintext("ingest", str(extra), *as_user(node, corpus, READER), "--json",
                   "--dead-letter", str(corpus["folder"] / "reader-rejected.jsonl"),
                   "--checkpoint", str(corpus["checkpoint"]) + ".reader")
    line = one_error_line(done)
    assert line == (f"error: permission denied for user pintext_reader at {node.url} (403): no permission for "
                    "[indices:data/write/bulk]; ask for a role that grants it (docs/security.md)")
    assert served_count(node) == before
    print(f"pins in: 1 (as the reader), in the index: {served_count(node)} (was {before})")


def test_reader_cannot_delete_the_index(secure_elasticsearch_node, corpus):
    node = secure_elasticsearch_node
    line = one_error_line(pintext("index", "delete", *target(node), "--user", READER,
                                  "--password", node.passwords[READER]))
    assert line == (f"error: permission denied for user pintext_reader at {node.url} (403): no permission for "
                    "[indices:admin/delete]; ask for a role that grants it (docs/security.md)")
    assert served_count(node) == corpus["valid"]


# ---- one clear line for each way in that fails ----------------------------------------------------------------


def test_no_credentials_is_the_401_line(secure_elasticsearch_node, corpus):
    node = secure_elasticsearch_node
    line = one_error_line(pintext("search", QUERY, "--model", str(corpus["model"]), *target(node)))
    assert line == (f"error: authentication failed at {node.url} (401): no credentials were given: check "
                    "--user/--password or OPENSEARCH_USER/OPENSEARCH_PASSWORD (or ELASTICSEARCH_*)")


def test_wrong_password_names_the_user(secure_elasticsearch_node, corpus):
    node = secure_elasticsearch_node
    env = {"ELASTICSEARCH_USER": READER, "ELASTICSEARCH_PASSWORD": "not-" + node.passwords[READER]}
    line = one_error_line(pintext("search", QUERY, "--model", str(corpus["model"]), *target(node), env=env))
    assert line == (f"error: authentication failed for user pintext_reader at {node.url} (401): check "
                    "--user/--password or OPENSEARCH_USER/OPENSEARCH_PASSWORD (or ELASTICSEARCH_*)")


@pytest.mark.parametrize("ca", ["another CA", "none"])
def test_an_untrusted_certificate_is_the_tls_line(secure_elasticsearch_node, corpus, tmp_path, ca):
    from pintext.servers.certs import CertFiles, write_ca

    node = secure_elasticsearch_node
    other = CertFiles(tmp_path / "other-ca")
    write_ca(other, "Not the node's CA")
    with_ca = ["--ca-certs", str(other.ca)] if ca == "another CA" else []
    line = one_error_line(pintext("search", QUERY, *as_user(node, corpus, READER, with_ca=False), *with_ca))
    assert line == (f"error: TLS certificate of {node.url} not trusted: pass --ca-certs FILE (the CA printed "
                    "by `pintext opensearch|elasticsearch up --secure`), or --insecure to skip verification")


# ---- the node itself -------------------------------------------------------------------------------------------


def test_status_and_a_second_up_name_the_files_not_the_passwords(secure_elasticsearch_node):
    node = secure_elasticsearch_node
    status = pintext("elasticsearch", "status", "--secure", "--json")
    assert status.code == 0, status.stderr
    info = json.loads(status.stdout)
    assert info["health"]["status"] in ("green", "yellow") and info["url"] == node.url
    assert info["version"] == "8.15.0" and "x-pack-security" in info["modules"] and info["problems"] == []
    assert info["ca_certs"] == str(node.ca_certs)
    again = pintext("elasticsearch", "up", "--secure")
    assert again.code == 0 and "already running" in again.stdout, again.stdout + again.stderr
    assert f"passwords: in {node.secrets_dir / 'credentials.json'} (mode 0600)" in again.stdout
    mode = stat.S_IMODE((node.secrets_dir / "credentials.json").stat().st_mode)
    assert mode == 0o600 and stat.S_IMODE(node.secrets_dir.stat().st_mode) == 0o700
    # The plain node's HTTP URL is not this one: the secured node has its own port and folders.
    from pintext.servers.elasticsearch_node import managed_node

    assert managed_node().url != node.url and managed_node().node_dir != node.server.node_dir


def test_no_password_appears_anywhere(secure_elasticsearch_node, corpus):
    """Runs last in this module: every output above, the node's logs and config folder's readable text, the dead
    letter and the checkpoint."""
    node = secure_elasticsearch_node
    assert len(SEEN) > 20  # the other tests ran first and their output is here
    files = [*node.logs_dir.glob("*.log"), *node.logs_dir.glob("*.json"), corpus["dead_letter"],
             corpus["checkpoint"]]
    assert corpus["dead_letter"].exists() and corpus["checkpoint"].exists()
    texts = SEEN + [path.read_text("utf-8", "replace") for path in files if path.is_file()]
    for user, password in node.passwords.items():
        leaks = [index for index, text in enumerate(texts) if password in text]
        assert not leaks, f"the password of {user} appears in {len(leaks)} texts"
    print(f"checked {len(SEEN)} outputs and {len(files)} files for {len(node.passwords)} passwords")


# ---- the security files, without a node -------------------------------------------------------------------------


def test_users_files_hold_bcrypt_hashes_and_the_roles(tmp_path, monkeypatch):
    import bcrypt

    from pintext.servers.elasticsearch_secure import (
        ROLES,
        SecureElasticsearchNode,
        roles_file,
        users_file,
        users_roles_file,
    )
    from pintext.servers.secure_node import hash_password

    monkeypatch.setenv("PINTEXT_HOME", str(tmp_path))
    server = SecureElasticsearchNode.from_env(port=19998)
    assert (server.url, server.ports()) == ("https://127.0.0.1:19998", [19998, 20998])
    passwords = server.ensure_credentials().passwords
    assert set(passwords) == {ADMIN, WRITER, READER}
    users = users_file({name: hash_password(password, rounds=4, prefix=b"2a") for name, password in passwords.items()})
    for line in users.splitlines():
        name, digest = line.split(":", 1)
        assert digest.startswith("$2a$") and bcrypt.checkpw(passwords[name].encode(), digest.encode())
        assert passwords[name] not in users
    assert users_roles_file() == "superuser:admin\npintext_writer:pintext_writer\npintext_reader:pintext_reader\n"
    reader = ROLES[READER]["indices"][0]
    assert reader["names"] == ["pins*"] and not {"write", "manage", "delete_index"} & set(reader["privileges"])
    # The node keeps no password of its own: a lost credentials.json means new passwords at the next start.
    server.credentials_file.unlink()
    (server.data_dir / "nodes").mkdir(parents=True)
    assert set(server.ensure_credentials().passwords.values()).isdisjoint(passwords.values())
    # Block YAML, one role per top-level entry (the node parses the file entry by entry; JSON is refused).
    assert roles_file().splitlines()[5:] == [
        "pintext_reader:", '  cluster: ["monitor"]', "  indices:", '    - names: ["pins*"]',
        '      privileges: ["read", "view_index_metadata", "monitor"]']
