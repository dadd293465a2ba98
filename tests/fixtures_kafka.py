"""Session fixture for a live Kafka broker.

`kafka_bootstrap` is `$KAFKA_BOOTSTRAP` when set; otherwise the project's managed broker (`pintext kafka up`):
reused without being stopped if it already runs, else started for the session and stopped at its end.
Without a broker the Kafka tests skip, except under CI=true, where that is a failure.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest


def _unavailable(reason: str) -> None:
    """Skip locally; under CI a missing server is a failure, never a silent skip."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"Kafka is required under CI=true: {reason}")
    pytest.skip(f"no Kafka broker: {reason}")


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """`host:port` of a broker that answers metadata requests."""
    try:
        import confluent_kafka  # noqa: F401
    except ImportError:
        _unavailable("confluent-kafka is not installed (pip install 'pintext[kafka]')")

    from pintext.servers import kafka_broker

    external = os.environ.get("KAFKA_BOOTSTRAP")
    if external:
        try:
            kafka_broker.wait_until_ready(external, deadline_s=30)
        except kafka_broker.KafkaBrokerError as error:
            _unavailable(f"KAFKA_BOOTSTRAP={external} does not answer: {error}")
        yield external
        return

    settings = kafka_broker.settings_from_env()
    pid = kafka_broker.read_pid(settings)
    already_running = pid is not None and kafka_broker.is_our_broker(pid, settings)
    try:
        state = kafka_broker.up(settings, timeout_s=180)
    except kafka_broker.KafkaBrokerError as error:
        _unavailable(f"the managed broker did not start: {error}")
    try:
        yield state.bootstrap
    finally:
        if not already_running:
            kafka_broker.down(settings)
