"""The one place where libguestfs failures become imageport errors.

libguestfs raises ``RuntimeError`` with the appliance's message for anything
that fails inside it; the launch itself failing (no appliance, no KVM/TCG)
is an environment problem worth naming as such.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from imageport.errors import GuestError


@contextlib.contextmanager
def translate_guestfs_errors(where: str) -> Iterator[None]:
    try:
        yield
    except RuntimeError as exc:
        message = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise GuestError(f"{where}: {message}") from None
