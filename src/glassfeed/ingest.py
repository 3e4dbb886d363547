"""Validate and append: the one door through which users, posts and events enter the store.

HTTP, CLI import, importers, the generator and the simulator all write through an :class:`Ingestor`. Events
are checked against the one event specification (``glassfeed.domain.spec``): wire events item by item where
only the wire can be wrong (``wire_to_batch``), then every rule vectorised over the resolved ``EventBatch``
(``batch_errors``), the same rules ``ingest_batch`` applies to already-resolved batches.

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
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from itertools import repeat
from typing import Any

import numpy as np

from glassfeed.domain import EVENT_COLUMNS, KIND_NAMES, KIND_RULES, SERVER_ID_PREFIX, EventBatch, EventKind
from glassfeed.domain.spec import (
    EVENT_FIELDS,
    UNSAFE_CHARS_REASON,
    WIRE_FIELD_NAMES,
    Bound,
    Target,
    WireField,
    WireType,
    has_unsafe_chars,
    unsafe_mask,
)
from glassfeed.settings import IngestLimits, packaged_settings
from glassfeed.store import (
    AdCampaignRow,
    AdLogRow,
    ExperimentRow,
    ExposureRow,
    ModerationRecord,
    PageSourcesRow,
    Store,
    Transaction,
)

HASHTAG = re.compile(r"#(\w{1,64})")


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


#: Listener signature: called after a durable commit with the new events (``seq`` set; the ``surface``,
#: ``request_id`` and ``id`` columns when any event has one).
EventListener = Callable[[EventBatch], None]


_BAD_TIME = "must be a finite, non-negative time"


def parse_ts(v: Any) -> float:
    """Epoch seconds (int/float) or an ISO 8601 string (``Z`` allowed) -> epoch seconds."""
    if isinstance(v, bool):
        raise ValueError("must be a number of epoch seconds or an ISO 8601 string")
    if isinstance(v, (int, float)):
        try:
            f = float(v)
        except OverflowError:
            raise ValueError(_BAD_TIME) from None
    elif isinstance(v, str):
        try:
            f = float(v)
        except ValueError:
            try:
                d = datetime.fromisoformat(v[:-1] + "+00:00" if v[-1:] in ("Z", "z") else v)  # RFC 3339 allows z
            except ValueError:
                raise ValueError(f"not an ISO 8601 time: {v[:40]!r}") from None
            if d.tzinfo is None:
                raise ValueError("ISO 8601 time needs a timezone (e.g. 'Z')") from None
            f = d.timestamp()
    else:
        raise ValueError("must be a number of epoch seconds or an ISO 8601 string")
    if not math.isfinite(f) or f < 0:
        raise ValueError(_BAD_TIME)
    return f


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


#: The fields a user record may carry (``Ingestor.create_users``); any other is refused as an unknown field, as the
#: API's ``UserIn`` schema says (tests/test_hardening_input.py checks that the two agree).
USER_FIELDS = frozenset({"id", "handle", "created_at", "interests", "community"})
#: The fields a post record may carry (``Ingestor.create_posts``; the API's ``PostIn``).
POST_FIELDS = frozenset(
    {"id", "author", "text", "created_at", "reply_to", "repost_of", "quote_of", "topics", "labels", "lang", "quality"}
    | {"divisiveness"}
)


class Ingestor:
    """Validates records and appends them to the store in one durable transaction per batch."""

    def __init__(
        self, store: Store, limits: IngestLimits | None = None, clock: Callable[[], float] = time.time
    ) -> None:
        self.store = store
        self.limits = limits or packaged_settings().ingest
        self.clock = clock
        self.listeners: list[EventListener] = []
        self.entity_listeners: list[Callable[[str, list[int]], None]] = []
        #: hears every committed batch of moderation records, with their numbers set (``append_moderation``)
        self.moderation_listeners: list[Callable[[list[ModerationRecord]], None]] = []
        #: called after each committed ad write: ("campaign", [AdCampaignRow]) or ("log", [AdLogRow])
        self.ad_listeners: list[Callable[[str, list[Any]], None]] = []
        #: called after each committed experiment write: ("experiment", [ExperimentRow]) or ("exposures", the
        #: [ExposureRow] asked for, new or not)
        self.experiment_listeners: list[Callable[[str, list[Any]], None]] = []
        #: scores new posts' texts inside the transaction that creates them: texts -> classifier name -> scores
        #: (the moderation classifiers, ``glassfeed.moderation.classifiers``; passed in, as ingest sits below them)
        self.text_scorer: Callable[[list[str]], Mapping[str, np.ndarray]] | None = None

    # ------------------------------------------------------------------ users
    def create_users(
        self, records: Sequence[Any], *, skip_existing: bool = False, with_tokens: bool = True
    ) -> list[dict[str, Any]]:
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
            if unknown := r.keys() - USER_FIELDS:
                errors.append(ItemError(i, sorted(unknown)[0], "unknown field"))
                continue
            uid = self._check_id(r.get("id"), i, "id", errors)
            if uid is None:
                continue
            if uid in seen or self.store.user_idx(uid) is not None:
                if skip_existing:
                    continue
                errors.append(ItemError(i, "id", f"user {uid!r} already exists"))
                continue
            seen.add(uid)
            handle = r.get("handle")
            if (
                handle is None or handle == ""
            ):  # absent or empty: the id ({} or [] is refused below, not taken as absent)
                handle = uid
            if not isinstance(handle, str) or len(handle) > self.limits.max_id_chars or has_unsafe_chars(handle):
                errors.append(
                    ItemError(
                        i,
                        "handle",
                        f"must be a string of at most {self.limits.max_id_chars} characters; {UNSAFE_CHARS_REASON}",
                    )
                )
                continue
            interests = self._check_names(r.get("interests"), i, "interests", errors)
            if interests is None:
                continue
            community = r.get("community")
            top = self.limits.max_community
            if community is not None and ((community := json_integer(community)) is None or not 0 <= community < top):
                errors.append(ItemError(i, "community", f"must be an integer in [0, {top})"))
                continue
            try:
                created = parse_ts(r["created_at"]) if r.get("created_at") is not None else now
            except ValueError as e:
                errors.append(ItemError(i, "created_at", str(e)))
                continue
            token = secrets.token_urlsafe(24) if with_tokens else None
            rows.append(
                (
                    uid,
                    handle,
                    created,
                    community,
                    ",".join(t.lower() for t in interests),
                    hash_token(token) if token else None,
                )
            )
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
    def create_posts(self, records: Sequence[Any]) -> list[dict[str, Any]]:
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
            if unknown := r.keys() - POST_FIELDS:
                errors.append(ItemError(i, sorted(unknown)[0], "unknown field"))
                continue
            n_err = len(errors)
            pid = self._check_id(r.get("id") or f"post-{uuid.uuid4().hex}", i, "id", errors)
            if pid is None:
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
            refs: list[int | None] = []
            for ref in ("reply_to", "repost_of", "quote_of"):
                v = r.get(ref)
                if v is None:
                    refs.append(None)
                    continue
                idx = self.store.post_idx(v) if isinstance(v, str) else None
                if idx is None:
                    errors.append(ItemError(i, ref, f"unknown post {v!r} (it must exist before this batch)"))
                refs.append(idx)
            topics = self._check_names(r.get("topics"), i, "topics", errors)
            labels = self._check_names(r.get("labels"), i, "labels", errors)
            lang = r.get("lang") or "en"
            if not isinstance(lang, str) or len(lang) > lim.max_lang_chars or has_unsafe_chars(lang):
                errors.append(
                    ItemError(i, "lang", f"must be a language tag of at most {lim.max_lang_chars} characters")
                )
            if topics is None or labels is None or len(errors) > n_err:
                continue
            try:
                created = parse_ts(r["created_at"]) if r.get("created_at") is not None else now
                if created > now + lim.max_future_skew_s:
                    raise ValueError(f"is {created - now:.0f} s in the future (limit {lim.max_future_skew_s:.0f} s)")
            except ValueError as e:
                errors.append(ItemError(i, "created_at", str(e)))
                continue
            scores: list[float | None] = []
            for name in ("quality", "divisiveness"):
                v = r.get(name)
                if v is None:
                    scores.append(None)
                elif type(v) in (int, float) and 0 <= v <= 1:  # NaN and booleans fail this too
                    scores.append(float(v))
                else:
                    errors.append(ItemError(i, name, "must be a number in [0, 1]"))
            if len(errors) > n_err:
                continue
            tags = {t.lower() for t in topics} | {m.lower() for m in HASHTAG.findall(text)}
            batch_ids[pid] = i
            rows.append((pid, author, text, created, *refs, ",".join(sorted(tags)), lang, ",".join(labels), *scores))
            out.append({"id": pid})
        if errors:
            raise IngestError(errors)
        texts = self.text_scorer([r[2] for r in rows]) if self.text_scorer is not None and rows else {}
        with self.store.transaction() as tx:
            new = self.store.insert_posts(tx, rows)
            for name, values in texts.items():
                self.store.set_post_scores(tx, name, new, np.asarray(values, np.float64).tolist())
        for o, idx in zip(out, new):
            o["idx"] = idx
        for cb in self.entity_listeners:
            cb("posts", new)
        return out

    # ------------------------------------------------------------------ events
    def ingest_events(self, records: Sequence[Any]) -> IngestResult:
        """Validate a batch of wire-format events (at most ``max_batch``) and append it atomically; see the
        module docstring. The answer's ``ids`` are the client ids, or ``gf:<seq>`` for events sent without."""
        lim = self.limits
        if len(records) > lim.max_batch:
            raise IngestError(
                [ItemError(-1, "events", f"batch of {len(records)} exceeds the limit of {lim.max_batch}")], status=413
            )
        return self._append(self.parse_events(records), with_ids=True)

    def parse_events(self, records: Sequence[Any]) -> EventBatch:
        """Wire-format events -> a resolved ``EventBatch`` (external ids -> store idx, ``ts`` default now),
        checked against the whole event specification; raises ``IngestError`` naming every bad item. Writes
        nothing (bulk import parses the next chunk while the previous one is written)."""
        now = self.clock()
        batch, errors = wire_to_batch(records, self.store.user_ids(), self.store.post_ids(), now)
        errors = _merge(errors, self._rule_errors(batch, now))
        if errors:
            raise IngestError(errors)
        return batch

    def ingest_batch(
        self, batch: EventBatch, ad_log: Sequence[AdLogRow] = (), pages: Sequence[PageSourcesRow] = ()
    ) -> IngestResult:
        """Append resolved events (store idx, ``seq`` ignored) atomically after the specification's vectorised
        checks (``batch_errors``); events whose client ``id`` is already stored count as duplicates. The fast
        path of the simulator, the importers, bulk import and the feed service's impressions. ``ad_log``: ad log
        rows written in the same transaction (the ad impressions of the pages whose impressions these are: one
        commit for both; ad listeners then hear them as ``append_ad_log``'s). ``pages``: the sources of the feed
        pages these impressions are of (``Store.add_page_sources``), in the same transaction."""
        if len(batch) == 0:
            return IngestResult(0, 0)
        errors = self._rule_errors(batch, self.clock())
        if errors:
            raise IngestError(errors)
        return self._append(batch, ad_log=ad_log, pages=pages)

    def _rule_errors(self, batch: EventBatch, now: float) -> list[ItemError]:
        return batch_errors(
            batch, self.limits, now, n_users=len(self.store.user_ids()), n_posts=len(self.store.post_ids())
        )

    def _append(
        self,
        batch: EventBatch,
        with_ids: bool = False,
        ad_log: Sequence[AdLogRow] = (),
        pages: Sequence[PageSourcesRow] = (),
    ) -> IngestResult:
        with self.store.transaction() as tx:
            kept = batch if batch.id is None else batch.take(self._new_ids(batch.id.tolist()))
            first, last = self.store.append_events(tx, kept) if len(kept) else (0, -1)
            ad_seqs = self.store.append_ad_log(tx, ad_log) if ad_log else []
            if pages:
                self.store.add_page_sources(tx, pages)
        if ad_log:
            self._heard_ad_log(ad_log, ad_seqs)
        ids: list[str] = []
        if with_ids:
            given = kept.id.tolist() if kept.id is not None else [None] * len(kept)
            ids = [c if c is not None else f"{SERVER_ID_PREFIX}{first + j}" for j, c in enumerate(given)]
        if len(kept):
            self._notify(kept.with_seq(first))
        return IngestResult(
            accepted=len(kept), duplicates=len(batch) - len(kept), ids=ids, first_seq=first, last_seq=last
        )

    def _new_ids(self, ids: list[str | None]) -> np.ndarray:
        """Mask of the events to keep: no client id, or one neither stored nor seen earlier in the batch."""
        existing = self.store.event_ids_exist([c for c in ids if c is not None])
        keep = np.ones(len(ids), bool)
        seen: set[str] = set()
        for j, c in enumerate(ids):
            if c is not None:
                if c in existing or c in seen:
                    keep[j] = False
                else:
                    seen.add(c)
        return keep

    # ------------------------------------------------------------------ user settings and rights
    def set_muted_words(self, user_id: str, words: Iterable[Any]) -> list[str]:
        user = self._require_user(user_id)
        lim = self.limits
        words = list(words)
        if len(words) > lim.max_muted_words:
            raise IngestError([ItemError(-1, "words", f"at most {lim.max_muted_words} muted words")])
        # checked as sent (the schema's rule), then normalised: stripped, lower-cased, blanks dropped
        if any(not isinstance(w, str) or len(w) > lim.max_muted_word_chars or has_unsafe_chars(w) for w in words):
            raise IngestError(
                [
                    ItemError(
                        -1,
                        "words",
                        f"each muted word must be at most {lim.max_muted_word_chars} characters, without "
                        "control or invisible characters",
                    )
                ]
            )
        clean = sorted({w.strip().lower()[: lim.max_muted_word_chars] for w in words if w.strip()})
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

    def set_meta(self, key: str, value: str, tx: Transaction | None = None) -> None:
        """Durably set one key of the store's meta table (cursors, secrets): the one door for meta writes. With
        ``tx`` (a transaction of this Ingestor's store, still open) the value commits with whatever else the caller
        writes in it, or not at all: a consumer's cursor advanced with what it made of the events it read."""
        if tx is not None:
            self.store.set_meta(tx, key, value)
            return
        with self.store.transaction() as tx:
            self.store.set_meta(tx, key, value)

    def meta_once(self, key: str, make: Callable[[], str]) -> str:
        """The meta value of ``key``, made by ``make()`` and stored when there is none: read and written under the
        store's writer lock, so that processes starting together (several workers on a fresh store) all get the
        one value the first of them made."""
        have = self.store.get_meta(key)
        if have is not None:
            return have
        with self.store.transaction() as tx:
            have = self.store.get_meta(key)  # another process may have made it while this one waited for the lock
            if have is None:
                have = make()
                self.store.set_meta(tx, key, have)
        return have

    def issue_token(self, user_id: str) -> str:
        """A fresh API token for an existing user, replacing the old one; returned once, only its hash is stored."""
        user = self._require_user(user_id)
        token = secrets.token_urlsafe(24)
        with self.store.transaction() as tx:
            self.store.set_token_hash(tx, user, hash_token(token))
        return token

    def delete_user_data(self, user_id: str, *, posts: bool = False) -> dict[str, int]:
        """Data-rights erasure in one transaction: the person's events, edges, muted words and preferences are
        deleted and their user row anonymised (``Store.delete_user_data``); with ``posts`` their posts are
        tombstoned too (``Store.erase_posts``). Entity listeners then hear ``("posts_erased", post idx)`` and
        ``("deleted", [user])``. Returns rows changed by kind (``posts``: posts tombstoned, 0 unless asked)."""
        user = self._require_user(user_id)
        with self.store.transaction() as tx:
            counts = self.store.delete_user_data(tx, user)
            erased = self.store.erase_posts(tx, user) if posts else []
        counts["posts"] = len(erased)
        for cb in self.entity_listeners:
            if erased:
                cb("posts_erased", erased)
            cb("deleted", [user])
        return counts

    # ------------------------------------------------------------------ moderation
    def score_posts(self, scores: Mapping[str, tuple[Sequence[int], Sequence[float]]]) -> int:
        """Store classifier scores of existing posts (name -> (post idx, scores)), in one transaction: posts
        written before a classifier was trained (``glassfeed moderation score``). Returns the scores written."""
        with self.store.transaction() as tx:
            for name, (posts, values) in scores.items():
                self.store.set_post_scores(tx, name, list(posts), list(values))
        return sum(len(p) for p, _ in scores.values())

    def append_moderation(
        self, records: Sequence[ModerationRecord], events: EventBatch | None = None
    ) -> tuple[list[int], IngestResult | None]:
        """Append moderation records (validated by their maker, ``glassfeed.moderation``) and, in the same
        transaction, resolved events that go with them (a user's report is a ``report`` event too: it trains the
        report head and hides the post from the reporter). Returns the records' numbers and the events' result;
        moderation listeners then hear the records, event listeners the events."""
        result = None
        with self.store.transaction() as tx:
            seqs = self.store.append_moderation(tx, records)
            if events is not None and len(events):
                first, last = self.store.append_events(tx, events)
                result = IngestResult(accepted=len(events), duplicates=0, ids=[], first_seq=first, last_seq=last)
        if result is not None and events is not None:
            self._notify(events.with_seq(result.first_seq))
        done = [r._replace(seq=q) for r, q in zip(records, seqs)]
        for cb in self.moderation_listeners:
            cb(done)
        return seqs, result

    # ------------------------------------------------------------------ ads
    def put_ad_campaign(self, row: AdCampaignRow) -> None:
        """Durably create or replace a campaign (validated by its maker, ``glassfeed.ads``); ad listeners then hear
        ``("campaign", row)``."""
        with self.store.transaction() as tx:
            self.store.upsert_ad_campaign(tx, row)
        for cb in self.ad_listeners:
            cb("campaign", [row])

    def append_ad_log(self, rows: Sequence[AdLogRow]) -> list[int]:
        """Append rows to the ad log in one transaction (impressions, clicks, engagements, hides with the price
        billed; made by ``glassfeed.ads``) and return their numbers; ad listeners then hear ``("log", rows)``."""
        if not rows:
            return []
        with self.store.transaction() as tx:
            seqs = self.store.append_ad_log(tx, rows)
        self._heard_ad_log(rows, seqs)
        return seqs

    def _heard_ad_log(self, rows: Sequence[AdLogRow], seqs: list[int]) -> None:
        done = [r._replace(seq=q) for r, q in zip(rows, seqs)]
        for cb in self.ad_listeners:
            cb("log", done)

    # ------------------------------------------------------------------ experiments
    def put_experiment(self, row: ExperimentRow) -> None:
        """Durably create or replace an experiment (validated by its maker, ``glassfeed.experiments``); experiment
        listeners then hear ``("experiment", [row])``."""
        with self.store.transaction() as tx:
            self.store.upsert_experiment(tx, row)
        for cb in self.experiment_listeners:
            cb("experiment", [row])

    def add_exposures(self, rows: Sequence[ExposureRow]) -> int:
        """Durably record first exposures in one transaction (one per experiment and person: a repeat is ignored)
        and return how many were new; experiment listeners then hear ``("exposures", rows)``."""
        if not rows:
            return 0
        with self.store.transaction() as tx:
            new = self.store.add_exposures(tx, rows)
        for cb in self.experiment_listeners:
            cb("exposures", list(rows))
        return new

    # ------------------------------------------------------------------ helpers
    def _notify(self, batch: EventBatch) -> None:
        for cb in self.listeners:
            cb(batch)

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

    def _check_id(self, v: Any, i: int, name: str, errors: list[ItemError]) -> str | None:
        """``v`` when it is a valid external id (or handle); else ``None``, with the error recorded. Event ids
        follow the same character rule (``WireField.plain``), both from ``domain.spec.has_unsafe_chars``."""
        if not isinstance(v, str) or not v or len(v) > self.limits.max_id_chars or v.strip() != v:
            errors.append(
                ItemError(
                    i,
                    name,
                    f"must be a non-empty string of at most {self.limits.max_id_chars}"
                    " characters without surrounding spaces",
                )
            )
            return None
        if has_unsafe_chars(v):
            errors.append(ItemError(i, name, UNSAFE_CHARS_REASON))
            return None
        return v

    def _check_names(self, v: Any, i: int, name: str, errors: list[ItemError]) -> list[str] | None:
        """A list of topic or label names (absent = empty), checked by ``names_problem``; else ``None``, with
        the error."""
        problem = names_problem(v, self.limits)
        if problem:
            errors.append(ItemError(i, name, problem))
            return None
        return [] if v is None else list(v)


