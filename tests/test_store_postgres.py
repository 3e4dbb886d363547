"""``PostgresStore`` against the shared ``Store`` contract, plus what only the PostgreSQL backend promises:
migrations recorded in ``schema_version``, any Unicode in post text, the int64/float64 ranges, concurrent writers
from several connections (no event lost or duplicated, ``seq`` in commit order), backups and the URL forms."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import psycopg
import pytest

from glassfeed.domain import EventBatch
from glassfeed.store import PostgresStore, SQLiteStore, Store, open_store, store_exists
from glassfeed.store.postgres import MIGRATIONS, normalise_url, public_location, split_url
from pg_support import (
    TEST_STORE_ENV,
    base_url,
    drop_schemas,
    new_schema_url,
    on_postgres,
    pg_url,
    store_location,
    stores_on_postgres_if_asked,
    url_for_path,
)
from store_contract import T0, K, MakeStore, StoreContract, add_posts, add_users, all_events, append, batch


@pytest.fixture
def urls() -> Iterator[list[str]]:
    """Schema URLs a test made; their schemas are dropped afterwards."""
    made: list[str] = []
    yield made
    drop_schemas(made)


@pytest.fixture
def make_store(urls: list[str]) -> Iterator[MakeStore]:
    """``make(name)``: a store in a schema of its own per name (the same name reopens the same schema)."""
    opened: list[Store] = []
    by_name: dict[str, str] = {}

    def make(name: str = "main") -> Store:
        if name not in by_name:
            by_name[name] = new_schema_url(name)
            urls.append(by_name[name])
        store = open_store(by_name[name], synchronous="OFF")
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


class TestPostgresStore(StoreContract):
    pass


def _sql(url: str, query: str) -> list[tuple]:
    conninfo, schema = split_url(url)
    with psycopg.connect(conninfo, autocommit=True) as con:
        con.execute(psycopg.sql.SQL("SET search_path TO {}").format(psycopg.sql.Identifier(schema)))
        return con.execute(query).fetchall()


def test_migrations_are_recorded_and_applied_once(make_store, urls):
    store = make_store()
    assert isinstance(store, PostgresStore) and store.schema_version == len(MIGRATIONS)
    assert [r[0] for r in _sql(urls[0], "SELECT version FROM schema_version ORDER BY version")] == list(
        range(1, len(MIGRATIONS) + 1)
    )
    store.close()
    again = make_store()
    assert again.schema_version == len(MIGRATIONS)
    assert _sql(urls[0], "SELECT COUNT(*) FROM schema_version") == [(len(MIGRATIONS),)]


def test_concurrent_first_opens_migrate_once(urls):
    url = new_schema_url("race")
    urls.append(url)
    errors: list[BaseException] = []
    stores: list[Store] = []

    def open_one() -> None:
        try:
            stores.append(open_store(url, synchronous="OFF"))
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=open_one) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(stores) == 4
    assert _sql(url, "SELECT COUNT(*) FROM schema_version") == [(len(MIGRATIONS),)]
    for s in stores:
        s.close()


def test_any_unicode_and_extreme_numbers_round_trip(make_store):
    store = make_store()
    text = "nul\x00 tab\t é 😀 \u200b rtl\u202e \U0010ffff"
    big = 2**63 - 1
    with store.transaction() as tx:
        (u,) = store.insert_users(tx, [("a", "Ann", -1e300, big, "x", None)])
        (p,) = store.insert_posts(tx, [("p", u, text, 1e300, None, None, None, "", "en", "", 5e-324, 1.0)])
    posts = store.load_posts()
    assert posts["text"] == [text] and posts["created_at"].tolist() == [1e300] and posts["quality"][0] == 5e-324
    users = store.load_users()
    assert users["created_at"].tolist() == [-1e300] and users["community"].tolist() == [-1]  # not an int32
    rows = batch([(K.DWELL, u, p, None, 1e18, 1.7976931348623157e308, 2**31 - 1)])
    append(store, rows)
    got = all_events(store)
    assert got.value.tolist() == [1.7976931348623157e308] and got.position.tolist() == [2**31 - 1]
    assert got.ts.tolist() == [1e18]
    store.close()
    assert make_store().load_posts()["text"] == [text]


def _writer(url: str, user: int, post: int, n_tx: int, per_tx: int, out: list, errors: list) -> None:
    try:
        store = open_store(url, synchronous="OFF")
        try:
            for i in range(n_tx):
                ids = [f"w{user}-{i}-{j}" for j in range(per_tx)]
                b = batch([(K.LIKE, user, post, None, T0 + i, None, None)] * per_tx, id=ids)
                with store.transaction() as tx:
                    out.append(store.append_events(tx, b))
                # a resend of the same ids writes nothing
                with store.transaction() as tx:
                    first, last = store.append_events(tx, b)
                    assert last < first
        finally:
            store.close()
    except BaseException as e:
        errors.append(e)


def test_concurrent_writers_lose_and_duplicate_nothing_and_seq_is_commit_order(make_store, urls):
    store = make_store()
    u = add_users(store, ["a", "b", "c", "d"])
    p = add_posts(store, u[0], ["p"])
    url = urls[0]
    ranges: list[tuple[int, int]] = []
    errors: list[BaseException] = []
    seen: list[np.ndarray] = []
    stop = threading.Event()

    def tail() -> None:  # a reader tailing by seq must never see a later seq before an earlier one
        reader = open_store(url, synchronous="OFF")
        last = 0
        try:
            while True:
                done = stop.is_set()
                for b in reader.iter_events(since_seq=last):
                    seen.append(b.seq)
                    last = int(b.seq[-1])
                if done:
                    return
        finally:
            reader.close()

    tailer = threading.Thread(target=tail)
    tailer.start()
    writers = [threading.Thread(target=_writer, args=(url, uid, p[0], 15, 40, ranges, errors)) for uid in u]
    for t in writers:
        t.start()
    for t in writers:
        t.join()
    stop.set()
    tailer.join()
    assert errors == []
    n = 4 * 15 * 40
    assert store.count_events() == n and store.max_seq() == n
    assert sorted(s for r in ranges for s in range(r[0], r[1] + 1)) == list(range(1, n + 1))
    tailed = np.concatenate(seen)
    assert tailed.tolist() == list(range(1, n + 1))  # in order, no gap, no repeat
    assert len(store.event_ids_exist([f"w{x}-{i}-{j}" for x in u for i in range(15) for j in range(40)])) == n


def test_tx_of_another_store_object_is_refused(make_store):
    a, b = make_store("a"), make_store("b")
    with a.transaction() as tx, pytest.raises(TypeError):
        b.set_meta(tx, "k", "v")


def test_backup_to_a_schema_and_to_a_sqlite_file(make_store, urls, tmp_path: Path):
    src = make_store()
    u = add_users(src, ["a", "b"])
    p = add_posts(src, u[0], ["p"])
    append(src, batch([(K.FOLLOW, u[1], None, u[0], T0, None, None), (K.LIKE, u[1], p[0], None, T0, None, None)]))
    with src.transaction() as tx:
        src.set_meta(tx, "cursor_secret", "ab")
        src.delete_user_data(tx, u[0])  # a gap-free idx but a seq high-water mark above the stored events
    dest = new_schema_url("copy")
    urls.append(dest)
    src.backup(dest)
    file = tmp_path / "copy.db"
    src.backup(file)
    for copy in (open_store(dest), open_store(file)):
        assert (copy.count("users"), copy.count("posts"), copy.count("follows"), copy.max_seq()) == (2, 1, 1, 2)
        assert copy.user_idx("b") == u[1] and copy.get_meta("cursor_secret") == "ab"
        assert copy.load_posts()["text"] == ["text p"]
        assert all_events(copy).equals(all_events(src))
        copy.close()
    assert isinstance(open_store(file), SQLiteStore)
    with pytest.raises(ValueError, match="not empty"):
        src.backup(dest)
    with pytest.raises(ValueError, match="exists"):
        src.backup(file)


def test_urls_schema_and_credentials(urls):
    pg_url()
    assert normalise_url("postgresql:/h:5432/db?schema=x") == "postgresql://h:5432/db?schema=x"
    assert split_url("postgres://u@h/db?schema=s1&sslmode=disable") == ("postgres://u@h/db?sslmode=disable", "s1")
    assert split_url("postgresql://h/db")[1] == "public"
    assert public_location("postgresql://u:secret@h/db") == "postgresql://u:***@h/db"
    with pytest.raises(ValueError, match="schema"):
        split_url("postgresql://h/db?schema=x;drop")
    url = new_schema_url("exists")
    urls.append(url)
    assert not store_exists(url)
    open_store(url).close()
    assert store_exists(url)
    one_slash = url.replace("postgresql://", "postgresql:/")  # what pathlib.Path makes of a URL
    s = open_store(one_slash)
    assert isinstance(s, PostgresStore) and s.schema_version >= 1 and "secret" not in s.location
    s.close()
    with pytest.raises(ConnectionError, match="cannot reach PostgreSQL"):
        open_store("postgresql://postgres@127.0.0.1:1/test?connect_timeout=2")
    assert base_url() in url


def admin_kill(store: Store) -> None:
    """Terminate the store's server connection from outside (as a server restart would)."""
    pid = store._con.info.backend_pid  # type: ignore[attr-defined]
    with psycopg.connect(pg_url(), autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))


