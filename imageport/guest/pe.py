"""What a Windows installer says about itself: the PE version resource and the Authenticode signer.

Layout read (Microsoft "PE Format"; "VS_VERSIONINFO"; "Windows Authenticode Portable Executable
Signature Format"):

- DOS header ``MZ``; ``e_lfanew`` at 0x3C points at ``PE\\0\\0``, the COFF header (20 bytes: section
  count at +2, optional header size at +16), then the optional header (magic 0x10B PE32 / 0x20B PE32+;
  data directories at +96 / +112, 8 bytes each: [2] resources as an RVA, [4] the certificate table
  as a *file offset*), then the section table (40 bytes each: virtual size, RVA, raw size, raw offset).
- Resources: a tree of ``IMAGE_RESOURCE_DIRECTORY`` (16 bytes + 8-byte entries; the high bit of an
  entry's offset marks a subdirectory), type 16 (RT_VERSION) → name → language → a data entry (RVA,
  size) holding ``VS_VERSIONINFO``: ``wLength wValueLength wType szKey`` (UTF-16), padded to 4,
  ``VS_FIXEDFILEINFO`` (signature 0xFEEF04BD; ProductVersionMS/LS at +16/+20).
- Certificate table: ``WIN_CERTIFICATE`` entries (dwLength, wRevision 0x0200, wCertificateType 2 =
  PKCS#7 SignedData, bCertificate), each padded to 8 bytes.

Decision: the signer recorded is the subject of the certificate in the SignedData that issued no
other certificate of it (the leaf of the embedded chain: Authenticode embeds the signer's chain,
not unrelated certificates). It is *recorded*, not verified against a trust root: the image's
Windows checks the signature when it runs the installer.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from imageport.disks.io import ByteSource
from imageport.errors import InputError

RT_VERSION = 16
FIXED_SIGNATURE = 0xFEEF04BD
CERT_PKCS7 = 0x0002
MAX_CERT_TABLE = 1 << 20  # Authenticode signatures are KiBs; more is not a signature we read
MAX_VERSION_INFO = 64 << 10


@dataclass(frozen=True)
class PeInfo:
    version: str | None  # ProductVersion "a.b.c.d" from VS_FIXEDFILEINFO
    signer: str | None  # the signing certificate's subject (RFC 4514), None when unsigned


@dataclass(frozen=True)
class _Section:
    rva: int
    size: int
    offset: int
    raw_size: int


class _Reader:
    def __init__(self, source: ByteSource, size: int, where: str) -> None:
        self.source, self.size, self.where = source, size, where

    def at(self, offset: int, length: int, what: str) -> bytes:
        if offset < 0 or length < 0 or offset + length > self.size:
            raise InputError(f"{self.where}: not a readable PE file ({what} at {offset} lies outside the file)")
        data = self.source.pread(offset, length)
        if len(data) != length:
            raise InputError(f"{self.where}: not a readable PE file ({what} at {offset} is cut short)")
        return data


def pe_info(source: ByteSource, size: int, where: str) -> PeInfo:
    """The product version and signer of the PE file ``source`` (``size`` bytes); ``where`` names it."""
    r = _Reader(source, size, where)
    if r.at(0, 2, "DOS header") != b"MZ":
        raise InputError(f"{where}: not a Windows executable (no MZ header)")
    (pe,) = struct.unpack("<I", r.at(0x3C, 4, "e_lfanew"))
    if r.at(pe, 4, "PE signature") != b"PE\0\0":
        raise InputError(f"{where}: not a PE file (no PE signature at {pe})")
    sections_count, optional_size = struct.unpack("<H12xH", r.at(pe + 6, 16, "COFF header"))[0:2]
    optional = pe + 24
    (magic,) = struct.unpack("<H", r.at(optional, 2, "optional header"))
    if magic not in (0x10B, 0x20B):
        raise InputError(f"{where}: unknown PE optional header magic {magic:#x}")
    directories = optional + (96 if magic == 0x10B else 112)
    (count,) = struct.unpack("<I", r.at(directories - 4, 4, "NumberOfRvaAndSizes"))

    def directory(index: int) -> tuple[int, int]:
        if index >= count or directories + 8 * index + 8 > optional + optional_size:
            return 0, 0
        return struct.unpack("<II", r.at(directories + 8 * index, 8, f"data directory {index}"))  # type: ignore[return-value]

    table = optional + optional_size
    sections = []
    for n in range(min(sections_count, 96)):
        vsize, rva, raw_size, offset = struct.unpack("<IIII", r.at(table + 40 * n + 8, 16, f"section {n}"))
        sections.append(_Section(rva, max(vsize, raw_size), offset, raw_size))
    resources_rva, resources_size = directory(2)
    version = _version(r, sections, resources_rva) if resources_size else None
    cert_offset, cert_size = directory(4)
    signer = _signer(r, cert_offset, cert_size) if cert_size else None
    return PeInfo(version, signer)


def _file_offset(r: _Reader, sections: list[_Section], rva: int, what: str) -> int:
    for s in sections:
        if s.rva <= rva < s.rva + s.size and rva - s.rva < s.raw_size:
            return s.offset + (rva - s.rva)
    raise InputError(f"{r.where}: not a readable PE file ({what} at RVA {rva:#x} is in no section)")


def _version(r: _Reader, sections: list[_Section], root_rva: int) -> str | None:
    root = _file_offset(r, sections, root_rva, "resource directory")
    entry = _first_entry(r, root, root, want_id=RT_VERSION)
    for _ in range(2):  # name, then language
        if entry is None or not entry & 0x80000000:
            return None
        entry = _first_entry(r, root, root + (entry & 0x7FFFFFFF))
    if entry is None or entry & 0x80000000:
        return None
    data_rva, data_size = struct.unpack("<II", r.at(root + entry, 8, "version resource entry"))
    start = _file_offset(r, sections, data_rva, "VS_VERSIONINFO")
    info = r.at(start, min(data_size, MAX_VERSION_INFO), "VS_VERSIONINFO")
    key = "VS_VERSION_INFO\0".encode("utf-16-le")
    if len(info) < 6 + len(key) or info[6 : 6 + len(key)] != key:
        raise InputError(f"{r.where}: the version resource is not a VS_VERSIONINFO")
    (value_length,) = struct.unpack("<H", info[2:4])
    fixed = (6 + len(key) + 3) & ~3
    if value_length < 52 or len(info) < fixed + 52:
        return None
    signature, _, _, _, product_ms, product_ls = struct.unpack("<6I", info[fixed : fixed + 24])
    if signature != FIXED_SIGNATURE:
        raise InputError(f"{r.where}: the version resource has no VS_FIXEDFILEINFO signature")
    return f"{product_ms >> 16}.{product_ms & 0xFFFF}.{product_ls >> 16}.{product_ls & 0xFFFF}"


def _first_entry(r: _Reader, root: int, directory: int, want_id: int | None = None) -> int | None:
    """The offset field of the directory's first entry (or of the one with id ``want_id``)."""
    named, ids = struct.unpack("<HH", r.at(directory + 12, 4, "resource directory"))
    for n in range(min(named + ids, 4096)):
        name, offset = struct.unpack("<II", r.at(directory + 16 + 8 * n, 8, "resource entry"))
        if want_id is None or (not name & 0x80000000 and name == want_id):
            return int(offset)
    return None


def _signer(r: _Reader, offset: int, size: int) -> str | None:
    if size > MAX_CERT_TABLE:
        raise InputError(f"{r.where}: a certificate table of {size} bytes is not an Authenticode signature")
    table = r.at(offset, size, "certificate table")
    at = 0
    while at + 8 <= len(table):
        length, revision, kind = struct.unpack("<IHH", table[at : at + 8])
        if length < 8 or at + length > len(table):
            raise InputError(f"{r.where}: damaged WIN_CERTIFICATE at {offset + at}")
        if revision == 0x0200 and kind == CERT_PKCS7:
            return _pkcs7_signer(table[at + 8 : at + length], r.where)
        at += (length + 7) & ~7
    return None


def _pkcs7_signer(der: bytes, where: str) -> str | None:
    from cryptography.hazmat.primitives.serialization import pkcs7

    try:
        certificates = pkcs7.load_der_pkcs7_certificates(der)
    except ValueError as exc:
        raise InputError(f"{where}: the Authenticode signature is not a PKCS#7 SignedData ({exc})") from None
    issuers = {c.issuer for c in certificates if c.issuer != c.subject}
    leaves = [c for c in certificates if c.subject not in issuers] or certificates
    return leaves[0].subject.rfc4514_string() if leaves else None
