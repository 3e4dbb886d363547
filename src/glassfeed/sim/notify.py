"""Notification policies on a synthetic society: what each does to people's time and wellbeing (issue 14).

The social stream: a generated network's people, follow graph and posts (``sim/generate.py``), and on each post
likes, reposts and replies from its author's followers (``StreamParams``: a rate per follower, delays after the
post), plus the network's own follows; the generator's feed-driven engagement alone notifies people well under
once a day, far from a social app's volume. Every policy sees the same stream, through the real lever:
``candidates.from_events`` → ``aggregate`` → ``schedule`` (each person with their policy version); only the
response is simulated.

The response model (``ResponseParams``; every number is an assumption, written here and in docs/notifications.md,
chosen to encode the mechanisms Fitz et al. 2019 describe, not fitted to their data):

- A person is awake from ``wake_h`` to ``sleep_h`` (their local time; everyone is on UTC here). A push while they
  sleep wakes them with ``p_wake``: a sleep disruption, and annoyance.
- A push is opened with ``p_open = sigmoid(open_bias + open_value * value - habituation * pushes in the last
  24 h)``: the more pushes, the fewer opened (habituation). An opened push starts a session.
- People also open the app on their own, ``self_checks_per_day`` times a waking day, more when important items
  (replies, mentions, quotes) wait unseen (``fomo`` per waiting item: the anxiety Fitz et al. saw when
  notifications were off), less when pushes already bring them in.
- A session lasts ``session_min`` minutes (lognormal) and shows the person what waits in their inbox. Its time is
  worth it in proportion to the important items it shows (``worth_per_item``, at most the session); the rest is
  regretted. A session started by a low-value push (a like) or at night is regretted more (``regret_low_value``,
  ``regret_night``).
- Annoyance grows with each push (``annoy_push``; ``annoy_night`` in sleep hours) and decays daily
  (``annoy_decay``); above ``opt_out_at`` the person turns pushes off for good (an opt-out).
- Stated satisfaction per day = worth-it minutes − regret weight × regretted minutes − annoyance − anxiety
  (important items unseen for over ``anxiety_after_h``).
"""

from __future__ import annotations

import platform
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from scipy.special import expit

from glassfeed.domain import EventBatch, EventKind
from glassfeed.notifications.candidates import NotificationCandidates, Notifications, aggregate, from_events
from glassfeed.notifications.policy import KIND_CODE, KINDS, NotificationPolicy, load_notification_policies
from glassfeed.notifications.schedule import PUSH, schedule
from glassfeed.sim.generate import SyntheticNetwork, generate_network

HOUR, DAY = 3600.0, 86400.0
IMPORTANT = np.array([KIND_CODE[k] for k in ("reply", "mention", "quote")])


@dataclass(frozen=True)
class StreamParams:
    """The social stream on top of the generated network: on each post, this many likes / reposts / replies per
    follower of its author (Poisson), from followers, after an exponential delay with this mean (hours)."""

    likes_per_follower: float = 0.4
    reposts_per_follower: float = 0.06
    replies_per_follower: float = 0.08
    like_delay_h: float = 3.0
    reply_delay_h: float = 2.0


@dataclass(frozen=True)
class ResponseParams:
    """The simulated notification response (see the module docstring for each mechanism)."""

    wake_h: float = 7.0
    sleep_h: float = 23.0
    p_wake: float = 0.3
    open_bias: float = -1.2
    open_value: float = 2.0
    habituation: float = 0.08
    self_checks_per_day: float = 8.0  # moments a person may open the app on their own ...
    check_prob: float = 0.55  # ... and does, with this probability (raised by fomo, lowered by opened pushes)
    fomo: float = 0.25
    push_damping: float = 0.5  # each opened push in a day replaces this share of a self-check
    session_min: float = 6.0
    session_sigma: float = 0.6
    worth_per_item: float = 1.5  # minutes of a session each important item makes worth it
    worth_base: float = 3.5  # minutes of any session worth it (catching up)
    regret_low_value: float = 0.5
    regret_night: float = 0.7
    annoy_push: float = 0.15
    annoy_night: float = 1.5
    annoy_decay: float = 0.7
    opt_out_at: float = 6.0
    regret_weight: float = 1.5
    anxiety_after_h: float = 8.0
    anxiety_per_item: float = 0.5


