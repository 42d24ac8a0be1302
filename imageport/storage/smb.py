"""SMB file shares (Windows File Share connectors, PVS stores) through smbprotocol.

``SmbShareConfig`` holds what an admin types into a Windows File Share
connector; ``SmbShare`` is the adapter built from it. Every call passes the
configured port explicitly: smbclient's connection cache is keyed by server
*and* port, and a call without it silently goes to 445. Each adapter keeps a
private connection cache, so two connectors to the same server with different
users never share a session.
"""

from __future__ import annotations

from typing import Any

# smbclient (and its crypto stack) is imported inside the functions that use it: every CLI command
# imports this module, most never touch a share, and the import is a tenth of their start-up.
from pydantic import Field, SecretStr

from imageport.credentials import HostName, SecretsRegistered
from imageport.models import RelativePath, ShareDiskFormat
from imageport.storage.probe import probe_share
from imageport.storage.smb_errors import is_sharing_violation, translate_smb_errors


class SmbShareConfig(SecretsRegistered):
    """Where a share is and how to log in. Also used for PVS stores."""

    server: HostName = Field(description="SMB server host name or IP address.")
    port: int = Field(default=445, ge=1, le=65535, description="SMB port (445 unless the server uses another).")
    share: str = Field(min_length=1, description="Share name, e.g. 'images' or 'Store'.")
    base_path: RelativePath | None = Field(
        default=None, description="Folder inside the share that this connector works under."
    )
    username: str = Field(description="User with read/write access (DOMAIN\\user or user@domain allowed).")
    password: SecretStr = Field(description="Password of that user.")
    encrypt: bool = Field(default=False, description="Require SMB3 encryption for this connection.")
    disk_format: ShareDiskFormat = Field(
        default=ShareDiskFormat.VHDX, description="Default disk format written to this share."
    )

    def build(self) -> SmbShare:
        return SmbShare(self)


class SmbShare:
    """Files on one SMB share, addressed by paths relative to the connector's base path."""

    def __init__(self, config: SmbShareConfig) -> None:
        self.config = config
        self._cache: dict[str, Any] = {}

    # --- addressing -----------------------------------------------------------

    @property
    def display(self) -> str:
        base = f"/{self.config.base_path}" if self.config.base_path else ""
        return f"smb://{self.config.server}:{self.config.port}/{self.config.share}{base}"

    def unc(self, path: str = "") -> str:
        parts = [p for p in (self.config.base_path, path.replace("\\", "/").strip("/")) if p]
        tail = "\\".join(parts).replace("/", "\\")
        root = f"\\\\{self.config.server}\\{self.config.share}"
        return f"{root}\\{tail}" if tail else root

    def io_options(self) -> dict[str, Any]:
        """Keyword arguments every smbclient call on this share needs (port, private cache)."""
        return {"port": self.config.port, "connection_cache": self._cache}

    # --- session --------------------------------------------------------------

    def connect(self) -> None:
        import smbclient

        with translate_smb_errors(f"login to {self.display} as {self.config.username}"):
            smbclient.register_session(
                self.config.server,
                username=self.config.username,
                password=self.config.password.get_secret_value(),
                encrypt=self.config.encrypt or None,
                connection_timeout=10,
                **self.io_options(),
            )

    def close(self) -> None:
        import smbclient

        smbclient.reset_connection_cache(connection_cache=self._cache)

    def __enter__(self) -> SmbShare:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- operations -----------------------------------------------------------

    def listdir(self, path: str = "") -> list[str]:
        import smbclient

        with translate_smb_errors(f"list {self.display}/{path}"):
            return sorted(smbclient.listdir(self.unc(path), **self.io_options()))

    def exists(self, path: str) -> bool:
        import smbclient

        with translate_smb_errors(f"stat {self.display}/{path}"):
            return bool(smbclient.path.exists(self.unc(path), **self.io_options()))

    def isfile(self, path: str) -> bool:
        import smbclient

        with translate_smb_errors(f"stat {self.display}/{path}"):
            return bool(smbclient.path.isfile(self.unc(path), **self.io_options()))

    def makedirs(self, path: str) -> None:
        import smbclient

        with translate_smb_errors(f"mkdir {self.display}/{path}"):
            smbclient.makedirs(self.unc(path), exist_ok=True, **self.io_options())

    def remove(self, path: str) -> None:
        import smbclient

        with translate_smb_errors(f"delete {self.display}/{path}"):
            smbclient.remove(self.unc(path), **self.io_options())

    def rename(self, source: str, target: str) -> None:
        import smbclient

        with translate_smb_errors(f"rename {self.display}/{source} to {target}"):
            smbclient.rename(self.unc(source), self.unc(target), **self.io_options())

    def open_elsewhere(self, path: str) -> bool:
        """Whether another client holds ``path`` open (a PVS server streaming a vDisk does).

        Asks for the file without sharing anything: the server refuses that with a sharing
        violation exactly when some other handle is open.
        """
        import smbclient

        with translate_smb_errors(f"check whether {self.display}/{path} is in use"):
            try:
                with smbclient.open_file(self.unc(path), mode="rb", share_access=None, **self.io_options()):
                    return False
            except Exception as exc:
                if is_sharing_violation(exc):
                    return True
                raise

    def write_bytes(self, path: str, data: bytes) -> None:
        import smbclient

        with (
            translate_smb_errors(f"write {self.display}/{path}"),
            smbclient.open_file(self.unc(path), mode="wb", **self.io_options()) as f,
        ):
            f.write(data)

    def read_bytes(self, path: str) -> bytes:
        import smbclient

        with (
            translate_smb_errors(f"read {self.display}/{path}"),
            smbclient.open_file(self.unc(path), mode="rb", **self.io_options()) as f,
        ):
            return f.read()

    def check(self) -> list[str]:
        """Log in, make sure the base folder exists and is writable; say what was proven."""
        self.connect()
        try:
            facts = [f"logged in to {self.display} as {self.config.username}"]
            if self.config.base_path:
                self.makedirs("")
            probe_share(self)
            facts.append("base folder is writable")
            return facts
        finally:
            self.close()
