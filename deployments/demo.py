"""``make demo``: a whole MCS->MCS port on the embedded default, with real work at every stage.

On Prefect's ephemeral server (state in $PREFECT_HOME) with the local platform:
saves a ``local`` connector over ./demo-output, generates a sample Windows-like
master image (GPT + ESP + NTFS with registry hives; ``imageport.guest.sample_image``)
as the "source VM" disk, then runs the ``mcs-to-mcs`` flow:

- export: the VM's disk to the share directory as VHDX, with SHA-256/MD5;
- upload: the VHDX to the local target platform as a fixed VHD (Azure's format);
- prepare: on the local compositing engine (the agent in its own process) on a
  copy: Remote Desktop enabled, first-boot actions staged; verified.

Prints the result table and how to see the run in the UI. Running it again
reuses every stage (cached by spec and input identity).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

from blocks.registry import save_connector
from flows.ports import mcs_to_mcs
from imageport.guest.sample_image import build_disks
from imageport.models import PortSpec
from imageport.names import prepared_path

DEMO_ROOT = Path("demo-output").absolute()
TARGET = "target/win-gold.vhd"  # the local target disk; prepare writes its -prepared copy beside it
SPEC = {
    "workflow": "mcs-to-mcs",
    "source": {"kind": "local", "connector": "local", "path": "vms/win-gold.img"},
    "staging": {"kind": "local", "connector": "local", "path": "share/win-gold.vhdx"},
    "targets": [{"disk": {"kind": "local", "connector": "local", "path": TARGET}}],
    "prepare": {"enable_rdp": True, "chkdsk": True},
}


def make_source_vm() -> Path:
    disk = DEMO_ROOT / "vms" / "win-gold.img"
    if not disk.exists():
        work = DEMO_ROOT / ".sample"
        built = build_disks(work, kinds=("gpt",), size=256 * 1024 * 1024)
        disk.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(built["gpt"], disk)
        shutil.rmtree(work, ignore_errors=True)
    return disk


def main() -> None:
    (DEMO_ROOT / "share").mkdir(parents=True, exist_ok=True)  # the share folder an admin would create
    save_connector("local", "local", {"root": str(DEMO_ROOT)}, overwrite=True)
    disk = make_source_vm()
    print(f"source VM disk: {disk} (sample Windows-like master image, {disk.stat().st_size >> 20} MiB virtual)")
    result = mcs_to_mcs(PortSpec.model_validate(SPEC))

    print("\n| stage | from | to | data written | content hash / check | seconds | reused |")
    print("|---|---|---|---|---|---|---|")
    for s in result["stages"]:
        written = (s.get("data_written") or 0) / 2**20
        check = s.get("content_hash") or ("verified" if s.get("verified") else "")
        print(f"| {s['stage']} | {s['from']} | {s['to']} | {written:,.0f} MiB | {check} | "
              f"{s['stage_seconds']:.1f} | {s['reused']} |")  # fmt: skip
    export, upload, prepare = result["stages"]
    print(f"\nthe image's content hash is identical on the share and on the target: "
          f"{export['content_hash'] == upload['content_hash']}")  # fmt: skip
    print(f"prepared copy: {DEMO_ROOT / prepared_path(TARGET)} (verified: {prepare['verified']})")
    print(f"whole workflow {result['wall_seconds']:.1f} s, data stages {result['stage_seconds']:.1f} s")
    print(
        f"Runs and artifacts are stored in {os.environ.get('PREFECT_HOME', '~/.prefect')}; "
        "see them in the UI: `make ui`, then open http://127.0.0.1:4200/runs"
    )
    if export["content_hash"] != upload["content_hash"] or not prepare["verified"]:
        raise SystemExit("the demo port did not verify")


if __name__ == "__main__":
    main()
