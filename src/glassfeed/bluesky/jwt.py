"""Service-auth JWTs (atproto inter-service auth): verify a requester's ``Authorization: Bearer`` token.

Mirrors ``verifyJwt`` in @atproto/xrpc-server: 3 parts, header ``alg`` ES256K (secp256k1) or ES256 (P-256);
payload ``iss``/``aud`` strings and numeric ``exp``; refuses access/refresh/DPoP token types; checks expiry,
audience = our service DID (bare, or with the ``#bsky_fg`` service fragment), and ``lxm`` (required) = the
called method; the signature is raw ``r||s`` (64 bytes) over ``header.payload``, and a signature that fails is
checked once more against a freshly resolved key (the issuer may have rotated it). Error names match the
reference: BadJwt, BadJwtType, JwtExpired, BadJwtAudience, BadJwtLexiconMethod, BadJwtSignature (all 401).
Like the reference, high-S signatures are accepted unless ``strict_low_s`` (the atproto crypto spec requires
low-S from signers; JWT checks are lenient).

Beyond the reference, a deployment's :class:`JwtRules` bound what it accepts: the issuer's DID method (did:plc
and did:web by default, so self-issued did:key tokens are refused), the token's lifetime (``exp`` at most
``max_lifetime_s`` ahead) and clock skew (``iat`` at most ``clock_skew_s`` ahead).
"""

from __future__ import annotations

import base64
import json
import math
import secrets
import time
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

from glassfeed.bluesky.errors import XrpcError, auth_required
from glassfeed.bluesky.keys import KeyResolver, PublicKey, ResolveError
from glassfeed.bluesky.settings import BlueskySettings, load_bluesky_settings

#: group orders, for the low-S rule (s <= n/2)
ORDER = {
    "secp256k1": 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141,
    "secp256r1": 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551,
}
ALG_CURVE = {"ES256K": "secp256k1", "ES256": "secp256r1"}
BAD_TYPES = frozenset({"at+jwt", "refresh+jwt", "dpop+jwt"})
#: the service fragment the AppView puts in ``aud`` for feed generators (``did:web:host#bsky_fg``)
FEED_SERVICE_FRAGMENT = "#bsky_fg"


@dataclass(frozen=True, slots=True)
class JwtRules:
    """What a deployment accepts beyond a valid signature (from the ``[bluesky]`` settings)."""

    allowed_did_methods: frozenset[str]
    max_lifetime_s: float
    clock_skew_s: float
    strict_low_s: bool

    @classmethod
    def from_settings(cls, settings: BlueskySettings | None = None) -> JwtRules:
        s = settings or load_bluesky_settings()
        return cls(s.allowed_did_methods, s.max_token_lifetime_s, s.clock_skew_s, s.strict_low_s)


@dataclass(frozen=True, slots=True)
class Claims:
    iss: str  # the requester's DID (service fragment such as "#atproto_labeler" stripped)
    aud: str
    exp: float
    lxm: str | None
    raw: dict[str, Any]


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _bad(message: str = "poorly formatted jwt") -> XrpcError:
    return auth_required(message, "BadJwt")


def _json_part(part: str) -> dict[str, Any]:
    try:
        obj = json.loads(b64url_decode(part))
    except (ValueError, UnicodeDecodeError):
        raise _bad() from None
    if not isinstance(obj, dict):
        raise _bad()
    return obj


def _number(payload: dict[str, Any], name: str, required: bool) -> float | None:
    v = payload.get(name)
    if v is None and not required:
        return None
    if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v):
        raise _bad(f"jwt {name} must be a finite number")
    return float(v)


