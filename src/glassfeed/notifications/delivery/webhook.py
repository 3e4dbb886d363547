"""Signed webhooks: a JSON POST the receiver can authenticate, deduplicate and reject when replayed.

Headers on every request::

    X-Glassfeed-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>
    X-Glassfeed-Delivery:  <delivery id, the same on every retry of one notification: the idempotency key>

The receiver recomputes the HMAC over the raw body bytes it received (not a re-serialised JSON), compares in
constant time, and refuses timestamps more than ``tolerance_s`` away from its clock (replay). During a secret
rotation the sender may put several ``v1=`` entries in one header; any one matching is enough. ``backoff`` gives
the delay before the next attempt (exponential, full jitter, capped): the numbers come from configuration.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import time
from collections.abc import Mapping
from typing import Any

import httpx

from glassfeed.notifications.delivery.result import DeliveryResult, check_endpoint_url, retry_after_seconds

__all__ = [
    "DELIVERY_HEADER",
    "SIGNATURE_HEADER",
    "backoff",
    "classify_webhook_status",
    "encode_body",
    "send",
    "sign",
    "verify",
]

SIGNATURE_HEADER = "X-Glassfeed-Signature"
DELIVERY_HEADER = "X-Glassfeed-Delivery"
_SCHEME = "v1"


def _key(secret: bytes | str) -> bytes:
    key = secret.encode("utf-8") if isinstance(secret, str) else secret
    if not key:
        raise ValueError("webhook secret must not be empty")
    return key


def _mac(key: bytes, timestamp: int, body: bytes) -> str:
    return hmac.new(key, str(timestamp).encode("ascii") + b"." + body, hashlib.sha256).hexdigest()


def encode_body(payload: Mapping[str, Any]) -> bytes:
    """The exact bytes sent (and signed): compact UTF-8 JSON with sorted keys."""
    return json.dumps(payload, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode("utf-8")


def sign(secret: bytes | str, body: bytes, timestamp: int) -> str:
    """The ``X-Glassfeed-Signature`` value for ``body`` sent at ``timestamp`` (unix seconds)."""
    return f"t={int(timestamp)},{_SCHEME}={_mac(_key(secret), int(timestamp), body)}"


def verify(secret: bytes | str, header: str | None, body: bytes, now: float, tolerance_s: float) -> bool:
    """True when ``header`` carries a ``v1`` HMAC of ``"<t>.<body>"`` under ``secret`` and ``|now - t| <=
    tolerance_s``. Malformed headers, missing parts, stale or future timestamps: False (never raises on input)."""
    if not header:
        return False
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        name, sep, value = part.strip().partition("=")
        if not sep:
            return False
        if name == "t":
            if timestamp is not None or not value.isdigit():
                return False
            timestamp = int(value)
        elif name == _SCHEME:
            candidates.append(value)
        # other schemes (a future v2) are ignored, as Stripe's receivers do
    if timestamp is None or not candidates or abs(now - timestamp) > tolerance_s:
        return False
    expected = _mac(_key(secret), timestamp, body).encode("ascii")
    matched = False
    for candidate in candidates:  # no early exit: the time taken does not depend on which entry matched
        matched |= hmac.compare_digest(expected, candidate.encode("ascii", "replace"))
    return matched


def classify_webhook_status(status: int, retry_after: str | None = None) -> DeliveryResult:
    """2xx delivered; 410 the receiver asks us to stop (delete the hook); 408, 429 and 5xx transient (retry);
    anything else (3xx: redirects are not followed; other 4xx) a permanent failure."""
    if 200 <= status < 300:
        return DeliveryResult(status=status, ok=True, retry=False, gone=False)
    if status == 410:
        return DeliveryResult(status=status, ok=False, retry=False, gone=True, error="webhook gone")
    if status in (408, 429) or status >= 500:
        return DeliveryResult(
            status=status,
            ok=False,
            retry=True,
            gone=False,
            retry_after_s=retry_after_seconds(retry_after),
            error=f"webhook answered {status}",
        )
    return DeliveryResult(status=status, ok=False, retry=False, gone=False, error=f"webhook answered {status}")


def send(
    url: str,
    payload: Mapping[str, Any],
    secret: bytes | str,
    client: httpx.Client,
    *,
    delivery_id: str,
    now: float | None = None,
    allow_insecure_localhost: bool = False,
) -> DeliveryResult:
    """POST ``payload`` as signed JSON to ``url``; never raises for HTTP or network failures.

    ``delivery_id`` must stay the same across retries of one notification (the outbox row id is right): the
    receiver deduplicates on it. Each attempt is signed afresh with the current time, so a retry hours later is
    not refused as a replay. ``url`` must be https (plain http only for loopback with
    ``allow_insecure_localhost=True``); an invalid URL or empty secret raises ``ValueError``.
    """
    check_endpoint_url(url, allow_insecure_localhost=allow_insecure_localhost)
    if not delivery_id:
        raise ValueError("delivery_id must not be empty")
    body = encode_body(payload)
    timestamp = int(time.time() if now is None else now)
    headers = {
        "Content-Type": "application/json",
        SIGNATURE_HEADER: sign(secret, body, timestamp),
        DELIVERY_HEADER: delivery_id,
    }
    try:
        response = client.post(url, content=body, headers=headers, follow_redirects=False)
    except httpx.TransportError as exc:
        return DeliveryResult(status=None, ok=False, retry=True, gone=False, error=f"{type(exc).__name__}: {exc}")
    return classify_webhook_status(response.status_code, response.headers.get("Retry-After"))


def backoff(attempt: int, *, base_s: float, cap_s: float, rng: random.Random | None = None) -> float:
    """Seconds to wait before retry number ``attempt`` (0 for the first retry): uniform in
    ``[0, min(cap_s, base_s * 2**attempt)]`` ("full jitter": retries of many failed deliveries spread out
    instead of arriving together). ``rng`` makes it reproducible in tests."""
    if attempt < 0:
        raise ValueError("attempt must be >= 0")
    if base_s <= 0 or cap_s < base_s:
        raise ValueError("need 0 < base_s <= cap_s")
    # 2**attempt overflows a float near attempt 1024; once past the cap the exponent no longer matters
    ceiling = cap_s if attempt >= 64 else min(cap_s, base_s * (2.0**attempt))
    return (rng or random).uniform(0.0, ceiling)
