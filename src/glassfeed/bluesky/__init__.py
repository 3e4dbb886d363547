"""glassfeed as a Bluesky feed generator: XRPC routes, service-JWT auth, Jetstream ingest (see docs/bluesky.md)."""
