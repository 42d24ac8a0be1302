"""Inside a fresh network namespace: bring up loopback, relay PORT=UNIX_SOCKET pairs, run a command, exit with its code.

Usage: netns_relay.py PORT=SOCKET... -- COMMAND...   (stdlib only; see tests/infra/ce_sandbox.py)
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import threading
from collections.abc import Callable


def pipe(a: socket.socket, b: socket.socket, sent: Callable[[int], bool] | None = None) -> None:
    """Copy a -> b until a ends, then shut both down (one direction of a relayed connection).

    ``sent(n)`` is told of every chunk passed on; when it returns True the relay stops there
    (the fault proxy counts bytes and cuts the connection this way).
    """
    try:
        while data := a.recv(1 << 20):
            b.sendall(data)
            if sent is not None and sent(len(data)):
                return
    except OSError:
        pass
    finally:
        for s in (a, b):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)


def _serve(listener: socket.socket, path: str) -> None:
    while True:
        client, _ = listener.accept()
        upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            upstream.connect(path)
        except OSError:
            client.close()
            continue
        threading.Thread(target=pipe, args=(client, upstream), daemon=True).start()
        threading.Thread(target=pipe, args=(upstream, client), daemon=True).start()


def main(argv: list[str]) -> int:
    split = argv.index("--")
    pairs, command = argv[:split], argv[split + 1 :]
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    for pair in pairs:
        port, path = pair.split("=", 1)
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", int(port)))
        listener.listen(64)
        threading.Thread(target=_serve, args=(listener, path), daemon=True).start()
    return subprocess.call(command)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
