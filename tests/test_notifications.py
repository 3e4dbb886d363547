"""Notification candidates (idempotent, aggregated) and policy rules on hand-made cases: kinds off, the push
threshold, quiet hours and digests in the person's time zone, the daily cap, a person's settings within bounds."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from glassfeed.domain import EventBatch, EventKind
from glassfeed.notifications.candidates import Inbox, aggregate, from_events, mentions
from glassfeed.notifications.policy import KIND_CODE, SettingsRefused, load_notification_policies
from glassfeed.notifications.schedule import DECISIONS, PUSH, RULES, schedule

POL = load_notification_policies()
AUTHOR = {10: 1, 11: 1, 12: 2}  # post -> author


def author_of(posts: np.ndarray) -> np.ndarray:
    return np.array([AUTHOR.get(int(p), 0) for p in posts.tolist()], np.int64)


def batch(rows: list[tuple[int, int, int, int, float]], first_seq: int = 1) -> EventBatch:
    """rows: (kind, user, post, target_user, ts)."""
    k, u, p, t, ts = zip(*rows)
    b = EventBatch.from_columns(kind=list(k), user=list(u), ts=list(ts), post=list(p), target_user=list(t))
    return b.with_seq(first_seq)


def at(local: str, tz: str) -> float:
    """Epoch seconds of a local time like '2026-03-02 23:30' in ``tz``."""
    return datetime.fromisoformat(local).replace(tzinfo=ZoneInfo(tz)).timestamp()


T0 = at("2026-03-02 10:00", "UTC")
L, RP, RE, F = int(EventKind.LIKE), int(EventKind.REPOST), int(EventKind.REPLY), int(EventKind.FOLLOW)


def test_candidates_one_per_source_event_without_self_or_hidden():
    b = batch(
        [
            (L, 3, 10, -1, T0),  # like of user 1's post -> user 1
            (L, 1, 10, -1, T0 + 1),  # the author liking their own post: nobody
            (RE, 4, 12, -1, T0 + 2),  # reply to user 2's post -> user 2
            (F, 5, -1, 1, T0 + 3),  # follow -> user 1
            (L, 6, 10, -1, T0 + 4),  # user 1 muted user 6: nothing
            (int(EventKind.CLICK), 3, 10, -1, T0 + 5),  # clicks notify nobody
        ]
    )
    c = from_events(b, author_of, hidden=lambda u: {6} if u == 1 else set())
    assert list(zip(c.user.tolist(), c.kind.tolist(), c.actor.tolist())) == [
        (1, KIND_CODE["like"], 3),
        (2, KIND_CODE["reply"], 4),
        (1, KIND_CODE["follow"], 5),
    ]
    assert c.key == ["like:1", "reply:3", "follow:4"]


def test_mentions_from_post_text():
    c = mentions(
        np.array([20, 21]),
        ["hi @Bob and @bob and @nobody", "mail me@example.org"],
        np.array([1, 2]),
        np.array([T0, T0]),
        {"bob": 2, "carol": 3},
    )
    assert c.user.tolist() == [2] and c.key == ["mention:20:2"]  # one per handle; an e-mail is no mention


def test_likes_aggregate_per_post_and_window_and_replays_change_nothing():
    rows = [(L, a, 10, -1, T0 + a) for a in (3, 4, 5)] + [(RP, 6, 10, -1, T0), (L, 7, 11, -1, T0)]
    rows.append((L, 8, 10, -1, T0 + 30 * 3600))  # next day's window
    c = from_events(batch(rows), author_of)
    n = aggregate(c, window_h=24.0)
    got = {k: (a, s) for k, a, s in zip(n.key, n.actors, n.sources)}
    w = int(T0 // 86400)
    assert got[f"like:10:{w}"][0] == [3, 4, 5]  # "3, 4 and 5 liked your post": one notification
    assert got[f"repost:10:{w}"][0] == [6] and got[f"like:11:{w}"][0] == [7]
    assert got[f"like:10:{w + 1}"][0] == [8]
    inbox = Inbox()
    assert len(inbox.add(n)) == 4
    assert inbox.add(n) == []  # the same events again: nothing new
    assert inbox.add(aggregate(from_events(batch(rows), author_of), 24.0)) == []
    item = next(it for it in inbox.list(1) if it.key == f"like:10:{w}")
    assert item.count == 3 and inbox.unread(1) == 4
    more = from_events(batch([(L, 9, 10, -1, T0 + 100)], first_seq=50), author_of)
    assert inbox.add(aggregate(more, 24.0)) == [(1, f"like:10:{w}")]
    assert item.count == 4


def _one(kind: str, ts: float, user: int = 1) -> tuple:
    code = {"like": L, "reply": RE, "repost": RP}[kind]
    c = from_events(batch([(code, 9, 10 if user == 1 else 12, -1, ts)]), author_of)
    return aggregate(c, 24.0)


def _decide(policy, notifs, p_open=0.5, before=None):
    s = schedule(notifs, {int(u): policy for u in notifs.user.tolist()}, np.full(len(notifs), p_open), before)
    return [DECISIONS[d] for d in s.decision.tolist()], [RULES[r] for r in s.rule.tolist()], s.deliver_at


def test_kinds_off_and_threshold_keep_it_in_the_inbox():
    minimal = POL["minimal"]
    d, r, _ = _decide(minimal, _one("like", T0))
    assert d == ["inbox_only"] and r == ["kind_off"]
    d, r, _ = _decide(minimal, _one("reply", T0))
    assert d == ["push"] and r == ["immediate"]
    push = POL["engagement_push"]
    d, r, _ = _decide(push, _one("like", T0), p_open=0.01)  # 0.01 x 0.3 < 0.02
    assert d == ["inbox_only"] and r == ["below_threshold"]
    d, r, _ = _decide(push, _one("like", T0), p_open=0.5)
    assert d == ["push"]


def test_quiet_hours_in_the_persons_time_zone():
    tz = "America/New_York"
    pol = POL["minimal"].for_person({"time_zone": tz})  # quiet 22:00-08:00 local
    late = at("2026-03-02 23:30", tz)
    d, r, when = _decide(pol, _one("reply", late))
    assert d == ["push"] and r == ["quiet_hours"]
    assert datetime.fromtimestamp(when[0], ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M") == "2026-03-03 08:00"
    # the same instant is 04:30 in Paris: also quiet there, held until 08:00 Paris time
    paris = POL["minimal"].for_person({"time_zone": "Europe/Paris"})
    _, _, when = _decide(paris, _one("reply", late))
    assert datetime.fromtimestamp(when[0], ZoneInfo("Europe/Paris")).strftime("%H:%M") == "08:00"
    # noon local: at once
    d, r, when = _decide(pol, _one("reply", at("2026-03-02 12:00", tz)))
    assert r == ["immediate"] and when[0] == at("2026-03-02 12:00", tz)
    # engagement_push has no quiet hours
    assert _decide(POL["engagement_push"].for_person({"time_zone": tz}), _one("reply", late))[1] == ["immediate"]


def test_digests_at_the_chosen_times():
    tz = "Asia/Tokyo"
    pol = POL["batched"].for_person({"time_zone": tz, "digest_times": ["07:30", "12:15", "21:00"]})
    cases = {
        "2026-03-02 06:00": "2026-03-02 12:15",  # 07:30 falls in quiet hours (until 08:00): skipped
        "2026-03-02 12:15": "2026-03-02 12:15",
        "2026-03-02 12:16": "2026-03-02 21:00",
        "2026-03-02 21:30": "2026-03-03 12:15",
    }
    for sent, expected in cases.items():
        d, r, when = _decide(pol, _one("reply", at(sent, tz)))
        assert d == ["push"] and r == ["digest"], sent
        assert datetime.fromtimestamp(when[0], ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M") == expected, sent


def test_daily_cap_counts_a_digest_once_and_immediate_pushes_each():
    rows = [(RE, 20 + i, 10, -1, T0 + 60 * i) for i in range(6)]  # six replies to user 1
    n = aggregate(from_events(batch(rows), author_of), 24.0)
    batched = POL["batched"].for_person({"daily_cap": 1})
    d, r, when = _decide(batched, n)
    assert d == ["push"] * 6 and len(set(when.tolist())) == 1  # one digest holds all six: one push
    minimal = POL["minimal"].for_person({"daily_cap": 2})
    d, r, _ = _decide(minimal, n)
    assert d == ["push", "push"] + ["inbox_only"] * 4 and r[2:] == ["daily_cap"] * 4
    day = int((T0 + 0) // 86400)
    d, _, _ = _decide(minimal, n, before={(1, day): 2})  # two already pushed today
    assert d == ["inbox_only"] * 6


def test_person_settings_are_bounded():
    pol = POL["batched"]
    for prefs, field in [
        ({"daily_cap": 99}, "daily_cap"),
        ({"digest_times": []}, "digest_times"),
        ({"digest_times": ["25:00"]}, "digest_times"),
        ({"time_zone": "Mars/Olympus"}, "time_zone"),
        ({"time_zone": "Europe"}, "time_zone"),  # a folder of the zone database
        ({"time_zone": "x" * 5000}, "time_zone"),
        ({"kinds_on": ["you_might_like"]}, "kinds_on"),
        ({"kinds_off": ["gossip"]}, "kinds_off"),
        ({"volume": 11}, "volume"),
    ]:
        with pytest.raises(SettingsRefused) as e:
            pol.for_person(prefs)
        assert e.value.field == field
    mine = pol.for_person({"kinds_off": ["like"], "quiet_start": "21:00"})
    assert not mine.kinds["like"].push and mine.quiet_start == 21 * 60 and mine.adjusted_by_person
    assert pol.kinds["like"].push  # the policy itself is unchanged


def test_describe_says_what_is_pushed_and_when():
    text = POL["batched"].describe()
    assert "09:00, 13:00, 19:00" in text and "22:00 and 08:00" in text and "At most 5 pushes a day" in text
    assert "no quiet hours" in POL["engagement_push"].describe()
    assert "Never pushed" in POL["minimal"].describe()
    assert PUSH == 0
