"""The one place where XenAPI (``XenAPI.Failure`` and its error code list), TLS and socket failures become
imageport errors.

xapi reports a failure as ``ErrorDescription``: a list whose first item is the code (datamodel_errors.ml),
the rest its parameters; the SDK raises it as ``XenAPI.Failure(details)``. ``SESSION_INVALID`` never
reaches us: the SDK logs in again and retries the call itself.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import ssl
import xmlrpc.client
from collections.abc import Iterator

import XenAPI

from imageport.errors import (
    ImageportError,
    PlatformAccessDenied,
    PlatformError,
    PlatformNotFound,
    PlatformUnreachable,
    XenServerNotMaster,
)

DENIED = {"SESSION_AUTHENTICATION_FAILED", "RBAC_PERMISSION_DENIED", "PERMISSION_DENIED", "USER_IS_NOT_LOCAL_SUPERUSER"}
NOT_FOUND = {"HANDLE_INVALID", "UUID_INVALID"}
BUSY = {"OTHER_OPERATION_IN_PROGRESS", "HOST_STILL_BOOTING", "TOO_MANY_PENDING_TASKS"}


def failure_error(where: str, details: list[str]) -> ImageportError:
    """The imageport error for a xapi ``ErrorDescription``."""
    code, params = (str(details[0]), [str(p) for p in details[1:]]) if details else ("UNKNOWN", [])
    if code == "HOST_IS_SLAVE":
        master = params[0] if params else ""
        return XenServerNotMaster(f"{where}: the host is a pool member, not the pool master ({master})", master)
    if code == "SESSION_AUTHENTICATION_FAILED":
        return PlatformAccessDenied(f"{where}: XenServer refused the user name or password")
    if code in DENIED:
        return PlatformAccessDenied(f"{where}: {code} {' '.join(params)}".rstrip())
    if code in NOT_FOUND:
        what = " ".join(params) or "object"
        return PlatformNotFound(f"{where}: no such {what} ({code})")
    if code in BUSY:
        return PlatformUnreachable(f"{where}: {code} {' '.join(params)}".rstrip())
    return PlatformError(f"{where}: {code} {' '.join(params)}".rstrip())


@contextlib.contextmanager
def translate_xenapi_errors(where: str) -> Iterator[None]:
    try:
        yield
    except XenAPI.Failure as exc:
        raise failure_error(where, list(exc.details or [])) from None
    except ssl.SSLCertVerificationError as exc:
        raise PlatformError(
            f"{where}: TLS certificate not trusted ({exc.verify_message}); give the pool's CA (ca_pem) or "
            "pin its SHA-256 fingerprint (fingerprint)"
        ) from None
    except xmlrpc.client.Fault as exc:  # the SDK's own: a session it could not renew, a malformed answer
        raise PlatformError(f"{where}: {exc.faultString}") from None
    except xmlrpc.client.ProtocolError as exc:
        raise PlatformError(f"{where}: HTTP {exc.errcode} {exc.errmsg}") from None
    except (ConnectionError, socket.gaierror, TimeoutError, http.client.HTTPException, ssl.SSLError) as exc:
        raise PlatformUnreachable(f"{where}: cannot reach XenServer ({exc})") from None
