"""A TCP relay in front of a server that can drop every connection once, mid-stream.

Used to drop a live SMB session: ``cut_after`` bytes sent by clients (and by
the server too with ``count_replies``; counted over all connections), both
sides of every open connection are dropped, once.
Later connections are relayed normally. Binds 127.0.0.1 on a free port; stops
with ``close()``.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading

from tests.infra.netns_relay import pipe


class CuttingProxy:
    def __init__(self, upstream_port: int, cut_after: int | None = None, count_replies: bool = False) -> None:
        self.upstream_port = upstream_port
        self.cut_after = cut_after
        self.count_replies = count_replies  # count server->client bytes too (reads move data that way)
        self.sent = 0
        self.cuts = 0
        self.lock = threading.Lock()
        self.pairs: list[tuple[socket.socket, socket.socket]] = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            with self.lock:
                self.pairs.append((client, upstream))
            threading.Thread(target=self._relay, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._relay, args=(upstream, client, self.count_replies), daemon=True).start()

    def _relay(self, src: socket.socket, dst: socket.socket, counts: bool) -> None:
        pipe(src, dst, self._count if counts else None)

    def _count(self, n: int) -> bool:
        """Count bytes passed on; at ``cut_after`` drop every connection (True: this relay ends too)."""
        with self.lock:
            self.sent += n
            due = self.cut_after is not None and self.sent >= self.cut_after
            if due:
                self.cut_after = None
        if due:
            self.cut()
        return due

    def cut(self) -> None:
        """Drop every open connection, as a failed network path does."""
        with self.lock:
            self.cuts += 1
        self._reset()

    def _reset(self) -> None:
        with self.lock:
            pairs, self.pairs = self.pairs, []
        for pair in pairs:
            for s in pair:
                with contextlib.suppress(OSError):
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    # shutdown first: close() alone does not end a recv() blocked in the relay thread
                    s.shutdown(socket.SHUT_RDWR)
                with contextlib.suppress(OSError):
                    s.close()

    def close(self) -> None:
        self.closed = True
        self.listener.close()
        self._reset()
