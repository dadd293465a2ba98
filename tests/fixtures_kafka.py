"""Session fixture for a live Kafka broker.

`kafka_bootstrap` is `$KAFKA_BOOTSTRAP` when set; otherwise the project's managed broker (`pintext kafka up`),
with the same session rule as the search nodes (tests/fixtures_engines.py): reused and left running if it
already runs, else started for the session and stopped at its end unless another session still uses it.
Without a broker the Kafka tests skip, except under CI=true, where that is a failure.
"""

from __future__ import annotations

import os
import random
import shutil
import socket
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

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


@pytest.fixture(scope="module")
def private_kafka_broker() -> Iterator[Any]:
    """A managed broker of this module's own (its own folder and free ports), started and stopped by the project's
    lifecycle: for tests that SIGKILL the broker or look at its process, which must never be done to the shared
    one (or to a `KAFKA_BOOTSTRAP` broker someone else runs). Its jars come from the usual download cache.

    Its folder is under PINTEXT_HOME, not pytest's tmp: pytest resets `/tmp/pytest-of-<user>` to 0700 at every
    session start (any concurrent one too), which would cut off a broker running as the service user."""
    try:
        import confluent_kafka  # noqa: F401
    except ImportError:
        unavailable(WHAT, "confluent-kafka is not installed (pip install 'pintext[kafka]')")

    from pintext.servers import kafka_broker

    shared = kafka_broker.settings_from_env()
    home = shared.home / "tests" / f"kafka-{os.getpid()}"
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    shared.libs_dir.parent.mkdir(parents=True, exist_ok=True)
    (home / "downloads").symlink_to(shared.libs_dir.parent)
    port, controller_port = free_ports(2)
    settings = replace(shared, home=home, port=port, controller_port=controller_port,
                       heap=os.environ.get("PINTEXT_KAFKA_HEAP", "256m"))
    broker = kafka_broker.KafkaBroker(settings)
    try:
        broker.start()
    except kafka_broker.KafkaBrokerError as error:
        unavailable(WHAT, f"a private managed broker could not be started: {error}")
    try:
        yield broker
    finally:
        broker.stop()
        shutil.rmtree(home, ignore_errors=True)


def free_ports(count: int) -> list[int]:
    """`count` distinct TCP ports nobody listens on, below the kernel's ephemeral range: a client reconnecting to a
    port of that range while its broker is down can be given that very port as its own and connect to itself,
    and the restart would then find the port taken."""
    low = ephemeral_range()[0]
    rng = random.Random(os.getpid())
    ports: list[int] = []
    while len(ports) < count:
        port = rng.randrange(max(1024, low - 12_000), low - 1)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        if port not in ports and port + 1 not in ports:
            ports.append(port)
    return ports


def ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999
