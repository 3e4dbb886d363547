"""PostgreSQL implementation of the ``Store`` protocol (``store/base.py``), on psycopg 3.

Same semantics as ``SQLiteStore`` (``tests/store_contract.py`` is the spec); what this backend adds or guarantees:

- **Acknowledged = committed.** A transaction returns only after PostgreSQL committed it; with the default
  ``synchronous`` (anything but ``OFF``) the session runs ``synchronous_commit = on``, so the commit is flushed to
  the server's WAL first. ``OFF`` sets ``synchronous_commit = off`` (scratch stores and tests: a server crash may
  lose the last few hundred milliseconds of commits; the database stays consistent).
- **One writer at a time, across processes.** Every write transaction first takes a transaction-scoped advisory
  lock keyed by the store's schema, so writers from any number of processes run one after another. Consequences:
  ``idx`` and ``seq`` are assigned from the high-water marks without gaps or duplicates, and ``seq`` order is commit
  order: the lock is released only after the commit is visible, so a reader tailing ``iter_events(since_seq=last)``
  never sees ``seq`` n + 1 before n (it can miss only events erased by ``delete_user_data``).
- **Bulk loads use ``COPY``.** Users, posts and events are written with ``COPY ... FROM STDIN (FORMAT binary)``;
  a batch of numeric events is encoded with numpy, one fixed-width record type per null pattern. Event reads
  (``iter_events``, ``events_in_window``, ``load_edges``) are ``COPY ... TO STDOUT`` decoded the same way.
- **Versioned migrations.** ``schema_version(version, applied_at)`` holds one row per applied step of
  ``MIGRATIONS``; opening a store applies the missing ones in order, each in its own transaction under the
  writers' lock (two processes opening a new store at once migrate it once).
- **Any Unicode in post text.** PostgreSQL ``text`` cannot hold U+0000, which the API accepts in a post's text (the
  SQLite backend round-trips it), so ``posts.text`` is ``bytea`` holding UTF-8. Every other text column holds
  values the Ingestor has already refused control characters in (ids, handles, names, words), and preferences
  are stored as JSON text (``json.dumps`` escapes U+0000).
- **Where a store lives.** ``postgresql://user@host:port/db?schema=name``: ``schema`` (default ``public``) is the
  PostgreSQL schema holding the tables, created on first open; several stores share a database in separate
  schemas. ``path`` is not ``None`` as the protocol says of a server backend: it is a local anchor
  (``var/postgres/<host>_<port>_<db>_<schema>`` unless given) so that trained models have a default folder beside
  it (``<anchor>.models``), as they do beside a SQLite file.
- **Erasure** (``delete_user_data``, ``erase_posts``) deletes and overwrites the rows in the transaction; PostgreSQL
  keeps the old row versions in the table files until ``VACUUM`` reuses the space, and in the WAL until it is
  recycled (see docs/postgres.md).
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import numpy as np
import psycopg
from psycopg import sql

from glassfeed.domain import EVENT_COLUMNS, OBJECT_COLUMNS, EventBatch, EventKind
from glassfeed.store.base import (
    DELIVERY_STATES,
    EDGES,
    ERASED_LABEL,
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
    StoredEvent,
    Transaction,
    UserRow,
    UserSummary,
    join_sources,
    split_sources,
)
from glassfeed.store.sqlite import (
    _EDGE_ADD,
    _EDGE_REMOVE,
    ENTITY_TABLES,
    SQLiteStore,
    _notification_params,
    _notification_row,
    _scores_by_name,
    check_ad_log_kinds,
    check_moderation_kinds,
)

_T = TypeVar("_T")
#: URL schemes this backend opens.
SCHEMES: tuple[str, ...] = ("postgresql://", "postgres://")
#: Versioned schema migrations; index i upgrades the schema from version i to i + 1.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE users(
        idx bigint PRIMARY KEY,
        id text NOT NULL UNIQUE,
        handle text NOT NULL DEFAULT '',
        created_at double precision NOT NULL,
        community bigint,
        interests text NOT NULL DEFAULT '',
        token_hash text
    );
    CREATE TABLE posts(
        idx bigint PRIMARY KEY,
        id text NOT NULL UNIQUE,
        author bigint NOT NULL,
        text bytea NOT NULL,
        created_at double precision NOT NULL,
        reply_to bigint,
        repost_of bigint,
        quote_of bigint,
        topics text NOT NULL DEFAULT '',
        lang text NOT NULL DEFAULT 'en',
        labels text NOT NULL DEFAULT '',
        quality double precision,
        divisiveness double precision
    );
    CREATE INDEX posts_author ON posts(author, created_at);
    CREATE TABLE follows(src bigint NOT NULL, dst bigint NOT NULL, created_at double precision NOT NULL,
                         PRIMARY KEY(src, dst));
    CREATE TABLE blocks(src bigint NOT NULL, dst bigint NOT NULL, created_at double precision NOT NULL,
                        PRIMARY KEY(src, dst));
    CREATE TABLE mutes(src bigint NOT NULL, dst bigint NOT NULL, created_at double precision NOT NULL,
                       PRIMARY KEY(src, dst));
    CREATE TABLE muted_words("user" bigint NOT NULL, word text NOT NULL, PRIMARY KEY("user", word));
    CREATE TABLE events(
        seq bigint PRIMARY KEY,
        id text,
        kind smallint NOT NULL,
        "user" bigint NOT NULL,
        post bigint,
        target_user bigint,
        ts double precision NOT NULL,
        value double precision,
        surface text,
        position integer,
        request_id text
    );
    CREATE UNIQUE INDEX events_id ON events(id) WHERE id IS NOT NULL;
    CREATE INDEX events_user ON events("user", seq);
    CREATE TABLE user_prefs("user" bigint PRIMARY KEY, prefs text NOT NULL);
    CREATE TABLE meta(key text PRIMARY KEY, value text NOT NULL);
    """,
    # 2: the change log (``Store.changes_since``): what the event log does not number, for workers to tail
    """
    CREATE TABLE changes(seq bigserial PRIMARY KEY, kind text NOT NULL, idx bigint NOT NULL);
    """,
    # 3: the moderation log (append-only; numbered MAX + 1 under the writer lock, so a backup's copy keeps
    # numbering on) and classifier scores per post
    """
    CREATE TABLE moderation(
        seq bigint PRIMARY KEY,
        kind text NOT NULL,
        ts double precision NOT NULL,
        post bigint,
        "user" bigint,
        actor text,
        ref bigint,
        body text NOT NULL
    );
    CREATE INDEX moderation_kind ON moderation(kind, seq);
    CREATE TABLE post_scores(post bigint NOT NULL, name text NOT NULL, score real NOT NULL, PRIMARY KEY(post, name));
    """,
    # 4: notifications (each person's inbox, unique per key), the durable outbox of pushes, Web Push subscriptions
    """
    CREATE TABLE notifications(
        id bigserial PRIMARY KEY,
        "user" bigint NOT NULL,
        key text NOT NULL,
        kind text NOT NULL,
        post bigint,
        actors text NOT NULL,
        sources text NOT NULL,
        created_at double precision NOT NULL,
        updated_at double precision NOT NULL,
        read_at double precision,
        push_at double precision,
        rule text NOT NULL,
        worth double precision NOT NULL,
        pushed_at double precision,
        UNIQUE("user", key)
    );
    CREATE INDEX notifications_user ON notifications("user", updated_at);
    CREATE TABLE outbox(
        id bigserial PRIMARY KEY,
        notification bigint NOT NULL,
        "user" bigint NOT NULL,
        channel text NOT NULL,
        due_at double precision NOT NULL,
        attempts integer NOT NULL DEFAULT 0,
        state text NOT NULL DEFAULT 'pending'
    );
    CREATE INDEX outbox_due ON outbox(state, due_at);
    CREATE TABLE push_subscriptions(endpoint text PRIMARY KEY, "user" bigint NOT NULL, p256dh text NOT NULL,
                                    auth text NOT NULL);
    """,
    # 5: advertising: campaigns (JSON bodies, one advertiser each) and the append-only ad log (numbered MAX + 1
    # under the writer lock, as the moderation log)
    """
    CREATE TABLE ad_campaigns(id text PRIMARY KEY, advertiser text NOT NULL, body text NOT NULL,
                              created_at double precision NOT NULL, updated_at double precision NOT NULL);
    CREATE INDEX ad_campaigns_advertiser ON ad_campaigns(advertiser);
    CREATE TABLE ad_log(
        seq bigint PRIMARY KEY,
        kind text NOT NULL,
        ts double precision NOT NULL,
        campaign text NOT NULL,
        "user" bigint,
        post bigint,
        price bigint NOT NULL,
        request_id text,
        country text,
        ref bigint
    );
    CREATE INDEX ad_log_campaign ON ad_log(campaign, ts);
    CREATE INDEX ad_log_user ON ad_log("user", ts);
    """,
    # 6: online experiments (JSON bodies: definition and state) and each person's first exposure to one (unique
    # per experiment and user: the first stays)
    """
    CREATE TABLE experiments(name text PRIMARY KEY, body text NOT NULL, created_at double precision NOT NULL,
                             updated_at double precision NOT NULL);
    CREATE TABLE exposures(experiment text NOT NULL, "user" bigint NOT NULL, arm text NOT NULL,
                           ts double precision NOT NULL, PRIMARY KEY(experiment, "user"));
    CREATE INDEX exposures_user ON exposures("user");
    """,
    # 7: which candidate source placed each post of a served feed page (one row per page, by request id; creator
    # analytics joins impressions to it by request id and position)
    """
    CREATE TABLE page_sources(request_id text PRIMARY KEY, "user" bigint NOT NULL, ts double precision NOT NULL,
                              sources text NOT NULL);
    CREATE INDEX page_sources_user ON page_sources("user");
    CREATE INDEX page_sources_ts ON page_sources(ts);
    """,
]
#: Tables in the order ``backup`` copies them (every table ``MIGRATIONS`` creates but ``schema_version``).
TABLES: tuple[str, ...] = (
    "users",
    "posts",
    "follows",
    "blocks",
    "mutes",
    "muted_words",
    "events",
    "user_prefs",
    "meta",
    "moderation",
    "post_scores",
    "notifications",
    "outbox",
    "push_subscriptions",
    "ad_campaigns",
    "ad_log",
    "experiments",
    "exposures",
    "page_sources",
)
#: Tables numbered by a sequence: a backup into PostgreSQL moves each sequence past the ids it copied.
SERIAL_TABLES: tuple[str, ...] = ("notifications", "outbox")
#: First key of the advisory lock every writer (and every migration) takes; the second is the schema's hash.
_LOCK_CLASS = 0x676C66  # "glf"
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")

