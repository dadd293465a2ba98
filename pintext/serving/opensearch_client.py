"""Connecting to OpenSearch, and reading the k-NN plugin's exact scores back as cosines.

Every PinText command that talks to OpenSearch gets its client from `connect()`, so the URL rule is the same
everywhere: the `url` argument, else `$OPENSEARCH_URL`, else the managed local node (`pintext opensearch up`).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:  # opensearch-py is imported only when a client is actually built
    from opensearchpy import OpenSearch

DEFAULT_TIMEOUT_S = 30


def managed_node_url() -> str:
    """The URL of the node `pintext opensearch up` manages (the one it recorded, else the configured port)."""
    from pintext.servers.opensearch_node import managed_url

    return managed_url()


def resolve_url(url: str | None = None) -> str:
    """The OpenSearch URL to use: `url`, else $OPENSEARCH_URL, else the managed node's (the first one, when the
    setting names several)."""
    return resolve_urls(url)[0]


def resolve_urls(url: str | None = None) -> list[str]:
    """Every node URL the setting names: `http://a:9200,http://b:9200` (a cluster) gives both, so the client
    sends each request to a node that answers."""
    chosen = url or os.environ.get("OPENSEARCH_URL") or managed_node_url()
    urls = [part.strip() for part in chosen.split(",") if part.strip()]
    for one in urls or [chosen]:
        parts = urlsplit(one)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            from pintext.serving.engines import safe_url

            raise ValueError(f"OpenSearch URL {safe_url(one)!r} is not like http://host:9200 or https://host:9200")
    return [one.rstrip("/") for one in urls]


def connect(
    url: str | None = None,
    user: str | None = None,
    password: str | None = None,
    verify_certs: bool = True,
    ca_certs: str | None = None,
    timeout: float = DEFAULT_TIMEOUT_S,
) -> "OpenSearch":
    """An opensearch-py client for `resolve_urls(url)`; basic auth when `user` is given (credentials in the URL
    work too). Connecting is lazy: the first request is what fails when nothing answers. With several URLs a
    node that refuses connections is skipped (opensearch-py marks it dead and tries the next)."""
    from opensearchpy import OpenSearch

    from pintext.serving.fast_json import OrjsonSerializer

    hosts = resolve_urls(url)
    resolved = hosts[0]
    options: dict = {"hosts": hosts, "timeout": timeout, "serializer": OrjsonSerializer()}
    if user is not None:
        options["http_auth"] = (user, password or "")
    if resolved.startswith("https://"):
        options.update(use_ssl=True, verify_certs=verify_certs, ssl_show_warn=verify_certs)
        if ca_certs:
            options["ca_certs"] = ca_certs
    return OpenSearch(**options)


def cosine_from_knn_score(score: float, byte_vectors: bool = False) -> float:
    """The cosine similarity behind a `knn_score` script score with `space_type: cosinesimil`.

    Over float vectors k-NN 2.19 (issues #2357 / #2561) scores cosinesimil as `(1 + cosine) / 2`, in [0, 1], the
    same as its approximate search; before 2.19 the script returned `1 + cosine`. Over a `data_type: byte` field
    (`byte_vectors`) 2.19.1 and 3.5.0 still return `1 + cosine`, exact (within 1e-7 of numpy's cosine of the int8
    values at 256-d). Measured on the managed nodes against numpy, see tests/test_opensearch_node.py,
    docs/opensearch.md and docs/serving.md ("One-byte vectors").
    """
    if byte_vectors:
        return float(score) - 1.0
    return 2.0 * float(score) - 1.0


def knn_score_from_cosine(cosine: float, byte_vectors: bool = False) -> float:
    """Inverse of `cosine_from_knn_score`: the score `knn_score` gives a cosine (2.19 and later)."""
    if byte_vectors:
        return 1.0 + float(cosine)
    return (1.0 + float(cosine)) / 2.0
