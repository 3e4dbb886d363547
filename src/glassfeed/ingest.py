"""Validate and append: the one door through which users, posts and events enter the store.

HTTP, CLI import, importers, the generator and the simulator all write through an :class:`Ingestor`.
A batch is all-or-nothing: any invalid item rejects the whole batch with an error per item (index, field,
reason) and nothing is written. An acknowledged batch has been committed durably. Re-sending an event with an
id already stored changes nothing (it is counted as a duplicate).
"""

from __future__ import annotations

import hashlib
import math
import re
import secrets
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

from glassfeed.config import IngestLimits, default_limits
from glassfeed.domain import EITHER_TARGET_KINDS, KIND_NAMES, USER_TARGET_KINDS, EventKind
from glassfeed.store import SQLiteStore

SERVER_ID_PREFIX = "gf:"
HASHTAG = re.compile(r"#(\w{1,64})")
_KIND_BY_NAME = {k.name.lower(): k for k in EventKind}


@dataclass(frozen=True, slots=True)
class ItemError:
    index: int
    field: str
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {"index": self.index, "field": self.field, "reason": self.reason}


class IngestError(ValueError):
    """A batch was rejected; ``errors`` names each bad item. ``status`` is the HTTP status to answer with."""

    def __init__(self, errors: list[ItemError], status: int = 422) -> None:
        self.errors = errors
        self.status = status
        first = errors[0]
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        super().__init__(f"item {first.index}: {first.field}: {first.reason}{more}")


@dataclass(slots=True)
class IngestResult:
    accepted: int
    duplicates: int
    ids: list[str] = field(default_factory=list)
    first_seq: int = 0
    last_seq: int = 0


#: Listener signature: called after a durable commit with the new events as columns (see SQLiteStore.iter_events).
EventListener = Callable[[dict[str, np.ndarray]], None]