#: The event columns in the store's order as SQL names ("user" is a reserved word in PostgreSQL).
_EVENT_SQL_NAMES = {c.name: ('"user"' if c.name == "user" else c.name) for c in EVENT_COLUMNS}
#: The numeric event columns as read back: NULL ints -> -1, NULL value -> NaN (``EventBatch``'s nulls).
_NUMERIC_SELECT = (
    "seq, kind, \"user\", COALESCE(post, -1), COALESCE(target_user, -1), ts, COALESCE(value, 'NaN'::float8),"
    " COALESCE(position, -1)"
)
#: Big-endian wire type of each numeric event column in binary COPY (kind is smallint, position integer).
_WIRE: dict[str, str] = {
    "seq": ">i8",
    "kind": ">i2",
    "user": ">i8",
    "post": ">i8",
    "target_user": ">i8",
    "ts": ">f8",
    "value": ">f8",
    "position": ">i4",
}
#: PostgreSQL types of the ``posts`` columns in ``insert_posts``'s COPY (``PostRow`` with idx first).
_POST_TYPES = [
    *("int8", "text", "int8", "bytea", "float8", "int8", "int8", "int8", "text", "text", "text"),
    "float8",
    "float8",
]
#: Event columns always bound, whatever their value (the others are NULL where they hold their null marker).
_REQUIRED = frozenset({"seq", "kind", "user", "ts"})
#: The numeric event columns in ``EVENT_COLUMNS`` order, as ``encode_events`` streams them.
EVENT_COPY_COLUMNS = ", ".join(_EVENT_SQL_NAMES[c.name] for c in EVENT_COLUMNS)
_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
_COPY_TRAILER = b"\xff\xff"


def is_postgres_url(url_or_path: object) -> bool:
    """Whether ``url_or_path`` names a PostgreSQL store (``postgresql://`` or ``postgres://``; also the one-slash
    form ``postgresql:/host/db`` that ``pathlib.Path`` makes of a URL passed through a path-typed option)."""
    return re.match(r"^postgres(ql)?:/", str(url_or_path)) is not None


def normalise_url(url: str | Path) -> str:
    """``url`` as a URL: restores the ``//`` that ``pathlib.Path`` collapses (``postgresql:/host/db``)."""
    s = str(url)
    return re.sub(r"^(postgres(?:ql)?):/(?!/)", r"\1://", s)


def split_url(url: str | Path) -> tuple[str, str]:
    """``(conninfo, schema)`` of a store URL: the ``schema`` query parameter (default ``public``) is this store's,
    everything else goes to libpq."""
    parts = urlsplit(normalise_url(url))
    query = parse_qsl(parts.query, keep_blank_values=True)
    schema = "public"
    rest = []
    for k, v in query:
        if k == "schema":
            schema = v
        else:
            rest.append((k, v))
    if not _IDENT.match(schema):
        raise ValueError(f"schema must be a plain SQL identifier (letters, digits, _), not {schema!r}")
    return urlunsplit(parts._replace(query=urlencode(rest))), schema


def public_location(url: str | Path) -> str:
    """The URL without its password (for messages)."""
    parts = urlsplit(normalise_url(url))
    if parts.password is None:
        return urlunsplit(parts)
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def store_exists(url: str | Path) -> bool:
    """Whether a glassfeed schema (its ``schema_version`` table) exists at ``url``; creates nothing. An unreachable
    server raises ``ConnectionError``."""
    conninfo, schema = split_url(url)
    con = _connect(conninfo, public_location(url))
    try:
        row = con.execute("SELECT to_regclass(%s)", (f'"{schema}".schema_version',)).fetchone()
        return row is not None and row[0] is not None
    finally:
        con.close()


def encode_events(batch: EventBatch) -> list[bytes]:
    """The numeric columns of ``batch`` (``seq`` as numbered) as a binary ``COPY`` stream for
    ``COPY events(EVENT_COPY_COLUMNS) FROM STDIN (FORMAT binary)``, encoded with numpy: the rows are grouped by
    which nullable columns they hold (a handful of patterns; a null marker becomes NULL), and each group is one
    fixed-width record array. Row order in the stream does not matter: every row carries its ``seq``."""
    names = [c.name for c in EVENT_COLUMNS]
    present = {}
    for col in EVENT_COLUMNS:
        a = getattr(batch, col.name)
        present[col.name] = ~np.isnan(a) if np.issubdtype(a.dtype, np.floating) else a != col.null
    for name in _REQUIRED:  # bound as given (NOT NULL columns: a bad value is the server's to refuse)
        present[name] = np.ones(len(batch), bool)
    nullable = [c for c in names if not present[c].all()]
    code = np.zeros(len(batch), np.int64)
    for j, c in enumerate(nullable):
        code |= present[c].astype(np.int64) << j
    parts = [_COPY_HEADER]
    for pattern in np.unique(code):
        rows = np.flatnonzero(code == pattern)
        has = {c: c not in nullable or bool((int(pattern) >> nullable.index(c)) & 1) for c in names}
        fields: list[tuple[str, str]] = [("n", ">i2")]
        for c in names:
            fields.append((f"l_{c}", ">i4"))
            if has[c]:
                fields.append((c, _WIRE[c]))
        rec = np.empty(len(rows), dtype=np.dtype(fields))
        rec["n"] = len(names)
        for c in names:
            if has[c]:
                rec[f"l_{c}"] = np.dtype(_WIRE[c]).itemsize
                rec[c] = getattr(batch, c)[rows]
            else:
                rec[f"l_{c}"] = -1
        parts.append(rec.tobytes())
    parts.append(_COPY_TRAILER)
    return parts


def _connect(conninfo: str, location: str) -> psycopg.Connection[Any]:
    try:
        return psycopg.connect(conninfo, autocommit=True)
    except psycopg.OperationalError as e:
        reason = " ".join(line.strip() for line in str(e).splitlines() if line.strip()) or type(e).__name__
        raise ConnectionError(f"cannot reach PostgreSQL at {location}: {reason}") from e


