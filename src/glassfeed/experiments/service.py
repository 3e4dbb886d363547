"""The experiment lever's service: experiments in (admin), arms served, exposures written, reports out.

Serving (the smallest hooks on the levers below; ``install``):

- **feed**: ``FeedService.policy_chooser``. A person who names no policy on the request and saved none gets their
  feed arm's policy; a person who chose a policy themselves is **excluded** (served their choice, not exposed,
  and counted as excluded in the report). Called when a page is ranked (with its time: the exposure) and when
  the policy is only asked about (``GET /prefs``, the notifications' suggestions).
- **ads**: ``FeedService.ad_server`` wrapped: a person in an ads arm gets the page's ad load (``max_share``) of the
  arm; the rest of the feed policy's ad rules stay. Nobody can choose an ad load, so nobody is excluded.
- **notifications**: ``NotificationService.policy_chooser``: a person who chose no notification policy gets their
  arm's; exposed when a notification is first decided for them under it (``decided_listeners``).

Exposure: the first time a person is served by an arm, one ``ExposureRow`` (experiment, user, arm, time) is written
through the Ingestor (``add_exposures``: durable, idempotent per experiment and person, whichever worker writes
it first). The feed's and the ads' are queued under the feed's lock and written by the page listener, before the
page is answered; a failed write is retried with the next page.

Analysis (``report``) from the event log, per arm, over each exposed person from their exposure on (see
``person_outcomes``), with ``glassfeed.experiments.analysis`` for the statistics.
"""

from __future__ import annotations

import html
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from dataclasses import replace as dc_replace
from typing import Any

import numpy as np

from glassfeed.domain import EventBatch, EventKind
from glassfeed.experiments import analysis as stats
from glassfeed.experiments.assignment import arm_in, arm_of, free_range
from glassfeed.experiments.model import (
    BUCKETS,
    METRICS,
    Arm,
    Experiment,
    ExperimentError,
    ExperimentSpec,
    bucket_range,
)
from glassfeed.feed.policy import Policy
from glassfeed.feed.service import FeedService
from glassfeed.notifications.service import NotificationService
from glassfeed.settings import ExperimentSettings, WellbeingSettings
from glassfeed.store import ExperimentRow, ExposureRow, NotificationRow

log = logging.getLogger("glassfeed.experiments")

ENGAGED = (EventKind.LIKE, EventKind.REPOST, EventKind.REPLY)
SEE_LESS = (EventKind.SEE_LESS, EventKind.NOT_INTERESTED)
#: The event kinds the analysis reads.
KINDS = (EventKind.IMPRESSION, *ENGAGED, *SEE_LESS, EventKind.REPORT, EventKind.WORTH_IT)
#: What the person-facing list says an arm changes, per layer.
_EXCLUDED = {
    "feed": "you chose your feed yourself, so this experiment does not change it",
    "notifications": "you chose your notification policy yourself, so this experiment does not change it",
}

AdServer = Callable[[int, Policy, list[dict[str, Any]], float, str, np.ndarray], list[dict[str, Any]]]


