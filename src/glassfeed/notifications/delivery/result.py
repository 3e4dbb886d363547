"""The outcome of one delivery attempt, shared by every channel, and the URL rule every channel applies."""

from __future__ import annotations

import email.utils
import ipaddress
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

#: hosts that ``allow_insecure_localhost=True`` lets through over plain http (tests, local development)
_LOOPBACK_NAMES = frozenset({"localhost"})


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    """What the outbox worker needs to decide the fate of one attempt.

    ``ok``: delivered (the receiver answered 2xx). ``retry``: transient failure (429, 5xx, timeout, connection
    error): try again later, ``retry_after_s`` is the receiver's own ``Retry-After`` hint when it sent one.
    ``gone``: the destination no longer exists (Web Push 404/410, webhook 410): delete the subscription, never
    retry. Neither flag set and not ``ok``: permanent failure (other 4xx, redirects): record it, do not retry.
    ``status`` is the HTTP status, ``None`` when no response came back; ``error`` says why, for logs.
    """

    status: int | None
    ok: bool
    retry: bool
    gone: bool
    retry_after_s: float | None = None
    error: str | None = None


def retry_after_seconds(value: str | None, *, now: float | None = None) -> float | None:
    """The delay a ``Retry-After`` header asks for (delta-seconds or an HTTP date), ``None`` when absent/unparsable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def is_loopback_host(host: str) -> bool:
    """True for ``localhost`` and literal loopback addresses (127.0.0.0/8, ::1)."""
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_endpoint_url(url: str, *, allow_insecure_localhost: bool) -> None:
    """Raise ``ValueError`` unless ``url`` is an absolute https URL with a host (no credentials in it).

    Plain ``http`` is accepted only for a loopback host and only when ``allow_insecure_localhost`` is set: the
    tests' local receivers. Production configuration never sets it.
    """
    parts = urlsplit(url)
    if not parts.hostname:
        raise ValueError(f"endpoint has no host: {url!r}")
    if parts.username is not None or parts.password is not None:
        raise ValueError("endpoint must not carry credentials")
    if parts.scheme == "https":
        return
    if parts.scheme == "http" and allow_insecure_localhost and is_loopback_host(parts.hostname):
        return
    raise ValueError(f"endpoint must be https (plain http only for loopback with allow_insecure_localhost): {url!r}")


def origin_of(url: str) -> str:
    """The RFC 6454 origin of ``url``, ``scheme://host[:port]``, default ports left out (VAPID's ``aud``)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    port = parts.port
    if port is None or (scheme, port) in {("https", 443), ("http", 80)}:
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"
