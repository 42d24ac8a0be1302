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
