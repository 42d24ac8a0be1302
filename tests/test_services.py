"""Each test service the suite starts, proven by really using it.

If any of these fail, the fixture (or the machine set-up in the Makefile) is
broken -- every other test that uses the service would fail for that reason.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def test_azurite_serves_page_blobs_with_sparse_ranges(azurite) -> None:  # type: ignore[no-untyped-def]
    from azure.storage.blob import BlobServiceClient

    service = BlobServiceClient.from_connection_string(azurite.info["connection_string"])
    container = service.create_container("fixture-check")
    blob = container.get_blob_client("disk.vhd")
    blob.create_page_blob(size=2 * 1024 * 1024 + 512)
    blob.upload_page(b"\xab" * 1024, offset=4096, length=1024)
    filled, _cleared = blob.get_page_ranges()
    assert filled == [{"start": 4096, "end": 5119}]
    assert blob.download_blob(offset=4096, length=1024).readall() == b"\xab" * 1024
    assert blob.download_blob(offset=0, length=512).readall() == bytes(512)


def test_qemu_img_writes_and_compares_images(qemu_img: str, tmp_path: Path) -> None:
    raw = tmp_path / "a.raw"
    with open(raw, "wb") as f:
        f.truncate(8 * 1024 * 1024)
        f.seek(3 * 1024 * 1024)
        f.write(b"imageport" * 1000)
    vhdx = tmp_path / "a.vhdx"
    subprocess.run([qemu_img, "convert", "-f", "raw", "-O", "vhdx", str(raw), str(vhdx)], check=True)
    same = subprocess.run(
        [qemu_img, "compare", "-f", "raw", "-F", "vhdx", str(raw), str(vhdx)], capture_output=True, text=True
    )
    assert same.returncode == 0 and "identical" in same.stdout


@pytest.mark.guestfs
def test_libguestfs_builds_an_ntfs_disk_under_tcg_and_hivex_imports(tmp_path: Path) -> None:
    import guestfs
    import hivex  # Debian's python3-hivex, through the venv's system site packages

    assert hasattr(hivex, "Hivex")
    image = tmp_path / "ntfs.img"
    g = guestfs.GuestFS(python_return_dict=True)
    try:
        g.set_backend("direct")
        g.set_backend_settings(["force_tcg"])  # /dev/kvm here hangs stock kernels
        g.disk_create(str(image), "raw", 64 * 1024 * 1024)
        g.add_drive_opts(str(image), format="raw", readonly=False)
        g.launch()
        g.part_init("/dev/sda", "mbr")
        g.part_add("/dev/sda", "p", 2048, -1)
        g.mkfs("ntfs", "/dev/sda1")
        g.mount("/dev/sda1", "/")
        g.mkdir_p("/Windows/System32/config")
        g.write("/Windows/System32/config/probe.txt", b"hello")
        assert g.cat("/Windows/System32/config/probe.txt") == "hello"
        assert g.vfs_type("/dev/sda1") == "ntfs"
        g.shutdown()
    finally:
        g.close()


def test_prefect_test_server_runs_flows(prefect_api: str) -> None:
    from prefect import flow
    from prefect.client.orchestration import get_client

    @flow(name="fixture-check")
    def add(a: int, b: int) -> int:
        return a + b

    state = add(2, 3, return_state=True)
    assert state.result() == 5
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(state.state_details.flow_run_id)
    assert run.state.is_completed() and prefect_api.startswith("http://127.0.0.1:")
