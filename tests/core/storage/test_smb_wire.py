"""The zero-copy WRITE path signs exactly as smbprotocol does, for every signing algorithm."""

from __future__ import annotations

import os
from types import SimpleNamespace

import pytest
from smbprotocol.connection import Connection, Dialects

from imageport.storage.smb_wire import _signature


@pytest.mark.parametrize(
    ("dialect", "algorithm"),
    [(Dialects.SMB_2_1_0, None), (Dialects.SMB_3_0_2, None), (Dialects.SMB_3_1_1, 1), (Dialects.SMB_3_1_1, 2)],
    ids=["hmac-sha256", "aes-cmac-3.0", "aes-cmac-3.1.1", "aes-gmac"],
)
def test_incremental_signature_matches_smbprotocol(dialect: int, algorithm: int | None) -> None:
    connection = SimpleNamespace(dialect=dialect, signing_algorithm_id=algorithm)
    key = os.urandom(16)
    head = bytearray(os.urandom(112))
    head[48:64] = bytes(16)
    data = memoryview(os.urandom(300_001))
    expected = Connection._generate_signature(connection, bytes(head) + bytes(data), key, 77, False, 9)
    assert _signature(connection, key, 77, head, data) == expected
    changed = bytearray(data)
    changed[-1] ^= 1
    assert _signature(connection, key, 77, head, memoryview(changed)) != expected


@pytest.mark.parametrize(
    ("dialect", "algorithm"),
    [(Dialects.SMB_2_1_0, None), (Dialects.SMB_3_0_2, None), (Dialects.SMB_3_1_1, 2)],
    ids=["hmac-sha256", "aes-cmac-3.0", "aes-gmac"],
)
def test_reply_verification_agrees_with_smbprotocol(dialect: int, algorithm: int | None) -> None:
    """A reply signed as smbprotocol signs one passes; a flipped payload bit or signature byte fails."""
    from smbprotocol.exceptions import SMBException
    from smbprotocol.header import SMB2HeaderResponse

    from imageport.storage.smb_wire import verify_reply

    key = os.urandom(16)
    connection = SimpleNamespace(
        dialect=dialect, signing_algorithm_id=algorithm, session_table={5: SimpleNamespace(signing_key=key)}
    )
    reply = SMB2HeaderResponse()
    reply["command"] = 8  # READ
    reply["flags"] = 0x00000009  # server to redirector, signed
    reply["message_id"] = 41
    reply["session_id"] = 5
    reply["data"] = os.urandom(200_003)
    reply["signature"] = Connection._generate_signature(connection, reply.pack(), key, 41, True, 8)
    received = SMB2HeaderResponse()
    received.unpack(reply.pack())
    verify_reply(connection, received, 5)  # what the receive thread calls for each reply
    tampered = bytearray(reply.pack())
    tampered[-1] ^= 1
    for wrong in (bytes(tampered), reply.pack()[:60] + b"\0" * 4 + reply.pack()[64:]):
        bad = SMB2HeaderResponse()
        bad.unpack(wrong)
        with pytest.raises(SMBException, match="signature"):
            verify_reply(connection, bad, 5)