def names_problem(v: Any, limits: IngestLimits) -> str | None:
    """What is wrong with ``v`` as a list of topic or label names (``None`` = absent = empty), or ``None``: at most
    ``max_list_items`` names of 1 to ``max_topic_chars`` characters without commas or unsafe characters. The one
    rule for topics, labels, interests and a person's topic preferences."""
    names = [] if v is None else v  # `{}`, `""` or `0` are not "absent": refused below
    if not isinstance(names, list) or len(names) > limits.max_list_items:
        return f"must be a list of at most {limits.max_list_items} names"
    for t in names:
        if not isinstance(t, str) or not 0 < len(t) <= limits.max_topic_chars or "," in t or has_unsafe_chars(t):
            return (
                f"each name must be a string of 1 to {limits.max_topic_chars} characters without commas"
                " or invisible characters"
            )
    return None


# ---------------------------------------------------------------------------------------------- the event rules
# Both validators below are derived from ``glassfeed.domain.spec``: ``wire_to_batch`` parses what only the wire
# can get wrong (types, unknown names, unknown fields) and ``batch_errors`` checks every rule that resolved
# columns can express (ranges, limits, targets per kind, fields a kind needs). ``Ingestor.parse_events`` runs
# both, ``Ingestor.ingest_batch`` the second alone, so one rule has one implementation.

