"""The ledger as the feeds see it.

Structural types only: ``jejak.ledger.Ledger`` (with its ``Outcome``/``Entry``
dataclasses) satisfies them without importing this module, and tests use an
in-memory fake.
"""

from __future__ import annotations

from typing import Any, Protocol, Sequence, runtime_checkable


class Outcome(Protocol):
    """Result of recording one item.

    ``status`` is ``"accepted"``, ``"duplicate"`` or ``"rejected"``;
    ``code``/``message`` are set when rejected.
    """

    @property
    def status(self) -> str: ...
    @property
    def fact_id(self) -> str | None: ...
    @property
    def code(self) -> str | None: ...
    @property
    def message(self) -> str | None: ...


class Entry(Protocol):
    """One log entry: ``fact`` is the SPEC fact object (clear), ``chain`` the hex chain hash."""

    @property
    def index(self) -> int: ...
    @property
    def fact(self) -> dict[str, Any]: ...
    @property
    def chain(self) -> str: ...


@runtime_checkable
class LedgerPort(Protocol):
    def record(self, items: Sequence[bytes | str | dict[str, Any]]) -> list[Outcome]:
        """Validate and record ``items`` in ONE durable transaction; idempotent by fact id.

        Returns one outcome per item, in order.
        """
        ...

    def read_entries(self, start: int, limit: int) -> list[Entry]:
        """Log entries from index ``start`` (at most ``limit``), in log order."""
        ...

    def get_position(self, name: str) -> int:
        """Tracked position (the next log index to process); 0 if none."""
        ...

    def set_position(self, name: str, position: int) -> None: ...
