"""The one place where pyVmomi / socket / TLS failures become imageport errors."""

from __future__ import annotations

import contextlib
import socket
import ssl
from collections.abc import Iterator

from pyVmomi import vim, vmodl

from imageport.errors import (
    PlatformAccessDenied,
    PlatformError,
    PlatformNotFound,
    PlatformUnreachable,
    VsphereSessionExpired,
)


@contextlib.contextmanager
def translate_vsphere_errors(where: str) -> Iterator[None]:
    try:
        yield
    except vim.fault.InvalidLogin:
        raise PlatformAccessDenied(f"{where}: vCenter refused the user name or password") from None
    except vim.fault.NotAuthenticated:
        raise VsphereSessionExpired(f"{where}: the vCenter session expired") from None
    except vim.fault.NoPermission as exc:
        raise PlatformAccessDenied(f"{where}: missing privilege {exc.privilegeId}") from None
    except (vim.fault.NotFound, vim.fault.FileNotFound, vmodl.fault.ManagedObjectNotFound) as exc:
        raise PlatformNotFound(f"{where}: {_msg(exc)}") from None
    except ssl.SSLCertVerificationError as exc:
        raise PlatformError(
            f"{where}: TLS certificate not trusted ({exc.verify_message}); give the vCenter CA, "
            "its SHA-1 thumbprint, or set verify_tls=false to opt out"
        ) from None
    except (ConnectionError, socket.gaierror, TimeoutError) as exc:
        raise PlatformUnreachable(f"{where}: cannot reach vCenter ({exc})") from None
    except vim.fault.VimFault as exc:
        raise PlatformError(f"{where}: {type(exc).__name__}: {_msg(exc)}") from None
    except vmodl.MethodFault as exc:
        raise PlatformError(f"{where}: {type(exc).__name__}: {_msg(exc)}") from None


def _msg(exc: BaseException) -> str:
    return getattr(exc, "msg", None) or str(exc).splitlines()[0] if str(exc) else type(exc).__name__
