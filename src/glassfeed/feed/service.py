"""The feed as a service: serving state + models + policies + sessions, for the API, CLI and Bluesky.

``FeedService.feed`` ranks one page through ``pipeline.rank``, logs impressions through the Ingestor (with the
page's request id), remembers explanations for ``why``, and pages with opaque, signed cursors: pages of one
session share the session's start time and never repeat a post.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import io
import json
import logging
import secrets
import threading
import time
import uuid
import weakref
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import redis

from glassfeed.domain import EventBatch, EventKind
from glassfeed.feed.breadth import breadth_notes
from glassfeed.feed.contributions import PageTotals, measure, page_totals
from glassfeed.feed.contributions import utc_minute as _when
from glassfeed.feed.explain import adjustment_list, explain_item, source_reason, top_contributions
from glassfeed.feed.explore import explore_note, explored_items
from glassfeed.feed.mixing import fill_note, filled_items
from glassfeed.feed.pipeline import Models, Pages, rank
from glassfeed.feed.policy import SOURCES, Policy, PolicyError, TypicalContributions, load_policies
from glassfeed.feed.sessions import format_request_id, make_sessions, make_shared_pages, parse_request_id
from glassfeed.feed.train import (
    POINTER,
    Progress,
    TrainReport,
    current_models,
    erase_user_rows,
    load_factors,
    load_models,
    models_dir,
    train_all,
)
from glassfeed.ingest import Ingestor, names_problem
from glassfeed.settings import IngestLimits, Settings, packaged_settings
from glassfeed.state import C, ServingState
from glassfeed.store import AdLogRow, Change, PageSourcesRow

log = logging.getLogger("glassfeed.feed")
DEFAULT_POLICY = "engagement"
MAX_LIMIT = 100
#: The longest wait between two attempts to tail a store that keeps failing (``_tail_loop``).
TAIL_BACKOFF_MAX_S = 10.0


class FeedError(ValueError):
    """A bad feed request (unknown policy, bad cursor, ...): ``field`` and ``status`` for the 4xx answer."""

    def __init__(self, field: str, reason: str, status: int = 400) -> None:
        super().__init__(f"{field}: {reason}")
        self.field, self.reason, self.status = field, reason, status


@dataclass(frozen=True, slots=True)
class ServedPage:
    """One served page's breakdown, kept for ``why`` (the arrays are the page's own, ``Pages`` columns)."""

    policy: Policy
    post: np.ndarray
    source: np.ndarray
    via: np.ndarray
    probs: np.ndarray | None
    deltas: np.ndarray
    score: np.ndarray
    interstitial: np.ndarray
    notice: str | None
    fill: dict[int, str] = field(default_factory=dict)  # page position -> why it was placed beyond its side's cap
    totals: PageTotals | None = None  # for the statement's measured contributions (None: no predictions)
    ranker: str = "heads"  # what ordered the page (``Pages.ranker``): its explanation's base when probs is None


_F = TypeVar("_F", bound=Callable[..., Any])


def _shared_state(method: _F) -> _F:
    """``[serving] redis_url`` unreachable during ``method``: a 503 ``FeedError`` saying so, not a 500."""

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except redis.RedisError as e:
            raise FeedError(
                "service", f"the state shared by the workers (Redis) is unreachable: {type(e).__name__}; retry", 503
            ) from None

    return cast(_F, wrapper)


class FeedService:
    """Owns the serving state for one store; thread-safe (one lock around state reads and writes)."""

    def __init__(
        self,
        ingestor: Ingestor,
        settings: Settings | None = None,
        *,
        clock: str | None = None,
        models_folder: str | Path | None = None,
        secret: bytes | None = None,
        compile_trees: bool = False,
    ) -> None:
        """``settings`` (default: the packaged ones) gives the ``serving``, ``state`` and ``retrieval`` sections;
        ``clock`` ("wall" or "data"), when given, replaces ``serving.clock``. ``compile_trees``: compile the heads'
        trees to native code whenever a model version is loaded (``feed/compiled.py``: the same pages, the heads ~10x
        sooner, ~1.4 s per 100 trees at each load); the HTTP server passes ``[serving] compiled_trees``, one-shot
        commands and the simulator (which retrains often and ranks in large batches) leave it off."""
        settings = settings or packaged_settings()
        self.settings = settings if clock is None else settings.replace(serving={"clock": clock})
        self.ingestor = ingestor
        self.store = ingestor.store
        self.policies = load_policies(self.settings.serving.policies_dir or None)
        retention = self.settings.state.seen_retention_h
        for pol in self.policies.values():  # seen posts older than the retention are forgotten (state.seen)
            if pol.filters.filter_seen and pol.filters.max_age_hours > retention:
                raise ValueError(
                    f"policy {pol.name!r}: max_age_hours {pol.filters.max_age_hours} exceeds [state] seen_retention_h"
                    f" {retention}: posts it could serve would reappear once forgotten; raise the retention"
                )
        keep_h = self.settings.state.post_retention_days * 24.0
        for pol in self.policies.values():  # the state holds no post older than its window (state.posts)
            if keep_h and pol.filters.max_age_hours > keep_h:
                raise ValueError(
                    f"policy {pol.name!r}: max_age_hours {pol.filters.max_age_hours} exceeds [state]"
                    f" post_retention_days {keep_h / 24.0:g} (days): the serving state does not hold posts that old;"
                    " raise the retention"
                )
        self.lock = threading.RLock()
        self.compile_trees = compile_trees
        self.clock_mode = self.settings.serving.clock
        self.models_folder = Path(models_folder) if models_folder else models_dir(self.store.path)
        self.secret = secret or self._secret()
        # the last pages served to each recently served user, for ``why`` (least recently served user dropped first)
        self.explanations: OrderedDict[int, deque[ServedPage]] = OrderedDict()
        self.models = Models()
        self.model_version, self.model_trained_at = "untrained", 0.0
        #: called with every page served (after it is built, outside the lock): metrics, audits
        self.page_listeners: list[Callable[[dict[str, Any]], None]] = []
        self.sessions = make_sessions(self.settings.serving)
        #: the pages kept for ``why`` where every worker finds them (Redis), or None: this worker's own cache only
        self.shared_pages = make_shared_pages(self.settings.serving)
        self._change_seq = 0  # the newest store change (``Store.changes_since``) this state has seen
        self._erased_here: dict[int, bool] = {}  # people this worker erased whose change row it has not read back
        #: called with each newly built serving state before it is served (the moderation lever installs its
        #: outcome), and after each ``catch_up`` (it folds in what other workers logged); both under ``lock``
        self.state_listeners: list[Callable[[ServingState], None]] = []
        self.tail_listeners: list[Callable[[], None]] = []
        #: places ads among a page's items (the ad lever installs it): (user, policy, items, now, request_id, the
        #: page's post idx) -> the items with the ads in place; called under ``lock``
        self.ad_server: (
            Callable[[int, Policy, list[dict[str, Any]], float, str, np.ndarray], list[dict[str, Any]]] | None
        ) = None
        #: the feed policy of a person who named none and saved none (the experiments lever installs it): (user, now)
        #: -> a policy name, or None for the default; ``now`` is the time a page is being served with it (the arm's
        #: exposure), None when the policy is only asked about; called under ``lock``
        self.policy_chooser: Callable[[int, float | None], str | None] | None = None
        self.reload()
        ingestor.listeners.append(self._on_events)
        ingestor.entity_listeners.append(self._on_entities)
        #: pages whose impressions are queued: (user, posts, ts, request id, surface, source names in page order)
        self._pending: list[tuple[int, np.ndarray, float, str, str, tuple[str, ...]]] = []
        self._pending_ad_log: list[AdLogRow] = []  # the ad lever's impressions (glassfeed.ads): same commit
        self._pending_events: list[EventBatch] = []  # other levers' served items (suggestions): same commit
        self._pending_lock = threading.Lock()
        self._flush_lock = threading.RLock()  # held from draining the queue until its commit
        self._flush_s = self.settings.serving.impression_flush_ms / 1000.0
        self._wake = threading.Event()
        self._closed = False
        self._flusher = threading.Thread(target=self._flush_loop, name="gf-impressions", daemon=True)
        self._flusher.start()
        self._tail_s = self.settings.serving.tail_interval_ms / 1000.0
        self._stop_tail = threading.Event()
        self._tailer: threading.Thread | None = None
        if self._tail_s > 0:
            self._tailer = threading.Thread(
                target=_tail_loop, args=(weakref.ref(self), self._stop_tail, self._tail_s), name="gf-tail", daemon=True
            )
            self._tailer.start()

    # ------------------------------------------------------------------ setup
    def _secret(self) -> bytes:
        return cursor_secret(self.ingestor)

    def reload(self) -> None:
        """Load the trained models from ``models_folder`` and rebuild the serving state from the store with them
        (after training elsewhere, e.g. the simulator's scheduled retraining)."""
        path, version = current_models(self.models_folder)  # one version's heads and factors, whatever happens
        trained = load_models(path, self.settings.retrieval)
        if self.compile_trees:  # before the swap: every page of a version is served alike
            trained.heads.compile_trees()
        user_vec, side = load_factors(path)
        meta = path / "heads" / "heads.json"
        trained_at = meta.stat().st_mtime if meta.is_file() else 0.0
        changes = self.store.last_change()  # before reading: a change made meanwhile is applied again (idempotent)
        state = ServingState.from_store(self.store, self.settings.state, clock=self._now, user_vec=user_vec, side=side)
        with self.lock:
            for listener in self.state_listeners:
                listener(state)
            self.state = state
            self._change_seq = changes
            self.models = trained
            self.model_version, self.model_trained_at = version, trained_at

    def reload_if_new(self) -> bool:
        """Reload when the models folder's ``CURRENT`` names another version than the one served (a trainer
        process wrote one); polled by the tail loop. Returns whether it reloaded."""
        if not (self.models_folder / POINTER).is_file():  # a flat folder changes only by this service's retrain
            return False
        try:
            _, version = current_models(self.models_folder)
        except (OSError, ValueError):
            return False
        if version == self.model_version:
            return False
        self.reload()
        return True

    def _now(self) -> float:
        if self.clock_mode == "data":
            st = getattr(self, "state", None)
            return st.newest_ts if st is not None and st.newest_ts else time.time()
        return time.time()

    def now(self) -> float:
        return self._now()

    def retrain(self, max_rows: int = 400_000, progress: Progress | None = None) -> TrainReport:
        """Train all models from the store, then rebuild the state with them (the store stays the truth)."""
        report = train_all(
            self.store,
            self.models_folder,
            max_rows=max_rows,
            progress=progress,
            retrieval=self.settings.retrieval,
            state=self.settings.state,
            train=self.settings.train,
        )
        self.reload()
        return report

    # ------------------------------------------------------------------ listeners (write path)
    def _on_events(self, batch: EventBatch) -> None:
        with self.lock:
            self.state.apply_committed(batch, self.store)  # in seq order with other workers' events, never twice
            try:
                self.sessions.record(batch)
            except redis.RedisError:  # the events are committed: a served set missing them must not fail the write
                log.warning("could not record impressions in the shared sessions (Redis)", exc_info=True)

    # ------------------------------------------------------------------ tailing the store (other workers' writes)
    def catch_up(self) -> int:
        """Fold in what other writers committed to the store (other workers, a separate ``glassfeed bluesky
        ingest``): their users and posts (``Store.refresh_ids`` and the state's tables), then the changes the event
        log does not number (``Store.changes_since``: muted words, preferences, labels, erasures), each handled as
        this worker's own write is, then their events by sequence number (``ServingState.catch_up``). Returns the
        events applied.

        Changes come before events: a person's events read after their erasure are the ones they made since (the
        earlier ones are gone from the store), so they must not be forgotten again. The changes this worker made
        itself come back too: re-reading a stored value changes nothing, and an erasure already applied here is
        not applied again."""
        with self.lock:
            self.store.refresh_ids()
            self.state.add_users(self.store.load_users(since_idx=self.state.users.n))
            self.state.add_posts_from_store(self.store)
            changes = self.store.changes_since(self._change_seq)
            for kind, idxs in _runs(changes):
                if kind == "deleted":
                    idxs = [u for u in idxs if not self._erased_here.pop(u, False)]
                if idxs:
                    self._apply_entities(kind, idxs)
            if changes:
                self._change_seq = changes[-1].seq
            n = self.state.catch_up(self.store)
            for listener in self.tail_listeners:
                listener()
            return n

    def _on_entities(self, kind: str, idxs: list[int]) -> None:
        """The Ingestor's entity listener: this worker's own writes (``_apply_entities``)."""
        with self.lock:
            if kind == "deleted":
                self._erased_here.update(dict.fromkeys(idxs, True))  # its change-log row: not applied twice
            self._apply_entities(kind, idxs)

    def _apply_entities(self, kind: str, idxs: list[int]) -> None:
        """Install what changed in the store for these users or posts (the values re-read from the store)."""
        with self.lock:
            if kind == "users":
                self.state.add_users_from_store(self.store, idxs)
            elif kind == "posts":
                self.state.add_posts_from_store(self.store)
            elif kind == "muted_words":
                words = self.store.load_muted_words()
                for u in idxs:
                    self.state.feedback.set_muted_words(u, words.get(u, []))
            elif kind == "prefs":
                prefs = self.store.load_prefs()
                for u in idxs:
                    self.state.feedback.set_prefs(u, prefs.get(u, {}))
            elif kind == "labels":
                self.state.set_labels(self.store.post_labels(idxs))
            elif kind == "posts_erased":
                self.state.forget_posts(idxs)
            elif kind == "deleted":
                for u in idxs:
                    self.state.forget_user(u)
                    self.explanations.pop(u, None)
                    if self.shared_pages is not None:
                        self.shared_pages.forget(u)

    # ------------------------------------------------------------------ policies and preferences
    def user_idx(self, user_id: str) -> int:
        idx = self.store.user_idx(user_id)
        if idx is None:
            raise FeedError("user", f"unknown user {user_id!r}", 404)
        return idx

    def policy_for(self, user: int, name: str | None, serving_at: float | None = None) -> Policy:
        """The policy ``name``, else the person's saved choice, else their experiment arm's (``policy_chooser``;
        ``serving_at``: a page is served with it now), else the default, with the person's weights for it."""
        prefs = self.state.feedback.prefs(user) if user else {}
        if name is None:  # absent: the person's saved choice, else the default (an empty name is refused below)
            name = prefs.get("policy") or self._chosen_policy(user, serving_at) or DEFAULT_POLICY
        pol = self.policies.get(name)
        if pol is None:
            raise FeedError("policy", f"unknown policy {name!r}; expected one of {', '.join(self.policies)}")
        try:
            return pol.with_user_weights(prefs.get("weights", {}).get(pol.name))
        except PolicyError:
            return pol  # saved weights outside new bounds: fall back to the platform defaults

    def _chosen_policy(self, user: int, serving_at: float | None) -> str | None:
        chosen = self.policy_chooser(user, serving_at) if self.policy_chooser is not None else None
        return chosen if chosen in self.policies else None  # a policy file removed since: the default

    def save_prefs(
        self,
        user_id: str,
        *,
        policy: str | None = None,
        weights: dict[str, float] | None = None,
        topics_more: list[str] | None = None,
        topics_less: list[str] | None = None,
        daily_minutes: int | None = None,
    ) -> dict[str, Any]:
        """Validate and persist a person's feed choices; weights are checked against the policy's bounds, the daily
        usage budget (``daily_minutes``; 0 removes it) against ``[wellbeing] budget_min``."""
        user = self.user_idx(user_id)
        prefs = dict(self.state.feedback.prefs(user))
        if daily_minutes is not None:
            lo, hi = self.settings.wellbeing.budget_min
            if daily_minutes == 0:
                prefs.pop("daily_minutes", None)
            elif not lo <= daily_minutes <= hi:
                raise FeedError("daily_minutes", f"a daily budget is {lo} to {hi} minutes (0 removes it)", 422)
            else:
                prefs["daily_minutes"] = daily_minutes
        if policy is not None:
            if policy not in self.policies:
                raise FeedError("policy", f"unknown policy {policy!r}; expected one of {', '.join(self.policies)}")
            prefs["policy"] = policy
        if weights is not None:
            if policy is None:  # weights belong to one policy: say which, so the bounds are known beforehand
                raise FeedError("policy", "required with weights: name the policy these weights are for", 422)
            pol = self.policies[policy]
            try:
                pol.with_user_weights(weights)
            except PolicyError as e:
                raise FeedError("weights", str(e), 422) from None
            prefs.setdefault("weights", {})[pol.name] = {k: float(v) for k, v in weights.items()}
        for key, val in (("topics_more", topics_more), ("topics_less", topics_less)):
            if val is not None:
                prefs[key] = _topic_names(key, val, self.ingestor.limits)
        self.ingestor.set_prefs(user_id, prefs)
        return prefs

    # ------------------------------------------------------------------ feed
    def sign(self, payload: dict[str, Any]) -> str:
        """``payload`` as a compact token signed with this store's secret (cursors; the ad lever's impression
        tokens); ``verify`` reads it back."""
        body = base64.urlsafe_b64encode(json.dumps(payload, separators=(",", ":")).encode()).rstrip(b"=")
        sig = hmac.new(self.secret, body, hashlib.sha256).digest()[:12]
        return (body + b"." + base64.urlsafe_b64encode(sig).rstrip(b"=")).decode()

    def verify(self, token: str) -> dict[str, Any] | None:
        """The payload of a token ``sign`` made with this store's secret; None when it is tampered or malformed."""
        try:
            body, sig = token.encode().split(b".")
            want = hmac.new(self.secret, body, hashlib.sha256).digest()[:12]
            if not hmac.compare_digest(base64.urlsafe_b64encode(want).rstrip(b"="), sig):
                return None
            out = json.loads(base64.urlsafe_b64decode(body + b"=" * (-len(body) % 4)))
        except Exception:
            return None
        return out if isinstance(out, dict) else None

    def _encode_cursor(self, payload: dict[str, Any]) -> str:
        return self.sign(payload)

    def _decode_cursor(self, cursor: str, user: int) -> tuple[str, int, float, str]:
        """(session, page number, session time, policy) of a cursor this service signed for ``user``; a 400
        ``FeedError`` for one that is tampered or malformed, names an unknown or another user, or was issued
        more than ``[serving] cursor_ttl_s`` ago (wall clock)."""
        try:
            body, sig = cursor.encode().split(b".")
            want = hmac.new(self.secret, body, hashlib.sha256).digest()[:12]
            if not hmac.compare_digest(base64.urlsafe_b64encode(want).rstrip(b"="), sig):
                raise ValueError
            cur = json.loads(base64.urlsafe_b64decode(body + b"=" * (-len(body) % 4)))
            owner, sid, page_no, t, pol, issued = cur["u"], cur["s"], cur["p"], cur["t"], cur["pol"], cur["w"]
            if not (
                isinstance(sid, str)
                and isinstance(pol, str)
                and type(page_no) is int
                and page_no > 0
                and all(type(x) in (int, float) and np.isfinite(x) for x in (t, issued))
            ):
                raise ValueError
        except Exception:
            raise FeedError("cursor", "invalid or tampered cursor; start again without one") from None
        if type(owner) is not int or not 0 <= owner <= self.state.users.n:
            raise FeedError("cursor", "names an unknown user; start again without one")
        if owner != user:
            raise FeedError("cursor", "this cursor belongs to another user's feed")
        if time.time() - issued > self.settings.serving.cursor_ttl_s:
            raise FeedError("cursor", "cursor expired; start again without one")
        return sid, page_no, float(t), pol

    @_shared_state
    def feed(
        self,
        user_id: str | None,
        *,
        policy: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
        surface: str = "home",
        log_impressions: bool = True,
    ) -> dict[str, Any]:
        """One page for ``user_id`` (None = the non-personalised feed) with explanations and a next cursor."""
        limit = _page_limit(limit)
        with self.lock:
            user = self.user_idx(user_id) if user_id is not None else 0
            pol_name: str | None
            if cursor:
                sid, page_no, now, pol_name = self._decode_cursor(cursor, user)
            else:
                sid, page_no, now = uuid.uuid4().hex[:16], 0, self.now()
                pol_name = policy
            pol = self.policy_for(user, pol_name, now)
            self.sessions.expire(time.time() if self.clock_mode == "wall" else now)
            seen_on = "public" if not user or surface == "bluesky" else "home"  # which moderation outcome applies
            served = [self.sessions.served(sid)]
            pages = rank(self.state, self.models, np.array([user]), pol, now, limit, served, seen_on)
            request_id = format_request_id(pol.name, sid, page_no)  # policy tag lets audits split logs by policy
            items = self._items(user, pages, pol, now, limit)
            if self.ad_server is not None and surface != "bluesky":  # the ad lever places its ads (glassfeed.ads)
                items = self.ad_server(user, pol, items, now, request_id, pages.post)
            self.sessions.add(sid, pages.post.tolist(), now)
        if log_impressions and user and len(pages.post):
            self._log_impressions(user, pages, now, request_id, surface)
        nxt = None
        if items and pages.remaining[0] > 0:  # more eligible posts exist than this page placed
            nxt = self._encode_cursor(
                {"u": user, "s": sid, "p": page_no + 1, "t": now, "pol": pol.name, "w": time.time()}
            )
        page = {
            "user": user_id,
            "policy": pol.name,
            "ranker": pages.ranker,
            "model_version": self.model_version,
            "request_id": request_id,
            "items": items,
            "cursor": nxt,
            "generated_at": now,
            "candidates": pages.n_candidates,
            "dropped": pages.dropped,
            "fallback": pages.fallback_reason or None,
            "notice": pages.fallback_reason if items else _empty_notice(self.state, pages, pol, now, self.clock_mode),
            "stopping_cue": self.stopping_cue(user, now) if user else None,
            "survey": self._survey(request_id, page_no) if user and items else None,
        }
        for listener in self.page_listeners:
            listener(page)
        return page

    # ------------------------------------------------------------------ wellbeing
    def usage_today(self, user: int, now: float) -> tuple[float, float]:
        """(minutes in the app today, the start of today) in the person's time zone (their notification settings'
        ``time_zone``; UTC when none): pages served today, sessions split by ``[wellbeing] session_gap_min``."""
        prefs = self.state.feedback.prefs(user)
        tz = prefs.get("notifications", {}).get("time_zone") or "UTC"
        try:
            zone = ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError, OSError):  # refused when set; a stored one may predate a check
            zone = ZoneInfo("UTC")
        local = datetime.fromtimestamp(now, zone)
        midnight = local.replace(hour=0, minute=0, second=0, microsecond=0).timestamp()
        w = self.settings.wellbeing
        secs = self.state.usage.seconds(user, midnight, now, w.session_gap_min * 60.0, w.page_min * 60.0)
        return secs / 60.0, midnight

    def stopping_cue(self, user: int, now: float) -> dict[str, Any] | None:
        """The stopping cue: when the person set a daily budget and today's time in the app reached it."""
        budget = self.state.feedback.prefs(user).get("daily_minutes")
        if not budget:
            return None
        used, _ = self.usage_today(user, now)
        if used < budget:
            return None
        return {
            "used_minutes": round(used, 1),
            "budget_minutes": budget,
            "message": f"You've spent about {used:.0f} minutes here today, past the {budget} you set. "
            "This is a good place to stop.",
        }

    def _survey(self, request_id: str, page_no: int) -> dict[str, Any] | None:
        """Every ``[wellbeing] survey_every_pages``-th page of a paging session asks whether it was worth it; the
        answer is a ``worth_it`` event naming the page (its ``request_id``)."""
        n = self.settings.wellbeing.survey_every_pages
        if not n or (page_no + 1) % n:
            return None
        return {
            "question": "Was this worth your time?",
            "answer": {"kind": "worth_it", "request_id": request_id, "value": "1 for yes, 0 for no"},
        }

    def ingest_lag(self) -> int:
        """Events committed to the store that the serving state has not folded in yet."""
        return max(0, self.store.max_seq() - self.state.last_seq)

    def impression_queue_depth(self) -> int:
        """Impressions served but not yet written to the store."""
        with self._pending_lock:
            return (
                sum(len(p[1]) for p in self._pending)
                + len(self._pending_ad_log)
                + sum(len(b) for b in self._pending_events)
            )

    def _items(self, user: int, pages: Pages, pol: Policy, now: float, limit: int) -> list[dict[str, Any]]:
        """Page items with their reason, top contributions, adjustments and ``placement`` (why an item was placed
        beyond its side's in/out-of-network share, to fill the page; else None); the full breakdown is kept (as
        raw numbers) for ``why``."""
        st = self.state
        if pages.probs is not None:
            tops = top_contributions(pages.probs, np.asarray(pol.weight_vector()))
        else:
            base = pages.score - pages.deltas.sum(axis=1)
            tops = [
                [{"head": pages.ranker, "probability": None, "weight": 1.0, "contribution": float(b)}]
                for b in base.tolist()
            ]
        filled = np.flatnonzero(filled_items(pages.row, pages.in_network, limit, pol)).tolist()
        fill = {i: fill_note(bool(pages.in_network[i]), limit, pol) for i in filled}
        fill.update({i: explore_note(limit, pol) for i in np.flatnonzero(explored_items(pages.deltas)).tolist()})
        fill.update(breadth_notes(st, user, pages.post, pages.deltas, pol, now))  # placed for breadth (feed/breadth.py)
        if user:
            self._remember(user, pages, pol, fill)
        views = self.post_views(pages.post)
        # the page's columns as Python values, once (not a numpy scalar per item and field)
        cols = zip(
            pages.post.tolist(),
            st.posts.author(pages.post).tolist(),
            pages.source.tolist(),
            pages.via.tolist(),
            pages.source_score.tolist(),
            pages.score.tolist(),
            pages.interstitial.astype(bool).tolist(),
            pages.deltas.tolist(),
            strict=True,
        )
        for i, (p, author, code, via, source_score, score, interstitial, deltas) in enumerate(cols):
            src = SOURCES[code]
            views[i].update(
                {
                    "reason": source_reason(
                        st, user, p, src, via, full=False, source_score=source_score, author=author
                    ),
                    "source": src,
                    "score": score,
                    "interstitial": interstitial,
                    "top_contributions": tops[i],
                    "adjustments": adjustment_list(deltas),
                    "repost_by": st.users.id_of(via) if via and src == "following" else None,
                    "placement": fill.get(i),
                }
            )
        return views

    def _remember(self, user: int, pages: Pages, pol: Policy, fill: dict[int, str]) -> None:
        """Keep the page's breakdown for ``why``: the last ``explained_pages_per_user`` pages of at most
        ``explained_users`` users, so the cache's memory is bounded whatever the traffic; with ``[serving]
        redis_url`` also in Redis (``RedisPages``), where another worker answering the person's ``why`` finds it."""
        serving = self.settings.serving
        kept = self.explanations.pop(user, None) or deque(maxlen=serving.explained_pages_per_user)
        page = ServedPage(
            pol,
            pages.post,
            pages.source,
            pages.via,
            pages.probs,
            pages.deltas,
            pages.score,
            pages.interstitial,
            pages.fallback_reason,
            fill,
            None if pages.probs is None else page_totals(pages.probs, np.asarray(pol.weight_vector()), time.time()),
            pages.ranker,
        )
        kept.append(page)
        if self.shared_pages is not None:  # where another worker answering this person's "why" finds it
            self.shared_pages.push(user, _page_bytes(page))
        self.explanations[user] = kept  # now the most recently served user
        while len(self.explanations) > serving.explained_users:
            self.explanations.popitem(last=False)

    def _page_from(self, data: bytes) -> ServedPage:
        """A page ``_page_bytes`` wrote (by any worker), with its policy rebuilt from the name and the person's
        weights it was ranked with."""
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            pol = self.policies[meta["policy"]].with_user_weights(meta["weights"] or None)
            return ServedPage(
                pol,
                z["post"],
                z["source"],
                z["via"],
                z["probs"] if "probs" in z.files else None,
                z["deltas"],
                z["score"],
                z["interstitial"],
                meta["notice"],
                {int(k): v for k, v in meta["fill"].items()},
                ranker=meta.get("ranker", "heads"),
            )

    def typical_contributions(self, policy: str) -> TypicalContributions | None:
        """Each head's typical contribution to the scores of the posts recently served with ``policy``: the mean
        |weight x P(head)| over the pages kept for ``why`` (``contributions.measure``); None when no such page was
        ranked with predictions (no traffic yet, or untrained models). ``policy.describe`` orders the heads by it."""
        with self.lock:
            totals = [
                pg.totals
                for kept in self.explanations.values()
                for pg in kept
                if pg.totals is not None and pg.policy.name == policy
            ]
        serving = self.settings.serving
        scope = (
            f"the pages kept to explain them: each signed-in person's last {serving.explained_pages_per_user} pages, "
            f"for the {serving.explained_users:,} people served most recently"
        )
        return measure(totals, scope)

    def post_views(self, page: np.ndarray) -> list[dict[str, Any]]:
        """What a client shows of each post (ids, author, text, time, topics, labels, all-time counts); the
        numeric columns are read once for the whole page."""
        posts, users = self.state.posts, self.state.users
        page = np.asarray(page, np.int64)
        tot = self.state.counters.totals(page)[:, [C["like"], C["repost"], C["reply"]]].tolist()
        post_id, user_id, handle, text = posts.id_of, users.id_of, users.handle_of, posts.text_of
        topics, labels, notes = posts.topics_of, posts.labels_of, self.state.visibility.notes
        return [
            {
                "post": post_id(p),
                "author": user_id(a),
                "author_handle": handle(a),
                "text": text(p),
                "created_at": t,
                "topics": topics(p),
                "labels": labels(p),
                "counts": {"likes": likes, "reposts": reposts, "replies": replies},
                "notes": notes(p),  # community notes the bridging model shows (glassfeed.moderation.notes)
            }
            for p, a, t, (likes, reposts, replies) in zip(
                page.tolist(), posts.author(page).tolist(), posts.created(page).tolist(), tot
            )
        ]

    def _log_impressions(self, user: int, pages: Pages, now: float, request_id: str, surface: str) -> None:
        """Queue the served page's impressions, and the source that placed each post (the page's ``PageSourcesRow``,
        creator analytics' record of how each impression reached the person); a background thread group-commits
        them every few ms."""
        sources = tuple(SOURCES[c] for c in pages.source.tolist())
        with self._pending_lock:
            self._pending.append((user, pages.post.astype(np.int64), now, request_id, surface, sources))
        self._wake.set()

    def queue_ad_log(self, rows: list[AdLogRow]) -> None:
        """Queue the ad lever's rows (its billed impressions) to be written with the next impressions, in the same
        transaction (one commit per flush for both); a failed write keeps them queued for the next flush, so a
        billed impression is never dropped."""
        with self._pending_lock:
            self._pending_ad_log.extend(rows)
        self._wake.set()

    def queue_events(self, batch: EventBatch) -> None:
        """Queue events another lever served (the suggestion list's ``suggestion_impression`` events) to be written
        with the next feed impressions, in the same transaction and through the same background writer; like the
        feed's own impressions, a failed write is logged and not retried."""
        if len(batch):
            with self._pending_lock:
                self._pending_events.append(batch)
            self._wake.set()

    def flush_impressions(self) -> int:
        """Write every queued impression (and queued ad log row and other queued events, ``queue_events``) in one
        durable transaction; returns how many feed impressions were written."""
        with self._flush_lock:
            return self._flush()

    def _flush(self) -> int:
        with self._pending_lock:
            batch, self._pending = self._pending, []
            ad_log, self._pending_ad_log = self._pending_ad_log, []
            extra, self._pending_events = self._pending_events, []
        try:
            if not batch and not extra:
                if ad_log:
                    self.ingestor.append_ad_log(ad_log)
                return 0
            feed = [_impression_batch(batch)] if batch else []
            self.ingestor.ingest_batch(
                EventBatch.concat([*feed, *extra]),
                ad_log=ad_log,
                pages=[PageSourcesRow(b[3], b[0], b[2], b[5]) for b in batch],
            )
        except Exception:
            if ad_log:  # billed: kept for the next flush (the feed's own impressions are not retried, as before)
                with self._pending_lock:
                    self._pending_ad_log[:0] = ad_log
            raise
        return len(feed[0]) if feed else 0

    def _flush_loop(self) -> None:
        while not self._closed:
            self._wake.wait()
            time.sleep(self._flush_s)  # gather the requests of the next few ms into one commit
            self._wake.clear()
            try:
                self.flush_impressions()
            except Exception:  # never let the logger die; the next flush retries what is queued after
                log.exception("impression flush failed")

    def close(self) -> None:
        """Stop tailing the store, flush queued impressions and stop the background writer."""
        self._stop_tail.set()
        if self._tailer is not None:
            self._tailer.join(timeout=5)
        self._closed = True
        self._wake.set()
        self._flusher.join(timeout=5)
        self.flush_impressions()

    @_shared_state
    def why(self, user_id: str, post_id: str) -> dict[str, Any]:
        """The full breakdown for a post recently served to ``user_id``."""
        with self.lock:
            user = self.user_idx(user_id)
            p = self.store.post_idx(post_id)
            if p is None:
                raise FeedError("post", f"unknown post {post_id!r}", 404)
            found = _find(reversed(self.explanations.get(user, ())), p)
            if found is None and self.shared_pages is not None:  # served by another worker
                found = _find((self._page_from(b) for b in self.shared_pages.pages(user)), p)
            if found is None:
                raise FeedError("post", f"post {post_id!r} was not served to {user_id!r} recently", 404)
            pg, i = found
            probs = None if pg.probs is None else pg.probs[i]
            score = float(pg.score[i])
            base = None if probs is not None else (pg.ranker, float(score - pg.deltas[i].sum()))
            why = explain_item(
                self.state,
                user,
                p,
                int(pg.source[i]),
                int(pg.via[i]),
                pg.policy,
                probs,
                pg.deltas[i],
                score,
                i,
                bool(pg.interstitial[i]),
                base,
            )
            if pg.notice:
                why["notice"] = pg.notice
            why["placement"] = pg.fill.get(i)
            return {**why, **self.post_views(np.array([p]))[0]}

    # ------------------------------------------------------------------ data rights
    def user_data(self, user_id: str, events_limit: int = 1000) -> dict[str, Any]:
        """Everything the engine holds and infers about a person (export)."""
        with self.lock:
            u = self.user_idx(user_id)
            st = self.state
            ids, fb, one = st.users.id_of, st.feedback, np.array([u])
            top_aff = fb.top_affinities(u, self.now(), 20)
            ut = st.counters.topic_profile(u)
            topics = sorted(
                ((st.topics.name(t), float(v)) for t, v in enumerate(ut[: len(st.topics)]) if v > 0),
                key=lambda kv: -kv[1],
            )[:20]
            tot = sum(v for _, v in topics) or 1.0
            events = self.store.user_events(u, events_limit)
            return {
                "user": user_id,
                "handle": st.users.handle_of(u),
                "onboarding_interests": [st.topics.name(t) for t in st.users.interests_of(u)],
                "inferred_interests": [{"topic": t, "share": v / tot} for t, v in topics],
                "author_affinity": [{"author": ids(a), "affinity": v} for a, v in top_aff],
                "following": sorted(ids(v) for v in st.graph.following(u)),
                "blocked": sorted(ids(v) for v in st.graph.blocked(u)),
                "muted": sorted(ids(v) for v in st.graph.muted(u)),
                "muted_words": fb.muted_words(u),
                "see_less_authors": [ids(a) for a in fb.see_less_authors(u)],
                "preferences": fb.prefs(u),
                "bridging_side": float(st.counters.side(one)[0]),
                "has_collaborative_profile": bool(len(st.counters.user_vectors(one)[0])),
                "counts": {"events": int(st.counters.events(one)[0]), "seen_posts": len(fb.seen(u))},
                "events": [
                    {
                        "seq": e[0],
                        "id": e[1] or f"gf:{e[0]}",
                        "kind": EventKind(e[2]).wire,
                        "post": st.posts.id_of(e[3]) if e[3] else None,
                        "target_user": ids(e[4]) if e[4] else None,
                        "ts": e[5],
                        "value": e[6],
                        "surface": e[7],
                        "position": e[8],
                        "request_id": e[9],
                    }
                    for e in events
                ],
                # the ads shown to the person and what they did with them (the ad lever's log; billing stays on an
                # erasure, without the person)
                "ads": [
                    {
                        "kind": r.kind,
                        "ts": r.ts,
                        "campaign": r.campaign,
                        "post": st.posts.id_of(r.post) if r.post else None,
                    }
                    for r in self.store.ad_log(user=u, limit=events_limit)
                ],
                # how each exported impression's page was put together: the candidate source of each place (an
                # impression's source is the entry at its position), for the pages served to the person
                "page_sources": {
                    rid: list(src)
                    for rid, src in sorted(
                        self.store.page_sources({e[9] for e in events if e[9] and e[2] == EventKind.IMPRESSION}).items()
                    )
                },
            }

    def delete_user_data(self, user_id: str, *, posts: bool = False) -> dict[str, Any]:
        """Erase a person's data and everything derived from them: the store (``Ingestor.delete_user_data``:
        events, edges, muted words, preferences, the user row anonymised, with ``posts`` their posts tombstoned),
        then memory through the listener (serving state, explanations), this service's paging sessions and the
        person's rows in the model files (``train.erase_user_rows``). Returns ``deleted`` (rows changed by kind,
        ``model_rows``: model files changed) and ``kept`` (what stays, and why: ``erasure_kept``).

        Queued impressions are written first, under the flush lock, so none of them lands after the erasure."""
        u = self.user_idx(user_id)
        with self._flush_lock:
            self._flush()
            with self.lock:
                n_events = int(self.state.counters.events(np.array([u]))[0])
            sids = {parse_request_id(e.request_id).session for e in self.store.user_events(u, n_events) if e.request_id}
            deleted = self.ingestor.delete_user_data(user_id, posts=posts)
        with self.lock:
            self.sessions.forget(sids)
        deleted["model_rows"] = len(erase_user_rows(self.models_folder, u))
        return {"deleted": deleted, "kept": erasure_kept(posts)}


