"""The source fingerprint: what names one version of an image, for every resume and every cache key.

A resumed write trusts bytes (or digests) an earlier run produced from its
source; a cached stage trusts an earlier result. Both are right only if the
source has not changed since, so both compare a ``SourceFingerprint`` taken
now with the one recorded then. It changes on any edit:

- the store's stamp of every file of the image (``ByteSource.stamp``): size,
  modification time and a file id -- locally ``st_mtime_ns``/``st_ctime_ns``,
  ``st_ino``, ``st_dev``; on SMB the last-write and change times and the file
  id (``FileInternalInformation``); on a datastore ``Last-Modified``/``ETag``;
  on a page blob its ``ETag`` and last-modified time;
- the container's own change markers (``DiskReader.change_markers``): VHDX
  DataWriteGuid, FileWriteGuid, log GUID and header sequence; VHD footer
  timestamp, checksum and unique id; VMDK CID and parentCID;
- a SHA-256 of the container's metadata as the reader parsed it
  (``DiskReader.metadata``: BAT, grain directory, descriptor), so it costs no
  extra read, and is bounded by what the reader holds anyway.

A differencing disk's fingerprint covers its whole parent chain.
"""

from __future__ import annotations

import hashlib

from pydantic import BaseModel, ConfigDict

from imageport.disks.formats import DiskReader


class LinkFingerprint(BaseModel):
    """One file of a chain (the image itself, or a parent)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    path: str
    format: str
    virtual_size: int
    files: list[dict[str, int | str]]
    markers: dict[str, str]
    metadata_sha256: str


class SourceFingerprint(BaseModel):
    """A source image's identity *and version*; equal fingerprints mean the same bytes were there."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    links: list[LinkFingerprint]  # the image first, then its parents

    @property
    def digest(self) -> str:
        """A short stable name of this fingerprint (for cache keys and logs)."""
        return "fp:" + hashlib.sha256(self.model_dump_json().encode()).hexdigest()[:32]

    def differences(self, earlier: SourceFingerprint | None) -> str:
        """Why ``earlier`` is not this fingerprint, in words (empty when equal)."""
        if earlier is None:
            return "no fingerprint was recorded"
        if earlier == self:
            return ""
        if len(earlier.links) != len(self.links):
            return f"the parent chain has {len(self.links)} disk(s), was {len(earlier.links)}"
        for now, then in zip(self.links, earlier.links):  # noqa: B905 (equal lengths, checked; the agent runs on 3.9)
            for field in ("path", "format", "virtual_size"):
                if getattr(now, field) != getattr(then, field):
                    return f"{now.path}: {field} is {getattr(now, field)}, was {getattr(then, field)}"
            changed = sorted({k for k in {*now.markers, *then.markers} if now.markers.get(k) != then.markers.get(k)})
            if changed:
                return f"{now.path}: container marker(s) {', '.join(changed)} changed"
            if now.files != then.files:
                pairs = zip(now.files, then.files)  # noqa: B905 (the agent runs on 3.9: no strict=)
                keys = sorted({k for a, b in pairs for k in {*a, *b} if a.get(k) != b.get(k)})
                return f"{now.path}: file {', '.join(keys) or 'list'} changed"
            if now.metadata_sha256 != then.metadata_sha256:
                return f"{now.path}: container metadata (allocation table) changed"
        return "fingerprint changed"


def fingerprint(reader: DiskReader) -> SourceFingerprint:
    """The fingerprint of an opened image on any file system (local, SMB, datastore, page blob)."""
    return SourceFingerprint(links=[_link(link) for link in reader.chain()])


def _link(reader: DiskReader) -> LinkFingerprint:
    digest = hashlib.sha256()
    for part in reader.metadata():
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return LinkFingerprint(
        path=reader.path,
        format=reader.format.value,
        virtual_size=reader.virtual_size,
        files=reader.stamps(),
        markers=reader.change_markers(),
        metadata_sha256=digest.hexdigest(),
    )


def parse_fingerprint(data: object) -> SourceFingerprint | None:
    """A recorded fingerprint read back (a checkpoint, a sidecar); None when absent or unreadable."""
    if not isinstance(data, dict):
        return None
    try:
        return SourceFingerprint.model_validate(data)
    except ValueError:
        return None
