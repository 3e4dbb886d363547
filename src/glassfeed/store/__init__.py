"""Durable truth behind one interface: the ``Store`` protocol and its backends; ``open_store`` picks one."""

from __future__ import annotations

from pathlib import Path

from glassfeed.store.base import (
    AD_LOG_KINDS,
    CHANGE_KINDS,
    DELIVERY_STATES,
    EDGES,
    ENTITIES,
    ERASED_LABEL,
    MODERATION_KINDS,
    RESERVED_META_KEYS,
    AdCampaignRow,
    AdLogRow,
    Change,
    Delivery,
    Edge,
    Entity,
    ExperimentRow,
    ExposureRow,
    ModerationRecord,
    NotificationRow,
    PageSourcesRow,
    PostRow,
    Pruned,
    Store,
    StoredEvent,
    Transaction,
    UserRow,
    UserSummary,
)
from glassfeed.store.postgres import PostgresStore, is_postgres_url, normalise_url
from glassfeed.store.postgres import store_exists as postgres_store_exists
from glassfeed.store.sqlite import SQLiteStore

SQLITE_SCHEME = "sqlite:///"


def models_dir(db_path: str | Path | None) -> Path:
    """Where a store's trained models live: ``<db>.models/`` beside the database file (``Store.path``); a store
    without a file (``None``) has no default, so the caller must name a models folder."""
    if db_path is None:
        raise ValueError("this store has no database file to keep models beside; pass a models folder")
    p = Path(db_path)
    return p.with_name(p.name + ".models")


def open_store(url_or_path: str | Path, synchronous: str = "FULL", sqlite_cache_mib: int | None = None) -> Store:
    """Open (creating and migrating) the store at ``url_or_path``: a file path or ``sqlite:///path`` opens a
    ``SQLiteStore`` with that ``synchronous`` pragma and a page cache of ``sqlite_cache_mib`` MiB (default:
    ``[store]``'s; see ``SQLiteStore``); ``postgresql://`` (or ``postgres://``) ``user@host:port/db[?schema=name]``
    opens a ``PostgresStore`` (``synchronous`` ``OFF`` turns PostgreSQL's
    ``synchronous_commit`` off; see ``PostgresStore``). An unreachable server raises ``ConnectionError``."""
    s = str(url_or_path)
    if s.startswith(SQLITE_SCHEME):
        s = s[len(SQLITE_SCHEME) :]
    elif is_postgres_url(s):
        return PostgresStore(normalise_url(s), synchronous=synchronous)
    return SQLiteStore(s, synchronous=synchronous, cache_mib=sqlite_cache_mib)


def store_exists(url_or_path: str | Path) -> bool:
    """Whether a store exists at ``url_or_path`` (creating nothing): a SQLite file, or a PostgreSQL schema with
    glassfeed's ``schema_version`` table (an unreachable server raises ``ConnectionError``)."""
    s = str(url_or_path)
    if is_postgres_url(s):
        return postgres_store_exists(s)
    return Path(s.removeprefix(SQLITE_SCHEME)).is_file()


__all__ = [
    "AD_LOG_KINDS",
    "AdCampaignRow",
    "AdLogRow",
    "CHANGE_KINDS",
    "EDGES",
    "ENTITIES",
    "ERASED_LABEL",
    "MODERATION_KINDS",
    "RESERVED_META_KEYS",
    "Change",
    "Edge",
    "Entity",
    "ExperimentRow",
    "ExposureRow",
    "ModerationRecord",
    "NotificationRow",
    "PageSourcesRow",
    "Delivery",
    "DELIVERY_STATES",
    "PostRow",
    "PostgresStore",
    "Pruned",
    "SQLITE_SCHEME",
    "SQLiteStore",
    "Store",
    "StoredEvent",
    "Transaction",
    "UserRow",
    "UserSummary",
    "is_postgres_url",
    "models_dir",
    "open_store",
    "store_exists",
]
