"""What every read model is: a name, its tables and an ``apply`` of log entries."""

from __future__ import annotations

from typing import Any, Callable, Sequence

from jejak.store.datastore import Store


class LogRecord:
    """One decoded log entry as projections see it."""

    __slots__ = ("index", "fact", "derived")

    def __init__(self, index: int, fact: dict[str, Any], derived: dict[str, Any]) -> None:
        self.index = index
        self.fact = fact
        self.derived = derived


#: progress(units just done, total units known so far)
SettleProgress = Callable[[int, int], None]


class ReadModel:
    name: str = ""
    tables: tuple[str, ...] = ()

    def create_statements(self, store: Store) -> list[str]:
        raise NotImplementedError

    def apply(self, store: Store, cursor: Any, records: Sequence[LogRecord]) -> None:
        raise NotImplementedError

    @property
    def position_name(self) -> str:
        return f"projection.{self.name}"

    def settle(self, store: Store, progress: SettleProgress | None = None) -> int:
        """Work deferred by ``apply`` (run after a catch-up, in transactions of
        its own); most models have none. ``progress(done, total)`` is called
        as units of work complete."""
        return 0

    def reset(self, store: Store, cursor: Any) -> None:
        for table in self.tables:
            store.execute(cursor, f"DELETE FROM {table}")
        store.set_position_in(cursor, self.position_name, 0)
