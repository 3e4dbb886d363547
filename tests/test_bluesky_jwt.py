"""Service-JWT verification (ES256K and ES256) and the DID -> key resolvers, with locally generated keys."""

from __future__ import annotations

import json
import time
from dataclasses import replace

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from glassfeed.bluesky.errors import XrpcError
from glassfeed.bluesky.jwt import ORDER, JwtRules, b64url, b64url_decode, sign_jwt, verify_jwt
from glassfeed.bluesky.keys import (
    NetworkKeyResolver,
    StaticKeyResolver,
    b58decode,
    b58encode,
    decode_multikey,
    did_key,
    encode_multikey,
)

AUD = "did:web:feeds.example.com"
LXM = "app.bsky.feed.getFeedSkeleton"
ALICE = "did:plc:alice7xq2kzv4mf3hj5c"


@pytest.fixture(scope="module", params=["ES256K", "ES256"])
def key(request):
    return ec.generate_private_key(ec.SECP256K1() if request.param == "ES256K" else ec.SECP256R1())


@pytest.fixture(scope="module")
def resolver(key):
    return StaticKeyResolver({ALICE: key.public_key()})


RULES = JwtRules.from_settings()  # the packaged [bluesky] rules: did:plc/did:web issuers, 1 h lifetime, 60 s skew


def code(token, resolver, **kw) -> str:
    with pytest.raises(XrpcError) as e:
        verify_jwt(token, audience=kw.pop("audience", AUD), lxm=kw.pop("lxm", LXM), resolver=resolver, **kw)
    assert e.value.status == 401
    return e.value.error


def message(token, resolver, **kw) -> str:
    with pytest.raises(XrpcError) as e:
        verify_jwt(token, audience=AUD, lxm=LXM, resolver=resolver, **kw)
    return f"{e.value.error}: {e.value.message}"


def jwt(key, iss=ALICE, aud=AUD, lxm=LXM, **kw) -> str:
    return sign_jwt(key, iss=iss, aud=aud, lxm=lxm, **kw)


def test_valid_token_returns_requester_did(key, resolver):
    tok = jwt(key)
    assert json.loads(b64url_decode(tok.split(".")[0]))["alg"] == (
        "ES256K" if key.curve.name == "secp256k1" else "ES256"
    )
    claims = verify_jwt(tok, audience=AUD, lxm=LXM, resolver=resolver)
    assert claims.iss == ALICE and claims.lxm == LXM
    # a service fragment on iss is stripped
    claims = verify_jwt(jwt(key, iss=ALICE + "#atproto"), audience=AUD, lxm=LXM, resolver=resolver)
    assert claims.iss == ALICE


def test_audience_may_name_the_feed_service_fragment(key, resolver):
    assert verify_jwt(jwt(key, aud=AUD + "#bsky_fg"), audience=AUD, lxm=LXM, resolver=resolver).aud == AUD + "#bsky_fg"
    assert code(jwt(key, aud=AUD + "#atproto_labeler"), resolver) == "BadJwtAudience"
    assert code(jwt(key, aud=AUD + "#bsky_fg#bsky_fg"), resolver) == "BadJwtAudience"


def test_lxm_is_required_and_must_match(key, resolver):
    assert "missing" in message(sign_jwt(key, iss=ALICE, aud=AUD), resolver)
    assert code(sign_jwt(key, iss=ALICE, aud=AUD), resolver) == "BadJwtLexiconMethod"
    assert code(jwt(key, lxm="app.bsky.feed.sendInteractions"), resolver) == "BadJwtLexiconMethod"
    # lxm=None at the call site: the token may name any method
    assert verify_jwt(sign_jwt(key, iss=ALICE, aud=AUD), audience=AUD, lxm=None, resolver=resolver).iss == ALICE


