"""Notification delivery channels (glassfeed.notifications.delivery), against real receivers on 127.0.0.1.

The Web Push receiver plays browser *and* push service: it checks the VAPID JWT with the published key, then
decrypts the body with the subscription's private key. Its decryption is written here from RFC 8291/8188 with
``hmac`` (not the library's HKDF), and is itself pinned by the RFC 8291 Appendix A vector.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from glassfeed.notifications.delivery import (
    DeliveryResult,
    Subscription,
    VapidKeys,
    backoff,
    sign,
    verify,
    webhook,
    webpush,
)
from glassfeed.notifications.delivery.webpush import b64url_decode, b64url_encode

CONTACT = "mailto:ops@example.org"

# RFC 8291 Appendix A (line breaks removed)
RFC_PLAINTEXT = b"When I grow up, I want to be a watermelon"
RFC_AS_PRIVATE = "yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw"
RFC_AS_PUBLIC = "BP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A8"
RFC_UA_PRIVATE = "q1dXpw3UpT5VOmu_cf_v6ih07Aems3njxI-JWgLcM94"
RFC_UA_PUBLIC = "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4"
RFC_SALT = "DGv6ra1nlYgDCS1FRnbzlw"
RFC_AUTH = "BTBZMqHH6r4Tts7J_aSIgg"
RFC_BODY = (
    "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A"
    "_yl95bQpu6cVPTpK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxsj_Qulcy4a-fN"
)


# --- the test's own receiver side -----------------------------------------------------------------------------------


def _hkdf(salt: bytes, ikm: bytes, info: bytes, length: int) -> bytes:
    """RFC 5869 with one expand block (length <= 32), written out with hmac."""
    prk = hmac.new(salt, ikm, hashlib.sha256).digest()
    return hmac.new(prk, info + b"\x01", hashlib.sha256).digest()[:length]


def browser_decrypt(body: bytes, ua_private: ec.EllipticCurvePrivateKey, auth_secret: bytes) -> bytes:
    """What a browser does with an ``aes128gcm`` push message (RFC 8291 §3, RFC 8188 §2), one record."""
    salt, (rs, idlen) = body[:16], struct.unpack("!IB", body[16:21])
    as_public = body[21 : 21 + idlen]
    record = body[21 + idlen :]
    assert idlen == 65 and rs >= 18 and len(record) <= rs
    ua_public = ua_private.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    shared = ua_private.exchange(ec.ECDH(), ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), as_public))
    ikm = _hkdf(auth_secret, shared, b"WebPush: info\x00" + ua_public + as_public, 32)
    cek = _hkdf(salt, ikm, b"Content-Encoding: aes128gcm\x00", 16)
    nonce = _hkdf(salt, ikm, b"Content-Encoding: nonce\x00", 12)
    padded = AESGCM(cek).decrypt(nonce, record, None)
    unpadded = padded.rstrip(b"\x00")
    assert unpadded.endswith(b"\x02"), "last record must end with the 0x02 delimiter"
    return unpadded[:-1]


def verify_vapid(authorization: str, expected_aud: str, now: float) -> tuple[dict, str]:
    """Check ``vapid t=<jwt>, k=<key>`` as a push service does; return (claims, k)."""
    scheme, _, params = authorization.partition(" ")
    assert scheme == "vapid"
    fields = dict(p.strip().split("=", 1) for p in params.split(","))
    token, key = fields["t"], fields["k"]
    head_b64, claims_b64, sig_b64 = token.split(".")
    assert json.loads(b64url_decode(head_b64)) == {"typ": "JWT", "alg": "ES256"}
    claims = json.loads(b64url_decode(claims_b64))
    public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b64url_decode(key))
    raw = b64url_decode(sig_b64)
    assert len(raw) == 64
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    public.verify(der, f"{head_b64}.{claims_b64}".encode(), ec.ECDSA(hashes.SHA256()))  # raises if forged
    assert claims["aud"] == expected_aud
    assert now < claims["exp"] <= now + 24 * 3600 + 1
    assert claims["sub"] == CONTACT
    return claims, key


@dataclass
class Browser:
    """A fake user agent: its key pair and auth secret, and the Subscription it would hand over."""

    private: ec.EllipticCurvePrivateKey = field(default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))
    auth: bytes = field(default_factory=lambda: random.Random(7).randbytes(16))

    def subscription(self, endpoint: str) -> Subscription:
        point = self.private.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        return Subscription(endpoint, b64url_encode(point), b64url_encode(self.auth), allow_insecure_localhost=True)


@dataclass
class Seen:
    path: str
    headers: dict[str, str]
    body: bytes
    note: object = None


class Receiver:
    """An HTTP server on 127.0.0.1 answering POSTs with scripted statuses; ``check`` inspects each request."""

    def __init__(self, statuses: list[int | tuple[int, dict[str, str]]], check: Callable[[Seen], object] | None):
        self.statuses = list(statuses)
        self.seen: list[Seen] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                seen = Seen(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                answer: int | tuple[int, dict[str, str]] = outer.statuses.pop(0) if outer.statuses else 201
                try:
                    seen.note = check(seen) if check else None
                except Exception as exc:  # a failed check answers 400 and is kept for the test to show
                    seen.note, answer = exc, 400
                outer.seen.append(seen)
                status, headers = answer if isinstance(answer, tuple) else (answer, {})
                self.send_response(status)
                for name, value in {**headers, "Content-Length": "0"}.items():
                    self.send_header(name, value)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture()
def receiver() -> Iterator[Callable[..., Receiver]]:
    made: list[Receiver] = []

    def make(statuses: list, check: Callable[[Seen], object] | None = None) -> Receiver:
        made.append(Receiver(statuses, check))
        return made[-1]

    yield make
    for r in made:
        r.close()


@pytest.fixture()
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=5.0) as c:
        yield c


# --- RFC 8291 test vector -------------------------------------------------------------------------------------------


def _rfc_key(private_b64: str) -> ec.EllipticCurvePrivateKey:
    return ec.derive_private_key(int.from_bytes(b64url_decode(private_b64), "big"), ec.SECP256R1())


def test_encrypt_reproduces_rfc8291_appendix_a():
    sender = _rfc_key(RFC_AS_PRIVATE)
    assert VapidKeys(sender).public_key_b64 == RFC_AS_PUBLIC  # the vector's key pair is consistent
    body = webpush.encrypt_with(
        RFC_PLAINTEXT,
        b64url_decode(RFC_UA_PUBLIC),
        b64url_decode(RFC_AUTH),
        salt=b64url_decode(RFC_SALT),
        sender_key=sender,
    )
    assert b64url_encode(body) == RFC_BODY


def test_test_receiver_decrypts_rfc8291_appendix_a():
    """The receiver used below is right: it opens the RFC's own message."""
    ua = _rfc_key(RFC_UA_PRIVATE)
    assert browser_decrypt(b64url_decode(RFC_BODY), ua, b64url_decode(RFC_AUTH)) == RFC_PLAINTEXT