class ExperimentService:
    """Experiments for one store, beside the ``FeedService`` (and ``NotificationService``) whose levers they set."""

    def __init__(
        self, feed: FeedService, notifications: NotificationService | None = None, *, install: bool = True
    ) -> None:
        self.feed = feed
        self.notifications = notifications
        self.settings: ExperimentSettings = feed.settings.experiments
        self.wellbeing: WellbeingSettings = feed.settings.wellbeing
        self.ingestor = feed.ingestor
        self.store = feed.store
        self.lock = threading.Lock()  # taken after the feed's lock, never before it
        self.experiments: dict[str, Experiment] = {}
        self._exposed: set[tuple[str, int]] = set()  # (experiment, user) written or queued
        self._loaded: set[str] = set()  # experiments whose stored exposures are in _exposed
        self._pending: list[ExposureRow] = []
        self._refreshed = 0.0
        self._ad_server: AdServer | None = None
        self.refresh(force=True)
        self.ingestor.experiment_listeners.append(self._on_rows)
        feed.tail_listeners.append(self.refresh)
        if install:
            self.install()

    def install(self) -> None:
        """Set the levers' hooks: the feed's policy choice, its ad server (when ads are served) and the
        notifications' policy choice; exposures are written by the feed's page listener."""
        self.feed.policy_chooser = self.feed_policy
        self.feed.page_listeners.append(self._on_page)
        if self.feed.ad_server is not None and self._ad_server is None:
            self._ad_server = self.feed.ad_server
            self.feed.ad_server = self._place_ads
        if self.notifications is not None:
            self.notifications.policy_chooser = self.notification_policy
            self.notifications.decided_listeners.append(self._on_decided)

    # ------------------------------------------------------------------ state
    def refresh(self, force: bool = False) -> None:
        """Reread the experiments (another worker may have created, started or stopped one), at most every
        ``[experiments] refresh_s`` unless ``force``."""
        if not force and time.monotonic() - self._refreshed < self.settings.refresh_s:
            return
        self._refreshed = time.monotonic()
        self._install_rows(self.store.experiments(), replace_all=True)

    def _install_rows(self, rows: list[ExperimentRow], replace_all: bool = False) -> None:
        exps = {} if replace_all else dict(self.experiments)
        for r in rows:
            try:
                exps[r.name] = Experiment.from_row(r)
            except ExperimentError:
                log.exception("experiment %r in the store cannot be read; skipped", r.name)
        new = [e.name for e in exps.values() if e.running and e.name not in self._loaded]
        seen = {(x.experiment, x.user) for name in new for x in self.store.exposures(name)}
        with self.lock:
            self.experiments = exps
            self._exposed |= seen
            self._loaded.update(new)

    def _on_rows(self, kind: str, rows: list[Any]) -> None:
        """The Ingestor's experiment listener: this worker's own writes."""
        if kind == "experiment":
            self._install_rows(rows)
        else:
            with self.lock:
                self._exposed.update((r.experiment, r.user) for r in rows)

    def _running(self, layer: str) -> list[Experiment]:
        return [e for e in self.experiments.values() if e.running and e.layer == layer]

    def _assigned(self, layer: str, user: int) -> tuple[Experiment, Arm] | None:
        """The running experiment of ``layer`` the person is in, and their arm (None: in none)."""
        if not user:
            return None
        running = self._running(layer)
        if not running:
            return None
        uid = self.feed.state.users.id_of(user)
        if uid is None:
            return None
        for exp in running:
            name = arm_of(exp, uid, self.settings.salt)
            if name is not None:
                arm = exp.arm(name)
                return (exp, arm) if arm is not None else None
        return None

    def _explicit(self, layer: str, prefs: Mapping[str, Any]) -> bool:
        """Whether a person's saved choices take ``layer``'s lever out of experiments' hands."""
        if layer == "feed":
            return bool(prefs.get("policy"))
        if layer == "notifications":
            return bool((prefs.get("notifications") or {}).get("policy"))
        return False

    # ------------------------------------------------------------------ serving (the levers' hooks)
    def feed_policy(self, user: int, now: float | None) -> str | None:
        """``FeedService.policy_chooser``: the feed arm's policy (exposure when ``now`` is given); called only for
        people who saved no policy of their own (the feed asks their choice first)."""
        hit = self._assigned("feed", user)
        if hit is None:
            return None
        exp, arm = hit
        if now is not None:
            self._expose(exp, user, arm.name, now)
        return arm.policy

    def _place_ads(
        self, user: int, pol: Policy, items: list[dict[str, Any]], now: float, request_id: str, page: np.ndarray
    ) -> list[dict[str, Any]]:
        """``FeedService.ad_server`` around the ad lever's: the ads arm's ad load for people in an ads experiment."""
        assert self._ad_server is not None
        hit = self._assigned("ads", user)
        if hit is not None:
            exp, arm = hit
            pol = dc_replace(pol, ads=pol.ads.model_copy(update={"max_share": float(arm.ad_load or 0.0)}))
            self._expose(exp, user, arm.name, now)
        return self._ad_server(user, pol, items, now, request_id, page)

    def notification_policy(self, user: int) -> str | None:
        """``NotificationService.policy_chooser``: the notifications arm's policy (people without a choice)."""
        hit = self._assigned("notifications", user)
        return hit[1].policy if hit is not None else None

    def _on_decided(self, rows: list[NotificationRow]) -> None:
        """Notifications newly decided: each person in a notifications arm (and without a choice of their own) is
        exposed at their first; written at once."""
        for r in rows:
            hit = self._assigned("notifications", r.user)
            if hit is not None and not self._explicit("notifications", self.feed.state.feedback.prefs(r.user)):
                self._expose(hit[0], r.user, hit[1].name, r.created_at)
        self.flush()

    def _expose(self, exp: Experiment, user: int, arm: str, ts: float) -> None:
        key = (exp.name, user)
        with self.lock:
            if key in self._exposed:
                return
            self._exposed.add(key)
            self._pending.append(ExposureRow(exp.name, user, arm, float(ts)))

    def _on_page(self, page: dict[str, Any]) -> None:
        """The feed's page listener (outside its lock): write the exposures queued while ranking, before the page
        is answered."""
        if self._pending:
            self.flush()

    def flush(self) -> int:
        """Write the queued exposures (one transaction); returns how many were new. A failure is logged and the
        rows stay queued for the next call."""
        with self.lock:
            rows, self._pending = self._pending, []
        if not rows:
            return 0
        try:
            return self.ingestor.add_exposures(rows)
        except Exception:
            log.exception("writing %d exposures failed; retried with the next page", len(rows))
            with self.lock:
                self._pending[:0] = rows
            return 0

    # ------------------------------------------------------------------ admin
    def _get(self, name: str) -> Experiment:
        with self.lock:
            exp = self.experiments.get(name)
        if exp is None:
            raise ExperimentError("name", f"unknown experiment {name!r}", 404)
        return exp

    def _check_levers(self, spec: ExperimentSpec) -> None:
        """What the spec names must exist on this server: its policies, or an ad lever for an ads experiment."""
        problems: list[tuple[str, str]] = []
        if spec.layer == "feed":
            known = list(self.feed.policies)
        elif spec.layer == "notifications":
            if self.notifications is None:
                raise ExperimentError("layer", "this server makes no notifications", 409)
            known = list(self.notifications.policies)
        else:
            if self._ad_server is None:
                raise ExperimentError("layer", "this server places no ads ([ads] enabled = false)", 409)
            known = []
        for i, a in enumerate(spec.arms):
            if spec.layer != "ads" and a.policy not in known:
                problems.append(
                    (
                        f"arms.{i}.policy",
                        f"unknown {spec.layer} policy {a.policy!r}; expected one of {', '.join(known)}",
                    )
                )
        if problems:
            raise ExperimentError(problems[0][0], problems[0][1], 422, problems)

    def create(self, spec: ExperimentSpec) -> dict[str, Any]:
        """Create a draft, or replace a draft of the same name; a started experiment cannot change (409)."""
        self._check_levers(spec)
        self.refresh(force=True)
        with self.lock:
            old = self.experiments.get(spec.name)
        if old is not None and old.status != "draft":
            raise ExperimentError(
                "name",
                f"experiment {spec.name!r} is {old.status}: only a draft can be replaced; choose a new name",
                409,
            )
        now = time.time()
        exp = Experiment(spec, "draft", old.created_at if old is not None else now, now)
        self.ingestor.put_experiment(exp.to_row())
        return exp.public()

    def start(self, name: str) -> dict[str, Any]:
        """Start a draft: it takes the first free range of its layer's buckets (409 naming ``traffic`` when the
        layer has too few free)."""
        self.refresh(force=True)
        exp = self._get(name)
        if exp.status != "draft":
            raise ExperimentError("status", f"experiment {name!r} is {exp.status}; only a draft can start", 409)
        self._check_levers(exp.spec)
        with self.lock:
            running = [e for e in self.experiments.values() if e.running]
        buckets = free_range(running, exp.layer, float(exp.spec.traffic))
        if buckets is None:
            held = sum(hi - lo for e in running if e.layer == exp.layer and e.buckets for lo, hi in [e.buckets])
            raise ExperimentError(
                "traffic",
                f"the {exp.layer} layer has {1 - held / BUCKETS:.2%} of its people free (running experiments hold the"
                f" rest); this one needs {bucket_range(float(exp.spec.traffic)) / BUCKETS:.2%}",
                409,
            )
        exp = exp.started(self.feed.now(), buckets)
        self.ingestor.put_experiment(exp.to_row())
        return exp.public()

    def stop(self, name: str) -> dict[str, Any]:
        """Stop a running experiment: nobody is served by it from now; its report stays."""
        self.refresh(force=True)
        exp = self._get(name)
        if exp.status != "running":
            raise ExperimentError("status", f"experiment {name!r} is {exp.status}; only a running one can stop", 409)
        exp = exp.stopped(self.feed.now())
        self.ingestor.put_experiment(exp.to_row())
        return exp.public()

    def get(self, name: str) -> dict[str, Any]:
        return self._get(name).public()

    def all(self) -> list[dict[str, Any]]:
        with self.lock:
            exps = sorted(self.experiments.values(), key=lambda e: e.name)
        return [e.public() for e in exps]

    # ------------------------------------------------------------------ a person's view
    def for_user(self, user: int) -> list[dict[str, Any]]:
        """The experiments a person is in (running, by their buckets) or was exposed to, with their arm, what it
        sets, and whether they are excluded by a choice of their own."""
        with self.lock:
            if not self.experiments:  # none defined: no store read on the page's path
                return []
        uid = self.feed.state.users.id_of(user)
        prefs = self.feed.state.feedback.prefs(user)
        exposed = {r.experiment: r for r in self.store.exposures(user=user)}
        with self.lock:
            exps = sorted(self.experiments.values(), key=lambda e: e.name)
        out = []
        for exp in exps:
            row = exposed.get(exp.name)
            arm = arm_of(exp, uid, self.settings.salt) if uid is not None else None
            if row is None and arm is None:
                continue
            name = row.arm if row is not None else arm
            spec_arm = exp.arm(name) if name is not None else None
            excluded = row is None and self._explicit(exp.layer, prefs)
            out.append(
                {
                    "experiment": exp.name,
                    "description": exp.spec.description,
                    "layer": exp.layer,
                    "status": exp.status,
                    "arm": name,
                    "sets": arm_sets(exp.layer, spec_arm) if spec_arm is not None else None,
                    "exposed_at": row.ts if row is not None else None,
                    "excluded": _EXCLUDED.get(exp.layer) if excluded else None,
                }
            )
        return out

    # ------------------------------------------------------------------ analysis
    def report(self, name: str, now: float | None = None) -> dict[str, Any]:
        """The experiment's report (JSON-ready): exposures per arm and the SRM check, each metric per arm and each
        arm against the control (Welch and CUPED intervals, the always-valid mSPRT p-value and confidence
        sequence), the guardrails' verdicts. See docs/experiments.md ("Analysis")."""
        exp = self._get(name)
        if exp.status == "draft":
            raise ExperimentError("status", f"experiment {name!r} has not started: nothing to report", 409)
        self.feed.flush_impressions()  # the impressions of pages served so far are in the log
        now = self.feed.now() if now is None else float(now)
        end = exp.stopped_at if exp.stopped_at is not None else now
        s = self.settings
        rows = self.store.exposures(name)
        arms = [a.name for a in exp.spec.arms]
        exposed = dict.fromkeys(arms, 0)
        for r in rows:
            if r.arm in exposed:
                exposed[r.arm] += 1
        out: dict[str, Any] = {
            "experiment": exp.public(),
            "generated_at": now,
            "window_end": end,
            "control": exp.spec.control_arm,
            "exposed": exposed,
            "settings": s.model_dump(exclude={"salt", "refresh_s"}),
        }
        total = sum(exposed.values())
        if total:
            srm = stats.srm_check(
                [exposed[a] for a in arms], [float(a.share) for a in exp.spec.arms], alpha=s.srm_alpha
            )
            out["srm"] = {
                "p_value": _num(srm.p_value),
                "chi2": _num(srm.chi2),
                "alpha": s.srm_alpha,
                "expected_shares": dict(zip(arms, _nums(srm.expected_shares))),
                "observed_shares": dict(zip(arms, _nums(srm.observed_shares))),
                "mismatch": bool(srm.mismatch),
            }
        else:
            out["srm"] = None
        rows = [r for r in rows if r.arm in exposed]
        users = np.array([r.user for r in rows], np.int64)
        t0 = np.array([r.ts for r in rows], np.float64)
        arm_idx = np.array([arms.index(r.arm) for r in rows], np.int64)
        first = float(min(t0.min() if len(t0) else end, exp.started_at or end)) - s.pre_period_days * 86400.0
        events = self.store.events_in_window(first, max(now, end) + 1e-6, kinds=KINDS)
        with self.feed.lock:
            st = self.feed.state
            post = events.post
            ok = (post >= 0) & (post < st.posts.capacity)
            div = np.zeros(len(events), bool)
            div[ok] = np.nan_to_num(st.posts.divisiveness(post[ok]), nan=0.0) >= s.divisive_threshold
            ids = st.users.id_of
        prefs = self.store.load_prefs()
        outcomes = person_outcomes(users, t0, end, now, events, div, s, self.wellbeing)
        out["metrics"] = {m: _metric_report(m, outcomes[m], arm_idx, arms, exp.spec.control_arm, s) for m in METRICS}
        out["excluded"] = self._excluded(exp, prefs, events, end, ids)
        out["guardrails"] = _guardrails(exp.spec, out["metrics"])
        verdicts = [g["verdict"] for g in out["guardrails"]]
        out["verdict"] = (
            None
            if not verdicts
            else "breach"
            if stats.BREACH in verdicts
            else "pass"
            if all(v == stats.PASS for v in verdicts)
            else "inconclusive"
        )
        out["notes"] = _notes(out, exp)
        return out

    def _excluded(
        self, exp: Experiment, prefs: Mapping[int, Mapping[str, Any]], events: EventBatch, end: float, ids: Any
    ) -> dict[str, Any]:
        """People the experiment's buckets hold who were not served by it because they chose the lever themselves,
        and who used the feed while it ran, per arm they would have been in."""
        counts = {a.name: 0 for a in exp.spec.arms}
        start = exp.started_at if exp.started_at is not None else end
        imp = events.kind == int(EventKind.IMPRESSION)
        active = set(np.unique(events.user[imp & (events.ts >= start) & (events.ts <= end)]).tolist())
        for u, p in prefs.items():
            if u not in active or not self._explicit(exp.layer, p):
                continue
            uid = ids(u)
            arm = arm_in(exp, uid, self.settings.salt) if uid is not None else None
            if arm is not None:
                counts[arm] += 1
        return {"reason": _EXCLUDED.get(exp.layer), "by_arm": counts, "total": sum(counts.values())}


