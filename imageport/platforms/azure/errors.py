"""The one place where azure-core / azure-identity exceptions become imageport errors."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from azure.core import exceptions as azex

from imageport.errors import (
    PlatformAccessDenied,
    PlatformError,
    PlatformNotFound,
    PlatformUnreachable,
)


class AzureThrottled(PlatformUnreachable):
    """429 / 5xx from Azure: transient, retry after the advertised delay."""


@contextlib.contextmanager
def translate_azure_errors(where: str) -> Iterator[None]:
    try:
        yield
    except azex.ClientAuthenticationError as exc:
        raise PlatformAccessDenied(f"{where}: Azure refused the credentials ({_first_line(exc)})") from None
    except azex.ResourceNotFoundError as exc:
        raise PlatformNotFound(f"{where}: not found ({_first_line(exc)})") from None
    except azex.ServiceRequestError as exc:
        raise PlatformUnreachable(f"{where}: cannot reach Azure ({_first_line(exc)})") from None
    except azex.ServiceResponseError as exc:
        raise PlatformUnreachable(f"{where}: connection dropped ({_first_line(exc)})") from None
    except azex.HttpResponseError as exc:
        status = exc.status_code or 0
        if status == 404:
            raise PlatformNotFound(f"{where}: not found ({_first_line(exc)})") from None
        if status == 403:
            raise PlatformAccessDenied(f"{where}: forbidden ({_first_line(exc)})") from None
        if status == 429 or status >= 500:
            raise AzureThrottled(f"{where}: HTTP {status} ({_first_line(exc)})") from None
        raise PlatformError(f"{where}: HTTP {status} ({_first_line(exc)})") from None
    except azex.AzureError as exc:
        raise PlatformError(f"{where}: {_first_line(exc)}") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