#: Most errors a rejected batch reports.
MAX_REPORTED_ERRORS = 1000
_WIRE_NAMES = frozenset(WIRE_FIELD_NAMES)
_FIELD_ORDER = {name: i for i, name in enumerate(("", *WIRE_FIELD_NAMES))}
_KIND_CODE: dict[str, int] = {k.wire: int(k) for k in EventKind}
_KIND_CODES = np.array(sorted(_KIND_CODE.values()), np.int64)
_NULL = {c.name: c.null for c in EVENT_COLUMNS}
_INT32_MAX = np.iinfo(np.int32).max
#: Placeholders for a value given but unusable (its error is already recorded): present, and refused by the rules.
_BAD_REF, _BAD_NUMBER, _BAD_INDEX = 0, -1.0, -2


def bound_reason(f: WireField, limits: IngestLimits) -> str:
    """The error for a value of ``f`` outside its type or bound (the same words for both)."""
    lim = getattr(limits, f.limit) if f.limit else None
    if f.bound is Bound.CHARS:
        return f"must be a {'non-empty ' if f.nonempty else ''}string of at most {lim} characters"
    if f.bound is Bound.AT_MOST:
        return f"must be a number in [0, {lim:.0f}]"
    if f.bound is Bound.BELOW:
        return f"must be an integer in [0, {lim})"
    raise ValueError(f"field {f.name!r} has no bound")


