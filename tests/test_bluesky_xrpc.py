"""The feed generator end to end: a real uvicorn process on a loopback port, the ``atproto`` SDK as the client.

The store is built from Jetstream messages (a small random network written to the documented schema), so post
ids are at:// URIs and users are DIDs exactly as in production.
"""

from __future__ import annotations

import json
import random
import time

import httpx
import pytest
from atproto import Client
from atproto_client.exceptions import BadRequestError, UnauthorizedError
from cryptography.hazmat.primitives.asymmetric import ec

from glassfeed.bluesky.jetstream import JetstreamIngester
from glassfeed.bluesky.jwt import sign_jwt
from glassfeed.bluesky.keys import did_key
from glassfeed.domain import EventKind
from glassfeed.ingest import Ingestor
from glassfeed.store import open_store
from live_server import LiveServer

HOST = "feeds.example.test"
SERVICE = f"did:web:{HOST}"
PUBLISHER = "did:plc:publisherpublisher00001"
SKELETON, SEND = "app.bsky.feed.getFeedSkeleton", "app.bsky.feed.sendInteractions"
T0 = 1_735_732_800_000_000
READER, REPOSTER, STRANGER = (
    "did:plc:reader00000000000000001",
    "did:plc:reposter000000000000001",
    "did:plc:stranger000000000000001",
)


def feed_uri(policy: str) -> str:
    return f"at://{PUBLISHER}/app.bsky.feed.generator/{policy}"


def network_messages(seed: int = 7, n_users: int = 30, n_posts: int = 240) -> list[dict]:
    """A random little network as Jetstream commits, plus a reader who follows one reposter of a stranger."""
    rng = random.Random(seed)
    dids = [f"did:plc:user{i:020d}" for i in range(n_users)]
    msgs, t = [], T0

    def commit(did, col, rkey, record):
        nonlocal t
        t += 20_000_000
        msgs.append(
            {
                "did": did,
                "time_us": t,
                "kind": "commit",
                "commit": {
                    "rev": f"3r{len(msgs):011d}",
                    "operation": "create",
                    "collection": col,
                    "rkey": rkey,
                    "record": {"$type": col, **record},
                    "cid": f"bafyrei{len(msgs):052d}",
                },
            }
        )
        return f"at://{did}/{col}/{rkey}"

    for i, d in enumerate(dids):
        for j in rng.sample(range(n_users), 6):
            if j != i:
                commit(d, "app.bsky.graph.follow", f"3f{i:04d}{j:07d}", {"subject": dids[j]})
    posts = []
    for k in range(n_posts):
        a = rng.randrange(n_users)
        posts.append(
            commit(dids[a], "app.bsky.feed.post", f"3p{k:011d}", {"text": f"post {k} #topic{k % 7}", "langs": ["en"]})
        )
        if k > 5:
            for _ in range(rng.randrange(4)):
                commit(
                    dids[rng.randrange(n_users)],
                    "app.bsky.feed.like",
                    f"3l{len(msgs):011d}",
                    {"subject": {"uri": rng.choice(posts[-40:]), "cid": "bafy"}},
                )
    stranger_post = commit(STRANGER, "app.bsky.feed.post", "3pstranger001", {"text": "a stranger's post"})
    commit(READER, "app.bsky.graph.follow", "3freader00001", {"subject": REPOSTER})
    commit(REPOSTER, "app.bsky.feed.post", "3preposter001", {"text": "my own post"})
    commit(REPOSTER, "app.bsky.feed.repost", "3rrepost00001", {"subject": {"uri": stranger_post, "cid": "bafy"}})
    return msgs


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bsky")
    db = tmp / "glassfeed.db"
    store = open_store(db, "OFF")
    js = tmp / "jetstream.jsonl"
    js.write_text("\n".join(json.dumps(m) for m in network_messages()))
    JetstreamIngester(Ingestor(store)).ingest_file(js)
    n_posts = store.count("posts")
    store.close()
    keys = {"k256": ec.generate_private_key(ec.SECP256K1()), "p256": ec.generate_private_key(ec.SECP256R1())}
    (tmp / "keys.json").write_text(
        json.dumps(
            {
                READER: did_key(keys["k256"].public_key()),
                "did:plc:user00000000000000000003": did_key(keys["p256"].public_key()),
            }
        )
    )
    (tmp / "glassfeed.toml").write_text(
        f'[serving]\nclock = "data"\n[bluesky]\nhostname = "{HOST}"\npublisher_did = "{PUBLISHER}"\n'
        f'keys_file = "{tmp / "keys.json"}"\nprivacy_policy = "https://{HOST}/privacy"\n'
    )
    # the feed routes do not use the service key; LiveServer only requires one
    with LiveServer(db, "unused", env={"GLASSFEED_CONFIG": str(tmp / "glassfeed.toml")}) as srv:
        yield {"base": srv.url, "db": db, "keys": keys, "n_posts": n_posts}


