"""Scale-out: a batch of eight small runs through the ``imageport`` work pool, one worker against two, and
what the server and a worker add to every run.

Plain local processes, as docs/operations.md's "Several machines" has them (``tests/infra/workers.py``):
``prefect server start`` on SQLite, the pool and the deployments from prefect.yaml, workers started
with ``--limit 2`` (the docs' line) and each a PREFECT_HOME and working directory of its own.

- ``scaleout-8-ports``: eight runs of the ``upload`` deployment (a 64 MiB image of random data on the
  local platform into a new fixed VHD each: sparse copy, content hash, verification) started at once
  through the REST API; the wall time from the first start to the last end, with two workers against
  one. Both workers share this machine's two cores, so the figure says what the pool's scheduling
  gives (two slots more), not what a second machine would. ``peak_rss``: the largest resident size
  a worker and its runs reached together (sampled every 0.2 s).
- ``scaleout-run-overhead``: a run that does nearly nothing (``check-connectors``, whose one saved
  connector is a local folder: a probe file written and deleted) through a worker -- created by the API,
  picked up, started in a subprocess, reported --
  against the same flow called in this process on the same server; ``overhead``: the difference.

  scaleout-8-ports: ratio=X.XX (imageport 2 workers A s, REF 1 worker B s) peak_rss=N MiB
  scaleout-run-overhead: ratio=X.XX (imageport through a worker A s, REF in-process B s) overhead=C s peak_rss=N MiB
"""

from __future__ import annotations

import random
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the checkout: tests.infra, flows, blocks

from tests.infra.workers import Proc, deploy, start_server, tree_rss, workers

MiB = 1024 * 1024
RUNS = 8
NOOP_RUNS = 3
CONNECTOR = "bench-scaleout"


def _image(path: Path) -> None:
    rng = random.Random(8)
    with open(path, "wb") as f:
        for _ in range(16):
            f.write(rng.randbytes(4 * MiB))


class PeakRss:
    """The largest resident size any one of the workers' trees reaches while it runs."""

    def __init__(self, machines: dict[str, Proc]) -> None:
        self.machines, self.peak, self._stop = machines, 0, threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.2):
            self.peak = max([self.peak, *(tree_rss(m.pid) for m in self.machines.values())])

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _wait_all(client: Any, ids: list[Any], timeout: float = 1800) -> None:
    deadline = time.monotonic() + timeout
    pending = set(ids)
    while pending:
        for run_id in list(pending):
            state = client.read_flow_run(run_id).state
            if state is not None and state.is_final():
                if not state.is_completed():
                    raise SystemExit(f"run {run_id} ended {state.type.value}: {state.message}")
                pending.discard(run_id)
        if time.monotonic() > deadline:
            raise SystemExit(f"{len(pending)} runs still going after {timeout:.0f} s")
        time.sleep(0.5)


def _batch(client: Any, api: str, root: Path, names: list[str], label: str) -> tuple[float, int]:
    """Wall seconds of RUNS uploads started at once with workers ``names``, and the peak RSS of one worker's tree."""
    deployment = client.read_deployment_by_name("upload-image/upload")
    with workers(names, root / label, api, limit=2) as machines, PeakRss(machines) as rss:
        time.sleep(3)  # the workers have polled once: the batch waits on the pool, not on their start
        started = time.perf_counter()
        ids = []
        for i in range(RUNS):
            spec = {"source": {"kind": "local", "connector": CONNECTOR, "path": f"src/gold-{i}.raw"},
                    "target": {"kind": "local", "connector": CONNECTOR, "path": f"{label}/gold-{i}.vhd"}}  # fmt: skip
            ids.append(client.create_flow_run_from_deployment(deployment.id, parameters={"spec": spec}).id)
        _wait_all(client, ids)
        return time.perf_counter() - started, rss.peak // MiB


def _overhead(client: Any, api: str, root: Path) -> tuple[float, float, int]:
    from flows.check_connectors import check_connectors

    deployment = client.read_deployment_by_name("check-connectors/hourly")
    with workers(["solo"], root / "noop", api, limit=2) as machines, PeakRss(machines) as rss:
        time.sleep(3)
        through = []
        for _ in range(NOOP_RUNS):
            started = time.perf_counter()
            run = client.create_flow_run_from_deployment(deployment.id, parameters={"names": []})
            _wait_all(client, [run.id])
            through.append(time.perf_counter() - started)
        peak = rss.peak // MiB
    inside = []
    for _ in range(NOOP_RUNS):
        started = time.perf_counter()
        check_connectors([])
        inside.append(time.perf_counter() - started)
    return min(through), min(inside), peak


def main() -> int:
    from prefect import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from blocks.registry import save_connector

    with tempfile.TemporaryDirectory(prefix="bench-scaleout-") as work:
        root = Path(work)
        server, api = start_server(root)
        try:
            deploy(api, ["upload", "hourly"], root)
            platform = root / "platform"
            (platform / "src").mkdir(parents=True)
            for label in ("one", "two"):
                (platform / label).mkdir()
            _image(platform / "src" / "gold-0.raw")
            for i in range(1, RUNS):  # eight sources: no run reads what another's cache could answer
                (platform / "src" / f"gold-{i}.raw").write_bytes((platform / "src" / "gold-0.raw").read_bytes())
            with temporary_settings({PREFECT_API_URL: api}), get_client(sync_client=True) as client:
                save_connector("local", CONNECTOR, {"root": str(platform)}, overwrite=True)
                one_s, one_rss = _batch(client, api, root, ["w1"], "one")
                two_s, two_rss = _batch(client, api, root, ["w1", "w2"], "two")
                noop_worker, noop_inside, noop_rss = _overhead(client, api, root)
        finally:
            server.stop()
    print(f"scaleout-8-ports: ratio={two_s / one_s:.2f} (imageport 2 workers {two_s:.2f} s, REF 1 worker "
          f"{one_s:.2f} s) peak_rss={max(one_rss, two_rss)} MiB")  # fmt: skip
    print(f"scaleout-run-overhead: ratio={noop_worker / noop_inside:.2f} (imageport through a worker "
          f"{noop_worker:.2f} s, REF in-process {noop_inside:.2f} s) overhead={noop_worker - noop_inside:.2f} s "
          f"peak_rss={noop_rss} MiB")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
