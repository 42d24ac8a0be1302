"""Test access to the sample Windows-like disks (``imageport.guest.sample_image``) and an independent reader."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from imageport.guest.sample_image import KINDS, build_disks, empty_hive, software_hive, system_hive

__all__ = ["KINDS", "build_disks", "empty_hive", "registry_dump", "software_hive", "system_hive"]


def registry_dump(image: Path, tmp_path: Path) -> dict[str, dict[str, Any]]:
    """Every key and value of SYSTEM and SOFTWARE, read by regipy (not by the code under test)."""
    import guestfs
    from regipy.registry import RegistryHive

    out = tmp_path / "hives"
    out.mkdir(parents=True, exist_ok=True)
    g = guestfs.GuestFS(python_return_dict=True)
    try:
        g.set_backend("direct")
        g.set_backend_settings(["force_tcg"])
        g.add_drive_opts(str(image), format="raw", readonly=True)
        g.launch()
        root = g.inspect_os()[0]
        g.mount_ro(root, "/")
        for name in ("SYSTEM", "SOFTWARE"):
            g.download(f"/Windows/System32/config/{name}", str(out / name))
    finally:
        g.close()
    dump: dict[str, dict[str, Any]] = {}
    for name in ("SYSTEM", "SOFTWARE"):
        for entry in RegistryHive(str(out / name)).recurse_subkeys(as_json=False):
            dump[f"{name}{entry.path}"] = {v.name: v.value for v in entry.values or []}
    return dump
