"""The secured managed OpenSearch node: `pintext opensearch up --secure` (docs/security.md).

The plain 2.19.1 assembly (painless, mustache, analysis-common and rank-eval rebuilt from Maven jars, k-NN
2.19.1.0) plus the `org.opensearch.plugin:opensearch-security` plugin, installed with the distribution's own
`opensearch-plugin install --batch`. **Why 2.19.1 and not the default 3.5.0**: a plugin must match the server
version exactly, and Maven Central serves the security plugin as 2.19.1.0 and 3.4.0.0 but not 3.5.0.0 (3.4.0's
integ-test zip also lacks the modules, and no k-NN/modules for it are assembled here), so 2.19.1 is the only
version with both k-NN and security.

What `up --secure` sets up, once, and keeps across restarts:
- TLS on HTTP and transport with certificates made by `pintext.servers.certs` (a local CA, a node certificate for
  127.0.0.1/localhost, an admin client certificate = `plugins.security.authcz.admin_dn`);
- the security configuration (`config/opensearch-security/*.yml`, written as JSON, which is YAML too): HTTP basic
  auth against the internal users `admin` (all_access), `pintext_writer` and `pintext_reader` (roles in
  `ROLES`), bcrypt hashes of random passwords; `allow_default_init_securityindex` makes the node load them into its
  security index on first start (no securityadmin.sh);
- the passwords, in `credentials.json` (mode 0600, owned by whoever runs `up`) beside the PEM masters in
  `pintext_home()/opensearch/secure/<version>/`, outside the node folder the service user owns. `up` prints them
  once, when they are made; later runs print only the file's path.

Its folders are its own (`opensearch/<version>-secure/`, `opensearch/run/<version>-secure/`) and it listens on
$PINTEXT_OPENSEARCH_PORT + 10 (9210) over HTTPS, transport on that + 1000, so it runs beside the plain nodes.
"""

from __future__ import annotations

import json
import subprocess
import urllib.error
from dataclasses import replace
from pathlib import Path
from typing import Any

from pintext.servers import maven, opensearch_node, search_node
from pintext.servers.certs import ADMIN_DN, NODE_DN
from pintext.servers.lifecycle import Progress, StartResult, no_progress
from pintext.servers.maven import MavenArtifact
from pintext.servers.opensearch_node import NodeSettings, OpenSearchNode, OpenSearchNodeError
from pintext.servers.secure_node import (  # noqa: F401 - Credentials and hash_password are this module's API too
    PINS_PATTERN,
    PORT_OFFSET,
    READER_USER,
    WRITER_USER,
    Credentials,
    SecuredSearchNode,
    hash_password,
    owner_only,
)

SECURE_VERSION = "2.19.1"
SECURE_VERSIONS = {"2.19.1": "2.19.1.0"}  # server version -> opensearch-security version (an exact match)
# Maven Central serves opensearch-security-2.19.1.0.zip with no .sha1/.sha512 (nor a POM): the digest PinText checked
# and pins (download of 2026-12-01; its opensearch-rest-high-level-client, transport-netty4-client 2.19.1,
# bcprov-jdk18on 1.78 and guava 33.4.0 jars matched the sha1 Maven publishes for those same jars).
SECURITY_ZIP_SHA512 = {"2.19.1.0": "89db39616847243fc02392c224164828caccd445ccf85143846ad1e382362f3c"
                                   "f1ce22f87052631eff1fa573dd1d0e6a2e12a54fe8947674cee552b10b736b8a"}
SECURITY_PLUGIN = "opensearch-security"
SECURITY_CONFIG_DIR = "opensearch-security"
ADMIN_USER = "admin"
USERS = (ADMIN_USER, WRITER_USER, READER_USER)


def security_artifact(version: str) -> MavenArtifact:
    return MavenArtifact("org.opensearch.plugin", SECURITY_PLUGIN, version, "zip")


# ------------------------------------------------------------------------------------------ the security config

