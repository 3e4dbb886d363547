"""The network key resolver's hardening: no private targets (SSRF), negative cache, bounded LRU, bounded
concurrency, size cap, DID-document id check. No test touches the network: httpx MockTransport + a fake DNS."""

from __future__ import annotations

import threading
import time
from dataclasses import replace

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from glassfeed.bluesky.keys import (
    NetworkKeyResolver,
    PinnedBackend,
    ResolveError,
    encode_multikey,
    is_public_address,
)
from glassfeed.bluesky.settings import load_bluesky_settings

SETTINGS = load_bluesky_settings()
PUBLIC = "93.184.215.14"
KEY = ec.generate_private_key(ec.SECP256K1()).public_key()


def doc(did: str, key=KEY) -> dict:
    vm = {"id": f"{did}#atproto", "type": "Multikey", "controller": did, "publicKeyMultibase": encode_multikey(key)}
    return {"id": did, "verificationMethod": [vm]}


class Net:
    """A fake network: DNS answers from a table, HTTP from a handler; both count their calls."""

    def __init__(self, dns: dict[str, list[str]] | None = None, handler=None) -> None:
        self.table = dns or {}
        self.lookups: list[str] = []
        self.requests: list[str] = []
        self.handler = handler or self.serve_docs

    def dns(self, host: str, port: int) -> list[str]:
        self.lookups.append(host)
        if host not in self.table:
            raise OSError("no such host")
        return self.table[host]

    def serve_docs(self, req: httpx.Request) -> httpx.Response:
        if req.url.host == "plc.directory":
            return httpx.Response(200, json=doc(req.url.path.lstrip("/")))
        return httpx.Response(200, json=doc(f"did:web:{req.url.host}"))

    def transport(self, req: httpx.Request) -> httpx.Response:
        self.requests.append(str(req.url))
        return self.handler(req)

    def resolver(self, clock=time.monotonic, **overrides) -> NetworkKeyResolver:
        client = httpx.Client(transport=httpx.MockTransport(self.transport))
        return NetworkKeyResolver(replace(SETTINGS, **overrides), client=client, dns=self.dns, clock=clock)


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@pytest.mark.parametrize(
    "addr,public",
    [
        ("8.8.8.8", True),
        (PUBLIC, True),
        ("2606:4700:4700::1111", True),
        ("127.0.0.1", False),
        ("10.1.2.3", False),
        ("172.16.0.1", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),  # cloud metadata
        ("100.64.0.1", False),  # carrier-grade NAT
        ("0.0.0.0", False),
        ("224.0.0.1", False),
        ("240.0.0.1", False),
        ("255.255.255.255", False),
        ("::1", False),
        ("::", False),
        ("fe80::1", False),
        ("fc00::1", False),
        ("ff02::1", False),
        ("::ffff:127.0.0.1", False),
        ("::ffff:10.0.0.1", False),
        ("not-an-ip", False),
    ],
)
def test_public_address_classification(addr, public):
    assert is_public_address(addr) is public


@pytest.mark.parametrize(
    "did",
    [
        "did:web:127.0.0.1%3A18150",  # the reported SSRF
        "did:web:127.0.0.1",
        "did:web:10.0.0.8",
        "did:web:169.254.169.254",
        "did:web:0.0.0.0%3A80",
        "did:web:224.0.0.1",
        "did:web:internal.example",  # resolves to a private address
        "did:web:mixed.example",  # one public, one loopback address: refused
        "did:web:nowhere.example",  # does not resolve
    ],
)
def test_did_web_refuses_non_public_targets_without_connecting(did):
    net = Net({"internal.example": ["192.168.0.10"], "mixed.example": [PUBLIC, "127.0.0.1"]})
    r = net.resolver()
    with pytest.raises(ResolveError):
        r.resolve(did)
    assert net.requests == []


@pytest.mark.parametrize(
    "did",
    [
        "did:web:user@127.0.0.1",
        "did:web:evil.example%2F..",
        "did:web:evil.example:path:to",
        "did:web:[::1]",
        "did:web:evil.example%3A99999",
        "did:web:evil.example%3A0",
        "did:plc:../../admin",
        "did:plc:ABC?x=1",
        "did:example:123",
    ],
)
def test_malformed_dids_are_refused_before_any_lookup(did):
    net = Net({"evil.example": [PUBLIC]})
    with pytest.raises(ResolveError):
        net.resolver().resolve(did)
    assert net.requests == [] and net.lookups == []


def test_public_did_web_and_plc_resolve_and_are_cached():
    net = Net({"feeds.example.com": [PUBLIC]})
    r = net.resolver()
    assert r.resolve("did:web:feeds.example.com") == KEY
    assert r.resolve("did:web:feeds.example.com") == KEY
    assert r.resolve("did:plc:abcdefghijklmnopqrstuvwx") == KEY
    assert net.requests == [
        "https://feeds.example.com/.well-known/did.json",
        "https://plc.directory/did:plc:abcdefghijklmnopqrstuvwx",
    ]