@pytest.fixture()
def client(server):
    return Client(base_url=server["base"])


def bearer(key, iss, lxm=SKELETON, **kw) -> dict[str, str]:
    return {"Authorization": f"Bearer {sign_jwt(key, iss=iss, aud=kw.pop('aud', SERVICE), lxm=lxm, **kw)}"}


def walk(client, policy, headers=None, limit=30):
    pages, cursor = [], None
    while True:
        params = {"feed": feed_uri(policy), "limit": limit, **({"cursor": cursor} if cursor else {})}
        res = client.app.bsky.feed.get_feed_skeleton(params, headers=headers or {})
        pages.append(res)
        cursor = res.cursor
        if not cursor:
            return pages
        assert len(pages) < 50


def test_describe_and_did_document(client, server):
    res = client.app.bsky.feed.describe_feed_generator()
    assert res.did == SERVICE
    assert {f.uri for f in res.feeds} == {
        feed_uri(p) for p in ("engagement", "chronological", "stated_preference", "bridging", "breadth")
    }
    assert res.links.privacy_policy == f"https://{HOST}/privacy"
    doc = httpx.get(f"{server['base']}/.well-known/did.json").json()
    assert doc == {
        "@context": ["https://www.w3.org/ns/did/v1"],
        "id": SERVICE,
        "service": [{"id": "#bsky_fg", "type": "BskyFeedGenerator", "serviceEndpoint": f"https://{HOST}"}],
    }


def test_anonymous_pages_walk_to_the_end_without_duplicates(client, server):
    pages = walk(client, "engagement", limit=30)
    posts = [it.post for p in pages for it in p.feed]
    # the in/out-of-network balance caps a reader without follows below ``limit``; short pages still continue
    assert len(posts) >= 10 and len(posts) == len(set(posts)) and pages[-1].cursor is None
    assert all(p.startswith("at://") and "/app.bsky.feed.post/" in p for p in posts)
    assert all(it.feed_context for p in pages for it in p.feed)
    assert len({p.req_id for p in pages}) == len(pages)


def test_personalised_feed_with_jwt_and_repost_reason(client, server):
    hdr = bearer(server["keys"]["k256"], READER)
    pages = walk(client, "chronological", hdr, limit=10)
    items = [it for p in pages for it in p.feed]
    by_post = {it.post: it for it in items}
    stranger = f"at://{STRANGER}/app.bsky.feed.post/3pstranger001"
    assert set(by_post) == {stranger, f"at://{REPOSTER}/app.bsky.feed.post/3preposter001"}
    reason = by_post[stranger].reason
    assert reason.py_type == "app.bsky.feed.defs#skeletonReasonRepost"
    assert reason.repost == f"at://{REPOSTER}/app.bsky.feed.repost/3rrepost00001"
    # the anonymous chronological feed follows nobody; the impressions were logged for the reader only
    assert walk(client, "chronological")[0].feed == []
    store = open_store(server["db"], "OFF")
    try:
        u = store.user_idx(READER)
        for _ in range(50):  # impressions are group-committed a few ms after the page is served
            imps = [e for e in store.user_events(u) if e[2] == int(EventKind.IMPRESSION)]
            if imps:
                break
            time.sleep(0.1)
        assert {e[9] for e in imps} == {pages[0].req_id} and {e[7] for e in imps} == {"bluesky"}
    finally:
        store.close()


def test_personalised_pages_with_p256_token_walk_to_the_end(client, server):
    user = "did:plc:user00000000000000000003"
    pages = walk(client, "engagement", bearer(server["keys"]["p256"], user), limit=30)
    posts = [it.post for p in pages for it in p.feed]
    assert len(pages) >= 2 and len(posts) == len(set(posts)) and pages[-1].cursor is None
    assert all(0 < len(p.feed) <= 30 for p in pages[:-1])
    assert not any(p.startswith(f"at://{user}/") for p in posts)  # personalised: own posts filtered
    # a cursor is bound to its reader: replaying it anonymously is refused
    with pytest.raises(BadRequestError) as e:
        client.app.bsky.feed.get_feed_skeleton({"feed": feed_uri("engagement"), "cursor": pages[0].cursor})
    assert e.value.response.content.error == "InvalidRequest"