# Each role's permissions (documented in docs/security.md; tests/test_security.py checks what each may not do).
ROLES: dict[str, dict[str, Any]] = {
    WRITER_USER: {
        "cluster_permissions": [
            "cluster_composite_ops",  # bulk, mget, msearch: ingest writes with _bulk
            "cluster:monitor/*",  # GET / (engine detection, version), cluster health for `index info`
            "cluster:admin/script/put", "cluster:admin/script/get",  # the stored search template index create puts
            "indices:admin/template/*", "indices:admin/index_template/*",
        ],
        "index_permissions": [{"index_patterns": [PINS_PATTERN], "allowed_actions": [
            "crud",  # index, delete, get and search documents
            "create_index", "indices:admin/delete", "indices:admin/aliases*",  # create, drop, alias and promote
            "indices:admin/get", "indices:admin/mappings/get", "indices:admin/refresh*",
            "indices_monitor",  # settings, stats and health of the index (`index info`)
        ]}],
    },
    READER_USER: {
        "cluster_permissions": [
            "cluster:monitor/main",  # GET /: which engine and version answers
            "cluster_composite_ops_ro",  # msearch, mget, search templates
            "cluster:monitor/health",  # `index info`: the index's health
        ],
        "index_permissions": [{"index_patterns": [PINS_PATTERN], "allowed_actions": [
            "read",  # search, get, count
            "indices:admin/get", "indices:admin/mappings/get", "indices:admin/aliases/get",  # resolve the alias, _meta
            "indices:monitor/settings/get",  # `index info`: shards and replicas
        ]}],
    },
}


def _meta(kind: str) -> dict:
    return {"_meta": {"type": kind, "config_version": 2}}


def security_config_files(password_hashes: dict[str, str]) -> dict[str, dict]:
    """File name -> content of `config/opensearch-security/` (written as JSON, which the plugin's YAML reads)."""
    basic_auth = {"description": "HTTP basic auth against the internal users", "http_enabled": True,
                  "transport_enabled": True, "order": 0,
                  "http_authenticator": {"type": "basic", "challenge": True},
                  "authentication_backend": {"type": "intern"}}
    users = {name: {"hash": password_hashes[name], "reserved": name == ADMIN_USER,
                    "description": f"PinText {name}"} for name in USERS}
    roles = {name: {"reserved": False, **permissions} for name, permissions in ROLES.items()}
    mapping = {"all_access": {"reserved": False, "users": [ADMIN_USER]},
               **{name: {"reserved": False, "users": [name]} for name in ROLES}}
    return {
        "config.yml": {**_meta("config"), "config": {"dynamic": {
            "http": {"anonymous_auth_enabled": False}, "authc": {"basic_internal_auth_domain": basic_auth},
            "authz": {},
            # A request over every index (`GET _alias/pins`, which the engine's alias lookup sends) answers with
            # the indices the user may see instead of failing: the writer and reader see only pins*.
            "do_not_fail_on_forbidden": True, "do_not_fail_on_forbidden_empty": True}}},
        "internal_users.yml": {**_meta("internalusers"), **users},
        "roles.yml": {**_meta("roles"), **roles},
        "roles_mapping.yml": {**_meta("rolesmapping"), **mapping},
        "action_groups.yml": _meta("actiongroups"),
        "tenants.yml": _meta("tenants"),
        "nodes_dn.yml": _meta("nodesdn"),
        "whitelist.yml": {**_meta("whitelist"), "config": {"enabled": False}},
        "allowlist.yml": {**_meta("allowlist"), "config": {"enabled": False}},
    }


# -------------------------------------------------------------------------------------------------- the node


