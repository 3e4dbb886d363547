"""Service-JWT verification (ES256K and ES256) and the DID -> key resolvers, with locally generated keys."""

from __future__ import annotations

import json
import time

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from glassfeed.bluesky.errors import XrpcError
from glassfeed.bluesky.jwt import ORDER, b64url, b64url_decode, sign_jwt, verify_jwt
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


def code(token, resolver, **kw) -> str:
    with pytest.raises(XrpcError) as e:
        verify_jwt(token, audience=kw.pop("audience", AUD), lxm=kw.pop("lxm", LXM), resolver=resolver, **kw)
    assert e.value.status == 401
    return e.value.error


def test_valid_token_returns_requester_did(key, resolver):
    tok = sign_jwt(key, iss=ALICE, aud=AUD, lxm=LXM)
    assert json.loads(b64url_decode(tok.split(".")[0]))["alg"] == (
        "ES256K" if key.curve.name == "secp256k1" else "ES256"
    )
    claims = verify_jwt(tok, audience=AUD, lxm=LXM, resolver=resolver)
    assert claims.iss == ALICE and claims.lxm == LXM
    # lxm is optional in the token; a service fragment on iss is stripped
    claims = verify_jwt(sign_jwt(key, iss=ALICE + "#atproto", aud=AUD), audience=AUD, lxm=LXM, resolver=resolver)
    assert claims.iss == ALICE and claims.lxm is None


def test_rejections_use_reference_error_names(key, resolver):
    other = ec.generate_private_key(key.curve)
    now = time.time()
    assert code(sign_jwt(key, iss=ALICE, aud="did:web:someone.else"), resolver) == "BadJwtAudience"
    assert code(sign_jwt(key, iss=ALICE, aud=AUD, iat=now - 120, exp=now - 60), resolver) == "JwtExpired"
    assert (
        code(sign_jwt(key, iss=ALICE, aud=AUD, lxm="app.bsky.feed.sendInteractions"), resolver) == "BadJwtLexiconMethod"
    )
    assert code(sign_jwt(other, iss=ALICE, aud=AUD), resolver) == "BadJwtSignature"
    assert code(sign_jwt(key, iss="did:plc:unknownunknownunknown", aud=AUD), resolver) == "BadJwtSignature"
    assert code("not-a-jwt", resolver) == "BadJwt"
    assert code("a.b.c", resolver) == "BadJwt"
    alg = "ES256K" if key.curve.name == "secp256k1" else "ES256"
    assert code(sign_jwt(key, iss=ALICE, aud=AUD, header={"alg": alg, "typ": "at+jwt"}), resolver) == "BadJwtType"
    wrong_alg = {"alg": "ES256" if alg == "ES256K" else "ES256K", "typ": "JWT"}
    assert code(sign_jwt(key, iss=ALICE, aud=AUD, header=wrong_alg), resolver) == "BadJwtSignature"


def test_tampered_payload_fails_signature(key, resolver):
    h, p, s = sign_jwt(key, iss=ALICE, aud=AUD).split(".")
    claims = json.loads(b64url_decode(p))
    claims["iss"] = ALICE  # same claims, re-encoded with extra whitespace: different bytes
    forged = b64url(json.dumps(claims, indent=1).encode())
    assert code(f"{h}.{forged}.{s}", resolver) == "BadJwtSignature"
    missing_exp = b64url(json.dumps({"iss": ALICE, "aud": AUD}).encode())
    assert code(f"{h}.{missing_exp}.{s}", resolver) == "BadJwt"


def test_high_s_accepted_like_reference_unless_strict(key, resolver):
    tok = sign_jwt(key, iss=ALICE, aud=AUD, high_s=True)
    s = int.from_bytes(b64url_decode(tok.split(".")[2])[32:], "big")
    assert s > ORDER[key.curve.name] // 2  # really the malleable twin
    assert verify_jwt(tok, audience=AUD, lxm=LXM, resolver=resolver).iss == ALICE
    assert code(tok, resolver, strict_low_s=True) == "BadJwtSignature"
    assert (
        verify_jwt(sign_jwt(key, iss=ALICE, aud=AUD), audience=AUD, lxm=LXM, resolver=resolver, strict_low_s=True).iss
        == ALICE
    )


def test_multikey_round_trip_and_known_vector(key):
    pub = key.public_key()
    assert decode_multikey(encode_multikey(pub)) == pub
    assert decode_multikey(did_key(pub)) == pub
    prefix = "zQ3s" if key.curve.name == "secp256k1" else "zDn"  # did:key prefixes from the atproto spec
    assert encode_multikey(pub).startswith(prefix)
    assert b58decode(b58encode(b"\0\0abc")) == b"\0\0abc"
    # a did:key issuer needs no table
    tok = sign_jwt(key, iss=did_key(pub), aud=AUD)
    assert verify_jwt(tok, audience=AUD, lxm=LXM, resolver=StaticKeyResolver()).iss == did_key(pub)


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

    r = NetworkKeyResolver(client=httpx.Client(transport=httpx.MockTransport(handler)))
    assert r.resolve(ALICE) == pub and r.resolve(ALICE) == pub
    assert seen.count(f"https://plc.directory/{ALICE}") == 1  # cached
    assert r.resolve(AUD) == pub
    assert r.resolve("did:plc:nobodynobodynobody") is None
    tok = sign_jwt(key, iss=ALICE, aud=AUD, lxm=LXM)
    assert verify_jwt(tok, audience=AUD, lxm=LXM, resolver=r).iss == ALICE