def parse_ts(v: Any) -> float:
    """Epoch seconds (int/float) or an ISO 8601 string (``Z`` allowed) -> epoch seconds."""
    if isinstance(v, bool):
        raise ValueError("must be a number of epoch seconds or an ISO 8601 string")
    if isinstance(v, (int, float)):
        f = float(v)
    elif isinstance(v, str):
        try:
            f = float(v)
        except ValueError:
            try:
                d = datetime.fromisoformat(v.replace("Z", "+00:00"))
            except ValueError:
                raise ValueError(f"not an ISO 8601 time: {v[:40]!r}") from None
            if d.tzinfo is None:
                raise ValueError("ISO 8601 time needs a timezone (e.g. 'Z')") from None
            f = d.timestamp()
    else:
        raise ValueError("must be a number of epoch seconds or an ISO 8601 string")
    if not math.isfinite(f) or f < 0:
        raise ValueError("must be a finite, non-negative time")
    return f


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Ingestor:
    """Validates records and appends them to the store in one durable transaction per batch."""

    def __init__(self, store: SQLiteStore, limits: IngestLimits | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.limits = limits or default_limits()
        self.clock = clock
        self.listeners: list[EventListener] = []
        self.entity_listeners: list[Callable[[str, list[int]], None]] = []

    # ------------------------------------------------------------------ users
    def create_users(self, records: Sequence[dict[str, Any]], *, skip_existing: bool = False,
                     with_tokens: bool = True) -> list[dict[str, Any]]:
        """Create users; returns ``[{id, idx, token}]`` (the token is shown once; only its hash is stored)."""
        errors: list[ItemError] = []
        rows: list[tuple[Any, ...]] = []
        out: list[dict[str, Any]] = []
        seen: set[str] = set()
        now = self.clock()
        for i, r in enumerate(records):
            if not isinstance(r, dict):
                errors.append(ItemError(i, "", "must be an object"))
                continue
            uid = r.get("id")
            if not self._check_id(uid, i, "id", errors):
                continue
            if uid in seen or self.store.user_idx(uid) is not None:
                if skip_existing:
                    continue
                errors.append(ItemError(i, "id", f"user {uid!r} already exists"))
                continue
            seen.add(uid)
            handle = r.get("handle") or uid
            if not isinstance(handle, str) or len(handle) > self.limits.max_id_chars:
                errors.append(ItemError(i, "handle", "must be a string of at most "
                                        f"{self.limits.max_id_chars} characters"))
                continue
            interests = r.get("interests") or []
            if not isinstance(interests, list) or not all(isinstance(t, str) and t and "," not in t
                                                          for t in interests):
                errors.append(ItemError(i, "interests", "must be a list of topic names without commas"))
                continue
            community = r.get("community")
            if community is not None and (not isinstance(community, int) or isinstance(community, bool)):
                errors.append(ItemError(i, "community", "must be an integer"))
                continue
            try:
                created = parse_ts(r["created_at"]) if r.get("created_at") is not None else now
            except ValueError as e:
                errors.append(ItemError(i, "created_at", str(e)))
                continue
            token = secrets.token_urlsafe(24) if with_tokens else None
            rows.append((uid, handle, created, community, ",".join(t.lower() for t in interests),
                         hash_token(token) if token else None))
            out.append({"id": uid, "token": token})
        if errors:
            raise IngestError(errors, status=409 if all("already exists" in e.reason for e in errors) else 422)
        with self.store.transaction() as tx:
            new = self.store.insert_users(tx, rows)
        for o, idx in zip(out, new):
            o["idx"] = idx
        for cb in self.entity_listeners:
            cb("users", new)
        return out

    # ------------------------------------------------------------------ posts
    def create_posts(self, records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """Create posts (hashtags in the text become topics); returns ``[{id, idx}]``."""
        errors: list[ItemError] = []
        rows: list[tuple[Any, ...]] = []
        out: list[dict[str, Any]] = []
        batch_ids: dict[str, int] = {}
        now = self.clock()
        lim = self.limits
        for i, r in enumerate(records):
            if not isinstance(r, dict):
                errors.append(ItemError(i, "", "must be an object"))
                continue
            n_err = len(errors)
            pid = r.get("id") or f"post-{uuid.uuid4().hex}"
            if not self._check_id(pid, i, "id", errors):
                continue
            if pid in batch_ids or self.store.post_idx(pid) is not None:
                errors.append(ItemError(i, "id", f"post {pid!r} already exists"))
                continue
            author = self._resolve_user(r.get("author"), i, "author", errors)
            text = r.get("text", "")
            if not isinstance(text, str):
                errors.append(ItemError(i, "text", "must be a string"))
                continue
            if len(text) > lim.max_text_chars:
                errors.append(ItemError(i, "text", f"too long: {len(text)} > {lim.max_text_chars} characters"))
                continue
            refs = []
            for ref in ("reply_to", "repost_of", "quote_of"):
                v = r.get(ref)
                if v is None:
                    refs.append(None)
                    continue
                idx = self.store.post_idx(v) if isinstance(v, str) else None
                if idx is None:
                    errors.append(ItemError(i, ref, f"unknown post {v!r} (it must exist before this batch)"))
                refs.append(idx)
            topics = r.get("topics") or []
            if not isinstance(topics, list) or not all(isinstance(t, str) and t and "," not in t for t in topics):
                errors.append(ItemError(i, "topics", "must be a list of topic names without commas"))
                continue
            labels = r.get("labels") or []
            if not isinstance(labels, list) or not all(isinstance(t, str) and "," not in t for t in labels):
                errors.append(ItemError(i, "labels", "must be a list of label names without commas"))
                continue
            try:
                created = parse_ts(r["created_at"]) if r.get("created_at") is not None else now
                if created > now + lim.max_future_skew_s:
                    raise ValueError(f"is {created - now:.0f} s in the future (limit {lim.max_future_skew_s:.0f} s)")
            except ValueError as e:
                errors.append(ItemError(i, "created_at", str(e)))
                continue
            scores = []
            for name in ("quality", "divisiveness"):
                v = r.get(name)
                if v is not None and (not isinstance(v, (int, float)) or isinstance(v, bool) or not 0 <= v <= 1):
                    errors.append(ItemError(i, name, "must be a number in [0, 1]"))
                scores.append(None if v is None else float(v))
            if len(errors) > n_err:
                continue
            tags = {t.lower() for t in topics} | {m.lower() for m in HASHTAG.findall(text)}
            lang = r.get("lang") or "en"
            batch_ids[pid] = i
            rows.append((pid, author, text, created, *refs, ",".join(sorted(tags)), str(lang)[:16],
                         ",".join(labels), *scores))
            out.append({"id": pid})
        if errors:
            raise IngestError(errors)
        with self.store.transaction() as tx:
            new = self.store.insert_posts(tx, rows)
        for o, idx in zip(out, new):
            o["idx"] = idx
        for cb in self.entity_listeners:
            cb("posts", new)
        return out

    # ------------------------------------------------------------------ events
    def ingest_events(self, records: Sequence[dict[str, Any]]) -> IngestResult:
        """Validate a batch of wire-format events and append it atomically; see module docstring."""
        lim = self.limits
        if len(records) > lim.max_batch:
            raise IngestError([ItemError(-1, "events", f"batch of {len(records)} exceeds the limit of "
                                                      f"{lim.max_batch}")], status=413)
        now = self.clock()
        horizon = now + lim.max_future_skew_s
        errors: list[ItemError] = []
        rows: list[tuple[Any, ...]] = []
        client_ids: list[str | None] = []
        users = self.store.user_ids()
        posts = self.store.post_ids()
        for i, r in enumerate(records):
            if not isinstance(r, dict):
                errors.append(ItemError(i, "", "must be an object"))
                continue
            n_err = len(errors)
            kname = r.get("kind")
            kind = _KIND_BY_NAME.get(kname) if isinstance(kname, str) else None
            if kind is None:
                errors.append(ItemError(i, "kind", f"unknown event kind {kname!r}; expected one of "
                                                   f"{', '.join(KIND_NAMES)}"))
            eid = r.get("id")
            if eid is not None:
                if not isinstance(eid, str) or not eid or len(eid) > lim.max_id_chars:
                    errors.append(ItemError(i, "id", f"must be a non-empty string of at most {lim.max_id_chars}"
                                                     " characters"))
                elif eid.startswith(SERVER_ID_PREFIX):
                    errors.append(ItemError(i, "id", f"ids starting with {SERVER_ID_PREFIX!r} are reserved"))
            u = r.get("user")
            user = users.get(u) if isinstance(u, str) else None
            if user is None:
                errors.append(ItemError(i, "user", "required" if u is None else f"unknown user {u!r}"))
            p = r.get("post")
            tu = r.get("target_user")
            post = target = None
            if p is not None:
                post = posts.get(p) if isinstance(p, str) else None
                if post is None:
                    errors.append(ItemError(i, "post", f"unknown post {p!r}"))
            if tu is not None:
                target = users.get(tu) if isinstance(tu, str) else None
                if target is None:
                    errors.append(ItemError(i, "target_user", f"unknown user {tu!r}"))
            if kind is not None:
                if kind in USER_TARGET_KINDS:
                    if tu is None:
                        errors.append(ItemError(i, "target_user", f"required for {kind.wire}"))
                elif kind in EITHER_TARGET_KINDS:
                    if p is None and tu is None:
                        errors.append(ItemError(i, "post", f"{kind.wire} needs a post or a target_user"))
                elif p is None:
                    errors.append(ItemError(i, "post", f"required for {kind.wire}"))
            ts_raw = r.get("ts")
            ts = now
            if ts_raw is not None:
                try:
                    ts = parse_ts(ts_raw)
                    if ts > horizon:
                        raise ValueError(f"is {ts - now:.0f} s in the future (limit {lim.max_future_skew_s:.0f} s)")
                except ValueError as e:
                    errors.append(ItemError(i, "ts", str(e)))
            value = r.get("value")
            if value is not None:
                if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) \
                        or not 0 <= value <= lim.max_dwell_ms:
                    errors.append(ItemError(i, "value", f"must be a number in [0, {lim.max_dwell_ms:.0f}]"))
            elif kind is EventKind.DWELL:
                errors.append(ItemError(i, "value", "dwell needs value = dwell time in ms"))
            pos = r.get("position")
            if pos is not None and (not isinstance(pos, int) or isinstance(pos, bool) or not 0 <= pos < 100_000):
                errors.append(ItemError(i, "position", "must be an integer in [0, 100000)"))
            surface = r.get("surface")
            if surface is not None and (not isinstance(surface, str) or len(surface) > 64):
                errors.append(ItemError(i, "surface", "must be a string of at most 64 characters"))
            req = r.get("request_id")
            if req is not None and (not isinstance(req, str) or len(req) > 128):
                errors.append(ItemError(i, "request_id", "must be a string of at most 128 characters"))
            unknown = r.keys() - _EVENT_FIELDS
            if unknown:
                errors.append(ItemError(i, sorted(unknown)[0], "unknown field"))
            if len(errors) > n_err:
                continue
            client_ids.append(eid)
            rows.append((eid, int(kind), user, post, target, ts, value, surface, pos, req))  # type: ignore[arg-type]
            if len(errors) >= 1000:
                break
        if errors:
            raise IngestError(errors)
        return self._append(rows, client_ids)

    def _append(self, rows: list[tuple[Any, ...]], client_ids: list[str | None]) -> IngestResult:
        with self.store.transaction() as tx:
            given = [c for c in client_ids if c is not None]
            existing = self.store.event_ids_exist(given) if given else set()
            keep: list[tuple[Any, ...]] = []
            kept_ids: list[str | None] = []
            seen: set[str] = set()
            for row, cid in zip(rows, client_ids):
                if cid is not None:
                    if cid in existing or cid in seen:
                        continue
                    seen.add(cid)
                keep.append(row)
                kept_ids.append(cid)
            first, last = self.store.append_events(tx, keep) if keep else (0, -1)
        ids = [cid if cid is not None else f"{SERVER_ID_PREFIX}{first + j}" for j, cid in enumerate(kept_ids)]
        if keep:
            self._notify(_rows_to_columns(keep, first))
        return IngestResult(accepted=len(keep), duplicates=len(rows) - len(keep), ids=ids,
                            first_seq=first, last_seq=last)

    def ingest_columns(self, cols: dict[str, np.ndarray], request_ids: Sequence[str | None] | None = None,
                       surface: Sequence[str | None] | None = None) -> IngestResult:
        """Fast path for resolved, server-id events given as columns (kind, user, post, target_user, ts,
        value, position); validated vectorised against the store's id ranges."""
        n = len(cols["kind"])
        if n == 0:
            return IngestResult(0, 0)
        kind = np.asarray(cols["kind"], dtype=np.int64)
        user = np.asarray(cols["user"], dtype=np.int64)
        n_users = len(self.store.user_ids())
        n_posts = len(self.store.post_ids())
        errors: list[ItemError] = []
        valid_kinds = np.array([int(k) for k in EventKind])
        for name, bad, reason in (
            ("kind", ~np.isin(kind, valid_kinds), "unknown event kind"),
            ("user", (user < 1) | (user > n_users), "unknown user index"),
            ("post", ("post" in cols) and ((np.asarray(cols["post"]) > n_posts) | (np.asarray(cols["post"]) < -1)),
             "unknown post index"),
            ("ts", np.asarray(cols["ts"]) > self.clock() + self.limits.max_future_skew_s, "in the future"),
        ):
            if isinstance(bad, np.ndarray) and bad.any():
                for i in np.flatnonzero(bad)[:100]:
                    errors.append(ItemError(int(i), name, reason))
        if errors:
            raise IngestError(errors)
        full = {k: np.asarray(v) for k, v in cols.items()}
        if surface is not None:
            full["surface"] = np.asarray(surface, dtype=object)
        with self.store.transaction() as tx:
            first, last = self.store.append_event_columns(tx, full, request_id=request_ids)
        out = {k: full[k] for k in ("kind", "user", "post", "target_user", "ts", "value", "position") if k in full}
        out["seq"] = np.arange(first, last + 1, dtype=np.int64)
        self._notify(_fill_columns(out, n))
        return IngestResult(accepted=n, duplicates=0, first_seq=first, last_seq=last)

    # ------------------------------------------------------------------ user settings and rights
    def set_muted_words(self, user_id: str, words: Iterable[str]) -> list[str]:
        user = self._require_user(user_id)
        clean = sorted({w.strip().lower() for w in words if isinstance(w, str) and w.strip()})
        if any(len(w) > 100 for w in clean):
            raise IngestError([ItemError(0, "words", "each muted word must be at most 100 characters")])
        with self.store.transaction() as tx:
            self.store.set_muted_words(tx, user, clean)
        for cb in self.entity_listeners:
            cb("muted_words", [user])
        return clean

    def label_posts(self, post_ids: Sequence[str], label: str) -> int:
        """Add a moderation label (e.g. ``removed``: dropped from every feed) to existing posts."""
        if not label or "," in label or len(label) > 64:
            raise IngestError([ItemError(0, "label", "must be 1-64 characters without commas")])
        idxs = [self.store.post_idx(p) for p in post_ids]
        bad = [ItemError(i, "post", f"unknown post {p!r}") for i, (p, x) in enumerate(zip(post_ids, idxs)) if x is None]
        if bad:
            raise IngestError(bad, status=404)
        with self.store.transaction() as tx:
            self.store.add_post_label(tx, idxs, label)  # type: ignore[arg-type]
        for cb in self.entity_listeners:
            cb("labels", idxs)  # type: ignore[arg-type]
        return len(idxs)

    def set_prefs(self, user_id: str, prefs: dict[str, Any]) -> None:
        user = self._require_user(user_id)
        with self.store.transaction() as tx:
            self.store.set_prefs(tx, user, prefs)
        for cb in self.entity_listeners:
            cb("prefs", [user])

    def delete_user_data(self, user_id: str) -> dict[str, int]:
        """Data-rights erasure of a user's events and derived state (the account row stays, emptied)."""
        user = self._require_user(user_id)
        with self.store.transaction() as tx:
            counts = self.store.delete_user_data(tx, user)
        for cb in self.entity_listeners:
            cb("deleted", [user])
        return counts

    # ------------------------------------------------------------------ helpers
    def _notify(self, cols: dict[str, np.ndarray]) -> None:
        for cb in self.listeners:
            cb(cols)

    def _require_user(self, user_id: str) -> int:
        idx = self.store.user_idx(user_id)
        if idx is None:
            raise IngestError([ItemError(0, "user", f"unknown user {user_id!r}")], status=404)
        return idx

    def _resolve_user(self, v: Any, i: int, name: str, errors: list[ItemError]) -> int | None:
        idx = self.store.user_idx(v) if isinstance(v, str) else None
        if idx is None:
            errors.append(ItemError(i, name, "required" if v is None else f"unknown user {v!r}"))
        return idx

    def _check_id(self, v: Any, i: int, name: str, errors: list[ItemError]) -> bool:
        if not isinstance(v, str) or not v or len(v) > self.limits.max_id_chars or v.strip() != v:
            errors.append(ItemError(i, name, f"must be a non-empty string of at most {self.limits.max_id_chars}"
                                             " characters without surrounding spaces"))
            return False
        return True


_EVENT_FIELDS = frozenset({"id", "kind", "user", "post", "target_user", "ts", "value", "surface", "position",
                           "request_id"})


def _rows_to_columns(rows: list[tuple[Any, ...]], first: int) -> dict[str, np.ndarray]:
    n = len(rows)
    return {
        "seq": np.arange(first, first + n, dtype=np.int64),
        "kind": np.fromiter((r[1] for r in rows), np.int8, n),
        "user": np.fromiter((r[2] for r in rows), np.int64, n),
        "post": np.fromiter((-1 if r[3] is None else r[3] for r in rows), np.int64, n),
        "target_user": np.fromiter((-1 if r[4] is None else r[4] for r in rows), np.int64, n),
        "ts": np.fromiter((r[5] for r in rows), np.float64, n),
        "value": np.fromiter((np.nan if r[6] is None else r[6] for r in rows), np.float64, n),
        "position": np.fromiter((-1 if r[8] is None else r[8] for r in rows), np.int32, n),
    }


def _fill_columns(cols: dict[str, np.ndarray], n: int) -> dict[str, np.ndarray]:
    cols.setdefault("post", np.full(n, -1, np.int64))
    cols.setdefault("target_user", np.full(n, -1, np.int64))
    cols.setdefault("value", np.full(n, np.nan))
    cols.setdefault("position", np.full(n, -1, np.int32))
    cols["kind"] = cols["kind"].astype(np.int8)
    return cols
