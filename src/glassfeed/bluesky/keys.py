"""Signing keys of Bluesky accounts: multikey (did:key) encoding and pluggable DID -> public key resolvers.

Verifying a requester's JWT needs their current atproto signing key, which lives in their DID document
(plc.directory for did:plc, ``/.well-known/did.json`` for did:web). That needs the network, so the resolver is a
protocol: tests and offline setups use :class:`StaticKeyResolver`; :class:`NetworkKeyResolver` fetches documents.
"""

from __future__ import annotations

import ipaddress
import json
import re
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import httpcore
import httpx
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from glassfeed.bluesky.settings import BlueskySettings, load_bluesky_settings

PublicKey = ec.EllipticCurvePublicKey

#: multicodec varint prefixes of compressed public keys (secp256k1-pub 0xe7, p256-pub 0x1200)
K256_PREFIX = bytes([0xE7, 0x01])
P256_PREFIX = bytes([0x80, 0x24])
_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B58_IDX = {c: i for i, c in enumerate(_B58)}


class KeyResolver(Protocol):
    """Anything that maps a DID to its current atproto signing key (None when the DID has none); ``fresh``
    asks for the current key rather than a cached one (used once after a signature fails)."""

    def resolve(self, did: str, fresh: bool = False) -> PublicKey | None: ...


def b58encode(data: bytes) -> str:
    n = int.from_bytes(data, "big")
    out = ""
    while n:
        n, r = divmod(n, 58)
        out = _B58[r] + out
    return "1" * (len(data) - len(data.lstrip(b"\0"))) + out