@pytest.mark.parametrize(
    "case,error",
    [
        ("aud", "BadJwtAudience"),
        ("expired", "JwtExpired"),
        ("lxm", "BadJwtLexiconMethod"),
        ("signature", "BadJwtSignature"),
        ("garbage", "BadJwt"),
    ],
)
def test_bad_jwts_are_rejected_with_xrpc_errors(client, server, case, error):
    key, now = server["keys"]["k256"], time.time()
    hdr = {
        "aud": lambda: bearer(key, READER, aud="did:web:other.example"),
        "expired": lambda: bearer(key, READER, iat=now - 300, exp=now - 240),
        "lxm": lambda: bearer(key, READER, lxm=SEND),
        "signature": lambda: bearer(ec.generate_private_key(ec.SECP256K1()), READER),
        "garbage": lambda: {"Authorization": "Bearer not.a.jwt"},
    }[case]()
    with pytest.raises(UnauthorizedError) as e:
        client.app.bsky.feed.get_feed_skeleton({"feed": feed_uri("engagement"), "limit": 5}, headers=hdr)
    assert e.value.response.status_code == 401
    assert e.value.response.content.error == error and e.value.response.content.message


def test_request_errors_are_xrpc_json(client, server):
    with pytest.raises(BadRequestError) as e:
        client.app.bsky.feed.get_feed_skeleton({"feed": feed_uri("nonexistent"), "limit": 5})
    assert e.value.response.content.error == "UnknownFeed"
    other = "at://did:plc:someoneelse0000000000/app.bsky.feed.generator/engagement"
    with pytest.raises(BadRequestError) as e:
        client.app.bsky.feed.get_feed_skeleton({"feed": other})
    assert e.value.response.content.error == "UnknownFeed"
    url = f"{server['base']}/xrpc/{SKELETON}"
    for params, needle in (
        ({"feed": feed_uri("engagement"), "limit": "0"}, "limit"),
        ({"feed": feed_uri("engagement"), "limit": "abc"}, "limit"),
        ({"feed": feed_uri("engagement"), "limit": ""}, "limit"),  # the schema's integer: not "" nor "5_0"
        ({"feed": feed_uri("engagement"), "limit": "5_0"}, "limit"),
        ({}, "feed"),
        ({"feed": "not-an-uri"}, "at-uri"),
        ({"feed": feed_uri("engagement"), "cursor": "chronological~x.y"}, "cursor"),
        ({"feed": feed_uri("engagement"), "cursor": "engagement~tampered.sig"}, "cursor"),
    ):
        r = httpx.get(url, params=params)
        assert r.status_code == 400 and set(r.json()) == {"error", "message"}, (params, r.text)
        assert needle in r.json()["message"]
    r = httpx.get(f"{server['base']}/xrpc/app.bsky.feed.noSuchMethod")
    assert r.status_code == 501 and r.json()["error"] == "MethodNotImplemented"
    r = httpx.post(url)
    assert r.status_code == 405 and r.json()["error"] == "InvalidRequest" and r.headers["allow"] == "GET"


def test_send_interactions_become_events_joined_to_the_page(client, server):
    key = server["keys"]["k256"]
    page = client.app.bsky.feed.get_feed_skeleton(
        {"feed": feed_uri("engagement"), "limit": 5}, headers=bearer(key, READER)
    )
    a, b = page.feed[0], page.feed[1]
    data = {
        "feed": feed_uri("engagement"),
        "interactions": [
            {
                "item": a.post,
                "event": "app.bsky.feed.defs#requestLess",
                "feedContext": a.feed_context,
                "reqId": page.req_id,
            },
            {"item": b.post, "event": "app.bsky.feed.defs#clickthroughItem", "reqId": page.req_id},
            {"item": b.post, "event": "app.bsky.feed.defs#interactionShare", "reqId": page.req_id},
            {"item": b.post, "event": "app.bsky.feed.defs#somethingNew"},
        ],
    }
    with pytest.raises(UnauthorizedError) as e:
        client.app.bsky.feed.send_interactions(data)
    assert e.value.response.content.error == "AuthenticationRequired"
    with pytest.raises(UnauthorizedError) as e:  # a token minted for another method
        client.app.bsky.feed.send_interactions(data, headers=bearer(key, READER))
    assert e.value.response.content.error == "BadJwtLexiconMethod"
    for _ in range(2):  # the second send is a replay: nothing new is stored
        client.app.bsky.feed.send_interactions(data, headers=bearer(key, READER, lxm=SEND))
    store = open_store(server["db"], "OFF")
    try:
        u = store.user_idx(READER)
        evs = [e for e in store.user_events(u) if e[1] and e[1].startswith("bsky:ix:")]
        got = sorted((EventKind(e[2]).wire, e[3], e[9], e[7]) for e in evs)
        pa, pb = store.post_idx(a.post), store.post_idx(b.post)
        want = sorted(
            [
                ("see_less", pa, page.req_id, "bluesky:engagement"),
                ("click", pb, page.req_id, "bluesky:engagement"),
                ("share", pb, page.req_id, "bluesky:engagement"),
            ]
        )
        assert got == want
    finally:
        store.close()
