"""Bluesky feed-generator settings from ``settings.raw["bluesky"]`` (glassfeed.toml) and GLASSFEED_BSKY_* env vars.

Env vars win over the TOML section; everything has a default so ``install(app)`` works with no configuration
(a local did:web on localhost publishing every policy).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

ENV = {
    "hostname": "GLASSFEED_BSKY_HOSTNAME",
    "service_did": "GLASSFEED_BSKY_SERVICE_DID",
    "publisher_did": "GLASSFEED_BSKY_PUBLISHER_DID",
    "feeds": "GLASSFEED_BSKY_FEEDS",
    "keys_file": "GLASSFEED_BSKY_KEYS_FILE",
    "impressions": "GLASSFEED_BSKY_IMPRESSIONS",
}
DEFAULTS: dict[str, Any] = {
    "hostname": "localhost",
    "service_did": "",
    "publisher_did": "",
    "feeds": [],
    "privacy_policy": "",
    "terms_of_service": "",
    "keys_file": "",
    "plc_url": "https://plc.directory",
    "strict_low_s": False,
    "impressions": "served",
    "jetstream_url": "wss://jetstream2.us-east.bsky.network/subscribe",
    "cursor_rewind_s": 5.0,
}


@dataclass(frozen=True, slots=True)
class BlueskySettings:
    hostname: str  # public host that serves /xrpc (did:web:<hostname>)
    service_did: str  # the feed generator's DID (the JWT audience)
    publisher_did: str  # the account whose repo holds the app.bsky.feed.generator records
    feeds: tuple[str, ...]  # policy names published as feeds (rkey = policy name); empty = every policy
    privacy_policy: str
    terms_of_service: str
    keys_file: str  # JSON {did: did:key} for an offline key resolver; empty = resolve over the network
    plc_url: str
    strict_low_s: bool
    impressions: str  # "served": log impressions when a page is served; "seen": only on interactionSeen
    jetstream_url: str
    cursor_rewind_s: float  # resume Jetstream this many seconds before the saved cursor (replays are no-ops)

    def feed_uri(self, policy: str) -> str:
        return f"at://{self.publisher_did}/app.bsky.feed.generator/{policy}"


def web_did(hostname: str) -> str:
    return "did:web:" + hostname.replace(":", "%3A")


def load_bluesky_settings(raw: dict[str, Any] | None = None) -> BlueskySettings:
    """Merge defaults, the ``[bluesky]`` TOML section and GLASSFEED_BSKY_* env vars."""
    cfg = {**DEFAULTS, **((raw or {}).get("bluesky") or {})}
    for key, var in ENV.items():
        if os.environ.get(var):
            cfg[key] = os.environ[var]
    feeds = cfg["feeds"]
    if isinstance(feeds, str):
        feeds = [f.strip() for f in feeds.split(",") if f.strip()]
    impressions = str(cfg["impressions"])
    if impressions not in ("served", "seen"):
        raise ValueError(f"bluesky.impressions must be 'served' or 'seen', not {impressions!r}")
    service = cfg["service_did"] or web_did(cfg["hostname"])
    return BlueskySettings(
        hostname=str(cfg["hostname"]), service_did=str(service), publisher_did=str(cfg["publisher_did"] or service),
        feeds=tuple(feeds), privacy_policy=str(cfg["privacy_policy"]), terms_of_service=str(cfg["terms_of_service"]),
        keys_file=str(cfg["keys_file"]), plc_url=str(cfg["plc_url"]), strict_low_s=bool(cfg["strict_low_s"]),
        impressions=impressions, jetstream_url=str(cfg["jetstream_url"]),
        cursor_rewind_s=float(cfg["cursor_rewind_s"]),
    )
