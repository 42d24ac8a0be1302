"""A Windows guest's first boot, for the stand-ins whose VMs boot a prepared image (ARM, vcsim): its startup script.

Neither stand-in runs Windows, so this plays what Windows does when it boots an image imageport prepared:
the local Group Policy startup scripts registered in the image's SOFTWARE hive
(``...\\Group Policy\\Scripts\\Startup\\0\\0`` ``Script``, read with regipy) run as SYSTEM; the one
imageport registers is ``C:\\ProgramData\\imageport\\firstboot\\run.cmd`` (it must be on the volume), which runs
each ``NN-*.cmd`` beside it in name order and appends to ``firstboot.log``: a ``start`` line, the action's
output, an ``end ... exit N`` line, and after the last one the closing ``all actions done`` line. The actions
are read from the image itself (ntfs-3g's ``ntfsls``); their commands are not executed (no Windows here:
each "exits 0", or the code a test asks for in ``exit_codes``), and the log is written into the image's NTFS
volume (``ntfscp``), so what an orchestrator later reads from the guest is what this boot left on the disk.
Not played: moving the actions to ``done\\`` and deleting the registration (ntfs-3g's tools neither rename
files nor edit a hive in place) -- a log that already ends the runner's run stands for the removed
registration, so a second boot runs nothing; an image without the registration or the runner runs nothing.

No appliance launch: the volume is cut out of the image, changed, and written back (the test images are MiBs).
"""

from __future__ import annotations

import datetime
import shutil
import subprocess
from pathlib import Path

from tests.infra.windows_image import ntfs_span, windows_volume

FIRSTBOOT = "/ProgramData/imageport/firstboot"
RUNNER = "C:\\ProgramData\\imageport\\firstboot\\run.cmd"
STARTUP = "\\Microsoft\\Windows\\CurrentVersion\\Group Policy\\Scripts\\Startup\\0\\0"


def startup_scripts(volume: Path, work: Path) -> list[str]:
    """The ``Script`` values of the startup scripts registered in the volume's SOFTWARE hive."""
    from regipy.exceptions import RegistryKeyNotFoundException
    from regipy.registry import RegistryHive

    hive = work / "SOFTWARE"
    with open(hive, "wb") as out:
        subprocess.run(["ntfscat", str(volume), "/Windows/System32/config/SOFTWARE"], stdout=out, check=True)
    try:
        key = RegistryHive(str(hive)).get_key(STARTUP)
    except RegistryKeyNotFoundException:
        return []
    return [str(v.value) for v in key.iter_values() if v.name == "Script"]


def first_boot(image: Path, work: Path, exit_codes: dict[str, int] | None = None) -> list[str]:
    """Boot ``image`` (a raw disk) once as Windows would, for its startup script; the actions it ran."""
    work.mkdir(parents=True, exist_ok=True)
    volume = windows_volume(image, work / "volume.img")
    try:
        names = _listing(volume, FIRSTBOOT)
        if RUNNER not in startup_scripts(volume, work) or "run.cmd" not in names:
            return []
        log = _read(volume, f"{FIRSTBOOT}/firstboot.log") or b""
        if b"] all actions done" in log:  # the runner unregistered itself at the end of its boot: nothing runs again
            return []
        actions = sorted(n for n in names if len(n) > 3 and n[:2].isdigit() and n[2] == "-" and n.endswith(".cmd"))
        lines = []
        for name in actions:
            code = (exit_codes or {}).get(name, 0)
            lines += [f"[{_stamp()}] start {name}", f"[{_stamp()}] end {name} exit {code}"]
        lines.append(f"[{_stamp()}] all actions done; startup script removed")
        (work / "firstboot.log").write_bytes(log + ("\r\n".join(lines) + "\r\n").encode())
        subprocess.run(["ntfscp", "-f", "-q", str(volume), str(work / "firstboot.log"), f"{FIRSTBOOT}/firstboot.log"],
                       check=True, capture_output=True)  # fmt: skip
        _write_volume(image, volume)
        return actions
    finally:
        volume.unlink(missing_ok=True)


def read_file(image: Path, path: str, work: Path) -> bytes | None:
    """A file of the image's Windows volume (``path`` as /ProgramData/...), or None when it is not there."""
    work.mkdir(parents=True, exist_ok=True)
    volume = windows_volume(image, work / "read.img")
    try:
        return _read(volume, path)
    finally:
        volume.unlink(missing_ok=True)


def windows_path(path: str) -> str:
    """``C:\\ProgramData\\x`` as the volume path ntfs-3g takes (``/ProgramData/x``); refuses another drive."""
    if not path[:3].upper() == "C:\\":
        raise ValueError(f"not on the system drive: {path}")
    return "/" + path[3:].replace("\\", "/")


def _listing(volume: Path, directory: str) -> list[str]:
    done = subprocess.run(["ntfsls", "-f", str(volume), "-p", directory], capture_output=True, text=True, check=False)
    return done.stdout.split() if done.returncode == 0 else []


def _read(volume: Path, path: str) -> bytes | None:
    done = subprocess.run(["ntfscat", str(volume), path], capture_output=True, check=False)
    return done.stdout if done.returncode == 0 else None


def _write_volume(image: Path, volume: Path) -> None:
    start, size = ntfs_span(image)
    assert volume.stat().st_size == size
    with open(volume, "rb") as src, open(image, "r+b") as disk:
        disk.seek(start)
        shutil.copyfileobj(src, disk, 4 << 20)


def _stamp() -> str:
    """``%date% %time%`` as an en-US Windows prints them."""
    now = datetime.datetime.now()
    return now.strftime("%a %m/%d/%Y ") + now.strftime("%H:%M:%S.") + f"{now.microsecond // 10000:02d}"
