"""Durability: a real uvicorn process is SIGKILLed while a big batch is in flight; after a restart every
acknowledged event is there and the interrupted batch is either whole or absent. Re-sent ids change nothing."""

from __future__ import annotations

import threading
import time

import httpx
import pytest

from glassfeed.store import open_store
from live_server import LiveServer

KEY = "durability-key"
H = {"X-API-Key": KEY}


def _batch(tag: str, n: int) -> list[dict]:
    return [
        {
            "id": f"{tag}-{i}",
            "kind": "like" if i % 2 else "impression",
            "user": f"u{i % 50}",
            "post": f"p{i % 200}",
            "ts": 1_700_000_000 + i,
        }
        for i in range(n)
    ]


@pytest.mark.slow
def test_sigkill_mid_batch_keeps_acknowledged_and_drops_partial(tmp_path):
    db = tmp_path / "dur.db"
    srv = LiveServer(db, KEY)
    acked: list[str] = []
    try:
        c = httpx.Client(base_url=srv.url, headers=H, timeout=60)
        assert c.post("/v1/users", json=[{"id": f"u{i}"} for i in range(50)]).status_code == 201
        assert (
            c.post(
                "/v1/posts",
                json=[
                    {"id": f"p{i}", "author": f"u{i % 50}", "text": f"post {i}", "created_at": 1_699_000_000}
                    for i in range(200)
                ],
            ).status_code
            == 201
        )
        durations = []
        for b in range(4):
            batch = _batch(f"ack{b}", 5000)
            t0 = time.perf_counter()
            r = c.post("/v1/events", json=batch)
            durations.append(time.perf_counter() - t0)
            assert r.status_code == 200 and r.json()["accepted"] == 5000
            acked += [e["id"] for e in batch]
        # the victim: a 10k batch; kill the server about halfway through its expected handling time
        victim = _batch("victim", 10_000)
        result: dict = {}

        def send() -> None:
            try:
                result["resp"] = httpx.post(srv.url + "/v1/events", json=victim, headers=H, timeout=60)
            except httpx.HTTPError as e:
                result["err"] = e

        th = threading.Thread(target=send)
        th.start()
        time.sleep(sorted(durations)[len(durations) // 2])  # ~ half of a 10k batch's time
        srv.kill()
        th.join(30)
    finally:
        srv.kill()

    srv2 = LiveServer(db, KEY)  # restart on the same file (WAL recovery)
    try:
        st = open_store(db)
        assert st.event_ids_exist(acked) == set(acked), "an acknowledged event was lost"
        victim_ids = [e["id"] for e in victim]
        present = len(st.event_ids_exist(victim_ids))
        if "resp" in result and result["resp"].status_code == 200:
            assert present == len(victim_ids)
        else:
            assert present in (0, len(victim_ids)), f"partial batch: {present} of {len(victim_ids)} written"
        print("victim outcome:", "acked" if "resp" in result else "killed", "present", present)
        n_events = st.count("events")
        assert n_events == len(acked) + present
        # idempotency: re-sending acknowledged ids changes nothing
        c2 = httpx.Client(base_url=srv2.url, headers=H, timeout=60)
        r = c2.post("/v1/events", json=_batch("ack0", 5000))
        assert r.status_code == 200 and r.json() == {**r.json(), "accepted": 0, "duplicates": 5000}
        assert c2.get("/v1/stats").json()["events"] == n_events
        st.close()
    finally:
        srv2.kill()
