"""Service-auth JWTs (atproto inter-service auth): verify a requester's ``Authorization: Bearer`` token.

Mirrors ``verifyJwt`` in @atproto/xrpc-server: 3 parts, header ``alg`` ES256K (secp256k1) or ES256 (P-256);
payload ``iss``/``aud`` strings and numeric ``exp``; refuses access/refresh/DPoP token types; checks expiry,
audience = our service DID, and ``lxm`` (when present) = the called method; the signature is raw ``r||s``
(64 bytes) over ``header.payload``. Error names match the reference: BadJwt, BadJwtType, JwtExpired,
BadJwtAudience, BadJwtLexiconMethod, BadJwtSignature (all 401). Like the reference, high-S signatures are
accepted unless ``strict_low_s`` (the atproto crypto spec requires low-S from signers; JWT checks are lenient).
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

from glassfeed.bluesky.errors import XrpcError, auth_required
from glassfeed.bluesky.keys import KeyResolver

#: group orders, for the low-S rule (s <= n/2)
ORDER = {
    "secp256k1": 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141,
    "secp256r1": 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551,
}
ALG_CURVE = {"ES256K": "secp256k1", "ES256": "secp256r1"}
BAD_TYPES = frozenset({"at+jwt", "refresh+jwt", "dpop+jwt"})


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


def verify_jwt(
    token: str,
    *,
    audience: str,
    lxm: str | None,
    resolver: KeyResolver,
    now: float | None = None,
    strict_low_s: bool = False,
) -> Claims:
    """Verify a service JWT; returns its claims or raises a 401 :class:`XrpcError` named as the reference does."""
    parts = token.split(".")
    if len(parts) != 3:
        raise _bad()
    header = _json_part(parts[0])
    if not isinstance(header.get("alg"), str):
        raise _bad()
    if header.get("typ") in BAD_TYPES:
        raise auth_required(f"Invalid jwt type {header['typ']!r}", "BadJwtType")
    payload = _json_part(parts[1])
    exp = payload.get("exp")
    if (
        not isinstance(payload.get("iss"), str)
        or not isinstance(payload.get("aud"), str)
        or not isinstance(exp, (int, float))
        or isinstance(exp, bool)
        or ("lxm" in payload and not isinstance(payload["lxm"], str))
    ):
        raise _bad()
    if (time.time() if now is None else now) > exp:
        raise auth_required("jwt expired", "JwtExpired")
    if payload["aud"] != audience:
        raise auth_required("jwt audience does not match service did", "BadJwtAudience")
    if lxm is not None and "lxm" in payload and payload["lxm"] != lxm:
        raise auth_required(f'bad jwt lexicon method ("lxm"). must match: {lxm}', "BadJwtLexiconMethod")
    iss = payload["iss"].split("#", 1)[0]
    try:
        key = resolver.resolve(iss)
    except Exception as e:  # network or document trouble: the token cannot be checked
        raise auth_required(
            f"could not resolve the signing key of {iss}: {type(e).__name__}", "BadJwtSignature"
        ) from None
    if key is None or not _signature_ok(key, header["alg"], f"{parts[0]}.{parts[1]}".encode(), parts[2], strict_low_s):
        raise auth_required("jwt signature does not match jwt issuer", "BadJwtSignature")
    return Claims(iss=iss, aud=payload["aud"], exp=float(exp), lxm=payload.get("lxm"), raw=payload)


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
