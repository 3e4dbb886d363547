"""Jetstream (Bluesky's JSON firehose) into glassfeed: posts, likes, reposts, follows, blocks and deletes.

``JetstreamIngester.handle_batch(messages)`` writes a batch through the Ingestor: unknown DIDs become users on the
fly, posts are stored under their at:// URI, and record events use the record URI as event id, so replaying any
stretch of the stream changes nothing. The newest ``time_us`` is saved in the store's meta table after each
batch; resume with ``?cursor=`` a few seconds earlier (``resume_cursor``). Decisions (docs/bluesky.md):
deleting a post labels it ``removed`` (dropped from every feed, kept for the audit log); deleting a like, follow
or block records unlike / unfollow / unblock; deleting a repost and record updates are ignored; replies and quotes
also record a reply / quote event on the parent; identity and account messages are skipped.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator
from contextlib import suppress
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, TypeGuard

from websockets.sync.client import connect

from glassfeed.bluesky.records import find_record_event, parse_at_uri, record_uri
from glassfeed.domain import EventKind
from glassfeed.ingest import IngestError, Ingestor, parse_ts

POST, LIKE, REPOST = "app.bsky.feed.post", "app.bsky.feed.like", "app.bsky.feed.repost"
FOLLOW, BLOCK = "app.bsky.graph.follow", "app.bsky.graph.block"
COLLECTIONS = (POST, LIKE, REPOST, FOLLOW, BLOCK)
CURSOR_KEY = "bluesky.jetstream.cursor"
REMOVED = "removed"
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

    # ------------------------------------------------------------------ live stream (optional)
    def stream_url(self, base: str) -> str:
        q = "&".join(f"wantedCollections={c}" for c in COLLECTIONS)
        cur = self.resume_cursor()
        return f"{base}?{q}" + (f"&cursor={cur}" if cur is not None else "")

    def run(
        self, base_url: str, batch: int = 500, flush_s: float = 1.0, max_messages: int | None = None
    ) -> JetstreamStats:
        """Follow the live firehose over a websocket (needs network access; reconnect by calling again)."""
        total = JetstreamStats()
        buf: list[Any] = []
        last = time.monotonic()
        with connect(self.stream_url(base_url), max_size=2**22) as ws:
            while max_messages is None or total.messages + len(buf) < max_messages:
                try:
                    raw = ws.recv(timeout=flush_s)
                    buf.append(json.loads(raw))
                except TimeoutError:
                    pass
                if buf and (len(buf) >= batch or time.monotonic() - last >= flush_s):
                    total.add(self.handle_batch(buf))
                    buf, last = [], time.monotonic()
        if buf:
            total.add(self.handle_batch(buf))
        return total


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
