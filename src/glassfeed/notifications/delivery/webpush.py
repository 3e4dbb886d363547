"""Web Push from the application server's side: VAPID (RFC 8292) and message encryption (RFC 8291).

A browser subscribes with our VAPID public key (``VapidKeys.public_key_b64``, the ``applicationServerKey``) and
hands back a ``Subscription``: the push service endpoint, its P-256 public key (``p256dh``) and a 16-byte auth
secret. ``send`` encrypts the payload for that browser alone (``aes128gcm``, RFC 8188, one record), signs a
short-lived VAPID JWT for the push service's origin and POSTs the ciphertext to the endpoint. The push service
never sees the plaintext.

Written directly on ``cryptography`` (ECDH, HKDF, AES-GCM, ECDSA) rather than through ``pywebpush``: the protocol
is a few dozen lines, it is pinned by the RFC 8291 test vector in the tests, and it adds no dependency
(``pywebpush`` brings ``requests``, ``aiohttp``, ``py-vapid`` and ``http-ece`` for the same job).
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import struct
import time
from dataclasses import dataclass, field
from typing import Literal

import httpx
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from glassfeed.notifications.delivery.result import (
    DeliveryResult,
    check_endpoint_url,
    origin_of,
    retry_after_seconds,
)

__all__ = [
    "MAX_PLAINTEXT",
    "MAX_VAPID_LIFETIME_S",
    "PayloadTooLarge",
    "Subscription",
    "Urgency",
    "VapidKeys",
    "b64url_decode",
    "b64url_encode",
    "classify_push_status",
    "encrypt",
    "encrypt_with",
    "send",
]

# --- protocol constants (from the RFCs, not tunables) ---------------------------------------------------------
#: RFC 8292 §2: the JWT's ``exp`` must be no more than 24 hours after the request
MAX_VAPID_LIFETIME_S = 24 * 3600
#: RFC 8291 §4: push services accept bodies of at least 4096 octets; one record of rs=4096 holds, after the
#: 86-octet header (salt 16, rs 4, idlen 1, keyid 65), the 16-octet tag and the 1-octet delimiter, 3993 octets
RECORD_SIZE = 4096
_HEADER_LEN = 16 + 4 + 1 + 65
_TAG_LEN = 16
MAX_PLAINTEXT = RECORD_SIZE - _HEADER_LEN - _TAG_LEN - 1
_KEY_INFO = b"WebPush: info\x00"
_CEK_INFO = b"Content-Encoding: aes128gcm\x00"
_NONCE_INFO = b"Content-Encoding: nonce\x00"
_LAST_RECORD = b"\x02"  # RFC 8188 §2: the padding delimiter of the last record

Urgency = Literal["very-low", "low", "normal", "high"]  # RFC 8030 §5.3
_URGENCIES = frozenset({"very-low", "low", "normal", "high"})
_B64URL = re.compile(r"^[A-Za-z0-9_-]*={0,2}$")
_TOPIC = re.compile(r"^[A-Za-z0-9_-]{1,32}$")  # RFC 8030 §5.4


class PayloadTooLarge(ValueError):
    """The plaintext does not fit one 4096-octet record (``MAX_PLAINTEXT`` octets, less any padding)."""


def b64url_encode(data: bytes) -> str:
    """URL-safe base64 without ``=`` padding (what browsers and RFC 8291/8292 use)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Decode URL-safe base64, padded or not; ``ValueError`` on any character outside that alphabet."""
    if not _B64URL.match(text):
        raise ValueError("not base64url")
    stripped = text.rstrip("=")
    try:
        return base64.urlsafe_b64decode(stripped + "=" * (-len(stripped) % 4))
    except (binascii.Error, ValueError) as exc:
        raise ValueError("not base64url") from exc


def _public_point(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)


# --- VAPID ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VapidKeys:
    """The application server's P-256 key pair (RFC 8292). Keep the PEM secret; publish ``public_key_b64``."""

    private_key: ec.EllipticCurvePrivateKey

    def __post_init__(self) -> None:
        if not isinstance(getattr(self.private_key, "curve", None), ec.SECP256R1):
            raise ValueError("VAPID keys must be on P-256 (secp256r1)")

    @classmethod
    def generate(cls) -> VapidKeys:
        return cls(ec.generate_private_key(ec.SECP256R1()))

    @classmethod
    def from_pem(cls, pem: bytes | str, password: bytes | None = None) -> VapidKeys:
        """Load a PEM private key (PKCS#8 or SEC1 ``EC PRIVATE KEY``, as ``openssl ecparam -genkey`` writes)."""
        data = pem.encode("ascii") if isinstance(pem, str) else pem
        key = serialization.load_pem_private_key(data, password=password)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError("VAPID key must be an EC private key")
        return cls(key)

    def to_pem(self) -> bytes:
        """PKCS#8 PEM, unencrypted: store it with the deployment's other secrets."""
        return self.private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )

    @property
    def public_key_bytes(self) -> bytes:
        """The 65-octet uncompressed point."""
        return _public_point(self.private_key.public_key())

    @property
    def public_key_b64(self) -> str:
        """The uncompressed point in base64url: the ``applicationServerKey`` and the ``k=`` of the header."""
        return b64url_encode(self.public_key_bytes)

    def jwt(self, audience: str, subject: str, *, expires_in_s: int, now: float | None = None) -> str:
        """An ES256 JWT with ``aud`` (the push service origin), ``exp`` and ``sub`` (a mailto: or https: contact)."""
        if not 0 < expires_in_s <= MAX_VAPID_LIFETIME_S:
            raise ValueError(f"VAPID expires_in_s must be in (0, {MAX_VAPID_LIFETIME_S}], got {expires_in_s}")
        if not subject.startswith(("mailto:", "https:")):
            raise ValueError("VAPID subject must be a mailto: or https: URI")
        issued = int(time.time() if now is None else now)
        header = {"typ": "JWT", "alg": "ES256"}
        claims = {"aud": audience, "exp": issued + int(expires_in_s), "sub": subject}
        signing_input = (
            b64url_encode(json.dumps(header, separators=(",", ":")).encode())
            + "."
            + b64url_encode(json.dumps(claims, separators=(",", ":")).encode())
        )
        der = self.private_key.sign(signing_input.encode("ascii"), ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)  # JWS (RFC 7518 §3.4) wants r || s, 32 octets each, not DER
        return signing_input + "." + b64url_encode(r.to_bytes(32, "big") + s.to_bytes(32, "big"))

    def authorization(self, endpoint: str, subject: str, *, expires_in_s: int, now: float | None = None) -> str:
        """The ``Authorization`` header value for a request to ``endpoint`` (RFC 8292 §3)."""
        token = self.jwt(origin_of(endpoint), subject, expires_in_s=expires_in_s, now=now)
        return f"vapid t={token}, k={self.public_key_b64}"


