"""SmbShare against the suite's real Samba."""

from __future__ import annotations

import os

import pytest

from imageport.errors import StorageAccessDenied, StorageNotFound, StorageUnreachable
from imageport.storage.smb import SmbShareConfig
from tests.infra.services import free_port

pytestmark = pytest.mark.integration


def config(samba, **overrides) -> SmbShareConfig:  # type: ignore[no-untyped-def]
    fields = {k: samba.info[k] for k in ("server", "share", "username", "password")}
    fields.update(port=samba.port, **overrides)
    return SmbShareConfig(**fields)


def test_check_logs_in_and_proves_the_base_folder_writable(samba) -> None:  # type: ignore[no-untyped-def]
    facts = config(samba, base_path="checks/deep").build().check()
    assert any("logged in" in f for f in facts) and "base folder is writable" in facts
    on_disk = os.path.join(samba.info["share_dir"], "checks", "deep")
    assert os.path.isdir(on_disk) and os.listdir(on_disk) == []  # probe removed


def test_files_round_trip_and_land_on_the_servers_disk(samba) -> None:  # type: ignore[no-untyped-def]
    with config(samba, base_path="rt").build() as share:
        share.makedirs("sub")
        share.write_bytes("sub/a.bin", b"\x00\x01payload")
        assert share.read_bytes("sub/a.bin") == b"\x00\x01payload"
        assert share.listdir("sub") == ["a.bin"]
        assert share.exists("sub/a.bin")
    with open(os.path.join(samba.info["share_dir"], "rt", "sub", "a.bin"), "rb") as f:
        assert f.read() == b"\x00\x01payload"


def test_encrypted_session_works(samba) -> None:  # type: ignore[no-untyped-def]
    assert config(samba, encrypt=True).build().check()


def test_wrong_password_is_access_denied_and_names_the_share(samba) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(StorageAccessDenied) as info:
        config(samba, password="wrong-password").build().check()
    assert f"127.0.0.1:{samba.port}" in str(info.value) and "wrong-password" not in str(info.value)


def test_unreachable_server_is_transient_and_clear() -> None:
    cfg = SmbShareConfig(server="127.0.0.1", port=free_port(), share="s", username="u", password="p")
    with pytest.raises(StorageUnreachable) as info:
        cfg.build().check()
    assert info.value.transient and "cannot connect" in str(info.value)


def test_missing_share_is_not_found(samba) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(StorageNotFound):
        config(samba, share="nosuchshare").build().check()