def verify_jwt(
    token: str,
    *,
    audience: str,
    lxm: str | None,
    resolver: KeyResolver,
    rules: JwtRules | None = None,
    now: float | None = None,
) -> Claims:
    """Verify a service JWT; returns its claims or raises a 401 :class:`XrpcError` named as the reference does.

    ``lxm`` is the called method (None: the token may name any); ``rules`` default: the packaged settings."""
    rules = rules or JwtRules.from_settings()
    parts = token.split(".")
    if len(parts) != 3:
        raise _bad()
    header = _json_part(parts[0])
    if not isinstance(header.get("alg"), str):
        raise _bad()
    if header.get("typ") in BAD_TYPES:
        raise auth_required(f"Invalid jwt type {header['typ']!r}", "BadJwtType")
    payload = _json_part(parts[1])
    if (
        not isinstance(payload.get("iss"), str)
        or not isinstance(payload.get("aud"), str)
        or ("lxm" in payload and not isinstance(payload["lxm"], str))
    ):
        raise _bad()
    exp = _number(payload, "exp", required=True)
    iat = _number(payload, "iat", required=False)
    assert exp is not None
    t = time.time() if now is None else now
    if t > exp:
        raise auth_required("jwt expired", "JwtExpired")
    if exp - t > rules.max_lifetime_s:
        raise _bad(f"jwt exp is more than {rules.max_lifetime_s:g} s in the future")
    if iat is not None and iat - t > rules.clock_skew_s:
        raise _bad(f"jwt iat is more than {rules.clock_skew_s:g} s in the future")
    if payload["aud"] not in (audience, audience + FEED_SERVICE_FRAGMENT):
        raise auth_required("jwt audience does not match service did", "BadJwtAudience")
    if lxm is not None and "lxm" not in payload:
        raise auth_required(f'missing jwt lexicon method ("lxm"). must match: {lxm}', "BadJwtLexiconMethod")
    if lxm is not None and payload["lxm"] != lxm:
        raise auth_required(f'bad jwt lexicon method ("lxm"). must match: {lxm}', "BadJwtLexiconMethod")
    iss = payload["iss"].split("#", 1)[0]
    method = iss.split(":", 2)[1] if iss.startswith("did:") and iss.count(":") >= 2 else ""
    if method not in rules.allowed_did_methods:
        allowed = ", ".join(f"did:{m}" for m in sorted(rules.allowed_did_methods))
        raise _bad(f"jwt iss must be a DID of an accepted method ({allowed})")
    signing_input = f"{parts[0]}.{parts[1]}".encode()
    key = _resolve(resolver, iss, fresh=False)
    ok = key is not None and _signature_ok(key, header["alg"], signing_input, parts[2], rules.strict_low_s)
    if not ok and key is not None:  # the issuer may have rotated its key: retry once with a fresh one
        fresh = _resolve(resolver, iss, fresh=True)
        if fresh is not None and fresh != key:
            ok = _signature_ok(fresh, header["alg"], signing_input, parts[2], rules.strict_low_s)
    if not ok:
        raise auth_required("jwt signature does not match jwt issuer", "BadJwtSignature")
    return Claims(iss=iss, aud=payload["aud"], exp=exp, lxm=payload.get("lxm"), raw=payload)


def _resolve(resolver: KeyResolver, iss: str, fresh: bool) -> PublicKey | None:
    try:
        return resolver.resolve(iss, fresh=fresh)
    except Exception as e:  # network or document trouble (pluggable resolvers): the token cannot be checked
        why = str(e) if isinstance(e, ResolveError) else type(e).__name__
        raise auth_required(f"could not resolve the signing key of {iss}: {why}", "BadJwtSignature") from None


def _signature_ok(key: ec.EllipticCurvePublicKey, alg: str, msg: bytes, sig_b64: str, strict_low_s: bool) -> bool:
    curve = ALG_CURVE.get(alg)
    if curve is None or key.curve.name != curve:
        return False
    try:
        sig = b64url_decode(sig_b64)
    except ValueError:
        return False
    if len(sig) != 64:
        return False
    r, s = int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big")
    if not (0 < r < ORDER[curve] and 0 < s < ORDER[curve]):
        return False
    if strict_low_s and s > ORDER[curve] // 2:
        return False
    try:
        key.verify(encode_dss_signature(r, s), msg, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return False
    return True


def sign_jwt(
    private_key: ec.EllipticCurvePrivateKey,
    *,
    iss: str,
    aud: str,
    lxm: str | None = None,
    exp: float | None = None,
    iat: float | None = None,
    header: dict[str, Any] | None = None,
    high_s: bool = False,
) -> str:
    """Create a service JWT the way a PDS does (raw r||s, low-S); for tests and local tooling.

    ``high_s=True`` emits the equivalent malleable high-S signature (to test the low-S rule)."""
    alg = "ES256K" if isinstance(private_key.curve, ec.SECP256K1) else "ES256"
    now = int(time.time() if iat is None else iat)
    payload = {
        "iat": now,
        "iss": iss,
        "aud": aud,
        "exp": int(now + 60 if exp is None else exp),
        "jti": secrets.token_hex(16),
    }
    if lxm is not None:
        payload["lxm"] = lxm
    head = header if header is not None else {"typ": "JWT", "alg": alg}
    signing_input = f"{b64url(json.dumps(head).encode())}.{b64url(json.dumps(payload).encode())}"
    r, s = decode_dss_signature(private_key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
    n = ORDER[private_key.curve.name]
    s = min(s, n - s)
    if high_s:
        s = n - s
    return f"{signing_input}.{b64url(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"
