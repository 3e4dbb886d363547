"""SQLite (WAL) implementation of the ``Store`` protocol (``store/base.py``): the single source of truth.

Durability rule: a write is acknowledged only after its transaction commits with
``synchronous=FULL`` in WAL mode, so it survives ``kill -9`` and power loss. Only this package knows SQL.
"""

from __future__ import annotations

import fcntl
import json
import sqlite3
import threading
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import numpy as np

from glassfeed.domain import EVENT_COLUMNS, OBJECT_COLUMNS, EventBatch, EventKind
from glassfeed.settings import packaged_settings
from glassfeed.store.base import (
    AD_LOG_KINDS,
    DELIVERY_STATES,
    EDGES,
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
    StoredEvent,
    Transaction,
    UserRow,
    UserSummary,
    join_sources,
    split_sources,
)

#: Versioned schema migrations; index i upgrades the database from version i to i + 1.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE users(
        idx INTEGER PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        handle TEXT NOT NULL DEFAULT '',
        created_at REAL NOT NULL,
        community INTEGER,
        interests TEXT NOT NULL DEFAULT '',
        token_hash TEXT
    );
    CREATE TABLE posts(
        idx INTEGER PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        author INTEGER NOT NULL REFERENCES users(idx),
        text TEXT NOT NULL,
        created_at REAL NOT NULL,
        reply_to INTEGER,
        repost_of INTEGER,
        quote_of INTEGER,
        topics TEXT NOT NULL DEFAULT '',
        lang TEXT NOT NULL DEFAULT 'en',
        labels TEXT NOT NULL DEFAULT '',
        quality REAL,
        divisiveness REAL
    );
    CREATE INDEX posts_author ON posts(author, created_at);
    CREATE TABLE follows(src INTEGER NOT NULL, dst INTEGER NOT NULL, created_at REAL NOT NULL,
                         PRIMARY KEY(src, dst)) WITHOUT ROWID;
    CREATE TABLE blocks(src INTEGER NOT NULL, dst INTEGER NOT NULL, created_at REAL NOT NULL,
                        PRIMARY KEY(src, dst)) WITHOUT ROWID;
    CREATE TABLE mutes(src INTEGER NOT NULL, dst INTEGER NOT NULL, created_at REAL NOT NULL,
                       PRIMARY KEY(src, dst)) WITHOUT ROWID;
    CREATE TABLE muted_words(user INTEGER NOT NULL, word TEXT NOT NULL, PRIMARY KEY(user, word)) WITHOUT ROWID;
    CREATE TABLE events(
        seq INTEGER PRIMARY KEY,
        id TEXT,
        kind INTEGER NOT NULL,
        user INTEGER NOT NULL,
        post INTEGER,
        target_user INTEGER,
        ts REAL NOT NULL,
        value REAL,
        surface TEXT,
        position INTEGER,
        request_id TEXT
    );
    CREATE UNIQUE INDEX events_id ON events(id) WHERE id IS NOT NULL;
    CREATE INDEX events_user ON events(user, seq);
    CREATE TABLE user_prefs(user INTEGER PRIMARY KEY, prefs TEXT NOT NULL);
    CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
    """,
    # 2: the change log (``Store.changes_since``): what the event log does not number, for workers to tail
    """
    CREATE TABLE changes(seq INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, idx INTEGER NOT NULL);
    """,
    # 3: the moderation log (append-only; ``Store.append_moderation``) and classifier scores per post
    """
    CREATE TABLE moderation(
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        kind TEXT NOT NULL,
        ts REAL NOT NULL,
        post INTEGER,
        user INTEGER,
        actor TEXT,
        ref INTEGER,
        body TEXT NOT NULL
    );
    CREATE INDEX moderation_kind ON moderation(kind, seq);
    CREATE TABLE post_scores(post INTEGER NOT NULL, name TEXT NOT NULL, score REAL NOT NULL,
                             PRIMARY KEY(post, name)) WITHOUT ROWID;
    """,
    # 4: notifications (each person's inbox, unique per key), the durable outbox of pushes, Web Push subscriptions
    """
    CREATE TABLE notifications(
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        user INTEGER NOT NULL,
        key TEXT NOT NULL,
        kind TEXT NOT NULL,
        post INTEGER,
        actors TEXT NOT NULL,
        sources TEXT NOT NULL,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        read_at REAL,
        push_at REAL,
        rule TEXT NOT NULL,
        worth REAL NOT NULL,
        pushed_at REAL,
        UNIQUE(user, key)
    );
    CREATE INDEX notifications_user ON notifications(user, updated_at);
    CREATE TABLE outbox(
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        notification INTEGER NOT NULL,
        user INTEGER NOT NULL,
        channel TEXT NOT NULL,
        due_at REAL NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        state TEXT NOT NULL DEFAULT 'pending'
    );
    CREATE INDEX outbox_due ON outbox(state, due_at);
    CREATE TABLE push_subscriptions(endpoint TEXT PRIMARY KEY, user INTEGER NOT NULL, p256dh TEXT NOT NULL,
                                    auth TEXT NOT NULL);
    """,
    # 5: advertising: campaigns (JSON bodies, one advertiser each) and the append-only ad log (impressions, clicks,
    # engagements, hides, with the price billed)
    """
    CREATE TABLE ad_campaigns(id TEXT PRIMARY KEY, advertiser TEXT NOT NULL, body TEXT NOT NULL,
                              created_at REAL NOT NULL, updated_at REAL NOT NULL);
    CREATE INDEX ad_campaigns_advertiser ON ad_campaigns(advertiser);
    CREATE TABLE ad_log(
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        kind TEXT NOT NULL,
        ts REAL NOT NULL,
        campaign TEXT NOT NULL,
        user INTEGER,
        post INTEGER,
        price INTEGER NOT NULL,
        request_id TEXT,
        country TEXT,
        ref INTEGER
    );
    CREATE INDEX ad_log_campaign ON ad_log(campaign, ts);
    CREATE INDEX ad_log_user ON ad_log(user, ts);
    """,
    # 6: online experiments (JSON bodies: definition and state) and each person's first exposure to one (unique
    # per experiment and user: the first stays)
    """
    CREATE TABLE experiments(name TEXT PRIMARY KEY, body TEXT NOT NULL, created_at REAL NOT NULL,
                             updated_at REAL NOT NULL);
    CREATE TABLE exposures(experiment TEXT NOT NULL, user INTEGER NOT NULL, arm TEXT NOT NULL, ts REAL NOT NULL,
                           PRIMARY KEY(experiment, user)) WITHOUT ROWID;
    CREATE INDEX exposures_user ON exposures(user);
    """,
    # 7: which candidate source placed each post of a served feed page (one row per page, by request id; creator
    # analytics joins impressions to it by request id and position)
    """
    CREATE TABLE page_sources(request_id TEXT PRIMARY KEY, user INTEGER NOT NULL, ts REAL NOT NULL,
                              sources TEXT NOT NULL) WITHOUT ROWID;
    CREATE INDEX page_sources_user ON page_sources(user);
    CREATE INDEX page_sources_ts ON page_sources(ts);
    """,
]

#: Edge tables that graph events maintain: kind -> (table, add?)
EDGE_EVENTS: dict[EventKind, tuple[str, bool]] = {
    EventKind.FOLLOW: ("follows", True),
    EventKind.UNFOLLOW: ("follows", False),
    EventKind.BLOCK: ("blocks", True),
    EventKind.UNBLOCK: ("blocks", False),
    EventKind.MUTE: ("mutes", True),
    EventKind.UNMUTE: ("mutes", False),
}
#: Per edge table, the kind that adds an edge and the kind that removes one (``EDGE_EVENTS`` by table).
_EDGE_ADD: dict[str, int] = {t: int(k) for k, (t, add) in EDGE_EVENTS.items() if add}
_EDGE_REMOVE: dict[str, int] = {t: int(k) for k, (t, add) in EDGE_EVENTS.items() if not add}

#: SQL table behind each ``Store.count`` entity.
ENTITY_TABLES: dict[str, str] = {
    "users": "users",
    "posts": "posts",
    "events": "events",
    "follows": "follows",
    "blocks": "blocks",
    "mutes": "mutes",
    "muted_words": "muted_words",
    "prefs": "user_prefs",
}
#: The numeric event columns as read back: NULL ints -> -1, NULL value -> NaN (``EventBatch``'s nulls).
_NUMERIC_SELECT = (
    "seq, kind, user, COALESCE(post, -1), COALESCE(target_user, -1), ts, COALESCE(value, 'nan'), COALESCE(position, -1)"
)
#: Most parameters one SQL statement binds (SQLite's default limit is 999).
_MAX_PARAMS = 900


class SQLiteStore:
    """Durable store on one SQLite file (``Store`` protocol). One connection serialised by a lock, WAL mode.

    ``path`` may be ``":memory:"`` for a throwaway store (tests); ``synchronous`` is SQLite's pragma (``FULL``
    is the durability rule above; ``NORMAL``/``OFF`` trade it for speed in scratch stores); ``cache_mib`` is the
    connection's page cache in MiB (default the packaged ``[store] sqlite_cache_mib``)."""

    def __init__(self, path: str | Path, synchronous: str = "FULL", cache_mib: int | None = None) -> None:
        if synchronous.upper() not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise ValueError(f"synchronous must be OFF, NORMAL, FULL or EXTRA, not {synchronous!r}")
        self.path: Path = Path(path)
        if str(path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        # Writers queue here before they take the connection (``_Tx``): this process's threads on ``_writer``,
        # other processes on an exclusive ``flock`` of ``<db>-writer`` (glassfeed's own file beside SQLite's).
        # A blocked writer then holds nothing this handle's readers need, and is woken the moment the lock is
        # free; SQLite's busy handler alone would hold ``_lock`` while it sleeps (up to 100 ms a try) waiting for
        # another process's write lock, stalling every read of this handle (a worker's tail, its pages).
        self._writer = threading.Lock()
        self._writer_file = None if str(path) == ":memory:" else open(f"{path}-writer", "ab")  # noqa: SIM115
        self._con = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._con.execute("PRAGMA journal_mode=WAL")
        self._con.execute(f"PRAGMA synchronous={synchronous}")
        self._con.execute("PRAGMA foreign_keys=OFF")
        self._con.execute("PRAGMA busy_timeout=10000")
        mib = packaged_settings().store.sqlite_cache_mib if cache_mib is None else int(cache_mib)
        self._con.execute(f"PRAGMA cache_size=-{mib * 1024}")  # negative: KiB
        self._migrate()
        self._user_idx: dict[str, int] = dict(self._con.execute("SELECT id, idx FROM users"))
        self._post_idx: dict[str, int] = dict(self._con.execute("SELECT id, idx FROM posts"))

    # ---------------------------------------------------------------- identity and schema
    @property
    def location(self) -> str:
        return str(self.path)

    @property
    def schema_version(self) -> int:
        with self._lock:
            return int(self._con.execute("PRAGMA user_version").fetchone()[0])

    def _migrate(self) -> None:
        with self._lock:
            version = self.schema_version
            for i in range(version, len(MIGRATIONS)):
                self._con.execute("BEGIN IMMEDIATE")
                try:
                    for stmt in _split_sql(MIGRATIONS[i]):
                        self._con.execute(stmt)
                    self._con.execute(f"PRAGMA user_version={i + 1}")
                    self._con.execute("COMMIT")
                except BaseException:
                    self._con.execute("ROLLBACK")
                    raise

    @contextmanager
    def bulk_load(self, rows: int) -> Iterator[None]:
        """Bulk-load mode for ``rows`` new events: when they are at least half as many as the events already
        stored, drop the per-user event index, load, and rebuild it in one sorted pass (much faster than updating
        it row by row); smaller loads keep the index, since rebuilding it over a big table would cost more.
        Each load transaction stays atomic and durable as usual."""
        if rows < 0.5 * self.max_seq():
            yield
            return
        with self._lock:
            self._con.execute("DROP INDEX IF EXISTS events_user")
        try:
            yield
        finally:
            with self._lock:
                self._con.execute("CREATE INDEX IF NOT EXISTS events_user ON events(user, seq)")

    def backup(self, dest: str | Path) -> None:
        """Copy the whole database to ``dest`` consistently (SQLite online backup)."""
        with self._lock:
            target = sqlite3.connect(str(dest))
            try:
                self._con.backup(target)
            finally:
                target.close()

    def close(self) -> None:
        with self._lock:
            self._con.close()
            if self._writer_file is not None:
                self._writer_file.close()

    # ---------------------------------------------------------------- transactions
    def transaction(self) -> _Tx:
        """``with store.transaction() as tx:`` — all-or-nothing, committed durably on exit."""
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
            users = self._con.execute("SELECT id, idx FROM users WHERE idx > ?", (len(self._user_idx),)).fetchall()
            posts = self._con.execute("SELECT id, idx FROM posts WHERE idx > ?", (len(self._post_idx),)).fetchall()
            self._register(users, posts)
        return len(users), len(posts)

    # ---------------------------------------------------------------- writes (call inside transaction)
    def insert_users(self, tx: Transaction, rows: Sequence[UserRow]) -> list[int]:
        """rows: (id, handle, created_at, community, interests_csv, token_hash). Returns new idx values."""
        tx = self._tx(tx)
        cur = tx.cur
        start = self._next_idx(cur, "users")
        cur.executemany(
            "INSERT INTO users(idx, id, handle, created_at, community, interests, token_hash) VALUES (?,?,?,?,?,?,?)",
            [(start + i, *r) for i, r in enumerate(rows)],
        )
        new = list(range(start, start + len(rows)))
        tx.new_users.extend(zip((r[0] for r in rows), new))
        return new

    def insert_posts(self, tx: Transaction, rows: Sequence[PostRow]) -> list[int]:
        """rows: (id, author_idx, text, created_at, reply_to, repost_of, quote_of, topics_csv, lang, labels_csv,
        quality, divisiveness) with reply_to/repost_of/quote_of as idx or None."""
        tx = self._tx(tx)
        cur = tx.cur
        start = self._next_idx(cur, "posts")
        cur.executemany(
            "INSERT INTO posts(idx, id, author, text, created_at, reply_to, repost_of, quote_of, topics, lang,"
            " labels, quality, divisiveness) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
            [(start + i, *r) for i, r in enumerate(rows)],
        )
        new = list(range(start, start + len(rows)))
        tx.new_posts.extend(zip((r[0] for r in rows), new))
        return new

    def append_events(self, tx: Transaction, batch: EventBatch) -> tuple[int, int]:
        """Append resolved events (``Store.append_events``). Numbers are assigned from the high-water mark up;
        only the columns that hold a value somewhere in the batch are bound (NULL is the default), which keeps
        the usual bulk event (kind, user, post, ts) cheap. Events whose client id is already stored, or repeats
        an earlier one of the batch, are skipped and the numbers stay consecutive."""
        cur = self._tx(tx).cur
        n = len(batch)
        first = self._event_seq(cur) + 1
        if n == 0:
            return first, first - 1
        names = ["seq"]
        values: list[Iterable[Any]] = [range(first, first + n)]
        for c in EVENT_COLUMNS[1:]:
            a = getattr(batch, c.name)
            present = ~np.isnan(a) if np.issubdtype(a.dtype, np.floating) else a != c.null
            if c.name in ("kind", "user", "ts") or present.any():
                names.append(c.name)
                values.append(_nullable(a, present))
        for name in OBJECT_COLUMNS:
            col = getattr(batch, name)
            if col is not None:
                names.append(name)
                values.append(col.tolist())
        verb = "INSERT" if batch.id is None else "INSERT OR IGNORE"
        cur.executemany(f"{verb} INTO events({', '.join(names)}) VALUES ({','.join('?' * len(names))})", zip(*values))
        kept = n
        if batch.id is not None and cur.rowcount < n:  # some ids were stored already: close the gaps
            stored = [
                r[0]
                for r in cur.execute(
                    "SELECT seq FROM events WHERE seq BETWEEN ? AND ? ORDER BY seq", (first, first + n - 1)
                )
            ]
            cur.executemany(
                "UPDATE events SET seq = ? WHERE seq = ?",
                [(first + j, s) for j, s in enumerate(stored) if s != first + j],
            )
            kept = len(stored)
            batch = batch.take(np.isin(np.arange(first, first + n), stored))
        last = first + kept - 1
        self._set_event_seq(cur, last)
        self._apply_edges(cur, batch)
        return first, last

    def _apply_edges(self, cur: sqlite3.Cursor, batch: EventBatch) -> None:
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
                cur.executemany(
                    f"INSERT OR REPLACE INTO {table}(src, dst, created_at) VALUES (?, ?, ?)",
                    zip(user[adds].tolist(), target[adds].tolist(), batch.ts[adds].tolist()),
                )
            if len(removes):
                cur.executemany(
                    f"DELETE FROM {table} WHERE src = ? AND dst = ?",
                    zip(user[removes].tolist(), target[removes].tolist()),
                )

    def set_muted_words(self, tx: Transaction, user: int, words: Iterable[str]) -> None:
        cur = self._tx(tx).cur
        cur.execute("DELETE FROM muted_words WHERE user = ?", (user,))
        cur.executemany("INSERT OR IGNORE INTO muted_words(user, word) VALUES (?, ?)", [(user, w) for w in words])
        _record_changes(cur, "muted_words", [user])

    def add_post_label(self, tx: Transaction, posts: Sequence[int], label: str) -> None:
        """Add a moderation label to posts (idempotent)."""
        self._tx(tx).cur.executemany(
            "UPDATE posts SET labels = CASE WHEN labels = '' THEN ? WHEN ',' || labels || ',' LIKE ?"
            " THEN labels ELSE labels || ',' || ? END WHERE idx = ?",
            [(label, f"%,{label},%", label, i) for i in posts],
        )
        _record_changes(self._tx(tx).cur, "labels", posts)

    def set_prefs(self, tx: Transaction, user: int, prefs: dict[str, Any]) -> None:
        cur = self._tx(tx).cur
        cur.execute("INSERT OR REPLACE INTO user_prefs(user, prefs) VALUES (?, ?)", (user, json.dumps(prefs)))
        _record_changes(cur, "prefs", [user])

    def set_token_hash(self, tx: Transaction, user: int, token_hash: str) -> None:
        self._tx(tx).cur.execute("UPDATE users SET token_hash = ? WHERE idx = ?", (token_hash, user))

    def set_meta(self, tx: Transaction, key: str, value: str) -> None:
        if key in RESERVED_META_KEYS:
            raise ValueError(f"meta key {key!r} is kept by the store itself")
        cur = self._tx(tx).cur
        cur.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, value))

    def delete_user_data(self, tx: Transaction, user: int) -> dict[str, int]:
        """Erase a user's events, outgoing edges, muted words and preferences, and anonymise the user row
        (``Store.delete_user_data``). SQLite's ``secure_delete`` is on for these statements, so the freed rows are
        overwritten in the database file rather than left in free pages."""
        cur = self._tx(tx).cur
        counts = {}
        with _secure_delete(cur):
            counts["events"] = cur.execute("DELETE FROM events WHERE user = ?", (user,)).rowcount
            for table in EDGES:
                counts[table] = cur.execute(f"DELETE FROM {table} WHERE src = ?", (user,)).rowcount
            counts["muted_words"] = cur.execute("DELETE FROM muted_words WHERE user = ?", (user,)).rowcount
            counts["prefs"] = cur.execute("DELETE FROM user_prefs WHERE user = ?", (user,)).rowcount
            counts["ad_log"] = cur.execute("UPDATE ad_log SET user = NULL WHERE user = ?", (user,)).rowcount
            counts["exposures"] = cur.execute("DELETE FROM exposures WHERE user = ?", (user,)).rowcount
            counts["page_sources"] = cur.execute("DELETE FROM page_sources WHERE user = ?", (user,)).rowcount
            counts["profile"] = cur.execute(
                "UPDATE users SET handle = id, community = NULL, interests = '' WHERE idx = ?", (user,)
            ).rowcount
        _record_changes(cur, "deleted", [user])
        return counts

    def erase_posts(self, tx: Transaction, author: int) -> list[int]:
        """Tombstone every post by ``author`` (``Store.erase_posts``) and return their idx, ascending."""
        cur = self._tx(tx).cur
        idxs = [r[0] for r in cur.execute("SELECT idx FROM posts WHERE author = ? ORDER BY idx", (author,))]
        with _secure_delete(cur):
            cur.execute(
                "UPDATE posts SET text = '', topics = '', lang = '', labels = ?, reply_to = NULL, repost_of = NULL,"
                " quote_of = NULL, quality = NULL, divisiveness = NULL WHERE author = ?",
                (ERASED_LABEL, author),
            )
        _record_changes(cur, "posts_erased", idxs)
        return idxs

    def prune_posts(self, tx: Transaction, before: float) -> Pruned:
        """Tombstone the posts created before ``before`` and delete the events on them (``Store.prune_posts``), with
        ``secure_delete`` on as for an erasure. Both statements scan their table (no index on ``posts.created_at``
        or ``events.post``): meant for a periodic job, not for every request."""
        cur = self._tx(tx).cur
        old = "SELECT idx FROM posts WHERE created_at < ?"
        idxs = [r[0] for r in cur.execute(old + " AND labels != ? ORDER BY idx", (before, ERASED_LABEL))]
        rows = cur.execute(f"SELECT kind, COUNT(*) FROM events WHERE post IN ({old}) GROUP BY kind", (before,))
        events = {int(k): int(n) for k, n in rows}
        with _secure_delete(cur):
            if events:
                cur.execute(f"DELETE FROM events WHERE post IN ({old})", (before,))
            cur.execute("DELETE FROM page_sources WHERE ts < ?", (before,))
            if idxs:
                cur.execute(
                    "UPDATE posts SET text = '', topics = '', lang = '', labels = ?, reply_to = NULL,"
                    " repost_of = NULL, quote_of = NULL, quality = NULL, divisiveness = NULL"
                    " WHERE created_at < ? AND labels != ?",
                    (ERASED_LABEL, before, ERASED_LABEL),
                )
        _record_changes(cur, "posts_erased", idxs)
        return Pruned(idxs, events)

    @staticmethod
    def _event_seq(cur: sqlite3.Cursor) -> int:
        """The high-water mark of event sequence numbers (never reused, even after deletions)."""
        row = cur.execute("SELECT value FROM meta WHERE key = 'event_seq'").fetchone()
        if row is None:  # a store written before the high-water mark existed
            row = cur.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()
        return int(row[0])

    @staticmethod
    def _set_event_seq(cur: sqlite3.Cursor, seq: int) -> None:
        cur.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('event_seq', ?)", (str(seq),))

    @staticmethod
    def _next_idx(cur: sqlite3.Cursor, table: str, col: str = "idx") -> int:
        return int(cur.execute(f"SELECT COALESCE(MAX({col}), 0) + 1 FROM {table}").fetchone()[0])

    def _register(self, users: list[tuple[str, int]], posts: list[tuple[str, int]]) -> None:
        self._user_idx.update(users)
        self._post_idx.update(posts)

    # ---------------------------------------------------------------- reads
    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one read statement under the lock (private: SQL stays inside this module)."""
        with self._lock:
            return self._con.execute(sql, params).fetchall()

    def _in_chunks(self, sql: str, values: Sequence[Any]) -> Iterator[tuple[Any, ...]]:
        """Rows of ``sql`` (with one ``{marks}`` placeholder list) for ``values`` in parameter-limit chunks."""
        values = list(values)
        for i in range(0, len(values), _MAX_PARAMS):
            part = values[i : i + _MAX_PARAMS]
            yield from self._rows(sql.format(marks=",".join("?" * len(part))), part)

    def count(self, entity: Entity) -> int:
        table = ENTITY_TABLES.get(entity)
        if table is None:
            raise ValueError(f"cannot count {entity!r}; expected one of {', '.join(ENTITY_TABLES)}")
        return int(self._rows(f"SELECT COUNT(*) FROM {table}")[0][0])

    def max_seq(self) -> int:
        with self._lock:
            return self._event_seq(self._con.cursor())

    def count_events(self, kind: EventKind | None = None) -> int:
        if kind is None:
            return int(self._rows("SELECT COUNT(*) FROM events")[0][0])
        return int(self._rows("SELECT COUNT(*) FROM events WHERE kind = ?", (int(kind),))[0][0])

    def load_users(self, since_idx: int = 0) -> dict[str, Any]:
        rows = self._rows(
            "SELECT idx, id, handle, created_at, community, interests FROM users WHERE idx > ? ORDER BY idx",
            (since_idx,),
        )
        return {
            "idx": np.array([r[0] for r in rows], dtype=np.int64),
            "id": [r[1] for r in rows],
            "handle": [r[2] for r in rows],
            "created_at": np.array([r[3] for r in rows], dtype=np.float64),
            # -1 for none and for any value that is not an int32 (ingest refuses them; a row may still hold one)
            "community": np.array(
                [r[4] if type(r[4]) is int and -(2**31) <= r[4] < 2**31 else -1 for r in rows], dtype=np.int32
            ),
            "interests": [r[5].split(",") if r[5] else [] for r in rows],
        }

    def load_posts(self, since_idx: int = 0) -> dict[str, Any]:
        rows = self._rows(
            "SELECT idx, id, author, text, created_at, reply_to, repost_of, quote_of, topics, lang, labels, quality,"
            " divisiveness FROM posts WHERE idx > ? ORDER BY idx",
            (since_idx,),
        )
        f = np.float64
        return {
            "idx": np.array([r[0] for r in rows], dtype=np.int64),
            "id": [r[1] for r in rows],
            "author": np.array([r[2] for r in rows], dtype=np.int64),
            "text": [r[3] for r in rows],
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
        rows = self._rows(f"SELECT src, dst, created_at FROM {edge}")
        if not rows:
            return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
        a = np.array(rows, dtype=np.float64)
        return a[:, 0].astype(np.int64), a[:, 1].astype(np.int64), a[:, 2]

    def load_muted_words(self) -> dict[int, list[str]]:
        out: dict[int, list[str]] = {}
        for u, w in self._rows("SELECT user, word FROM muted_words"):
            out.setdefault(u, []).append(w)
        return out

    def load_prefs(self) -> dict[int, dict[str, Any]]:
        return {u: json.loads(p) for u, p in self._rows("SELECT user, prefs FROM user_prefs")}

    def post_labels(self, posts: Sequence[int]) -> dict[int, list[str]]:
        return {
            idx: labels.split(",") if labels else []
            for idx, labels in self._in_chunks("SELECT idx, labels FROM posts WHERE idx IN ({marks})", posts)
        }

    def token_hash(self, user: int) -> str | None:
        rows = self._rows("SELECT token_hash FROM users WHERE idx = ?", (user,))
        return rows[0][0] if rows else None

    def user_summary(self, user: int) -> UserSummary | None:
        rows = self._rows(
            "SELECT id, handle, created_at, community, interests,"
            " (SELECT COUNT(*) FROM events WHERE user = u.idx), (SELECT COUNT(*) FROM follows WHERE src = u.idx),"
            " (SELECT COUNT(*) FROM follows WHERE dst = u.idx), (SELECT COUNT(*) FROM posts WHERE author = u.idx)"
            " FROM users u WHERE idx = ?",
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
        rows = self._rows("SELECT value FROM meta WHERE key = ?", (key,))
        return rows[0][0] if rows else None

    def iter_events(
        self, since_seq: int = 0, until_seq: int | None = None, *, chunk: int = 500_000, object_columns: bool = False
    ) -> Iterator[EventBatch]:
        """Stream events after ``since_seq`` (up to ``until_seq``) as ``EventBatch`` chunks in ``seq`` order."""
        last = since_seq
        extra = "".join(f", {name}" for name in OBJECT_COLUMNS) if object_columns else ""
        sql = f"SELECT {_NUMERIC_SELECT}{extra} FROM events WHERE seq > ?"
        if until_seq is not None:
            sql += " AND seq <= ?"
        sql += " ORDER BY seq LIMIT ?"
        while True:
            params: list[Any] = [last] + ([] if until_seq is None else [until_seq]) + [chunk]
            rows = self._rows(sql, params)
            if not rows:
                return
            batch = _event_batch(rows, object_columns)
            yield batch
            last = int(batch.seq[-1])
            if len(rows) < chunk:
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
        window = _window_where(t_from, t_to, kinds)
        if window is None:
            return EventBatch.empty()
        where, params = window
        extra = "".join(f", {name}" for name in OBJECT_COLUMNS) if object_columns else ""
        rows = self._rows(
            f"SELECT {_NUMERIC_SELECT}{extra} FROM events"
            + (" WHERE " + " AND ".join(where) if where else "")
            + " ORDER BY ts, seq",
            params,
        )
        return _event_batch(rows, object_columns)

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
            f"{col} IN (SELECT value FROM json_each(?))"
            for col, ids in (("post", posts), ("target_user", target_users))
            if len(ids)
        ]
        if not about:
            return EventBatch.empty()
        params: list[Any] = [json.dumps([int(i) for i in ids]) for ids in (posts, target_users) if len(ids)]
        window = _window_where(t_from, None, kinds)
        if window is None:
            return EventBatch.empty()
        where = ["(" + " OR ".join(about) + ")", *window[0]]
        params += window[1]
        extra = "".join(f", {name}" for name in OBJECT_COLUMNS)
        rows = self._rows(
            f"SELECT {_NUMERIC_SELECT}{extra} FROM events WHERE " + " AND ".join(where) + " ORDER BY ts, seq", params
        )
        return _event_batch(rows, True)

    def user_events(self, user: int, limit: int = 1000) -> list[StoredEvent]:
        return [
            StoredEvent(*r)
            for r in self._rows(
                "SELECT seq, id, kind, post, target_user, ts, value, surface, position, request_id FROM events"
                " WHERE user = ? ORDER BY seq DESC LIMIT ?",
                (user, limit),
            )
        ]

    def event_ids_exist(self, ids: Collection[str]) -> set[str]:
        return {r[0] for r in self._in_chunks("SELECT id FROM events WHERE id IN ({marks})", list(ids))}

    # ------------------------------------------------------------------ ads
    def upsert_ad_campaign(self, tx: Transaction, row: AdCampaignRow) -> None:
        self._tx(tx).cur.execute(
            "INSERT INTO ad_campaigns(id, advertiser, body, created_at, updated_at) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT(id) DO UPDATE SET body = excluded.body, updated_at = excluded.updated_at",
            (row.id, row.advertiser, json.dumps(row.body), row.created_at, row.updated_at),
        )

    def ad_campaigns(self, advertiser: str | None = None) -> list[AdCampaignRow]:
        query = "SELECT id, advertiser, body, created_at, updated_at FROM ad_campaigns"
        params: list[Any] = []
        if advertiser is not None:
            query += " WHERE advertiser = ?"
            params.append(advertiser)
        rows = self._rows(query + " ORDER BY id", params)
        return [AdCampaignRow(r[0], r[1], json.loads(r[2]), r[3], r[4]) for r in rows]

    def append_ad_log(self, tx: Transaction, rows: Sequence[AdLogRow]) -> list[int]:
        check_ad_log_kinds(rows)
        cur = self._tx(tx).cur
        seqs = []
        for r in rows:
            cur.execute(
                "INSERT INTO ad_log(kind, ts, campaign, user, post, price, request_id, country, ref)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (r.kind, r.ts, r.campaign, r.user, r.post, int(r.price), r.request_id, r.country, r.ref),
            )
            seqs.append(int(cur.lastrowid or 0))
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
        query = "SELECT seq, kind, ts, campaign, user, post, price, request_id, country, ref FROM ad_log WHERE seq > ?"
        params: list[Any] = [since_seq]
        for col, values in (("campaign", campaigns), ("kind", kinds)):
            if values is not None:
                if not values:
                    return []
                query += f" AND {col} IN ({', '.join(['?'] * len(values))})"
                params += list(values)
        for cond, value in (("ts >= ?", t_from), ("ts < ?", t_to), ("user = ?", user)):
            if value is not None:
                query += " AND " + cond
                params.append(value)
        query += " ORDER BY seq" + (" LIMIT ?" if limit is not None else "")
        if limit is not None:
            params.append(limit)
        return [AdLogRow(*r) for r in self._rows(query, params)]

    def ad_spend(self, since: float) -> dict[str, tuple[int, int]]:
        rows = self._rows(
            "SELECT campaign, SUM(CASE WHEN ts >= ? THEN price ELSE 0 END), SUM(price) FROM ad_log"
            " WHERE price > 0 GROUP BY campaign",
            (since,),
        )
        return {r[0]: (int(r[1]), int(r[2])) for r in rows}

    # ------------------------------------------------------------------ experiments
    def upsert_experiment(self, tx: Transaction, row: ExperimentRow) -> None:
        self._tx(tx).cur.execute(
            "INSERT INTO experiments(name, body, created_at, updated_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT(name) DO UPDATE SET body = excluded.body, updated_at = excluded.updated_at",
            (row.name, json.dumps(row.body), row.created_at, row.updated_at),
        )

    def experiments(self) -> list[ExperimentRow]:
        rows = self._rows("SELECT name, body, created_at, updated_at FROM experiments ORDER BY name")
        return [ExperimentRow(r[0], json.loads(r[1]), r[2], r[3]) for r in rows]

    def add_exposures(self, tx: Transaction, rows: Sequence[ExposureRow]) -> int:
        cur = self._tx(tx).cur
        new = 0
        for r in rows:
            cur.execute(
                "INSERT INTO exposures(experiment, user, arm, ts) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (r.experiment, int(r.user), r.arm, float(r.ts)),
            )
            new += max(cur.rowcount, 0)
        return new

    def exposures(self, experiment: str | None = None, *, user: int | None = None) -> list[ExposureRow]:
        query, params = "SELECT experiment, user, arm, ts FROM exposures WHERE 1 = 1", list[Any]()
        for cond, value in (("experiment = ?", experiment), ("user = ?", user)):
            if value is not None:
                query += " AND " + cond
                params.append(value)
        return [ExposureRow(*r) for r in self._rows(query + " ORDER BY experiment, ts, user", params)]

    def add_page_sources(self, tx: Transaction, rows: Sequence[PageSourcesRow]) -> int:
        cur = self._tx(tx).cur
        new = 0
        for r in rows:
            cur.execute(
                "INSERT INTO page_sources(request_id, user, ts, sources) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (r.request_id, int(r.user), float(r.ts), join_sources(r.sources)),
            )
            new += max(cur.rowcount, 0)
        return new

    def page_sources(self, request_ids: Collection[str]) -> dict[str, tuple[str, ...]]:
        if not request_ids:
            return {}
        rows = self._rows(
            "SELECT request_id, sources FROM page_sources WHERE request_id IN (SELECT value FROM json_each(?))",
            (json.dumps(sorted({str(r) for r in request_ids})),),
        )
        return {r[0]: split_sources(r[1]) for r in rows}

    def last_change(self) -> int:
        return int(self._rows("SELECT COALESCE(MAX(seq), 0) FROM changes")[0][0])

    def changes_since(self, since: int, limit: int = 100_000) -> list[Change]:
        rows = self._rows("SELECT seq, kind, idx FROM changes WHERE seq > ? ORDER BY seq LIMIT ?", (since, limit))
        return [Change(*r) for r in rows]

    # ------------------------------------------------------------------ moderation
    def append_moderation(self, tx: Transaction, records: Sequence[ModerationRecord]) -> list[int]:
        check_moderation_kinds(records)
        cur = self._tx(tx).cur
        seqs = []
        for r in records:
            cur.execute(
                "INSERT INTO moderation(kind, ts, post, user, actor, ref, body) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (r.kind, r.ts, r.post, r.user, r.actor, r.ref, json.dumps(r.body)),
            )
            seqs.append(int(cur.lastrowid or 0))
        return seqs

    def moderation_log(
        self, since_seq: int = 0, *, kinds: Collection[str] | None = None, limit: int | None = None
    ) -> list[ModerationRecord]:
        query = "SELECT seq, kind, ts, post, user, actor, ref, body FROM moderation WHERE seq > ?"
        params: list[Any] = [since_seq]
        if kinds is not None:
            if not kinds:
                return []
            query += f" AND kind IN ({', '.join('?' * len(kinds))})"
            params += list(kinds)
        query += " ORDER BY seq" + (" LIMIT ?" if limit is not None else "")
        if limit is not None:
            params.append(limit)
        return [
            ModerationRecord(r[0], r[1], r[2], r[3], r[4], r[5], r[6], json.loads(r[7]))
            for r in self._rows(query, params)
        ]

    def set_post_scores(self, tx: Transaction, name: str, posts: Sequence[int], scores: Sequence[float]) -> None:
        self._tx(tx).cur.executemany(
            "INSERT OR REPLACE INTO post_scores(post, name, score) VALUES (?, ?, ?)",
            [(int(p), name, float(x)) for p, x in zip(posts, scores)],
        )

    def post_scores(self, since_idx: int = 0) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        rows = self._rows("SELECT name, post, score FROM post_scores WHERE post > ? ORDER BY name, post", (since_idx,))
        return _scores_by_name(rows)

    # ------------------------------------------------------------------ notifications
    def upsert_notifications(self, tx: Transaction, rows: Sequence[NotificationRow]) -> list[int]:
        cur = self._tx(tx).cur
        ids = []
        for r in rows:
            cur.execute(
                "INSERT INTO notifications(user, key, kind, post, actors, sources, created_at, updated_at, read_at,"
                " push_at, rule, worth, pushed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT(user, key) DO UPDATE SET kind = excluded.kind, post = excluded.post,"
                " actors = excluded.actors, sources = excluded.sources, updated_at = excluded.updated_at,"
                " read_at = excluded.read_at, push_at = excluded.push_at, rule = excluded.rule,"
                " worth = excluded.worth, pushed_at = excluded.pushed_at RETURNING id",
                _notification_params(r),
            )
            ids.append(int(cur.fetchone()[0]))
        return ids

    def notifications(
        self, user: int, *, limit: int = 50, keys: Collection[str] | None = None, ids: Collection[int] | None = None
    ) -> list[NotificationRow]:
        query = f"SELECT {_NOTIFICATION_COLUMNS} FROM notifications WHERE user = ?"
        params: list[Any] = [user]
        for col, vals in (("key", keys), ("id", ids)):
            if vals is not None:
                if not vals:
                    return []
                query += f" AND {col} IN ({', '.join('?' * len(vals))})"
                params += list(vals)
        rows = self._rows(query + " ORDER BY updated_at DESC, id DESC LIMIT ?", [*params, limit])
        return [_notification_row(r) for r in rows]

    def unread_notifications(self, user: int) -> int:
        return int(self._rows("SELECT COUNT(*) FROM notifications WHERE user = ? AND read_at IS NULL", (user,))[0][0])

    def mark_notifications_read(self, tx: Transaction, user: int, ids: Sequence[int] | None, at: float) -> int:
        cur = self._tx(tx).cur
        if ids is None:
            return cur.execute(
                "UPDATE notifications SET read_at = ? WHERE user = ? AND read_at IS NULL", (at, user)
            ).rowcount
        n = 0
        for i in ids:
            n += cur.execute(
                "UPDATE notifications SET read_at = ? WHERE user = ? AND id = ? AND read_at IS NULL", (at, user, i)
            ).rowcount
        return n

    def enqueue_deliveries(self, tx: Transaction, rows: Sequence[Delivery]) -> list[int]:
        cur = self._tx(tx).cur
        out = []
        for r in rows:
            cur.execute(
                "INSERT INTO outbox(notification, user, channel, due_at) VALUES (?, ?, ?, ?)",
                (r.notification, r.user, r.channel, r.due_at),
            )
            out.append(int(cur.lastrowid or 0))
        return out

    def due_deliveries(self, now: float, limit: int = 100) -> list[Delivery]:
        rows = self._rows(
            "SELECT id, notification, user, channel, due_at, attempts, state FROM outbox"
            " WHERE state = 'pending' AND due_at <= ? ORDER BY due_at, id LIMIT ?",
            (now, limit),
        )
        return [Delivery(*r) for r in rows]

    def settle_delivery(
        self, tx: Transaction, delivery: int, state: str, attempts: int, due_at: float, at: float | None = None
    ) -> None:
        if state not in DELIVERY_STATES:
            raise ValueError(f"unknown delivery state {state!r}; expected one of {', '.join(DELIVERY_STATES)}")
        cur = self._tx(tx).cur
        cur.execute(
            "UPDATE outbox SET state = ?, attempts = ?, due_at = ? WHERE id = ?", (state, attempts, due_at, delivery)
        )
        if state == "sent":
            cur.execute(
                "UPDATE notifications SET pushed_at = ? WHERE id = (SELECT notification FROM outbox WHERE id = ?)",
                (at, delivery),
            )

    def set_push_subscription(self, tx: Transaction, user: int, endpoint: str, p256dh: str, auth: str) -> None:
        self._tx(tx).cur.execute(
            "INSERT OR REPLACE INTO push_subscriptions(endpoint, user, p256dh, auth) VALUES (?, ?, ?, ?)",
            (endpoint, user, p256dh, auth),
        )

    def delete_push_subscription(self, tx: Transaction, endpoint: str) -> int:
        return self._tx(tx).cur.execute("DELETE FROM push_subscriptions WHERE endpoint = ?", (endpoint,)).rowcount

    def push_subscriptions(self, user: int) -> list[tuple[str, str, str]]:
        rows = self._rows(
            "SELECT endpoint, p256dh, auth FROM push_subscriptions WHERE user = ? ORDER BY endpoint", (user,)
        )
        return [(a, b, c) for a, b, c in rows]


#: The notifications table's columns in ``NotificationRow`` order.
_NOTIFICATION_COLUMNS = (
    "id, user, key, kind, post, actors, sources, created_at, updated_at, read_at, push_at, rule, worth, pushed_at"
)


def _notification_params(r: NotificationRow) -> tuple[Any, ...]:
    """A row's insert parameters (user ... pushed_at; the lists as JSON)."""
    return (
        r.user, r.key, r.kind, r.post, json.dumps(r.actors), json.dumps(r.sources), r.created_at, r.updated_at,
        r.read_at, r.push_at, r.rule, r.worth, r.pushed_at,
    )  # fmt: skip


