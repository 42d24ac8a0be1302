"""Uploading images into page blobs on the suite's real Azurite, as a managed-disk grant gives them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from imageport.disks.convert import convert, hash_disk
from imageport.disks.detect import open_disk
from imageport.errors import InputError, StorageAccessDenied, TargetNotEmpty, TransferError
from imageport.models import DiskFormat
from imageport.results import from_page_upload
from imageport.storage.page_blob import PageBlob
from imageport.transfer.pages import upload_to_page_blob
from imageport.transfer.plan import covered, plan_chunks
from tests.core.disks.images import Interrupted, MiB, interrupt_after, make_full, make_raw, qemu_compare
from tests.infra.services import AZURITE_ACCOUNT, AZURITE_KEY

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def container(azurite):  # type: ignore[no-untyped-def]
    from azure.storage.blob import BlobServiceClient

    service = BlobServiceClient.from_connection_string(azurite.info["connection_string"])
    return service.create_container(f"disks-{uuid.uuid4().hex[:8]}")


def page_blob_sas(container, size: int, expiry_minutes: int = 60) -> str:  # type: ignore[no-untyped-def]
    """A page blob of ``size`` bytes and a read/write SAS for it: what a managed disk's grant hands out."""
    from azure.storage.blob import BlobSasPermissions, generate_blob_sas

    name = f"disk-{uuid.uuid4().hex[:8]}.vhd"
    container.get_blob_client(name).create_page_blob(size=size)
    sas = generate_blob_sas(
        AZURITE_ACCOUNT,
        container.container_name,
        name,
        account_key=AZURITE_KEY,
        permission=BlobSasPermissions(read=True, write=True),
        expiry=datetime.now(UTC) + timedelta(minutes=expiry_minutes),
    )
    return f"{container.url}/{name}?{sas}"


def download(url: str, path: Path) -> Path:
    from azure.storage.blob import BlobClient

    with open(path, "wb") as f:
        BlobClient.from_blob_url(url).download_blob(max_concurrency=4).readinto(f)
    return path


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A 96 MiB (+ a sector) VHDX with scattered data, and the raw it was made from."""
    d = tmp_path_factory.mktemp("upload")
    raw = make_raw(d / "src.raw", 96 * MiB + 512, runs=7, seed=41, max_run=3 * MiB)
    vhdx = d / "src.vhdx"
    convert(raw, vhdx, DiskFormat.VHDX, size=96 * MiB + 512)
    return raw, vhdx


NEEDED = 97 * MiB + 512  # 96 MiB + 512 rounds up to 97 MiB, plus the footer


def as_fixed_vhd_hash(image: Path, tmp_path: Path) -> str:
    """The content hash of the disk Azure receives: the image grown to a whole MiB."""
    return convert(image, tmp_path / f"ref-{uuid.uuid4().hex[:6]}.vhd", DiskFormat.VHD).content_hash


def test_upload_converts_to_a_fixed_vhd_on_the_fly(container, image, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    raw, vhdx = image
    url = page_blob_sas(container, NEEDED)
    with open_disk(vhdx) as reader:
        allocated = reader.allocated_bytes()
        result = upload_to_page_blob(reader, PageBlob(url), threads=4, checkpoint_dir=tmp_path / "cp")
    assert result.content_hash == as_fixed_vhd_hash(vhdx, tmp_path)
    # bytes written ≤ allocated + footer + one chunk per extent edge
    assert result.bytes_sent <= allocated + 512 + 2 * 4 * MiB * 8
    got = download(url, tmp_path / "got.vhd")
    assert got.read_bytes()[-512:][:8] == b"conectix"
    verdict = qemu_compare(raw, "raw", got, "vpc")
    assert verdict.returncode == 0, verdict.stdout + verdict.stderr
    assert (
        convert(got, tmp_path / "again.raw", DiskFormat.RAW, source_format=DiskFormat.VHD).content_hash
        == result.content_hash
    )
    assert list((tmp_path / "cp").iterdir()) == []  # checkpoint removed on success
    typed = from_page_upload(result)  # the one converter to a StageResult
    assert (typed.stage, typed.content_hash, typed.bytes_written) == ("upload", result.content_hash, result.bytes_sent)
    assert typed.details is not None and typed.details.chunks_sent == result.chunks_sent > 0 and not typed.created


def test_wrong_target_size_is_refused_before_writing(container, image, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _, vhdx = image
    url = page_blob_sas(container, 96 * MiB + 512)
    with open_disk(vhdx) as reader, pytest.raises(InputError, match=f"needs exactly {NEEDED}"):
        upload_to_page_blob(reader, PageBlob(url), checkpoint_dir=tmp_path)
    assert list(PageBlob(url).present()) == []


def test_a_target_with_foreign_data_needs_force(container, image, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    raw, vhdx = image
    url = page_blob_sas(container, NEEDED)
    PageBlob(url).write(90 * MiB, b"\x01" * 4096)  # stale data where the image is zero
    with open_disk(vhdx) as reader, pytest.raises(TargetNotEmpty, match="--force"):
        upload_to_page_blob(reader, PageBlob(url), checkpoint_dir=tmp_path)
    with open_disk(vhdx) as reader:
        upload_to_page_blob(reader, PageBlob(url), checkpoint_dir=tmp_path, overwrite=True)
    assert qemu_compare(raw, "raw", download(url, tmp_path / "got.vhd"), "vpc").returncode == 0


def test_an_expired_sas_stops_at_once_without_leaking_it(container, image, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _, vhdx = image
    url = page_blob_sas(container, NEEDED, expiry_minutes=-5)
    with pytest.raises(StorageAccessDenied) as info:
        upload_to_page_blob(open_disk(vhdx), PageBlob(url), checkpoint_dir=tmp_path)
    assert "sig=" not in str(info.value) or "sig=REDACTED" in str(info.value)
    assert url.split("sig=")[1][:10] not in str(info.value)


UPLOADER = """
import sys
from pathlib import Path
from imageport.disks.detect import open_disk
from imageport.storage.page_blob import PageBlob
from imageport.transfer.pages import upload_to_page_blob
progress = lambda done, total: print(done, total, flush=True)
with open_disk(sys.argv[1]) as reader:
    r = upload_to_page_blob(reader, PageBlob(sys.argv[2]), threads=1, checkpoint_dir=Path(sys.argv[3]),
                            progress=progress)
