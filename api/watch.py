"""A running API re-derives its read models from the log now and then (`JEJAK_READ_MODEL_CHECK_INTERVAL`).

While a check has found a table that differs from the log, every read served
from read models answers 503 (see `deps.fresh`) and `/healthz` answers 503
naming the table; answers read from the log itself (facts, the access log,
proofs, checkpoints) go on. The server log names the table only, never a key
(keys hold tokens and order ids). A check that finds the models equal again,
or a `jejak rebuild` seen by the API, lifts it.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

log = logging.getLogger("jejak.api")


class ReadModelWatch:
    def __init__(self, store: Any, interval: float, engine_version: str) -> None:
        self.store = store
        self.interval = interval
        self.engine_version = engine_version
        #: the table found to differ from the log, if any
        self.mismatch: str | None = None
        #: whether a check has completed since the start or the last rebuild
        self.checked = False
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def status(self) -> str:
        if self.interval <= 0:
            return "off"
        if self.mismatch is not None:
            return "mismatch"
        return "ok" if self.checked else "unchecked"

    def start(self) -> None:
        if self.interval > 0:
            self._thread = threading.Thread(target=self._run, name="jejak-read-model-watch", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=60)

    def rebuilt(self) -> None:
        """The read models were rebuilt from the log: lift a mismatch and check again now."""
        self.mismatch = None
        self.checked = False
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.check()
            self._wake.wait(self.interval)
            self._wake.clear()

    def check(self) -> None:
        from jejak.projections.verify import ReadModelMismatch, ReadModelsBusy, verify_read_models

        try:
            verify_read_models(self.store, engine_version=self.engine_version)
        except ReadModelMismatch as exc:
            if self.mismatch != exc.table:
                log.error("read model table %s differs from the log: its reads answer 503 until "
                          "`jejak verify --read-models` is looked into and `jejak rebuild` is run", exc.table)
            self.mismatch = exc.table
        except ReadModelsBusy:
            return  # writers busy: next time
        except Exception as exc:  # noqa: BLE001 - a store outage must not end the watch
            log.warning("read model check could not run: %s", type(exc).__name__)
            return
        else:
            if self.mismatch is not None:
                log.warning("read models agree with the log again")
            self.mismatch = None
        self.checked = True
