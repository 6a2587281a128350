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


def select_in(store: Store, cursor: Any, select: str, column: str, values: Sequence[Any],
              params: Sequence[Any] = ()) -> list[Any]:
    """Rows of ``select`` (which ends in a WHERE condition) AND column IN values."""
    return run_in(store, cursor, select, column, values, params, fetch=True)


def run_in(store: Store, cursor: Any, statement: str, column: str, values: Sequence[Any],
        params: Sequence[Any], *, fetch: bool) -> list[Any]:
    """Run ``statement AND column IN values`` (one array parameter on PostgreSQL,
    chunks under SQLite's parameter limit otherwise); the rows if ``fetch``."""
    rows: list[Any] = []
    if not values:
        return rows
    if store.is_postgres:
        chunks = [None]
    else:
        values = list(values)
        chunks = [values[start:start + 900] for start in range(0, len(values), 900)]
    for chunk in chunks:
        if chunk is None:
            store.execute(cursor, f"{statement} AND {column} = ANY(?)", (*params, list(values)))
        else:
            marks = ", ".join("?" for _ in chunk)
            store.execute(cursor, f"{statement} AND {column} IN ({marks})", (*params, *chunk))
        if fetch:
            rows.extend(cursor.fetchall())
    return rows