class PostgresStore:
    """Durable store in one PostgreSQL schema (``Store`` protocol); see the module docstring for the guarantees.
    One connection per store object, serialised by a lock (as ``SQLiteStore``), reopened if the server dropped it.

    ``url``: ``postgresql://user@host:port/db[?schema=name]``; ``synchronous``: ``OFF`` trades durability of the
    last commits on a server crash for speed, anything else commits with ``synchronous_commit = on``; ``path``:
    the local anchor the models folder is kept beside (default ``var/postgres/<host>_<port>_<db>_<schema>``)."""

    def __init__(self, url: str | Path, synchronous: str = "FULL", *, path: str | Path | None = None) -> None:
        if synchronous.upper() not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise ValueError(f"synchronous must be OFF, NORMAL, FULL or EXTRA, not {synchronous!r}")
        self._conninfo, self.schema = split_url(url)
        self._location = public_location(url)
        self._synchronous = synchronous.upper()
        self._sync = "off" if self._synchronous == "OFF" else "on"
        parts = urlsplit(normalise_url(url))
        slug = "_".join(
            re.sub(r"[^A-Za-z0-9.-]+", "-", s) or "-"
            for s in (parts.hostname or "local", str(parts.port or 5432), parts.path.strip("/") or "db", self.schema)
        )
        self.path: Path = Path(path) if path is not None else Path("var") / "postgres" / slug
        self._lock = threading.RLock()
        self._con = self._open()
        self._migrate()
        self._user_idx: dict[str, int] = dict(self._con.execute("SELECT id, idx FROM users").fetchall())
        self._post_idx: dict[str, int] = dict(self._con.execute("SELECT id, idx FROM posts").fetchall())

    def _open(self) -> psycopg.Connection[Any]:
        con = _connect(self._conninfo, self._location)
        con.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(self.schema)))
        con.execute(sql.SQL("SET synchronous_commit TO {}").format(sql.SQL(self._sync)))
        return con

    def _conn(self) -> psycopg.Connection[Any]:
        """The connection, reopened when the server dropped it (outside a transaction only: a transaction whose
        connection broke fails, and nothing of it was written)."""
        if self._con.broken:  # not after close(): a closed store stays closed
            self._con = self._open()
        return self._con

    # ---------------------------------------------------------------- identity and schema
    @property
    def location(self) -> str:
        return self._location

    @property
    def schema_version(self) -> int:
        rows = self._rows("SELECT COALESCE(MAX(version), 0) FROM schema_version")
        return int(rows[0][0])

    def _lock_writers(self, cur: psycopg.Cursor[Any]) -> None:
        """Take the schema's writer lock for the rest of the transaction (released at commit or rollback)."""
        cur.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (_LOCK_CLASS, self.schema))

    def _migrate(self) -> None:
        with self._lock:
            con = self._conn()
            ident = sql.Identifier(self.schema)
            row = con.execute("SELECT to_regclass('schema_version')").fetchone()
            if row is not None and row[0] is not None and self.schema_version >= len(MIGRATIONS):
                return  # up to date: no need to wait for the writers' lock
            for i in range(len(MIGRATIONS)):
                with con.transaction(), con.cursor() as cur:
                    self._lock_writers(cur)
                    cur.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(ident))
                    cur.execute(
                        "CREATE TABLE IF NOT EXISTS schema_version("
                        "version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
                    )
                    row = cur.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version").fetchone()
                    if row is None or int(row[0]) > i:
                        continue  # this step is applied already (perhaps by another process just now)
                    cur.execute(MIGRATIONS[i])
                    cur.execute("INSERT INTO schema_version(version) VALUES (%s)", (i + 1,))

    @contextmanager
    def bulk_load(self, rows: int) -> Iterator[None]:
        """Bulk-load mode for ``rows`` new events: when they are at least half as many as the events already
        stored, drop the per-user event index, load, and rebuild it in one pass (as ``SQLiteStore``); smaller
        loads keep it. Each load transaction stays atomic and durable as usual."""
        if rows < 0.5 * self.max_seq():
            yield
            return
        with self.transaction() as tx:
            self._tx(tx).cur.execute("DROP INDEX IF EXISTS events_user")
        try:
            yield
        finally:
            with self.transaction() as tx:
                self._tx(tx).cur.execute('CREATE INDEX IF NOT EXISTS events_user ON events("user", seq)')

    def backup(self, dest: str | Path) -> None:
        """Copy the whole store consistently (one ``REPEATABLE READ`` snapshot) to ``dest``: a PostgreSQL URL (a
        new or empty store there, streamed table by table with binary ``COPY``) or a file path, which becomes a
        SQLite database that ``open_store(dest)`` opens (``SQLiteStore``, same ids, idx and ``seq``)."""
        if is_postgres_url(dest):
            target = PostgresStore(dest, self._synchronous)
            try:
                if target.count("users") or target.count("posts") or target.get_meta("event_seq") is not None:
                    raise ValueError(f"backup target {target.location} is not empty")
                with self._snapshot() as src, target.transaction() as tx:
                    out = target._tx(tx).cur
                    for table in TABLES:
                        with (
                            src.copy(f"COPY {table} TO STDOUT (FORMAT binary)") as rd,
                            out.copy(f"COPY {table} FROM STDIN (FORMAT binary)") as wr,
                        ):
                            for block in rd:
                                wr.write(block)
                    for table in SERIAL_TABLES:
                        out.execute(
                            f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), COALESCE(MAX(id), 0) + 1, false)"
                            f" FROM {table}"
                        )
            finally:
                target.close()
            return
        dest = Path(dest)
        if dest.exists():
            raise ValueError(f"backup target {dest} exists already")
        SQLiteStore(dest).close()  # the SQLite schema, migrated
        lite = sqlite3.connect(str(dest), isolation_level=None)
        try:
            lite.execute("BEGIN")
            with self._snapshot() as src:
                for table in TABLES:
                    cols = [r[0] for r in src.execute(f"SELECT * FROM {table} LIMIT 0").description or []]
                    names = ", ".join('"user"' if c == "user" else c for c in cols)
                    ins = f"INSERT INTO {table}({names}) VALUES ({','.join('?' * len(cols))})"
                    text_at = cols.index("text") if table == "posts" else -1
                    src.execute(f"SELECT {names} FROM {table}")
                    while rows := src.fetchmany(50_000):
                        if text_at >= 0:
                            rows = [(*r[:text_at], bytes(r[text_at]).decode(), *r[text_at + 1 :]) for r in rows]
                        lite.executemany(ins, rows)
            lite.execute("COMMIT")
        finally:
            lite.close()

    @contextmanager
    def _snapshot(self) -> Iterator[psycopg.Cursor[Any]]:
        """A cursor in a read-only ``REPEATABLE READ`` transaction (one consistent snapshot), under the lock."""
        with self._lock:
            con = self._conn()
            con.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            try:
                with con.cursor() as cur:
                    yield cur
            finally:
                con.execute("ROLLBACK")

    def close(self) -> None:
        with self._lock:
            self._con.close()

    # ---------------------------------------------------------------- transactions
    def transaction(self) -> _Tx:
        """``with store.transaction() as tx:`` — all-or-nothing under the writers' lock, committed on exit."""
        return _Tx(self)

    def _tx(self, tx: Transaction) -> _Tx:
        """The open transaction of this store behind the opaque ``tx`` (``TypeError`` for anything else)."""
        if not isinstance(tx, _Tx) or tx.store is not self:
            raise TypeError("pass the transaction opened by this store's transaction()")
        return tx

    # ---------------------------------------------------------------- id maps
    def user_idx(self, user_id: str) -> int | None:
        return self._user_idx.get(user_id)

    def post_idx(self, post_id: str) -> int | None:
        return self._post_idx.get(post_id)

    def user_ids(self) -> Mapping[str, int]:
        return self._user_idx

    def post_ids(self) -> Mapping[str, int]:
        return self._post_idx

    def refresh_ids(self) -> tuple[int, int]:
        """Read the users and posts above this handle's highest idx (idx are dense, so the map's size is its
        highest idx) and add them to the id maps (``Store.refresh_ids``)."""
        with self._lock:
            users = self._rows("SELECT id, idx FROM users WHERE idx > %s ORDER BY idx", (len(self._user_idx),))
            posts = self._rows("SELECT id, idx FROM posts WHERE idx > %s ORDER BY idx", (len(self._post_idx),))
            self._register(users, posts)
        return len(users), len(posts)

    # ---------------------------------------------------------------- writes (call inside transaction)
    def insert_users(self, tx: Transaction, rows: Sequence[UserRow]) -> list[int]:
        """rows: (id, handle, created_at, community, interests_csv, token_hash). Returns new idx values."""
        t = self._tx(tx)
        start = self._next_idx(t.cur, "users")
        with t.cur.copy(
            "COPY users(idx, id, handle, created_at, community, interests, token_hash) FROM STDIN (FORMAT binary)"
        ) as cp:
            cp.set_types(["int8", "text", "text", "float8", "int8", "text", "text"])
            for i, r in enumerate(rows):
                cp.write_row((start + i, *r))
        new = list(range(start, start + len(rows)))
        t.new_users.extend(zip((r[0] for r in rows), new))
        return new

    def insert_posts(self, tx: Transaction, rows: Sequence[PostRow]) -> list[int]:
        """rows: (id, author_idx, text, created_at, reply_to, repost_of, quote_of, topics_csv, lang, labels_csv,
        quality, divisiveness) with reply_to/repost_of/quote_of as idx or None; the text is stored as UTF-8."""
        t = self._tx(tx)
        start = self._next_idx(t.cur, "posts")
        with t.cur.copy(
            "COPY posts(idx, id, author, text, created_at, reply_to, repost_of, quote_of, topics, lang, labels,"
            " quality, divisiveness) FROM STDIN (FORMAT binary)"
        ) as cp:
            cp.set_types(_POST_TYPES)
            for i, r in enumerate(rows):
                cp.write_row((start + i, r[0], r[1], r[2].encode(), *r[3:]))
        new = list(range(start, start + len(rows)))
        t.new_posts.extend(zip((r[0] for r in rows), new))
        return new

    def append_events(self, tx: Transaction, batch: EventBatch) -> tuple[int, int]:
        """Append resolved events (``Store.append_events``) with one ``COPY``. Events whose client id is already
        stored, or repeats an earlier one of the batch, are dropped first (writers are serialised, so no other
        transaction can store an id in between); the kept ones are numbered consecutively from the high-water
        mark."""
        cur = self._tx(tx).cur
        first = self._event_seq(cur) + 1
        if batch.id is not None and len(batch):
            batch = batch.take(self._new_ids(cur, batch.id))
        n = len(batch)
        if n == 0:
            return first, first - 1
        batch = batch.with_seq(first)
        if all(getattr(batch, name) is None for name in OBJECT_COLUMNS):
            self._copy_numeric_events(cur, batch)
        else:
            self._copy_events(cur, batch)
        last = first + n - 1
        self._set_event_seq(cur, last)
        self._apply_edges(cur, batch)
        return first, last

    @staticmethod
    def _new_ids(cur: psycopg.Cursor[Any], ids: np.ndarray) -> np.ndarray:
        """Mask of the events to keep: no client id, or an id neither stored nor seen earlier in the batch."""
        given = [i for i in ids.tolist() if i is not None]
        stored = {r[0] for r in cur.execute("SELECT id FROM events WHERE id = ANY(%s)", (given,))} if given else set()
        keep = np.ones(len(ids), bool)
        seen: set[str] = set()
        for j, i in enumerate(ids.tolist()):
            if i is None:
                continue
            if i in stored or i in seen:
                keep[j] = False
            seen.add(i)
        return keep

    @staticmethod
    def _copy_numeric_events(cur: psycopg.Cursor[Any], batch: EventBatch) -> None:
        """Binary ``COPY`` of events without object columns (``encode_events``)."""
        with cur.copy(f"COPY events({EVENT_COPY_COLUMNS}) FROM STDIN (FORMAT binary)") as cp:
            for p in encode_events(batch):
                cp.write(p)

    @staticmethod
    def _copy_events(cur: psycopg.Cursor[Any], batch: EventBatch) -> None:
        """Binary ``COPY`` of events with object columns, row by row (psycopg's C row encoder)."""
        cols: list[list[Any]] = []
        for c in EVENT_COLUMNS:
            a = getattr(batch, c.name)
            ok = ~np.isnan(a) if np.issubdtype(a.dtype, np.floating) else a != c.null
            if c.name in _REQUIRED:
                ok = np.ones(len(a), bool)
            vals = a.tolist()
            cols.append(vals if ok.all() else [v if k else None for v, k in zip(vals, ok.tolist())])
        for name in OBJECT_COLUMNS:
            col = getattr(batch, name)
            cols.append([None] * len(batch) if col is None else col.tolist())
        names = ", ".join([_EVENT_SQL_NAMES[c.name] for c in EVENT_COLUMNS] + list(OBJECT_COLUMNS))
        with cur.copy(f"COPY events({names}) FROM STDIN (FORMAT binary)") as cp:
            cp.set_types(["int8", "int2", "int8", "int8", "int8", "float8", "float8", "int4", "text", "text", "text"])
            for row in zip(*cols):
                cp.write_row(row)

    def _apply_edges(self, cur: psycopg.Cursor[Any], batch: EventBatch) -> None:
        """Bring the edge tables up to date with the graph events of an appended batch, as if applied in ``seq``
        order: for each (user, target_user) pair the batch's last add or remove of a table decides (an add keeps
        its ``ts`` as the edge's ``created_at``)."""
        kind, user, target = batch.kind, batch.user, batch.target_user
        graph = target != -1
        for table, add in _EDGE_ADD.items():
            remove = _EDGE_REMOVE[table]
            idx = np.flatnonzero(graph & ((kind == add) | (kind == remove)))
            if len(idx) == 0:
                continue
            rev = idx[::-1]
            _, last_in_rev = np.unique((user[rev] << 32) | target[rev], return_index=True)
            last = rev[last_in_rev]
            adds, removes = last[kind[last] == add], last[kind[last] == remove]
            if len(adds):
                cur.execute(
                    f"INSERT INTO {table}(src, dst, created_at)"
                    " SELECT * FROM unnest(%s::bigint[], %s::bigint[], %s::float8[])"
                    " ON CONFLICT (src, dst) DO UPDATE SET created_at = EXCLUDED.created_at",
                    (user[adds].tolist(), target[adds].tolist(), batch.ts[adds].tolist()),
                )
            if len(removes):
                cur.execute(
                    f"DELETE FROM {table} t USING unnest(%s::bigint[], %s::bigint[]) AS d(src, dst)"
                    " WHERE t.src = d.src AND t.dst = d.dst",
                    (user[removes].tolist(), target[removes].tolist()),
                )

    def set_muted_words(self, tx: Transaction, user: int, words: Iterable[str]) -> None:
        cur = self._tx(tx).cur
        cur.execute('DELETE FROM muted_words WHERE "user" = %s', (user,))
        cur.execute(
            'INSERT INTO muted_words("user", word) SELECT %s, w FROM unnest(%s::text[]) AS w ON CONFLICT DO NOTHING',
            (user, list(words)),
        )
        _record_changes(cur, "muted_words", [user])

    def add_post_label(self, tx: Transaction, posts: Sequence[int], label: str) -> None:
        """Add a moderation label to posts (idempotent; an exact match on the comma-separated list)."""
        self._tx(tx).cur.execute(
            "UPDATE posts SET labels = CASE WHEN labels = '' THEN %(l)s"
            " WHEN strpos(',' || labels || ',', ',' || %(l)s || ',') > 0 THEN labels ELSE labels || ',' || %(l)s END"
            " WHERE idx = ANY(%(p)s)",
            {"l": label, "p": [int(i) for i in posts]},
        )
        _record_changes(self._tx(tx).cur, "labels", posts)

    def set_prefs(self, tx: Transaction, user: int, prefs: dict[str, Any]) -> None:
        self._tx(tx).cur.execute(
            'INSERT INTO user_prefs("user", prefs) VALUES (%s, %s)'
            ' ON CONFLICT ("user") DO UPDATE SET prefs = EXCLUDED.prefs',
            (user, json.dumps(prefs)),
        )
        _record_changes(self._tx(tx).cur, "prefs", [user])

    def set_token_hash(self, tx: Transaction, user: int, token_hash: str) -> None:
        self._tx(tx).cur.execute("UPDATE users SET token_hash = %s WHERE idx = %s", (token_hash, user))

    def set_meta(self, tx: Transaction, key: str, value: str) -> None:
        if key in RESERVED_META_KEYS:
            raise ValueError(f"meta key {key!r} is kept by the store itself")
        self._upsert_meta(self._tx(tx).cur, key, value)

    @staticmethod
    def _upsert_meta(cur: psycopg.Cursor[Any], key: str, value: str) -> None:
        cur.execute(
            "INSERT INTO meta(key, value) VALUES (%s, %s) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
            (key, value),
        )

    def delete_user_data(self, tx: Transaction, user: int) -> dict[str, int]:
        """Erase a user's events, outgoing edges, muted words and preferences, and anonymise the user row
        (``Store.delete_user_data``). The rows are gone for every reader once this commits; PostgreSQL keeps the old
        row versions in its files until vacuum reuses the space (docs/postgres.md)."""
        cur = self._tx(tx).cur
        counts = {}
        counts["events"] = cur.execute('DELETE FROM events WHERE "user" = %s', (user,)).rowcount
        for table in EDGES:
            counts[table] = cur.execute(f"DELETE FROM {table} WHERE src = %s", (user,)).rowcount
        counts["muted_words"] = cur.execute('DELETE FROM muted_words WHERE "user" = %s', (user,)).rowcount
        counts["prefs"] = cur.execute('DELETE FROM user_prefs WHERE "user" = %s', (user,)).rowcount
        counts["ad_log"] = cur.execute('UPDATE ad_log SET "user" = NULL WHERE "user" = %s', (user,)).rowcount
        counts["exposures"] = cur.execute('DELETE FROM exposures WHERE "user" = %s', (user,)).rowcount
        counts["page_sources"] = cur.execute('DELETE FROM page_sources WHERE "user" = %s', (user,)).rowcount
        counts["profile"] = cur.execute(
            "UPDATE users SET handle = id, community = NULL, interests = '' WHERE idx = %s", (user,)
        ).rowcount
        _record_changes(cur, "deleted", [user])
        return counts

    def erase_posts(self, tx: Transaction, author: int) -> list[int]:
        """Tombstone every post by ``author`` (``Store.erase_posts``) and return their idx, ascending."""
        cur = self._tx(tx).cur
        rows = cur.execute(
            "UPDATE posts SET text = ''::bytea, topics = '', lang = '', labels = %s, reply_to = NULL,"
            " repost_of = NULL, quote_of = NULL, quality = NULL, divisiveness = NULL WHERE author = %s RETURNING idx",
            (ERASED_LABEL, author),
        ).fetchall()
        idxs = sorted(int(r[0]) for r in rows)
        _record_changes(cur, "posts_erased", idxs)
        return idxs

    def prune_posts(self, tx: Transaction, before: float) -> Pruned:
        """Tombstone the posts created before ``before`` and delete the events on them (``Store.prune_posts``).
        Both statements scan their table (no index on ``posts.created_at`` or ``events.post``): meant for a
        periodic job. The freed row versions stay in the files until vacuum reuses the space (docs/postgres.md)."""
        cur = self._tx(tx).cur
        rows = cur.execute(
            "UPDATE posts SET text = ''::bytea, topics = '', lang = '', labels = %s, reply_to = NULL,"
            " repost_of = NULL, quote_of = NULL, quality = NULL, divisiveness = NULL"
            " WHERE created_at < %s AND labels <> %s RETURNING idx",
            (ERASED_LABEL, before, ERASED_LABEL),
        ).fetchall()
        idxs = sorted(int(r[0]) for r in rows)
        events = cur.execute(
            "WITH gone AS (DELETE FROM events WHERE post IN (SELECT idx FROM posts WHERE created_at < %s)"
            " RETURNING kind) SELECT kind, COUNT(*) FROM gone GROUP BY kind",
            (before,),
        ).fetchall()
        cur.execute("DELETE FROM page_sources WHERE ts < %s", (before,))
        _record_changes(cur, "posts_erased", idxs)
        return Pruned(idxs, {int(k): int(n) for k, n in events})

    @staticmethod
    def _event_seq(cur: psycopg.Cursor[Any]) -> int:
        """The high-water mark of event sequence numbers (never reused, even after deletions)."""
        row = cur.execute("SELECT value FROM meta WHERE key = 'event_seq'").fetchone()
        if row is None:
            row = cur.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()
        return int(row[0]) if row is not None else 0

    def _set_event_seq(self, cur: psycopg.Cursor[Any], seq: int) -> None:
        self._upsert_meta(cur, "event_seq", str(seq))

    @staticmethod
    def _next_idx(cur: psycopg.Cursor[Any], table: str) -> int:
        row = cur.execute(f"SELECT COALESCE(MAX(idx), 0) + 1 FROM {table}").fetchone()
        return int(row[0]) if row is not None else 1

    def _register(self, users: list[tuple[str, int]], posts: list[tuple[str, int]]) -> None:
        self._user_idx.update(users)
        self._post_idx.update(posts)

    # ---------------------------------------------------------------- reads
    def _rows(self, query: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> list[tuple[Any, ...]]:
        """Run one read statement under the lock (private: SQL stays inside this module)."""
        return self._read(lambda con: con.execute(query, params).fetchall())

    def _read(self, run: Callable[[psycopg.Connection[Any]], _T]) -> _T:
        """``run(connection)`` under the lock; outside a transaction, once more on a fresh connection if the server
        dropped the old one (a read has nothing to lose)."""
        with self._lock:
            con = self._conn()
            idle = con.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
            try:
                return run(con)
            except psycopg.OperationalError:
                if not (idle and con.broken):
                    raise
                return run(self._conn())

    def _copy_out(self, select: sql.Composable, wire: Sequence[str]) -> np.ndarray:
        """The rows of ``select`` (every column ``NOT NULL`` and fixed-width, of the big-endian numpy types
        ``wire``), read with ``COPY ... TO STDOUT (FORMAT binary)`` into a record array (fields ``f0``, ``f1``...)."""
        dtype = np.dtype([("n", ">i2")] + [x for j, w in enumerate(wire) for x in ((f"l{j}", ">i4"), (f"f{j}", w))])

        def run(con: psycopg.Connection[Any]) -> bytes:
            with con.cursor() as cur, cur.copy(sql.SQL("COPY ({}) TO STDOUT (FORMAT binary)").format(select)) as cp:
                return b"".join(bytes(b) for b in cp)

        data = self._read(run)
        ext = int.from_bytes(data[15:19], "big")
        body = memoryview(data)[19 + ext : len(data) - 2]
        rec = np.frombuffer(body, dtype=dtype)
        for j, w in enumerate(wire):  # a NULL would show as length -1 and shift every later row
            if len(rec) and not (rec[f"l{j}"] == np.dtype(w).itemsize).all():
                raise RuntimeError("unexpected NULL or width in a fixed-width COPY")
        return rec

    def count(self, entity: Entity) -> int:
        table = ENTITY_TABLES.get(entity)
        if table is None:
            raise ValueError(f"cannot count {entity!r}; expected one of {', '.join(ENTITY_TABLES)}")
        return int(self._rows(f"SELECT COUNT(*) FROM {table}")[0][0])

    def max_seq(self) -> int:
        def run(con: psycopg.Connection[Any]) -> int:
            with con.cursor() as cur:
                return self._event_seq(cur)

        return self._read(run)

    def count_events(self, kind: EventKind | None = None) -> int:
        if kind is None:
            return int(self._rows("SELECT COUNT(*) FROM events")[0][0])
        return int(self._rows("SELECT COUNT(*) FROM events WHERE kind = %s", (int(kind),))[0][0])

    def load_users(self, since_idx: int = 0) -> dict[str, Any]:
        rows = self._rows(
            "SELECT idx, id, handle, created_at, community, interests FROM users WHERE idx > %s ORDER BY idx",
            (since_idx,),
        )
        return {
            "idx": np.array([r[0] for r in rows], dtype=np.int64),
            "id": [r[1] for r in rows],
            "handle": [r[2] for r in rows],
            "created_at": np.array([r[3] for r in rows], dtype=np.float64),
            # -1 for none and for any value that is not an int32 (ingest refuses them; a row may still hold one)
            "community": np.array(
                [r[4] if r[4] is not None and -(2**31) <= r[4] < 2**31 else -1 for r in rows], dtype=np.int32
            ),
            "interests": [r[5].split(",") if r[5] else [] for r in rows],
        }

    def load_posts(self, since_idx: int = 0) -> dict[str, Any]:
        rows = self._rows(
            "SELECT idx, id, author, text, created_at, reply_to, repost_of, quote_of, topics, lang, labels, quality,"
            " divisiveness FROM posts WHERE idx > %s ORDER BY idx",
            (since_idx,),
        )
        f = np.float64
        return {
            "idx": np.array([r[0] for r in rows], dtype=np.int64),
            "id": [r[1] for r in rows],
            "author": np.array([r[2] for r in rows], dtype=np.int64),
            "text": [bytes(r[3]).decode() for r in rows],
            "created_at": np.array([r[4] for r in rows], dtype=f),
            "reply_to": np.array([-1 if r[5] is None else r[5] for r in rows], dtype=np.int64),
            "repost_of": np.array([-1 if r[6] is None else r[6] for r in rows], dtype=np.int64),
            "quote_of": np.array([-1 if r[7] is None else r[7] for r in rows], dtype=np.int64),
            "topics": [r[8].split(",") if r[8] else [] for r in rows],
            "lang": [r[9] for r in rows],
            "labels": [r[10].split(",") if r[10] else [] for r in rows],
            "quality": np.array([np.nan if r[11] is None else r[11] for r in rows], dtype=f),
            "divisiveness": np.array([np.nan if r[12] is None else r[12] for r in rows], dtype=f),
        }

    def load_edges(self, edge: Edge) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if edge not in EDGES:
            raise ValueError(f"unknown edge table {edge!r}; expected one of {', '.join(EDGES)}")
        rec = self._copy_out(sql.SQL("SELECT src, dst, created_at FROM {}").format(sql.Identifier(edge)), _EDGE_WIRE)
        return rec["f0"].astype(np.int64), rec["f1"].astype(np.int64), rec["f2"].astype(np.float64)

    def load_muted_words(self) -> dict[int, list[str]]:
        out: dict[int, list[str]] = {}
        for u, w in self._rows('SELECT "user", word FROM muted_words ORDER BY "user", word'):
            out.setdefault(u, []).append(w)
        return out

    def load_prefs(self) -> dict[int, dict[str, Any]]:
        return {u: json.loads(p) for u, p in self._rows('SELECT "user", prefs FROM user_prefs')}

    def post_labels(self, posts: Sequence[int]) -> dict[int, list[str]]:
        if not len(posts):
            return {}
        rows = self._rows("SELECT idx, labels FROM posts WHERE idx = ANY(%s)", ([int(p) for p in posts],))
        return {idx: labels.split(",") if labels else [] for idx, labels in rows}

    def token_hash(self, user: int) -> str | None:
        rows = self._rows("SELECT token_hash FROM users WHERE idx = %s", (user,))
        return rows[0][0] if rows else None

    def user_summary(self, user: int) -> UserSummary | None:
        rows = self._rows(
            "SELECT id, handle, created_at, community, interests,"
            ' (SELECT COUNT(*) FROM events WHERE "user" = u.idx), (SELECT COUNT(*) FROM follows WHERE src = u.idx),'
            " (SELECT COUNT(*) FROM follows WHERE dst = u.idx), (SELECT COUNT(*) FROM posts WHERE author = u.idx)"
            " FROM users u WHERE idx = %s",
            (user,),
        )
        if not rows:
            return None
        uid, handle, created_at, community, interests, events, following, followers, posts = rows[0]
        return UserSummary(
            id=uid,
            idx=user,
            handle=handle,
            created_at=float(created_at),
            community=community,
            interests=interests.split(",") if interests else [],
            events=int(events),
            following=int(following),
            followers=int(followers),
            posts=int(posts),
        )

    def get_meta(self, key: str) -> str | None:
        rows = self._rows("SELECT value FROM meta WHERE key = %s", (key,))
        return rows[0][0] if rows else None

    def iter_events(
        self, since_seq: int = 0, until_seq: int | None = None, *, chunk: int = 500_000, object_columns: bool = False
    ) -> Iterator[EventBatch]:
        """Stream events after ``since_seq`` (up to ``until_seq``) as ``EventBatch`` chunks in ``seq`` order, each
        chunk one binary ``COPY`` decoded with numpy (with ``object_columns``, a plain query that reads them too)."""
        last = int(since_seq)
        while True:
            where = [sql.SQL("seq > {}").format(sql.Literal(last))]
            if until_seq is not None:
                where.append(sql.SQL("seq <= {}").format(sql.Literal(int(until_seq))))
            cond = sql.SQL(" AND ").join(where)
            if object_columns:
                batch = self._events_with_objects(sql.SQL(" WHERE ") + cond, sql.SQL("seq"), int(chunk))
                n = len(batch)
            else:
                select = sql.SQL("SELECT {} FROM events WHERE {} ORDER BY seq LIMIT {}").format(
                    sql.SQL(_NUMERIC_SELECT), cond, sql.Literal(int(chunk))
                )
                rec = self._copy_out(select, _EVENT_WIRE)
                n = len(rec)
                batch = _event_batch(rec)
            if n == 0:
                return
            yield batch
            last = int(batch.seq[-1])
            if n < chunk:
                return

    def events_in_window(
        self,
        t_from: float | None = None,
        t_to: float | None = None,
        *,
        kinds: Collection[EventKind] | None = None,
        object_columns: bool = False,
    ) -> EventBatch:
        """Events with ``t_from <= ts < t_to`` (optionally of ``kinds``), ordered by ts then seq."""
        where = _window_where(t_from, t_to, kinds)
        if where is None:
            return EventBatch.empty()
        cond = sql.SQL(" WHERE ") + sql.SQL(" AND ").join(where) if where else sql.SQL("")
        if not object_columns:
            select = sql.SQL("SELECT {} FROM events{} ORDER BY ts, seq").format(sql.SQL(_NUMERIC_SELECT), cond)
            return _event_batch(self._copy_out(select, _EVENT_WIRE))
        return self._events_with_objects(cond, sql.SQL("ts, seq"))

    def events_about(
        self,
        posts: Collection[int] = (),
        target_users: Collection[int] = (),
        *,
        t_from: float | None = None,
        kinds: Collection[EventKind] | None = None,
    ) -> EventBatch:
        """Events on ``posts`` or aimed at ``target_users`` (``Store.events_about``), ordered by ts then seq."""
        about = [
            sql.SQL("{} = ANY({}::bigint[])").format(sql.Identifier(col), sql.Literal([int(i) for i in ids]))
            for col, ids in (("post", posts), ("target_user", target_users))
            if len(ids)
        ]
        if not about:
            return EventBatch.empty()
        window = _window_where(t_from, None, kinds)
        if window is None:
            return EventBatch.empty()
        where = [sql.SQL("(") + sql.SQL(" OR ").join(about) + sql.SQL(")"), *window]
        return self._events_with_objects(sql.SQL(" WHERE ") + sql.SQL(" AND ").join(where), sql.SQL("ts, seq"))

    def _events_with_objects(self, cond: sql.Composable, order: sql.Composable, limit: int | None = None) -> EventBatch:
        """The events matching ``cond`` (a ``WHERE`` clause or nothing) in ``order``, object columns included."""
        query = sql.SQL("SELECT {}, {} FROM events{} ORDER BY {}{}").format(
            sql.SQL(_NUMERIC_SELECT),
            sql.SQL(", ").join(sql.Identifier(n) for n in OBJECT_COLUMNS),
            cond,
            order,
            sql.SQL(" LIMIT {}").format(sql.Literal(limit)) if limit is not None else sql.SQL(""),
        )
        rows = self._read(lambda con: con.execute(query).fetchall())
        if not rows:
            return EventBatch.empty()
        width = len(EVENT_COLUMNS)
        table = np.array(rows, dtype=object)
        a = table[:, :width].astype(np.float64)
        objects = {name: table[:, width + j] for j, name in enumerate(OBJECT_COLUMNS)}
        return EventBatch.from_columns(**{c.name: a[:, j] for j, c in enumerate(EVENT_COLUMNS)}, **objects)

    def user_events(self, user: int, limit: int = 1000) -> list[StoredEvent]:
        return [
            StoredEvent(*r)
            for r in self._rows(
                "SELECT seq, id, kind, post, target_user, ts, value, surface, position, request_id FROM events"
                ' WHERE "user" = %s ORDER BY seq DESC LIMIT %s',
                (user, limit),
            )
        ]

    def event_ids_exist(self, ids: Collection[str]) -> set[str]:
        if not ids:
            return set()
        return {r[0] for r in self._rows("SELECT id FROM events WHERE id = ANY(%s)", (list(ids),))}

    # ------------------------------------------------------------------ ads
    def upsert_ad_campaign(self, tx: Transaction, row: AdCampaignRow) -> None:
        self._tx(tx).cur.execute(
            "INSERT INTO ad_campaigns(id, advertiser, body, created_at, updated_at) VALUES (%s, %s, %s, %s, %s)"
            " ON CONFLICT(id) DO UPDATE SET body = excluded.body, updated_at = excluded.updated_at",
            (row.id, row.advertiser, json.dumps(row.body), row.created_at, row.updated_at),
        )

    def ad_campaigns(self, advertiser: str | None = None) -> list[AdCampaignRow]:
        query = "SELECT id, advertiser, body, created_at, updated_at FROM ad_campaigns"
        params: list[Any] = []
        if advertiser is not None:
            query += " WHERE advertiser = %s"
            params.append(advertiser)
        rows = self._rows(query + " ORDER BY id", params)
        return [AdCampaignRow(r[0], r[1], json.loads(r[2]), r[3], r[4]) for r in rows]

    def append_ad_log(self, tx: Transaction, rows: Sequence[AdLogRow]) -> list[int]:
        check_ad_log_kinds(rows)
        cur = self._tx(tx).cur
        row = cur.execute("SELECT COALESCE(MAX(seq), 0) FROM ad_log").fetchone()
        first = int(row[0]) + 1 if row else 1
        seqs = list(range(first, first + len(rows)))
        cur.executemany(
            'INSERT INTO ad_log(seq, kind, ts, campaign, "user", post, price, request_id, country, ref)'
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            [
                (q, r.kind, r.ts, r.campaign, r.user, r.post, int(r.price), r.request_id, r.country, r.ref)
                for q, r in zip(seqs, rows)
            ],
        )
        return seqs

    def ad_log(
        self,
        since_seq: int = 0,
        *,
        campaigns: Collection[str] | None = None,
        kinds: Collection[str] | None = None,
        t_from: float | None = None,
        t_to: float | None = None,
        user: int | None = None,
        limit: int | None = None,
    ) -> list[AdLogRow]:
        query = (
            'SELECT seq, kind, ts, campaign, "user", post, price, request_id, country, ref FROM ad_log WHERE seq > %s'
        )
        params: list[Any] = [since_seq]
        for col, values in (("campaign", campaigns), ("kind", kinds)):
            if values is not None:
                if not values:
                    return []
                query += f" AND {col} IN ({', '.join(['%s'] * len(values))})"
                params += list(values)
        for cond, value in (("ts >= %s", t_from), ("ts < %s", t_to), ('"user" = %s', user)):
            if value is not None:
                query += " AND " + cond
                params.append(value)
        query += " ORDER BY seq" + (" LIMIT %s" if limit is not None else "")
        if limit is not None:
            params.append(limit)
        return [AdLogRow(*r) for r in self._rows(query, params)]

    def ad_spend(self, since: float) -> dict[str, tuple[int, int]]:
        rows = self._rows(
            "SELECT campaign, SUM(CASE WHEN ts >= %s THEN price ELSE 0 END), SUM(price) FROM ad_log"
            " WHERE price > 0 GROUP BY campaign",
            (since,),
        )
        return {r[0]: (int(r[1]), int(r[2])) for r in rows}

    # ------------------------------------------------------------------ experiments
    def upsert_experiment(self, tx: Transaction, row: ExperimentRow) -> None:
        self._tx(tx).cur.execute(
            "INSERT INTO experiments(name, body, created_at, updated_at) VALUES (%s, %s, %s, %s)"
            " ON CONFLICT(name) DO UPDATE SET body = excluded.body, updated_at = excluded.updated_at",
            (row.name, json.dumps(row.body), row.created_at, row.updated_at),
        )

    def experiments(self) -> list[ExperimentRow]:
        rows = self._rows("SELECT name, body, created_at, updated_at FROM experiments ORDER BY name")
        return [ExperimentRow(r[0], json.loads(r[1]), r[2], r[3]) for r in rows]

    def add_exposures(self, tx: Transaction, rows: Sequence[ExposureRow]) -> int:
        if not rows:
            return 0
        cur = self._tx(tx).cur
        new = 0
        for r in rows:
            cur.execute(
                'INSERT INTO exposures(experiment, "user", arm, ts) VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING',
                (r.experiment, int(r.user), r.arm, float(r.ts)),
            )
            new += max(cur.rowcount, 0)
        return new

    def exposures(self, experiment: str | None = None, *, user: int | None = None) -> list[ExposureRow]:
        query, params = 'SELECT experiment, "user", arm, ts FROM exposures WHERE TRUE', list[Any]()
        for cond, value in (("experiment = %s", experiment), ('"user" = %s', user)):
            if value is not None:
                query += " AND " + cond
                params.append(value)
        return [ExposureRow(*r) for r in self._rows(query + ' ORDER BY experiment, ts, "user"', params)]

    def add_page_sources(self, tx: Transaction, rows: Sequence[PageSourcesRow]) -> int:
        if not rows:
            return 0
        cur = self._tx(tx).cur
        new = 0
        for r in rows:
            cur.execute(
                'INSERT INTO page_sources(request_id, "user", ts, sources) VALUES (%s, %s, %s, %s)'
                " ON CONFLICT DO NOTHING",
                (r.request_id, int(r.user), float(r.ts), join_sources(r.sources)),
            )
            new += max(cur.rowcount, 0)
        return new

    def page_sources(self, request_ids: Collection[str]) -> dict[str, tuple[str, ...]]:
        if not request_ids:
            return {}
        rows = self._rows(
            "SELECT request_id, sources FROM page_sources WHERE request_id = ANY(%s)", (sorted(set(request_ids)),)
        )
        return {r[0]: split_sources(r[1]) for r in rows}

    def last_change(self) -> int:
        return int(self._rows("SELECT COALESCE(MAX(seq), 0) FROM changes")[0][0])

    # ---------------------------------------------------------------- moderation
    def append_moderation(self, tx: Transaction, records: Sequence[ModerationRecord]) -> list[int]:
        check_moderation_kinds(records)
        cur = self._tx(tx).cur
        row = cur.execute("SELECT COALESCE(MAX(seq), 0) FROM moderation").fetchone()
        first = int(row[0]) + 1 if row else 1
        seqs = list(range(first, first + len(records)))
        cur.executemany(
            'INSERT INTO moderation(seq, kind, ts, post, "user", actor, ref, body)'
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
            [(q, r.kind, r.ts, r.post, r.user, r.actor, r.ref, json.dumps(r.body)) for q, r in zip(seqs, records)],
        )
        return seqs

    def moderation_log(
        self, since_seq: int = 0, *, kinds: Collection[str] | None = None, limit: int | None = None
    ) -> list[ModerationRecord]:
        query = 'SELECT seq, kind, ts, post, "user", actor, ref, body FROM moderation WHERE seq > %s'
        params: list[Any] = [since_seq]
        if kinds is not None:
            if not kinds:
                return []
            query += " AND kind = ANY(%s)"
            params.append(list(kinds))
        query += " ORDER BY seq" + (" LIMIT %s" if limit is not None else "")
        if limit is not None:
            params.append(limit)
        return [
            ModerationRecord(r[0], r[1], r[2], r[3], r[4], r[5], r[6], json.loads(r[7]))
            for r in self._rows(query, params)
        ]

    def set_post_scores(self, tx: Transaction, name: str, posts: Sequence[int], scores: Sequence[float]) -> None:
        self._tx(tx).cur.execute(
            "INSERT INTO post_scores(post, name, score)"
            " SELECT p, %s, s FROM unnest(%s::bigint[], %s::real[]) AS t(p, s)"
            " ON CONFLICT (post, name) DO UPDATE SET score = EXCLUDED.score",
            (name, [int(p) for p in posts], [float(x) for x in scores]),
        )

    def post_scores(self, since_idx: int = 0) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        rows = self._rows("SELECT name, post, score FROM post_scores WHERE post > %s ORDER BY name, post", (since_idx,))
        return _scores_by_name(rows)

    # ---------------------------------------------------------------- notifications
    def upsert_notifications(self, tx: Transaction, rows: Sequence[NotificationRow]) -> list[int]:
        cur = self._tx(tx).cur
        ids = []
        for r in rows:
            row = cur.execute(
                'INSERT INTO notifications("user", key, kind, post, actors, sources, created_at, updated_at, read_at,'
                " push_at, rule, worth, pushed_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
                ' ON CONFLICT ("user", key) DO UPDATE SET kind = excluded.kind, post = excluded.post,'
                " actors = excluded.actors, sources = excluded.sources, updated_at = excluded.updated_at,"
                " read_at = excluded.read_at, push_at = excluded.push_at, rule = excluded.rule,"
                " worth = excluded.worth, pushed_at = excluded.pushed_at RETURNING id",
                _notification_params(r),
            ).fetchone()
            ids.append(int(row[0]) if row else 0)
        return ids

    def notifications(
        self, user: int, *, limit: int = 50, keys: Collection[str] | None = None, ids: Collection[int] | None = None
    ) -> list[NotificationRow]:
        cols = 'id, "user", key, kind, post, actors, sources, created_at, updated_at, read_at, push_at, rule, worth'
        cols += ", pushed_at"
        query = f'SELECT {cols} FROM notifications WHERE "user" = %s'
        params: list[Any] = [user]
        if keys is not None:
            query += " AND key = ANY(%s)"
            params.append(list(keys))
        if ids is not None:
            query += " AND id = ANY(%s)"
            params.append([int(i) for i in ids])
        rows = self._rows(query + " ORDER BY updated_at DESC, id DESC LIMIT %s", [*params, limit])
        return [_notification_row(r) for r in rows]

    def unread_notifications(self, user: int) -> int:
        rows = self._rows('SELECT COUNT(*) FROM notifications WHERE "user" = %s AND read_at IS NULL', (user,))
        return int(rows[0][0])

    def mark_notifications_read(self, tx: Transaction, user: int, ids: Sequence[int] | None, at: float) -> int:
        cur = self._tx(tx).cur
        if ids is None:
            cur.execute('UPDATE notifications SET read_at = %s WHERE "user" = %s AND read_at IS NULL', (at, user))
        else:
            cur.execute(
                'UPDATE notifications SET read_at = %s WHERE "user" = %s AND id = ANY(%s) AND read_at IS NULL',
                (at, user, [int(i) for i in ids]),
            )
        return int(cur.rowcount)

    def enqueue_deliveries(self, tx: Transaction, rows: Sequence[Delivery]) -> list[int]:
        cur = self._tx(tx).cur
        out = []
        for r in rows:
            row = cur.execute(
                'INSERT INTO outbox(notification, "user", channel, due_at) VALUES (%s, %s, %s, %s) RETURNING id',
                (r.notification, r.user, r.channel, r.due_at),
            ).fetchone()
            out.append(int(row[0]) if row else 0)
        return out

    def due_deliveries(self, now: float, limit: int = 100) -> list[Delivery]:
        rows = self._rows(
            'SELECT id, notification, "user", channel, due_at, attempts, state FROM outbox'
            " WHERE state = 'pending' AND due_at <= %s ORDER BY due_at, id LIMIT %s",
            (now, limit),
        )
        return [Delivery(int(a), int(b), int(c), d, e, int(f), g) for a, b, c, d, e, f, g in rows]

    def settle_delivery(
        self, tx: Transaction, delivery: int, state: str, attempts: int, due_at: float, at: float | None = None
    ) -> None:
        if state not in DELIVERY_STATES:
            raise ValueError(f"unknown delivery state {state!r}; expected one of {', '.join(DELIVERY_STATES)}")
        cur = self._tx(tx).cur
        cur.execute(
            "UPDATE outbox SET state = %s, attempts = %s, due_at = %s WHERE id = %s",
            (state, attempts, due_at, delivery),
        )
        if state == "sent":
            cur.execute(
                "UPDATE notifications SET pushed_at = %s WHERE id = (SELECT notification FROM outbox WHERE id = %s)",
                (at, delivery),
            )

    def set_push_subscription(self, tx: Transaction, user: int, endpoint: str, p256dh: str, auth: str) -> None:
        self._tx(tx).cur.execute(
            'INSERT INTO push_subscriptions(endpoint, "user", p256dh, auth) VALUES (%s, %s, %s, %s)'
            ' ON CONFLICT (endpoint) DO UPDATE SET "user" = excluded."user", p256dh = excluded.p256dh,'
            " auth = excluded.auth",
            (endpoint, user, p256dh, auth),
        )

    def delete_push_subscription(self, tx: Transaction, endpoint: str) -> int:
        cur = self._tx(tx).cur
        cur.execute("DELETE FROM push_subscriptions WHERE endpoint = %s", (endpoint,))
        return int(cur.rowcount)

    def push_subscriptions(self, user: int) -> list[tuple[str, str, str]]:
        rows = self._rows(
            'SELECT endpoint, p256dh, auth FROM push_subscriptions WHERE "user" = %s ORDER BY endpoint', (user,)
        )
        return [(a, b, c) for a, b, c in rows]

    def changes_since(self, since: int, limit: int = 100_000) -> list[Change]:
        """The change log above ``since`` (``Store.changes_since``). Writers are serialised and each change row
        is numbered inside its transaction, so the numbers follow commit order, as ``seq`` does."""
        rows = self._rows("SELECT seq, kind, idx FROM changes WHERE seq > %s ORDER BY seq LIMIT %s", (since, limit))
        return [Change(int(a), k, int(b)) for a, k, b in rows]


_EVENT_WIRE: tuple[str, ...] = tuple(_WIRE[c.name] for c in EVENT_COLUMNS)
_EDGE_WIRE: tuple[str, ...] = (">i8", ">i8", ">f8")


class _Tx:
    """Context manager: a transaction under the store lock and the schema's writer lock; COMMIT or ROLLBACK."""

    def __init__(self, store: PostgresStore) -> None:
        self.store = store
        self.new_users: list[tuple[str, int]] = []
        self.new_posts: list[tuple[str, int]] = []

    def __enter__(self) -> _Tx:
        self.store._lock.acquire()
        try:
            con = self.store._conn()
            self._ctx = con.transaction()
            self._ctx.__enter__()
            self.cur = con.cursor()
            self.store._lock_writers(self.cur)
        except BaseException as e:
            if hasattr(self, "_ctx"):
                self._ctx.__exit__(type(e), e, e.__traceback__)
            self.store._lock.release()
            raise
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        try:
            self._ctx.__exit__(exc_type, exc, tb)  # COMMIT (raising if it fails) or ROLLBACK
            if exc_type is None:
                self.store._register(self.new_users, self.new_posts)
        finally:
            self.cur.close()
            self.store._lock.release()


def _record_changes(cur: psycopg.Cursor[Any], kind: str, idxs: Iterable[int]) -> None:
    """Note in the change log, inside the writing transaction, that ``kind`` changed for these users or posts
    (numbered in the order given)."""
    values = [int(i) for i in idxs]
    if values:
        cur.execute(
            "INSERT INTO changes(kind, idx)"
            " SELECT %s, i FROM unnest(%s::bigint[]) WITH ORDINALITY AS t(i, o) ORDER BY o",
            (kind, values),
        )


def _window_where(
    t_from: float | None, t_to: float | None, kinds: Collection[EventKind] | None
) -> list[sql.Composable] | None:
    """The conditions ``t_from <= ts < t_to`` and ``kind IN kinds`` (each only when given) of an event read; None when
    ``kinds`` is given but empty (nothing can match)."""
    where: list[sql.Composable] = []
    if t_from is not None:
        where.append(sql.SQL("ts >= {}").format(sql.Literal(float(t_from))))
    if t_to is not None:
        where.append(sql.SQL("ts < {}").format(sql.Literal(float(t_to))))
    if kinds is not None:
        codes = sorted({int(k) for k in kinds})
        if not codes:
            return None
        where.append(sql.SQL("kind IN ({})").format(sql.SQL(", ").join(sql.Literal(c) for c in codes)))
    return where


def _event_batch(rec: np.ndarray) -> EventBatch:
    """An ``EventBatch`` from a record array of ``_NUMERIC_SELECT`` (``_copy_out`` fields ``f0``...)."""
    if len(rec) == 0:
        return EventBatch.empty()
    return EventBatch.from_columns(**{c.name: rec[f"f{j}"].astype(c.dtype) for j, c in enumerate(EVENT_COLUMNS)})


__all__ = [
    "EVENT_COPY_COLUMNS",
    "MIGRATIONS",
    "SCHEMES",
    "PostgresStore",
    "encode_events",
    "is_postgres_url",
    "normalise_url",
    "store_exists",
]
