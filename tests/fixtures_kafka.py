"""Session fixture for a live Kafka broker.

`kafka_bootstrap` is `$KAFKA_BOOTSTRAP` when set; otherwise the project's managed broker (`pintext kafka up`),
with the same session rule as the search nodes (tests/fixtures_engines.py): reused and left running if it
already runs, else started for the session and stopped at its end unless another session still uses it.
Without a broker the Kafka tests skip, except under CI=true, where that is a failure.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.fixtures_engines import lease_managed_server, unavailable

WHAT = "a Kafka broker"


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """`host:port` of a broker that answers metadata requests."""
    try:
        import confluent_kafka  # noqa: F401
    except ImportError:
        unavailable(WHAT, "confluent-kafka is not installed (pip install 'pintext[kafka]')")

    from pintext.servers import kafka_broker

    external = os.environ.get("KAFKA_BOOTSTRAP")
    if external:
        try:
            kafka_broker.wait_until_ready(external, deadline_s=30)
        except kafka_broker.KafkaBrokerError as error:
            unavailable(WHAT, f"KAFKA_BOOTSTRAP={external} does not answer: {error}")
        yield external
        return
    try:
        broker = kafka_broker.KafkaBroker(kafka_broker.settings_from_env())
    except kafka_broker.KafkaBrokerError as error:
        unavailable(WHAT, str(error))
    bootstrap, release = lease_managed_server(broker, WHAT)
    try:
        yield bootstrap
    finally:
        release()
