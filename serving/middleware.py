"""ASGI middleware: refuse oversized bodies (413) and report request validation errors as 422.

BentoML 1.4 answers a pydantic ValidationError on an API's input with 400 (``_bentoml_impl.server.app``); the
body already lists each error with its field path (``loc``), so only the status is rewritten, and only on the
service's own API routes, where nothing else answers 400 (our handlers raise 401/404/413/503 explicitly).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class RequestLimitsMiddleware:
    def __init__(self, app: ASGIApp, api_routes: frozenset[str], max_body_bytes: int | None = None) -> None:
        from cotenant.serving.config import ServiceSettings  # read when the app is built, not at import

        self.app = app
        self.max_body_bytes = max_body_bytes or ServiceSettings.from_env().max_body_bytes
        self.api_routes = api_routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") not in self.api_routes:
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            await self._too_large(send)
            return
        received = 0
        overflowed = False

        async def limited_receive() -> Message:
            nonlocal received, overflowed
            if overflowed:
                return {"type": "http.request", "body": b"", "more_body": False}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    # A chunked body declares no length. BentoML turns exceptions into 500s, so end the body
                    # here instead and replace whatever the app answers to the truncated request with a 413.
                    overflowed = True
                    return {"type": "http.request", "body": b"", "more_body": False}
            return message

        async def rewriting_send(message: Message) -> None:
            if overflowed:
                if message["type"] == "http.response.start":
                    await self._too_large(send)
                return
            if message["type"] == "http.response.start" and message["status"] == 400:
                message = {**message, "status": 422}
            await send(message)

        await self.app(scope, limited_receive, rewriting_send)

    async def _too_large(self, send: Send) -> None:
        body = json.dumps({"error": f"request body larger than {self.max_body_bytes} bytes"}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
