"""An HTTP proxy in front of Azurite that injects faults into chosen page writes.

``plan`` maps the ordinal of a Put Page request (1-based, counted by the proxy)
to a fault: an HTTP status (503, 500, 429 with Retry-After, 403...) or "reset"
(the connection is dropped without an answer), or "hold" (no answer until ``release()``, then the
connection is dropped: the write never lands -- a gate that stops an upload at a chosen write, whatever
the timing; ``held`` is set when the first one arrives); 429 and 503 carry ``Retry-After:
retry_after`` (0 unless told). Everything else is forwarded unchanged. Binds 127.0.0.1
on a free port; stops with ``close()``.
"""

from __future__ import annotations

import http.client
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit


class FaultProxy:
    def __init__(self, upstream: str, plan: dict[int, int | str], retry_after: str = "0") -> None:
        target = urlsplit(upstream)
        self.upstream_host, self.upstream_port = target.hostname or "127.0.0.1", target.port or 80
        self.plan = dict(plan)
        self.page_writes = 0
        self.fired: list[tuple[int, int | str]] = []
        self.lock = threading.Lock()
        self.held = threading.Event()
        self._released = threading.Event()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                fault = None
                if (
                    self.command == "PUT"
                    and "comp=page" in self.path
                    and "x-ms-page-write: update" in str(self.headers).lower()
                ):
                    with proxy.lock:
                        proxy.page_writes += 1
                        fault = proxy.plan.pop(proxy.page_writes, None)
                        if fault is not None:
                            proxy.fired.append((proxy.page_writes, fault))
                if fault == "hold":
                    proxy.held.set()
                    proxy._released.wait()
                    fault = "reset"
                if fault == "reset":
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
                    self.connection.close()
                    self.close_connection = True
                    return
                if isinstance(fault, int):
                    payload = f"<Error><Code>Injected{fault}</Code></Error>".encode()
                    self.send_response(fault)
                    if fault in (429, 503):
                        self.send_header("Retry-After", retry_after)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                conn = http.client.HTTPConnection(proxy.upstream_host, proxy.upstream_port, timeout=60)
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                conn.request(self.command, self.path, body=body, headers=headers)
                response = conn.getresponse()
                data = response.read()
                self.send_response(response.status, response.reason)
                head = self.command == "HEAD"  # a HEAD answer's Content-Length describes the blob
                for key, value in response.getheaders():
                    if key.lower() not in ("transfer-encoding", "connection") and (
                        head or key.lower() != "content-length"
                    ):
                        self.send_header(key, value)
                if not head:
                    self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                conn.close()

            do_GET = do_PUT = do_HEAD = do_DELETE = do_POST = _forward

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url_for(self, url: str) -> str:
        """The same blob URL, through the proxy."""
        parts = urlsplit(url)
        return parts._replace(netloc=f"127.0.0.1:{self.port}").geturl()

    def release(self) -> None:
        """Let every held write go (each is dropped unanswered) and hold no more: later writes pass."""
        with self.lock:
            self.plan = {n: fault for n, fault in self.plan.items() if fault != "hold"}
        self._released.set()

    def close(self) -> None:
        self.release()
        self.server.shutdown()
        self.server.server_close()