def test_encrypt_is_fresh_each_time_and_padding_hides_length():
    browser = Browser()
    sub = browser.subscription("http://127.0.0.1:1/push")
    a, b = webpush.encrypt(b"hello", sub), webpush.encrypt(b"hello", sub)
    assert a != b and a[:16] != b[:16]  # new salt and ephemeral key per message
    padded = webpush.encrypt(b"hello", sub, pad=100)
    assert len(padded) == len(a) + 100
    assert browser_decrypt(padded, browser.private, browser.auth) == b"hello"


def test_payload_limit_is_one_4096_octet_record():
    browser = Browser()
    sub = browser.subscription("http://127.0.0.1:1/push")
    biggest = bytes(range(256)) * 15 + bytes(webpush.MAX_PLAINTEXT - 256 * 15)
    body = webpush.encrypt(biggest, sub)
    assert len(body) == 4096
    assert browser_decrypt(body, browser.private, browser.auth) == biggest
    with pytest.raises(webpush.PayloadTooLarge):
        webpush.encrypt(biggest + b"x", sub)
    with pytest.raises(webpush.PayloadTooLarge):
        webpush.encrypt(b"x" * 10, sub, pad=webpush.MAX_PLAINTEXT)


# --- Web Push end to end --------------------------------------------------------------------------------------------


