"""Durable truth behind one interface: the ``Store`` protocol and its backends; ``open_store`` picks one."""

from __future__ import annotations

from pathlib import Path

from glassfeed.store.base import (
    EDGES,
    ENTITIES,
    ERASED_LABEL,
    RESERVED_META_KEYS,
    Edge,
    Entity,
    PostRow,
    Store,
    StoredEvent,
    Transaction,
    UserRow,
    UserSummary,
)
from glassfeed.store.sqlite import SQLiteStore

SQLITE_SCHEME = "sqlite:///"


def open_store(url_or_path: str | Path, synchronous: str = "FULL") -> Store:
    """Open (creating and migrating) the store at ``url_or_path``: a file path or ``sqlite:///path`` opens a
    ``SQLiteStore`` with that ``synchronous`` pragma (see ``SQLiteStore``); ``postgresql://`` is not built yet."""
    s = str(url_or_path)
    if s.startswith(SQLITE_SCHEME):
        s = s[len(SQLITE_SCHEME) :]
    elif s.startswith(("postgresql://", "postgres://")):
        raise NotImplementedError("the PostgreSQL backend is not built yet; use a SQLite path")
    return SQLiteStore(s, synchronous=synchronous)


__all__ = [
    "EDGES",
    "ENTITIES",
    "ERASED_LABEL",
    "RESERVED_META_KEYS",
    "Edge",
    "Entity",
    "PostRow",
    "SQLiteStore",
    "Store",
    "StoredEvent",
    "Transaction",
    "UserRow",
    "UserSummary",
    "open_store",
]
