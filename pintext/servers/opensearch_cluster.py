"""Placeholder until the cluster topology lands (issue 13): `pintext opensearch up --nodes N` says so."""

from __future__ import annotations

from pintext.servers.opensearch_node import OpenSearchNodeError


class OpenSearchCluster:
    @classmethod
    def from_env(cls, *args: object, **kwargs: object) -> "OpenSearchCluster":
        raise OpenSearchNodeError("this topology is not built yet (issue 13)")