# --- subscriptions and encryption -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Subscription:
    """A browser's ``PushSubscription``: ``endpoint`` and the base64url ``keys.p256dh`` / ``keys.auth``.

    Validated on construction: an https endpoint (plain http only for a loopback host with
    ``allow_insecure_localhost=True``, which the tests use), ``p256dh`` a 65-octet uncompressed point on P-256,
    ``auth`` 16 octets.
    """

    endpoint: str
    p256dh: str
    auth: str
    allow_insecure_localhost: bool = field(default=False, kw_only=True)

    def __post_init__(self) -> None:
        check_endpoint_url(self.endpoint, allow_insecure_localhost=self.allow_insecure_localhost)
        try:
            point = b64url_decode(self.p256dh)
        except ValueError as exc:
            raise ValueError("p256dh is not base64url") from exc
        if len(point) != 65 or point[0] != 0x04:
            raise ValueError("p256dh must be a 65-octet uncompressed P-256 point")
        try:
            ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
        except ValueError as exc:
            raise ValueError("p256dh is not a point on P-256") from exc
        try:
            secret = b64url_decode(self.auth)
        except ValueError as exc:
            raise ValueError("auth is not base64url") from exc
        if len(secret) != 16:
            raise ValueError("auth must be 16 octets")

    @property
    def public_key_bytes(self) -> bytes:
        return b64url_decode(self.p256dh)

    @property
    def auth_secret(self) -> bytes:
        return b64url_decode(self.auth)


def encrypt_with(
    payload: bytes,
    ua_public: bytes,
    auth_secret: bytes,
    *,
    salt: bytes,
    sender_key: ec.EllipticCurvePrivateKey,
    pad: int = 0,
) -> bytes:
    """RFC 8291 encryption with the salt and the sender's ephemeral key given: deterministic (test vectors).

    Returns the whole ``aes128gcm`` body: header (salt, rs=4096, keyid = the sender's public point) and one
    record, ``payload || 0x02 || pad zero octets`` sealed with AES-128-GCM. Use ``encrypt`` in production: a
    fresh salt and key per message are what make this safe.
    """
    if len(salt) != 16:
        raise ValueError("salt must be 16 octets")
    if len(auth_secret) != 16:
        raise ValueError("auth secret must be 16 octets")
    if pad < 0:
        raise ValueError("pad must be >= 0")
    if len(payload) + pad > MAX_PLAINTEXT:
        raise PayloadTooLarge(f"{len(payload)} + {pad} padding octets > {MAX_PLAINTEXT}")
    ua_key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), ua_public)
    as_public = _public_point(sender_key.public_key())
    ecdh_secret = sender_key.exchange(ec.ECDH(), ua_key)
    # RFC 8291 §3.4: IKM = HKDF(salt=auth_secret, ikm=ecdh_secret, info="WebPush: info" 0 ua_public as_public, 32)
    ikm = HKDF(hashes.SHA256(), 32, salt=auth_secret, info=_KEY_INFO + ua_public + as_public).derive(ecdh_secret)
    # RFC 8188 §2.2-2.3: CEK and NONCE from the message salt
    cek = HKDF(hashes.SHA256(), 16, salt=salt, info=_CEK_INFO).derive(ikm)
    nonce = HKDF(hashes.SHA256(), 12, salt=salt, info=_NONCE_INFO).derive(ikm)  # record 0: NONCE XOR 0 = NONCE
    record = AESGCM(cek).encrypt(nonce, payload + _LAST_RECORD + b"\x00" * pad, None)
    header = salt + struct.pack("!IB", RECORD_SIZE, len(as_public)) + as_public
    return header + record