def test_failures_are_cached_for_the_failure_ttl():
    clock = Clock()
    net = Net({"down.example": [PUBLIC], "internal.example": ["127.0.0.1"]}, handler=lambda req: httpx.Response(503))
    r = net.resolver(clock)
    for _ in range(5):
        with pytest.raises(ResolveError, match="503"):
            r.resolve("did:web:down.example")
    assert len(net.requests) == 1
    # a refused target is cached too: the DNS is asked once
    for _ in range(3):
        with pytest.raises(ResolveError, match="non-public"):
            r.resolve("did:web:internal.example")
    assert net.lookups.count("internal.example") == 1
    clock.t += SETTINGS.key_failure_ttl_s + 1
    with pytest.raises(ResolveError):
        r.resolve("did:web:down.example")
    assert len(net.requests) == 2
    # keyless documents (404) are cached for the failure TTL, not the full key TTL
    net.handler = lambda req: httpx.Response(404)
    assert r.resolve("did:plc:abcdefghijklmnopqrstuvwx") is None
    net.handler = net.serve_docs
    assert r.resolve("did:plc:abcdefghijklmnopqrstuvwx") is None
    clock.t += SETTINGS.key_failure_ttl_s + 1
    assert r.resolve("did:plc:abcdefghijklmnopqrstuvwx") == KEY


def test_key_cache_is_a_bounded_lru():
    net = Net()
    r = net.resolver(key_cache_size=2)
    a, b, c = (f"did:plc:{x * 24}" for x in "abc")
    r.resolve(a)
    r.resolve(b)
    r.resolve(a)  # a is now the most recently used
    r.resolve(c)  # evicts b
    assert len(r.cache) == 2 and set(r.cache) == {a, c}
    r.resolve(b)
    assert [u.rsplit("/", 1)[1] for u in net.requests] == [a, b, c, b]


def test_fresh_refetches_at_most_every_refresh_interval():
    clock = Clock()
    net = Net()
    r = net.resolver(clock)
    did = "did:plc:" + "a" * 24
    r.resolve(did)
    r.resolve(did, fresh=True)  # fetched just now: the cached key is current enough
    assert len(net.requests) == 1
    clock.t += SETTINGS.key_refresh_min_s + 1
    r.resolve(did, fresh=True)
    r.resolve(did)
    assert len(net.requests) == 2


def test_document_id_must_equal_the_did_and_size_is_capped():
    other = doc("did:plc:" + "b" * 24)
    net = Net(handler=lambda req: httpx.Response(200, json=other))
    with pytest.raises(ResolveError, match="id"):
        net.resolver().resolve("did:plc:" + "a" * 24)
    big = {**doc("did:plc:" + "a" * 24), "padding": "x" * 200_000}
    net = Net(handler=lambda req: httpx.Response(200, json=big))
    with pytest.raises(ResolveError, match="larger"):
        net.resolver().resolve("did:plc:" + "a" * 24)
    net = Net(handler=lambda req: httpx.Response(302, headers={"Location": "http://127.0.0.1:18150/"}))
    with pytest.raises(ResolveError, match="302"):
        net.resolver().resolve("did:plc:" + "a" * 24)
    assert len(net.requests) == 1  # the redirect was not followed


def test_concurrency_is_bounded_and_excess_requests_fail_fast():
    entered, release = threading.Event(), threading.Event()

    def slow(req: httpx.Request) -> httpx.Response:
        entered.set()
        release.wait(10)
        return httpx.Response(200, json=doc(req.url.path.lstrip("/")))

    net = Net(handler=slow)
    r = net.resolver(resolver_concurrency=1, resolver_wait_s=0.05)
    t = threading.Thread(target=r.resolve, args=("did:plc:" + "a" * 24,))
    t.start()
    try:
        assert entered.wait(5)
        t0 = time.monotonic()
        with pytest.raises(ResolveError, match="too many"):
            r.resolve("did:plc:" + "b" * 24)
        assert time.monotonic() - t0 < 1.0
    finally:
        release.set()
        t.join(5)
    assert r.resolve("did:plc:" + "b" * 24) == KEY  # a busy refusal is not cached


def test_pinned_connections_refuse_rebinding_to_private_addresses():
    # the real transport (no MockTransport): the check happens again when connecting, so a host that answered
    # with a public address for the pre-check and a private one for the connection is still refused
    answers = iter([[PUBLIC], ["127.0.0.1"]])
    r = NetworkKeyResolver(SETTINGS, dns=lambda host, port: next(answers))
    with pytest.raises(ResolveError, match="non-public"):
        r.resolve("did:web:rebind.example")
    with pytest.raises(ResolveError, match="non-public"):
        PinnedBackend(lambda host, port: ["10.0.0.1"]).connect_tcp("anything.example", 443, timeout=1)
