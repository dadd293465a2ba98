"""The secured managed Elasticsearch node: `pintext elasticsearch up --secure` (docs/security.md).

The plain 8.15.0 integ-test assembly (`pintext.servers.elasticsearch_node`) with x-pack security on: its modules
x-pack-core and x-pack-security carry TLS, the file realm and file-based roles (all in the basic license the node
generates for itself), so nothing is downloaded beyond the plain node's zip.

What `up --secure` sets up, once, and keeps across restarts (folders, ports, the credentials file and the HTTPS
probe are `pintext.servers.secure_node.SecuredSearchNode`'s, shared with the secured OpenSearch node):
- TLS on HTTP and transport with the PEM certificates `pintext.servers.certs` makes (a local CA, a node certificate
  for 127.0.0.1/localhost, PKCS#8 key), through Elasticsearch's PEM settings
  `xpack.security.{http,transport}.ssl.key/certificate/certificate_authorities`;
- HTTP basic auth against the file realm only: `config/users` (bcrypt `$2a$` hashes of random passwords, the
  format `elasticsearch-users useradd` writes) and `config/users_roles` (`admin` is a `superuser`; `pintext_writer`
  and `pintext_reader` have the roles of the same name, defined in `config/roles.yml`, `ROLES`). The files are
  written by every start from `credentials.json`, so a role edited by hand gets today's again, and the node reads
  them itself (no security index, no `elasticsearch-users` JVM, no keystore entry). The reserved realm is off:
  `elastic` and the other built-in users cannot log in.

It listens on $PINTEXT_ELASTICSEARCH_PORT + 10 (9410) over HTTPS, transport on that + 1000 (10410), in its own
folders (`elasticsearch/8.15.0-secure/`, `elasticsearch/run/8.15.0-secure/`), so it runs beside the plain node.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from pintext.servers import search_node
from pintext.servers.elasticsearch_node import (
    DEFAULT_PORT,
    ElasticsearchNode,
    ElasticsearchNodeError,
    ElasticsearchSettings,
    check_version,
)
from pintext.servers.lifecycle import Progress
from pintext.servers.secure_node import (
    PINS_PATTERN,
    PORT_OFFSET,
    READER_USER,
    WRITER_USER,
    SecuredSearchNode,
    hash_password,
    owner_only,
    write_private_text,
)

ADMIN_USER = "admin"  # a file-realm superuser (the reserved realm, and so `elastic`, is off)
USERS = (ADMIN_USER, WRITER_USER, READER_USER)
SECURITY_MODULE = "x-pack-security"
FILE_REALM = "pintext_file"

# Each role's privileges (Elasticsearch's role descriptor, as `config/roles.yml` holds it; docs/security.md).
ROLES: dict[str, dict[str, Any]] = {
    WRITER_USER: {
        "cluster": ["monitor",  # the node's version (`_nodes/_local`), cluster health for `index info`
                    "manage_index_templates"],
        "indices": [{"names": [PINS_PATTERN], "privileges": [
            "create_index", "delete_index",  # index create / delete
            "write", "read",  # bulk ingest, get, search
            "manage",  # aliases (promote), refresh, settings
            "view_index_metadata",  # mappings and `_meta`
        ]}],
    },
    READER_USER: {
        "cluster": ["monitor"],  # the node's version and health: read-only
        "indices": [{"names": [PINS_PATTERN], "privileges": [
            "read",  # search, get, count
            "view_index_metadata",  # resolve the alias, mappings and `_meta`, settings for `index info`
            "monitor",  # `index info`: the index's stats and health (read-only)
        ]}],
    },
}
USER_ROLES = {"superuser": [ADMIN_USER], WRITER_USER: [WRITER_USER], READER_USER: [READER_USER]}


def roles_file() -> str:
    """`config/roles.yml` in block YAML with flow lists (the node reads the file one top-level entry at a time, so
    a role must start at column 0 and its body be indented: pretty-printed JSON is refused)."""
    lines = []
    for name, role in ROLES.items():
        lines += [f"{name}:", f"  cluster: {json.dumps(role['cluster'])}", "  indices:"]
        for group in role["indices"]:
            lines += [f"    - names: {json.dumps(group['names'])}",
                      f"      privileges: {json.dumps(group['privileges'])}"]
    return "\n".join(lines) + "\n"


def users_file(password_hashes: dict[str, str]) -> str:
    """`config/users`: `name:hash` lines (bcrypt)."""
    return "".join(f"{name}:{password_hashes[name]}\n" for name in USERS)


def users_roles_file() -> str:
    """`config/users_roles`: `role:user,user` lines."""
    return "".join(f"{role}:{','.join(users)}\n" for role, users in USER_ROLES.items())


class SecureElasticsearchNode(SecuredSearchNode, ElasticsearchNode):
    """The managed 8.15.0 node with x-pack security on (see the module docstring)."""

    assembly_layout = ElasticsearchNode.assembly_layout  # the same folder contents; only the config differs
    admin_user = ADMIN_USER
    users = USERS
    passwords_in_data = False  # the file realm's files are written from credentials.json on every start

    @classmethod
    def from_env(cls, version: str | None = None, port: int | None = None,
                 heap: str | None = None) -> "SecureElasticsearchNode":
        """--version (only 8.15.0), --port (default $PINTEXT_ELASTICSEARCH_PORT + 10), --heap as the plain node."""
        check_version(version)
        if port is None:
            port = search_node.env_int("PINTEXT_ELASTICSEARCH_PORT", DEFAULT_PORT,
                                       ElasticsearchNodeError) + PORT_OFFSET
        return cls(replace(ElasticsearchSettings.from_env(port=port, heap=heap), port=port))

    def config_extra(self) -> dict[str, str]:
        files = self.cert_files
        lines = {"transport.port": str(self.transport_port),
                 "xpack.security.enabled": "true",
                 "xpack.security.enrollment.enabled": "false",
                 # Only PinText's users: the file realm. The reserved realm is off, so `elastic` (whose password
                 # would otherwise fall back to the keystore's seed) and the other built-in users cannot log in.
                 f"xpack.security.authc.realms.file.{FILE_REALM}.order": "0",
                 "xpack.security.authc.reserved_realm.enabled": "false",
                 "xpack.security.transport.ssl.verification_mode": "certificate"}
        for layer in ("http", "transport"):
            lines.update({f"xpack.security.{layer}.ssl.enabled": "true",
                          f"xpack.security.{layer}.ssl.key": files.node_key.name,
                          f"xpack.security.{layer}.ssl.certificate": files.node.name,
                          f"xpack.security.{layer}.ssl.certificate_authorities": files.ca.name})
        return lines  # not the plain node's (which turns security off)

    def prepare(self, progress: Progress) -> Any:
        launch = super().prepare(progress)  # assembles once, writes elasticsearch.yml
        credentials = self.install_secrets(progress)
        config = self.node_dir / "config"
        hashes = {name: hash_password(password, prefix=b"2a") for name, password in credentials.passwords.items()}
        write_private_text(config / "users", users_file(hashes))
        write_private_text(config / "users_roles", users_roles_file())
        write_private_text(config / "roles.yml", roles_file())
        owner_only(config)  # keys and hashes: the service user only
        return launch

    def problems(self, info: dict) -> list[str]:
        found = super().problems(info)
        if "modules" in info and SECURITY_MODULE not in info["modules"]:
            found.append(f"the security module ({SECURITY_MODULE}) is not loaded")
        return found
