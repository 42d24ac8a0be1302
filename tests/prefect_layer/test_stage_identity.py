"""Stage cache keys follow the source fingerprint: a vDisk edited in place to the same size is a new input."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from blocks.registry import delete_connector, save_connector
from imageport.disks.convert import convert
from imageport.models import DiskFormat, LocalRef, ShareRef, UploadSpec
from imageport.storage.smb_files import SmbFileSystem
from tasks.caching import ref_identity, stage_key
from tests.core.disks.images import MiB, make_raw
from tests.core.transfer.test_copy import edit_on_share
from tests.infra.configs import samba_share

pytestmark = pytest.mark.integration


def test_an_image_edited_in_place_to_the_same_size_gets_a_new_cache_key(  # type: ignore[no-untyped-def]
    prefect_api, samba, tmp_path: Path
) -> None:
    raw = make_raw(tmp_path / "src.raw", 16 * MiB, runs=3, seed=81, max_run=2 * MiB)
    vhdx = tmp_path / "lab" / "gold.vhdx"
    vhdx.parent.mkdir()
    convert(raw, vhdx, DiskFormat.VHDX)
    share = samba_share(samba, base_path="identity")
    save_connector("fileshare", "ident-share", {**share.model_dump(), "password": samba.info["password"]},
                   overwrite=True)  # fmt: skip
    save_connector("local", "ident-lab", {"root": str(tmp_path / "lab")}, overwrite=True)
    try:
        with share.build() as smb:
            smb.makedirs("")
        fs = SmbFileSystem(share.build())
        try:
            sink = fs.open_sink("gold.vhdx", overwrite=True)
            sink.pwrite(0, vhdx.read_bytes())
            sink.commit()
            on_share = ShareRef(connector="ident-share", path="gold.vhdx")
            local = LocalRef(connector="ident-lab", path="gold.vhdx")
            before = {"share": ref_identity(on_share), "local": ref_identity(local)}
            assert all(not v.startswith("missing") for v in before.values())
            assert ref_identity(on_share) == before["share"] and ref_identity(local) == before["local"]  # stable
            spec = UploadSpec.model_validate({
                "source": on_share.model_dump(),
                "target": {"kind": "local", "connector": "ident-lab", "path": "out.vhdx"},
            })  # fmt: skip
            key = stage_key("upload", spec, on_share)

            edit_on_share(fs, "gold.vhdx", vhdx.stat().st_size // 2, os.urandom(4096))  # same size, in place
            st = vhdx.stat()
            with open(vhdx, "r+b") as f:
                f.seek(st.st_size // 2)
                f.write(os.urandom(4096))
            os.utime(vhdx, ns=(st.st_atime_ns, st.st_mtime_ns))  # even with its old modification time
        finally:
            fs.close()
        assert ref_identity(on_share) != before["share"]  # size alone said "unchanged" here
        assert ref_identity(local) != before["local"]
        assert stage_key("upload", spec, on_share) != key  # so the stage runs again instead of reusing a stale upload
    finally:
        delete_connector("ident-share")
        delete_connector("ident-lab")