print("RESULT", r.chunks_sent, r.chunks_resumed, r.content_hash, flush=True)
"""


def test_killed_half_way_resumes_resending_at_most_one_window(container, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    raw = make_raw(tmp_path / "big.raw", 256 * MiB, runs=1, seed=3, max_run=2)
    with open(raw, "r+b") as f:  # data everywhere: 64 chunks to send
        for i in range(64):
            f.seek(i * 4 * MiB)
            f.write(os.urandom(4 * MiB))
    url = page_blob_sas(container, 256 * MiB + 512)
    cp = tmp_path / "cp"
    proc = subprocess.Popen([sys.executable, "-c", UPLOADER, str(raw), url, str(cp)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    for line in proc.stdout:  # wait until about a third has been sent, then kill -9
        if int(line.split()[0]) >= 80 * MiB:
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    arrived = sum(e.length for e in PageBlob(url).present()) // (4 * MiB)
    assert 0 < arrived < 64
    assert download(url, tmp_path / "partial.vhd").read_bytes()[-512:] == bytes(512)  # no footer: not complete

    rerun = subprocess.run(
        [sys.executable, "-c", UPLOADER, str(raw), url, str(cp)], capture_output=True, text=True, timeout=300
    )
    assert rerun.returncode == 0, rerun.stderr
    _, sent, resumed, content_hash = rerun.stdout.strip().splitlines()[-1].split()
    window = 1 + 2  # threads + spare buffers: chunks that may have been in flight
    assert int(sent) <= 64 - arrived + window and int(resumed) >= arrived - window
    assert content_hash == hash_disk(raw).content_hash
    assert qemu_compare(raw, "raw", download(url, tmp_path / "done.vhd"), "vpc").returncode == 0


def test_cli_upload_reads_the_sas_from_stdin_and_never_prints_it(
    imageport_bin: str,
    container,
    image,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    _, vhdx = image
    url = page_blob_sas(container, NEEDED)
    env = dict(os.environ, IMAGEPORT_CHECKPOINTS=str(tmp_path / "cp"))
    done = subprocess.run(
        [imageport_bin, "upload", str(vhdx), "-", "--json"],
        input=f"sas+{url}\n",
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    signature = url.split("sig=")[1].split("&")[0]
    assert signature not in done.stdout + done.stderr
    assert json.loads(done.stdout)["content_hash"] == as_fixed_vhd_hash(vhdx, tmp_path)
    bad = subprocess.run([imageport_bin, "upload", str(vhdx), url], capture_output=True, text=True, env=env)
    assert bad.returncode == 2 and "sas+https://" in bad.stderr and signature not in bad.stderr
    # the same blob read back as a source, by its SAS
    read = subprocess.run(
        [imageport_bin, "disk", "hash", f"sas+{url}", "--json"], capture_output=True, text=True, env=env, timeout=300
    )
    assert read.returncode == 0, read.stderr
    assert json.loads(read.stdout)["content_hash"] == json.loads(done.stdout)["content_hash"]
    assert signature not in read.stdout + read.stderr


def test_injected_faults_are_retried_and_the_result_is_identical(
    azurite,
    container,
    image,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    from tests.infra.fault_proxy import FaultProxy

    raw, vhdx = image
    url = page_blob_sas(container, NEEDED)
    proxy = FaultProxy(azurite.info["endpoint"], {2: 503, 3: "reset", 5: 500, 6: 429, 8: 503, 9: "reset"})
    slept: list[float] = []
    try:
        with open_disk(vhdx) as reader:
            upload_to_page_blob(
                reader, PageBlob(proxy.url_for(url)), threads=2, checkpoint_dir=tmp_path, sleep=slept.append
            )
    finally:
        proxy.close()
    assert [f for _, f in proxy.fired] == [503, "reset", 500, 429, 503, "reset"]
    assert 0 in slept  # Retry-After: 0 from the throttled answers was honoured
    assert qemu_compare(raw, "raw", download(url, tmp_path / "got.vhd"), "vpc").returncode == 0


def test_a_persistent_fault_ends_after_the_policys_attempts_honouring_retry_after(
    azurite,
    container,
    image,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    from imageport.errors import AzureThrottled, StorageUnreachable
    from imageport.transfer.pages import PAGE_RETRY
    from tests.infra.fault_proxy import FaultProxy

    _, vhdx = image
    url = page_blob_sas(container, NEEDED)
    # Every page write from the second on answers 503 with Retry-After: 25 -- the server's advice, longer
    # than any backoff delay, so the deadline (60 s from the first failure) ends it before the attempts do.
    proxy = FaultProxy(azurite.info["endpoint"], {n: 503 for n in range(2, 200)}, retry_after="25")
    slept: list[float] = []
    waits = PAGE_RETRY.schedule(AzureThrottled("x", retry_after=25))
    assert waits == [25.0, 25.0] and len(waits) + 1 < PAGE_RETRY.attempts
    try:
        with open_disk(vhdx) as reader, pytest.raises(StorageUnreachable, match="gave up after 3 attempts") as failed:
            upload_to_page_blob(
                reader, PageBlob(proxy.url_for(url)), threads=1, checkpoint_dir=tmp_path, sleep=slept.append
            )
    finally:
        proxy.close()
    assert failed.value.attempts == 3 and failed.value.core_gave_up
    # counted, not timed: each chunk that was sent got exactly 3 tries, 25 s (as advised) apart
    tried = len(proxy.fired)
    assert tried % 3 == 0 and 3 <= tried <= 3 * (1 + 2)  # one worker, at most two more chunks buffered
    assert slept == [25.0] * (2 * tried // 3)
    assert download(url, tmp_path / "partial.vhd").read_bytes()[-512:] == bytes(512)  # no footer


def test_a_non_transient_error_stops_at_once_and_leaves_no_footer(
    azurite,
    container,
    image,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    from tests.infra.fault_proxy import FaultProxy

    _, vhdx = image
    url = page_blob_sas(container, NEEDED)
    proxy = FaultProxy(azurite.info["endpoint"], {3: 403})
    try:
        with open_disk(vhdx) as reader, pytest.raises(StorageAccessDenied, match="forbidden"):
            upload_to_page_blob(
                reader, PageBlob(proxy.url_for(url)), threads=1, checkpoint_dir=tmp_path, sleep=lambda s: None
            )
        assert proxy.page_writes <= 3 + 3  # stopped right away: no retry storm (at most the window in flight)
    finally:
        proxy.close()
    assert download(url, tmp_path / "partial.vhd").read_bytes()[-512:] == bytes(512)


JSON_UPLOADER = """
import json, sys
from pathlib import Path
from imageport.disks.detect import open_disk
from imageport.storage.page_blob import PageBlob
from imageport.transfer.pages import upload_to_page_blob
progress = lambda done, total: print(done, total, flush=True)
with open_disk(sys.argv[1]) as reader:
    r = upload_to_page_blob(reader, PageBlob(sys.argv[2]), threads=1, checkpoint_dir=Path(sys.argv[3]),
                            progress=progress)