def b58decode(text: str) -> bytes:
    n = 0
    for c in text:
        if c not in _B58_IDX:
            raise ValueError(f"invalid base58 character {c!r}")
        n = n * 58 + _B58_IDX[c]
    body = n.to_bytes((n.bit_length() + 7) // 8, "big") if n else b""
    return b"\0" * (len(text) - len(text.lstrip("1"))) + body


def encode_multikey(key: PublicKey) -> str:
    """``z...`` multibase (base58btc) of the multicodec-prefixed compressed point, as in DID documents."""
    prefix = K256_PREFIX if isinstance(key.curve, ec.SECP256K1) else P256_PREFIX
    if not isinstance(key.curve, (ec.SECP256K1, ec.SECP256R1)):
        raise ValueError("only secp256k1 (ES256K) and P-256 (ES256) keys are used by atproto")
    return "z" + b58encode(prefix + key.public_bytes(Encoding.X962, PublicFormat.CompressedPoint))


def decode_multikey(text: str) -> PublicKey:
    """Inverse of :func:`encode_multikey`; accepts a bare multibase value or a ``did:key:`` string."""
    text = text.removeprefix("did:key:")
    if not text.startswith("z"):
        raise ValueError("multikey must be base58btc multibase (start with 'z')")
    raw = b58decode(text[1:])
    curves = {K256_PREFIX: ec.SECP256K1(), P256_PREFIX: ec.SECP256R1()}
    curve = curves.get(raw[:2])
    if curve is None:
        raise ValueError("unsupported key type (expected secp256k1-pub or p256-pub multicodec)")
    return ec.EllipticCurvePublicKey.from_encoded_point(curve, raw[2:])


def did_key(key: PublicKey) -> str:
    return "did:key:" + encode_multikey(key)


def atproto_key_from_doc(doc: dict[str, Any], did: str) -> PublicKey | None:
    """The ``#atproto`` Multikey verification method of a DID document, decoded (None when absent)."""
    for vm in doc.get("verificationMethod") or []:
        vid = str(vm.get("id", ""))
        if vid in ("#atproto", f"{did}#atproto") and vm.get("publicKeyMultibase"):
            return decode_multikey(vm["publicKeyMultibase"])
    return None


class StaticKeyResolver:
    """A fixed DID -> key table (keys as objects, ``did:key:`` strings or multibase); also resolves did:key DIDs."""

    def __init__(self, keys: dict[str, PublicKey | str] | None = None) -> None:
        self.keys = {d: decode_multikey(k) if isinstance(k, str) else k for d, k in (keys or {}).items()}

    @classmethod
    def from_file(cls, path: str | Path) -> StaticKeyResolver:
        """A JSON object ``{did: "did:key:..." | "z..."}``."""
        return cls(json.loads(Path(path).read_text("utf-8")))

    def resolve(self, did: str, fresh: bool = False) -> PublicKey | None:
        if did in self.keys:
            return self.keys[did]
        if did.startswith("did:key:"):
            return decode_multikey(did)
        return None


class ResolveError(Exception):
    """A DID's key could not be obtained: a refused target, a network failure, a bad document, or no free slot."""


#: ``host -> addresses`` (the system resolver by default; tests inject a fake)
DnsLookup = Callable[[str, int], list[str]]

#: did:plc identifiers are 24 base32 characters; accept any short lowercase alphanumeric (no path tricks)
DID_PLC = re.compile(r"^did:plc:[a-z0-9]{1,64}$")
#: a did:web host (port percent-encoded as %3A), no path, userinfo or brackets
DID_WEB = re.compile(r"^did:web:([a-z0-9](?:[a-z0-9.-]{0,251}[a-z0-9])?)(?:%3A([0-9]{1,5}))?$", re.IGNORECASE)


def system_dns(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (blocking ``getaddrinfo``; resolution runs in a worker thread)."""
    return [str(info[4][0]) for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)]


def is_public_address(addr: str) -> bool:
    """Whether ``addr`` is a globally routable unicast address (not private, loopback, link-local, shared,
    unspecified, multicast or reserved; IPv4-mapped IPv6 addresses are judged by their IPv4 address)."""
    try:
        ip: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.ip_address(addr.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not (
        ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_multicast or ip.is_reserved or ip.is_unspecified
    )


def public_addresses(host: str, port: int, dns: DnsLookup) -> list[str]:
    """The addresses of ``host`` (an IP literal is its own address), all public; else :class:`ResolveError`."""
    try:
        ipaddress.ip_address(host)
        addrs = [host]
    except ValueError:
        try:
            addrs = dns(host, port)
        except OSError as e:
            raise ResolveError(f"cannot resolve host {host!r}: {e}") from None
    if not addrs:
        raise ResolveError(f"host {host!r} has no address")
    refused = [a for a in addrs if not is_public_address(a)]
    if refused:
        raise ResolveError(f"host {host!r} resolves to a non-public address ({refused[0]}); refused")
    return addrs


class PinnedBackend(httpcore.SyncBackend):
    """Connects only to public addresses, and to the very address it checked (no DNS rebinding between the
    check and the connection); TLS still verifies the certificate against the host name."""

    def __init__(self, dns: DnsLookup) -> None:
        self.dns = dns

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        addr = public_addresses(host, port, self.dns)[0]
        return super().connect_tcp(addr, port, timeout, local_address, socket_options)


class PinnedTransport(httpx.HTTPTransport):
    """An httpx transport whose connections go through :class:`PinnedBackend` (no proxies, no redirects)."""

    def __init__(self, dns: DnsLookup) -> None:
        super().__init__(trust_env=False)
        # httpx offers no public hook for the network backend: replace the pool it built with one that has it
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False), network_backend=PinnedBackend(dns)
        )


@dataclass(slots=True)
class _Entry:
    at: float  # monotonic time of the fetch
    key: PublicKey | None
    error: str | None  # a failed fetch (negative cache)


class NetworkKeyResolver:
    """Fetches DID documents (did:plc from the PLC directory, did:web from the host) into a bounded LRU cache.

    Hardened against being used as a proxy or slowed down by token senders: did:web hosts must resolve only to
    public addresses (checked again at connect time, no redirects, no proxies); a fetch has a total deadline and
    a size cap; at most ``resolver_concurrency`` fetches run at once (others wait ``resolver_wait_s`` and are
    refused); failures and keyless DIDs are cached for ``key_failure_ttl_s``; a forced refresh (after a bad
    signature) refetches a DID at most every ``key_refresh_min_s``. Blocking: call it from a worker thread.
    """

    def __init__(
        self,
        settings: BlueskySettings | None = None,
        *,
        client: httpx.Client | None = None,
        dns: DnsLookup = system_dns,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = s = settings or load_bluesky_settings()
        self.plc_url = s.plc_url.rstrip("/")
        self.dns, self.clock = dns, clock
        timeout = httpx.Timeout(s.resolver_timeout_s)
        self.plc_client = client or httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False)
        self.web_client = client or httpx.Client(
            timeout=timeout, follow_redirects=False, trust_env=False, transport=PinnedTransport(dns)
        )
        self.cache: OrderedDict[str, _Entry] = OrderedDict()
        self.lock = threading.Lock()
        self.slots = threading.BoundedSemaphore(s.resolver_concurrency)

    def doc_url(self, did: str) -> str:
        """Where ``did``'s document lives; :class:`ResolveError` for unsupported or malformed DIDs."""
        if did.startswith("did:plc:"):
            if not DID_PLC.match(did):
                raise ResolveError("malformed did:plc")
            return f"{self.plc_url}/{did}"
        if did.startswith("did:web:"):
            m = DID_WEB.match(did)
            if m is None:
                raise ResolveError("malformed did:web (a host name and optional %3A port; paths are not supported)")
            host, port = m.group(1).lower(), m.group(2)
            if port and not 0 < int(port) < 65536:
                raise ResolveError("malformed did:web (port out of range)")
            return f"https://{host}{':' + port if port else ''}/.well-known/did.json"
        raise ResolveError(f"unsupported DID method: {did[:40]!r}")

    def _cached(self, did: str, fresh: bool) -> _Entry | None:
        now = self.clock()
        s = self.settings
        with self.lock:
            hit = self.cache.get(did)
            if hit is None:
                return None
            self.cache.move_to_end(did)
        age = now - hit.at
        ttl = s.key_cache_ttl_s if hit.key is not None else s.key_failure_ttl_s
        if age >= ttl or (fresh and age >= s.key_refresh_min_s):
            return None
        return hit

    def _store(self, did: str, entry: _Entry) -> None:
        with self.lock:
            self.cache[did] = entry
            self.cache.move_to_end(did)
            while len(self.cache) > self.settings.key_cache_size:
                self.cache.popitem(last=False)

    def resolve(self, did: str, fresh: bool = False) -> PublicKey | None:
        """``did``'s atproto key (None when its document has none); :class:`ResolveError` when it cannot be
        fetched. ``fresh`` bypasses the cache unless the DID was fetched within ``key_refresh_min_s``."""
        if did.startswith("did:key:"):
            return decode_multikey(did)
        hit = self._cached(did, fresh)
        if hit is not None:
            if hit.error is not None:
                raise ResolveError(f"{hit.error} (cached failure)")
            return hit.key
        url = self.doc_url(did)
        if not self.slots.acquire(timeout=self.settings.resolver_wait_s):
            raise ResolveError("too many DID documents being fetched; try again")
        try:
            key = self._fetch(did, url)
        except (ResolveError, httpx.HTTPError, httpcore.NetworkError, httpcore.TimeoutException, OSError) as e:
            msg = str(e) if isinstance(e, ResolveError) else f"fetching the DID document failed ({type(e).__name__})"
            self._store(did, _Entry(self.clock(), None, msg))
            raise ResolveError(msg) from None
        finally:
            self.slots.release()
        self._store(did, _Entry(self.clock(), key, None))
        return key

    def _fetch(self, did: str, url: str) -> PublicKey | None:
        s = self.settings
        web = did.startswith("did:web:")
        if web:  # fail fast on refused targets (the pinned transport checks the connected address again)
            u = httpx.URL(url)
            public_addresses(u.host, u.port or 443, self.dns)
        deadline = self.clock() + s.resolver_timeout_s
        with (self.web_client if web else self.plc_client).stream("GET", url) as resp:
            if resp.status_code == 404:
                return None
            if resp.status_code != 200:
                raise ResolveError(f"the DID document request answered HTTP {resp.status_code}")
            body = bytearray()
            for chunk in resp.iter_bytes():
                body += chunk
                if len(body) > s.did_document_max_bytes:
                    raise ResolveError(f"DID document larger than {s.did_document_max_bytes} bytes")
                if self.clock() > deadline:
                    raise ResolveError(f"DID document fetch took longer than {s.resolver_timeout_s} s")
        try:
            doc = json.loads(body)
        except ValueError:
            raise ResolveError("DID document is not JSON") from None
        if not isinstance(doc, dict) or doc.get("id") != did:
            raise ResolveError("DID document id does not match the DID")
        try:
            return atproto_key_from_doc(doc, did)
        except (ValueError, TypeError, AttributeError) as e:
            raise ResolveError(f"DID document has a bad atproto key ({e})") from None