def test_a_dropped_connection_is_reopened(make_store):
    store = make_store()
    add_users(store, ["a"])
    admin_kill(store)
    assert store.count("users") == 1  # a read outside a transaction reconnects and runs again
    with pytest.raises(psycopg.OperationalError), store.transaction() as tx:  # a write in flight fails whole
        store.insert_users(tx, [("b", "", T0, None, "", None)])
        admin_kill(store)
    assert store.user_idx("b") is None and store.count("users") == 1
    assert append(store, EventBatch.concat([batch([(K.FOLLOW, 1, None, 1, T0, None, None)])])) == (1, 1)


def test_the_suite_can_run_its_path_stores_on_postgresql(tmp_path, monkeypatch):
    """``GLASSFEED_TEST_STORE=postgresql`` (``make test`` runs the API, ingest, feed, erasure and durability files
    again that way): stores opened by path are PostgreSQL schemas, backups go schema to schema, models stay beside
    the path, and the schemas are dropped afterwards."""
    pg_url()
    monkeypatch.setenv(TEST_STORE_ENV, "postgresql")
    with stores_on_postgres_if_asked():
        store = open_store(tmp_path / "x.db")
        assert isinstance(store, PostgresStore) and store.path == tmp_path / "x.db"
        url = url_for_path(tmp_path / "x.db")
        assert store_location(tmp_path / "x.db") == url and store_exists(url)
        add_users(store, ["a"])
        store.backup(tmp_path / "y.db")
        copy = open_store(tmp_path / "y.db")
        assert copy.user_idx("a") == 1 and not (tmp_path / "y.db").exists()
        assert isinstance(open_store(":memory:"), SQLiteStore)
        store.close()
        copy.close()
    assert not store_exists(url)
    assert isinstance(open_store(tmp_path / "z.db"), SQLiteStore) or on_postgres()