def cursor_secret(ingestor: Ingestor) -> bytes:
    """The secret feed cursors are signed with, kept in the store's meta table so that every worker on the store
    verifies every other's cursors; made (and stored) on first use, under the store's writer lock, so that workers
    starting together on a fresh store agree on one (``glassfeed serve --workers N`` also makes it first)."""
    return bytes.fromhex(ingestor.meta_once("cursor_secret", lambda: secrets.token_hex(32)))


def _impression_batch(pages: list[tuple[int, np.ndarray, float, str, str, tuple[str, ...]]]) -> EventBatch:
    """The ``impression`` events of queued pages (``FeedService._pending``), each post at its place on its page."""
    posts = np.concatenate([p[1] for p in pages])
    return EventBatch.from_columns(
        kind=np.full(len(posts), int(EventKind.IMPRESSION), np.int8),
        user=np.concatenate([np.full(len(p[1]), p[0], np.int64) for p in pages]),
        post=posts,
        ts=np.concatenate([np.full(len(p[1]), p[2]) for p in pages]),
        position=np.concatenate([np.arange(len(p[1]), dtype=np.int32) for p in pages]),
        request_id=[p[3] for p in pages for _ in range(len(p[1]))],
        surface=[p[4] for p in pages for _ in range(len(p[1]))],
    )