def _notification_row(r: Sequence[Any]) -> NotificationRow:
    return NotificationRow(
        int(r[0]), int(r[1]), r[2], r[3], r[4], json.loads(r[5]), json.loads(r[6]), r[7], r[8], r[9], r[10], r[11],
        r[12], r[13],
    )  # fmt: skip


def check_ad_log_kinds(rows: Sequence[AdLogRow]) -> None:
    for r in rows:
        if r.kind not in AD_LOG_KINDS:
            raise ValueError(f"unknown ad log kind {r.kind!r}; expected one of {', '.join(AD_LOG_KINDS)}")


def check_moderation_kinds(records: Sequence[ModerationRecord]) -> None:
    """``ValueError`` naming the first record whose kind is not one of ``MODERATION_KINDS`` (both backends)."""
    for r in records:
        if r.kind not in MODERATION_KINDS:
            raise ValueError(
                f"unknown moderation record kind {r.kind!r}; expected one of {', '.join(MODERATION_KINDS)}"
            )


def _scores_by_name(rows: Sequence[Sequence[Any]]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(name, post, score) rows ordered by name then post -> name -> (posts int64, scores float32)."""
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    if not rows:
        return out
    names = [r[0] for r in rows]
    posts = np.fromiter((r[1] for r in rows), np.int64, len(rows))
    scores = np.fromiter((r[2] for r in rows), np.float32, len(rows))
    start = 0
    for i in range(1, len(rows) + 1):
        if i == len(rows) or names[i] != names[start]:
            out[names[start]] = (posts[start:i], scores[start:i])
            start = i
    return out


class _Tx:
    """Context manager: the writer locks (this process's, then the file lock other processes share; see
    ``SQLiteStore.__init__``), then BEGIN IMMEDIATE under the store lock; COMMIT (durable) or ROLLBACK. Every lock
    is released however the transaction ends, a failed BEGIN included."""

    def __init__(self, store: SQLiteStore) -> None:
        self.store = store
        self.new_users: list[tuple[str, int]] = []
        self.new_posts: list[tuple[str, int]] = []

    def __enter__(self) -> _Tx:
        s = self.store
        s._writer.acquire()
        held = 0  # 1: the file lock, 2: and the store lock
        try:
            if s._writer_file is not None:
                fcntl.flock(s._writer_file.fileno(), fcntl.LOCK_EX)
            held = 1
            s._lock.acquire()
            held = 2
            self.cur = s._con.cursor()
            self.cur.execute("BEGIN IMMEDIATE")
        except BaseException:
            self._release(held)
            raise
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        try:
            if exc_type is None:
                try:
                    self.cur.execute("COMMIT")
                except BaseException:  # not committed (e.g. disk full): leave no transaction open behind
                    with suppress(sqlite3.Error):
                        self.cur.execute("ROLLBACK")
                    raise
                self.store._register(self.new_users, self.new_posts)
            else:
                self.cur.execute("ROLLBACK")
        finally:
            self._release(2)

    def _release(self, held: int) -> None:
        s = self.store
        if held >= 2:
            s._lock.release()
        if held >= 1 and s._writer_file is not None:
            fcntl.flock(s._writer_file.fileno(), fcntl.LOCK_UN)
        s._writer.release()


@contextmanager
def _secure_delete(cur: sqlite3.Cursor) -> Iterator[None]:
    """SQLite's ``secure_delete`` on for the statements inside (content they delete or replace is overwritten with
    zeros in the file instead of lingering in free space), then back to what it was."""
    was = int(cur.execute("PRAGMA secure_delete").fetchone()[0])
    cur.execute("PRAGMA secure_delete=ON")
    try:
        yield
    finally:
        cur.execute(f"PRAGMA secure_delete={was}")


def _window_where(
    t_from: float | None, t_to: float | None, kinds: Collection[EventKind] | None
) -> tuple[list[str], list[Any]] | None:
    """The conditions ``t_from <= ts < t_to`` and ``kind IN kinds`` (each only when given) of an event read, with
    their parameters; None when ``kinds`` is given but empty (nothing can match)."""
    where: list[str] = []
    params: list[Any] = []
    if t_from is not None:
        where.append("ts >= ?")
        params.append(float(t_from))
    if t_to is not None:
        where.append("ts < ?")
        params.append(float(t_to))
    if kinds is not None:
        codes = sorted({int(k) for k in kinds})
        if not codes:
            return None
        where.append(f"kind IN ({','.join('?' * len(codes))})")
        params.extend(codes)
    return where, params


def _event_batch(rows: list[tuple[Any, ...]], object_columns: bool = False) -> EventBatch:
    """An ``EventBatch`` from rows of ``_NUMERIC_SELECT`` (then the ``OBJECT_COLUMNS`` with ``object_columns``)."""
    if not rows:
        return EventBatch.empty()
    width = len(EVENT_COLUMNS)
    if object_columns:
        table = np.array(rows, dtype=object)
        a = table[:, :width].astype(np.float64)
        objects = {name: table[:, width + j] for j, name in enumerate(OBJECT_COLUMNS)}
    else:
        a = np.array(rows, dtype=np.float64)
        objects = {}
    cols = {c.name: a[:, j] for j, c in enumerate(EVENT_COLUMNS)}
    return EventBatch.from_columns(**cols, **objects)


def _record_changes(cur: sqlite3.Cursor, kind: str, idxs: Iterable[int]) -> None:
    """Note in the change log, inside the writing transaction, that ``kind`` changed for these users or posts."""
    cur.executemany("INSERT INTO changes(kind, idx) VALUES (?, ?)", [(kind, int(i)) for i in idxs])


def _split_sql(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]


def _nullable(a: np.ndarray, present: np.ndarray) -> list[Any]:
    """``a`` as a list with ``None`` where not ``present`` (SQL NULL)."""
    lst = a.tolist()
    if present.all():
        return lst
    return [v if p else None for v, p in zip(lst, present.tolist())]
