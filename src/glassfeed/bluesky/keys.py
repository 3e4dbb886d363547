"""Signing keys of Bluesky accounts: multikey (did:key) encoding and pluggable DID -> public key resolvers.

Verifying a requester's JWT needs their current atproto signing key, which lives in their DID document
(plc.directory for did:plc, ``/.well-known/did.json`` for did:web). That needs the network, so the resolver is a
protocol: tests and offline setups use :class:`StaticKeyResolver`; :class:`NetworkKeyResolver` fetches documents.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Protocol

import httpx
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

PublicKey = ec.EllipticCurvePublicKey

#: multicodec varint prefixes of compressed public keys (secp256k1-pub 0xe7, p256-pub 0x1200)
K256_PREFIX = bytes([0xE7, 0x01])
P256_PREFIX = bytes([0x80, 0x24])
_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B58_IDX = {c: i for i, c in enumerate(_B58)}


class KeyResolver(Protocol):
    """Anything that maps a DID to its current atproto signing key (None when the DID has none)."""

    def resolve(self, did: str) -> PublicKey | None: ...


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

    def resolve(self, did: str) -> PublicKey | None:
        if did in self.keys:
            return self.keys[did]
        if did.startswith("did:key:"):
            return decode_multikey(did)
        return None


class NetworkKeyResolver:
    """Fetches DID documents (did:plc from the PLC directory, did:web from the host) with a TTL cache."""

    def __init__(
        self, plc_url: str = "https://plc.directory", ttl_s: float = 3600.0, timeout_s: float = 3.0, client: Any = None
    ) -> None:
        self.plc_url = plc_url.rstrip("/")
        self.ttl_s = ttl_s
        self.client = client or httpx.Client(timeout=timeout_s, follow_redirects=True)
        self.cache: dict[str, tuple[float, PublicKey | None]] = {}

    def doc_url(self, did: str) -> str:
        if did.startswith("did:plc:"):
            return f"{self.plc_url}/{did}"
        if did.startswith("did:web:"):
            parts = did.removeprefix("did:web:").split(":")
            if len(parts) != 1 or "/" in parts[0]:
                raise ValueError("did:web with a path is not supported")
            return f"https://{parts[0].replace('%3A', ':')}/.well-known/did.json"
        raise ValueError(f"unsupported DID method: {did[:40]!r}")

    def resolve(self, did: str, fresh: bool = False) -> PublicKey | None:
        hit = self.cache.get(did)
        if hit and not fresh and time.monotonic() - hit[0] < self.ttl_s:
            return hit[1]
        if did.startswith("did:key:"):
            return decode_multikey(did)
        resp = self.client.get(self.doc_url(did))
        if resp.status_code == 404:
            key = None
        else:
            resp.raise_for_status()
            key = atproto_key_from_doc(resp.json(), did)
        self.cache[did] = (time.monotonic(), key)
        return key