def _page_bytes(page: ServedPage) -> bytes:
    """A served page for ``why`` as bytes any worker reads back (``FeedService._page_from``): the numpy columns
    and a JSON header (policy name, the person's weights, notice, placements), no pickle."""
    meta = {
        "policy": page.policy.name,
        "weights": page.policy.adjusted_by_user,
        "notice": page.notice,
        "fill": {str(k): v for k, v in page.fill.items()},
        "ranker": page.ranker,
    }
    arrays = {
        "post": page.post,
        "source": page.source,
        "via": page.via,
        "deltas": page.deltas,
        "score": page.score,
        "interstitial": page.interstitial,
        "meta": np.array(json.dumps(meta)),
    }
    if page.probs is not None:
        arrays["probs"] = page.probs
    buf = io.BytesIO()
    np.savez(buf, allow_pickle=False, **arrays)
    return buf.getvalue()


def _find(pages: Iterable[ServedPage], post: int) -> tuple[ServedPage, int] | None:
    """The first of ``pages`` that holds ``post``, and its position there."""
    for pg in pages:
        at = np.flatnonzero(pg.post == post)
        if len(at):
            return pg, int(at[0])
    return None


def _tail_loop(ref: weakref.ref[FeedService], stop: threading.Event, every_s: float) -> None:
    """``FeedService.catch_up`` every ``every_s`` until ``stop`` is set or the service is gone (the thread holds
    only a weak reference, so a service dropped without ``close`` does not keep polling its store). While it
    fails (the store unreachable, or closed under a service nobody closed) it retries less often, up to every
    ``TAIL_BACKOFF_MAX_S``, and logs the first failure and the recovery, not every attempt."""
    wait, failing = every_s, False
    while not stop.wait(wait):
        svc = ref()
        if svc is None:
            return
        try:
            svc.catch_up()
            svc.reload_if_new()  # a trainer process switched the models folder's CURRENT version
        except Exception:  # never let the tail die; the next round reads from where this one stopped
            if not failing:
                log.exception("tailing the store failed; retrying less often until it works again")
            failing, wait = True, min(max(wait, every_s) * 2, TAIL_BACKOFF_MAX_S)
        else:
            if failing:
                log.info("tailing the store works again")
            failing, wait = False, every_s
        del svc


