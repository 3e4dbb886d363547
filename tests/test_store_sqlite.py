"""``SQLiteStore`` against the shared ``Store`` contract, plus what only the SQLite backend promises."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from glassfeed.domain import EventBatch
from glassfeed.store import SQLiteStore, Store, open_store
from store_contract import T0, K, MakeStore, StoreContract, add_posts, add_users, append, batch


class TestSQLiteStore(StoreContract):
    @pytest.fixture
    def make_store(self, tmp_path: Path) -> Iterator[MakeStore]:
        opened: list[Store] = []

        def make(name: str = "main") -> Store:
            store = open_store(tmp_path / f"{name}.db", synchronous="OFF")
            opened.append(store)
            return store

        yield make
        for store in opened:
            store.close()


def test_store_is_a_protocol_not_an_alias():
    assert Store is not SQLiteStore and not issubclass(Store, SQLiteStore)
    assert not hasattr(Store, "query") and not hasattr(SQLiteStore, "query")  # no public raw SQL


def test_open_store_accepts_paths_and_sqlite_urls(tmp_path):
    s = open_store(f"sqlite:///{tmp_path / 'u.db'}")
    assert isinstance(s, SQLiteStore) and s.path == tmp_path / "u.db" and s.location == str(tmp_path / "u.db")
    s.close()
    with pytest.raises(ConnectionError):  # a PostgreSQL URL opens the PostgreSQL backend: here, no server there
        open_store("postgresql://postgres@127.0.0.1:1/glassfeed?connect_timeout=2")
    with pytest.raises(ValueError, match="synchronous"):
        open_store(tmp_path / "x.db", synchronous="FULL; DROP TABLE users")


def test_backup_is_a_complete_openable_copy(tmp_path):
    src = open_store(tmp_path / "a.db")
    u = add_users(src, ["a", "b"])
    p = add_posts(src, u[0], ["p"])
    append(src, batch([(K.FOLLOW, u[1], None, u[0], T0, None, None), (K.LIKE, u[1], p[0], None, T0, None, None)]))
    src.backup(tmp_path / "b.db")
    src.close()
    copy = open_store(tmp_path / "b.db")
    assert (copy.count("users"), copy.count("posts"), copy.count("follows"), copy.max_seq()) == (2, 1, 1, 2)
    assert copy.user_idx("b") == u[1]
    copy.close()


def test_bulk_load_drops_and_rebuilds_the_user_index(tmp_path):
    store = open_store(tmp_path / "s.db", synchronous="OFF")
    u = add_users(store, ["a"])
    p = add_posts(store, u[0], ["p"])

    def indexes() -> set[str]:
        con = sqlite3.connect(tmp_path / "s.db")
        try:
            return {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
        finally:
            con.close()

    append(store, batch([(K.LIKE, u[0], p[0], None, T0, None, None)] * 10))
    with store.bulk_load(100):
        assert "events_user" not in indexes()
        append(store, batch([(K.CLICK, u[0], p[0], None, T0, None, None)] * 100))
    assert "events_user" in indexes()
    with store.bulk_load(5):  # small next to the 110 stored: the index stays
        assert "events_user" in indexes()
    store.close()


def test_stores_written_before_the_high_water_mark_resume_after_max_seq(tmp_path):
    store = open_store(tmp_path / "old.db")
    u = add_users(store, ["a"])
    append(store, batch([(K.FOLLOW, u[0], None, u[0], T0, None, None)] * 3))
    store.close()
    con = sqlite3.connect(tmp_path / "old.db")
    con.execute("DELETE FROM meta WHERE key = 'event_seq'")  # as a store from before the mark existed
    con.commit()
    con.close()
    store = open_store(tmp_path / "old.db")
    assert store.max_seq() == 3
    assert append(store, EventBatch.concat([batch([(K.UNFOLLOW, u[0], None, u[0], T0, None, None)])])) == (4, 4)
    store.close()


def test_the_page_cache_follows_the_store_setting(tmp_path) -> None:
    """``[store] sqlite_cache_mib`` reaches SQLite's ``PRAGMA cache_size`` (negative: KiB); the default is the
    packaged setting (docs/benchmarks.md: the soak's memory slope with a smaller cache)."""
    from glassfeed.settings import packaged_settings

    small = open_store(tmp_path / "small.db", sqlite_cache_mib=8)
    default = open_store(tmp_path / "default.db")
    try:
        assert small._con.execute("PRAGMA cache_size").fetchone()[0] == -8 * 1024  # type: ignore[attr-defined]
        want = -packaged_settings().store.sqlite_cache_mib * 1024
        assert default._con.execute("PRAGMA cache_size").fetchone()[0] == want  # type: ignore[attr-defined]
    finally:
        small.close()
        default.close()


def test_a_writer_waiting_for_another_handles_write_lock_does_not_block_this_handles_reads(tmp_path):
    """Two handles on one file (as two worker processes are): while one holds a write transaction, a writer of the
    other waits for it without holding its handle's connection, so that handle's reads (a worker's tail, its pages)
    go on; the waiting writer then commits once the first is done."""
    import threading
    import time

    first, second = open_store(tmp_path / "w.db"), open_store(tmp_path / "w.db")
    add_users(first, ["a", "b"])
    holding, release, second_done = threading.Event(), threading.Event(), threading.Event()

    def hold_first() -> None:
        with first.transaction() as tx:
            first.append_events(tx, batch([(K.FOLLOW, 1, None, 2, T0, None, None)]))
            holding.set()
            release.wait(10)

    def write_second() -> None:
        append(second, batch([(K.FOLLOW, 2, None, 1, T0 + 1, None, None)]))
        second_done.set()

    holder = threading.Thread(target=hold_first)
    holder.start()
    assert holding.wait(10)
    writer = threading.Thread(target=write_second)
    writer.start()
    time.sleep(0.3)  # the second writer is now waiting for the first's lock
    assert not second_done.is_set()
    t = time.perf_counter()
    assert second.max_seq() == 0 and len(second.load_users()["id"]) == 2  # reads answer while it waits
    assert time.perf_counter() - t < 0.2
    release.set()
    holder.join(10)
    assert second_done.wait(10)
    writer.join(10)
    assert second.max_seq() == 2 == first.max_seq()
    first.close()
    second.close()
