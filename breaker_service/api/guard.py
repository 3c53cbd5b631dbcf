"""``BodyGuard``: the token and the size are checked before any body byte is read.

FastAPI resolves a route's dependencies, the token check among them, only after it
has parsed the body: an unauthenticated client could make the server spool a
multipart upload to disk or hold a huge JSON body in memory before its 401. This
ASGI layer sits in front of the routes. For each body-carrying route it knows the
scope and the body limit, and it

- answers 401/403 from the headers alone when the route needs a token;
- answers 413 at once when ``Content-Length`` is over the limit;
- counts the bytes of the body as the app reads them and cuts it at the limit
  (413, and the app sees a disconnect), so a chunked body cannot exceed it either.

The routes still check tokens themselves (the guard is the first line, not the
only one). Paths it does not know get the small default limit.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .auth import AuthError, TokenVerifier
from .problems import problem

__all__ = ["BodyGuard", "GuardRule"]

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@dataclass(frozen=True, slots=True)
class GuardRule:
    """What a body-carrying route needs: ``method`` + ``path`` (a regex), scope, limit."""

    method: str
    path: str
    scope: str | None
    limit: int

    def matches(self, method: str, path: str) -> bool:
        """Whether this rule covers the request."""
        return method == self.method and re.fullmatch(self.path, path) is not None


class BodyGuard:
    """ASGI middleware: auth from headers, then a counted, capped body."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        verifier: TokenVerifier,
        rules: Sequence[GuardRule],
        default_limit: int,
    ) -> None:
        self.app = app
        self.verifier = verifier
        self.rules = tuple(rules)
        self.default_limit = default_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in _BODY_METHODS:
            await self.app(scope, receive, send)
            return
        method, path = scope["method"], scope["path"]
        rule = next((r for r in self.rules if r.matches(method, path)), None)
        limit = rule.limit if rule is not None else self.default_limit
        headers = {k.lower(): v for k, v in scope.get("headers", [])}
        if rule is not None and rule.scope is not None:
            authorization = headers.get(b"authorization")
            try:
                principal = self.verifier.verify(
                    authorization.decode("latin-1") if authorization else None
                )
                principal.require(rule.scope)
            except AuthError as exc:
                await self._refuse_auth(exc, scope, receive, send)
                return
        declared = headers.get(b"content-length")
        if declared is not None and _over(declared, limit):
            await _too_large(limit, scope, receive, send)
            return
        await self._counted(limit, scope, receive, send)

    async def _refuse_auth(
        self, exc: AuthError, scope: Scope, receive: Receive, send: Send
    ) -> None:
        headers = {"Connection": "close"}  # the body is never read
        if exc.status == 401:
            headers["WWW-Authenticate"] = 'Bearer realm="breaker-service"'
        kind = "unauthorized" if exc.status == 401 else "forbidden"
        response = problem(exc.status, kind, str(exc), headers)
        await response(scope, receive, send)

    async def _counted(
        self, limit: int, scope: Scope, receive: Receive, send: Send
    ) -> None:
        read = 0
        refused = False
        started = False

        async def counted_receive() -> Message:
            nonlocal read, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                read += len(message.get("body", b""))
                if read > limit:
                    refused = True
                    if not started:
                        await _too_large(limit, scope, receive, send)
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if refused:
                return  # the 413 was sent; whatever the app answers now is dropped
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        await self.app(scope, counted_receive, guarded_send)


def _over(declared: bytes, limit: int) -> bool:
    try:
        return int(declared) > limit
    except ValueError:
        return True  # an unreadable length is refused like an oversized one


async def _too_large(limit: int, scope: Scope, receive: Receive, send: Send) -> None:
    response = problem(
        413,
        "body-too-large",
        f"the request body exceeds the limit of {limit} bytes for this route",
        {"Connection": "close"},
        limit=limit,
    )
    await response(scope, receive, send)
