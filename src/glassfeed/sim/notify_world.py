"""Notification policies as arms of the feed simulator (``glassfeed simulate --notifications``): every feed policy
with every notification policy, each arm one world of ``sim/loop.py`` with the real notification lever beside
its feed (issue 14: the simulator runs notification policies side by side with feed policies).

The lever is the server's: in each arm's world a ``NotificationService`` (with the arm's notification policy as
everyone's) listens to the world's Ingestor after the feed, so every like, repost, reply and follow the simulated
people make on their ranked feeds becomes candidates, aggregated, folded into the inboxes in the store and
scheduled under the policy (``notifications/candidates.py``, ``schedule.py``; the decision recorded on each row).
The population answers with ``sim/notify.py``'s response model, one ``Responder`` per person (the same mechanisms
and ``ResponseParams``; nothing of it is written again here):

- each step, the pushes due in it reach their people in time order (a digest is one push): counted (in quiet
  hours 22:00-08:00, in sleep hours), habituation, annoyance, wake-ups, opt-outs; an opened push starts a session.
  A person who opts out turns every kind off in their notification settings, through the service, so the lever
  stops pushing to them;
- the loop's policy-independent draw still decides who opens the app on their own, now only while awake (the
  response model's ``wake_h``-``sleep_h``) and with its chance: ``active_prob`` raised by important items waiting
  unseen (fear of missing out) and lowered by the pushes opened that day (``Responder.check_keep``);
- everyone with a session in the step, pushed or not, gets a feed page ranked by the real pipeline with the
  step's other sessions, at the step's end (the loop's grid): sessions started by notifications are feed sessions,
  and what people do in them makes the next notifications. At most one session per person and step (a second
  opened push in the same step counts as opened, not as another session);
- each session's minutes, worth-it and regretted time are the response model's (``Responder.session``); the night
  regret applies to sessions a push started in sleep hours.

Per arm, beside every feed metric: sessions, notification-driven sessions, minutes, worth-it and regretted minutes,
stated satisfaction (per person and day), pushes per person and day, in quiet hours and in sleep hours, woken,
the share who opted out, and the median hours until a reply was seen; per step, pushes and push-started sessions.
Days are simulated days: ``steps x step_hours / 24``. Times of day are UTC (the policies' default time zone).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from glassfeed.notifications.policy import KIND_CODE, KINDS, load_notification_policies
from glassfeed.notifications.service import NotificationService
from glassfeed.settings import Settings
from glassfeed.sim.loop import Base, Progress, SimConfig, SimResult, World, run_simulation
from glassfeed.sim.notify import DAY, HOUR, IMPORTANT, Responder, ResponseParams, Tally
from glassfeed.store import NotificationRow

#: Separates the feed policy from the notification policy in an arm's name (``engagement+batched``).
ARM_SEP = "+"


@dataclass(frozen=True)
class NotificationArm:
    """A feed policy with a notification policy (everyone's, in this arm's world)."""

    feed_policy: str
    notification_policy: str

    @property
    def name(self) -> str:
        return f"{self.feed_policy}{ARM_SEP}{self.notification_policy}"


def arms_for(policies: Sequence[str], notifications: Sequence[str]) -> list[NotificationArm]:
    """Every feed policy with every notification policy, feed-policy-major."""
    return [NotificationArm(p, n) for p in policies for n in notifications]


class NotifiedWorld(World):
    """A feed policy's world with the notification lever under one policy and the population's response to it."""

    def __init__(
        self,
        cfg: SimConfig,
        arm: NotificationArm,
        db: Path,
        base: Base,
        settings: Settings | None = None,
        params: ResponseParams | None = None,
    ) -> None:
        super().__init__(cfg, arm.feed_policy, db, base, settings)
        self.policy_name, self.arm = arm.name, arm
        s = self.settings
        arm_settings = s.model_copy(
            update={"notifications": s.notifications.model_copy(update={"default_policy": arm.notification_policy})}
        )
        self.notify = NotificationService(self.svc, arm_settings, clock=lambda: self.clock_t + 60.0)
        self.notify.decided_listeners.append(self._decided)
        pol = self.notify.policies[arm.notification_policy]
        self.value = np.array([pol.kinds[k].value for k in KINDS])  # a kind's value is not a person's setting
        self.params = params or ResponseParams()
        self.day0 = float(np.floor(base.end_ts / DAY) * DAY)  # a midnight: hours of the day are UTC
        self.tally = Tally()
        n = self.pop.n_users
        self.people = [
            Responder(self.params, np.random.default_rng([cfg.seed, 6, u]), self.day0, self.tally) for u in range(n)
        ]
        self.unseen = np.zeros(n, np.int64)  # important inbox items no session has shown yet (>= waiting now)
        self.pending: list[tuple[float, int, float]] = []  # pushes not delivered yet: (time, sim person, value)
        self.finished = False

    # ------------------------------------------------------------------ from the lever to the people
    def _decided(self, rows: list[NotificationRow]) -> None:
        """New notifications in the inboxes (``NotificationService.decided_listeners``): arrivals, and the pushes
        the policy scheduled."""
        by_person: dict[int, list[NotificationRow]] = {}
        for r in rows:
            by_person.setdefault(int(self.s2u[r.user]), []).append(r)
        for u, mine in by_person.items():
            kinds = np.array([KIND_CODE[r.kind] for r in mine], np.int64)
            self.people[u].arrive(np.array([r.created_at for r in mine]), kinds)
            self.unseen[u] += int(np.isin(kinds, IMPORTANT).sum())
            self.pending += [
                (r.push_at, u, float(self.value[k])) for r, k in zip(mine, kinds.tolist()) if r.push_at is not None
            ]

    def _active(self, draw: np.ndarray, now: float) -> np.ndarray:
        """The pushes due before ``now`` reach their people; then the self-initiated sessions (see the module
        docstring). Returns everyone with a session in the step."""
        p = self.params
        due = [x for x in self.pending if x[0] < now]
        self.pending = [x for x in self.pending if x[0] >= now]
        slots: dict[tuple[float, int], list[float]] = {}  # one delivery per (time, person): a digest is one push
        for t, u, v in due:
            slots.setdefault((t, u), []).append(v)
        session: dict[int, float] = {}
        pushes = self.tally.pushes
        for (t, u), values in sorted(slots.items()):
            person = self.people[u]
            was_out = person.out
            started, low_value, asleep = person.push(t, max(values), len(values))
            if person.out and not was_out:
                self._opt_out(u)
            if started and u not in session:
                person.session(t, True, low_value, asleep)
                session[u] = t
                self.unseen[u] = person.waiting(np.inf)
        push_sessions = len(session)
        hour = ((now - self.day0) % DAY) / HOUR
        if p.wake_h <= hour < p.sleep_h:  # people open the app on their own while awake
            base = self.cfg.active_prob
            for u in np.flatnonzero(draw < base * (1.0 + p.fomo * self.unseen)).tolist():
                if u in session:
                    continue
                person = self.people[u]
                if draw[u] < min(1.0, person.check_keep(now, base)):
                    person.session(now, False, False, False)
                    session[u] = now
                    self.unseen[u] = person.waiting(np.inf)
        self.metrics.add("pushes", self.tally.pushes - pushes)
        self.metrics.add("push_sessions", push_sessions)
        return np.array(sorted(session), np.int64)

    def _opt_out(self, u: int) -> None:
        """A person who had enough turns every kind off, in their notification settings (within the policy's
        bounds: every kind may be turned off), so that the lever pushes them nothing more."""
        uid = f"u{u}"
        mine = self.notify.settings_of(int(self.u2s[u]))
        self.notify.save_settings(uid, {**mine, "policy": self.arm.notification_policy, "kinds_off": list(KINDS)})

    def final_extra(self) -> dict[str, Any]:
        """The notification outcome of this arm (``sim/notify.py``'s measures over the simulated days)."""
        if not self.finished:  # the end-of-run anxiety and annoyance, once
            for person in self.people:
                person.finish(self.t)
            self.finished = True
        days = self.cfg.steps * self.cfg.step_hours / 24.0
        out = asdict(self.tally.outcome(self.arm.notification_policy, self.pop.n_users, days))
        for k in ("policy", "people", "days", "extras"):
            out.pop(k)
        return {"feed_policy": self.arm.feed_policy, "notification_policy": self.arm.notification_policy, **out}


def run_notification_simulation(
    cfg: SimConfig,
    arms: Sequence[NotificationArm],
    folder: Path,
    progress: Progress | None = None,
    settings: Settings | None = None,
    params: ResponseParams | None = None,
    base: Base | None = None,
) -> SimResult:
    """Run every arm on the same seeded society (``run_simulation`` with notified worlds); the result's config
    names the arms and the response parameters."""
    by_name = {a.name: a for a in arms}
    if len(by_name) != len(arms):
        raise ValueError("two arms with the same name")
    known = load_notification_policies((settings.notifications.policies_dir if settings else None) or None)
    for a in arms:
        if a.notification_policy not in known:  # fail before any world runs
            raise ValueError(
                f"unknown notification policy {a.notification_policy!r}; expected one of {', '.join(known)}"
            )
    params = params or ResponseParams()

    def make(c: SimConfig, name: str, db: Path, base: Base, s: Settings | None) -> World:
        return NotifiedWorld(c, by_name[name], db, base, s, params)

    run_cfg = replace(cfg, policies=tuple(by_name))
    result = run_simulation(run_cfg, folder, progress, base=base, settings=settings, make_world=make)
    result.config["notifications"] = {
        "arms": {a.name: {"feed_policy": a.feed_policy, "notification_policy": a.notification_policy} for a in arms},
        "response": asdict(params),
    }
    return result
