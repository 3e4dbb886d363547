"""SQLite (WAL) implementation of the durable store: the single source of truth.

Durability rule: a write is acknowledged only after its transaction commits with
``synchronous=FULL`` in WAL mode, so it survives ``kill -9`` and power loss. Only this package knows SQL.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from glassfeed.domain import EventKind

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

EVENT_COLUMNS = ("seq", "kind", "user", "post", "target_user", "ts", "value", "position")


class SQLiteStore:
    """Durable store on one SQLite file. One writer connection (serialised by a lock), WAL for readers."""

    def __init__(self, path: str | Path, synchronous: str = "FULL") -> None:
        self.path = Path(path)
        if str(path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._con = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._con.execute("PRAGMA journal_mode=WAL")
        self._con.execute(f"PRAGMA synchronous={synchronous}")
        self._con.execute("PRAGMA foreign_keys=OFF")
        self._con.execute("PRAGMA busy_timeout=10000")
        self._con.execute("PRAGMA cache_size=-65536")
        self._migrate()
        self._user_idx: dict[str, int] = dict(self._con.execute("SELECT id, idx FROM users"))
        self._post_idx: dict[str, int] = dict(self._con.execute("SELECT id, idx FROM posts"))

    # ---------------------------------------------------------------- schema
    @property
    def schema_version(self) -> int:
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

    # ---------------------------------------------------------------- transactions
    def transaction(self) -> "_Tx":
        """``with store.transaction() as cur:`` — all-or-nothing, committed durably on exit."""
        return _Tx(self)

    # ---------------------------------------------------------------- id maps
    def user_idx(self, user_id: str) -> int | None:
        return self._user_idx.get(user_id)

    def post_idx(self, post_id: str) -> int | None:
        return self._post_idx.get(post_id)

    def user_ids(self) -> dict[str, int]:
        return self._user_idx

    def post_ids(self) -> dict[str, int]:
        return self._post_idx

    # ---------------------------------------------------------------- writes (call inside transaction)
    def insert_users(self, tx: "_Tx", rows: Sequence[tuple[Any, ...]]) -> list[int]:
        """rows: (id, handle, created_at, community, interests_csv, token_hash). Returns new idx values."""
        cur = tx.cur
        start = self._next_idx(cur, "users")
        cur.executemany(
            "INSERT INTO users(idx, id, handle, created_at, community, interests, token_hash) VALUES (?,?,?,?,?,?,?)",
            [(start + i, *r) for i, r in enumerate(rows)],
        )
        new = list(range(start, start + len(rows)))
        tx.new_users.extend(zip((r[0] for r in rows), new))
        return new

    def insert_posts(self, tx: "_Tx", rows: Sequence[tuple[Any, ...]]) -> list[int]:
        """rows: (id, author_idx, text, created_at, reply_to, repost_of, quote_of, topics_csv, lang, labels_csv,
        quality, divisiveness) with reply_to/repost_of/quote_of as idx or None."""
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

    def append_events(self, tx: "_Tx", rows: Sequence[tuple[Any, ...]]) -> tuple[int, int]:
        """Append events; rows: (id|None, kind, user, post, target_user, ts, value, surface, position, request_id).

        Events whose id already exists are ignored (idempotency). Returns (first_seq, last_seq) of this append.
        Graph events also update the edge tables in the same transaction.
        """
        cur = tx.cur
        first = self._event_seq(cur) + 1
        cur.executemany(
            "INSERT OR IGNORE INTO events(seq, id, kind, user, post, target_user, ts, value, surface, position,"
            " request_id) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            [(first + i, *r) for i, r in enumerate(rows)],
        )
        last = first + len(rows) - 1
        self._set_event_seq(cur, last)
        self._apply_edges(cur, first, last)
        return first, last

    def append_event_columns(self, tx: "_Tx", cols: dict[str, np.ndarray],
                             request_id: Sequence[str | None] | None = None) -> tuple[int, int]:
        """Fast columnar append for already-resolved, server-id events (generator, simulator, importers)."""
        cur = tx.cur
        n = len(cols["kind"])
        first = self._event_seq(cur) + 1
        # bind only the columns that hold a value somewhere in this batch (NULL is the default), which makes
        # executemany measurably cheaper for the usual bulk event (kind, user, post, ts)
        names = ["seq", "kind", "user", "ts"]
        values: list[Iterable[Any]] = [range(first, first + n), cols["kind"].tolist(), cols["user"].tolist(),
                                       cols["ts"].tolist()]
        for name, null in (("post", -1), ("target_user", -1), ("position", -1)):
            a = cols.get(name)
            if a is not None and (np.asarray(a) != null).any():
                names.append(name)
                values.append(_nullable(np.asarray(a), null))
        val = cols.get("value")
        if val is not None and not np.isnan(val).all():
            names.append("value")
            values.append(_nullable_float(np.asarray(val, np.float64)))
        for name, col in (("surface", cols.get("surface")), ("request_id", request_id)):
            if col is not None and any(v is not None for v in col):
                names.append(name)
                values.append(list(col))
        cur.executemany(f"INSERT INTO events({', '.join(names)}) VALUES ({','.join('?' * len(names))})",
                        zip(*values))
        last = first + n - 1
        self._set_event_seq(cur, last)
        self._apply_edges(cur, first, last)
        return first, last

    def _apply_edges(self, cur: sqlite3.Cursor, first: int, last: int) -> None:
        if last < first:
            return
        for kind, (table, add) in EDGE_EVENTS.items():
            if add:
                cur.execute(
                    f"INSERT OR REPLACE INTO {table}(src, dst, created_at) SELECT user, target_user, ts FROM events"
                    " WHERE seq BETWEEN ? AND ? AND kind = ? AND target_user IS NOT NULL ORDER BY seq",
                    (first, last, int(kind)),
                )
            else:
                cur.execute(
                    f"DELETE FROM {table} WHERE (src, dst) IN (SELECT user, target_user FROM events"
                    " WHERE seq BETWEEN ? AND ? AND kind = ?)",
                    (first, last, int(kind)),
                )

    def set_muted_words(self, tx: "_Tx", user: int, words: Iterable[str]) -> None:
        cur = tx.cur
        cur.execute("DELETE FROM muted_words WHERE user = ?", (user,))
        cur.executemany("INSERT OR IGNORE INTO muted_words(user, word) VALUES (?, ?)", [(user, w) for w in words])

    def add_post_label(self, tx: "_Tx", posts: Sequence[int], label: str) -> None:
        """Add a moderation label to posts (idempotent)."""
        tx.cur.executemany(
            "UPDATE posts SET labels = CASE WHEN labels = '' THEN ? WHEN ',' || labels || ',' LIKE ?"
            " THEN labels ELSE labels || ',' || ? END WHERE idx = ?",
            [(label, f"%,{label},%", label, i) for i in posts])

    def post_labels(self, posts: Sequence[int]) -> dict[int, list[str]]:
        out: dict[int, list[str]] = {}
        for i in range(0, len(posts), 900):
            part = list(posts[i:i + 900])
            marks = ",".join("?" * len(part))
            for idx, labels in self.query(f"SELECT idx, labels FROM posts WHERE idx IN ({marks})", part):
                out[idx] = labels.split(",") if labels else []
        return out

    def set_prefs(self, tx: "_Tx", user: int, prefs: dict[str, Any]) -> None:
        cur = tx.cur
        cur.execute("INSERT OR REPLACE INTO user_prefs(user, prefs) VALUES (?, ?)", (user, json.dumps(prefs)))

    def set_meta(self, tx: "_Tx", key: str, value: str) -> None:
        cur = tx.cur
        cur.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, value))

    def delete_user_data(self, tx: "_Tx", user: int) -> dict[str, int]:
        """Erase a user's events, edges, muted words and preferences (data-rights deletion)."""
        cur = tx.cur
        counts = {}
        counts["events"] = cur.execute("DELETE FROM events WHERE user = ?", (user,)).rowcount
        for table in ("follows", "blocks", "mutes"):
            counts[table] = cur.execute(f"DELETE FROM {table} WHERE src = ?", (user,)).rowcount
        counts["muted_words"] = cur.execute("DELETE FROM muted_words WHERE user = ?", (user,)).rowcount
        counts["prefs"] = cur.execute("DELETE FROM user_prefs WHERE user = ?", (user,)).rowcount
        return counts

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
    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._con.execute(sql, params).fetchall()

    def count(self, table: str) -> int:
        assert table.isidentifier()
        return int(self.query(f"SELECT COUNT(*) FROM {table}")[0][0])

    def max_seq(self) -> int:
        with self._lock:
            return self._event_seq(self._con.cursor())

    def load_users(self, since_idx: int = 0) -> dict[str, Any]:
        rows = self.query("SELECT idx, id, handle, created_at, community, interests FROM users WHERE idx > ?"
                          " ORDER BY idx", (since_idx,))
        return {
            "idx": np.array([r[0] for r in rows], dtype=np.int64),
            "id": [r[1] for r in rows],
            "handle": [r[2] for r in rows],
            "created_at": np.array([r[3] for r in rows], dtype=np.float64),
            "community": np.array([-1 if r[4] is None else r[4] for r in rows], dtype=np.int32),
            "interests": [r[5].split(",") if r[5] else [] for r in rows],
        }

    def load_posts(self, since_idx: int = 0) -> dict[str, Any]:
        rows = self.query(
            "SELECT idx, id, author, text, created_at, reply_to, repost_of, quote_of, topics, lang, labels, quality,"
            " divisiveness FROM posts WHERE idx > ? ORDER BY idx", (since_idx,))
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

    def load_edges(self, table: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        assert table in ("follows", "blocks", "mutes")
        rows = self.query(f"SELECT src, dst, created_at FROM {table}")
        if not rows:
            return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
        a = np.array(rows, dtype=np.float64)
        return a[:, 0].astype(np.int64), a[:, 1].astype(np.int64), a[:, 2]

    def load_muted_words(self) -> dict[int, list[str]]:
        out: dict[int, list[str]] = {}
        for u, w in self.query("SELECT user, word FROM muted_words"):
            out.setdefault(u, []).append(w)
        return out

    def load_prefs(self) -> dict[int, dict[str, Any]]:
        return {u: json.loads(p) for u, p in self.query("SELECT user, prefs FROM user_prefs")}

    def get_meta(self, key: str) -> str | None:
        rows = self.query("SELECT value FROM meta WHERE key = ?", (key,))
        return rows[0][0] if rows else None

    def iter_events(self, since_seq: int = 0, chunk: int = 500_000,
                    until_seq: int | None = None) -> Iterator[dict[str, np.ndarray]]:
        """Stream events after ``since_seq`` as columnar numpy chunks (NULL ints -> -1, NULL value -> NaN)."""
        last = since_seq
        while True:
            sql = ("SELECT seq, kind, user, COALESCE(post, -1), COALESCE(target_user, -1), ts,"
                   " COALESCE(value, 'nan'), COALESCE(position, -1) FROM events WHERE seq > ?")
            params: list[Any] = [last]
            if until_seq is not None:
                sql += " AND seq <= ?"
                params.append(until_seq)
            sql += " ORDER BY seq LIMIT ?"
            params.append(chunk)
            rows = self.query(sql, params)
            if not rows:
                return
            a = np.array(rows, dtype=np.float64)
            yield {
                "seq": a[:, 0].astype(np.int64),
                "kind": a[:, 1].astype(np.int8),
                "user": a[:, 2].astype(np.int64),
                "post": a[:, 3].astype(np.int64),
                "target_user": a[:, 4].astype(np.int64),
                "ts": a[:, 5],
                "value": a[:, 6],
                "position": a[:, 7].astype(np.int32),
            }
            last = int(a[-1, 0])
            if len(rows) < chunk:
                return

    def user_events(self, user: int, limit: int = 1000) -> list[tuple[Any, ...]]:
        return self.query(
            "SELECT seq, id, kind, post, target_user, ts, value, surface, position, request_id FROM events"
            " WHERE user = ? ORDER BY seq DESC LIMIT ?", (user, limit))

    def event_ids_exist(self, ids: Sequence[str]) -> set[str]:
        found: set[str] = set()
        ids = list(ids)
        for i in range(0, len(ids), 900):
            part = ids[i:i + 900]
            marks = ",".join("?" * len(part))
            found.update(r[0] for r in self.query(f"SELECT id FROM events WHERE id IN ({marks})", part))
        return found

    def token_hash(self, user: int) -> str | None:
        rows = self.query("SELECT token_hash FROM users WHERE idx = ?", (user,))
        return rows[0][0] if rows else None


class _Tx:
    """Context manager: BEGIN IMMEDIATE under the store lock; COMMIT (durable) or ROLLBACK."""

    def __init__(self, store: SQLiteStore) -> None:
        self.store = store
        self.new_users: list[tuple[str, int]] = []
        self.new_posts: list[tuple[str, int]] = []

    def __enter__(self) -> "_Tx":
        self.store._lock.acquire()
        self.cur = self.store._con.cursor()
        self.cur.execute("BEGIN IMMEDIATE")
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        try:
            if exc_type is None:
                self.cur.execute("COMMIT")
                self.store._register(self.new_users, self.new_posts)
            else:
                self.cur.execute("ROLLBACK")
        finally:
            self.store._lock.release()


def _split_sql(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]


def _nullable(a: np.ndarray, null: int) -> list[int | None]:
    lst = a.tolist()
    if (a == null).any():
        return [None if v == null else v for v in lst]
    return lst


def _nullable_float(a: np.ndarray) -> list[float | None]:
    lst = a.tolist()
    if np.isnan(a).any():
        return [None if v != v else v for v in lst]
    return lst