#: One vectorised check: the field it names, the mask of bad items, and the reason for item i.
Check = tuple[str, np.ndarray, Callable[[int], str]]


def batch_errors(batch: EventBatch, limits: IngestLimits, now: float, n_users: int, n_posts: int) -> list[ItemError]:
    """Every rule of the event specification over resolved columns, vectorised: known kinds, user/post idx in
    the store's ranges (``1..n_users``, ``1..n_posts``), each field's bound from ``limits``, each kind's target
    and required fields. At most ``MAX_REPORTED_ERRORS`` errors, by index then field."""
    checks: list[Check] = []
    for f in EVENT_FIELDS:
        checks.extend(_field_checks(f, batch, limits, now, n_users, n_posts))
    checks.extend(_kind_checks(batch))
    any_bad = np.zeros(len(batch), bool)
    for _, bad, _ in checks:
        any_bad |= bad
    if not any_bad.any():
        return []
    rows = np.flatnonzero(any_bad)[:MAX_REPORTED_ERRORS]
    out = [ItemError(i, name, reason(i)) for name, bad, reason in checks for i in rows[bad[rows]].tolist()]
    return _merge([], out)


def _always(reason: str) -> Callable[[int], str]:
    return lambda i: reason


def _field_checks(
    f: WireField, batch: EventBatch, limits: IngestLimits, now: float, n_users: int, n_posts: int
) -> list[Check]:
    col = getattr(batch, f.name)
    if col is None:
        return []
    lim = float(getattr(limits, f.limit)) if f.limit else math.inf
    if f.type is WireType.KIND:
        return [(f.name, ~np.isin(col, _KIND_CODES), lambda i: f"unknown event kind code {int(col[i])}")]
    if f.type in (WireType.USER, WireType.POST):
        top, what = (n_users, "user") if f.type is WireType.USER else (n_posts, "post")
        bad = (col < 1) | (col > top)
        if not f.required:
            bad &= col != _NULL[f.name]
        return [(f.name, bad, lambda i: f"unknown {what} index {int(col[i])}")]
    if f.type is WireType.TIME:
        return [
            (f.name, ~np.isfinite(col) | (col < 0), _always(_BAD_TIME)),
            (f.name, col > now + lim, lambda i: f"is {col[i] - now:.0f} s in the future (limit {lim:.0f} s)"),
        ]
    reason = _always(bound_reason(f, limits))
    if f.type is WireType.NUMBER:  # NaN is "absent"
        return [(f.name, (col < 0) | (col > lim), reason)]
    if f.type is WireType.INTEGER:
        return [(f.name, (col != _NULL[f.name]) & ((col < 0) | (col >= lim)), reason)]
    vals = col.tolist()  # an object column of strings (None = absent)
    out = [(f.name, _bad_strings(vals, lim, f.nonempty), reason)]
    if f.plain:
        out.append((f.name, unsafe_mask(vals), _always(UNSAFE_CHARS_REASON)))
    prefix = f.reserved_prefix
    if prefix:
        taken = np.zeros(len(vals), bool)
        if any(map(str.startswith, (v for v in vals if type(v) is str), repeat(prefix))):
            taken = np.fromiter((type(v) is str and v.startswith(prefix) for v in vals), bool, len(vals))
        out.append((f.name, taken, _always(f"ids starting with {prefix!r} are reserved")))
    return out


