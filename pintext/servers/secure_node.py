"""What the secured managed search nodes share (`pintext opensearch|elasticsearch up --secure`, docs/security.md).

A secured node is its engine's plain node plus TLS on HTTP and transport (certificates from
`pintext.servers.certs`), HTTP basic auth and three users (an admin, `pintext_writer`, `pintext_reader`) with
random passwords. This base gives both engines, alike:
- their own folders (`<engine>/<version>-secure/`, `<engine>/run/<version>-secure/`) and ports (HTTPS on the plain
  port + 10, transport on that + 1000: outside the 9300-9400 the plain nodes pick from), so a secured node runs
  beside the plain ones;
- the PEM masters and `credentials.json` (mode 0600, the passwords made once with `secrets.token_urlsafe`) in
  `<engine>/secure/<version>/` (0700), outside the node folder the service user owns; `up` prints the passwords
  once, when it makes them, later runs only the file's path;
- health and details over HTTPS as the admin, trusting only the local CA.
An engine's module says how its security is configured (`SECURE_CONFIG` lines, users and roles files).
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from pintext.servers import search_node
from pintext.servers.certs import CertFiles, ensure_certificates
from pintext.servers.lifecycle import Progress, ServerError

PORT_OFFSET = 10  # over the plain node's default port
TRANSPORT_OFFSET = 1000  # transport port over the HTTP port: outside 9300-9400, which plain nodes pick from
WRITER_USER = "pintext_writer"
READER_USER = "pintext_reader"
# The index names PinText writes: the alias NAME and its concrete NAME-<fingerprint[:12]> (pintext.serving.rollout).
PINS_PATTERN = "pins*"
PASSWORD_BYTES = 18  # secrets.token_urlsafe: 24 characters


def hash_password(password: str, rounds: int = 12, prefix: bytes = b"2b") -> str:
    """A bcrypt hash (`$2b$12$...`, the cost OpenSearch's security plugin uses itself; Elasticsearch's file realm
    reads `$2a$`)."""
    import bcrypt

    return bcrypt.hashpw(password.encode("utf-8"), bcrypt.gensalt(rounds=rounds, prefix=prefix)).decode("ascii")


def write_private_json(path: Path, value: dict) -> None:
    """JSON only the owner may read (created 0600, never world-readable even for a moment)."""
    write_private_text(path, json.dumps(value, indent=2) + "\n")


def write_private_text(path: Path, text: str) -> None:
    """A file only the owner may read (created 0600, never world-readable even for a moment)."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(text)
    path.chmod(0o600)


def owner_only(folder: Path) -> None:
    """`folder` and everything in it readable by its owner only (folders 0700, files 0600)."""
    folder.chmod(0o700)
    for path in folder.rglob("*"):
        path.chmod(0o700 if path.is_dir() else 0o600)


@dataclass(frozen=True)
class Credentials:
    """The users' passwords and the files a client needs."""

    passwords: dict[str, str]
    ca_certs: Path
    file: Path


