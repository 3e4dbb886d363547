"""Jetstream for the tests: messages in the documented shape (as in fixtures/jetstream_sample.jsonl) and a real
local websocket server (``websockets``, in a thread on 127.0.0.1, a free port) that answers each connection with
a plan of the test's choosing and records the URLs it was asked for."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

from websockets.exceptions import ConnectionClosed
from websockets.sync.server import Server, ServerConnection, serve

POST, FOLLOW = "app.bsky.feed.post", "app.bsky.graph.follow"
CID = "bafyreib000000000000000000000000000000000000000000000000000"


def iso(time_us: int) -> str:
    return datetime.fromtimestamp(time_us / 1e6, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def commit(did: str, time_us: int, collection: str, rkey: str, record: dict[str, Any]) -> dict[str, Any]:
    return {
        "did": did,
        "time_us": time_us,
        "kind": "commit",
        "commit": {
            "rev": f"3l{rkey}",
            "operation": "create",
            "collection": collection,
            "rkey": rkey,
            "record": {"$type": collection, **record},
            "cid": CID,
        },
    }


def post(did: str, rkey: str, time_us: int, text: str = "hello") -> dict[str, Any]:
    return commit(did, time_us, POST, rkey, {"text": text, "createdAt": iso(time_us), "langs": ["en"]})


def follow(did: str, subject: str, rkey: str, time_us: int) -> dict[str, Any]:
    return commit(did, time_us, FOLLOW, rkey, {"subject": subject, "createdAt": iso(time_us)})


def post_uri(did: str, rkey: str) -> str:
    return f"at://{did}/{POST}/{rkey}"


def cursor_of(path: str) -> int | None:
    """The ``cursor`` query parameter of a request path (``None`` without one)."""
    values = parse_qs(urlsplit(path).query).get("cursor")
    return int(values[0]) if values else None


#: A plan for one connection: called with the connection, its number (from 0) and the requested cursor.
Plan = Callable[[ServerConnection, int, "int | None"], None]


class JetstreamServer:
    """``ws://127.0.0.1:<port>/subscribe``: connection i runs ``plans[min(i, len(plans) - 1)]``; ``paths``
    records each request's path (with its query), in order."""

    def __init__(self, plans: list[Plan]) -> None:
        self.plans = plans
        self.paths: list[str] = []
        self.connected = threading.Event()
        self._lock = threading.Lock()
        self._server: Server = serve(self._handle, "127.0.0.1", 0)
        self.port = self._server.socket.getsockname()[1]
        self.url = f"ws://127.0.0.1:{self.port}/subscribe"
        self._thread = threading.Thread(target=self._server.serve_forever, name="jetstream-test", daemon=True)
        self._thread.start()

    def _handle(self, ws: ServerConnection) -> None:
        path = ws.request.path if ws.request is not None else ""
        with self._lock:
            n = len(self.paths)
            self.paths.append(path)
        self.connected.set()
        self.plans[min(n, len(self.plans) - 1)](ws, n, cursor_of(path))

    def close(self) -> None:
        self._server.shutdown()
        self._thread.join(10)

    def __enter__(self) -> JetstreamServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def send_from(messages: list[dict[str, Any]], ws: ServerConnection, cursor: int | None) -> int:
    """Send the messages at or after ``cursor`` (all without one), as Jetstream replays; returns how many."""
    sent = 0
    for m in messages:
        if cursor is None or m["time_us"] >= cursor:
            ws.send(json.dumps(m))
            sent += 1
    return sent


def hold_open(ws: ServerConnection) -> None:
    """Keep the connection until the client closes it (or the server shuts down)."""
    with contextlib.suppress(ConnectionClosed):
        for _ in ws:
            pass