def _runs(changes: list[Change]) -> list[tuple[str, list[int]]]:
    """Consecutive changes of one kind as ``(kind, idxs)``, in order (one entity-listener call per run)."""
    out: list[tuple[str, list[int]]] = []
    for c in changes:
        if out and out[-1][0] == c.kind:
            out[-1][1].append(c.idx)
        else:
            out.append((c.kind, [c.idx]))
    return out


#: What a data-rights erasure keeps, and why (``FeedService.delete_user_data``'s ``kept``; docs/feed.md repeats it).
ERASURE_KEPT = (
    "Your account id, creation time and sign-in token, so that you can go on using glassfeed: the handle is reset"
    " to the id and your picked interests and community are cleared.",
    "What other people did: their follows of you, their likes, replies, reposts and 'see less' on you or your"
    " posts, and their own posts that reply to, quote or repost yours. It is their data.",
    "Anonymous totals on other people's posts (like counts, trending, likes by bridging side) that your past"
    " events added to, until the serving state is next rebuilt (a restart or retraining): the events behind them"
    " are already gone from the store.",
    "Models trained on everyone's data (engagement heads, EASE item weights, other people's ALS factors) until the"
    " next training run, which no longer sees your events; your own ALS factor and bridging side are zeroed now.",
    "The event sequence number high-water mark: numbers are never reused, so no worker skips a later event.",
)
_POSTS_KEPT = (
    "Your posts: ask with posts=true ('Also delete my posts') to erase them too.",
    "Your posts' ids, authorship and creation times, as tombstones (text, topics, language and links emptied,"
    " labelled 'erased', dropped from every feed), because other people's replies, reposts and events point at"
    " them.",
)


