"""The HTTP face of the Prism Central stand-in (``prism_standin.py``): routing, auth, errors, the ranged file."""

from __future__ import annotations

import json
import re
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

if TYPE_CHECKING:
    from tests.infra.prism_standin import PrismStandIn

RANGE = re.compile(r"^bytes=(\d+)-(\d*)$")
PIECE = 1 << 20


def make_handler(prism: PrismStandIn) -> type[BaseHTTPRequestHandler]:
    from tests.infra.prism_standin import COOKIE, ROUTES, Refusal

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def _reply(self, status: int, body: dict[str, Any] | None, headers: dict[str, str]) -> None:
            data = json.dumps(body).encode() if body is not None else b""
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for key, value in headers.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)

        def _body(self) -> dict[str, Any]:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                return json.loads(raw) if raw else {}
            except ValueError:
                raise Refusal(400, "VMM-10400", "the request body is not JSON") from None

        def _serve(self, method: str) -> None:
            url = urlsplit(self.path)
            prism_api = url.path.startswith("/api/prism/")
            extra: dict[str, str] = {}
            try:
                allowed, session = prism._authorized(self.headers)
                if not allowed:
                    raise Refusal(401, "VMM-401", "authentication required: wrong user name or password")
                if session:
                    extra["Set-Cookie"] = f"{COOKIE}={session}; Path=/; Secure; HttpOnly"
                for verb, pattern, name in ROUTES:
                    found = pattern.match(url.path)
                    if verb == method and found:
                        ids = tuple(unquote(g) for g in found.groups())  # the SDK percent-encodes path parameters
                        status, body, headers = self._call(name, ids, parse_qs(url.query))
                        if body is not None:
                            self._reply(status, body, {**headers, **extra})
                        return
                raise Refusal(404, "VMM-404", f"{method} {url.path}: no such endpoint")
            except Refusal as refusal:
                body = prism.error_body(refusal.status, refusal.code, refusal.message, prism=prism_api)
                self._reply(refusal.status, body, extra)

        def _call(self, name: str, groups: tuple[str, ...], query: dict[str, list[str]]) -> Any:
            if name == "image_file":
                self._file(groups[0])
                return 206, None, {}
            if name in ("create_image", "delete_image"):
                request_id = self.headers.get("NTNX-Request-Id")
                if not request_id:
                    raise Refusal(400, "VMM-10401", "NTNX-Request-Id header is required for a mutation")
                if name == "create_image":
                    return prism.create_image(self._body(), request_id)
                return prism.delete_image(groups[0], self.headers.get("If-Match"), request_id)
            if groups:
                return getattr(prism, name)(*groups)
            return getattr(prism, name)(query)

        def _file(self, ext_id: str) -> None:
            image = prism._image(ext_id)
            size = image["path"].stat().st_size
            asked = self.headers.get("Range")
            prism.file_requests.append(asked or "")
            start, end, status = 0, size - 1, 200
            if asked:
                found = RANGE.match(asked)
                if not found or int(found.group(1)) >= size:
                    raise Refusal(416, "VMM-30416", f"Range {asked!r} is not satisfiable for {size} bytes")
                start, status = int(found.group(1)), 206
                end = min(int(found.group(2)), size - 1) if found.group(2) else size - 1
            length = end - start + 1
            with prism.lock:  # only a long stream drops (a header read has nothing to resume)
                drop = prism.drop_streams > 0 and length > PIECE
                prism.drop_streams -= 1 if drop else 0
            self.send_response(status)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(length))
            if status == 206:
                self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
            self.end_headers()
            send = length // 2 if drop else length  # a dropped stream: half the promised bytes, then the socket closes
            with open(image["path"], "rb") as f:
                f.seek(start)
                while send > 0:
                    piece = f.read(min(PIECE, send))
                    self.wfile.write(piece)
                    send -= len(piece)
            if drop:
                self.close_connection = True
                self.wfile.flush()
                self.connection.close()

        def do_GET(self) -> None:
            self._serve("GET")

        def do_POST(self) -> None:
            self._serve("POST")

        def do_DELETE(self) -> None:
            self._serve("DELETE")

    return Handler
