"""Checkpoints issued while `jejak serve` runs.

Receipts and trail proofs are checked against the latest signed checkpoint,
so a running system must sign one regularly: when the log has grown and
either `JEJAK_CHECKPOINT_INTERVAL` seconds have passed since the last one
this scheduler issued (or since it started) or `JEJAK_CHECKPOINT_AFTER`
entries were appended since the latest checkpoint. Every checkpoint goes
through `Transparency.issue_checkpoint`, the one issuing function (its log
check, and any policy it applies).
"""

from __future__ import annotations

import logging
import threading
import time

from jejak.settings import Settings

log = logging.getLogger("jejak.checkpointer")

#: Seconds between looks at the log size (one query each).
POLL_S = 1.0


def checkpoint_due(size: int, checkpointed: int, seconds_since: float, interval: float, after: int) -> bool:
    """Whether a log of `size` entries, whose latest checkpoint covers
    `checkpointed`, needs a new one (0 disables either trigger)."""
    grown = size - checkpointed
    if grown <= 0:
        return False
    return (after > 0 and grown >= after) or (interval > 0 and seconds_since >= interval)


class CheckpointScheduler:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="jejak-checkpointer", daemon=True)

    @property
    def enabled(self) -> bool:
        return self.settings.checkpoint_interval > 0 or self.settings.checkpoint_after > 0

    def start(self) -> "CheckpointScheduler":
        if self.enabled:
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)

    def _run(self) -> None:
        from jejak.store.datastore import Store
        from jejak.transparency import Transparency

        store = Store.open(self.settings.store, must_exist=True)
        try:
            transparency = Transparency(store, self.settings)
            since = time.monotonic()
            while not self._stop.wait(min(POLL_S, self.settings.checkpoint_interval or POLL_S)):
                try:
                    latest = transparency.latest_checkpoint()
                    checkpointed = 0 if latest is None else latest.size
                    if checkpoint_due(store.log_size(), checkpointed, time.monotonic() - since,
                                      self.settings.checkpoint_interval, self.settings.checkpoint_after):
                        cp = transparency.issue_checkpoint()
                        since = time.monotonic()
                        log.info("checkpoint #%d signed at size %d", cp.seq, cp.size)
                except Exception as exc:  # noqa: BLE001 - keep serving; say why nothing was signed
                    log.error("no checkpoint signed: %s: %s", type(exc).__name__, exc)
                    since = time.monotonic()  # try again after the interval, not every poll
        finally:
            store.close()
