"""Jetstream (Bluesky's JSON firehose) into glassfeed: posts, likes, reposts, follows, blocks and deletes.

``JetstreamIngester.handle_batch(messages)`` writes a batch through the Ingestor: unknown DIDs become users on the
fly, posts are stored under their at:// URI, and record events use the record URI as event id, so replaying any
stretch of the stream changes nothing. The newest ``time_us`` is saved in the store's meta table after each
batch; resume with ``?cursor=`` a few seconds earlier (``resume_cursor``). Decisions (docs/bluesky.md):
deleting a post labels it ``removed`` (dropped from every feed, kept for the audit log); deleting a like, follow
or block records unlike / unfollow / unblock; deleting a repost and record updates are ignored; replies and quotes
also record a reply / quote event on the parent; identity and account messages are skipped.

``JetstreamFollower`` is the long-running consumer (``glassfeed bluesky ingest`` without a file): it reconnects
with backoff, resumes from the saved cursor each time, commits by size or age, and stops cleanly on SIGTERM.
"""

from __future__ import annotations

import json
import logging
import random
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager, suppress
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Protocol, TypeGuard

from websockets.exceptions import InvalidURI, WebSocketException
from websockets.sync.client import connect

from glassfeed.bluesky.records import find_record_event, parse_at_uri, record_uri
from glassfeed.bluesky.settings import BlueskySettings
from glassfeed.domain import EventKind
from glassfeed.ingest import IngestError, Ingestor, parse_ts

POST, LIKE, REPOST = "app.bsky.feed.post", "app.bsky.feed.like", "app.bsky.feed.repost"
FOLLOW, BLOCK = "app.bsky.graph.follow", "app.bsky.graph.block"
COLLECTIONS = (POST, LIKE, REPOST, FOLLOW, BLOCK)
CURSOR_KEY = "bluesky.jetstream.cursor"
REMOVED = "removed"
log = logging.getLogger(__name__)
#: record collection -> (create kind, delete kind or None)
EVENT_KINDS: dict[str, tuple[EventKind, EventKind | None]] = {
    LIKE: (EventKind.LIKE, EventKind.UNLIKE),
    REPOST: (EventKind.REPOST, None),
    FOLLOW: (EventKind.FOLLOW, EventKind.UNFOLLOW),
    BLOCK: (EventKind.BLOCK, EventKind.UNBLOCK),
}


@dataclass
class JetstreamStats:
    messages: int = 0
    users: int = 0
    posts: int = 0
    events: int = 0
    duplicates: int = 0
    removed: int = 0
    skipped: int = 0  # identity/account messages, updates, records about things glassfeed never stored
    errors: int = 0  # malformed messages or records the Ingestor refused

    def add(self, other: JetstreamStats) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