def test_webpush_send_is_verified_and_decrypted_by_the_receiver(receiver, client):
    vapid = VapidKeys.generate()
    browser = Browser()
    start = time.time()

    def push_service(seen: Seen) -> bytes:
        assert seen.headers["content-encoding"] == "aes128gcm"
        assert seen.headers["ttl"] == "3600"
        assert seen.headers["urgency"] == "high"
        assert seen.headers["topic"] == "new-replies"
        _, key = verify_vapid(seen.headers["authorization"], rx.url, start)
        assert key == vapid.public_key_b64
        return browser_decrypt(seen.body, browser.private, browser.auth)

    rx = receiver([201], push_service)
    message = json.dumps({"title": "3 new replies", "url": "/n/42", "why": "you follow @ada"}).encode()
    result = webpush.send(
        browser.subscription(rx.url + "/wpush/v2/abc"), message, vapid,
        subject=CONTACT, ttl=3600, urgency="high", topic="new-replies", client=client,
    )  # fmt: skip
    assert result == DeliveryResult(status=201, ok=True, retry=False, gone=False)
    assert len(rx.seen) == 1 and rx.seen[0].path == "/wpush/v2/abc"
    assert rx.seen[0].note == message  # the receiver's decryption gave back the exact payload
    assert message not in rx.seen[0].body


def test_a_forged_vapid_token_fails_the_receivers_check():
    vapid, other = VapidKeys.generate(), VapidKeys.generate()
    header = vapid.authorization("http://127.0.0.1:9/x", CONTACT, expires_in_s=600)
    forged = header.replace(f"k={vapid.public_key_b64}", f"k={other.public_key_b64}")
    verify_vapid(header, "http://127.0.0.1:9", time.time())
    with pytest.raises(InvalidSignature):
        verify_vapid(forged, "http://127.0.0.1:9", time.time())


@pytest.mark.parametrize(
    ("answer", "ok", "retry", "gone", "retry_after"),
    [
        (202, True, False, False, None),
        (410, False, False, True, None),
        (404, False, False, True, None),
        (500, False, True, False, None),
        (503, False, True, False, None),
        ((429, {"Retry-After": "7"}), False, True, False, 7.0),
        (400, False, False, False, None),
        (403, False, False, False, None),
        (413, False, False, False, None),
        ((301, {"Location": "https://example.org/"}), False, False, False, None),
    ],
)
def test_webpush_status_mapping(receiver, client, answer, ok, retry, gone, retry_after):
    rx = receiver([answer])
    result = webpush.send(
        Browser().subscription(rx.url + "/p"), b"{}", VapidKeys.generate(), subject=CONTACT, ttl=60, client=client
    )
    status = answer[0] if isinstance(answer, tuple) else answer
    assert (result.status, result.ok, result.retry, result.gone) == (status, ok, retry, gone)
    assert result.retry_after_s == retry_after
    assert len(rx.seen) == 1  # one attempt, no redirect followed


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_webpush_unreachable_push_service_is_a_retry(client):
    sub = Browser().subscription(f"http://127.0.0.1:{_closed_port()}/p")
    result = webpush.send(sub, b"x", VapidKeys.generate(), subject=CONTACT, ttl=0, client=client)
    assert (result.status, result.ok, result.retry, result.gone) == (None, False, True, False)
    assert result.error


# --- validation -----------------------------------------------------------------------------------------------------


def test_subscription_validation():
    good = Browser().subscription("http://127.0.0.1:1/p")
    p256dh, auth = good.p256dh, good.auth
    Subscription("https://fcm.googleapis.com/fcm/send/abc", p256dh, auth)
    Subscription("https://push.example/p", p256dh + "=", auth + "==")  # padded base64url is accepted
    bad = [
        ("http://push.example/p", p256dh, auth, False),  # production: https only
        ("http://127.0.0.1:1/p", p256dh, auth, False),  # loopback http needs the explicit flag
        ("http://push.example/p", p256dh, auth, True),  # the flag is for loopback only
        ("ftp://push.example/p", p256dh, auth, True),
        ("https://user:pw@push.example/p", p256dh, auth, False),
        ("/relative", p256dh, auth, False),
        ("https://push.example/p", p256dh[:-4], auth, False),  # short key
        ("https://push.example/p", "BA" + "A" * 85, auth, False),  # 65 octets, not on the curve
        ("https://push.example/p", p256dh.replace("-", "+").replace("_", "/") + "+/", auth, False),
        ("https://push.example/p", p256dh, b64url_encode(b"x" * 15), False),  # auth must be 16 octets
        ("https://push.example/p", p256dh, "not base64!", False),
    ]
    for endpoint, key, secret, flag in bad:
        with pytest.raises(ValueError):
            Subscription(endpoint, key, secret, allow_insecure_localhost=flag)