def _bad_strings(vals: list[Any], lim: float, nonempty: bool) -> np.ndarray:
    """Mask of the values (``None`` = absent) that are not strings of at most ``lim`` characters (or are empty
    when ``nonempty``); one pass in C when all are fine."""
    types = set(map(type, vals))
    if types <= {str, type(None)}:
        strs = [v for v in vals if v is not None] if type(None) in types else vals
        lens = list(map(len, strs))
        if not lens or (max(lens) <= lim and (not nonempty or min(lens) > 0)):
            return np.zeros(len(vals), bool)
    return np.fromiter(
        (v is not None and (type(v) is not str or len(v) > lim or (nonempty and not v)) for v in vals), bool, len(vals)
    )


def _present(batch: EventBatch, name: str) -> np.ndarray:
    col = getattr(batch, name)
    if col is None:
        return np.zeros(len(batch), bool)
    if col.dtype == object:
        return np.fromiter((v is not None for v in col.tolist()), bool, len(col))
    return ~np.isnan(col) if np.issubdtype(col.dtype, np.floating) else col != _NULL[name]


def _kind_checks(batch: EventBatch) -> list[Check]:
    kind = batch.kind

    def wire(i: int) -> str:
        return EventKind(int(kind[i])).wire

    has_post, has_user = _present(batch, "post"), _present(batch, "target_user")
    missing: dict[Target, tuple[str, np.ndarray, Callable[[int], str]]] = {
        Target.USER: ("target_user", ~has_user, lambda i: f"required for {wire(i)}"),
        Target.POST_OR_USER: ("post", ~has_post & ~has_user, lambda i: f"{wire(i)} needs a post or a target_user"),
        Target.POST: ("post", ~has_post, lambda i: f"required for {wire(i)}"),
    }
    out: list[Check] = []
    for target, (name, lacking, reason) in missing.items():
        codes = [int(k) for k, r in KIND_RULES.items() if r.target is target]
        out.append((name, np.isin(kind, codes) & lacking, reason))
    for k, r in KIND_RULES.items():
        for name in r.requires:
            out.append((name, (kind == int(k)) & ~_present(batch, name), _always(r.requires_reason)))
        if r.value_range is not None:
            lo, hi = r.value_range
            with np.errstate(invalid="ignore"):
                outside = (kind == int(k)) & ((batch.value < lo) | (batch.value > hi))
            out.append(("value", outside, _always(f"{k.wire} takes a value from {lo:g} to {hi:g}")))
    return out


