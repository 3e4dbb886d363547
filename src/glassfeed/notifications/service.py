"""``NotificationService``: committed events in, an inbox per person and a durable outbox of pushes out.

It listens to the Ingestor after the feed (so the serving state already holds the events): each batch becomes
candidates (``candidates.from_events``; new posts' mentions via the entity listener), aggregated with the
recipient's policy window, merged into the person's inbox by key (a replay adds nothing), and every notification
new to the inbox is scheduled under the person's policy (``schedule.schedule``). The inbox rows and their pushes
(one outbox row per channel the person has) are written in one transaction, so a notification is never pushed
without being in the inbox, nor lost between the decision and its delivery (the worker, ``worker.py``, sends what
is due).

An aggregated notification is scheduled once, when it first appears; later likes update it in the inbox (unread
again, new count) without pushing it again. P(open) is the policy's prior per kind until the open model is
trained (``glassfeed notifications train``, ``model.py``), then the model's.

Who turns events into candidates is ``[notifications] candidates_from``: ``"ingest"`` (the default) is the above,
each process from the events its own Ingestor commits, so events another process writes (``glassfeed bluesky
ingest``, ``glassfeed import``) make none. ``"log"``: no process listens; one consumer (the delivery worker) calls
``tail_log`` every round, which reads the store's event log (and its new posts, for mentions) from a cursor kept in
the store's meta table and folds what it reads with the same code, the cursor advanced in the transaction that
writes the notifications, so every writer's events are notified exactly once.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from glassfeed.domain import EventBatch, EventKind
from glassfeed.feed.pipeline import rank
from glassfeed.feed.service import FeedService
from glassfeed.ingest import IngestError, ItemError
from glassfeed.notifications.candidates import NotificationCandidates, Notifications, aggregate, from_events, mentions
from glassfeed.notifications.model import NotificationModel, serving_features
from glassfeed.notifications.policy import (
    KIND_CODE,
    KIND_WORDS,
    KINDS,
    NotificationPolicy,
    SettingsRefused,
    load_notification_policies,
)
from glassfeed.notifications.schedule import PUSH, RULES, _offsets, schedule
from glassfeed.settings import Settings, packaged_settings
from glassfeed.state.counters import C
from glassfeed.store import Delivery, NotificationRow, Transaction, models_dir

#: Where a decision's P(open) came from, in words.
P_OPEN_FROM: dict[str, str] = {
    "model": "the learned open model (glassfeed notifications train)",
    "prior": "the policy's prior for this kind (the open model was not trained yet)",
}
#: Each schedule rule in words, for "why did I get this?".
RULE_WORDS: dict[str, str] = {
    "immediate": "pushed as soon as it happened",
    "quiet_hours": "held until your quiet hours ended, then pushed",
    "digest": "held for your next digest",
    "kind_off": "not pushed: this kind of notification is not pushed under your settings (it is in your inbox)",
    "below_threshold": "not pushed: the chance you open it, times how much it matters, is below the push threshold",
    "daily_cap": "not pushed: you had reached your daily number of pushes",
}


class Decision(NamedTuple):
    """A notification's schedule decision as recorded with it (``decision_label``): the policy that decided (the
    person's version of it), the schedule's rule (``RULES``), the push threshold the person had then, and where
    P(open) came from (``prior`` | ``model``). ``policy``, ``threshold`` and ``p_open_from`` are None for a row
    decided before they were recorded."""

    policy: str | None
    rule: str
    threshold: float | None
    p_open_from: str | None


def decision_label(policy: str, rule: str, threshold: float, p_open_from: str) -> str:
    """What a notification row's ``rule`` holds: ``"<policy>/<rule>/<threshold>/<prior|model>"``
    (``"batched/digest/0.0/prior"``), so that "why" reports the decision as it was made, whatever the person's
    policy is now (no store column of its own: the row's ``rule`` text carries it)."""
    return f"{policy}/{rule}/{threshold!r}/{p_open_from}"


def parse_decision(label: str) -> Decision:
    """The ``Decision`` a row's ``rule`` holds (``decision_label``); the rule alone for an older row."""
    parts = label.rsplit("/", 3)
    if len(parts) == 4 and parts[1] in RULES and parts[3] in P_OPEN_FROM:
        try:
            return Decision(parts[0], parts[1], float(parts[2]), parts[3])
        except ValueError:
            pass
    return Decision(None, label, None, None)


def notification_id(request_id: object) -> int | None:
    """The notification a ``request_id`` names ("n<id>"), or None."""
    if isinstance(request_id, str) and request_id.startswith("n") and request_id[1:].isdigit():
        return int(request_id[1:])
    return None


#: The meta key of the log tail's cursor (``candidates_from = "log"``): what ``tail_log`` has folded.
LOG_CURSOR_KEY = "notifications.log_cursor"


class LogCursor(NamedTuple):
    """Where the log tail stands: every event up to ``seq`` and every post up to idx ``post`` has been folded."""

    seq: int
    post: int

    def text(self) -> str:
        return json.dumps({"seq": self.seq, "post": self.post}, separators=(",", ":"))

    @staticmethod
    def parse(text: str) -> LogCursor:
        v = json.loads(text)
        return LogCursor(int(v["seq"]), int(v["post"]))


@dataclass
class TailReport:
    """What one ``tail_log`` call did: events and new posts read, notifications written (new or updated), the
    transactions committed, and the cursor after it (``started``: there was none; it was set at the log's head)."""

    events: int = 0
    posts: int = 0
    written: int = 0
    transactions: int = 0
    started: bool = False
    cursor: LogCursor | None = None


def _opens(batch: EventBatch) -> dict[int, list[int]]:
    """The notifications each person opened in a batch (``notification_open`` events naming one, "n<id>")."""
    rows = np.flatnonzero(batch.kind == int(EventKind.NOTIFICATION_OPEN))
    by_user: dict[int, list[int]] = {}
    if not len(rows) or batch.request_id is None:
        return by_user
    for i in rows.tolist():
        nid = notification_id(batch.request_id[i])
        if nid is not None:
            by_user.setdefault(int(batch.user[i]), []).append(nid)
    return by_user


class NotificationError(IngestError):
    def __init__(self, field: str, reason: str, status: int = 422) -> None:
        super().__init__([ItemError(0, field, reason)], status=status)


class NotificationService:
    """The notification lever for one store, beside the ``FeedService`` whose state it reads."""

    def __init__(
        self, feed: FeedService, settings: Settings | None = None, clock: Callable[[], float] = time.time
    ) -> None:
        settings = settings or packaged_settings()
        self.settings = settings.notifications
        self.feed = feed
        self.ingestor = feed.ingestor
        self.store = feed.store
        self.clock = clock
        self.policies = load_notification_policies(self.settings.policies_dir or None)
        if self.settings.default_policy not in self.policies:
            raise ValueError(f"[notifications] default_policy {self.settings.default_policy!r} is not a policy")
        self.lock = threading.Lock()
        self.model_folder = models_dir(self.store.path) / "notifications" if self.store.path else None
        self.model = NotificationModel.load(self.model_folder) if self.model_folder else None
        self._handles: dict[str, int] = {}
        self._handles_n = 0
        #: Called after each commit with the notifications new to the inboxes, as written (ids, decisions): the
        #: feed simulator's notification arms (``sim/notify_world.py``) deliver their pushes to its population.
        self.decided_listeners: list[Callable[[list[NotificationRow]], None]] = []
        #: the notification policy of a person who chose none (the experiments lever installs it): user -> a policy
        #: name, or None for ``[notifications] default_policy``
        self.policy_chooser: Callable[[int], str | None] | None = None
        if self.settings.candidates_from == "ingest":  # "log": only the consumer calling ``tail_log`` makes them
            self.ingestor.listeners.append(self._on_events)
            self.ingestor.entity_listeners.append(self._on_entities)

    # ------------------------------------------------------------------ settings
    def settings_of(self, user: int) -> dict[str, Any]:
        return dict(self.feed.state.feedback.prefs(user).get("notifications", {}))

    def policy_for(self, user: int) -> NotificationPolicy:
        mine = self.settings_of(user)
        name = mine.pop("policy", None)
        if not name and self.policy_chooser is not None:  # no choice of their own: their experiment arm's, if any
            name = self.policy_chooser(user)
            name = name if name in self.policies else None
        name = name or self.settings.default_policy
        return self.policies[name].for_person(mine)

    def save_settings(self, user_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """Replace a person's notification settings (``policy`` and the policy's adjustable keys), checked against
        the policy's bounds; a bad value is refused naming the field."""
        user = self._user(user_id)
        name = body.get("policy") or self.settings.default_policy
        if name not in self.policies:
            raise NotificationError("policy", f"unknown policy {name!r}; expected one of {', '.join(self.policies)}")
        try:
            self.policies[name].for_person({k: v for k, v in body.items() if k != "policy"})
        except SettingsRefused as e:
            raise NotificationError(e.field, e.reason) from None
        prefs = dict(self.feed.state.feedback.prefs(user))
        prefs["notifications"] = dict(body)
        self.ingestor.set_prefs(user_id, prefs)
        return self.describe_settings(user)

    def describe_settings(self, user: int) -> dict[str, Any]:
        pol = self.policy_for(user)
        return {"settings": self.settings_of(user), "policy": pol.name, "statement": pol.describe()}

    def _user(self, user_id: str) -> int:
        idx = self.store.user_idx(user_id)
        if idx is None:
            raise NotificationError("user", f"unknown user {user_id!r}", 404)
        return idx

    # ------------------------------------------------------------------ from events to the inbox and the outbox
    def _on_events(self, batch: EventBatch) -> None:
        c = self.event_candidates(batch)
        if len(c):
            self.fold(c)
        self._opened(batch)

    def event_candidates(self, batch: EventBatch) -> NotificationCandidates:
        """The candidates committed events make (``candidates.from_events`` on the serving state): the one path from
        events to candidates, for the Ingestor's listener and the log tail alike."""
        st = self.feed.state
        return from_events(batch, st.posts.author, hidden=lambda u: set(st.graph.hidden(u)))

    def _opened(self, batch: EventBatch) -> None:
        """An opened notification (a ``notification_open`` event naming it, ``request_id`` "n<id>") is read."""
        by_user = _opens(batch)
        if by_user:
            with self.store.transaction() as tx:
                self._mark_opened(tx, by_user, float(batch.ts.max()))

    def _mark_opened(self, tx: Transaction, by_user: dict[int, list[int]], at: float) -> None:
        for u, ids in by_user.items():
            self.store.mark_notifications_read(tx, u, ids, at)

    def _on_entities(self, kind: str, idxs: list[int]) -> None:
        if kind != "posts" or not idxs:
            return
        c = self.mention_candidates(idxs)
        if len(c):
            self.fold(c)

    def mention_candidates(self, idxs: list[int]) -> NotificationCandidates:
        """The mentions new posts make (``candidates.mentions`` on the serving state's texts and handles): the one
        path from new posts to candidates, for the Ingestor's entity listener and the log tail alike."""
        st = self.feed.state
        if st.users.n != self._handles_n:  # handles of people who joined since
            self._handles = {st.users.handle_of(u).lower(): u for u in range(1, st.users.n + 1)}
            self._handles_n = st.users.n
        posts = np.asarray(idxs, np.int64)
        return mentions(
            posts,
            [st.posts.text_of(int(p)) for p in idxs],
            st.posts.author(posts),
            st.posts.created(posts),
            self._handles,
            hidden=lambda u: set(st.graph.hidden(u)),
        )

    # ------------------------------------------------------------------ "log": one consumer tails the event log
    def log_cursor(self) -> LogCursor | None:
        """The log tail's cursor in the store (None before the tail first ran)."""
        v = self.store.get_meta(LOG_CURSOR_KEY)
        return LogCursor.parse(v) if v is not None else None

    def tail_log(self) -> TailReport:
        """Fold every event and new post committed since the cursor, by whichever process wrote it (``"log"`` mode;
        run by one process per store, the delivery worker): first the serving state catches up with the store
        (``FeedService.catch_up``), then the posts above the cursor (their mentions) and the events above it, up
        to the state's head, at most ``[notifications] tail_batch`` a transaction, become candidates by the same
        code as on ingest (``mention_candidates``, ``event_candidates``; opens mark their notification read) and
        are folded (``fold``); each transaction also advances the cursor (``Ingestor.set_meta``), so a crash
        leaves the cursor with what was written, and nothing is folded twice or skipped. Were the cursor ever
        behind (an operator rewound it), the candidates' keys make the replay add nothing. Without a cursor, the
        tail starts at the log's head: what came before is not notified (``glassfeed notifications cursor`` moves
        it)."""
        self.feed.catch_up()
        st = self.feed.state
        with self.feed.lock:
            head = LogCursor(st.last_seq, st.posts.n)
        at = self.log_cursor()
        report = TailReport(cursor=at)
        if at is None:
            self.ingestor.set_meta(LOG_CURSOR_KEY, head.text())
            report.started, report.cursor, report.transactions = True, head, 1
            return report
        step = self.settings.tail_batch

        def advance(to: LogCursor, opens: dict[int, list[int]], opened_at: float) -> Callable[[Transaction], None]:
            def write(tx: Transaction) -> None:
                self._mark_opened(tx, opens, opened_at)
                self.ingestor.set_meta(LOG_CURSOR_KEY, to.text(), tx=tx)

            return write

        while at.post < head.post:
            to = at._replace(post=min(head.post, at.post + step))
            with self.feed.lock:
                c = self.mention_candidates(list(range(at.post + 1, to.post + 1)))
            report.written += len(self.fold(c, also=advance(to, {}, 0.0)))
            report.posts += to.post - at.post
            report.transactions += 1
            at = report.cursor = to
        for batch in self.store.iter_events(since_seq=at.seq, until_seq=head.seq, chunk=step, object_columns=True):
            to = at._replace(seq=int(batch.seq[-1]))
            with self.feed.lock:
                c = self.event_candidates(batch)
            report.written += len(self.fold(c, also=advance(to, _opens(batch), float(batch.ts.max()))))
            report.events += len(batch)
            report.transactions += 1
            at = report.cursor = to
        if at.seq < head.seq:  # the newest events were erased since the state read them: nothing left to fold
            at = report.cursor = at._replace(seq=head.seq)
            self.ingestor.set_meta(LOG_CURSOR_KEY, at.text())
            report.transactions += 1
        return report

    # ------------------------------------------------------------------ folding candidates into the inboxes
    def fold(self, c: NotificationCandidates, also: Callable[[Transaction], None] | None = None) -> list[int]:
        """Merge candidates into the inboxes and schedule what is new; returns the notification ids written (new
        or updated). ``also`` writes more in the same transaction (the log tail's cursor), which is then committed
        even when the candidates change nothing."""
        with self.lock:
            pols = {u: self.policy_for(u) for u in set(c.user.tolist())}
            parts = []
            for window in sorted({p.aggregate_window_h for p in pols.values()}):
                rows = np.flatnonzero([pols[u].aggregate_window_h == window for u in c.user.tolist()])
                parts.append(aggregate(c.take(rows), window))
            rows_out: list[NotificationRow] = []
            fresh: list[int] = []  # indexes into rows_out of notifications new to the inbox
            fresh_src: list[tuple[Notifications, int]] = []
            for n in parts:
                for u in sorted(set(n.user.tolist())):
                    mine = np.flatnonzero(n.user == u).tolist()
                    held = {
                        r.key: r for r in self.store.notifications(u, keys=[n.key[i] for i in mine], limit=len(mine))
                    }
                    for i in mine:
                        old = held.get(n.key[i])
                        if old is None:
                            fresh.append(len(rows_out))
                            fresh_src.append((n, i))
                            rows_out.append(self._row(n, i))
                            continue
                        new = [s for s in n.sources[i] if s not in old.sources]
                        if not new:
                            continue  # a replay: nothing new
                        actors = old.actors + [a for a in n.actors[i] if a not in old.actors]
                        rows_out.append(
                            old._replace(
                                actors=actors,
                                sources=old.sources + new,
                                updated_at=max(old.updated_at, float(n.ts[i])),
                                read_at=None,
                            )
                        )
            if not rows_out:
                if also is not None:
                    with self.store.transaction() as tx:
                        also(tx)
                return []
            self._schedule(rows_out, fresh, fresh_src, pols)
            deliveries: list[tuple[int, Delivery]] = []
            for j in fresh:
                r = rows_out[j]
                if r.push_at is not None:
                    for channel in self._channels(r.user):
                        deliveries.append((j, Delivery(0, 0, r.user, channel, r.push_at, 0, "pending")))
            with self.store.transaction() as tx:
                ids = self.store.upsert_notifications(tx, rows_out)
                self.store.enqueue_deliveries(tx, [d._replace(notification=ids[j]) for j, d in deliveries])
                if also is not None:
                    also(tx)
            if self.decided_listeners and fresh:
                new_rows = [rows_out[j]._replace(id=ids[j]) for j in fresh]
                for listener in self.decided_listeners:
                    listener(new_rows)
            return ids

    def _row(self, n: Notifications, i: int) -> NotificationRow:
        post = int(n.post[i])
        return NotificationRow(
            0, int(n.user[i]), n.key[i], KINDS[int(n.kind[i])], post if post > 0 else None, list(n.actors[i]),
            list(n.sources[i]), float(n.first_ts[i]), float(n.ts[i]), None, None, "", 0.0, None,
        )  # fmt: skip

    def _schedule(
        self,
        rows: list[NotificationRow],
        fresh: list[int],
        src: list[tuple[Notifications, int]],
        pols: dict[int, NotificationPolicy],
    ) -> None:
        if not fresh:
            return
        users = np.array([rows[j].user for j in fresh], np.int64)
        kinds = np.array([KINDS.index(rows[j].kind) for j in fresh], np.int64)
        ts = np.array([rows[j].updated_at for j in fresh])
        n = Notifications(users, kinds, np.zeros(len(fresh), np.int64), ts, ts, [rows[j].key for j in fresh],
                          [rows[j].actors for j in fresh], [rows[j].sources for j in fresh])  # fmt: skip
        p_open = np.array([pols[int(u)].kinds[KINDS[int(k)]].prior_open for u, k in zip(users, kinds)])
        model = self.model if self.model is not None and self.model.models_.get("open") is not None else None
        if model is not None:
            for u in set(users.tolist()):
                at = [a for a, j in enumerate(fresh) if rows[j].user == u]
                X = serving_features(self.store, u, [rows[fresh[a]] for a in at], pols[u].time_zone)
                p_open[at] = model.predict(X)["open"]
        s = schedule(n, pols, p_open, self._pushed_before(set(users.tolist()), pols))
        source = "prior" if model is None else "model"
        for a, j in enumerate(fresh):
            pushed = s.decision[a] == PUSH
            pol = pols[rows[j].user]
            rows[j] = rows[j]._replace(
                push_at=float(s.deliver_at[a]) if pushed else None,
                rule=decision_label(pol.name, RULES[int(s.rule[a])], pol.push_threshold, source),
                worth=float(s.worth[a]),
            )

    def _pushed_before(self, users: set[int], pols: dict[int, NotificationPolicy]) -> dict[tuple[int, int], int]:
        """Pushes already scheduled per (person, local day): the cap counts them (a digest slot once)."""
        out: dict[tuple[int, int], int] = {}
        for u in users:
            slots = {r.push_at for r in self.store.notifications(u, limit=500) if r.push_at is not None}
            if not slots:
                continue
            at = np.array(sorted(slots))
            days = np.floor((at + _offsets(at, pols[u].time_zone)) / 86400.0).astype(np.int64)
            for d in days.tolist():
                out[(u, d)] = out.get((u, d), 0) + 1
        return out

    def _channels(self, user: int) -> list[str]:
        out = ["webpush"] if self.store.push_subscriptions(user) else []
        if self.settings.webhook_url:
            out.append("webhook")
        return out

    # ------------------------------------------------------------------ candidates no event makes
    def suggest(self, since: float, now: float, users: list[int] | None = None, weekly: bool = False) -> list[int]:
        """The candidates that come from no single event, for ``users`` (default: everyone): the posts made since
        ``since`` by the ``[notifications] affinity_authors`` accounts each person interacts with most
        (``affinity_post``), and the best out-of-network post of their feed now (``you_might_like``, through the
        feed pipeline under their feed policy). Folded like any other (the policies decide what is pushed); run
        periodically by ``glassfeed notifications suggest``. With ``weekly`` also the weekly digest: the
        ``[notifications] digest_posts`` most liked posts of the last ``digest_days`` by the accounts a person
        follows that they were not shown, as one notification per person and week. Returns the ids written."""
        st = self.feed.state
        people = np.asarray(users if users is not None else range(1, st.users.n + 1), np.int64)
        rows: dict[str, list[Any]] = {k: [] for k in ("user", "post", "actor", "ts", "key")}
        kind_of: list[int] = []

        def add(u: int, p: int, t: float, kind: str) -> None:
            rows["user"].append(u)
            rows["post"].append(p)
            rows["actor"].append(st.posts.author_of(p))
            rows["ts"].append(t)
            rows["key"].append(f"{kind}:{p}:{u}")
            kind_of.append(KIND_CODE[kind])

        k = self.settings.affinity_authors
        for u in people.tolist():
            authors = np.array([a for a, v in st.feedback.top_affinities(u, now, k) if v > 0], np.int64)
            if not len(authors):
                continue
            posts, _ = st.posts.by_authors(authors, since, now)
            for p in posts.tolist():
                add(u, p, st.posts.created_at(p), "affinity_post")
        by_policy: dict[str, list[int]] = {}
        for u in people.tolist():
            by_policy.setdefault(self.feed.policy_for(u, None).name, []).append(u)
        for us in by_policy.values():
            pol = self.feed.policy_for(us[0], None)
            pages = rank(st, self.feed.models, np.array(us, np.int64), pol, now, self.settings.suggest_page)
            for r, u in enumerate(us):
                mine = pages.for_row(r)
                out = mine[~pages.in_network[mine]]
                if len(out):
                    add(u, int(pages.post[out[0]]), now, "you_might_like")
        if weekly:
            self._weekly(people, now, rows, kind_of)
        if not kind_of:
            return []
        c = NotificationCandidates(
            np.asarray(rows["user"], np.int64),
            np.asarray(kind_of, np.int64),
            np.asarray(rows["post"], np.int64),
            np.asarray(rows["actor"], np.int64),
            np.asarray(rows["ts"], np.float64),
            np.asarray(rows["post"], np.int64),
            rows["key"],
        )
        keep = np.flatnonzero(c.user != c.actor)
        return self.fold(c.take(keep)) if len(keep) else []

    def _weekly(self, people: np.ndarray, now: float, rows: dict[str, list[Any]], kind_of: list[int]) -> None:
        """Append one weekly_digest candidate per person with missed posts (see ``suggest``): its post is the most
        liked of them, its actor that post's author, its key the person and the week."""
        st, ns = self.feed.state, self.settings
        since = now - ns.digest_days * 86400.0
        week = int(now // (ns.digest_days * 86400.0))
        for u in people.tolist():
            follows = np.fromiter(st.graph.following(u), np.int64)
            if not len(follows):
                continue
            posts, _ = st.posts.by_authors(follows, since, now)
            posts = posts[~np.isin(posts, st.feedback.seen(u))]
            if not len(posts):
                continue
            likes = st.counters.totals(posts)[:, C["like"]]
            top = posts[np.lexsort((posts, -likes))][: ns.digest_posts]
            rows["user"].append(u)
            rows["post"].append(int(top[0]))
            rows["actor"].append(int(st.posts.author(top[:1])[0]))
            rows["ts"].append(now)
            rows["key"].append(f"weekly_digest:{week}:{u}")
            kind_of.append(KIND_CODE["weekly_digest"])

    # ------------------------------------------------------------------ the inbox
    def inbox(self, user_id: str, limit: int = 50) -> dict[str, Any]:
        user = self._user(user_id)
        rows = self.store.notifications(user, limit=limit)
        return {
            "user": user_id,
            "unread": self.store.unread_notifications(user),
            "items": [self._view(r) for r in rows],
        }

    def _view(self, r: NotificationRow) -> dict[str, Any]:
        st = self.feed.state
        names = ["@" + st.users.handle_of(a) for a in r.actors[:3]]
        more = len(r.actors) - len(names)
        who = ", ".join(names[:-1]) + " and " + names[-1] if len(names) > 1 else (names[0] if names else "someone")
        if more > 0:
            who = ", ".join(names) + f" and {more} other{'s' if more > 1 else ''}"
        text = {
            "reply": f"{who} replied to your post",
            "quote": f"{who} quoted your post",
            "mention": f"{who} mentioned you",
            "like": f"{who} liked your post",
            "repost": f"{who} reposted your post",
            "follow": f"{who} followed you",
            "affinity_post": f"{who} posted",
            "you_might_like": "A post you might like",
            "weekly_digest": f"What you missed this week, from {who} and others you follow",
        }[r.kind]
        return {
            "id": r.id,
            "request_id": f"n{r.id}",  # what a notification_open / _dismiss / notifications_off event names
            "kind": r.kind,
            "text": text,
            "post": st.posts.id_of(r.post) if r.post else None,
            "count": len(r.actors),
            "created_at": r.created_at,
            "updated_at": r.updated_at,
            "read": r.read_at is not None,
            "push_at": r.push_at,
            "pushed_at": r.pushed_at,
        }

    def mark_read(self, user_id: str, ids: list[int] | None) -> dict[str, Any]:
        user = self._user(user_id)
        with self.store.transaction() as tx:
            n = self.store.mark_notifications_read(tx, user, ids, self.clock())
        return {"marked": n, "unread": self.store.unread_notifications(user)}

    def why(self, user_id: str, nid: int) -> dict[str, Any]:
        """Why a notification exists and was (or was not) pushed: its source events, P(open) and value, the rule
        that decided, the policy that decided it (recorded with the decision: a person who changed policy since
        still reads the one that decided; ``policy_now`` is theirs now), and how to turn this kind off."""
        user = self._user(user_id)
        rows = self.store.notifications(user, ids=[nid], limit=1)
        if not rows:
            raise NotificationError("notification", f"no notification {nid} for {user_id}", 404)
        r = rows[0]
        now = self.policy_for(user)
        d = parse_decision(r.rule)
        # the deciding policy's kinds (a kind's value is not a person's setting); for a policy removed since, or a
        # row decided before the policy was recorded, the person's policy now (``policy_from`` says which)
        pol = (self.policies.get(d.policy) if d.policy is not None else None) or now
        kind = pol.kinds[r.kind]
        if d.p_open_from is not None:
            p_open_from = P_OPEN_FROM[d.p_open_from]
        else:
            learned = self.model is not None and self.model.models_.get("open") is not None
            p_open_from = P_OPEN_FROM["model" if learned else "prior"]
        return {
            **self._view(r),
            "source": {"kind": r.kind, "events": r.sources, "about": KIND_WORDS[r.kind]},
            "p_open": r.worth / kind.value if kind.value else kind.prior_open,
            "p_open_from": p_open_from,
            "value": kind.value,
            "worth": r.worth,
            "push_threshold": d.threshold if d.threshold is not None else pol.push_threshold,
            "rule": d.rule,
            "rule_words": RULE_WORDS.get(d.rule, d.rule),
            "policy": d.policy if d.policy is not None else now.name,
            "policy_from": "the decision" if d.policy is not None else "now (the deciding policy was not recorded)",
            "policy_now": now.name,
            "turn_off": {
                "how": f"PUT /v1/users/{user_id}/notification-settings",
                "body": {
                    **self.settings_of(user),
                    "kinds_off": sorted({*self.settings_of(user).get("kinds_off", []), r.kind}),
                },
            },
        }
