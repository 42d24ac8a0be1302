"""Relay TCP ports: ``LISTEN_HOST:PORT=TARGET_HOST:PORT`` pairs, one listener each; prints ``ready`` once all listen.

Usage: python -m tests.infra.tcp_relay LISTEN=TARGET...   (run from the repo root; stdlib only)

Two of these join a worker host (tests/infra/worker_hosts.py) to the services: on the host side it listens on
the host end of the worker's veth and forwards to 127.0.0.1 (the services bind loopback only); inside the
worker's namespace it listens on the namespace's 127.0.0.1 and forwards across the veth, so the connectors'
``127.0.0.1:PORT`` addresses mean the same service on every host, as a DNS name would.
"""

from __future__ import annotations

import socket
import sys
import threading

from tests.infra.netns_relay import pipe


def _address(text: str) -> tuple[str, int]:
    host, port = text.rsplit(":", 1)
    return host, int(port)


def _serve(listener: socket.socket, target: tuple[str, int]) -> None:
    while True:
        client, _ = listener.accept()
        try:
            upstream = socket.create_connection(target, timeout=10)
        except OSError:
            client.close()
            continue
        upstream.settimeout(None)
        threading.Thread(target=pipe, args=(client, upstream), daemon=True).start()
        threading.Thread(target=pipe, args=(upstream, client), daemon=True).start()


def main(pairs: list[str]) -> None:
    threads = []
    for pair in pairs:
        listen, target = pair.split("=", 1)
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(_address(listen))
        listener.listen(128)
        threads.append(threading.Thread(target=_serve, args=(listener, _address(target)), daemon=True))
    for thread in threads:
        thread.start()
    print("ready", flush=True)
    threading.Event().wait()  # until killed


if __name__ == "__main__":
    main(sys.argv[1:])