@dataclass
class PolicyOutcome:
    policy: str
    people: int
    days: float
    pushes_per_day: float
    pushes_in_quiet_per_day: float
    pushes_in_sleep_per_day: float
    sleep_disruptions_per_day: float
    sessions_per_day: float
    notification_sessions_per_day: float
    minutes_per_day: float
    worth_minutes_per_day: float
    regretted_minutes_per_day: float
    regret_share: float
    satisfaction_per_day: float
    opted_out_share: float
    median_hours_to_see_reply: float | None
    extras: dict[str, Any] = field(default_factory=dict)


#: The quiet hours the outcome counts pushes in (local hours, start to end across midnight): the issue's and the
#: ``batched`` policy's 22:00-08:00, whatever the policy under test says.
QUIET_H: tuple[float, float] = (22.0, 8.0)


@dataclass
class Tally:
    """Everyone's response added up (``Responder`` adds to it; ``outcome`` turns it into per person-day rates)."""

    pushes: float = 0.0
    quiet_pushes: float = 0.0
    sleep_pushes: float = 0.0
    wakes: float = 0.0
    sessions: float = 0.0
    push_sessions: float = 0.0
    minutes: float = 0.0
    worth: float = 0.0
    regret: float = 0.0
    sat: float = 0.0
    opted_out: int = 0
    reply_delays: list[float] = field(default_factory=list)

    def outcome(self, policy: str, people: int, days: float) -> PolicyOutcome:
        per = float(people * days)
        return PolicyOutcome(
            policy=policy,
            people=people,
            days=days,
            pushes_per_day=self.pushes / per,
            pushes_in_quiet_per_day=self.quiet_pushes / per,
            pushes_in_sleep_per_day=self.sleep_pushes / per,
            sleep_disruptions_per_day=self.wakes / per,
            sessions_per_day=self.sessions / per,
            notification_sessions_per_day=self.push_sessions / per,
            minutes_per_day=self.minutes / per,
            worth_minutes_per_day=self.worth / per,
            regretted_minutes_per_day=self.regret / per,
            regret_share=self.regret / self.minutes if self.minutes else 0.0,
            satisfaction_per_day=self.sat / per,
            opted_out_share=self.opted_out / people,
            median_hours_to_see_reply=float(np.median(self.reply_delays)) / HOUR if self.reply_delays else None,
        )


