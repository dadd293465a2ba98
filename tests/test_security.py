"""The secured node (`pintext opensearch up --secure`) through the real CLI: TLS, users, roles, one-line access
errors, and no password anywhere it should not be (docs/security.md).

Every command runs as a subprocess of the installed `pintext`, so each has its own stdout/stderr and process state
(the `--insecure` warning is once per process). Each run's output is kept for the leak test at the end.
"""

from __future__ import annotations

import json
import os
import stat

import pytest

from tests.factories import BAD_LINES, make_model, make_pins, write_pins_file
from tests.fixtures_cli import Ran, run_pintext

pytestmark = pytest.mark.secure

PIN_COUNT = 120
INDEX = f"pins-sec{os.getpid()}"  # matches the roles' `pins*`; per session, so two sessions never collide
QUERY = "w001 w002 w003"
READER, WRITER, ADMIN = "pintext_reader", "pintext_writer", "admin"
CREDENTIAL_VARIABLES = ("OPENSEARCH_USER", "OPENSEARCH_PASSWORD", "ELASTICSEARCH_USER", "ELASTICSEARCH_PASSWORD",
                        "OPENSEARCH_URL", "ELASTICSEARCH_URL")
# Every run's stdout + stderr, and every exception text seen, for test_no_password_appears_anywhere.
SEEN: list[str] = []


def pintext(*args: str, env: dict[str, str] | None = None) -> Ran:
    """The installed `pintext` as a process of its own, without the caller's credential variables."""
    done = run_pintext(args, env={**dict.fromkeys(CREDENTIAL_VARIABLES), **(env or {})}, real_process=True)
    SEEN.extend([done.stdout, done.stderr])
    return done


