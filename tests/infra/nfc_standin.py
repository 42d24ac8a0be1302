"""A stand-in for a vSphere NFC export lease (the simulator has none) and the host that serves it.

``StandInLease`` has the members imageport uses of pyVmomi's ``HttpNfcLease``:
``state`` (``initializing`` for the first polls, then ``ready``), ``info.deviceUrl``,
``error``, ``HttpNfcLeaseProgress``, ``HttpNfcLeaseComplete``, ``HttpNfcLeaseAbort``;
it records what was called. ``NfcHost`` serves the disk streams over HTTP on
127.0.0.1, only to requests carrying the session cookie, and can cut a stream
after a number of bytes (a dropped download).
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace


class NfcHost:
    def __init__(self, files: dict[str, Path], cookie: str, cut_after: int | None = None) -> None:
        self.files = files
        self.cookie = cookie
        self.cut_after = cut_after
        self.requests: list[str] = []
        host = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                host.requests.append(self.path)
                if self.headers.get("Cookie") != host.cookie:
                    self.send_response(403)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                path = host.files.get(self.path)
                if path is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                data = path.read_bytes()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-vnd.vmware-streamVmdk")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if host.cut_after is not None:
                    self.wfile.write(data[: host.cut_after])
                    self.close_connection = True
                    return
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class StandInLease:
    def __init__(self, urls: list[str], ready_after: int = 2) -> None:
        self.polls = 0
        self.ready_after = ready_after
        devices = [SimpleNamespace(url=u, disk=True, key=f"disk-{i}") for i, u in enumerate(urls)]
        self.info = SimpleNamespace(deviceUrl=devices)
        self.error = None
        self.progress: list[int] = []
        self.completed = False
        self.aborted = False

    @property
    def state(self) -> str:
        self.polls += 1
        if self.completed or self.aborted:
            return "done"
        return "ready" if self.polls >= self.ready_after else "initializing"

    def HttpNfcLeaseProgress(self, percent: int) -> None:
        self.progress.append(percent)

    def HttpNfcLeaseComplete(self) -> None:
        self.completed = True

    def HttpNfcLeaseAbort(self, fault: object = None) -> None:
        self.aborted = True