def test_cli_takes_a_postgresql_url_wherever_it_takes_db(urls, tmp_path, monkeypatch):
    """``--db postgresql://...`` (which the path-typed option hands over as ``postgresql:/...``): a schema without
    glassfeed's tables is "no store" for the commands that read one, ``generate`` creates it, the readers then work,
    models go beside the store's local anchor, and an unreachable server is one line."""
    from typer.testing import CliRunner

    from glassfeed.cli import app

    monkeypatch.chdir(tmp_path)  # the default models anchor is var/postgres/... under the working directory
    runner = CliRunner()
    url = new_schema_url("cli")
    urls.append(url)
    for cmd in (["stats"], ["serve"], ["train"], ["audit"], ["feed", "u0"], ["token", "u0"]):
        r = runner.invoke(app, [*cmd, "--db", url])
        assert r.exit_code == 1 and "no store at" in r.output and "no glassfeed tables" in r.output, (cmd, r.output)
    assert not store_exists(url)  # nothing was created by those
    r = runner.invoke(app, ["generate", "--users", "150", "--days", "3", "--seed", "2", "--db", url])
    assert r.exit_code == 0, r.output
    store = open_store(url)
    n_events = store.count_events()
    store.close()
    r = runner.invoke(app, ["stats", "--db", url])
    assert r.exit_code == 0 and f"{n_events:,}" in r.output and "secret" not in r.output
    r = runner.invoke(app, ["audit", "--db", url])
    assert r.exit_code == 0 and "untagged" in r.output, r.output
    r = runner.invoke(app, ["train", "--db", url])
    assert r.exit_code == 0, r.output
    assert any(p.name.endswith(".models") for p in (tmp_path / "var" / "postgres").iterdir())
    r = runner.invoke(app, ["feed", "u0", "--db", url, "--limit", "3"])
    assert r.exit_code == 0 and "next page" in r.output, r.output
    r = runner.invoke(app, ["stats", "--db", "postgresql://postgres@127.0.0.1:1/test?connect_timeout=2"])
    assert r.exit_code == 1 and "cannot reach PostgreSQL at postgresql://postgres@127.0.0.1:1/test" in r.output


def test_a_closed_store_stays_closed(make_store):
    store = make_store()
    store.close()
    with pytest.raises(psycopg.OperationalError, match="closed"):
        store.count("users")
