"""The vSphere CE template recipe lays out the boot service its unit starts (the simulator's guest runs that layout)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.infra.vcsim_guest import RECIPE, UNIT, template_boot_command

BOOT = Path(__file__).resolve().parents[3] / "imageport/engine/ce_boot"


def test_the_recipe_installs_the_boot_service_where_its_unit_starts_it(tmp_path: Path) -> None:
    command = template_boot_command(tmp_path)
    assert command == ["sh", f"{tmp_path}/usr/local/lib/imageport/imageport-ce.sh"]
    script = Path(command[1])
    assert script.read_bytes() == (BOOT / "imageport-ce.sh").read_bytes() and script.stat().st_mode & 0o111
    unit = (tmp_path / UNIT).read_text()
    assert "WantedBy=multi-user.target" in unit and "After=vmtoolsd.service" in unit
    assert not (tmp_path / "usr/local/lib/python3").exists()  # nothing of imageport is installed, only the service


def test_the_recipe_refuses_an_unknown_option_in_one_line(tmp_path: Path) -> None:
    done = subprocess.run(["sh", str(RECIPE), "--root", str(tmp_path), "--pip"], capture_output=True, text=True)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "usage:" in done.stderr
    assert not (tmp_path / "usr").exists()
