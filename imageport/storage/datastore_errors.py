"""The one place where ``requests`` failures on a vSphere datastore become imageport errors.

The datastore's ``/folder`` HTTP endpoint answers like any web server: 401/403
for a dead or unauthorised session, 404 for a missing file, 5xx when the host
is busy. Connection failures and 5xx are transient.
"""

from __future__ import annotations

import contextlib
import http.client
import ssl
from collections.abc import Iterator
from typing import Any

import requests
import urllib3

from imageport.errors import StorageAccessDenied, StorageError, StorageNotFound, StorageUnreachable


def check_status(response: Any, where: str) -> None:
    status = response.status_code
    if status < 400:
        return
    if status in (401, 403):
        raise StorageAccessDenied(f"{where}: access denied (HTTP {status}; session expired or no datastore privilege)")
    if status == 404:
        raise StorageNotFound(f"{where}: not found (HTTP 404)")
    if status >= 500 or status == 429:
        raise StorageUnreachable(f"{where}: the host is busy or failing (HTTP {status})")
    raise StorageError(f"{where}: HTTP {status}")


@contextlib.contextmanager
def translate_datastore_errors(where: str) -> Iterator[None]:
    try:
        yield
    except requests.exceptions.SSLError as exc:
        if _stream_cut(exc):  # the connection dropped inside a TLS record: transient, like a reset
            raise StorageUnreachable(f"{where}: connection failed ({type(exc).__name__})") from None
        raise StorageAccessDenied(f"{where}: TLS verification failed ({type(exc).__name__})") from None
    except ssl.SSLCertVerificationError as exc:
        raise StorageAccessDenied(f"{where}: TLS verification failed ({type(exc).__name__})") from None
    except (
        requests.exceptions.ConnectionError,
        requests.exceptions.Timeout,
        requests.exceptions.ChunkedEncodingError,
        urllib3.exceptions.HTTPError,
        http.client.HTTPException,
        ssl.SSLEOFError,  # a raw socket's read (http.client readinto): the stream cut mid-record
    ) as exc:
        # urllib3's (and http.client's IncompleteRead) surface when a streamed body is read after the
        # request returned: the connection dropped mid-body
        raise StorageUnreachable(f"{where}: connection failed ({type(exc).__name__})") from None
    except requests.exceptions.RequestException as exc:
        raise StorageError(f"{where}: {type(exc).__name__}") from None


# What a stream cut mid-record looks like from OpenSSL; anything else (a certificate, a pin) is refused.
_CUT = ("EOF occurred", "UNEXPECTED_EOF", "BAD_RECORD_MAC", "bad record mac", "record layer failure")


def _stream_cut(exc: BaseException) -> bool:
    """True when a TLS failure is a dropped connection, not a trust decision (certificate or pinned
    fingerprint), which must stay a refusal."""
    seen: BaseException | None = exc
    for _ in range(8):  # requests wraps urllib3's MaxRetryError / ProtocolError, which wrap ssl's own error
        if seen is None:
            break
        if isinstance(seen, ssl.SSLEOFError | ssl.SSLZeroReturnError) or any(m in str(seen) for m in _CUT):
            return True
        seen = getattr(seen, "reason", None) or seen.__cause__ or seen.__context__
    return False
