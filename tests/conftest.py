"""Shared fixtures: live servers come from their own fixture modules (engines first: it adds the
--opensearch-version option and the node fixtures the others build on)."""

pytest_plugins = ["tests.fixtures_engines", "tests.fixtures_opensearch", "tests.fixtures_kafka"]