def test_vapid_claims_and_keys():
    vapid = VapidKeys.generate()
    now = 1_700_000_000
    token = vapid.jwt("https://fcm.googleapis.com", CONTACT, expires_in_s=3600, now=now)
    claims = json.loads(b64url_decode(token.split(".")[1]))
    assert claims == {"aud": "https://fcm.googleapis.com", "exp": now + 3600, "sub": CONTACT}
    header = vapid.authorization("https://updates.push.services.mozilla.com:443/wpush/v2/x", CONTACT, expires_in_s=60)
    assert json.loads(b64url_decode(header.split("t=")[1].split(".")[1]))["aud"] == (
        "https://updates.push.services.mozilla.com"
    )
    for endpoint, aud in [
        ("https://fcm.googleapis.com/fcm/send/abc", "https://fcm.googleapis.com"),
        ("https://Push.Example:8443/p?x=1", "https://push.example:8443"),
        ("https://[2001:db8::1]/p", "https://[2001:db8::1]"),
    ]:
        token = vapid.authorization(endpoint, CONTACT, expires_in_s=60).split("t=")[1].split(",")[0]
        assert json.loads(b64url_decode(token.split(".")[1]))["aud"] == aud
    assert header.endswith(f", k={vapid.public_key_b64}") and len(b64url_decode(vapid.public_key_b64)) == 65
    with pytest.raises(ValueError):
        vapid.jwt("https://x", CONTACT, expires_in_s=24 * 3600 + 1)
    with pytest.raises(ValueError):
        vapid.jwt("https://x", "ops@example.org", expires_in_s=60)  # sub must be a mailto: or https: URI
    # PEM round trip, PKCS#8 and SEC1 ("EC PRIVATE KEY", what openssl ecparam writes)
    assert VapidKeys.from_pem(vapid.to_pem()).public_key_b64 == vapid.public_key_b64
    sec1 = vapid.private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    )
    assert VapidKeys.from_pem(sec1.decode()).public_key_b64 == vapid.public_key_b64
    rsa_pem = rsa.generate_private_key(65537, 2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(ValueError):
        VapidKeys.from_pem(rsa_pem)
    with pytest.raises(ValueError):
        VapidKeys(ec.generate_private_key(ec.SECP384R1()))


def test_webpush_send_rejects_bad_arguments(client):
    sub = Browser().subscription("http://127.0.0.1:1/p")
    vapid = VapidKeys.generate()
    for kwargs in ({"ttl": -1}, {"ttl": 60, "urgency": "asap"}, {"ttl": 60, "topic": "has space"}):
        with pytest.raises(ValueError):
            webpush.send(sub, b"x", vapid, subject=CONTACT, client=client, **kwargs)


# --- webhooks -------------------------------------------------------------------------------------------------------

SECRET = "whsec_test_5b1f"
TOLERANCE_S = 300


def test_webhook_receiver_verifies_and_the_retry_succeeds(receiver, client):
    def check(seen: Seen) -> bool:
        return verify(SECRET, seen.headers["x-glassfeed-signature"], seen.body, time.time(), TOLERANCE_S)

    rx = receiver([500, 200], check)
    payload = {"user": "u1", "kind": "digest", "items": ["p1", "p2"], "why": "weekly digest, opted in"}
    attempts: list[DeliveryResult] = []
    rng = random.Random(1)
    for attempt in range(5):
        result = webhook.send(
            rx.url + "/hook", payload, SECRET, client, delivery_id="n-42", allow_insecure_localhost=True
        )
        attempts.append(result)
        if not result.retry:
            break
        time.sleep(backoff(attempt, base_s=0.01, cap_s=0.05, rng=rng))
    assert [(r.status, r.ok, r.retry) for r in attempts] == [(500, False, True), (200, True, False)]
    assert [s.note for s in rx.seen] == [True, True]  # both attempts carried a valid signature
    assert [s.headers["x-glassfeed-delivery"] for s in rx.seen] == ["n-42", "n-42"]  # one idempotency key
    assert json.loads(rx.seen[1].body) == payload
    assert rx.seen[1].headers["content-type"] == "application/json"


def test_webhook_signature_rejects_tampering_replay_and_junk():
    body = webhook.encode_body({"n": 1, "text": "café"})
    now = 1_700_000_000
    header = sign(SECRET, body, now)
    assert verify(SECRET, header, body, now + 10, TOLERANCE_S)
    assert verify(SECRET.encode(), header, body, now, TOLERANCE_S)
    assert not verify(SECRET, header, body.replace(b"1", b"2"), now, TOLERANCE_S)  # tampered body
    assert not verify(SECRET, header, body, now + TOLERANCE_S + 1, TOLERANCE_S)  # stale: a replay
    assert not verify(SECRET, header, body, now - TOLERANCE_S - 1, TOLERANCE_S)  # from the future
    assert not verify("another secret", header, body, now, TOLERANCE_S)
    moved = header.replace(f"t={now}", f"t={now + 5}")  # a fresh timestamp on an old signature
    assert not verify(SECRET, moved, body, now, TOLERANCE_S)
    for junk in (None, "", "v1=abc", f"t={now}", f"t=abc,v1={'0' * 64}", "garbage", f"t={now},t={now},v1=x"):
        assert not verify(SECRET, junk, body, now, TOLERANCE_S)
    # secret rotation: two v1 entries, either secret verifies
    rotated = header + "," + sign("new secret", body, now).split(",")[1]
    assert verify(SECRET, rotated, body, now, TOLERANCE_S)
    assert verify("new secret", rotated, body, now, TOLERANCE_S)
    # Stripe-compatible construction: hex HMAC-SHA256 of "<t>.<body>"
    expected = hmac.new(SECRET.encode(), f"{now}.".encode() + body, hashlib.sha256).hexdigest()
    assert header == f"t={now},v1={expected}"


@pytest.mark.parametrize(
    ("status", "ok", "retry", "gone"),
    [(204, True, False, False), (410, False, False, True), (429, False, True, False), (408, False, True, False),
     (502, False, True, False), (400, False, False, False), (404, False, False, False), (302, False, False, False)],
)  # fmt: skip
def test_webhook_status_mapping(receiver, client, status, ok, retry, gone):
    rx = receiver([(status, {"Location": "https://example.org/"}) if status == 302 else status])
    result = webhook.send(rx.url, {"a": 1}, SECRET, client, delivery_id="d1", allow_insecure_localhost=True)
    assert (result.status, result.ok, result.retry, result.gone) == (status, ok, retry, gone)
    assert len(rx.seen) == 1


def test_webhook_send_guards(client):
    with pytest.raises(ValueError):
        webhook.send("http://hooks.example/x", {}, SECRET, client, delivery_id="d")  # https only
    with pytest.raises(ValueError):
        webhook.send("http://127.0.0.1:1/x", {}, SECRET, client, delivery_id="d")  # loopback needs the flag
    with pytest.raises(ValueError):
        webhook.send("https://hooks.example/x", {}, "", client, delivery_id="d")
    with pytest.raises(ValueError):
        webhook.send("https://hooks.example/x", {}, SECRET, client, delivery_id="")
    down = webhook.send(
        f"http://127.0.0.1:{_closed_port()}/x", {}, SECRET, client, delivery_id="d", allow_insecure_localhost=True
    )
    assert (down.status, down.retry, down.gone) == (None, True, False)


def test_backoff_is_capped_full_jitter():
    rng = random.Random(0)
    base, cap = 2.0, 60.0
    for attempt in range(12):
        ceiling = min(cap, base * 2**attempt)
        samples = [backoff(attempt, base_s=base, cap_s=cap, rng=rng) for _ in range(2000)]
        assert all(0.0 <= s <= ceiling for s in samples)
        mean = sum(samples) / len(samples)
        assert abs(mean - ceiling / 2) < 0.05 * ceiling  # uniform on [0, ceiling]: mean ceiling/2
    assert 0 <= backoff(10_000, base_s=base, cap_s=cap) <= cap  # no overflow far past the cap
    for bad in ({"attempt": -1, "base_s": 1, "cap_s": 2}, {"attempt": 0, "base_s": 0, "cap_s": 2},
                {"attempt": 0, "base_s": 3, "cap_s": 2}):  # fmt: skip
        with pytest.raises(ValueError):
            backoff(bad.pop("attempt"), **bad)
