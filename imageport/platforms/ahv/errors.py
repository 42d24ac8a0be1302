"""The one place where the Nutanix v4 SDKs' failures (and the sockets and TLS under them) become imageport errors.

Both SDKs raise their own ``ApiException`` (``status``, ``reason``, ``body``); the body of a v4 error
is an ``ErrorResponse`` envelope, ``{"data": {"error": [{"code", "message"}, ...]}}`` (or a schema
validation error with ``validationErrorMessages``). Each message named there is shown, never the
request's headers (they carry the basic-auth token).
"""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
from collections.abc import Iterator
from typing import Any

import urllib3.exceptions

from imageport.errors import (
    PlatformAccessDenied,
    PlatformError,
    PlatformNotFound,
    PlatformThrottled,
    PlatformUnreachable,
)

TRANSIENT = (429, 502, 503, 504)


def error_messages(body: str | None) -> list[str]:
    """``CODE: message`` of each entry of a v4 error envelope (empty when the body is not one)."""
    try:
        data = json.loads(body or "")
    except ValueError:
        return []
    inner: Any = data.get("data", data) if isinstance(data, dict) else {}
    entries = inner.get("error") if isinstance(inner, dict) else None
    if isinstance(entries, dict):  # a schema validation error: one object listing its messages
        entries = entries.get("validationErrorMessages") or [entries]
    found = []
    for entry in entries if isinstance(entries, list) else []:
        if isinstance(entry, dict) and entry.get("message"):
            code = entry.get("code") or entry.get("errorGroup") or ""
            found.append(f"{code}: {entry['message']}" if code else str(entry["message"]))
    return found


def api_error(where: str, status: int | None, reason: str | None, body: str | None,
              retry_after: str | None = None) -> PlatformError:  # fmt: skip
    """The error-tree member for one failed v4 call."""
    said = "; ".join(error_messages(body)) or f"HTTP {status} {reason or ''}".strip()
    if status == 401:
        return PlatformAccessDenied(f"{where}: Prism Central refused the user name or password")
    if status == 403:
        return PlatformAccessDenied(f"{where}: the user lacks a permission ({said})")
    if status == 404:
        return PlatformNotFound(f"{where}: not found ({said})")
    if status in TRANSIENT:
        advice = None
        with contextlib.suppress(TypeError, ValueError):
            advice = float(retry_after) if retry_after else None
        return PlatformThrottled(f"{where}: Prism Central is busy (HTTP {status}: {said})", retry_after=advice)
    if status == 412:
        return PlatformError(f"{where}: the object changed meanwhile (HTTP 412, stale ETag: {said})")
    return PlatformError(f"{where}: HTTP {status}: {said}")


@contextlib.contextmanager
def translate_ahv_errors(where: str) -> Iterator[None]:
    try:
        yield
    except Exception as exc:
        translated = translated_error(where, exc)
        if translated is None:
            raise
        raise translated from None


def translated_error(where: str, exc: BaseException) -> PlatformError | None:
    """``exc`` as an error-tree member, or None when it is not the SDKs', TLS's or the network's."""
    # The SDK packages import every model at once: loaded only once a call has failed, not by the CLI's start.
    from ntnx_prism_py_client.rest import ApiException as PrismApiException
    from ntnx_vmm_py_client.rest import ApiException as VmmApiException

    if isinstance(exc, urllib3.exceptions.MaxRetryError) and isinstance(exc.reason, urllib3.exceptions.SSLError):
        exc = exc.reason  # urllib3 wraps a TLS refusal in its retries
    if isinstance(exc, VmmApiException | PrismApiException) and exc.status == 0 and "SSLError" in str(exc.reason):
        exc = urllib3.exceptions.SSLError(str(exc.reason).splitlines()[-1])  # the SDK's own wrapping of the same
    if isinstance(exc, VmmApiException | PrismApiException):
        headers = exc.headers or {}
        return api_error(where, exc.status, exc.reason, exc.body, headers.get("Retry-After"))
    if isinstance(exc, urllib3.exceptions.SSLError):
        return PlatformError(
            f"{where}: TLS certificate not trusted ({_first_line(exc)}); give the Prism Central CA (ca_pem), "
            "its SHA-256 fingerprint, or set verify_tls=false to opt out"
        )
    if isinstance(exc, ssl.SSLError):
        return PlatformError(f"{where}: TLS failed ({_first_line(exc)})")
    if isinstance(exc, urllib3.exceptions.HTTPError | ConnectionError | socket.gaierror | TimeoutError):
        return PlatformUnreachable(f"{where}: cannot reach Prism Central ({_first_line(exc)})")
    return None


def _first_line(exc: BaseException) -> str:
    text = str(exc)
    return text.splitlines()[0] if text else type(exc).__name__