class Responder:
    """One person's response to notifications (the mechanisms of the module docstring), fed in time order.

    ``push`` for each delivery (a digest is one), ``check_keep`` for a moment the person may open the app on their
    own, ``session`` for each session (pushed or not), ``finish`` at the end of the run; ``arrive`` adds inbox
    arrivals as they happen. Counts go to the shared ``Tally``; the random draws come from ``rng``, in the order
    the calls are made. ``run_policy`` drives it on a precomputed timeline; the feed simulator's notification arms
    (``sim/notify_world.py``) drive it step by step. ``start``: a midnight (UTC), the origin of days and hours."""

    def __init__(self, params: ResponseParams, rng: np.random.Generator, start: float, tally: Tally) -> None:
        self.p, self.rng, self.start, self.tally = params, rng, start, tally
        self.arrive_ts = np.zeros(0)
        self.important = np.zeros(0, bool)
        self.is_reply = np.zeros(0, bool)
        self.seen_upto = -np.inf  # arrivals at or before this were shown in a session
        self.annoy = 0.0
        self.out = False  # turned pushes off for good
        self.recent: list[float] = []  # push times in the last 24 h (habituation)
        self.opened_today: dict[int, int] = {}
        self.last_day = -1
        self.waited_long = 0  # important items a session showed after more than anxiety_after_h

    def arrive(self, ts: np.ndarray, kinds: np.ndarray) -> None:
        """Notifications reaching the inbox at ``ts`` (``KINDS`` codes ``kinds``), in time order."""
        self.arrive_ts = np.concatenate([self.arrive_ts, np.asarray(ts, np.float64)])
        self.important = np.concatenate([self.important, np.isin(kinds, IMPORTANT)])
        self.is_reply = np.concatenate([self.is_reply, np.asarray(kinds) == KIND_CODE["reply"]])

    def clock(self, t: float) -> tuple[int, bool]:
        """(day number, asleep) at ``t``; the first call on a new day decays the annoyance."""
        p = self.p
        day = int((t - self.start) // DAY)
        if day != self.last_day:
            self.annoy *= p.annoy_decay ** max(1, day - self.last_day) if self.last_day >= 0 else 1.0
            self.last_day = day
        hour = ((t - self.start) % DAY) / HOUR
        return day, not (p.wake_h <= hour < p.sleep_h)

    def push(self, t: float, value: float, n_items: int) -> tuple[bool, bool, bool]:
        """A push at ``t`` of ``n_items`` notifications whose most valuable has ``value``: (starts a session,
        low value, asleep). Ignored once the person has opted out."""
        p, tally = self.p, self.tally
        day, asleep = self.clock(t)
        if self.out:
            return False, False, asleep
        tally.pushes += 1
        hour = ((t - self.start) % DAY) / HOUR
        q0, q1 = QUIET_H
        tally.quiet_pushes += hour >= q0 or hour < q1
        self.recent = [x for x in self.recent if x > t - DAY] + [t]
        low_value = value < 0.5
        self.annoy += p.annoy_push * n_items**0.5
        started = False
        if asleep:
            tally.sleep_pushes += 1
            self.annoy += p.annoy_night
            if self.rng.random() < p.p_wake:
                tally.wakes += 1
                started = True
        elif self.rng.random() < expit(p.open_bias + p.open_value * value - p.habituation * len(self.recent)):
            started = True
            self.opened_today[day] = self.opened_today.get(day, 0) + 1
        if self.annoy > p.opt_out_at:
            self.out = True
            tally.opted_out += 1
        return started, low_value, asleep

    def waiting(self, t: float) -> int:
        """Important items in the inbox at ``t`` that no session has shown yet."""
        return int(((self.arrive_ts > self.seen_upto) & (self.arrive_ts <= t) & self.important).sum())

    def check_keep(self, t: float, base: float) -> float:
        """The chance a moment to open the app on one's own at ``t`` is taken: ``base``, raised by important items
        waiting unseen (fear of missing out), lowered by the pushes opened that day."""
        p = self.p
        day, _ = self.clock(t)
        return base * (1.0 + p.fomo * self.waiting(t)) / (1.0 + p.push_damping * self.opened_today.get(day, 0))

    def session(self, t: float, from_push: bool, low_value: bool, asleep: bool) -> tuple[float, float, float]:
        """A session at ``t``: it shows what waits in the inbox; returns (minutes, worth-it, regretted)."""
        p, tally = self.p, self.tally
        minutes = float(self.rng.lognormal(np.log(p.session_min), p.session_sigma))
        shown = (self.arrive_ts > self.seen_upto) & (self.arrive_ts <= t)
        n_important = int((shown & self.important).sum())
        self.waited_long += int((shown & self.important & (t - self.arrive_ts > p.anxiety_after_h * HOUR)).sum())
        tally.reply_delays += (t - self.arrive_ts[shown & self.is_reply]).tolist()
        self.seen_upto = t
        worth = min(minutes, p.worth_base + p.worth_per_item * n_important)
        regret = minutes - worth
        if from_push and low_value:
            regret = max(regret, p.regret_low_value * minutes)
        if asleep:
            regret = max(regret, p.regret_night * minutes)
        worth = minutes - regret
        tally.sessions += 1
        tally.push_sessions += from_push
        tally.minutes += minutes
        tally.worth += worth
        tally.regret += regret
        tally.sat += worth - p.regret_weight * regret
        return minutes, worth, regret

    def finish(self, end: float) -> None:
        """End of the run: anxiety (important items shown only after more than ``anxiety_after_h``, or never shown
        and older than that at the end; counted once each) and the annoyance left lower stated satisfaction."""
        p = self.p
        never = self.important & (self.arrive_ts > self.seen_upto) & (end - self.arrive_ts > p.anxiety_after_h * HOUR)
        self.tally.sat -= p.anxiety_per_item * float(self.waited_long + int(never.sum())) + self.annoy


def _stream(net: SyntheticNetwork, sp: StreamParams, seed: int) -> tuple[NotificationCandidates, float]:
    """The notifying events (see ``StreamParams``) as candidates, through ``from_events`` (ids from 1)."""
    rng = np.random.default_rng((seed, 7))
    start = float(net.start_ts)
    end = start + net.days * DAY
    order = np.argsort(net.follow_dst, kind="stable")
    dst_sorted, src_sorted = net.follow_dst[order], net.follow_src[order]
    cuts = np.searchsorted(dst_sorted, np.arange(net.n_users + 1))
    kinds, users, posts, ts = [], [], [], []
    rates = (
        (int(EventKind.LIKE), sp.likes_per_follower, sp.like_delay_h),
        (int(EventKind.REPOST), sp.reposts_per_follower, sp.like_delay_h),
        (int(EventKind.REPLY), sp.replies_per_follower, sp.reply_delay_h),
    )
    for p, (a, t0) in enumerate(zip(net.post_author.tolist(), net.post_created.tolist())):
        followers = src_sorted[cuts[a] : cuts[a + 1]]
        if not len(followers):
            continue
        for kind, rate, delay in rates:
            k = min(rng.poisson(rate * len(followers)), len(followers))
            if k:
                who = rng.choice(followers, k, replace=False)
                when = t0 + rng.exponential(delay * HOUR, k)
                keep = when < end
                kinds += [kind] * int(keep.sum())
                users += who[keep].tolist()
                posts += [p] * int(keep.sum())
                ts += when[keep].tolist()
    follows = net.follow_created >= start
    kinds += [int(EventKind.FOLLOW)] * int(follows.sum())
    users += net.follow_src[follows].tolist()
    posts += [-1] * int(follows.sum())
    ts += net.follow_created[follows].tolist()
    targets = [-1] * (len(kinds) - int(follows.sum())) + (net.follow_dst[follows] + 1).tolist()
    o = np.argsort(np.asarray(ts), kind="stable")
    b = EventBatch.from_columns(
        kind=np.asarray(kinds, np.int64)[o],
        user=np.asarray(users, np.int64)[o] + 1,
        ts=np.asarray(ts, np.float64)[o],
        post=np.where(np.asarray(posts)[o] >= 0, np.asarray(posts)[o] + 1, -1),
        target_user=np.asarray(targets, np.int64)[o],
    ).with_seq(1)
    authors = np.concatenate([[0], net.post_author + 1])
    return from_events(b, lambda q: authors[q]), start


def _first_seen(n: Notifications) -> Notifications:
    """The notifications as the live service schedules them: at their first source's time."""
    return Notifications(n.user, n.kind, n.post, n.first_ts.copy(), n.first_ts, n.key, n.actors, n.sources)


def run_policy(
    cands: NotificationCandidates,
    policy: NotificationPolicy,
    n_people: int,
    start: float,
    days: int,
    params: ResponseParams,
    seed: int,
) -> PolicyOutcome:
    """Schedule the stream under ``policy`` and simulate everyone's response (one seeded RNG per person)."""
    p = params
    n = _first_seen(aggregate(cands, policy.aggregate_window_h))
    prior = np.array([policy.kinds[KINDS[int(k)]].prior_open for k in n.kind.tolist()])
    value = np.array([policy.kinds[KINDS[int(k)]].value for k in n.kind.tolist()])
    s = schedule(n, dict.fromkeys(range(1, n_people + 1), policy), prior)
    end = start + days * DAY
    tally = Tally()
    order = np.lexsort((n.ts, n.user))
    users_sorted = n.user[order]
    cuts = np.searchsorted(users_sorted, np.arange(1, n_people + 2))
    for u in range(1, n_people + 1):
        rows = order[cuts[u - 1] : cuts[u]]
        rng = np.random.default_rng((seed, u))
        person = Responder(p, rng, start, tally)
        person.arrive(n.ts[rows], n.kind[rows])  # the person's inbox arrivals (every notification)
        push_rows = rows[(s.decision[rows] == PUSH) & (s.deliver_at[rows] < end)]  # and pushes (the policy's)
        slots: dict[float, list[int]] = {}
        for r in push_rows.tolist():
            slots.setdefault(float(s.deliver_at[r]), []).append(r)
        push_times = sorted(slots)
        # self-initiated checks while awake, as a Poisson process thinned by the day's opened pushes
        day_starts = start + np.arange(days) * DAY
        checks: list[float] = []
        for d0 in day_starts.tolist():
            k = rng.poisson(p.self_checks_per_day)
            checks += sorted((d0 + rng.uniform(p.wake_h, p.sleep_h, k) * HOUR).tolist())
        timeline = sorted([(t, "push") for t in push_times] + [(t, "check") for t in checks])
        for t, what in timeline:
            if what == "push":
                items = slots[t]
                started, low_value, asleep = person.push(t, float(value[items].max()), len(items))
            else:
                keep = person.check_keep(t, p.check_prob)
                started, low_value, asleep = bool(rng.random() < min(1.0, keep)), False, person.clock(t)[1]
            if started:
                person.session(t, what == "push", low_value, asleep)
        person.finish(end)
    return tally.outcome(policy.name, n_people, days)


def simulate_notifications(
    users: int = 2000,
    days: int = 14,
    seed: int = 1,
    policies: tuple[str, ...] = ("engagement_push", "batched", "minimal"),
    params: ResponseParams | None = None,
    stream: StreamParams | None = None,
) -> dict[str, Any]:
    """Every policy on one generated society; returns the config, the outcome per policy and the machine."""
    params = params or ResponseParams()
    stream = stream or StreamParams()
    net = generate_network(users, days, seed)
    cands, start = _stream(net, stream, seed)
    pols = load_notification_policies()
    outcomes = [run_policy(cands, pols[name], users, start, days, params, seed) for name in policies]
    return {
        "config": {
            "users": users,
            "days": days,
            "seed": seed,
            "policies": list(policies),
            "params": asdict(params),
            "stream": asdict(stream),
        },
        "stream": {"events": len(net.events), "candidates": len(cands)},
        "outcomes": [asdict(o) for o in outcomes],
        "machine": f"{platform.platform()} | Python {platform.python_version()}",
    }


COLUMNS: tuple[tuple[str, str], ...] = (
    ("pushes_per_day", "pushes/day"),
    ("pushes_in_quiet_per_day", "pushes in quiet hours (22-08)/day"),
    ("pushes_in_sleep_per_day", "pushes in sleep hours/day"),
    ("sleep_disruptions_per_day", "woken/day"),
    ("sessions_per_day", "sessions/day"),
    ("notification_sessions_per_day", "from a push/day"),
    ("minutes_per_day", "minutes/day"),
    ("worth_minutes_per_day", "worth-it min/day"),
    ("regretted_minutes_per_day", "regretted min/day"),
    ("regret_share", "regret share"),
    ("satisfaction_per_day", "satisfaction/day"),
    ("opted_out_share", "opted out"),
    ("median_hours_to_see_reply", "median h to see a reply"),
)


def markdown(result: dict[str, Any]) -> str:
    """The outcome table, one row per policy."""
    head = "| policy | " + " | ".join(label for _, label in COLUMNS) + " |"
    sep = "|---|" + "---|" * len(COLUMNS)
    rows = []
    for o in result["outcomes"]:
        cells = [("–" if o[k] is None else f"{o[k]:.3f}" if isinstance(o[k], float) else str(o[k])) for k, _ in COLUMNS]
        rows.append(f"| {o['policy']} | " + " | ".join(cells) + " |")
    return "\n".join([head, sep, *rows])