def _merge(first: list[ItemError], second: list[ItemError]) -> list[ItemError]:
    """Both lists' errors, one per (item, field) (``first`` wins), none for an item that is not an object,
    sorted by item then by the specification's field order, at most ``MAX_REPORTED_ERRORS``."""
    if not second and len(first) <= 1:
        return first
    dead = {e.index for e in first if e.field == ""}
    out: dict[tuple[int, str], ItemError] = {}
    for e in (*first, *second):
        if (e.index, e.field) not in out and (e.field == "" or e.index not in dead):
            out[(e.index, e.field)] = e
    order = len(_FIELD_ORDER)
    return sorted(out.values(), key=lambda e: (e.index, _FIELD_ORDER.get(e.field, order), e.field))[
        :MAX_REPORTED_ERRORS
    ]


def wire_to_batch(
    records: Sequence[Any], users: Mapping[str, int], posts: Mapping[str, int], now: float
) -> tuple[EventBatch, list[ItemError]]:
    """Parse wire events into resolved columns, column by column (a fast pass when a column is clean, an item by
    item pass that names the bad ones otherwise). Returns the batch and the errors only the wire can have: not
    an object, an unknown field, a wrong type, an unknown kind, user or post. A value given but unusable gets a
    placeholder that ``batch_errors`` refuses too (its duplicate error is dropped by ``_merge``)."""
    n = len(records)
    errors: list[ItemError] = []
    recs: Sequence[Any] = records
    if not all(type(r) is dict for r in records):
        errors += [ItemError(i, "", "must be an object") for i, r in enumerate(records) if not isinstance(r, dict)]
        recs = [r if isinstance(r, dict) else {} for r in records]
    keys: set[str] = set().union(*(r.keys() for r in recs))
    if not keys <= _WIRE_NAMES:
        for i, r in enumerate(recs):
            unknown = r.keys() - _WIRE_NAMES
            if unknown:
                errors.append(ItemError(i, sorted(unknown)[0], "unknown field"))
    cols: dict[str, Any] = {}
    for f in EVENT_FIELDS:
        if f.name not in keys and not f.required:
            continue
        raw = [r.get(f.name) for r in recs]
        if f.type is WireType.KIND:
            cols[f.name] = _parse_kinds(raw, errors)
        elif f.type in (WireType.USER, WireType.POST):
            ids = users if f.type is WireType.USER else posts
            cols[f.name] = _parse_refs(f, raw, ids, errors)
        elif f.type is WireType.TIME:
            cols[f.name] = _parse_times(f, raw, now, errors)
        elif f.type is WireType.NUMBER:
            cols[f.name] = _parse_numbers(raw)
        elif f.type is WireType.INTEGER:
            cols[f.name] = _parse_integers(raw)
        else:  # strings: an object column, checked (types included) by batch_errors
            cols[f.name] = _object_column(raw)
    if "ts" not in cols:
        cols["ts"] = np.full(n, now)
    return EventBatch.from_columns(**cols), errors


