"""Orchestration overhead: a whole MCS->MCS port's wall time against the sum of its data stages.

The port is the demo's (``deployments/demo.py``): a sample Windows-like image on
the local platform, exported to a share folder as VHDX, uploaded to a local
target as a fixed VHD, prepared on the local compositing engine (a separate
agent process). The reference is the work itself, as the core measures it:
the export's and upload's conversion seconds plus the agent's prepare seconds.
What remains is orchestration: Prefect task runs and caching, result
persistence, connector loading, the CE's work directory, disk copy and agent
process start. Measured inside the flow process (the Prefect server's start is
not counted), on a fresh Prefect home so nothing is reused.

  orchestration-mcs-to-mcs: ratio=X.XX (imageport A s, REF B s) overhead=C s peak_rss=N MiB
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

RUN = """
import json, os, sys, time
from pathlib import Path
from blocks.registry import save_connector
from flows.ports import mcs_to_mcs
from imageport.guest.sample_image import build_disks
from imageport.models import PortSpec
root = Path(sys.argv[1])
disk = build_disks(root / "vms", kinds=("gpt",), size=512 * 1024 * 1024)["gpt"]
(root / "share").mkdir()
save_connector("local", "bench", {"root": str(root)}, overwrite=True)
spec = PortSpec.model_validate({
    "workflow": "mcs-to-mcs",
    "source": {"kind": "local", "connector": "bench", "path": "vms/gpt.img"},
    "staging": {"kind": "local", "connector": "bench", "path": "share/gold.vhdx"},
    "targets": [{"disk": {"kind": "local", "connector": "bench", "path": "target/gold.vhd"}}],
    "prepare": {"enable_rdp": True},
})
started = time.perf_counter()
result = mcs_to_mcs(spec)
wall = time.perf_counter() - started
data = result.stage_seconds
print("FIGURES " + json.dumps({"wall": wall, "data": data, "reused": [s.reused for s in result.stages]}))
"""


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="bench-orch-") as work:
        env = {**os.environ, "PREFECT_HOME": str(Path(work) / "prefect-home"), "DO_NOT_TRACK": "1",
               "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}  # fmt: skip
        env.pop("PREFECT_API_URL", None)
        root = Path(work) / "platform"
        root.mkdir()
        done = subprocess.run(["/usr/bin/time", "-f", "%M", sys.executable, "-c", RUN, str(root)], cwd=REPO,
                              env=env, capture_output=True, text=True)  # fmt: skip
        if done.returncode != 0:
            print(done.stdout[-3000:], done.stderr[-3000:])
            return 1
        (line,) = [ln for ln in done.stdout.splitlines() if ln.startswith("FIGURES ")]
        figures = json.loads(line.removeprefix("FIGURES "))
        rss = int(done.stderr.strip().splitlines()[-1]) // 1024
    wall, data = figures["wall"], figures["data"]
    assert not any(figures["reused"]), "a fresh Prefect home must not reuse stages"
    print(f"orchestration-mcs-to-mcs: ratio={wall / data:.2f} (imageport {wall:.2f} s, REF {data:.2f} s) "
          f"overhead={wall - data:.2f} s peak_rss={rss} MiB")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
