"""Placeholder until the secure topology lands (issue 13): `pintext opensearch up --secure` says so."""

from __future__ import annotations

from pintext.servers.opensearch_node import OpenSearchNodeError


class SecureOpenSearchNode:
    @classmethod
    def from_env(cls, *args: object, **kwargs: object) -> "SecureOpenSearchNode":
        raise OpenSearchNodeError("this topology is not built yet (issue 13)")