def _object_column(raw: list[Any]) -> np.ndarray:
    """A 1-d object array of the values as given (a list value stays one element, for the checks to refuse)."""
    if set(map(type, raw)) <= {str, type(None)}:
        return np.array(raw, dtype=object)
    out = np.empty(len(raw), object)
    for i, v in enumerate(raw):
        out[i] = v
    return out


def _parse_kinds(raw: list[Any], errors: list[ItemError]) -> np.ndarray:
    try:
        codes = np.fromiter(map(_KIND_CODE.get, raw, repeat(0)), np.int8, len(raw))
    except TypeError:  # an unhashable value
        codes = np.fromiter((_KIND_CODE.get(k, 0) if type(k) is str else 0 for k in raw), np.int8, len(raw))
    for i in np.flatnonzero(codes == 0).tolist():
        errors.append(ItemError(i, "kind", f"unknown event kind {raw[i]!r}; expected one of {', '.join(KIND_NAMES)}"))
    return codes


def _parse_refs(f: WireField, raw: list[Any], ids: Mapping[str, int], errors: list[ItemError]) -> np.ndarray:
    try:
        idx = np.fromiter(map(ids.get, raw, repeat(0)), np.int64, len(raw))
    except TypeError:  # an unhashable value
        idx = np.fromiter((ids.get(v, 0) if type(v) is str else 0 for v in raw), np.int64, len(raw))
    what = "user" if f.type is WireType.USER else "post"
    for i in np.flatnonzero(idx == 0).tolist():
        v = raw[i]
        if v is None:
            if f.required:
                errors.append(ItemError(i, f.name, "required"))
            else:
                idx[i] = _NULL[f.name]
        else:
            errors.append(ItemError(i, f.name, f"unknown {what} {v!r}"))
    return idx