def test_rejections_use_reference_error_names(key, resolver):
    other = ec.generate_private_key(key.curve)
    now = time.time()
    assert code(jwt(key, aud="did:web:someone.else"), resolver) == "BadJwtAudience"
    assert code(jwt(key, iat=now - 120, exp=now - 60), resolver) == "JwtExpired"
    assert code(jwt(other), resolver) == "BadJwtSignature"
    assert code(jwt(key, iss="did:plc:unknownunknownunknown"), resolver) == "BadJwtSignature"
    assert code("not-a-jwt", resolver) == "BadJwt"
    assert code("a.b.c", resolver) == "BadJwt"
    alg = "ES256K" if key.curve.name == "secp256k1" else "ES256"
    assert code(jwt(key, header={"alg": alg, "typ": "at+jwt"}), resolver) == "BadJwtType"
    wrong_alg = {"alg": "ES256" if alg == "ES256K" else "ES256K", "typ": "JWT"}
    assert code(jwt(key, header=wrong_alg), resolver) == "BadJwtSignature"


def test_lifetime_and_clock_skew_are_bounded(key, resolver):
    now = time.time()
    assert RULES.max_lifetime_s == 3600 and RULES.clock_skew_s == 60
    assert verify_jwt(jwt(key, iat=now, exp=now + 3500), audience=AUD, lxm=LXM, resolver=resolver).iss == ALICE
    assert "exp" in message(jwt(key, iat=now, exp=now + 7200), resolver)
    assert code(jwt(key, iat=now, exp=now + 7200), resolver) == "BadJwt"
    assert "iat" in message(jwt(key, iat=now + 86400, exp=now + 600), resolver)
    assert verify_jwt(jwt(key, iat=now + 30, exp=now + 90), audience=AUD, lxm=LXM, resolver=resolver).iss == ALICE
    # exp = 1e300, NaN or Infinity (json accepts them) must not slip through the comparisons
    h, p, s = jwt(key).split(".")
    for bad in ("1e300", "NaN", "Infinity"):
        payload = json.loads(b64url_decode(p))
        raw = json.dumps({**payload, "exp": 0}).replace('"exp": 0', f'"exp": {bad}')
        assert code(f"{h}.{b64url(raw.encode())}.{s}", resolver) == "BadJwt", bad
    longer = replace(RULES, max_lifetime_s=10 * 86400)
    assert verify_jwt(jwt(key, exp=now + 86400), audience=AUD, lxm=LXM, resolver=resolver, rules=longer).iss == ALICE


def test_issuer_did_method_must_be_allowed(key):
    pub = key.public_key()
    tok = jwt(key, iss=did_key(pub))
    r = StaticKeyResolver()  # resolves did:key by itself: only the rules stand in the way
    assert code(tok, r) == "BadJwt" and "did:plc, did:web" in message(tok, r)
    assert code(jwt(key, iss="did:example:123"), r) == "BadJwt"
    assert code(jwt(key, iss="not-a-did"), r) == "BadJwt"
    with_key = replace(RULES, allowed_did_methods=frozenset({"plc", "web", "key"}))
    assert verify_jwt(tok, audience=AUD, lxm=LXM, resolver=r, rules=with_key).iss == did_key(pub)
    only_web = replace(RULES, allowed_did_methods=frozenset({"web"}))
    assert code(jwt(key), StaticKeyResolver({ALICE: pub}), rules=only_web) == "BadJwt"


class RotatingResolver:
    """Serves a stale key from its cache until asked for a fresh one."""

    def __init__(self, stale, current) -> None:
        self.stale, self.current, self.calls = stale, current, []

    def resolve(self, did, fresh=False):
        self.calls.append(fresh)
        return self.current if fresh else self.stale


def test_bad_signature_retries_once_with_a_fresh_key(key):
    old = ec.generate_private_key(key.curve).public_key()
    r = RotatingResolver(old, key.public_key())
    assert verify_jwt(jwt(key), audience=AUD, lxm=LXM, resolver=r).iss == ALICE
    assert r.calls == [False, True]
    # a token signed by neither: exactly one retry, then BadJwtSignature
    r = RotatingResolver(old, key.public_key())
    assert code(jwt(ec.generate_private_key(key.curve)), r) == "BadJwtSignature" and r.calls == [False, True]
    # a good signature never refetches
    r = RotatingResolver(key.public_key(), old)
    verify_jwt(jwt(key), audience=AUD, lxm=LXM, resolver=r)
    assert r.calls == [False]


