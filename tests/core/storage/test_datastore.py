"""Datastore files over HTTPS /folder against the suite's vCenter simulator: ranged parallel reads."""

from __future__ import annotations

import hashlib
import ssl
import time
from pathlib import Path

import pytest

from imageport.disks.convert import hash_disk
from imageport.disks.detect import open_disk
from imageport.disks.local_files import LOCAL
from imageport.errors import InputError, StorageAccessDenied, StorageNotFound
from imageport.models import DiskFormat
from imageport.storage.datastore import DatastoreFileSystem, DatastoreLocation
from imageport.transfer.copy import copy_image
from tests.core.disks.images import MiB, make_raw, qemu_compare, qemu_convert
from tests.infra.configs import vcsim_vsphere

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("ds")
    raw = make_raw(d / "gold.raw", 24 * MiB, runs=6, seed=41, max_run=2 * MiB)
    return {
        "raw": raw,
        "vhdx": qemu_convert(raw, d / "gold.vhdx", "vhdx-dynamic"),
        "flat": qemu_convert(raw, d / "flat.vmdk", "vmdk-flat"),
        "sparse": qemu_convert(raw, d / "sparse.vmdk", "vmdk-sparse"),
    }


@pytest.fixture(scope="module")
def datastore(vcsim):  # type: ignore[no-untyped-def]
    session = vcsim_vsphere(vcsim, datastore="LocalDS_0").build()
    with session:
        fs = session.datastore_files()
        yield fs
        fs.close()


def put_file(fs: DatastoreFileSystem, local: Path, path: str) -> None:
    fs.put(path, local.read_bytes())


