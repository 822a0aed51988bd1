"""ASGI middleware: refuse oversized bodies (413) and bodies that are not JSON (415), report request
validation errors as 422, give every error one shape, and publish the contract (``contract.py``) in the
OpenAPI document.

BentoML 1.4 answers a pydantic ValidationError on an API's input with 400 (``_bentoml_impl.server.app``); the
body already lists each error with its field path (``loc``), so only the status is rewritten, and only on the
service's own API routes, where nothing else answers 400 (our handlers raise 401/404/413/503 explicitly).
Error bodies are made ``{"error": ..., "detail"?: [...]}`` (BentoML wraps some in a list); ``/docs.json`` gets
every status each operation can answer.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from cotenant.serving.contract import canonical_error, patch_openapi, reason_box

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
        if scope["type"] == "http" and scope.get("path") == "/docs.json":
            await self._patched_document(scope, receive, send)
            return
        if scope["type"] != "http" or scope.get("path") not in self.api_routes:
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        media_type = headers.get(b"content-type", b"").split(b";")[0].strip().lower().decode("latin-1")
        if media_type and not is_json(media_type):
            # BentoML would parse a multipart body as a form, and fail with a 500 on a malformed one.
            message = f"Content-Type {media_type!r} is not accepted; send the body as application/json"
            await _send_error(send, 415, message)
            return
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

        error_start: Message | None = None
        error_body = bytearray()
        unavailable = reason_box()  # this request's 503 reason, if the service raises one

        async def rewriting_send(message: Message) -> None:
            nonlocal error_start
            if overflowed:
                if message["type"] == "http.response.start":
                    await self._too_large(send)
                return
            if message["type"] == "http.response.start" and message["status"] >= 400:
                error_start = {**message, "status": 422 if message["status"] == 400 else message["status"]}
                return
            if error_start is not None and message["type"] == "http.response.body":
                error_body.extend(message.get("body", b""))
                if not message.get("more_body"):
                    if error_start["status"] == 503 and "error" in unavailable:
                        error_body[:] = json.dumps(unavailable).encode()
                    await _send_json(send, error_start, canonical_error(bytes(error_body)))
                return
            await send(message)

        await self.app(scope, limited_receive, rewriting_send)

    async def _patched_document(self, scope: Scope, receive: Receive, send: Send) -> None:
        start: Message | None = None
        body = bytearray()

        async def capture(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
            elif message["type"] == "http.response.body":
                body.extend(message.get("body", b""))
                if not message.get("more_body") and start is not None:
                    if start["status"] != 200:
                        await send(start)
                        await send({"type": "http.response.body", "body": bytes(body)})
                        return
                    document = patch_openapi(json.loads(body), self.api_routes)
                    await _send_json(send, start, json.dumps(document).encode())

        await self.app(scope, receive, capture)

    async def _too_large(self, send: Send) -> None:
        await _send_error(send, 413, f"request body larger than {self.max_body_bytes} bytes")


def is_json(media_type: str) -> bool:
    """``application/json`` or a structured-syntax JSON type (``application/merge-patch+json``)."""
    return media_type == "application/json" or (
        media_type.startswith("application/") and media_type.endswith("+json")
    )


async def _send_error(send: Send, status: int, message: str) -> None:
    await _send_json(
        send, {"type": "http.response.start", "status": status}, json.dumps({"error": message}).encode()
    )


async def _send_json(send: Send, start: Message, body: bytes) -> None:
    """``start``'s status with a JSON ``body`` (its length and type set anew; other headers kept)."""
    headers = [
        (name, value)
        for name, value in start.get("headers", [])
        if name.lower() not in (b"content-length", b"content-type")
    ]
    headers += [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": start["status"], "headers": headers})
    await send({"type": "http.response.body", "body": body})