def erasure_kept(posts: bool) -> list[str]:
    """``ERASURE_KEPT`` plus what stays of the person's posts (all of them, or tombstones with ``posts``)."""
    return [*ERASURE_KEPT, _POSTS_KEPT[1] if posts else _POSTS_KEPT[0]]


def _empty_notice(state: ServingState, pages: Pages, pol: Policy, now: float, clock_mode: str) -> str:
    """Why a page has no item, in words (an empty feed always says why), after the ranker's own notice."""
    hours = pol.filters.max_age_hours
    newest = state.posts.newest_created
    clock = "wall-clock time" if clock_mode == "wall" else "the time of the newest event"
    if not state.posts.n:
        why = "the store has no posts yet"
    elif newest < now - hours * 3600.0:
        why = (
            f"no post in the last {hours:g} h: the newest post is from {_when(newest)}; this server ranks at {clock} "
            f"({_when(now)})"
        )
        if clock_mode == "wall":
            why += ' (a history from `glassfeed generate` ends now by default; or set [serving] clock = "data")'
    elif pages.n_candidates == 0:
        why = f"no candidate: the {pol.name} policy's sources ({', '.join(pol.sources)}) found no post for this feed"
    elif any(pages.dropped.values()):
        counts = ", ".join(f"{n:,} {name.replace('_', ' ')}" for name, n in pages.dropped.items() if n)
        every = sum(pages.dropped.values()) >= pages.n_candidates
        why = f"every candidate was filtered: {counts}" if every else f"no candidate could be placed ({counts})"
    else:
        why = "no candidate could be placed on this page"
    return why if not pages.fallback_reason else f"{pages.fallback_reason}; {why}"


def _page_limit(limit: object) -> int:
    """``limit`` checked at run time too: Python callers (the Bluesky routes, scripts) may pass anything."""
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_LIMIT:
        raise FeedError("limit", f"must be an integer in [1, {MAX_LIMIT}]")
    return limit


def _topic_names(key: str, values: list[str], limits: IngestLimits) -> list[str]:
    """Saved topic choices, checked by the one rule for topic names (``ingest.names_problem``): distinct
    lower-case names without a leading '#' (a name that is only '#'s is dropped)."""
    problem = names_problem(values, limits)
    if problem:
        raise FeedError(key, problem, 422)
    return sorted({n for n in (str(t).strip().lower().lstrip("#") for t in values) if n})


__all__ = ["FeedService", "FeedError", "ERASURE_KEPT", "erasure_kept", "cursor_secret"]
