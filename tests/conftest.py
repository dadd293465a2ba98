"""Shared fixtures: live servers come from their own fixture modules (engines first: it adds the
--opensearch-version option and the node fixtures the others build on); `pintext`, the one CLI runner, from
tests/fixtures_cli.py. The data tests build on comes from tests/factories.py."""

pytest_plugins = ["tests.fixtures_engines", "tests.fixtures_opensearch", "tests.fixtures_kafka",
                  "tests.fixtures_cluster",
                  "tests.fixtures_security", "tests.fixtures_cli"]


import pytest  # noqa: E402 - after pytest_plugins, which must stay the module's first statement


@pytest.fixture(autouse=True)
def ingest_state_in_tmp(tmp_path, monkeypatch):
    """Ingest's default dead letters and checkpoints (pintext_home()/ingest) go to this test's tmp_path, so tests
    never write into the user's cache; a subprocess inherits it through the environment."""
    monkeypatch.setenv("PINTEXT_STATE_DIR", str(tmp_path / "ingest-state"))