def _parse_times(f: WireField, raw: list[Any], now: float, errors: list[ItemError]) -> np.ndarray:
    types = set(map(type, raw))
    if types <= {float, int, type(None)}:
        try:
            return np.array([now if v is None else v for v in raw] if type(None) in types else raw, np.float64)
        except OverflowError:
            pass
    out = np.empty(len(raw))
    for i, v in enumerate(raw):
        try:
            out[i] = now if v is None else parse_ts(v)
        except ValueError as e:
            errors.append(ItemError(i, f.name, str(e)))
            out[i] = now
    return out


def _parse_numbers(raw: list[Any]) -> np.ndarray:
    """Numbers -> float64 (None -> NaN); anything else (a boolean, a string, NaN, too big) -> -1, refused."""
    types = set(map(type, raw))
    if types <= {float, int, type(None)}:
        try:
            out = np.array([np.nan if v is None else v for v in raw], np.float64)
            if int(np.isnan(out).sum()) == raw.count(None):
                return out
        except OverflowError:
            pass
    return np.fromiter((np.nan if v is None else _number(v) for v in raw), np.float64, len(raw))


def _number(v: Any) -> float:
    if type(v) in (int, float):
        try:
            f = float(v)
        except OverflowError:
            return _BAD_NUMBER
        return f if f == f else _BAD_NUMBER
    return _BAD_NUMBER


def _parse_integers(raw: list[Any]) -> np.ndarray:
    """Integers -> int32 (None -> -1); anything else, negatives included, -> -2 (refused by the rules); values
    beyond int32 are clipped (still refused: every limit is below)."""
    if set(map(type, raw)) <= {int, type(None)}:
        try:
            out = np.fromiter((-1 if v is None else v for v in raw), np.int64, len(raw))
            if int((out < 0).sum()) == raw.count(None):
                return np.minimum(out, _INT32_MAX).astype(np.int32)
        except OverflowError:
            pass
    ints = (json_integer(v) for v in raw)
    return np.fromiter(
        (
            -1 if v is None else min(i, _INT32_MAX) if i is not None and i >= 0 else _BAD_INDEX
            for v, i in zip(raw, ints)
        ),
        np.int32,
        len(raw),
    )


def json_integer(v: Any) -> int | None:
    """``v`` as an integer when JSON Schema calls it one (an int, or a float with no fraction such as ``260.0``;
    never a boolean); else ``None``."""
    if type(v) is int:
        return v
    if type(v) is float and v.is_integer():
        return int(v)
    return None