def arm_sets(layer: str, arm: Arm) -> str:
    """What an arm changes, in words."""
    if layer == "feed":
        return f"your feed is ranked by the {arm.policy!r} policy"
    if layer == "notifications":
        return f"your notifications follow the {arm.policy!r} policy"
    return f"ads take at most {float(arm.ad_load or 0.0):.0%} of the places on a page of your feed"


# ---------------------------------------------------------------------------------------------------------------
# Per-person outcomes from the event log


@dataclass(frozen=True, slots=True)
class Outcome:
    """One metric per exposed person: the value ``y`` where ``ok`` (defined: e.g. a rate needs impressions), and
    the same metric over the pre-period ``x`` where ``x_ok`` (CUPED's covariate)."""

    y: np.ndarray
    ok: np.ndarray
    x: np.ndarray
    x_ok: np.ndarray


def person_outcomes(
    users: np.ndarray,
    t0: np.ndarray,
    end: float,
    now: float,
    events: EventBatch,
    divisive: np.ndarray,
    s: ExperimentSettings,
    w: WellbeingSettings,
) -> dict[str, Outcome]:
    """Every metric of ``METRICS`` for each exposed person (``users``, exposed at ``t0``), from ``events`` (the
    ``KINDS`` read from the log; ``divisive``: per event, whether its post counts as divisive):

    - the **window** is [t0, ``end``] (``end``: the stop time, or now); the **pre-period** [t0 - pre_period_days, t0)
      gives each metric's covariate;
    - rates are per person (the unit that is randomised): engagement = (likes + reposts + replies) / impressions,
      divisive share, see-less rate and report rate per impression, worth_it = yes / answers; a person with no
      impression (no answer) has none;
    - time_minutes and sessions as the wellbeing usage counts them: each distinct impression time is a page, pages
      further apart than ``session_gap_min`` start a new session, time = the gaps within sessions + ``page_min``
      per session;
    - retention: a page in a later session than the exposure's within ``retention_days`` of t0; defined only for
      people exposed at least ``retention_days`` before ``now``; its covariate: any page in the pre-period."""
    m = len(users)
    lut = np.full(int(max(users.max(initial=0), events.user.max(initial=0))) + 1, -1, np.int64)
    lut[users] = np.arange(m)
    p = lut[events.user] if len(events) else np.zeros(0, np.int64)
    keep = p >= 0
    p, ts, kind, value, div = p[keep], events.ts[keep], events.kind[keep], events.value[keep], divisive[keep]
    start = t0[p]
    pre = s.pre_period_days * 86400.0
    windows = {"y": (ts >= start) & (ts <= end), "x": (ts >= start - pre) & (ts < start)}
    imp_k = kind == int(EventKind.IMPRESSION)
    eng_k = np.isin(kind, [int(k) for k in ENGAGED])
    less_k = np.isin(kind, [int(k) for k in SEE_LESS])
    rep_k = kind == int(EventKind.REPORT)
    worth_k = kind == int(EventKind.WORTH_IT)
    gap_s, page_s = w.session_gap_min * 60.0, w.page_min * 60.0
    parts: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]] = {}
    for side, win in windows.items():

        def count(mask: np.ndarray, win: np.ndarray = win) -> np.ndarray:
            return np.bincount(p[mask & win], minlength=m).astype(np.float64)

        imp = count(imp_k)
        answers, yes = count(worth_k), count(worth_k & (value >= 0.5))
        has_imp, has_ans = imp > 0, answers > 0
        safe = np.maximum(imp, 1.0)
        minutes, sessions, _ = _usage(p[imp_k & win], ts[imp_k & win], m, gap_s, page_s)
        parts[side] = {
            "engagement": (count(eng_k) / safe, has_imp),
            "impressions": (imp, np.ones(m, bool)),
            "time_minutes": (minutes / 60.0, np.ones(m, bool)),
            "sessions": (sessions, np.ones(m, bool)),
            "worth_it": (yes / np.maximum(answers, 1.0), has_ans),
            "divisive_share": (count(imp_k & div) / safe, has_imp),
            "see_less_rate": (count(less_k) / safe, has_imp),
            "report_rate": (count(rep_k) / safe, has_imp),
        }
    horizon = s.retention_days * 86400.0
    in_reach = imp_k & (ts >= start) & (ts <= start + horizon)
    _, _, returned = _usage(p[in_reach], ts[in_reach], m, gap_s, page_s)
    mature = t0 + horizon <= now
    active_before = parts["x"]["impressions"][0] > 0
    parts["y"]["retention"] = (returned.astype(np.float64), mature)
    parts["x"]["retention"] = (active_before.astype(np.float64), np.ones(m, bool))
    return {
        name: Outcome(parts["y"][name][0], parts["y"][name][1], parts["x"][name][0], parts["x"][name][1])
        for name in METRICS
    }


