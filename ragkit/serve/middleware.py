"""Two plain ASGI middlewares: `Guard` (body size, API key) and `Observe` (metrics, access log).

Plain ASGI rather than FastAPI's `@app.middleware("http")`: that wrapper reads the connection for
the route, which then cannot see a client leave (and so could not drop its queued texts).
"""

from __future__ import annotations

import hmac
import logging
import time

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ragkit.serve.errors import ApiError, error_response
from ragkit.serve.state import ServerState

access_log = logging.getLogger("ragkit.serve.access")


class Guard:
    """Refuse a request over the size limit or without the API key before any body is read."""

    def __init__(self, app: ASGIApp, state: ServerState) -> None:
        self.app, self.state = app, state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and (refusal := self.refusal(Request(scope))):
            await error_response(refusal)(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def refusal(self, request: Request) -> ApiError | None:
        """Why `request` is refused before its body is read (no key, a body too large ...), or None."""
        config = self.state.config
        if request.method == "POST":
            length = request.headers.get("content-length")
            if length is None or not length.isdigit():
                return ApiError(411, "send a Content-Length header with the request body")
            if int(length) > config.max_request_bytes:
                return ApiError(
                    413, f"request body of {length} bytes is over the limit of {config.max_request_bytes}"
                )
        if config.api_key and request.url.path.startswith("/v1/"):
            sent = request.headers.get("authorization", "")
            if not hmac.compare_digest(sent.encode(), f"Bearer {config.api_key}".encode()):
                return ApiError(
                    401, "missing or wrong API key: send 'Authorization: Bearer KEY'", "authentication_error"
                )
        return None


class Observe:
    """Count and time every request by route template and status; log one line each if asked."""

    def __init__(self, app: ASGIApp, state: ServerState) -> None:
        self.app, self.state = app, state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start, status = time.perf_counter(), 500  # 500 unless a response starts

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            seconds = time.perf_counter() - start
            route = getattr(scope.get("route"), "path", "other")  # the router set it, if one matched
            self.state.metrics.observe_request(scope["method"], route, status, seconds)
            if self.state.config.access_log:
                access_log.info("%s %s %d %.1f ms", scope["method"], scope["path"], status, seconds * 1000)