def test_images_on_a_datastore_read_as_local_ones(datastore, images, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    expected = hash_disk(images["raw"]).content_hash
    put_file(datastore, images["vhdx"], "gold/gold.vhdx")
    put_file(datastore, images["sparse"], "gold/sparse.vmdk")
    put_file(datastore, images["flat"], "gold/flat.vmdk")  # descriptor naming its sibling extent
    put_file(datastore, images["flat"].with_name("flat-flat.vmdk"), "gold/flat-flat.vmdk")
    for path, fmt in (("gold/gold.vhdx", DiskFormat.VHDX), ("gold/sparse.vmdk", DiskFormat.VMDK_SPARSE)):
        with open_disk(path, fs=datastore) as reader:
            assert reader.format is fmt
        assert hash_disk(path, fs=datastore).content_hash == expected
    with open_disk("gold/flat.vmdk", fs=datastore) as reader:
        assert [r.path for r in reader.chain()] == ["gold/flat.vmdk"]
    assert hash_disk("gold/flat.vmdk", fs=datastore).content_hash == expected
    result = copy_image("gold/flat.vmdk", datastore, str(tmp_path / "out.vhdx"), LOCAL, DiskFormat.VHDX)
    assert result.content_hash == expected
    assert qemu_compare(images["raw"], "raw", tmp_path / "out.vhdx", "vhdx").returncode == 0


def test_ranges_are_exact_and_missing_files_are_named(datastore, images) -> None:  # type: ignore[no-untyped-def]
    put_file(datastore, images["raw"], "gold/plain.raw")
    source = datastore.open("gold/plain.raw")
    data = images["raw"].read_bytes()
    assert source.size == len(data)
    for offset, length in ((0, 512), (3 * MiB + 17, 5 * MiB + 3), (len(data) - 100, 4096)):
        assert source.pread(offset, length) == data[offset : offset + length]
    assert datastore.isfile("gold/plain.raw") and not datastore.isfile("gold/nope.raw")
    assert not datastore.isfile("gold")  # a folder is not a file
    with pytest.raises(StorageNotFound, match=r"\[LocalDS_0\] gold/nope.vhdx"):
        open_disk("gold/nope.vhdx", fs=datastore)
    with pytest.raises(InputError, match="vSphere import"):
        datastore.open_sink("gold/new.vhdx")
    # A datastore has no output lock: asking to wait for one is refused, not accepted and ignored.
    writable = DatastoreFileSystem(datastore.location, remove=lambda path: None)
    with pytest.raises(InputError, match="wait_lock"):
        writable.open_sink("gold/new.vhdx", wait_lock=True)
    writable.close()


def test_a_pinned_certificate_is_enforced(vcsim, datastore, images) -> None:  # type: ignore[no-untyped-def]
    put_file(datastore, images["raw"], "gold/pin.raw")
    pem = ssl.get_server_certificate(("127.0.0.1", vcsim.port))
    sha1 = hashlib.sha1(ssl.PEM_cert_to_DER_cert(pem)).hexdigest().upper()
    right = ":".join(sha1[i : i + 2] for i in range(0, 40, 2))
    base = datastore.location
    pinned = DatastoreFileSystem(DatastoreLocation(base.base_url, base.datacenter, base.datastore, thumbprint=right))
    assert pinned.isfile("gold/pin.raw")
    wrong = DatastoreFileSystem(
        DatastoreLocation(base.base_url, base.datacenter, base.datastore, thumbprint="AA:" * 19 + "AA")
    )
    with pytest.raises(StorageAccessDenied, match="TLS"):
        wrong.isfile("gold/pin.raw")


def test_cli_reads_and_copies_from_a_datastore_by_connector(run_cli, vcsim, datastore, images, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    put_file(datastore, images["sparse"], "cli/gold.vmdk")
    created = run_cli(
        "connector", "create", "vsphere", "ds-vc", "host=127.0.0.1", f"port={vcsim.port}",
        f"username={vcsim.info['username']}", "verify_tls=false", stdin=vcsim.info["password"] + "\n",
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    info = run_cli("disk", "info", "datastore://ds-vc/LocalDS_0/cli/gold.vmdk", "--json")
    assert info.returncode == 0, info.stderr
    assert '"format": "vmdk-sparse"' in info.stdout
    copied = run_cli("copy", "datastore://ds-vc/LocalDS_0/cli/gold.vmdk", str(tmp_path / "gold.vhdx"), "--to", "vhdx")
    assert copied.returncode == 0, copied.stderr
    assert qemu_compare(images["raw"], "raw", tmp_path / "gold.vhdx", "vhdx").returncode == 0
    missing = run_cli("disk", "info", "datastore://ds-vc/NoSuchDS/cli/gold.vmdk")
    assert missing.returncode == 1 and "no datastore 'NoSuchDS'" in missing.stderr


def test_a_datastore_file_is_fingerprinted_by_its_version(datastore, images) -> None:  # type: ignore[no-untyped-def]
    from imageport.disks.fingerprint import fingerprint

    put_file(datastore, images["vhdx"], "gold/version.vhdx")
    with open_disk("gold/version.vhdx", fs=datastore) as reader:
        before = fingerprint(reader)
    stamp = before.links[0].files[0]
    assert stamp["size"] == images["vhdx"].stat().st_size and "last-modified" in stamp
    changed = bytearray(images["vhdx"].read_bytes())
    changed[len(changed) // 2] ^= 0xFF  # a same-size edit, written again
    time.sleep(1.1)  # Last-Modified has whole seconds (the datastore sends no ETag): a later second
    datastore.put("gold/version.vhdx", bytes(changed))
    with open_disk("gold/version.vhdx", fs=datastore) as reader:
        after = fingerprint(reader)
    assert after.links[0].files[0]["size"] == stamp["size"] and after != before


def test_a_dropped_range_resumes_alone(datastore, images, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Every connection dropped mid-copy: each broken range asks for its own remainder, the pass goes on."""
    import dataclasses
    from urllib.parse import urlsplit

    from tests.infra.tcp_proxy import CuttingProxy

    put_file(datastore, images["raw"], "gold/cut.raw")
    size = images["raw"].stat().st_size
    upstream = urlsplit(datastore.location.base_url).port
    proxy = CuttingProxy(upstream, cut_after=9 * MiB, count_replies=True)  # mid-part, a few parts in flight
    try:
        location = dataclasses.replace(datastore.location, base_url=f"https://127.0.0.1:{proxy.port}")
        cut = DatastoreFileSystem(location)
        result = copy_image("gold/cut.raw", cut, str(tmp_path / "cut.raw"), LOCAL, DiskFormat.RAW)
        cut.close()
    finally:
        proxy.close()
    assert proxy.cuts == 1 and cut.resumed >= 1
    assert result.attempts == 1  # no second pass: the ranges resumed on their own
    assert (tmp_path / "cut.raw").read_bytes() == images["raw"].read_bytes()
    # what arrived is kept: a resumed range asks only for its missing bytes, never its whole part again
    # (beyond the file, only the format probe's small header reads: well under one 4 MiB part)
    assert size <= cut.fetched < size + MiB
