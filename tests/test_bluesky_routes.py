"""The XRPC routes in process (TestClient): who may sign in, who may become a user, XRPC verb edges, OpenAPI, and
key resolution that neither reaches private addresses nor blocks the event loop. No network is touched."""

from __future__ import annotations

import threading
import time

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi.testclient import TestClient

from glassfeed.api.app import create_app
from glassfeed.bluesky.jetstream import JetstreamIngester
from glassfeed.bluesky.jwt import sign_jwt
from glassfeed.bluesky.keys import NetworkKeyResolver, StaticKeyResolver, did_key
from glassfeed.bluesky.xrpc import DESCRIBE, GET_SKELETON, SEND_INTERACTIONS
from glassfeed.ingest import Ingestor
from glassfeed.settings import load_settings
from glassfeed.store import open_store

HOST = "feeds.example.test"
SERVICE = f"did:web:{HOST}"
AUTHOR = "did:plc:author0000000000000000001"
KNOWN = "did:plc:known00000000000000000001"
NEWCOMER = "did:plc:newcomer000000000000000001"
T0 = 1_735_732_800_000_000
POST = f"at://{AUTHOR}/app.bsky.feed.post/3p0000000001"
FEED = f"at://{SERVICE}/app.bsky.feed.generator/chronological"


def commit(i: int, did: str, collection: str, rkey: str, record: dict) -> dict:
    return {
        "did": did,
        "time_us": T0 + i * 1_000_000,
        "kind": "commit",
        "commit": {
            "rev": f"3r{i:011d}",
            "operation": "create",
            "collection": collection,
            "rkey": rkey,
            "record": {"$type": collection, **record},
            "cid": f"bafyrei{i:052d}",
        },
    }


@pytest.fixture()
def make_client(tmp_path):
    """A TestClient on a small store (AUTHOR's post; KNOWN follows AUTHOR); keys of KNOWN and NEWCOMER."""
    db = tmp_path / "bsky.db"
    store = open_store(db, "OFF")
    JetstreamIngester(Ingestor(store)).handle_batch(
        [
            commit(1, AUTHOR, "app.bsky.feed.post", "3p0000000001", {"text": "hello #science"}),
            commit(2, KNOWN, "app.bsky.graph.follow", "3f0000000001", {"subject": AUTHOR}),
        ]
    )
    store.close()
    keys = {d: ec.generate_private_key(ec.SECP256K1()) for d in (KNOWN, NEWCOMER)}
    clients = []

    def make(resolver=None, **bluesky):
        settings = load_settings(
            environ={},
            store={"path": db},
            serving={"clock": "data"},
            bluesky={"hostname": HOST, **bluesky},
        )
        app = create_app(settings)
        app.state.bluesky.resolver = resolver or StaticKeyResolver({d: k.public_key() for d, k in keys.items()})
        c = TestClient(app)
        c.__enter__()
        c.keys = keys
        c.db = db
        clients.append(c)
        return c

    yield make
    for c in clients:
        c.__exit__(None, None, None)


def bearer(key, iss, lxm=GET_SKELETON, **kw) -> dict[str, str]:
    return {"Authorization": f"Bearer {sign_jwt(key, iss=iss, aud=kw.pop('aud', SERVICE), lxm=lxm, **kw)}"}


def interactions() -> dict:
    return {"feed": FEED, "interactions": [{"item": POST, "event": "app.bsky.feed.defs#requestMore"}]}


def user_and_events(db, did):
    store = open_store(db, "OFF")
    try:
        u = store.user_idx(did)
        return u, ([] if u is None else store.user_events(u))
    finally:
        store.close()


def test_self_issued_did_key_tokens_are_refused(make_client):
    c = make_client()
    key = ec.generate_private_key(ec.SECP256K1())
    me = did_key(key.public_key())
    r = c.get(f"/xrpc/{GET_SKELETON}", params={"feed": FEED}, headers=bearer(key, me))
    assert r.status_code == 401 and r.json()["error"] == "BadJwt" and "did:plc, did:web" in r.json()["message"]
    r = c.post(f"/xrpc/{SEND_INTERACTIONS}", json=interactions(), headers=bearer(key, me, lxm=SEND_INTERACTIONS))
    assert r.status_code == 401
    assert user_and_events(c.db, me)[0] is None
    # a deployment that opts in to did:key issuers (and to creating users) accepts them
    c2 = make_client(allowed_did_methods=["plc", "web", "key"], create_users_from_interactions=True)
    r = c2.post(f"/xrpc/{SEND_INTERACTIONS}", json=interactions(), headers=bearer(key, me, lxm=SEND_INTERACTIONS))
    assert r.status_code == 200
    assert user_and_events(c2.db, me)[0] is not None


def test_interactions_from_unknown_dids_create_no_user_unless_configured(make_client):
    c = make_client()
    hdr = bearer(c.keys[NEWCOMER], NEWCOMER, lxm=SEND_INTERACTIONS)
    r = c.post(f"/xrpc/{SEND_INTERACTIONS}", json=interactions(), headers=hdr)
    assert r.status_code == 200 and r.json() == {}
    assert user_and_events(c.db, NEWCOMER) == (None, [])
    # a bad body is still refused for an unknown requester (validated before the skip)
    r = c.post(f"/xrpc/{SEND_INTERACTIONS}", json={"interactions": [{"item": "nope"}]}, headers=hdr)
    assert r.status_code == 400 and "item" in r.json()["message"]
    # known users' interactions are recorded as before
    hdr = bearer(c.keys[KNOWN], KNOWN, lxm=SEND_INTERACTIONS)
    assert c.post(f"/xrpc/{SEND_INTERACTIONS}", json=interactions(), headers=hdr).status_code == 200
    assert any(e[1].startswith("bsky:ix:") for e in user_and_events(c.db, KNOWN)[1])
    c2 = make_client(create_users_from_interactions=True)
    hdr = bearer(c2.keys[NEWCOMER], NEWCOMER, lxm=SEND_INTERACTIONS)
    assert c2.post(f"/xrpc/{SEND_INTERACTIONS}", json=interactions(), headers=hdr).status_code == 200
    u, evs = user_and_events(c2.db, NEWCOMER)
    assert u is not None and len(evs) == 1