class JetstreamIngester:
    """Turns Jetstream messages into glassfeed users, posts and events; idempotent and resumable."""

    def __init__(self, ingestor: Ingestor, *, cursor_key: str = CURSOR_KEY, rewind_s: float = 5.0) -> None:
        self.ingestor = ingestor
        self.store = ingestor.store
        self.cursor_key = cursor_key
        self.rewind_s = rewind_s
        self._inverse: tuple[dict[int, str], dict[int, str]] | None = None

    # ------------------------------------------------------------------ cursor
    @property
    def cursor(self) -> int | None:
        """The newest ``time_us`` fully ingested (None before the first batch)."""
        v = self.store.get_meta(self.cursor_key)
        return int(v) if v is not None else None

    def resume_cursor(self) -> int | None:
        """Where to reconnect: the saved cursor minus ``rewind_s`` (the overlap replays as no-ops)."""
        c = self.cursor
        return None if c is None else max(0, c - int(self.rewind_s * 1e6))

    # ------------------------------------------------------------------ entry points
    def handle(self, message: dict[str, Any]) -> JetstreamStats:
        return self.handle_batch([message])

    def ingest_file(self, path: str | Path, batch: int = 1000) -> JetstreamStats:
        """Ingest a JSONL file of Jetstream messages (one JSON object a line), ``batch`` messages a transaction."""
        total = JetstreamStats()
        for chunk in _chunks(_read_jsonl(Path(path), total), batch):
            total.add(self.handle_batch(chunk))
        return total

    def handle_batch(self, messages: Iterable[Any]) -> JetstreamStats:
        st = JetstreamStats()
        self._inverse = None
        commits: list[tuple[str, float, dict[str, Any]]] = []
        newest = None
        for m in messages:
            st.messages += 1
            if not isinstance(m, dict) or not isinstance(m.get("time_us"), int) or not _is_did(m.get("did")):
                st.errors += 1
                continue
            newest = max(newest or 0, m["time_us"])
            c = m.get("commit")
            if (
                m.get("kind") != "commit"
                or not isinstance(c, dict)
                or c.get("collection") not in COLLECTIONS
                or not isinstance(c.get("rkey"), str)
                or c.get("operation") not in ("create", "delete")
            ):
                st.skipped += 1
                continue
            commits.append((m["did"], m["time_us"] / 1e6, c))
        self._users(commits, st)
        created = self._posts(commits, st)
        self._events(commits, created, st)
        if newest is not None and newest > (self.cursor or 0):
            self.ingestor.set_meta(self.cursor_key, str(newest))
        return st

    # ------------------------------------------------------------------ stages
    def _users(self, commits: list[tuple[str, float, dict[str, Any]]], st: JetstreamStats) -> None:
        new: dict[str, float] = {}
        for did, ts, c in commits:
            subject = (c.get("record") or {}).get("subject") if c["operation"] == "create" else None
            for d in (did, subject if c["collection"] in (FOLLOW, BLOCK) else None):
                if _is_did(d) and self.store.user_idx(d) is None and d not in new:
                    new[d] = ts
        if new:
            self.ingestor.create_users(
                [{"id": d, "created_at": t} for d, t in new.items()], skip_existing=True, with_tokens=False
            )
            st.users += len(new)

    def _posts(self, commits: list[tuple[str, float, dict[str, Any]]], st: JetstreamStats) -> set[str]:
        lim = self.ingestor.limits
        pending: dict[str, dict[str, Any]] = {}
        for did, ts, c in commits:
            if c["collection"] != POST or c["operation"] != "create":
                continue
            uri = record_uri(did, POST, c["rkey"])
            rec = c.get("record")
            if not isinstance(rec, dict) or len(uri) > lim.max_id_chars:
                st.errors += 1
                continue
            if self.store.post_idx(uri) is not None or uri in pending:
                st.duplicates += 1
                continue
            pending[uri] = _post_record(uri, did, ts, rec, lim.max_text_chars)
        made: set[str] = set()
        while pending:  # rounds: a reply waits for a parent that arrives in the same batch
            ready = {}
            for uri, r in pending.items():
                if any(r.get(ref) in pending for ref in ("reply_to", "quote_of")):
                    continue
                ready[uri] = {
                    **r,
                    **{
                        ref: r[ref]
                        for ref in ("reply_to", "quote_of")
                        if r.get(ref) and self.store.post_idx(r[ref]) is not None
                    },
                }
                for ref in ("reply_to", "quote_of"):
                    if ready[uri].get(ref) and self.store.post_idx(ready[uri][ref]) is None:
                        ready[uri][ref] = None
            if not ready:  # a cycle cannot happen with real URIs; cut refs to make progress anyway
                ready = {u: {**r, "reply_to": None, "quote_of": None} for u, r in pending.items()}
            for uri in ready:
                pending.pop(uri)
            for rec in _write_all(self.ingestor.create_posts, list(ready.values()), st):
                made.add(rec["id"])
        st.posts += len(made)
        return made

    def _events(self, commits: list[tuple[str, float, dict[str, Any]]], created: set[str], st: JetstreamStats) -> None:
        events: list[dict[str, Any]] = []
        remove: list[str] = []
        batch_records: dict[str, dict[str, Any]] = {}  # record URI -> event created in this batch
        for did, ts, c in commits:
            col, op = c["collection"], c["operation"]
            uri = record_uri(did, col, c["rkey"])
            if col == POST:
                if op == "delete":
                    if self.store.post_idx(uri) is not None:
                        remove.append(uri)
                    else:
                        st.skipped += 1
                    continue
                if uri in created:
                    rec = c["record"]
                    for ref, kind in (("reply_to", EventKind.REPLY), ("quote_of", EventKind.QUOTE)):
                        parent = _post_record(uri, did, ts, rec, 0).get(ref)
                        if parent and self.store.post_idx(parent) is not None:
                            events.append(
                                {"id": f"{uri}#{kind.wire}", "kind": kind.wire, "user": did, "post": parent, "ts": ts}
                            )
                continue
            create_kind, delete_kind = EVENT_KINDS[col]
            if op == "create":
                ev = self._record_event(did, ts, uri, col, c.get("record"), create_kind)
                if ev is None:
                    st.skipped += 1
                    continue
                batch_records[uri] = ev
                events.append(ev)
                continue
            if delete_kind is None:
                st.skipped += 1  # no "unrepost" kind: a deleted repost stays counted
                continue
            orig = batch_records.get(uri) or self._stored_record(did, uri)
            if orig is None:
                st.skipped += 1
                continue
            ev = {"id": f"{uri}#delete", "kind": delete_kind.wire, "user": did, "ts": ts}
            for k in ("post", "target_user"):
                if orig.get(k):
                    ev[k] = orig[k]
            events.append(ev)
        for i in range(0, len(events), self.ingestor.limits.max_batch):
            part = events[i : i + self.ingestor.limits.max_batch]
            _write_all(self.ingestor.ingest_events, part, st, events=True)
        if remove:
            st.removed += self._remove_posts(remove)

    def _record_event(
        self, did: str, ts: float, uri: str, col: str, rec: Any, kind: EventKind
    ) -> dict[str, Any] | None:
        if not isinstance(rec, dict):
            return None
        subject = rec.get("subject")
        ev: dict[str, Any] = {"id": uri, "kind": kind.wire, "user": did, "ts": ts}
        if col in (FOLLOW, BLOCK):
            if not _is_did(subject) or self.store.user_idx(subject) is None or subject == did:
                return None
            ev["target_user"] = subject
        else:
            target = subject.get("uri") if isinstance(subject, dict) else None
            parsed = parse_at_uri(target)
            # likes of feeds/lists, or of posts from before glassfeed started listening, are not events here
            if not isinstance(target, str) or parsed is None or parsed[1] != POST:
                return None
            if self.store.post_idx(target) is None:
                return None
            ev["post"] = target
        return ev

    def _stored_record(self, did: str, uri: str) -> dict[str, Any] | None:
        found = find_record_event(self.store, did, uri)
        if found is None:
            return None
        _kind, post, target = found
        if self._inverse is None:  # idx -> external id, built once per batch and only when a delete needs it
            self._inverse = (
                {v: k for k, v in self.store.user_ids().items()},
                {v: k for k, v in self.store.post_ids().items()},
            )
        out: dict[str, Any] = {}
        if post:
            out["post"] = self._inverse[1].get(post)
        if target:
            out["target_user"] = self._inverse[0].get(target)
        return out

    def _remove_posts(self, uris: list[str]) -> int:
        """Label deleted posts ``removed`` (a drop label: no feed shows them; their events stay for audits)."""
        known = [u for u in uris if self.store.post_idx(u) is not None]
        return self.ingestor.label_posts(known, REMOVED) if known else 0

    # ------------------------------------------------------------------ live stream
    def stream_url(self, base: str) -> str:
        q = "&".join(f"wantedCollections={c}" for c in COLLECTIONS)
        cur = self.resume_cursor()
        return f"{base}?{q}" + (f"&cursor={cur}" if cur is not None else "")


