"""One libguestfs appliance per operation, on an image file or a block device.

A launch costs ~15 s under TCG here, so every prepare or diagnostics run
launches exactly once and does all its reading and writing through that
handle. The image's container (raw, VHD, VHDX, VMDK) is given to qemu by
name, detected by imageport's own reader, never guessed by qemu.

Acceleration: ``LIBGUESTFS_BACKEND``/``LIBGUESTFS_BACKEND_SETTINGS`` win when
set. Otherwise KVM is used when the CPU exposes vmx/svm and the ``kvm_pvm``
module is absent -- on hosts where ``/dev/kvm`` comes from ``kvm_pvm`` a stock
kernel hangs under KVM, so TCG is forced there.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imageport.disks.detect import open_disk
from imageport.errors import InputError
from imageport.guest.errors import translate_guestfs_errors
from imageport.models import DiskFormat

QEMU_FORMATS = {
    DiskFormat.RAW: "raw",
    DiskFormat.VHD: "vpc",
    DiskFormat.VHD_DYNAMIC: "vpc",
    DiskFormat.VHDX: "vhdx",
    DiskFormat.VMDK_SPARSE: "vmdk",
    DiskFormat.VMDK_STREAM: "vmdk",
}


@dataclass
class Timings:
    launch_s: float = 0.0
    work_s: float = 0.0
    launches: int = 0
    marks: dict[str, float] = field(default_factory=dict)


def _kvm_usable() -> bool:
    try:
        modules = Path("/proc/modules").read_text()
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return os.path.exists("/dev/kvm") and "kvm_pvm" not in modules and (" vmx" in flags or " svm" in flags)


def qemu_format(path: str) -> str:
    if path.startswith("/dev/"):
        return "raw"
    with open_disk(path) as reader:
        fmt = reader.format
        if reader.chain()[1:]:
            raise InputError(f"{path}: a differencing disk; prepare works on a whole (merged) copy")
    if fmt is DiskFormat.VMDK_STREAM:
        raise InputError(f"{path}: a streamOptimized VMDK cannot be opened in place; convert it first")
    return QEMU_FORMATS[fmt]


def ensure_cachedir() -> None:
    """Create the appliance cache ``LIBGUESTFS_CACHEDIR`` names: libguestfs prints a ``set_cachedir``
    error for a missing one (then falls back to a temporary one, rebuilt every run) -- a newcomer's first
    run must not print an error that is not theirs to act on."""
    cachedir = os.environ.get("LIBGUESTFS_CACHEDIR")
    if cachedir:
        os.makedirs(cachedir, exist_ok=True)


@contextlib.contextmanager
def appliance(path: str, readonly: bool, timings: Timings | None = None) -> Iterator[Any]:
    """A launched libguestfs handle with ``path`` as /dev/sda."""
    import guestfs

    timings = timings or Timings()
    fmt = qemu_format(path)
    ensure_cachedir()
    g = guestfs.GuestFS(python_return_dict=True)
    try:
        with translate_guestfs_errors(f"start the guest appliance for {path}"):
            g.set_backend(os.environ.get("LIBGUESTFS_BACKEND", "direct"))
            settings = os.environ.get("LIBGUESTFS_BACKEND_SETTINGS")
            if settings:
                g.set_backend_settings(settings.split(":"))
            elif not _kvm_usable():
                g.set_backend_settings(["force_tcg"])
            g.add_drive_opts(path, format=fmt, readonly=readonly)
            started = time.monotonic()
            g.launch()
            timings.launch_s += time.monotonic() - started
            timings.launches += 1
        started = time.monotonic()
        yield g
        timings.work_s += time.monotonic() - started
        if not readonly:
            with translate_guestfs_errors(f"write back {path}"):
                g.shutdown()  # flushes the disk; an error here means the image may be incomplete
    finally:
        g.close()
