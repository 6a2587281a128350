import pytest

from tests.integration.kafka_broker import TansuBroker


@pytest.fixture(scope="session")
def tansu():
    """A running Tansu broker (memory storage) for the whole session.

    Fails (never skips) when the broker cannot be started.
    """
    broker = TansuBroker()
    try:
        broker.start()
    except Exception as exc:
        broker.close()
        pytest.fail(f"could not start the Tansu broker: {exc}", pytrace=False)
    yield broker
    broker.close()


@pytest.fixture(scope="session")
def kafka_bootstrap(tansu):
    """``"127.0.0.1:PORT"`` of the session broker."""
    return tansu.bootstrap


@pytest.fixture
def restartable_tansu():
    """A broker of its own for tests that restart it (``.restart()`` keeps the port, loses all state)."""
    broker = TansuBroker()
    try:
        broker.start()
    except Exception as exc:
        broker.close()
        pytest.fail(f"could not start the Tansu broker: {exc}", pytrace=False)
    yield broker
    broker.close()