def test_token_lifetime_skew_audience_fragment_and_lxm_over_http(make_client):
    c = make_client()
    key, now = c.keys[KNOWN], time.time()
    url, params = f"/xrpc/{GET_SKELETON}", {"feed": FEED}
    assert c.get(url, params=params, headers=bearer(key, KNOWN)).status_code == 200
    assert c.get(url, params=params, headers=bearer(key, KNOWN, aud=SERVICE + "#bsky_fg")).status_code == 200
    for hdr, needle in (
        (bearer(key, KNOWN, iat=now, exp=now + 86400 * 365), "exp"),
        (bearer(key, KNOWN, iat=now + 600, exp=now + 660), "iat"),
        (bearer(key, KNOWN, lxm=None), "lxm"),
    ):
        r = c.get(url, params=params, headers=hdr)
        assert r.status_code == 401 and needle in r.json()["message"], r.text


def test_xrpc_verbs_and_required_feed(make_client):
    c = make_client()
    for verb in ("PUT", "DELETE", "PATCH"):
        for nsid in (GET_SKELETON, SEND_INTERACTIONS, "app.bsky.feed.noSuchMethod"):
            r = c.request(verb, f"/xrpc/{nsid}")
            assert r.status_code == 405, (verb, nsid, r.text)
            assert r.json()["error"] == "MethodNotAllowed" and r.headers["allow"]
    assert c.put(f"/xrpc/{GET_SKELETON}").headers["allow"] == "GET"
    r = c.get(f"/xrpc/{SEND_INTERACTIONS}")  # the reference answers 400; HTTP's 405 names the method to use
    assert r.status_code == 405 and r.headers["allow"] == "POST" and r.json()["error"] == "InvalidRequest"
    assert c.post(f"/xrpc/{GET_SKELETON}").headers["allow"] == "GET"
    r = c.get(f"/xrpc/{GET_SKELETON}")
    assert r.status_code == 400 and r.json()["error"] == "InvalidRequest" and "feed" in r.json()["message"]
    op = c.get("/openapi.json").json()["paths"][f"/xrpc/{GET_SKELETON}"]["get"]
    params = {p["name"]: p for p in op["parameters"]}
    assert params["feed"]["required"] is True and params["limit"]["schema"]["maximum"] == 100
    assert params["feed"]["schema"]["enum"] == [f["uri"] for f in c.get(f"/xrpc/{DESCRIBE}").json()["feeds"]]
    assert {"400", "401", "429"} <= set(op["responses"])
    for code in ("400", "401", "429"):  # XRPC's own error body, not the API's ErrorOut (fuzz: ST108 on 429)
        assert op["responses"][code]["content"]["application/json"]["schema"]["required"] == ["error", "message"]
    send = c.get("/openapi.json").json()["paths"][f"/xrpc/{SEND_INTERACTIONS}"]["post"]
    assert send["requestBody"]["content"]["application/json"]["schema"]["required"] == ["interactions"]


def test_ssrf_token_is_refused_without_any_connection(make_client):
    requests: list[str] = []
    lookups: list[str] = []

    def transport(req: httpx.Request) -> httpx.Response:
        requests.append(str(req.url))
        return httpx.Response(500)

    def dns(host: str, port: int) -> list[str]:
        lookups.append(host)
        return ["127.0.0.1"]

    resolver = NetworkKeyResolver(client=httpx.Client(transport=httpx.MockTransport(transport)), dns=dns)
    c = make_client(resolver)
    key = ec.generate_private_key(ec.SECP256K1())
    for iss in ("did:web:127.0.0.1%3A18150", "did:web:169.254.169.254", "did:web:localhost.attacker.example"):
        for _ in range(3):
            r = c.get(f"/xrpc/{GET_SKELETON}", params={"feed": FEED}, headers=bearer(key, iss))
            assert r.status_code == 401 and r.json()["error"] == "BadJwtSignature"
            assert "non-public" in r.json()["message"]
    assert requests == [] and lookups == ["localhost.attacker.example"]  # failures are cached


def test_slow_key_resolution_does_not_block_other_requests(make_client):
    entered, release = threading.Event(), threading.Event()

    class Slow:
        def resolve(self, did, fresh=False):
            entered.set()
            release.wait(10)
            return None

    c = make_client(Slow())
    key = ec.generate_private_key(ec.SECP256K1())
    slow = threading.Thread(
        target=c.get, args=(f"/xrpc/{GET_SKELETON}",), kwargs={"params": {"feed": FEED}, "headers": bearer(key, KNOWN)}
    )
    slow.start()
    try:
        assert entered.wait(5)
        t0 = time.monotonic()
        assert c.get("/healthz").status_code == 200
        assert c.get(f"/xrpc/{GET_SKELETON}", params={"feed": FEED}).status_code == 200
        assert time.monotonic() - t0 < 2.0  # the event loop was free while a key resolution hung
    finally:
        release.set()
        slow.join(10)
