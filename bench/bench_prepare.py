"""Prepare: wall time of a full prepare of a test image, split into appliance launch and work.

The test image is the suite's MBR + NTFS Windows-like disk (hives built from
scratch). One prepare must launch the libguestfs appliance exactly once; the
launch dominates under TCG (~15 s here, under 6 s with working KVM). There
is no external reference tool for this figure: the ratio is the launch's share of the total.

  prepare-azure-gen1: ratio=X.XX (launch A s, work B s, total C s) launches=1 peak_rss=N MiB
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from measure import timed

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.infra.windows_image import build_disks

RUN = """
import json, sys
from imageport.guest.plan import PrepareTarget
from imageport.guest.prepare import prepare_image
from imageport.models import HyperVGeneration, PrepareOptions, TargetPlatform
options = PrepareOptions.model_validate({"enable_rdp": True, "domain_unjoin": True})
r = prepare_image(sys.argv[1], PrepareTarget(TargetPlatform.AZURE, HyperVGeneration.V1, options))
figures = {"launch": r.launch_s, "work": r.work_s, "launches": r.launches, "changes": len(r.changes)}
json.dump(figures, open(sys.argv[2], "w"))
"""


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="imageport-bench-prepare-"))
    try:
        image = build_disks(work, kinds=("mbr",))["mbr"]
        figures = work / "figures.json"
        seconds, rss = timed([sys.executable, "-c", RUN, str(image), str(figures)])
        result = json.loads(figures.read_text())
        print(
            f"prepare-azure-gen1: ratio={result['launch'] / seconds:.2f} (launch {result['launch']:.1f} s, "
            f"work {result['work']:.1f} s, total {seconds:.1f} s) launches={result['launches']} "
            f"changes={result['changes']} peak_rss={rss} MiB",
            flush=True,
        )
    finally:
        subprocess.run(["rm", "-rf", str(work)], check=False)


if __name__ == "__main__":
    main()
