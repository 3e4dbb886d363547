"""Bluesky feed-generator settings: the ``[bluesky]`` settings section with the DIDs it implies filled in.

Every value (and its ``GLASSFEED_BSKY_*`` environment alias) is read and validated by ``glassfeed.settings``;
``defaults.toml`` is the one place the defaults are written, so that ``install(app)`` works with no
configuration (a local did:web on localhost publishing every policy).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from glassfeed.settings import BlueskySection, packaged_settings


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
    impressions: Literal["served", "seen"]  # "served": log impressions when a page is served; "seen": on
    #                                         interactionSeen only
    jetstream_url: str
    cursor_rewind_s: float  # resume Jetstream this many seconds before the saved cursor (replays are no-ops)
    ingest_batch: int  # Jetstream messages per transaction ...
    flush_interval_s: float  # ... or fewer, once the oldest waiting message is this old
    reconnect_min_s: float  # first delay after a dropped connection; doubles per failure (with jitter) ...
    reconnect_max_s: float  # ... up to this
    reconnect_healthy_s: float  # a connection that lasted this long resets the backoff
    open_timeout_s: float  # connecting may take this long
    max_message_bytes: int  # websocket max_size
    stats_interval_s: float  # the consumer logs its totals this often
    prune_interval_s: float  # with [store] retention_days > 0, the consumer prunes this often
    allowed_did_methods: frozenset[str]  # JWT issuer DID methods accepted ("plc", "web", "key")
    create_users_from_interactions: bool  # sendInteractions from an unknown DID creates the user (else skipped)
    max_token_lifetime_s: float  # exp at most this far ahead of now
    clock_skew_s: float  # iat at most this far ahead of now
    resolver_timeout_s: float  # total time for one DID-document fetch
    resolver_concurrency: int  # DID-document fetches at once
    resolver_wait_s: float  # how long a request waits for a free fetch slot before it is refused
    did_document_max_bytes: int
    key_cache_size: int  # LRU bound of the DID -> key cache (failures included)
    key_cache_ttl_s: float
    key_failure_ttl_s: float  # negative cache: a failed or keyless DID is not fetched again for this long
    key_refresh_min_s: float  # a bad signature refetches a DID's key at most this often

    def feed_uri(self, policy: str) -> str:
        return f"at://{self.publisher_did}/app.bsky.feed.generator/{policy}"


def web_did(hostname: str) -> str:
    return "did:web:" + hostname.replace(":", "%3A")


def load_bluesky_settings(section: BlueskySection | None = None) -> BlueskySettings:
    """The feed generator's settings from ``section`` (a ``Settings.bluesky``; default: the packaged one): the
    service DID defaults to ``did:web:<hostname>``, the publisher DID to the service DID."""
    b = section or packaged_settings().bluesky
    service = b.service_did or web_did(b.hostname)
    return BlueskySettings(
        hostname=b.hostname,
        service_did=service,
        publisher_did=b.publisher_did or service,
        feeds=b.feeds,
        privacy_policy=b.privacy_policy,
        terms_of_service=b.terms_of_service,
        keys_file=b.keys_file,
        plc_url=b.plc_url,
        strict_low_s=b.strict_low_s,
        impressions=b.impressions,
        jetstream_url=b.jetstream_url,
        cursor_rewind_s=b.cursor_rewind_s,
        ingest_batch=b.ingest_batch,
        flush_interval_s=b.flush_interval_s,
        reconnect_min_s=b.reconnect_min_s,
        reconnect_max_s=b.reconnect_max_s,
        reconnect_healthy_s=b.reconnect_healthy_s,
        open_timeout_s=b.open_timeout_s,
        max_message_bytes=b.max_message_bytes,
        stats_interval_s=b.stats_interval_s,
        prune_interval_s=b.prune_interval_s,
        allowed_did_methods=frozenset(b.allowed_did_methods),
        create_users_from_interactions=b.create_users_from_interactions,
        max_token_lifetime_s=b.max_token_lifetime_s,
        clock_skew_s=b.clock_skew_s,
        resolver_timeout_s=b.resolver_timeout_s,
        resolver_concurrency=b.resolver_concurrency,
        resolver_wait_s=b.resolver_wait_s,
        did_document_max_bytes=b.did_document_max_bytes,
        key_cache_size=b.key_cache_size,
        key_cache_ttl_s=b.key_cache_ttl_s,
        key_failure_ttl_s=b.key_failure_ttl_s,
        key_refresh_min_s=b.key_refresh_min_s,
    )