def encrypt(payload: bytes, sub: Subscription, *, pad: int = 0) -> bytes:
    """Encrypt ``payload`` for ``sub`` (RFC 8291, ``aes128gcm``) with a fresh salt and ephemeral P-256 key.

    ``pad`` zero octets hide the payload's length from the push service (at most ``MAX_PLAINTEXT`` in all).
    """
    return encrypt_with(
        payload,
        sub.public_key_bytes,
        sub.auth_secret,
        salt=os.urandom(16),
        sender_key=ec.generate_private_key(ec.SECP256R1()),
        pad=pad,
    )


# --- sending ----------------------------------------------------------------------------------------------------


def classify_push_status(status: int, retry_after: str | None = None) -> DeliveryResult:
    """RFC 8030 answers: 201/202 delivered (any 2xx); 404/410 the subscription is gone (delete it);
    429 and 5xx transient (retry, honouring ``Retry-After``); anything else a permanent failure (400 bad
    headers, 403 VAPID mismatch, 413 payload too large: retrying the same request cannot help)."""
    if 200 <= status < 300:
        return DeliveryResult(status=status, ok=True, retry=False, gone=False)
    if status in (404, 410):
        return DeliveryResult(status=status, ok=False, retry=False, gone=True, error="subscription gone")
    if status == 429 or status >= 500:
        return DeliveryResult(
            status=status,
            ok=False,
            retry=True,
            gone=False,
            retry_after_s=retry_after_seconds(retry_after),
            error=f"push service answered {status}",
        )
    return DeliveryResult(status=status, ok=False, retry=False, gone=False, error=f"push service answered {status}")


def send(
    sub: Subscription,
    payload: bytes,
    vapid: VapidKeys,
    *,
    subject: str,
    ttl: int,
    client: httpx.Client,
    urgency: Urgency = "normal",
    topic: str | None = None,
    vapid_expires_in_s: int = 12 * 3600,
    pad: int = 0,
    now: float | None = None,
) -> DeliveryResult:
    """Encrypt ``payload`` for ``sub`` and POST it to the push service; never raises for HTTP or network failures.

    ``subject``: the VAPID contact (``mailto:ops@example.org`` or an https URL). ``ttl``: seconds the push
    service may hold the message for an offline browser (0: deliver now or drop). ``urgency``/``topic``:
    RFC 8030 §5.3/§5.4 (a newer message with the same topic replaces an undelivered one). ``vapid_expires_in_s``:
    the JWT's lifetime, at most 24 h. ``client`` is the caller's (timeouts, connection pool); redirects are not
    followed. Invalid arguments (bad ttl, urgency, topic, oversize payload) raise ``ValueError``: they are bugs,
    not delivery outcomes.
    """
    if ttl < 0:
        raise ValueError("ttl must be >= 0")
    if urgency not in _URGENCIES:
        raise ValueError(f"urgency must be one of {sorted(_URGENCIES)}")
    if topic is not None and not _TOPIC.match(topic):
        raise ValueError("topic must be 1-32 base64url characters")
    body = encrypt(payload, sub, pad=pad)
    headers = {
        "Authorization": vapid.authorization(sub.endpoint, subject, expires_in_s=vapid_expires_in_s, now=now),
        "Content-Encoding": "aes128gcm",
        "Content-Type": "application/octet-stream",
        "TTL": str(int(ttl)),
        "Urgency": urgency,
    }
    if topic is not None:
        headers["Topic"] = topic
    try:
        response = client.post(sub.endpoint, content=body, headers=headers, follow_redirects=False)
    except httpx.TransportError as exc:  # connect/read/write errors and timeouts: transient
        return DeliveryResult(status=None, ok=False, retry=True, gone=False, error=f"{type(exc).__name__}: {exc}")
    return classify_push_status(response.status_code, response.headers.get("Retry-After"))