def one_error_line(done: Ran) -> str:
    """The `error:` line of a failed run, after checking it failed with exit 1 and no traceback."""
    assert done.code == 1, (done.code, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr + done.stdout
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, done.stderr
    return errors[0]


@pytest.fixture(scope="module")
def corpus(secure_node, tmp_path_factory):
    """A tiny model and pins file, ingested by the writer with --ca-certs; the index is dropped at the end."""
    folder = tmp_path_factory.mktemp("secure")
    model = make_model(folder / "model")
    pins = make_pins(PIN_COUNT, seed=5)
    pins_file = folder / "pins.jsonl"
    valid = write_pins_file(pins_file, pins)  # with the bad lines: they must be dead-lettered, not lost
    state = {"dead_letter": folder / "rejected.jsonl", "checkpoint": folder / "checkpoint.json"}
    corpus = {"model": model, "pins": pins, "pins_file": pins_file, "valid": valid, "folder": folder, **state}
    ingested = pintext("ingest", str(pins_file), *as_user(secure_node, corpus, WRITER), "--json",
                       "--dead-letter", str(state["dead_letter"]), "--checkpoint", str(state["checkpoint"]))
    assert ingested.code == 0, ingested.stderr
    corpus["ingested"] = json.loads(ingested.stdout.strip().splitlines()[-1])
    yield corpus
    dropped = pintext("index", "delete", "--index", INDEX, "--url", secure_node.url, "--user", ADMIN,
                      "--password", secure_node.passwords[ADMIN], "--ca-certs", str(secure_node.ca_certs))
    assert dropped.code == 0, dropped.stderr


def target(node, with_ca: bool = True) -> list[str]:
    return ["--index", INDEX, "--url", node.url, *(["--ca-certs", str(node.ca_certs)] if with_ca else [])]


def as_user(node, corpus, user: str, with_ca: bool = True) -> list[str]:
    return ["--model", str(corpus["model"]), *target(node, with_ca), "--user", user,
            "--password", node.passwords[user]]


def search_ids(done: Ran) -> list[str]:
    assert done.code == 0, done.stderr
    return [hit["id"] for hit in json.loads(done.stdout)["hits"]]


def served_count(node) -> int:
    """How many pins the index holds, asked as admin (the fixture's own client, not the CLI under test)."""
    from pintext.serving.opensearch_client import connect

    client = connect(url=node.url, user=ADMIN, password=node.passwords[ADMIN], ca_certs=str(node.ca_certs))
    return int(client.count(index=INDEX)["count"])


# ---- what each user may do -------------------------------------------------------------------------------------


def test_writer_ingests_and_reader_finds_the_pins(secure_node, corpus):
    ingested = corpus["ingested"]
    count = served_count(secure_node)
    print(f"pins in: {corpus['valid']} valid lines (+{len(BAD_LINES)} bad); indexed {ingested['indexed']}, "
          f"rejected {ingested['rejected']}; in the index: {count}")
    assert (ingested["indexed"], ingested["rejected"], count) == (corpus["valid"], len(BAD_LINES), corpus["valid"])
    assert ingested["alias"] == INDEX and ingested["serving"] is True
    reader = search_ids(pintext("search", QUERY, *as_user(secure_node, corpus, READER), "--k", "5", "--json"))
    writer = search_ids(pintext("search", QUERY, *as_user(secure_node, corpus, WRITER), "--k", "5", "--json"))
    print(f"pins out: the reader's top 5 {reader}")
    assert len(reader) == 5 and set(reader) <= {pin["id"] for pin in corpus["pins"]}
    assert reader == writer  # one index, one ranking, whoever asks
    related = pintext("related", reader[0], *as_user(secure_node, corpus, READER), "--k", "3", "--json")
    assert related.code == 0, related.stderr
    assert reader[0] not in [hit["id"] for hit in json.loads(related.stdout)["hits"]]


def test_reader_cannot_ingest(secure_node, corpus):
    before = served_count(secure_node)
    extra = corpus["folder"] / "more.jsonl"
    extra.write_text(json.dumps({"id": "reader-was-here", "title": "w001 w002"}) + "\n")
    done = pintext("ingest", str(extra), *as_user(secure_node, corpus, READER), "--json",
                   "--dead-letter", str(corpus["dead_letter"]), "--checkpoint", str(corpus["checkpoint"]) + ".reader")
    line = one_error_line(done)
    assert "permission denied for user pintext_reader" in line and "[indices:data/write/bulk]" in line, line
    assert served_count(secure_node) == before
    print(f"pins in: 1 (as the reader), in the index: {served_count(secure_node)} (was {before})")


def test_reader_cannot_delete_the_index(secure_node, corpus):
    line = one_error_line(pintext("index", "delete", *target(secure_node), "--user", READER,
                                  "--password", secure_node.passwords[READER]))
    assert "permission denied for user pintext_reader" in line and "[indices:admin/delete]" in line, line
    assert served_count(secure_node) == corpus["valid"]


# ---- one clear line for each way in that fails ----------------------------------------------------------------


def test_no_credentials_is_the_401_line(secure_node, corpus):
    line = one_error_line(pintext("search", QUERY, "--model", str(corpus["model"]), *target(secure_node)))
    assert line == (f"error: authentication failed at {secure_node.url} (401): no credentials were given: check "
                    "--user/--password or OPENSEARCH_USER/OPENSEARCH_PASSWORD (or ELASTICSEARCH_*)")


def test_wrong_password_names_the_user(secure_node, corpus):
    line = one_error_line(pintext("search", QUERY, "--model", str(corpus["model"]), *target(secure_node),
                                  "--user", READER, "--password", "not-" + secure_node.passwords[READER]))
    assert line == (f"error: authentication failed for user pintext_reader at {secure_node.url} (401): check "
                    "--user/--password or OPENSEARCH_USER/OPENSEARCH_PASSWORD (or ELASTICSEARCH_*)")


@pytest.mark.parametrize("ca", ["another CA", "none"])
def test_an_untrusted_certificate_is_the_tls_line(secure_node, corpus, tmp_path, ca):
    from pintext.servers.certs import CertFiles, write_ca

    other = CertFiles(tmp_path / "other-ca")
    write_ca(other, "Not the node's CA")
    with_ca = ["--ca-certs", str(other.ca)] if ca == "another CA" else []
    line = one_error_line(pintext("search", QUERY, *as_user(secure_node, corpus, READER, with_ca=False), *with_ca))
    assert line == (f"error: TLS certificate of {secure_node.url} not trusted: pass --ca-certs FILE (the CA printed "
                    "by `pintext opensearch|elasticsearch up --secure`), or --insecure to skip verification")


def test_insecure_works_and_warns_once(secure_node, corpus):
    done = pintext("search", QUERY, *as_user(secure_node, corpus, READER, with_ca=False), "--insecure",
                   "--k", "5", "--json")
    verified = search_ids(pintext("search", QUERY, *as_user(secure_node, corpus, READER), "--k", "5", "--json"))
    assert search_ids(done) == verified
    warnings = [line for line in done.stderr.splitlines() if "insecure" in line.lower()]
    assert warnings == [f"warning: --insecure: the TLS certificate of {secure_node.url} is not verified (anyone "
                        "in between can read the credentials and the data)"], done.stderr
    assert "InsecureRequestWarning" not in done.stderr


def test_credentials_from_the_environment(secure_node, corpus):
    env = {"OPENSEARCH_USER": READER, "OPENSEARCH_PASSWORD": secure_node.passwords[READER]}
    done = pintext("search", QUERY, "--model", str(corpus["model"]), *target(secure_node), "--k", "5", "--json",
                   env=env)
    assert len(search_ids(done)) == 5
    env = {"OPENSEARCH_USER": READER, "OPENSEARCH_PASSWORD": "wrong"}
    line = one_error_line(pintext("search", QUERY, "--model", str(corpus["model"]), *target(secure_node), env=env))
    assert "authentication failed for user pintext_reader" in line
    # Elasticsearch's variables, for symmetry, when OpenSearch's are not set.
    env = {"ELASTICSEARCH_USER": READER, "ELASTICSEARCH_PASSWORD": secure_node.passwords[READER]}
    done = pintext("search", QUERY, "--model", str(corpus["model"]), *target(secure_node), "--k", "5", "--json",
                   env=env)
    assert len(search_ids(done)) == 5


def test_eval_retrieval_reports_the_401_line_too(secure_node, corpus, tmp_path):
    """eval-retrieval talks to OpenSearch with its own client (open_client): the same line."""
    judgments = tmp_path / "judgments.csv"
    judgments.write_text(f"query,doc_id,grade\n{QUERY},{corpus['pins'][0]['id']},2\n")
    done = pintext("eval-retrieval", "--corpus", str(corpus["pins_file"]), "--judgments", str(judgments),
                   "--out", str(tmp_path / "eval"), "--model", str(corpus["model"]), "--systems", "bm25",
                   "--index", f"{INDEX}-eval", "--url", secure_node.url, "--ca-certs", str(secure_node.ca_certs),
                   "--user", READER, "--password", "not-" + secure_node.passwords[READER])
    line = one_error_line(done)
    assert line == (f"error: authentication failed for user pintext_reader at {secure_node.url} (401): check "
                    "--user/--password or OPENSEARCH_USER/OPENSEARCH_PASSWORD (or ELASTICSEARCH_*)")


# ---- the node itself -------------------------------------------------------------------------------------------


def test_status_and_a_second_up_name_the_files_not_the_passwords(secure_node):
    status = pintext("opensearch", "status", "--secure", "--json")
    assert status.code == 0, status.stderr
    info = json.loads(status.stdout)
    assert info["health"]["status"] in ("green", "yellow") and info["url"] == secure_node.url
    assert any(plugin.startswith("opensearch-security ") for plugin in info["plugins"])
    assert info["ca_certs"] == str(secure_node.ca_certs)
    again = pintext("opensearch", "up", "--secure")
    assert again.code == 0 and "already running" in again.stdout, again.stdout + again.stderr
    assert f"passwords: in {secure_node.secrets_dir / 'credentials.json'} (mode 0600)" in again.stdout
    mode = stat.S_IMODE((secure_node.secrets_dir / "credentials.json").stat().st_mode)
    assert mode == 0o600 and stat.S_IMODE(secure_node.secrets_dir.stat().st_mode) == 0o700


def test_a_start_puts_back_the_roles_pintext_defines(secure_node, corpus):
    """The security index is loaded from the files only once: a start re-applies ROLES (what `start` calls), so
    a role an older PinText (or a hand edit) left behind is replaced."""
    role = f"{secure_node.url}/_plugins/_security/api/roles/{READER}"
    secure_node.server.https_json(role, method="PUT", body={"cluster_permissions": [], "index_permissions": []})
    try:
        line = one_error_line(pintext("search", QUERY, *as_user(secure_node, corpus, READER)))
        assert "permission denied for user pintext_reader" in line, line
    finally:
        secure_node.server.apply_roles()
    done = pintext("search", QUERY, *as_user(secure_node, corpus, READER), "--k", "5", "--json")
    assert len(search_ids(done)) == 5


def test_exception_texts_carry_no_password(secure_node, corpus):
    """The client's own exceptions (what a caller of the library sees) for a 401 and a 403."""
    from opensearchpy.exceptions import TransportError

    from pintext.serving.opensearch_client import connect

    for user, password in ((READER, "not-" + secure_node.passwords[READER]), (READER, secure_node.passwords[READER])):
        client = connect(url=secure_node.url, user=user, password=password, ca_certs=str(secure_node.ca_certs))
        with pytest.raises(TransportError) as raised:
            client.indices.delete(index=INDEX)
        SEEN.extend([str(raised.value), repr(raised.value), str(raised.value.info)])
        assert raised.value.status_code in (401, 403)


def test_no_password_appears_anywhere(secure_node, corpus):
    """Runs last in this module: every output above, the node's logs, the dead letter and the checkpoint."""
    assert len(SEEN) > 20  # the other tests ran first and their output is here
    files = [*secure_node.logs_dir.glob("*.log"), corpus["dead_letter"], corpus["checkpoint"]]
    assert corpus["dead_letter"].exists() and corpus["checkpoint"].exists()
    texts = SEEN + [path.read_text("utf-8", "replace") for path in files if path.is_file()]
    for user, password in secure_node.passwords.items():
        leaks = [index for index, text in enumerate(texts) if password in text]
        assert not leaks, f"the password of {user} appears in {len(leaks)} texts"
    print(f"checked {len(SEEN)} outputs and {len(files)} files for {len(secure_node.passwords)} passwords")


# ---- certificates and the security config, without a node -------------------------------------------------------


def test_certificates_are_made_once_and_chain_to_the_ca(tmp_path):
    import ipaddress

    from cryptography import x509

    from pintext.servers.certs import ensure_certificates

    files, made = ensure_certificates(tmp_path / "tls")
    first = files.node.read_bytes()
    again, made_again = ensure_certificates(tmp_path / "tls")
    assert (made, made_again) == (True, False) and again.node.read_bytes() == first
    ca = x509.load_pem_x509_certificate(files.ca.read_bytes())
    node = x509.load_pem_x509_certificate(first)
    node.verify_directly_issued_by(ca)
    x509.load_pem_x509_certificate(files.admin.read_bytes()).verify_directly_issued_by(ca)
    names = node.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["localhost"]
    assert names.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    assert files.node_key.read_text().startswith("-----BEGIN PRIVATE KEY-----")  # PKCS#8, what the plugin reads
    assert stat.S_IMODE(files.node_key.stat().st_mode) == 0o600


def test_security_config_holds_bcrypt_hashes_not_passwords():
    import bcrypt

    from pintext.servers.opensearch_secure import USERS, hash_password, security_config_files

    passwords = {name: f"secret-{name}" for name in USERS}
    files = security_config_files({name: hash_password(password) for name, password in passwords.items()})
    users = files["internal_users.yml"]
    for name, password in passwords.items():
        assert bcrypt.checkpw(password.encode(), users[name]["hash"].encode())
        assert password not in json.dumps(files)
    mapping = files["roles_mapping.yml"]
    assert mapping["all_access"]["users"] == ["admin"]
    assert mapping["pintext_writer"]["users"] == ["pintext_writer"]
    assert mapping["pintext_reader"]["users"] == ["pintext_reader"]
    reader = files["roles.yml"]["pintext_reader"]["index_permissions"][0]
    assert reader["index_patterns"] == ["pins*"] and "crud" not in reader["allowed_actions"]


def test_up_shows_the_passwords_only_when_it_makes_them(tmp_path, monkeypatch):
    from pintext.servers.opensearch_node import OpenSearchNodeError
    from pintext.servers.opensearch_secure import SecureOpenSearchNode

    monkeypatch.setenv("PINTEXT_HOME", str(tmp_path))
    first = SecureOpenSearchNode.from_env(port=19999)
    passwords = first.ensure_credentials().passwords
    notes = "\n".join(first.start_notes())
    assert all(f"user {name}: password {password}" in notes for name, password in passwords.items())
    assert str(first.cert_files.ca) in notes
    later = SecureOpenSearchNode.from_env(port=19999)
    assert later.ensure_credentials().passwords == passwords  # kept across starts
    notes = "\n".join(later.start_notes())
    assert f"passwords: in {later.credentials_file} (mode 0600)" in notes
    assert not any(password in notes for password in passwords.values())
    later.credentials_file.unlink()
    (later.data_dir / "nodes").mkdir(parents=True)  # a node that ran: its security index has the old hashes
    with pytest.raises(OpenSearchNodeError, match="is missing but .* holds the node's security index"):
        later.ensure_credentials()
