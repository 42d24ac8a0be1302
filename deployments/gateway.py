"""The authorizing ASGI layer around Prefect's own server app (API + UI), served by ``imageport server``.

Every request under ``/api`` is authenticated (HTTP basic: ``user:password``, what Prefect's client
sends for ``PREFECT_API_AUTH_STRING`` and what the UI's login form stores), matched to the route
templates of the wrapped app's OpenAPI document, and decided by ``imageport.access.allow_list``
before Prefect sees it. The UI's static files and ``/ui-settings`` stay public (the login page must
load); ``/ui-settings`` is answered with ``auth: BASIC`` so the UI shows its login form.
Non-administrators get the redacted view of an answer where ``imageport.access.views`` has one
(the server settings), and are refused the data of the UI's administrator pages
(``imageport.access.ui_pages``).

Bodies are read only where a rule looks at them (``include_secrets``, a run's new state) or the
gateway rewrites them (the ``imageport-by:`` tag on runs created); the exact bytes checked are
the bytes Prefect receives. Every state-changing call is logged with its identity on
``imageport.audit``, and every refusal too.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from imageport.access import audit, views
from imageport.access.allow_list import POLICY
from imageport.access.identity import IdentityProvider
from imageport.access.policy import Policy, Request
from imageport.access.roles import Identity, Role
from imageport.access.routes import RouteIndex
from imageport.access.ui_pages import admin_page

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

log = logging.getLogger("imageport.audit")
API = "/api"
PUBLIC = {("GET", "/health"), ("GET", "/ready")}  # probes, as Prefect's own auth leaves them open
MAX_BODY = 64 * 1024 * 1024  # a checked body is held in memory: flow-run parameters and log batches fit
ANONYMOUS = Identity("anonymous", Role.ADMINISTRATOR)  # a loopback server without users (see server.py)


class Refused(Exception):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status, self.detail = status, detail


def _header(scope: Scope, name: bytes) -> str | None:
    return next((v.decode("latin-1") for k, v in scope.get("headers", []) if k == name), None)


def _credential(scope: Scope) -> tuple[str, str] | None:
    value = _header(scope, b"authorization")
    if value is None:
        return None
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        name, colon, password = base64.b64decode(token.strip(), validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return (name, password) if colon else None


async def _read_body(receive: Receive) -> bytes:
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise Refused(400, "the client went away while sending the body")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            raise Refused(413, f"request body over {MAX_BODY} bytes")
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # after the body: the disconnect, when it comes

    return replayed


def _with_length(scope: Scope, body: bytes) -> Scope:
    headers = [(k, v) for k, v in scope["headers"] if k not in (b"content-length", b"transfer-encoding")]
    return {**scope, "headers": [*headers, (b"content-length", str(len(body)).encode())]}


async def _json_response(send: Send, status: int, data: object) -> None:
    body = json.dumps(data).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class Gateway:
    """Authenticate, authorize, tag and audit in front of ``app`` (Prefect's ``create_app()``)."""

    def __init__(self, app: ASGIApp, routes: RouteIndex, provider: IdentityProvider | None,
                 policy: Policy = POLICY) -> None:  # fmt: skip
        self.app, self.routes, self.provider, self.policy = app, routes, provider, policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] not in ("http", "websocket") or not (path == API or path.startswith(API + "/")):
            if scope["type"] == "http" and path.endswith("/ui-settings") and self.provider is not None:
                # The UI then asks for ``user:password`` on its login page.
                return await _rewritten(self.app, scope, receive, send, lambda found: {**found, "auth": "BASIC"})
            return await self.app(scope, receive, send)
        method = "WS" if scope["type"] == "websocket" else scope["method"].upper()
        sub = path[len(API) :] or "/"
        try:
            await self._handle(scope, receive, send, method, sub)
        except Refused as refused:
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008, "reason": refused.detail[:120]})
            else:
                await _json_response(send, refused.status, {"detail": refused.detail})

    def _identify(self, scope: Scope, method: str, sub: str) -> Identity | None:
        if self.provider is None:
            return ANONYMOUS
        credential = _credential(scope)
        if credential is None:
            if ("GET" if method == "HEAD" else method, sub) in PUBLIC:
                return None
            raise Refused(401, "a credential is required: HTTP basic user:password (PREFECT_API_AUTH_STRING)")
        identity = self.provider.authenticate(*credential)
        if identity is None:
            log.warning("imageport-audit refused login user=%s %s %s%s", credential[0], method, API, sub)
            raise Refused(401, f"wrong user name or password for {credential[0]!r}")
        return identity

    async def _handle(self, scope: Scope, receive: Receive, send: Send, method: str, sub: str) -> None:
        identity = self._identify(scope, method, sub)
        if identity is None:  # a public probe
            return await self.app(scope, receive, send)
        templates = self.routes.matching(method, sub) or [""]  # "": no route of Prefect's (a 404 for admins)
        role = identity.role
        page = admin_page(_header(scope, b"referer"), method, templates) if role is not Role.ADMINISTRATOR else None
        if page is not None:
            log.warning("imageport-audit denied user=%s role=%s %s %s%s: from %s (%s)",
                        identity.name, role.value, method, API, sub, page.what, page.page)  # fmt: skip
            raise Refused(403, f"{identity.name} ({role.value}) may not open {page.what}: administrators only")
        body: bytes | None = None
        if any(self.policy.needs_body(role, method, t) for t in templates) or any(
            audit.creates_runs(method, t) for t in templates
        ):
            body = await _read_body(receive)
        query = scope.get("query_string", b"").decode("latin-1")
        for template in templates:
            verdict = self.policy.decide(role, Request(method, template, query, body))
            if not verdict.allowed:
                shown = template or sub
                log.warning("imageport-audit denied user=%s role=%s %s %s%s: %s",
                            identity.name, role.value, method, API, shown, verdict.reason)  # fmt: skip
                raise Refused(403, f"{identity.name} ({role.value}) may not {method} {API}{shown}: {verdict.reason}")
        if body is not None:
            if any(audit.creates_runs(method, t) for t in templates):
                body = audit.tag_runs(body, identity.name)
            scope, receive = _with_length(scope, body), _replay(body, receive)
        view = next((views.VIEWS[(method, t)] for t in templates if (method, t) in views.VIEWS), None)
        if view is not None and role is not Role.ADMINISTRATOR:
            return await _rewritten(self.app, scope, receive, send, view)
        if not any(audit.mutates(method, t) for t in templates):
            return await self.app(scope, receive, send)
        await self.app(scope, receive, self._audited(send, identity, method, sub))

    def _audited(self, send: Send, identity: Identity, method: str, sub: str) -> Send:
        async def audited(message: Message) -> None:
            if message["type"] == "http.response.start":
                log.info("imageport-audit user=%s role=%s %s %s%s -> %s",
                         identity.name, identity.role.value, method, API, sub, message["status"])  # fmt: skip
            await send(message)

        return audited


async def _rewritten(app: ASGIApp, scope: Scope, receive: Receive, send: Send, view: Callable[[Any], Any]) -> None:
    """``app``'s answer with its JSON body passed through ``view`` (a successful answer only)."""
    start: Message = {}
    chunks: list[bytes] = []

    async def capture(message: Message) -> None:
        nonlocal start
        if message["type"] == "http.response.start":
            start = message
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    # Prefect's GZip middleware compresses the answer for a browser that accepts gzip: ask for it plain.
    plain = {**scope, "headers": [(k, v) for k, v in scope["headers"] if k != b"accept-encoding"]}
    await app(plain, receive, capture)
    body = b"".join(chunks)
    if start.get("status") == 200:
        body = json.dumps(view(json.loads(body))).encode()
    headers = [(k, v) for k, v in start.get("headers", []) if k != b"content-length"]
    await send({**start, "headers": [*headers, (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
