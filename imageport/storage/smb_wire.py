"""SMB2 WRITE requests put on the wire without copying their payload.

smbprotocol builds every request as one ``bytes``: the payload is copied
when the message is packed, again when the header is packed around it, twice
more to splice the signature in, once more for the TCP frame, and the socket
loop re-slices what is left after every partial send. For a 4 MiB write that
is six or more copies of the payload on the thread that feeds the pipeline:
the profile of ``bench/bench_smb.py`` spent three quarters of the writer's
time there, not in the network or the signing itself.

Here only the 112 bytes of header and WRITE body are packed (by smbprotocol's
own structures, so field layout stays its business); the signature
(MS-SMB2 3.1.4.1: HMAC-SHA256, AES-CMAC or AES-GMAC over the header with a
zeroed signature field followed by the body) is computed incrementally over
the header and the caller's buffer, and the frame goes out as
header-then-payload through ``sendall`` on a memoryview. The request is
registered with the connection exactly as smbprotocol registers its own
(sequence window, outstanding requests), so its receive thread matches the
reply, grants credits and verifies the reply's signature as usual.

Encrypted sessions go through smbprotocol's path unchanged: encryption must
transform the whole message anyway.

Reads: the profile of ``smb-get`` put more than half of smbprotocol's receive
thread in ``Tcp._recv``, which asks ``socket.recv`` for the whole remaining
length on every call -- a fresh 4 MiB ``bytes`` allocated (and shrunk) per
64-256 KiB that loopback hands over -- and copies each piece once more into its
buffer. ``fast_receive`` gives the connection's transport a receive that lands
every piece in one preallocated buffer with ``recv_into`` (same framing,
timeouts and close handling). ``read_reply`` takes a READ response's payload
as a view of the received body instead of unpacking it into two more copies,
and ``verify_reply`` checks a reply's signature over its header and body in
place (smbprotocol re-packs the whole message and copies it twice more to
zero the signature field). Every signed reply is still verified, on
smbprotocol's receive thread, with the same skip rules.
"""

from __future__ import annotations

import errno
import functools
import hashlib
import hmac
import select
import struct
import time
from typing import Any

_SIGNED = 0x00000008  # SMB2_FLAGS_SIGNED
_DFS = 0x10000000  # SMB2_FLAGS_DFS_OPERATIONS
_SIGNATURE = slice(48, 64)
_LENGTH_AT = 4  # SMB2 WRITE body: StructureSize (2), DataOffset (2), Length (4)...
_HMAC_SHA256, _AES_CMAC, _AES_GMAC = 0, 1, 2  # SMB2_SIGNING_CAPABILITIES algorithm ids


def zero_copy_capable(fd: Any) -> bool:
    """Whether writes on ``fd`` may bypass smbprotocol's packing (not when the session or share encrypts)."""
    tree = fd.tree_connect
    return not (tree.session.encrypt_data or tree.encrypt_data)


def send_write(fd: Any, offset: int, data: memoryview, credit_request: int) -> Any:
    """Send one SMB2 WRITE of ``data`` at ``offset`` on open file ``fd``; returns the pending request.

    ``data`` is on the wire (in the kernel's socket buffer) when this returns, so the caller
    may reuse its buffer at once. Receive the reply with ``fd._write_response(request)``.
    """
    from smbprotocol.header import SMB2HeaderRequest
    from smbprotocol.open import SMB2WriteRequest

    connection = fd.connection
    tree = fd.tree_connect
    session = tree.session
    write = SMB2WriteRequest()
    write["offset"] = offset
    write["file_id"] = fd.file_id
    write["buffer"] = b""  # the payload follows the packed body on the wire, never inside it
    body = bytearray(write.pack())
    struct.pack_into("<I", body, _LENGTH_AT, len(data))  # the Length the packed empty buffer left at 0
    # MS-SMB2 3.2.4.1.5: one credit per 64 KiB of payload once multi-credit (large MTU) is negotiated
    charge = (len(data) - 1) // 65536 + 1 if connection.supports_multi_credit else 0

    with connection.sequence_lock:
        window = connection.sequence_window
        if charge > window["high"] - window["low"]:
            from smbprotocol.exceptions import SMBException

            raise SMBException(f"write needs {charge} credits, {window['high'] - window['low']} available")
        message_id = window["low"]
        window["low"] += charge if charge > 0 else 1

    header = SMB2HeaderRequest()
    header["tree_id"] = tree.tree_connect_id
    header["credit_charge"] = charge
    header["command"] = write.COMMAND
    header["credit_request"] = max(credit_request, charge)
    header["message_id"] = message_id
    header["session_id"] = session.session_id
    header["data"] = bytes(body)
    signing = bool(session.signing_required and session.signing_key)
    flags = (_SIGNED if signing else 0) | (_DFS if tree.is_dfs_share else 0)
    header["flags"] = flags
    head = bytearray(header.pack())
    if signing:
        head[_SIGNATURE] = _signature(connection, session.signing_key, message_id, head, data)
        header["signature"] = bytes(head[_SIGNATURE])

    from smbprotocol.connection import Request

    request = Request(header, SMB2WriteRequest, connection, session_id=session.session_id)
    connection.outstanding_requests[message_id] = request
    connection._check_worker_running()
    transport = connection.transport
    with transport._sock_lock:
        transport._sock.sendall(struct.pack(">L", len(head) + len(data)) + head)
        transport._sock.sendall(data)
    return request


