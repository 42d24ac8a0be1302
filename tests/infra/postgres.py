"""A private PostgreSQL cluster from Debian's packages, and a Prefect server whose database it is.

The cluster lives under ``.cache/test-run/postgres-<pid>``, owned by Debian's ``postgres`` user (PostgreSQL
refuses to run as root), listens on 127.0.0.1 at a free port with its socket in its own directory, and holds
one database ``prefect`` owned by the role ``prefect`` (password authentication over TCP, as a server on
another machine would use). ``start_prefect_server`` runs ``prefect server start`` on it exactly as
docs/operations.md says, with ``PREFECT_API_DATABASE_CONNECTION_URL=postgresql+asyncpg://...``.
"""

from __future__ import annotations

import glob
import json
import os
import pwd
import subprocess
import time
import urllib.request
from pathlib import Path

from tests.infra.services import REPO, Service, ServiceUnavailable, _fresh_dir, _spawn, _tail, free_port, wait_for_port

PG_USER = "postgres"
DB_ROLE = "prefect"
DB_PASSWORD = "Prefect-Db-Pass-1"  # a test cluster's, on loopback only


def _bindir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if not found:
        raise ServiceUnavailable("PostgreSQL is missing: run `make test-deps` first")
    return Path(found[-1]).parent


def _as_postgres(command: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, user=PG_USER, group=PG_USER, check=True, capture_output=True, text=True,
                          **kwargs)  # type: ignore[call-overload]  # fmt: skip


def _wait_ready(bindir: Path, sockets: Path, port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    """Until the cluster accepts connections (it listens before recovery ends: "the database system is
    starting up")."""
    deadline = time.monotonic() + 60
    ready = [str(bindir / "pg_isready"), "-q", "-h", str(sockets), "-p", str(port)]
    while subprocess.run(ready, capture_output=True).returncode != 0:
        if proc.poll() is not None or time.monotonic() > deadline:
            raise ServiceUnavailable(f"PostgreSQL did not become ready; see {log}:\n{_tail(log)}")
        time.sleep(0.2)


def start_postgres(statements: list[str]) -> Service:
    """initdb, start, and run ``statements`` (SQL creating the ``prefect`` role and database, as
    docs/operations.md gives them) as the superuser; ``info['url']`` is the asyncpg URL of that database."""
    bindir = _bindir()
    try:
        owner = pwd.getpwnam(PG_USER)
    except KeyError:
        raise ServiceUnavailable("no 'postgres' user: run `make test-deps` (Debian's postgresql makes it)") from None
    root = _fresh_dir("postgres")
    data, sockets = root / "data", root / "sockets"
    for path in (data, sockets):
        path.mkdir()
        os.chown(path, owner.pw_uid, owner.pw_gid)
    os.chown(root, owner.pw_uid, owner.pw_gid)
    _as_postgres([str(bindir / "initdb"), "-D", str(data), "-U", PG_USER, "--auth-local=trust",
                  "--auth-host=scram-sha-256", "--encoding=UTF8", "--no-sync"], cwd=root)  # fmt: skip
    port = free_port()
    log = root / "postgres.log"
    with open(log, "wb"):
        pass
    os.chown(log, owner.pw_uid, owner.pw_gid)
    # fsync off: a throwaway cluster on a shared disk; the server's behaviour under test does not depend on it.
    proc = _spawn([str(bindir / "postgres"), "-D", str(data), "-h", "127.0.0.1", "-p", str(port),
                   "-k", str(sockets), "-c", "fsync=off", "-c", "max_connections=200"], log,
                  user=PG_USER, group=PG_USER, cwd=root)  # fmt: skip
    service = Service("postgres", proc, port, root, log)
    try:  # a cluster that started but could not be set up is stopped, not left behind
        wait_for_port(port, proc, log)
        _wait_ready(bindir, sockets, port, proc, log)
        psql = [str(bindir / "psql"), "-h", str(sockets), "-p", str(port), "-U", PG_USER, "-v", "ON_ERROR_STOP=1"]
        for sql in statements:
            _as_postgres([*psql, "-c", sql], cwd=root)
    except BaseException:
        service.stop()
        raise
    url = f"postgresql+asyncpg://{DB_ROLE}:{DB_PASSWORD}@127.0.0.1:{port}/prefect"
    service.info.update(url=url, psql=json.dumps(psql))
    return service


def start_prefect_server(database_url: str, script: str | None = None) -> Service:
    """``prefect server start`` on 127.0.0.1 (a free port) with ``database_url`` as its database; ``script``
    (bash, given ``$PORT``) starts it instead, e.g. the docs' commands with their placeholders filled in."""
    root = _fresh_dir("prefect-server")
    port = free_port()
    env = {**os.environ, "PREFECT_HOME": str(root / "home"), "PREFECT_API_DATABASE_CONNECTION_URL": database_url,
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_UI_ENABLED": "false",
           "PATH": f"{REPO / '.venv/bin'}:{os.environ['PATH']}"}  # fmt: skip
    env.pop("PREFECT_API_URL", None)
    log = root / "server.log"
    command = ["prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    if script is not None:
        env = {**env, "PORT": str(port)}
        env.pop("PREFECT_API_DATABASE_CONNECTION_URL")  # the script sets it
        command = ["bash", "-c", script]
    proc = _spawn(command, log, env=env, cwd=root)
    wait_for_port(port, proc, log, timeout=180)
    url = f"http://127.0.0.1:{port}/api"
    deadline = time.monotonic() + 180
    while True:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=5) as answer:
                if answer.status == 200:
                    break
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise ServiceUnavailable(f"the Prefect server on PostgreSQL did not come up; see {log}:\n{_tail(log)}")
        time.sleep(0.5)
    return Service("prefect-server", proc, port, root, log, {"url": url})
