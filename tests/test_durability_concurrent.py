"""Durability under concurrent writers and repeated ``kill -9`` of a real server process.

Four writers each loop: create users, then posts by them, then a batch of events about them (client ids), as
a client with at-least-once delivery would: a batch whose answer never came (connection reset by the kill) is
re-sent, unchanged, once the server is back, until it gets a definite answer. The server is SIGKILLed three
times mid-traffic and restarted on the same file. What "counted once" means for each kind of batch:

- events: the answer to every delivery says ``accepted + duplicates == len(batch)``; a batch that was
  committed before the kill comes back as all duplicates (``accepted`` 0); the sum of ``accepted`` over every
  answer received, plus the batches committed by a delivery whose answer was lost, equals the events stored,
  and every client id is stored exactly once;
- users and posts: one batch is all-or-nothing, so a re-sent batch gets either ``201`` (it had not been
  committed) or ``409`` naming every item as "already exists" (it had been committed, and nothing more is
  written); every id sent is stored exactly once, under the ``idx`` its ``201`` reported.

Besides the genuine losses that the kills cause, every fifth acknowledged batch is re-sent once more as if its
acknowledgement had been lost, so that path is exercised on every run. Every batch acknowledged before a kill
is checked to be there after the restart.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from glassfeed.store import open_store
from live_server import LiveServer, free_port

KEY = "durability-key"
H = {"X-API-Key": KEY}
WRITERS, KILLS = 4, 3
USERS_PER_BATCH, POSTS_PER_BATCH, EVENTS_PER_BATCH = 5, 10, 400
ACK_LOSS_EVERY = 5  # every fifth acknowledged batch is re-sent as if its acknowledgement had been lost


@dataclass
class Ledger:
    """What the writers sent and what the server answered (guarded by ``lock``)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    user_idx: dict[str, int] = field(default_factory=dict)  # from 201 answers
    users_sent: set[str] = field(default_factory=set)  # every id of every resolved users batch
    posts_idx: dict[str, int] = field(default_factory=dict)
    posts_sent: set[str] = field(default_factory=set)
    events_sent: set[str] = field(default_factory=set)
    events_accepted: int = 0  # the sum of ``accepted`` over every answer received
    events_committed_unseen: int = 0  # events committed by a delivery whose answer never came
    acked: set[tuple[str, str]] = field(default_factory=set)  # (kind, id) with a definite answer
    outcomes: Counter = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)


class Writer(threading.Thread):
    def __init__(self, w: int, url: str, up: threading.Event, stop: threading.Event, ledger: Ledger):
        super().__init__(name=f"writer-{w}", daemon=True)
        self.w, self.url, self.up, self.stop, self.ledger = w, url, up, stop, ledger
        self.client = httpx.Client(base_url=url, headers=H, timeout=30)
        self.acks = 0

    def deliver(self, kind: str, items: list[dict[str, Any]]) -> None:
        """Send until a definite answer; check it against what "counted once" means for ``kind``."""
        lost = False  # an earlier delivery of this batch got no answer
        while True:
            if not self.up.wait(60):
                self.ledger.problems.append(f"{self.name}: the server did not come back")
                return
            try:
                r = self.client.post(f"/v1/{kind}", json=items)
            except httpx.TransportError:
                lost = True
                with self.ledger.lock:
                    self.ledger.outcomes[f"{kind}: delivery lost (no answer)"] += 1
                time.sleep(0.05)
                continue
            self.check(kind, items, r, lost)
            break
        self.acks += 1
        if self.acks % ACK_LOSS_EVERY == 0:  # the acknowledgement "was lost": the client re-sends the same batch
            while True:
                self.up.wait(60)
                try:
                    r = self.client.post(f"/v1/{kind}", json=items)
                except httpx.TransportError:
                    time.sleep(0.05)
                    continue
                self.check(kind, items, r, lost=True, committed=True)
                with self.ledger.lock:
                    self.ledger.outcomes[f"{kind}: acknowledged batch re-sent"] += 1
                break

    def check(self, kind: str, items: list[dict[str, Any]], r: httpx.Response, lost: bool, committed: bool = False):
        ids = [it["id"] for it in items]
        led = self.ledger
        with led.lock:
            if kind == "events":
                body = r.json() if r.status_code == 200 else {}
                if r.status_code != 200 or body["accepted"] + body["duplicates"] != len(items):
                    led.problems.append(f"events resend={lost}: {r.status_code} {r.text[:300]}")
                    return
                if committed and body["accepted"] != 0:
                    led.problems.append(f"events: an acknowledged batch re-sent was accepted again: {body}")
                if not lost and body["duplicates"] != 0:
                    led.problems.append(f"events: a first delivery reported duplicates: {body}")
                if lost and not committed:
                    led.outcomes[
                        "events: lost batch re-sent, " + ("was committed" if body["duplicates"] else "new")
                    ] += 1
                    led.events_committed_unseen += body["duplicates"]  # written by a delivery whose answer was lost
                led.events_accepted += body["accepted"]
                led.events_sent.update(ids)
            else:
                if r.status_code == 201:
                    if committed:
                        led.problems.append(f"{kind}: an acknowledged batch re-sent was created again: {r.text[:300]}")
                    created = {x["id"]: x["idx"] for x in r.json()[kind]}
                    if sorted(created) != sorted(ids):
                        led.problems.append(f"{kind}: 201 names {sorted(created)[:5]}..., sent {sorted(ids)[:5]}...")
                    (led.user_idx if kind == "users" else led.posts_idx).update(created)
                    if lost:
                        led.outcomes[f"{kind}: lost batch re-sent, new"] += 1
                elif r.status_code == 409 and lost:
                    detail = r.json().get("detail", [])
                    named = sorted(d["index"] for d in detail if "already exists" in d["reason"])
                    if named != list(range(len(items))) or len(detail) != len(items):
                        led.problems.append(f"{kind}: 409 on re-send does not name every item: {r.text[:300]}")
                    if not committed:
                        led.outcomes[f"{kind}: lost batch re-sent, was committed (409)"] += 1
                else:
                    led.problems.append(f"{kind} resend={lost}: {r.status_code} {r.text[:300]}")
                    return
                (led.users_sent if kind == "users" else led.posts_sent).update(ids)
            led.acked.update((kind, i) for i in ids)

    def run(self) -> None:
        b = 0
        while not self.stop.is_set():
            tag = f"w{self.w}-b{b}"
            users = [f"{tag}-u{i}" for i in range(USERS_PER_BATCH)]
            self.deliver("users", [{"id": u, "community": i % 2} for i, u in enumerate(users)])
            posts = [f"{tag}-p{i}" for i in range(POSTS_PER_BATCH)]
            now = time.time()
            self.deliver(
                "posts",
                [{"id": p, "author": users[i % USERS_PER_BATCH], "text": f"{p} #t{i % 3}", "created_at": now}
                 for i, p in enumerate(posts)],
            )  # fmt: skip
            self.deliver(
                "events",
                [
                    {"id": f"{tag}-e{i}", "kind": "like" if i % 4 == 0 else "impression", "ts": now - 0.01 * i,
                     "user": users[i % USERS_PER_BATCH], "post": posts[(i * 3) % POSTS_PER_BATCH]}
                    for i in range(EVENTS_PER_BATCH)
                ],
            )  # fmt: skip
            b += 1
        self.client.close()


