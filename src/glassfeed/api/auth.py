"""API-key auth: the service key (writes, any read) and per-user tokens (reads of that user's data).

Keys come as ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``; compared with ``secrets.compare_digest``.
User tokens are stored hashed (``ingest.hash_token``), so a stolen database does not leak them.
"""

from __future__ import annotations

import secrets

from fastapi import HTTPException, Request

from glassfeed.ingest import hash_token


def presented_key(request: Request) -> str | None:
    """The key a request presents, from ``Authorization: Bearer`` or ``X-API-Key``."""
    auth = request.headers.get("authorization")
    if auth:
        scheme, _, value = auth.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    key = request.headers.get("x-api-key")
    return key.strip() if key else None


def _is_service(request: Request, key: str | None) -> bool:
    expected = request.app.state.settings.api_key
    return bool(key and expected and secrets.compare_digest(key.encode(), expected.encode()))


def require_service_key(request: Request) -> None:
    """Dependency for write endpoints: the service API key (settings ``[api] key`` / $GLASSFEED_API_KEY)."""
    key = presented_key(request)
    if request.app.state.settings.api_key is None:
        raise HTTPException(401, "no service API key is configured on the server (set GLASSFEED_API_KEY)")
    if key is None:
        raise HTTPException(401, "missing API key (send 'Authorization: Bearer <key>' or 'X-API-Key')")
    if not _is_service(request, key):
        raise HTTPException(401, "invalid API key")


def require_user_or_service(user_id: str, request: Request) -> int:
    """Dependency for reads of one user's data: that user's token or the service key. Returns the user's idx."""
    key = presented_key(request)
    if key is None:
        raise HTTPException(401, "missing API key or user token (send 'Authorization: Bearer <token>')")
    store = request.app.state.store
    idx = store.user_idx(user_id)
    if _is_service(request, key):
        if idx is None:
            raise HTTPException(404, f"unknown user {user_id!r}")
        return idx
    stored = store.token_hash(idx) if idx is not None else None
    # compare against a dummy when the user is unknown, so timing does not reveal which ids exist
    ok = secrets.compare_digest(hash_token(key).encode(), (stored or "0" * 64).encode())
    if not ok or stored is None:
        raise HTTPException(401, "invalid token for this user")
    return idx


def named_key(request: Request, keys: dict[str, str], role: str) -> str:
    """The name whose key (in ``keys``: name -> key) the request presents, for a role's own keys (moderators,
    advertisers): 401 without a key, 403 for a key that is not one of them (the service key and people's tokens
    are not)."""
    key = presented_key(request)
    if key is None:
        raise HTTPException(401, f"missing {role} key (send 'Authorization: Bearer <key>')")
    for name, expected in keys.items():
        if expected and secrets.compare_digest(key.encode(), expected.encode()):
            return name
    raise HTTPException(403, f"this key is not {'an' if role[0] in 'aeiou' else 'a'} {role} key")