def _signature(
    connection: Any, key: bytes, message_id: int, head: bytearray, data: memoryview | bytes, message_info: int = 0
) -> bytes:
    """The signature over ``head`` (signature field still zero) then ``data``, fed in place.

    ``message_info`` is GMAC's nonce flag word (MS-SMB2 3.1.4.1): 1 for a reply, 2 for a CANCEL."""
    from smbprotocol.connection import Dialects

    if connection.dialect >= Dialects.SMB_3_1_1 and connection.signing_algorithm_id is not None:
        algorithm = connection.signing_algorithm_id
    elif connection.dialect >= Dialects.SMB_3_0_0:
        algorithm = _AES_CMAC
    else:
        algorithm = _HMAC_SHA256
    if algorithm == _AES_GMAC:
        from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

        # GMAC is GCM with everything as AAD
        nonce = message_id.to_bytes(8, "little") + message_info.to_bytes(4, "little")
        gmac = Cipher(algorithms.AES(key), modes.GCM(nonce)).encryptor()
        gmac.authenticate_additional_data(head)
        gmac.authenticate_additional_data(data)
        gmac.finalize()
        return gmac.tag[:16]
    if algorithm == _AES_CMAC:
        from cryptography.hazmat.primitives import cmac
        from cryptography.hazmat.primitives.ciphers import algorithms

        mac = cmac.CMAC(algorithms.AES(key))
        mac.update(bytes(head))
        mac.update(bytes(data))  # this CMAC takes bytes only (a copy of a view), for SMB 3.0.x; 3.1.1 uses GMAC
        return mac.finalize()
    digest = hmac.new(key, head, hashlib.sha256)
    digest.update(data)
    return digest.digest()[:16]


def fast_receive(connection: Any) -> None:
    """Give ``connection``'s transport the buffer-reusing receive (once; idempotent)."""
    transport = connection.transport
    if not getattr(transport, "imageport_recv_into", False):
        transport._recv = functools.partial(_recv_into, transport)  # what Tcp.recv calls for each frame
        connection.verify_signature = functools.partial(verify_reply, connection)  # what the receive thread calls
        transport.imageport_recv_into = True


def _recv_into(transport: Any, length: int, timeout: float) -> tuple[bytes | None, float]:
    """``Tcp._recv``'s contract (the bytes and the time left, ``None`` once closed) without a
    full-length allocation per ``recv`` call."""
    buffer = bytearray(length)
    view = memoryview(buffer)
    offset = 0
    while offset < length:
        started = time.monotonic()
        with transport._close_lock:
            if not transport.connected:
                return None, timeout
            ready = select.select([transport._sock], [], [], max(timeout, 1))[0]
            elapsed = time.monotonic() - started
            timeout -= elapsed
            if not ready:
                raise TimeoutError(f"recv idle for {elapsed:.1f}s ({offset}/{length} bytes)")
            try:
                n = transport._sock.recv_into(view[offset:])
            except OSError as exc:  # a peer's reset is an end of stream, as smbprotocol treats it
                if exc.errno not in (errno.ESHUTDOWN, errno.ECONNRESET, errno.ECONNABORTED):
                    raise
                n = 0
        if n == 0:
            transport.close()
            return None, timeout
        offset += n
    return bytes(buffer), timeout  # the receive thread slices and unpacks bytes


_SERVER_TO_REDIR = 0x00000001
_CANCEL, _SESSION_SETUP = 0x0C, 0x01
_STATUS_PENDING = 0x00000103


def verify_reply(connection: Any, header: Any, session_id: int, force: bool = False) -> None:
    """``Connection.verify_signature`` without re-packing the reply: smbprotocol packs the whole
    message again and splices a zeroed signature in with two more full copies; here the 64-byte
    header is packed alone and the body (``header["data"]``, as received) is fed in place."""
    from smbprotocol.exceptions import SMBException

    message_id = header["message_id"].get_value()
    flags = header["flags"].get_value()
    command = header["command"].get_value()
    if not force and (
        message_id == 0xFFFFFFFFFFFFFFFF
        or not flags & _SIGNED
        or header["status"].get_value() == _STATUS_PENDING
        or command == _SESSION_SETUP
    ):
        return  # the replies smbprotocol does not verify either
    session = connection.session_table.get(session_id)
    if session is None:
        raise SMBException(f"Failed to find session {session_id} for message verification")
    head = bytearray(b"".join(field.pack() for name, field in header.fields.items() if name != "data"))
    head[_SIGNATURE] = bytes(16)
    info = (1 if flags & _SERVER_TO_REDIR else 0) | (2 if command == _CANCEL else 0)
    expected = _signature(connection, session.signing_key, message_id, head, header["data"].get_value(), info)
    if header["signature"].get_value() != expected:
        raise SMBException(f"Server message signature could not be verified (message {message_id})")


_READ_BODY = struct.Struct("<HBxI")  # SMB2 READ response (MS-SMB2 2.2.20): StructureSize, DataOffset, DataLength
_HEADER = 64


def read_reply(fd: Any, request: Any) -> memoryview:
    """The payload of the READ reply to ``request``: a view into the received message, no copies."""
    response = fd.connection.receive(request)  # raises on an error status, as fd._read_response does
    body = memoryview(response["data"].get_value())
    _, data_offset, data_length = _READ_BODY.unpack_from(body)
    start = data_offset - _HEADER  # DataOffset counts from the start of the SMB2 header
    return body[start : start + data_length]
