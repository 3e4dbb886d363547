"""Durable truth behind one interface. ``open_store`` picks the backend from the URL/path."""

from __future__ import annotations

from pathlib import Path

from glassfeed.store.sqlite import SQLiteStore

Store = SQLiteStore  # the interface; a PostgreSQL backend would implement the same methods


def open_store(path: str | Path, synchronous: str = "FULL") -> SQLiteStore:
    """Open (creating and migrating) the store at ``path``; ``sqlite:///x.db`` and plain paths both work."""
    s = str(path)
    if s.startswith("sqlite:///"):
        s = s[len("sqlite:///"):]
    if s.startswith("postgresql://"):
        raise NotImplementedError("the PostgreSQL backend is not built yet; use a SQLite path")
    return SQLiteStore(s, synchronous=synchronous)


__all__ = ["Store", "SQLiteStore", "open_store"]
