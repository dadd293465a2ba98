"""Test helpers for the serving seam: reach the index a CLI command made, on any engine."""

from __future__ import annotations

from pathlib import Path

from pintext.serving.local import LocalEngine, LocalIndex


def local_index(local_dir: Path, name: str = "pins") -> LocalIndex:
    """The local index the alias `name` serves in `local_dir` (what `--engine local --local-dir` wrote)."""
    engine = LocalEngine(local_dir)
    target = engine.alias_target(name)
    assert target is not None, f"no local index {name!r} in {local_dir}"
    return LocalIndex(Path(local_dir) / target)


def opensearch_searcher(client, index: str):
    """A Searcher over an OpenSearch index or alias, from its own `_meta`."""
    from pintext.serving.opensearch import OpenSearchEngine
    from pintext.serving.searcher import Searcher

    return Searcher.for_index(OpenSearchEngine(client), index)


def only(response: dict):
    """The one value of a per-index response (get_mapping, get_settings) asked through an alias."""
    (value,) = response.values()
    return value