class SecureOpenSearchNode(SecuredSearchNode, OpenSearchNode):
    """The managed 2.19.1 node with the security plugin (see the module docstring; folders, ports, credentials and
    the HTTPS health probe are `SecuredSearchNode`'s)."""

    assembly_layout = opensearch_node.OpenSearchNode.assembly_layout * 100 + 1
    admin_user = ADMIN_USER
    users = USERS

    @classmethod
    def from_env(cls, version: str | None = None, port: int | None = None,
                 heap: str | None = None) -> "SecureOpenSearchNode":
        """--version (only 2.19.1), --port (default $PINTEXT_OPENSEARCH_PORT + 10), --heap as the plain node."""
        version = version or SECURE_VERSION
        if version not in SECURE_VERSIONS:
            raise OpenSearchNodeError(
                f"the secured node runs OpenSearch {SECURE_VERSION} only: the opensearch-security plugin must match "
                f"the server exactly and Maven Central has no {version}.0 of it")
        if port is None:
            port = search_node.env_int("PINTEXT_OPENSEARCH_PORT", opensearch_node.DEFAULT_PORT,
                                       OpenSearchNodeError) + PORT_OFFSET
        settings = NodeSettings.from_env(port=port, heap=heap, version=version)
        return cls(replace(settings, port=port))

    def _adopt_legacy_run_files(self) -> None:
        """The secured node never had legacy run files (they belong to the plain node)."""

    # ---- assembly and config --------------------------------------------------------------------------------

    def pinned_checksum(self, artifact: MavenArtifact) -> maven.Checksum | None:
        if artifact.artifact == SECURITY_PLUGIN and artifact.version in SECURITY_ZIP_SHA512:
            return ("sha512", SECURITY_ZIP_SHA512[artifact.version])
        return super().pinned_checksum(artifact)

    def complete_assembly(self, staging: Path, java_home: Path, progress: Progress) -> dict:
        manifest = super().complete_assembly(staging, java_home, progress)
        plugin_version = SECURE_VERSIONS[self.settings.version]
        plugin_zip = self.download(security_artifact(plugin_version), progress)
        progress(f"installing {SECURITY_PLUGIN} {plugin_version}")
        command = [str(staging / "bin" / "opensearch-plugin"), "install", "--batch", plugin_zip.resolve().as_uri()]
        result = subprocess.run(command, env=self.java_env(java_home), capture_output=True, text=True, timeout=600)
        if result.returncode != 0 or not (staging / "plugins" / SECURITY_PLUGIN).is_dir():
            raise OpenSearchNodeError(f"`{' '.join(command)}` failed (exit {result.returncode}):\n"
                                      f"{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
        return {**manifest, "security": plugin_version}

    def config_extra(self) -> dict[str, str]:
        tls = {"pemcert_filepath": self.cert_files.node.name, "pemkey_filepath": self.cert_files.node_key.name,
               "pemtrustedcas_filepath": self.cert_files.ca.name}
        lines = {"transport.port": str(self.transport_port),
                 "plugins.security.ssl.transport.enforce_hostname_verification": "false",
                 "plugins.security.ssl.http.enabled": "true",
                 "plugins.security.allow_default_init_securityindex": "true",
                 "plugins.security.authcz.admin_dn": json.dumps([ADMIN_DN]),
                 "plugins.security.nodes_dn": json.dumps([NODE_DN]),
                 "plugins.security.restapi.roles_enabled": json.dumps(["all_access"]),
                 "plugins.security.system_indices.enabled": "true"}
        for layer in ("transport", "http"):
            lines.update({f"plugins.security.ssl.{layer}.{key}": value for key, value in tls.items()})
        return {**super().config_extra(), **lines}

    def prepare(self, progress: Progress) -> Any:
        launch = super().prepare(progress)  # assembles once, writes opensearch.yml
        credentials = self.install_secrets(progress)
        config = self.node_dir / "config"
        self._write_security_config(config / SECURITY_CONFIG_DIR, credentials.passwords)
        owner_only(config)  # the security plugin warns about a config folder others can read (it holds keys)
        return launch

    def _write_security_config(self, folder: Path, passwords: dict[str, str]) -> None:
        """The security configuration the node loads into its security index on first start (later starts keep
        the index: the passwords never change, so neither do these files' meaning)."""
        folder.mkdir(parents=True, exist_ok=True)
        hashes = {name: hash_password(password) for name, password in passwords.items()}
        for name, content in security_config_files(hashes).items():
            (folder / name).write_text(json.dumps(content, indent=2) + "\n", "utf-8")

    # ---- talking to it ----------------------------------------------------------------------------------------

    def start(self, timeout_s: float | None = None, progress: Progress = no_progress) -> StartResult:
        result = super().start(timeout_s, progress)
        if result.started:
            self.apply_roles(result.url)
        return result

    def apply_roles(self, url: str | None = None) -> None:
        """Put `ROLES` and their user mappings through the security REST API (as admin): the security index is
        loaded from the config files only on the first start, so a node made by an older PinText gets today's."""
        url = url or self.address()
        try:
            for name, permissions in ROLES.items():
                self.https_json(f"{url}/_plugins/_security/api/roles/{name}", method="PUT", body=permissions)
                self.https_json(f"{url}/_plugins/_security/api/rolesmapping/{name}", method="PUT",
                                body={"users": [name]})
        except (urllib.error.URLError, OSError, ValueError) as error:
            raise OpenSearchNodeError(f"could not apply the roles {', '.join(ROLES)} at {url}: {error}") from None

    def problems(self, info: dict) -> list[str]:
        found = super().problems(info)
        if "plugins" in info and not any(plugin.startswith(f"{SECURITY_PLUGIN} ") for plugin in info["plugins"]):
            found.append(f"the security plugin ({SECURITY_PLUGIN}) is not loaded")
        return found
