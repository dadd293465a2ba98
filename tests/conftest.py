"""Shared fixtures: live servers come from their own fixture modules."""

pytest_plugins = ["tests.fixtures_opensearch", "tests.fixtures_kafka"]
