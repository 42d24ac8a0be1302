"""Azure Resource Manager errors: the shared azure-core mapping, on the platform branch."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from imageport.errors import PlatformThrottled as AzureThrottled
from imageport.storage.azure_errors import translate_azure_errors as _translate


@contextlib.contextmanager
def translate_azure_errors(where: str) -> Iterator[None]:
    with _translate(where, "platform"):
        yield


__all__ = ["AzureThrottled", "translate_azure_errors"]