def test_tampered_payload_fails_signature(key, resolver):
    h, p, s = jwt(key).split(".")
    claims = json.loads(b64url_decode(p))
    claims["iss"] = ALICE  # same claims, re-encoded with extra whitespace: different bytes
    forged = b64url(json.dumps(claims, indent=1).encode())
    assert code(f"{h}.{forged}.{s}", resolver) == "BadJwtSignature"
    missing_exp = b64url(json.dumps({"iss": ALICE, "aud": AUD}).encode())
    assert code(f"{h}.{missing_exp}.{s}", resolver) == "BadJwt"


def test_high_s_accepted_like_reference_unless_strict(key, resolver):
    tok = jwt(key, high_s=True)
    s = int.from_bytes(b64url_decode(tok.split(".")[2])[32:], "big")
    assert s > ORDER[key.curve.name] // 2  # really the malleable twin
    assert verify_jwt(tok, audience=AUD, lxm=LXM, resolver=resolver).iss == ALICE
    strict = replace(RULES, strict_low_s=True)
    assert code(tok, resolver, rules=strict) == "BadJwtSignature"
    assert verify_jwt(jwt(key), audience=AUD, lxm=LXM, resolver=resolver, rules=strict).iss == ALICE


def test_multikey_round_trip_and_known_vector(key):
    pub = key.public_key()
    assert decode_multikey(encode_multikey(pub)) == pub
    assert decode_multikey(did_key(pub)) == pub
    prefix = "zQ3s" if key.curve.name == "secp256k1" else "zDn"  # did:key prefixes from the atproto spec
    assert encode_multikey(pub).startswith(prefix)
    assert b58decode(b58encode(b"\0\0abc")) == b"\0\0abc"
    # a did:key issuer needs no table (when a deployment accepts did:key issuers at all)
    tok = jwt(key, iss=did_key(pub))
    rules = replace(RULES, allowed_did_methods=frozenset({"key"}))
    assert verify_jwt(tok, audience=AUD, lxm=LXM, resolver=StaticKeyResolver(), rules=rules).iss == did_key(pub)


def test_network_resolver_reads_atproto_key_from_did_documents(key):
    pub = key.public_key()
    doc = {
        "id": ALICE,
        "verificationMethod": [
            {
                "id": f"{ALICE}#atproto",
                "type": "Multikey",
                "controller": ALICE,
                "publicKeyMultibase": encode_multikey(pub),
            }
        ],
    }
    seen = []

    def handler(req: httpx.Request) -> httpx.Response:
        seen.append(str(req.url))
        if req.url.host == "plc.directory" and req.url.path == f"/{ALICE}":
            return httpx.Response(200, json=doc)
        if req.url.host == "feeds.example.com" and req.url.path == "/.well-known/did.json":
            return httpx.Response(
                200, json={**doc, "id": AUD, "verificationMethod": [{**doc["verificationMethod"][0], "id": "#atproto"}]}
            )
        return httpx.Response(404)

    client = httpx.Client(transport=httpx.MockTransport(handler))
    r = NetworkKeyResolver(client=client, dns=lambda host, port: ["93.184.215.14"])  # no network in tests
    assert r.resolve(ALICE) == pub and r.resolve(ALICE) == pub
    assert seen.count(f"https://plc.directory/{ALICE}") == 1  # cached
    assert r.resolve(AUD) == pub
    assert r.resolve("did:plc:nobodynobodynobody") is None
    tok = sign_jwt(key, iss=ALICE, aud=AUD, lxm=LXM)
    assert verify_jwt(tok, audience=AUD, lxm=LXM, resolver=r).iss == ALICE
