"""PostgreSQL for the tests: the server's URL, one throwaway schema per store, and the skip-or-fail rule.

The server is ``$GLASSFEED_TEST_PG_URL`` (default ``postgresql://postgres@127.0.0.1:5432/test``: the machine's
PostgreSQL with trust auth). When it cannot be reached a test needing it is skipped with the reason, except under
``CI=true``, where it fails: CI must never pass by skipping. Each store lives in its own schema
(``?schema=gft_...``), dropped by ``drop_schemas``.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path

import psycopg
import pytest

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"
#: Schemas of test stores start with this (``drop_schemas`` and a sweep of leftovers use it).
SCHEMA_PREFIX = "gft_"


def base_url() -> str:
    return os.environ.get("GLASSFEED_TEST_PG_URL", DEFAULT_URL)


@functools.cache
def _unreachable() -> str | None:
    """Why the server cannot be used (``None`` when it can); asked once per test session."""
    try:
        with psycopg.connect(base_url(), connect_timeout=3) as con:
            con.execute("SELECT 1")
    except psycopg.Error as e:
        return " ".join(line.strip() for line in str(e).splitlines() if line.strip()) or type(e).__name__
    return None


def require_service(name: str, url: str, reason: str | None) -> None:
    """Skip the calling test when the service ``name`` at ``url`` is unreachable (``reason``), or fail it under
    ``CI=true``, where tests needing a service must run, not skip. The one rule for PostgreSQL and Redis."""
    if reason is None:
        return
    msg = f"{name} not reachable at {url}: {reason}"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(msg + f" (CI=true: tests needing {name} must run, not skip)")
    pytest.skip(msg)


REDIS_DEFAULT_URL = "redis://127.0.0.1:6379/0"


def redis_test_url() -> str:
    """The Redis the tests use: ``$GLASSFEED_TEST_REDIS_URL``, else the machine's."""
    return os.environ.get("GLASSFEED_TEST_REDIS_URL", REDIS_DEFAULT_URL)


@functools.cache
def _redis_unreachable() -> str | None:
    import redis  # only the tests that need Redis pay for the import

    try:
        redis.Redis.from_url(redis_test_url(), socket_connect_timeout=2, socket_timeout=2).ping()
    except redis.RedisError as e:
        return str(e) or type(e).__name__
    return None


def require_redis() -> str:
    """Redis's URL; skips the test when it is unreachable, or fails it under ``CI=true``."""
    require_service("Redis", redis_test_url(), _redis_unreachable())
    return redis_test_url()


def pg_url() -> str:
    """The server's URL; skips the test when it is unreachable, or fails it under ``CI=true``."""
    require_service("PostgreSQL", base_url(), _unreachable())
    return base_url()


def new_schema_url(hint: str = "") -> str:
    """The URL of a new, empty store in its own schema (created when the store is first opened)."""
    tag = "".join(c if c.isalnum() else "_" for c in hint.lower())[:20]
    schema = f"{SCHEMA_PREFIX}{tag}_{uuid.uuid4().hex[:12]}" if tag else f"{SCHEMA_PREFIX}{uuid.uuid4().hex[:12]}"
    url = pg_url()
    return f"{url}{'&' if '?' in url else '?'}schema={schema}"


def schema_of(url: str) -> str:
    return url.rsplit("schema=", 1)[1].split("&", 1)[0]


def drop_schemas(urls: Iterable[str]) -> None:
    """Drop the schemas of these test stores (and everything in them)."""
    schemas = sorted({schema_of(u) for u in urls})
    if not schemas:
        return
    with psycopg.connect(base_url(), autocommit=True) as con:
        for s in schemas:
            assert s.startswith(SCHEMA_PREFIX)
            con.execute(psycopg.sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(psycopg.sql.Identifier(s)))


# ---------------------------------------------------------------------- the suite on PostgreSQL
#: ``GLASSFEED_TEST_STORE=postgresql`` runs the tests on PostgreSQL: every store a test opens by file path (through
#: ``open_store``, ``create_app``, ``LiveServer``, ``feed_support``) lives in a schema of its own instead.
TEST_STORE_ENV = "GLASSFEED_TEST_STORE"
_SALT = uuid.uuid4().hex  # per test session: a reused tmp path never meets an old session's schema
_made: set[str] = set()


def on_postgres() -> bool:
    """Whether this test session runs its stores on PostgreSQL (``GLASSFEED_TEST_STORE``)."""
    value = os.environ.get(TEST_STORE_ENV, "sqlite").lower()
    if value not in ("sqlite", "postgresql", "postgres"):
        raise ValueError(f"{TEST_STORE_ENV} must be sqlite or postgresql, not {value!r}")
    return value != "sqlite"


def url_for_path(path: str | os.PathLike[str]) -> str:
    """The PostgreSQL store standing in for the SQLite file ``path`` (the same path gives the same schema)."""
    digest = hashlib.sha1(f"{_SALT}:{Path(path).resolve()}".encode()).hexdigest()[:24]
    url = f"{pg_url()}{'&' if '?' in base_url() else '?'}schema={SCHEMA_PREFIX}{digest}"
    _made.add(url)
    return url


def store_location(path: str | os.PathLike[str]) -> str:
    """What to hand a server process as its store (``GLASSFEED_DB``): ``path``, or its schema's URL."""
    return url_for_path(path) if on_postgres() else str(path)


@contextlib.contextmanager
def stores_on_postgres_if_asked() -> Iterator[None]:
    """With ``GLASSFEED_TEST_STORE=postgresql``: ``open_store(path)`` opens a ``PostgresStore`` in the schema for
    ``path`` (its models folder stays ``<path>.models``), ``PostgresStore.backup(path)`` copies into that schema,
    and every schema made is dropped at the end. ``:memory:`` and direct ``SQLiteStore(...)`` stay SQLite."""
    if not on_postgres():
        yield
        return
    import glassfeed.store as store_pkg
    from glassfeed.store import PostgresStore, SQLiteStore, is_postgres_url

    opened: list[PostgresStore] = []

    def open_as_postgres(path: str | Path, synchronous: str = "FULL", cache_mib: int | None = None) -> object:
        if str(path) == ":memory:":
            return SQLiteStore(path, synchronous=synchronous, cache_mib=cache_mib)
        store = PostgresStore(url_for_path(path), synchronous, path=path)
        opened.append(store)
        return store

    real_backup = PostgresStore.backup

    def backup(self: PostgresStore, dest: str | Path) -> None:
        real_backup(self, dest if is_postgres_url(dest) else url_for_path(dest))

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(store_pkg, "SQLiteStore", open_as_postgres)
        mp.setattr(PostgresStore, "backup", backup)
        before = set(_made)
        try:
            yield
        finally:
            mine = _made - before
            for store in opened:  # park the stores that fixtures left open (their services' threads may still
                store._lock.acquire(timeout=10)  # poll them) rather than let them read dropped schemas
            drop_schemas(mine)
            _made.difference_update(mine)