class SecuredSearchNode(search_node.SearchNode):
    """The secured variant of a managed search node; listed first in a subclass's bases, before the engine's
    plain node class (`class SecureOpenSearchNode(SecuredSearchNode, OpenSearchNode)`)."""

    admin_user: ClassVar[str]  # the superuser: "admin" (OpenSearch), a file-realm "admin" (Elasticsearch)
    users: ClassVar[tuple[str, ...]]  # admin first, then the writer and the reader
    # Whether the node keeps the password hashes in its data (OpenSearch's security index): then losing
    # credentials.json while data/ exists is refused, since new passwords would not reach the node.
    passwords_in_data: ClassVar[bool] = True

    def __init__(self, settings: Any) -> None:
        super().__init__(settings)
        self.credentials_made = False

    # ---- folders and addresses ------------------------------------------------------------------------------

    @property
    def label(self) -> str:
        return f"secured {self.engine} {self.settings.version}"

    @property
    def url(self) -> str:
        return f"https://{self.settings.host}:{self.settings.port}"

    @property
    def node_dir(self) -> Path:
        return self.base_dir / f"{self.settings.version}-secure"

    @property
    def run_dir(self) -> Path:
        return self.base_dir / "run" / f"{self.settings.version}-secure"

    @property
    def secrets_dir(self) -> Path:
        """The PEM masters and credentials.json: outside the node folder, so they stay the caller's (0600)."""
        return self.base_dir / "secure" / self.settings.version

    @property
    def cert_files(self) -> CertFiles:
        return CertFiles(self.secrets_dir)

    @property
    def credentials_file(self) -> Path:
        return self.secrets_dir / "credentials.json"

    @property
    def transport_port(self) -> int:
        return self.settings.port + TRANSPORT_OFFSET

    def ports(self) -> list[int]:
        return [self.settings.port, self.transport_port]

    def state_extra(self) -> dict:
        return {**super().state_extra(), "secure": True, "ca_certs": str(self.cert_files.ca),
                "credentials": str(self.credentials_file)}

    # ---- certificates and credentials ---------------------------------------------------------------------

    def install_secrets(self, progress: Progress) -> Credentials:
        """Make the certificates and passwords unless made before, and copy the CA and the node's certificate and
        key into the node's `config/` (the engine's own security files are the caller's to write there)."""
        files, made = ensure_certificates(self.secrets_dir)
        if made:
            progress(f"made a CA, node and admin certificates in {self.secrets_dir}")
        credentials = self.ensure_credentials()
        for source in (files.ca, files.node, files.node_key):
            shutil.copy2(source, self.node_dir / "config" / source.name)
        return credentials


    def ensure_credentials(self) -> Credentials:
        """The users' passwords, made (random) and saved 0600 on the first start only."""
        self.secrets_dir.mkdir(parents=True, exist_ok=True)
        self.secrets_dir.chmod(0o700)
        if not self.credentials_file.exists():
            if self.passwords_in_data and self.data_dir.is_dir() and any(self.data_dir.iterdir()):
                raise self.error(
                    f"{self.credentials_file} is missing but {self.data_dir} holds the node's security index with "
                    f"the passwords made with it: restore the file, or remove {self.data_dir} to start afresh")
            passwords = {name: secrets.token_urlsafe(PASSWORD_BYTES) for name in self.users}
            write_private_json(self.credentials_file, {"url": self.url, "ca_certs": str(self.cert_files.ca),
                                                       "users": passwords})
            self.credentials_made = True
        return self.credentials()

    def credentials(self) -> Credentials:
        try:
            saved = json.loads(self.credentials_file.read_text("utf-8"))
            passwords = {name: str(saved["users"][name]) for name in self.users}
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise self.error(f"cannot read the secured node's credentials in {self.credentials_file}: "
                             f"{type(error).__name__}") from None
        return Credentials(passwords, self.cert_files.ca, self.credentials_file)

    def start_notes(self) -> list[str]:
        """What `up` prints after the start: the passwords when this start made them (the only time they are
        shown), else where they are."""
        credentials = self.credentials()
        lines = [f"CA certificate (pass it as --ca-certs): {credentials.ca_certs}"]
        if self.credentials_made:
            lines += [f"user {name}: password {password}" for name, password in credentials.passwords.items()]
            lines.append(f"these passwords are shown once; they are kept in {credentials.file} (mode 0600)")
        else:
            lines.append(f"passwords: in {credentials.file} (mode 0600)")
        return lines

    # ---- talking to it ----------------------------------------------------------------------------------------

    def https_json(self, url: str, timeout: float = 5.0, method: str = "GET", body: dict | None = None) -> Any:
        """A JSON request over HTTPS as the admin, trusting only our CA."""
        credentials = self.credentials()
        context = ssl.create_default_context(cafile=str(credentials.ca_certs))
        token = base64.b64encode(f"{self.admin_user}:{credentials.passwords[self.admin_user]}".encode())
        headers = {"Authorization": f"Basic {token.decode('ascii')}", "Content-Type": "application/json"}
        data = json.dumps(body).encode("utf-8") if body is not None else None
        request = urllib.request.Request(url, data=data, headers=headers, method=method)
        with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
            return json.loads(response.read().decode("utf-8"))

    def probe(self, url: str) -> dict | None:
        try:
            health = self.https_json(f"{url}/_cluster/health", timeout=2.0)
        except (urllib.error.URLError, OSError, ValueError, ServerError):
            return None
        return health if isinstance(health, dict) else None

    def details(self, url: str) -> dict:
        where = {"ca_certs": str(self.cert_files.ca), "credentials": str(self.credentials_file)}
        try:
            node = next(iter(self.https_json(f"{url}/_nodes/_local/plugins")["nodes"].values()))
            return {**where, "version": node["version"],
                    "modules": sorted(module["name"] for module in node.get("modules", [])),
                    "plugins": sorted(f"{plugin['name']} {plugin['version']}" for plugin in node.get("plugins", []))}
        except (urllib.error.URLError, OSError, ValueError, KeyError, StopIteration, ServerError) as error:
            return {**where, "error": str(error)}