def _missing(db, acked: set[tuple[str, str]]) -> list[tuple[str, str]]:
    st = open_store(db)
    try:
        users, posts = st.user_ids(), st.post_ids()
        events = st.event_ids_exist([i for k, i in acked if k == "events"])
        present = {"users": users.__contains__, "posts": posts.__contains__, "events": events.__contains__}
        return [(k, i) for k, i in acked if not present[k](i)]
    finally:
        st.close()


@pytest.mark.slow
def test_concurrent_writers_survive_repeated_sigkill_and_resends_count_once(tmp_path):
    db = tmp_path / "dur.db"
    port = free_port()
    led, up, stop = Ledger(), threading.Event(), threading.Event()
    srv = LiveServer(db, KEY, port=port)
    writers = [Writer(w, srv.url, up, stop, led) for w in range(WRITERS)]
    up.set()
    for t in writers:
        t.start()
    try:
        for k in range(KILLS):
            time.sleep(1.0 + 0.4 * k)  # kill at different points of the writers' cycles
            up.clear()
            srv.kill()
            with led.lock:
                acked_before_kill = set(led.acked)
            srv = LiveServer(db, KEY, port=port)
            missing = _missing(db, acked_before_kill)
            assert not missing, f"kill {k + 1}: acknowledged rows lost: {missing[:10]}"
            up.set()
        time.sleep(1.0)
    finally:
        stop.set()
        for t in writers:
            t.join(60)
        srv_alive = srv.proc.poll() is None
    try:
        assert srv_alive and not any(t.is_alive() for t in writers)
        assert not led.problems, "\n".join(led.problems[:20])
        print("outcomes:", dict(led.outcomes), "| batches acked:", sum(t.acks for t in writers))
        st = open_store(db)
        try:
            # every id sent is stored exactly once (ids are unique keys: the counts show nothing else was added)
            assert st.count("users") == len(led.users_sent) and set(st.user_ids()) == led.users_sent
            assert st.count("posts") == len(led.posts_sent) and set(st.post_ids()) == led.posts_sent
            assert st.count("events") == len(led.events_sent) == led.events_accepted + led.events_committed_unseen
            assert st.event_ids_exist(led.events_sent) == led.events_sent
            # rows keep the idx their 201 reported (nothing renumbered by recovery)
            assert all(st.user_idx(u) == i for u, i in led.user_idx.items())
            assert all(st.post_idx(p) == i for p, i in led.posts_idx.items())
        finally:
            st.close()
        stats = httpx.get(srv.url + "/v1/stats", timeout=10).json()
        assert (stats["users"], stats["posts"], stats["events"]) == (
            len(led.users_sent),
            len(led.posts_sent),
            len(led.events_sent),
        )
        # the simulated acknowledgement losses ran for every kind, and the kills did cut deliveries
        assert all(led.outcomes[f"{k}: acknowledged batch re-sent"] > 0 for k in ("users", "posts", "events"))
        assert sum(led.outcomes[f"{k}: delivery lost (no answer)"] for k in ("users", "posts", "events")) > 0
    finally:
        srv.stop()