print("RESULT " + json.dumps(r.__dict__), flush=True)
"""


def test_a_source_edited_between_kill_and_resume_starts_afresh(container, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    raw = make_full(tmp_path / "src.raw", 96 * MiB)
    url = page_blob_sas(container, 96 * MiB + 512)
    cp = tmp_path / "cp"
    command = [sys.executable, "-c", JSON_UPLOADER, str(raw), url, str(cp)]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    for line in proc.stdout:  # kill -9 once 40 MiB were read (and mostly sent)
        if int(line.split()[0]) >= 40 * MiB:
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert 0 < sum(e.length for e in PageBlob(url).present()) < 96 * MiB
    with open(raw, "r+b") as f:  # edited in place, same size: the first chunks, which have surely arrived
        f.write(os.urandom(8 * MiB))

    rerun = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    result = json.loads(rerun.stdout.strip().splitlines()[-1].removeprefix("RESULT "))
    assert qemu_compare(raw, "raw", download(url, tmp_path / "done.vhd"), "vpc").returncode == 0
    assert result["content_hash"] == hash_disk(raw).content_hash
    assert "the source changed since the interrupted upload" in result["restarted"]
    assert result["chunks_resumed"] == 0 and result["chunks_sent"] == 24


def test_resumed_chunks_are_read_back_from_the_target_and_a_wrong_one_is_sent_again(  # type: ignore[no-untyped-def]
    container, tmp_path: Path
) -> None:
    raw = make_full(tmp_path / "src.raw", 48 * MiB)
    url = page_blob_sas(container, 48 * MiB + 512)
    with open_disk(raw) as reader, pytest.raises(Interrupted):
        upload_to_page_blob(
            reader, PageBlob(url), threads=2, checkpoint_dir=tmp_path, progress=interrupt_after(24 * MiB)
        )
    arrived = covered(list(PageBlob(url).present()), 48 * MiB)
    assert 0 in arrived and len(arrived) < 12
    PageBlob(url).write(0, os.urandom(4 * MiB))  # the target no longer holds what the first run sent
    with open_disk(raw) as reader:
        result = upload_to_page_blob(reader, PageBlob(url), threads=2, checkpoint_dir=tmp_path)
    assert qemu_compare(raw, "raw", download(url, tmp_path / "done.vhd"), "vpc").returncode == 0
    assert result.content_hash == hash_disk(raw).content_hash
    assert result.restarted is None and result.chunks_read_back == len(arrived)
    assert result.chunks_repaired == 1 and result.chunks_resumed == len(arrived) - 1


class CountingBlob(PageBlob):
    """A page blob that counts what is read back, and can be told to corrupt one write silently."""

    def __init__(self, url: str, corrupt_at: int | None = None) -> None:
        super().__init__(url)
        self.read_bytes = 0
        self.corrupt_at = corrupt_at

    def read(self, offset: int, length: int) -> bytes:
        self.read_bytes += length
        return super().read(offset, length)

    def write(self, offset: int, data: bytes | memoryview) -> None:
        if offset == self.corrupt_at:
            data = bytes(b ^ 1 for b in bytes(data[:512])) + bytes(data[512:])
        super().write(offset, data)


def test_verify_full_reads_the_target_once_and_catches_what_the_writer_believes(  # type: ignore[no-untyped-def]
    container, image, tmp_path: Path
) -> None:
    _, vhdx = image
    url = page_blob_sas(container, NEEDED)
    blob = CountingBlob(url)
    with open_disk(vhdx) as reader:
        data_chunks = len(plan_chunks(reader.extents(), 97 * MiB))
        result = upload_to_page_blob(reader, blob, checkpoint_dir=tmp_path / "cp", verify="full")
    assert result.verified == "full" and result.content_hash == as_fixed_vhd_hash(vhdx, tmp_path)
    # one read of the data (the page ranges, on the 4 MiB grid), not of the 97 MiB virtual size
    assert blob.read_bytes <= data_chunks * 4 * MiB < 97 * MiB

    first = next(iter(PageBlob(url).present())).offset // (4 * MiB) * (4 * MiB)
    lying = CountingBlob(page_blob_sas(container, NEEDED), corrupt_at=first)
    with open_disk(vhdx) as reader, pytest.raises(TransferError, match="read back, the blob holds"):
        upload_to_page_blob(reader, lying, checkpoint_dir=tmp_path / "cp2", verify="full")
