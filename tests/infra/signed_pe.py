"""A small signed-looking PE built at test time: a version resource and an Authenticode-shaped signature.

The file is a PE32+ image with one ``.rsrc`` section holding RT_VERSION → 1 → 0x409 → VS_VERSIONINFO
(VS_FIXEDFILEINFO with the given product version), and a certificate table (data directory 4, a file
offset) with one WIN_CERTIFICATE (revision 0x0200, type 2) holding a PKCS#7 SignedData that
``cryptography`` makes with a throwaway CA and signing certificate. Not runnable: nobody runs it.
"""

from __future__ import annotations

import datetime
import struct
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import NameOID

RSRC_RVA, RSRC_OFFSET = 0x1000, 0x400


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Test Systems"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common)])  # fmt: skip


def _certificate(subject: str, issuer: str, key: ec.EllipticCurvePrivateKey, signer: ec.EllipticCurvePrivateKey
                 ) -> x509.Certificate:  # fmt: skip
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(_name(issuer))
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=30))
        .sign(signer, hashes.SHA256())
    )  # fmt: skip


def signature(signer: str) -> bytes:
    """A DER PKCS#7 SignedData signed by a certificate with CN ``signer``, carrying its CA too."""
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = _certificate("Test Root CA", "Test Root CA", ca_key, ca_key)
    leaf = _certificate(signer, "Test Root CA", key, ca_key)
    return (
        pkcs7.PKCS7SignatureBuilder().set_data(b"imageport test installer").add_signer(leaf, key, hashes.SHA256())
        .add_certificate(ca).sign(serialization.Encoding.DER, [pkcs7.PKCS7Options.Binary])
    )  # fmt: skip


def _utf16z(text: str) -> bytes:
    return (text + "\0").encode("utf-16-le")


def _pad4(data: bytes) -> bytes:
    return data + b"\0" * (-len(data) % 4)


def _block(key: str, value: bytes, children: bytes = b"", text: bool = False) -> bytes:
    head = _pad4(struct.pack("<HHH", 0, len(value) // 2 if text else len(value), 1 if text else 0) + _utf16z(key))
    body = head + _pad4(value) + children
    return struct.pack("<H", len(body)) + body[2:]


def version_info(version: str, product: str) -> bytes:
    parts = [int(p) for p in ([*version.split("."), "0", "0", "0"])[:4]]
    ms, ls = parts[0] << 16 | parts[1], parts[2] << 16 | parts[3]
    fixed = struct.pack("<13I", 0xFEEF04BD, 0x10000, ms, ls, ms, ls, 0x3F, 0, 0x40004, 1, 0, 0, 0)
    strings = b"".join(_block(k, _utf16z(v), text=True) for k, v in
                       (("ProductName", product), ("ProductVersion", version), ("FileVersion", version)))  # fmt: skip
    table = _block("040904b0", b"", strings)
    return _block("VS_VERSION_INFO", fixed, _block("StringFileInfo", b"", table))


def _resources(info: bytes) -> bytes:
    """RT_VERSION → id 1 → language 0x409 → data entry, then the data (RVAs relative to .rsrc)."""

    def directory(entry_id: int, offset: int) -> bytes:
        return struct.pack("<IIHHHH", 0, 0, 0, 0, 0, 1) + struct.pack("<II", entry_id, offset)

    root = directory(16, 0x80000000 | 24)
    names = directory(1, 0x80000000 | 48)
    languages = directory(0x409, 72)
    data_at = 88
    entry = struct.pack("<IIII", RSRC_RVA + data_at, len(info), 0, 0)
    return root + names + languages + entry + info


def build_pe(path: Path, *, version: str, product: str, signer: str | None, padding: int = 0) -> Path:
    """Write the PE to ``path``; ``signer`` None leaves it unsigned; ``padding`` grows the section (MiBs)."""
    rsrc = _resources(version_info(version, product)) + b"\xcc" * padding
    raw_size = (len(rsrc) + 0x1FF) & ~0x1FF
    cert = b""
    if signer is not None:
        der = signature(signer)
        cert = struct.pack("<IHH", 8 + len(der), 0x0200, 2) + der
        cert += b"\0" * (-len(cert) % 8)
    cert_offset = RSRC_OFFSET + raw_size
    dos = b"MZ" + b"\0" * 58 + struct.pack("<I", 0x40)
    coff = struct.pack("<HHIIIHH", 0x8664, 1, 0, 0, 0, 240, 0x22)
    directories = [(0, 0)] * 16
    directories[2] = (RSRC_RVA, len(rsrc))
    if cert:
        directories[4] = (cert_offset, len(cert))
    optional = struct.pack("<HBBIIIII", 0x20B, 14, 0, 0, 0, 0, 0, 0x1000) + struct.pack("<Q", 0x140000000)
    optional += struct.pack("<IIHHHHHHIIIIHHQQQQII", 0x1000, 0x200, 6, 0, 0, 0, 6, 0, 0,
                            RSRC_RVA + ((len(rsrc) + 0xFFF) & ~0xFFF), RSRC_OFFSET, 0, 2, 0x8160,
                            0x100000, 0x1000, 0x100000, 0x1000, 0, 16)  # fmt: skip
    optional += b"".join(struct.pack("<II", *d) for d in directories)
    assert len(optional) == 240
    section = b".rsrc\0\0\0" + struct.pack("<IIIIIIHHI", len(rsrc), RSRC_RVA, raw_size, RSRC_OFFSET, 0, 0, 0, 0,
                                           0x40000040)  # fmt: skip
    head = dos + b"PE\0\0" + coff + optional + section
    path.write_bytes(head + b"\0" * (RSRC_OFFSET - len(head)) + rsrc + b"\0" * (raw_size - len(rsrc)) + cert)
    return path
