"""What a vSphere CE is handed: a job CD (the agent bundle and the job) and a small guestinfo envelope.

The orchestrator builds an ISO 9660 image (Rock Ridge and Joliet names, volume
``IMAGEPORT``) holding ``imageport-agent.pyz`` and ``job.json``, uploads it to
the CE's work folder and attaches it as a CD-ROM. ``guestinfo.imageport.job``
then carries only the envelope, one line the template's boot service reads
with plain ``sh``::

    imageport-ce boot=1 protocol=P bundle=SHA256 job=SHA256 result-lun=N

``boot`` is the contract between this module and the boot service (this CD
layout, the envelope, the result disk of ``ce_result``); the service refuses
any other value. ``protocol`` is the bundle's job/result protocol, checked by
the bundle itself. The service verifies both digests before it runs anything.
"""

from __future__ import annotations

import hashlib
import io
import re
from dataclasses import dataclass

from imageport.errors import EngineError

BOOT_PROTOCOL = 1
VOLUME = "IMAGEPORT"
BUNDLE_NAME = "imageport-agent.pyz"
JOB_NAME = "job.json"
_ISO_NAMES = {BUNDLE_NAME: "/AGENT.PYZ;1", JOB_NAME: "/JOB.JSON;1"}
_LINE = re.compile(r"imageport-ce boot=(\d+) protocol=(\d+) bundle=([0-9a-f]{64}) job=([0-9a-f]{64}) result-lun=(\d+)")


@dataclass(frozen=True)
class Envelope:
    protocol: int  # the bundle's job/result protocol
    bundle_sha256: str
    job_sha256: str
    result_lun: int
    boot: int = BOOT_PROTOCOL

    def line(self) -> str:
        return (
            f"imageport-ce boot={self.boot} protocol={self.protocol} bundle={self.bundle_sha256} "
            f"job={self.job_sha256} result-lun={self.result_lun}"
        )

    @classmethod
    def parse(cls, line: str) -> Envelope:
        match = _LINE.fullmatch(line.strip())
        if match is None:
            raise EngineError(f"not an imageport CE envelope: {line[:120]!r}")
        boot, protocol, bundle, job, lun = match.groups()
        return cls(int(protocol), bundle, job, int(lun), int(boot))


def job_iso(bundle: bytes, job: bytes) -> bytes:
    """The job CD: the bundle and the job file, as ``mount /dev/sr0`` shows them in the CE."""
    import pycdlib

    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=3, rock_ridge="1.09", joliet=3, vol_ident=VOLUME)
    contents = {BUNDLE_NAME: bundle, JOB_NAME: job}
    for name, data in contents.items():
        iso.add_fp(io.BytesIO(data), len(data), _ISO_NAMES[name], rr_name=name, joliet_path=f"/{name}")
    out = io.BytesIO()
    iso.write_fp(out)
    iso.close()
    return out.getvalue()


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
