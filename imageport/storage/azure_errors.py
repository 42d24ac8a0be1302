"""The one place where azure-core / azure-identity exceptions become imageport errors.

Both the page-blob store (data plane) and the Azure platform (Resource
Manager) raise through here; ``branch`` picks the error-tree branch, so a
refused SAS is a storage error and a refused service principal a platform one.
429 and 5xx are transient, and carry the server's Retry-After when it sent one.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Literal

from imageport.errors import (
    PlatformAccessDenied,
    PlatformError,
    PlatformNotFound,
    PlatformThrottled,
    PlatformUnreachable,
    StorageAccessDenied,
    StorageError,
    StorageNotFound,
    StorageThrottled,
    StorageUnreachable,
)

if TYPE_CHECKING:
    from azure.core import exceptions as azex

Branch = Literal["storage", "platform"]
_CLASSES: dict[Branch, tuple[type[Exception], type[Exception], type[Exception], type[Exception]]] = {
    "storage": (StorageError, StorageAccessDenied, StorageNotFound, StorageUnreachable),
    "platform": (PlatformError, PlatformAccessDenied, PlatformNotFound, PlatformUnreachable),
}


def _retry_after(exc: azex.HttpResponseError) -> float | None:
    response = getattr(exc, "response", None)
    value = response.headers.get("Retry-After") if response is not None else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


@contextlib.contextmanager
def translate_azure_errors(where: str, branch: Branch = "storage") -> Iterator[None]:
    from azure.core import exceptions as azex  # here, not at the top: the CLI starts without the Azure SDK

    base, denied, missing, unreachable = _CLASSES[branch]
    throttled = StorageThrottled if branch == "storage" else PlatformThrottled
    try:
        yield
    except azex.ClientAuthenticationError as exc:
        raise denied(f"{where}: access refused ({_first_line(exc)})") from None
    except azex.ResourceNotFoundError as exc:
        raise missing(f"{where}: not found ({_first_line(exc)})") from None
    except azex.ServiceRequestError as exc:
        raise unreachable(f"{where}: cannot reach Azure ({_first_line(exc)})") from None
    except azex.ServiceResponseError as exc:
        raise unreachable(f"{where}: connection dropped ({_first_line(exc)})") from None
    except azex.HttpResponseError as exc:
        status = exc.status_code or 0
        if status == 404:
            raise missing(f"{where}: not found ({_first_line(exc)})") from None
        if status == 403:
            raise denied(
                f"{where}: forbidden -- expired or revoked SAS, or missing rights ({_first_line(exc)})"
            ) from None
        if status in (408, 429) or status >= 500:
            raise throttled(f"{where}: HTTP {status} ({_first_line(exc)})", _retry_after(exc)) from None
        raise base(f"{where}: HTTP {status} ({_first_line(exc)})") from None
    except azex.AzureError as exc:
        raise base(f"{where}: {_first_line(exc)}") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
