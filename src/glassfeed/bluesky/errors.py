"""XRPC errors: every failure on the Bluesky routes answers ``{"error": Name, "message": text}`` (atproto style)."""

from __future__ import annotations


class XrpcError(Exception):
    """An XRPC error with its HTTP status and atproto error name (e.g. 400 ``UnknownFeed``, 401 ``BadJwt``)."""

    def __init__(self, status: int, error: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(f"{error}: {message}")
        self.status, self.error, self.message = status, error, message
        self.headers = headers

    def body(self) -> dict[str, str]:
        return {"error": self.error, "message": self.message}


def invalid_request(message: str, error: str = "InvalidRequest") -> XrpcError:
    return XrpcError(400, error, message)


def auth_required(message: str = "Authentication Required", error: str = "AuthenticationRequired") -> XrpcError:
    return XrpcError(401, error, message)
