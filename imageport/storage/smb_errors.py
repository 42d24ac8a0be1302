"""The one place where smbprotocol's exceptions become imageport errors.

smbprotocol signals an unreachable server with a bare ``ValueError``
("Failed to connect to ..."), a refused login with ``LogonFailure``/
``SMBAuthenticationError``, and a dropped session with ``SMBConnectionClosed``.
Everything above the SMB store sees only the error tree.
"""

from __future__ import annotations

import contextlib
import errno
import socket
from collections.abc import Iterator

from smbprotocol import exceptions as smbex
from smbprotocol.header import NtStatus

from imageport.errors import (
    StorageAccessDenied,
    StorageAlreadyExists,
    StorageBusy,
    StorageError,
    StorageNotFound,
    StorageUnreachable,
)

__all__ = ["StorageAlreadyExists", "StorageBusy", "is_sharing_violation", "translate_smb_errors"]


_ACCESS = (
    smbex.LogonFailure,
    smbex.WrongPassword,
    smbex.PasswordExpired,
    smbex.AccessDenied,
    smbex.PrivilegeNotHeld,
    smbex.SMBAuthenticationError,
)
_NOT_FOUND = (
    smbex.ObjectNameNotFound,
    smbex.ObjectPathNotFound,
    smbex.NoSuchFile,
    smbex.BadNetworkName,
)
_TRANSIENT = (
    smbex.SMBConnectionClosed,
    smbex.IOTimeout,
    smbex.InsufficientResources,
    smbex.RequestNotAccepted,
    smbex.Cancelled,
    ConnectionError,
    socket.timeout,
)


@contextlib.contextmanager
def translate_smb_errors(where: str) -> Iterator[None]:
    """Run a block of SMB calls; re-raise failures as errors naming ``where``."""
    try:
        yield
    except _ACCESS as exc:
        raise StorageAccessDenied(f"{where}: access denied ({_status(exc)})") from None
    except _NOT_FOUND as exc:
        raise StorageNotFound(f"{where}: not found ({_status(exc)})") from None
    except smbex.ObjectNameCollision:
        raise StorageAlreadyExists(f"{where}: already exists") from None
    except smbex.SMBOSError as exc:
        if is_sharing_violation(exc):
            raise StorageBusy(f"{where}: the file is in use by another client or session") from None
        # smbclient's os-style calls wrap NTSTATUS codes in an OSError with an errno.
        detail = f"{exc.strerror}, NTSTATUS 0x{exc.ntstatus:08X}"
        kind = {
            errno.ENOENT: StorageNotFound,
            errno.EACCES: StorageAccessDenied,
            errno.EEXIST: StorageAlreadyExists,
        }.get(exc.errno or 0, StorageError)
        if exc.ntstatus == NtStatus.STATUS_ACCESS_DENIED:  # smbprotocol gives it no errno
            kind = StorageAccessDenied
        raise kind(f"{where}: {detail}") from None
    except _TRANSIENT as exc:
        raise StorageUnreachable(f"{where}: connection lost ({_status(exc)})") from None
    except ValueError as exc:
        # smbprotocol.transport raises ValueError("Failed to connect to 'host:port': ...").
        if "Failed to connect" in str(exc):
            raise StorageUnreachable(f"{where}: cannot connect ({exc})") from None
        raise
    except smbex.SMBResponseException as exc:
        raise StorageError(f"{where}: SMB error {_status(exc)}") from None
    except smbex.SMBException as exc:
        raise StorageError(f"{where}: SMB failure: {exc}") from None


def is_sharing_violation(exc: BaseException) -> bool:
    """The server refused an open because another handle's share mode forbids it (file in use)."""
    return isinstance(exc, smbex.SMBOSError) and exc.ntstatus == NtStatus.STATUS_SHARING_VIOLATION


def _status(exc: BaseException) -> str:
    # SMBResponseException messages embed the whole response; the class name
    # (LogonFailure, ObjectNameNotFound, ...) is what an admin can act on.
    status = getattr(exc, "status", None)
    name = type(exc).__name__
    return f"{name}, NTSTATUS 0x{status:08X}" if isinstance(status, int) else name
