"""XRPC routes of a Bluesky feed generator: did.json, describeFeedGenerator, getFeedSkeleton, sendInteractions.

Every policy is published as ``at://<publisher>/app.bsky.feed.generator/<policy>``. Pages come from
``FeedService.feed`` (personalised when the JWT's DID is a known user, else the non-personalised feed); each
item's ``feedContext`` is its explanation's short reason and ``reqId`` is the page's request id, so interactions
sent back join the served page. Errors are always XRPC JSON ``{error, message}``.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from glassfeed.bluesky.errors import XrpcError, auth_required, invalid_request
from glassfeed.bluesky.jwt import Claims, JwtRules, verify_jwt
from glassfeed.bluesky.keys import KeyResolver, NetworkKeyResolver, StaticKeyResolver
from glassfeed.bluesky.records import has_engagement, parse_at_uri, repost_record_uri
from glassfeed.bluesky.settings import BlueskySettings, load_bluesky_settings
from glassfeed.domain import EventKind
from glassfeed.feed.service import FeedError, FeedService
from glassfeed.ingest import IngestError

GET_SKELETON = "app.bsky.feed.getFeedSkeleton"
DESCRIBE = "app.bsky.feed.describeFeedGenerator"
SEND_INTERACTIONS = "app.bsky.feed.sendInteractions"
METHODS = {GET_SKELETON: "GET", DESCRIBE: "GET", SEND_INTERACTIONS: "POST"}
CURSOR_SEP = "~"
_DIGITS = re.compile(r"-?[0-9]{1,9}")
MAX_CONTEXT = 2000
MAX_REQ_ID = 100

#: app.bsky.feed.defs interaction events -> glassfeed event kinds
INTERACTIONS: dict[str, EventKind] = {
    "app.bsky.feed.defs#requestLess": EventKind.SEE_LESS,
    "app.bsky.feed.defs#requestMore": EventKind.SEE_MORE,
    "app.bsky.feed.defs#interactionSeen": EventKind.IMPRESSION,
    "app.bsky.feed.defs#interactionLike": EventKind.LIKE,
    "app.bsky.feed.defs#interactionRepost": EventKind.REPOST,
    "app.bsky.feed.defs#interactionReply": EventKind.REPLY,
    "app.bsky.feed.defs#interactionQuote": EventKind.QUOTE,
    "app.bsky.feed.defs#interactionShare": EventKind.SHARE,
    "app.bsky.feed.defs#clickthroughItem": EventKind.CLICK,
    "app.bsky.feed.defs#clickthroughAuthor": EventKind.CLICK,
    "app.bsky.feed.defs#clickthroughReposter": EventKind.CLICK,
    "app.bsky.feed.defs#clickthroughEmbed": EventKind.CLICK,
}
_ERROR_SCHEMA = {
    "type": "object",
    "required": ["error", "message"],
    "properties": {"error": {"type": "string"}, "message": {"type": "string"}},
}
_ERROR = {"content": {"application/json": {"schema": _ERROR_SCHEMA}}}


#: what the XRPC routes read by hand (to answer XRPC errors, not FastAPI's 422), documented for OpenAPI clients
def skeleton_openapi(feed_uris: list[str]) -> dict[str, Any]:
    """The getFeedSkeleton operation's parameters and errors; ``feed`` is one of this generator's feeds."""
    feed = {"type": "string", "format": "at-uri", "enum": feed_uris} if feed_uris else {"type": "string"}
    return {**SKELETON_OPENAPI, "parameters": [{**SKELETON_OPENAPI["parameters"][0], "schema": feed},
                                               *SKELETON_OPENAPI["parameters"][1:]]}  # fmt: skip


SKELETON_OPENAPI: dict[str, Any] = {
    "parameters": [
        {"name": "feed", "in": "query", "required": True, "schema": {"type": "string", "format": "at-uri"}},
        {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 100, "default": 50}},
        {"name": "cursor", "in": "query", "schema": {"type": "string"}},
    ],
    "responses": {
        "400": {"description": "InvalidRequest or UnknownFeed", **_ERROR},
        "401": {"description": "a Bearer token was sent and is invalid (BadJwt...)", **_ERROR},
        "429": {"description": "too many anonymous requests (see Retry-After)", **_ERROR},
    },
}
INTERACTIONS_OPENAPI: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["interactions"],
                    "properties": {
                        "feed": {"type": "string", "format": "at-uri"},
                        "interactions": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "properties": {
                                    "item": {"type": "string", "format": "at-uri"},
                                    "event": {"type": "string"},
                                    "feedContext": {"type": "string", "maxLength": MAX_CONTEXT},
                                    "reqId": {"type": "string", "maxLength": MAX_REQ_ID},
                                },
                            },
                        },
                    },
                }
            }
        },
    },
    "responses": {
        "400": {"description": "InvalidRequest", **_ERROR},
        "401": {"description": "no valid service JWT (AuthenticationRequired, BadJwt...)", **_ERROR},
    },
}
#: public records that Jetstream also delivers: an interaction only adds one when none is stored yet
RECORD_KINDS = frozenset({EventKind.LIKE, EventKind.REPOST, EventKind.REPLY, EventKind.QUOTE})


class FeedGenerator:
    """The feed generator bound to one app: settings, key resolver, FeedService."""

    def __init__(self, svc: FeedService, settings: BlueskySettings, resolver: KeyResolver) -> None:
        self.svc, self.settings, self.resolver = svc, settings, resolver
        self.rules = JwtRules.from_settings(settings)
        unknown = [f for f in settings.feeds if f not in svc.policies]
        if unknown:
            raise ValueError(f"bluesky.feeds names unknown policies {unknown}; known: {', '.join(svc.policies)}")

    @property
    def feeds(self) -> list[str]:
        return list(self.settings.feeds or self.svc.policies)

    # ------------------------------------------------------------------ auth
    def requester(self, request: Request, method: str) -> Claims | None:
        """Verified claims of the Bearer JWT; None when there is none; a 401 XrpcError when invalid.

        Blocking (the key may be fetched over the network): the routes call it from a worker thread."""
        auth = request.headers.get("authorization")
        if not auth:
            return None
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise auth_required("Authorization must be 'Bearer <jwt>'", "BadJwt")
        return verify_jwt(
            token.strip(),
            audience=self.settings.service_did,
            lxm=method,
            resolver=self.resolver,
            rules=self.rules,
        )

    # ------------------------------------------------------------------ documents
    def did_document(self) -> dict[str, Any]:
        return did_document(self.settings)

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "did": self.settings.service_did,
            "feeds": [{"uri": self.settings.feed_uri(f)} for f in self.feeds],
        }
        links = {
            k: v
            for k, v in (
                ("privacyPolicy", self.settings.privacy_policy),
                ("termsOfService", self.settings.terms_of_service),
            )
            if v
        }
        if links:
            out["links"] = links
        return out

    # ------------------------------------------------------------------ getFeedSkeleton
    def policy_of(self, feed: str | None) -> str:
        if not feed:
            raise invalid_request('Params must have the property "feed"')
        parsed = parse_at_uri(feed)
        if parsed is None:
            raise invalid_request("feed must be a valid at-uri")
        did, collection, rkey = parsed
        if did != self.settings.publisher_did or collection != "app.bsky.feed.generator" or rkey not in self.feeds:
            raise XrpcError(400, "UnknownFeed", f"Unknown feed: {feed}")
        return rkey

    def skeleton(self, params: dict[str, str], claims: Claims | None) -> dict[str, Any]:
        policy = self.policy_of(params.get("feed"))
        limit = _limit(params.get("limit"))
        inner = None
        if params.get("cursor"):
            owner, sep, inner = params["cursor"].rpartition(CURSOR_SEP)
            if not sep or owner != policy:
                raise invalid_request("malformed cursor (it belongs to another feed or was altered)")
        store = self.svc.store
        user = claims.iss if claims is not None and store.user_idx(claims.iss) is not None else None
        try:
            page = self.svc.feed(
                user,
                policy=policy,
                limit=limit,
                cursor=inner,
                surface="bluesky",
                log_impressions=self.settings.impressions == "served",
            )
        except FeedError as e:
            raise invalid_request(f"{e.field}: {e.reason}") from None
        feed = []
        for item in page["items"]:
            entry: dict[str, Any] = {"post": item["post"]}
            if item.get("repost_by"):
                uri = repost_record_uri(store, item["repost_by"], store.post_idx(item["post"]) or 0)
                if uri:
                    entry["reason"] = {"$type": "app.bsky.feed.defs#skeletonReasonRepost", "repost": uri}
            if item.get("reason"):
                entry["feedContext"] = str(item["reason"])[:MAX_CONTEXT]
            feed.append(entry)
        out: dict[str, Any] = {"feed": feed, "reqId": str(page["request_id"])[:MAX_REQ_ID]}
        if page.get("cursor"):
            out["cursor"] = f"{policy}{CURSOR_SEP}{page['cursor']}"
        return out

    # ------------------------------------------------------------------ sendInteractions
    def interactions(self, body: Any, claims: Claims) -> dict[str, Any]:
        """Record the requester's interactions as glassfeed events (idempotent: ids derive from the content).

        A requester glassfeed has never seen (no Jetstream record yet) is created only when
        ``create_users_from_interactions`` is set; otherwise the interactions are validated and skipped."""
        if not isinstance(body, dict) or not isinstance(body.get("interactions"), list):
            raise invalid_request('Input must have the property "interactions"')
        feed = body.get("feed")
        surface = "bluesky"
        if feed is not None:
            parsed = parse_at_uri(feed)
            if parsed is None:
                raise invalid_request("Input/feed must be a valid at-uri")
            surface = f"bluesky:{parsed[2]}"[:64]
        checked = [_check_interaction(i, x) for i, x in enumerate(body["interactions"])]
        ing = self.svc.ingestor
        store = self.svc.store
        did = claims.iss
        if store.user_idx(did) is None:
            if not self.settings.create_users_from_interactions:
                return {}
            ing.create_users([{"id": did}], skip_existing=True, with_tokens=False)
        user = store.user_idx(did)
        now = ing.clock()
        events = []
        for item, event, req in checked:
            kind = INTERACTIONS.get(event or "")
            post = store.post_idx(item) if item else None
            if kind is None or post is None:
                continue  # unknown event type (open union) or a post glassfeed never stored
            if kind is EventKind.IMPRESSION and self.settings.impressions == "served":
                continue  # the served page already logged this impression
            if kind in RECORD_KINDS and has_engagement(store, user, post, kind):  # type: ignore[arg-type]
                continue  # Jetstream already delivered the record itself
            key = hashlib.sha256(f"{did}|{item}|{event}|{req}".encode()).hexdigest()[:40]
            ev = {"id": f"bsky:ix:{key}", "kind": kind.wire, "user": did, "post": item, "ts": now, "surface": surface}
            if req:
                ev["request_id"] = req
            events.append(ev)
        if events:
            try:
                ing.ingest_events(events)
            except IngestError as e:
                raise invalid_request(str(e)) from None
        return {}


def did_document(settings: BlueskySettings) -> dict[str, Any]:
    """The did:web document that points Bluesky at this feed generator."""
    return {
        "@context": ["https://www.w3.org/ns/did/v1"],
        "id": settings.service_did,
        "service": [{"id": "#bsky_fg", "type": "BskyFeedGenerator", "serviceEndpoint": f"https://{settings.hostname}"}],
    }


def _limit(raw: str | None) -> int:
    """The ``limit`` parameter: absent is 50; else decimal digits (not ``""``, ``+5`` or ``5_0``) in [1, 100]."""
    if raw is None:
        return 50
    if not _DIGITS.fullmatch(raw):
        raise invalid_request("limit must be an integer")
    limit = int(raw)
    if not 1 <= limit <= 100:
        raise invalid_request("limit must be between 1 and 100")
    return limit


def _check_interaction(i: int, x: Any) -> tuple[str | None, str | None, str | None]:
    where = f"Input/interactions/{i}"
    if not isinstance(x, dict):
        raise invalid_request(f"{where} must be an object")
    item, event, ctx, req = x.get("item"), x.get("event"), x.get("feedContext"), x.get("reqId")
    if item is not None and parse_at_uri(item) is None:
        raise invalid_request(f"{where}/item must be a valid at-uri")
    if event is not None and not isinstance(event, str):
        raise invalid_request(f"{where}/event must be a string")
    if ctx is not None and (not isinstance(ctx, str) or len(ctx) > MAX_CONTEXT):
        raise invalid_request(f"{where}/feedContext must be a string of at most {MAX_CONTEXT} characters")
    if req is not None and (not isinstance(req, str) or len(req) > MAX_REQ_ID):
        raise invalid_request(f"{where}/reqId must be a string of at most {MAX_REQ_ID} characters")
    return item, event, req


def _gen(request: Request) -> FeedGenerator:
    return request.app.state.bluesky


async def _xrpc_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, XrpcError)
    return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)


#: Statuses the XRPC routes answer with an XRPC error body (``{error, message}``), not the API's ``ErrorOut``.
XRPC_ERROR_STATUSES = ("400", "401", "429")


def _document_xrpc_errors(app: FastAPI) -> None:
    """Make ``app.openapi()`` give the XRPC operations' error answers the XRPC body: the app-wide responses
    (``api.schemas.APP_RESPONSES``, e.g. 429) would otherwise be merged into them as ``ErrorOut``."""
    base = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        spec = base()
        for path, ops in spec.get("paths", {}).items():
            if not path.startswith("/xrpc/"):
                continue
            for op in ops.values():
                for code in XRPC_ERROR_STATUSES:
                    if code in op.get("responses", {}):
                        op["responses"][code] = {"description": op["responses"][code].get("description", ""), **_ERROR}
        return spec

    app.openapi = openapi  # type: ignore[method-assign]


def make_resolver(settings: BlueskySettings) -> KeyResolver:
    """Offline table from ``keys_file`` when set, else DID documents over the network (hardened resolver)."""
    if settings.keys_file:
        return StaticKeyResolver.from_file(settings.keys_file)
    return NetworkKeyResolver(settings)


def install(app: FastAPI, resolver: KeyResolver | None = None) -> None:
    """Add the feed-generator routes to an app that has ``app.state.feed`` (idempotent)."""
    if getattr(app.state, "bluesky", None) is not None:
        return
    svc = getattr(app.state, "feed", None)
    if svc is None:
        raise RuntimeError("glassfeed.bluesky.install needs app.state.feed (install the feed routes first)")
    settings = load_bluesky_settings(app.state.settings.bluesky)
    app.state.bluesky = FeedGenerator(svc, settings, resolver or make_resolver(settings))
    app.add_exception_handler(XrpcError, _xrpc_error)

    @app.get("/.well-known/did.json", tags=["bluesky"], include_in_schema=True)
    def did_json(request: Request) -> JSONResponse:
        gen = _gen(request)
        if not gen.settings.service_did.startswith("did:web:"):
            raise XrpcError(404, "NotFound", "this feed generator's DID is not a did:web")
        return JSONResponse(gen.did_document())

    @app.get(f"/xrpc/{DESCRIBE}", tags=["bluesky"])
    def describe(request: Request) -> dict[str, Any]:
        return _gen(request).describe()

    feed_uris = [app.state.bluesky.settings.feed_uri(name) for name in app.state.bluesky.feeds]
    _document_xrpc_errors(app)

    @app.get(f"/xrpc/{GET_SKELETON}", tags=["bluesky"], openapi_extra=skeleton_openapi(feed_uris))
    def get_feed_skeleton(request: Request) -> dict[str, Any]:
        """A page of post URIs for ``feed`` (policy), personalised when a valid service JWT names a known user."""
        # a plain ``def`` route: FastAPI runs it in its worker threads, so key resolution never blocks the loop
        gen = _gen(request)
        params = dict(request.query_params)
        gen.policy_of(params.get("feed"))  # unknown feeds fail before any auth work
        return gen.skeleton(params, gen.requester(request, GET_SKELETON))

    @app.post(f"/xrpc/{SEND_INTERACTIONS}", tags=["bluesky"], openapi_extra=INTERACTIONS_OPENAPI)
    async def send_interactions(request: Request) -> dict[str, Any]:
        gen = _gen(request)
        claims = await run_in_threadpool(gen.requester, request, SEND_INTERACTIONS)
        if claims is None:
            raise auth_required()
        try:
            body = await run_in_threadpool(json.loads, await request.body() or b"null")  # off the event loop
        except ValueError:
            raise invalid_request("request body is not valid JSON") from None
        return await run_in_threadpool(gen.interactions, body, claims)

    @app.api_route("/xrpc/{nsid}", methods=["GET", "POST"], include_in_schema=False)
    def xrpc_fallback(nsid: str, request: Request) -> None:
        if nsid in METHODS:  # the reference answers 400 InvalidRequest; HTTP's 405 with Allow tells a client more
            raise XrpcError(
                405,
                "InvalidRequest",
                f"Incorrect HTTP method ({request.method}) expected {METHODS[nsid]}",
                headers={"Allow": METHODS[nsid]},
            )
        raise XrpcError(501, "MethodNotImplemented", "Method Not Implemented")

    @app.api_route("/xrpc/{nsid}", methods=["PUT", "DELETE", "PATCH", "OPTIONS"], include_in_schema=False)
    def xrpc_wrong_verb(nsid: str, request: Request) -> None:
        allow = METHODS.get(nsid, "GET, POST")
        raise XrpcError(
            405, "MethodNotAllowed", f"XRPC uses GET and POST only, not {request.method}", headers={"Allow": allow}
        )