def _usage(
    p: np.ndarray, ts: np.ndarray, m: int, gap_s: float, page_s: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per person (``p`` indexes 0..m-1): seconds in the app, sessions, and whether they came back in a later
    session; from their impressions (one page per distinct time)."""
    order = np.lexsort((ts, p))
    p, ts = p[order], ts[order]
    if len(p):
        distinct = np.ones(len(p), bool)
        distinct[1:] = (p[1:] != p[:-1]) | (ts[1:] != ts[:-1])
        p, ts = p[distinct], ts[distinct]
    same = p[1:] == p[:-1]
    gap = ts[1:] - ts[:-1]
    new = np.ones(len(p), bool)
    new[1:] = ~same | (gap >= gap_s)
    sessions = np.bincount(p[new], minlength=m).astype(np.float64)
    within = same & (gap < gap_s)
    secs = np.bincount(p[1:][within], weights=gap[within], minlength=m) + sessions * page_s
    return secs, sessions, sessions > 1


# ---------------------------------------------------------------------------------------------------------------
# Statistics per metric, guardrails


def _num(x: Any) -> float | None:
    v = float(np.asarray(x))
    return v if np.isfinite(v) else None


def _nums(a: Any) -> list[float | None]:
    return [_num(v) for v in np.asarray(a, np.float64).ravel()]


def _metric_report(
    name: str, o: Outcome, arm_idx: np.ndarray, arms: list[str], control: str, s: ExperimentSettings
) -> dict[str, Any]:
    """One metric: each arm's people and mean, and each other arm against the control: the raw (Welch) and the
    CUPED-adjusted difference, absolute and relative, and the always-valid mSPRT p-value and confidence sequence of
    the adjusted relative difference (the one guardrails read)."""
    x = o.x.copy()
    covered = o.ok & o.x_ok
    x[~o.x_ok] = float(x[covered].mean()) if covered.any() else 0.0  # fixed and pre-exposure: CUPED stays valid
    per_arm = {}
    for k, a in enumerate(arms):
        mask = (arm_idx == k) & o.ok
        per_arm[a] = {"n": int(mask.sum()), "mean": _num(o.y[mask].mean()) if mask.any() else None}
    c = arms.index(control)
    cm = (arm_idx == c) & o.ok
    comparisons: dict[str, dict[str, Any] | None] = {}
    for k, a in enumerate(arms):
        if k == c:
            continue
        tm = (arm_idx == k) & o.ok
        if tm.sum() < 2 or cm.sum() < 2:
            comparisons[a] = None
            continue
        cup = stats.cuped(o.y[tm], o.y[cm], x[tm], x[cm], alpha=s.alpha)
        adj, raw = cup.adjusted, cup.raw
        seq = stats.msprt([adj.rel], [adj.rel_se**2], tau=s.msprt_tau, alpha=s.alpha)  # one look: now
        comparisons[a] = {
            "diff": _num(raw.diff),
            "low": _num(raw.low),
            "high": _num(raw.high),
            "p_value": _num(raw.p_value),
            "rel": _num(raw.rel),
            "rel_low": _num(raw.rel_low),
            "rel_high": _num(raw.rel_high),
            "cuped": {
                "theta": _num(cup.theta),
                "correlation": _num(cup.correlation),
                "variance_reduction": _num(cup.variance_reduction),
                "diff": _num(adj.diff),
                "low": _num(adj.low),
                "high": _num(adj.high),
                "rel": _num(adj.rel),
                "rel_low": _num(adj.rel_low),
                "rel_high": _num(adj.rel_high),
                "p_value": _num(adj.p_value),
            },
            "sequential": {
                "p_value": _num(seq.p_value[..., -1]),
                "rel_low": _num(seq.low[..., -1]),
                "rel_high": _num(seq.high[..., -1]),
                "tau": s.msprt_tau,
            },
        }
    return {"description": METRICS[name], "arms": per_arm, "comparisons": comparisons}


def _guardrails(spec: ExperimentSpec, metrics: dict[str, Any]) -> list[dict[str, Any]]:
    """Each guardrail for each arm against the control: its verdict (``analysis.guardrail_verdict``) from the
    always-valid confidence sequence of the CUPED-adjusted relative difference."""
    out = []
    for g in spec.guardrails:
        for arm, cmp in metrics[g.metric]["comparisons"].items():
            seq = cmp["sequential"] if cmp else None
            low, high = (seq["rel_low"], seq["rel_high"]) if seq else (None, None)
            verdict = stats.guardrail_verdict(
                float("nan") if low is None else low,
                float("nan") if high is None else high,
                *g.limits,
            )
            out.append(
                {
                    "metric": g.metric,
                    "arm": arm,
                    "against": spec.control_arm,
                    "max_increase": g.max_increase,
                    "max_decrease": g.max_decrease,
                    "rel": cmp["cuped"]["rel"] if cmp else None,
                    "rel_low": low,
                    "rel_high": high,
                    "verdict": verdict,
                }
            )
    return out


def _notes(report: dict[str, Any], exp: Experiment) -> list[str]:
    notes = []
    srm = report.get("srm")
    if srm is None:
        notes.append("Nobody has been exposed yet.")
    elif srm["mismatch"]:
        notes.append(
            f"Sample-ratio mismatch (p = {srm['p_value']:.2g} < {srm['alpha']}): the arms' exposures are not in the"
            " configured shares; find the cause before trusting any comparison."
        )
    retention = report["metrics"]["retention"]["arms"]
    if not any(a["n"] for a in retention.values()):
        days = report["settings"]["retention_days"]
        notes.append(f"Retention needs people exposed at least {days:g} days ago; none yet.")
    for g in report["guardrails"]:
        if g["verdict"] == stats.BREACH:
            notes.append(f"Guardrail breached: {_guardrail_words(g)}.")
    return notes


def _guardrail_words(g: dict[str, Any]) -> str:
    limits = []
    if g["max_increase"] is not None:
        limits.append(f"must not rise by more than {g['max_increase']:.1%}")
    if g["max_decrease"] is not None:
        limits.append(f"must not fall by more than {g['max_decrease']:.1%}")
    return f"{g['metric']} of {g['arm']} against {g['against']} {' and '.join(limits)}"


# ---------------------------------------------------------------------------------------------------------------
# HTML


def _fmt(v: Any, pct: bool = False) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:+.1%}" if pct else f"{v:.4g}"
    return html.escape(str(v))


def report_html(rep: dict[str, Any]) -> str:
    """The report as one self-contained HTML page (no script, inline style)."""
    e = rep["experiment"]
    arms = list(rep["exposed"])
    esc = html.escape
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>Experiment {esc(e['name'])}</title>",
        "<style>body{font:14px system-ui,sans-serif;margin:2em;max-width:75em}table{border-collapse:collapse;"
        "margin:1em 0}td,th{border:1px solid #ccc;padding:.3em .6em;text-align:right}th:first-child,"
        "td:first-child{text-align:left}.breach{background:#fdd}.pass{background:#dfd}.inconclusive{background:#ffd}"
        "</style></head><body>",
        f"<h1>Experiment {esc(e['name'])}</h1>",
        f"<p>{esc(e['description'])}</p>" if e["description"] else "",
        f"<p>Layer <b>{esc(e['layer'])}</b>, status <b>{esc(e['status'])}</b>, control arm "
        f"<b>{esc(rep['control'])}</b>. Verdict: <b class='{esc(str(rep['verdict']))}'>"
        f"{esc(str(rep['verdict'] or 'no guardrails'))}</b>.</p>",
        "<h2>Exposure</h2><table><tr><th>arm</th><th>sets</th><th>share</th><th>exposed</th><th>excluded</th></tr>",
    ]
    for a in e["arms"]:
        what = a.get("policy") if a.get("policy") is not None else f"ad load {a.get('ad_load')}"
        parts.append(
            f"<tr><td>{esc(a['name'])}</td><td>{esc(str(what))}</td><td>{a['share']:.0%}</td>"
            f"<td>{rep['exposed'][a['name']]}</td><td>{rep['excluded']['by_arm'][a['name']]}</td></tr>"
        )
    parts.append("</table>")
    srm = rep["srm"]
    if srm:
        parts.append(
            f"<p>Sample-ratio check: p = {_fmt(srm['p_value'])} ({'MISMATCH' if srm['mismatch'] else 'no mismatch'}"
            f" at {srm['alpha']}).</p>"
        )
    if rep["guardrails"]:
        parts.append(
            "<h2>Guardrails</h2><table><tr><th>metric</th><th>arm</th><th>limit</th><th>change</th>"
            "<th>always-valid interval</th><th>verdict</th></tr>"
        )
        for g in rep["guardrails"]:
            limit = ", ".join(
                x
                for x in (
                    f"≤ +{g['max_increase']:.1%}" if g["max_increase"] is not None else "",
                    f"≥ −{g['max_decrease']:.1%}" if g["max_decrease"] is not None else "",
                )
                if x
            )
            parts.append(
                f"<tr class='{esc(g['verdict'])}'><td>{esc(g['metric'])}</td><td>{esc(g['arm'])}</td><td>{limit}</td>"
                f"<td>{_fmt(g['rel'], True)}</td><td>[{_fmt(g['rel_low'], True)}, {_fmt(g['rel_high'], True)}]</td>"
                f"<td>{esc(g['verdict'])}</td></tr>"
            )
        parts.append("</table>")
    parts.append("<h2>Metrics</h2><table><tr><th>metric</th>")
    parts += [f"<th>{esc(a)}: n</th><th>{esc(a)}: mean</th>" for a in arms]
    level = f"{1 - rep['settings']['alpha']:.0%}"
    parts.append(f"<th>arm</th><th>change (CUPED)</th><th>{level} interval</th><th>always-valid p</th></tr>")
    for name, m in rep["metrics"].items():
        cmps = [(a, c) for a, c in m["comparisons"].items()] or [("", None)]
        for j, (a, c) in enumerate(cmps):
            row = [f"<tr><td>{esc(name) if j == 0 else ''}</td>"]
            for arm in arms:
                st = m["arms"][arm]
                row.append(f"<td>{st['n'] if j == 0 else ''}</td><td>{_fmt(st['mean']) if j == 0 else ''}</td>")
            if c is None:
                row.append(f"<td>{esc(a)}</td><td>–</td><td>–</td><td>–</td></tr>")
            else:
                cu = c["cuped"]
                row.append(
                    f"<td>{esc(a)}</td><td>{_fmt(cu['rel'], True)}</td><td>[{_fmt(cu['rel_low'], True)}, "
                    f"{_fmt(cu['rel_high'], True)}]</td><td>{_fmt(c['sequential']['p_value'])}</td></tr>"
                )
            parts.append("".join(row))
    parts.append("</table>")
    if rep["notes"]:
        parts.append("<h2>Notes</h2><ul>" + "".join(f"<li>{esc(n)}</li>" for n in rep["notes"]) + "</ul>")
    parts.append("</body></html>")
    return "".join(parts)


__all__ = ["ExperimentService", "Outcome", "arm_sets", "person_outcomes", "report_html"]
