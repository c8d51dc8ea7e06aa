"""A bound on request bodies, as plain ASGI middleware in front of the API.

A body over the bound is answered ``413 {"detail": …}`` (:class:`~.errors.BodyTooLarge`) without being
read: a ``Content-Length`` over it is refused before the app sees the request, and a body without one
(chunked) is counted as it arrives and refused as soon as it passes the bound. The server so holds at
most the bound plus one chunk of any request, whatever the caller sends. The biggest legitimate body (a
verification with 50 readings, a base with 50 alert limits) is a few kB; ``zhijian device import``
sends one request per row, so no operation needs more.
"""

from __future__ import annotations

import json

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import BodyTooLarge

MAX_BODY_BYTES = 1024 * 1024  # 1 MiB: ZHIJIAN_API_MAX_BODY_BYTES


class BodyLimit:
    """Refuse request bodies larger than ``max_bytes`` with 413, reading no more than that of them."""

    def __init__(self, app: ASGIApp, *, max_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(send)
            return
        seen = 0
        over = started = False

        async def counted() -> Message:
            nonlocal seen, over
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    over = True
                    raise BodyTooLarge(self._reason())
            return message

        async def guarded(message: Message) -> None:
            nonlocal started
            if over:  # whatever the app makes of a cut body, the caller hears why it was cut
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, guarded)
        except Exception:
            if not over:
                raise
        if over and not started:
            await self._refuse(send)

    def _reason(self) -> str:
        return f"the request body is larger than {self.max_bytes} bytes"

    async def _refuse(self, send: Send) -> None:
        exc = BodyTooLarge(self._reason())
        body = json.dumps({"detail": str(exc)}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        # the rest of the body is not read: the connection cannot carry another request after this answer
        headers.append((b"connection", b"close"))
        await send({"type": "http.response.start", "status": exc.status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