class Connection(Protocol):
    """What the follower needs of a websocket: ``recv`` raising ``TimeoutError`` when nothing came in time, and
    anything else when the connection is gone (``websockets.sync.client.ClientConnection`` is one)."""

    def recv(self, timeout: float | None = None) -> str | bytes: ...


#: Opens a connection to a URL, as a context manager that closes it (``websocket_connect`` for the real one).
Connect = Callable[[str], AbstractContextManager[Connection]]


def websocket_connect(cfg: BlueskySettings) -> Connect:
    """A ``Connect`` over real websockets, with ``cfg``'s message size limit and opening timeout."""

    def open_(url: str) -> AbstractContextManager[Connection]:
        return connect(url, max_size=cfg.max_message_bytes, open_timeout=cfg.open_timeout_s)

    return open_


class _Stopped(BaseException):
    """Raised by ``JetstreamFollower.on_signal`` inside a blocking wait, so a stop needs no timeout to pass.
    A ``BaseException``, so no ``except Exception`` in the websocket library swallows it."""


class _Disconnected(Exception):
    """The connection is gone; the message says why."""


class JetstreamFollower:
    """Follow Jetstream for as long as it runs: reconnect on any connection error or close after an exponential
    backoff with jitter (``backoff``), each time from the saved cursor (``JetstreamIngester.stream_url``); commit
    every ``cfg.ingest_batch`` messages or once the oldest waiting message is ``cfg.flush_interval_s`` old; log
    connects, disconnects (reason and next delay) and totals every ``cfg.stats_interval_s``; call ``prune`` (if
    given) at the start and every ``cfg.prune_interval_s``.

    ``stop()`` (or ``on_signal``, installed for SIGTERM and SIGINT by ``signals()``) ends ``run`` after it commits
    what it holds, so the cursor is saved; ``max_messages`` ends it after that many messages. ``connect``,
    ``clock`` (monotonic seconds), ``sleep`` and ``jitter`` (uniform in [0, 1)) are injectable for tests; the
    defaults are real websockets, ``time.monotonic``, a sleep that a stop interrupts, and ``random.random``.

    A store error is not a connection error: it propagates out of ``run`` (what was not committed is replayed
    from the cursor by the next start)."""

    def __init__(
        self,
        ingester: JetstreamIngester,
        base_url: str,
        cfg: BlueskySettings,
        *,
        max_messages: int | None = None,
        connect: Connect | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], object] | None = None,
        jitter: Callable[[], float] = random.random,
        prune: Callable[[], object] | None = None,
    ) -> None:
        self.ingester, self.base_url, self.cfg = ingester, base_url, cfg
        self.max_messages = max_messages
        self.connect = connect or websocket_connect(cfg)
        self.clock, self.jitter, self.prune = clock, jitter, prune
        self._sleep = sleep or self._stop_wait
        self.total = JetstreamStats()
        self.connections = 0  # connections opened
        self._stop = threading.Event()
        self._signalled = False  # a signal handler must not take locks (Event.set does): it sets this instead
        self._interruptible = False
        self._buf: list[Any] = []
        self._buf_since = 0.0
        self._next_stats = self._next_prune = 0.0

    # ------------------------------------------------------------------ control
    def stop(self) -> None:
        """End ``run`` soon: it commits what it holds (cursor saved) and returns."""
        self._stop.set()

    def on_signal(self, signum: int, frame: Any) -> None:
        """A signal handler: stop, and end a blocking wait (receive, backoff) at once."""
        self._signalled = True
        if self._interruptible:
            raise _Stopped

    @contextmanager
    def signals(self) -> Iterator[None]:
        """``on_signal`` as the SIGTERM and SIGINT handler inside the block (main thread only), then the old ones."""
        old = {s: signal.signal(s, self.on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            yield
        finally:
            for s, h in old.items():
                signal.signal(s, h)

    def backoff(self, failures: int) -> float:
        """The delay before reconnecting after ``failures`` (>= 1) connections in a row that were not healthy:
        ``reconnect_min_s`` doubled per failure up to ``reconnect_max_s``, times a jitter in [0.5, 1)."""
        lo, hi = self.cfg.reconnect_min_s, max(self.cfg.reconnect_max_s, self.cfg.reconnect_min_s)
        return min(hi, lo * 2.0 ** min(failures - 1, 64)) * (0.5 + 0.5 * self.jitter())

    # ------------------------------------------------------------------ the loop
    def run(self) -> JetstreamStats:
        """Follow the stream until ``stop()`` or ``max_messages``; returns the totals."""
        failures = 0
        now = self.clock()
        self._next_stats, self._next_prune = now + self.cfg.stats_interval_s, now
        while not self._done():
            url = self.ingester.stream_url(self.base_url)
            log.info("connecting to Jetstream: %s", url)
            opened, reason, connected = self.clock(), "closed", False
            try:
                with self.connect(url) as ws:
                    self.connections += 1
                    opened, connected = self.clock(), True
                    log.info("connected to Jetstream (resuming at cursor %s)", self.ingester.resume_cursor())
                    with suppress(_Stopped):  # stopped inside the block: the connection closes normally (1000)
                        self._follow(ws)
            except _Disconnected as e:
                reason = str(e)
            except (OSError, WebSocketException) as e:  # could not connect (refused, timeout, handshake)
                if isinstance(e, InvalidURI):
                    raise
                reason = _why(e)
            self._flush()
            if self._done():
                break
            healthy = connected and self.clock() - opened >= self.cfg.reconnect_healthy_s
            failures = 1 if healthy else failures + 1
            delay = self.backoff(failures)
            log.warning("disconnected from Jetstream (%s); reconnecting in %.2f s", reason, delay)
            self._interruptible = True
            try:
                if not self._stopping():
                    self._sleep(delay)
            except _Stopped:
                pass
            finally:
                self._interruptible = False
        self._flush()
        log.info("stopped following Jetstream: %s", self._stats_line())
        return self.total

    def _follow(self, ws: Connection) -> None:
        flush_s = self.cfg.flush_interval_s
        while not self._done():
            now = self.clock()
            if self._buf and now - self._buf_since >= flush_s:
                self._flush()
            self._periodic(now)
            wait = min(flush_s - (now - self._buf_since) if self._buf else flush_s, self._next_stats - now)
            if self.prune is not None:
                wait = min(wait, self._next_prune - now)
            raw = self._recv(ws, max(wait, 0.0))
            if raw is None:
                continue
            try:
                msg = json.loads(raw)
            except ValueError:
                msg = None  # counted as a malformed message by handle_batch
            if not self._buf:
                self._buf_since = self.clock()
            self._buf.append(msg)
            if len(self._buf) >= self.cfg.ingest_batch:
                self._flush()

    def _recv(self, ws: Connection, timeout: float) -> str | bytes | None:
        self._interruptible = True
        try:
            if self._stopping():
                raise _Stopped
            return ws.recv(timeout=timeout)
        except _Stopped:
            raise
        except TimeoutError:
            return None
        except Exception as e:
            raise _Disconnected(_why(e)) from e
        finally:
            self._interruptible = False

    def _flush(self) -> None:
        if self._buf:
            buf, self._buf = self._buf, []
            self.total.add(self.ingester.handle_batch(buf))

    def _periodic(self, now: float) -> None:
        if now >= self._next_stats:
            self._next_stats = now + self.cfg.stats_interval_s
            log.info("following Jetstream: %s", self._stats_line())
        if self.prune is not None and now >= self._next_prune:
            self._next_prune = now + self.cfg.prune_interval_s
            try:
                self.prune()
            except Exception:  # retention must not stop ingestion; the next round tries again
                log.exception("pruning the store failed")

    def _done(self) -> bool:
        m = self.max_messages
        return self._stopping() or (m is not None and self.total.messages + len(self._buf) >= m)

    def _stopping(self) -> bool:
        return self._signalled or self._stop.is_set()

    def _stop_wait(self, seconds: float) -> None:
        self._stop.wait(seconds)

    def _stats_line(self) -> str:
        cur = self.ingester.cursor
        behind = f", {max(0.0, time.time() - cur / 1e6):.1f} s behind" if cur is not None else ""
        counts = ", ".join(f"{k} {v}" for k, v in self.total.as_dict().items())
        return f"{counts}; {len(self._buf)} waiting; {self.connections} connections; cursor {cur}{behind}"


def _why(e: BaseException) -> str:
    """A short reason for a dropped or refused connection (the exception's type and message)."""
    text = str(e).strip()
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def _table(v: Any) -> dict[str, Any]:
    """``v`` when it is a JSON object, else an empty one (records come from the network: any shape)."""
    return v if isinstance(v, dict) else {}


def _is_did(v: Any) -> TypeGuard[str]:
    return isinstance(v, str) and v.startswith("did:") and 8 < len(v) <= 256 and v.strip() == v


def _post_record(uri: str, did: str, ts: float, rec: dict[str, Any], max_chars: int) -> dict[str, Any]:
    """A glassfeed post from an app.bsky.feed.post record (text, time, reply/quote refs, tags, langs, labels)."""
    created = ts
    with suppress(ValueError, TypeError):
        created = min(parse_ts(rec["createdAt"]), ts) if rec.get("createdAt") else ts
    reply = _table(rec.get("reply"))
    parent = _table(reply.get("parent")).get("uri")
    quoted = _table(_table(rec.get("embed")).get("record"))
    if isinstance(quoted.get("record"), dict):  # app.bsky.embed.recordWithMedia
        quoted = quoted["record"]
    quote = quoted.get("uri")
    tags = [t.strip().lower().lstrip("#") for t in rec.get("tags") or [] if isinstance(t, str)]
    self_labels = _table(rec.get("labels")).get("values")
    labels = [lb["val"] for lb in self_labels or [] if isinstance(lb, dict) and isinstance(lb.get("val"), str)]
    langs = rec.get("langs") if isinstance(rec.get("langs"), list) else []
    text = rec["text"] if isinstance(rec.get("text"), str) else ""
    return {
        "id": uri,
        "author": did,
        "text": text[:max_chars] if max_chars else text,
        "created_at": max(created, 0.0),
        "reply_to": parent if _post_uri(parent) else None,
        "quote_of": quote if _post_uri(quote) else None,
        "topics": [t for t in tags if t and "," not in t and len(t) <= 64][:16],
        "labels": [lb for lb in labels if lb and "," not in lb][:16],
        "lang": str(langs[0])[:16] if langs and isinstance(langs[0], str) else "und",
    }


def _post_uri(v: Any) -> bool:
    p = parse_at_uri(v)
    return p is not None and p[1] == POST


def _write_all(
    write: Any, records: list[dict[str, Any]], st: JetstreamStats, events: bool = False
) -> list[dict[str, Any]]:
    """Write a batch; if the Ingestor refuses it, write record by record and count the refused ones."""
    if not records:
        return []
    try:
        res = write(records)
        if events:
            st.events += res.accepted
            st.duplicates += res.duplicates
        return records
    except IngestError:
        ok = []
        for r in records:
            try:
                res = write([r])
                if events:
                    st.events += res.accepted
                    st.duplicates += res.duplicates
                ok.append(r)
            except IngestError:
                st.errors += 1
        return ok


def _read_jsonl(path: Path, st: JetstreamStats) -> Iterator[Any]:
    with path.open("r", encoding="utf-8") as f:
        for line in f:
            if line.strip():
                try:
                    yield json.loads(line)
                except ValueError:
                    st.messages += 1
                    st.errors += 1


def _chunks(it: Iterable[Any], n: int) -> Iterator[list[Any]]:
    buf: list[Any] = []
    for x in it:
        buf.append(x)
        if len(buf) >= n:
            yield buf
            buf = []
    if buf:
        yield buf
