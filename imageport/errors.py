"""The one error tree of imageport.

Every failure the core raises is an ``ImageportError``. The branches follow
the layers, so a caller can tell *where* it failed; the category mixins say
*what kind* of failure it is, so a retry policy can tell transient from
final without knowing any SDK::

    ImageportError
    ├── InputError            bad spec, argument or file given by the user
    ├── FormatError           a disk image's structure is wrong (disks/)
    ├── StorageError          byte stores: local, SMB, page blob (storage/)
    │   ├── StorageUnreachable      (+ Unreachable: transient)
    │   ├── StorageAccessDenied     (+ AccessDenied)
    │   ├── StorageNotFound         (+ NotFound)
    │   ├── StorageAlreadyExists    (+ AlreadyExists)
    │   └── OutputBusy              another run holds the output's lock
    ├── PlatformError         control planes: vSphere, Azure, local (platforms/)
    │   ├── PlatformUnreachable     (+ Unreachable: transient)
    │   ├── PlatformAccessDenied    (+ AccessDenied)
    │   └── PlatformNotFound        (+ NotFound)
    ├── TransferError         copying extents between stores (transfer/)
    ├── EngineError           compositing engine lifecycle (engine/)
    └── GuestError            offline changes inside an image (guest/)

    Category mixins (never raised alone): Unreachable, AccessDenied, NotFound.

Each SDK's exceptions are translated in exactly one module per adapter
(for example ``storage/smb_errors.py``); nothing above that module ever sees
an SDK exception. Messages name what failed and where, and must never carry
a secret (passwords, SAS query strings): every message passes through
``imageport.redaction.redact``.
"""

from __future__ import annotations

from imageport.redaction import redact

__all__ = ["redact"]  # the error tree's messages pass through it; kept importable from here


class ImageportError(Exception):
    """Root of every error imageport raises.

    ``transient`` tells retry policies whether trying again may succeed.
    """

    transient: bool = False
    # An expected refusal or failure, explained by its message: logged as that line, without a traceback
    # (imageport.redaction's record factory); anything else that escapes is a bug and keeps its traceback.
    expected: bool = True
    # The server's advice, in seconds, on when to try again (HTTP 429/503 Retry-After), if it gave one.
    retry_after: float | None = None
    # How many attempts the core's retry policy (imageport.retry) made before giving up on this error;
    # 0: the core did not retry it. Prefect's task retries take only errors the core has not retried.
    attempts: int = 0

    def __init__(self, message: str) -> None:
        super().__init__(redact(message))

    @property
    def message(self) -> str:
        return str(self)

    @property
    def core_gave_up(self) -> bool:
        return self.attempts > 0

    def gave_up(self, attempts: int, seconds: float) -> None:
        """Mark this error as the one the core's retry policy stopped on (its message says so)."""
        if not self.attempts:
            self.args = (f"{self} (gave up after {attempts} attempts over {seconds:.0f} s)", *self.args[1:])
        self.attempts = attempts


# --- categories -----------------------------------------------------------


class Unreachable(ImageportError):
    """The peer could not be reached or dropped the connection: worth a retry."""

    transient = True


class AccessDenied(ImageportError):
    """Credentials were refused or lack a permission: retrying will not help."""


class NotFound(ImageportError):
    """The named object does not exist."""


class AlreadyExists(ImageportError):
    """The object to create exists already and overwriting was not asked for."""


# --- layer branches -------------------------------------------------------


class InputError(ImageportError):
    """The user's input (spec, argument, file) is invalid. Raised before anything is created."""


class FormatError(ImageportError):
    """A disk image's structure is invalid or unsupported.

    The message always names the file, the structure and the byte offset, so an
    admin can tell a truncated copy from a bug.
    """

    def __init__(self, path: str, structure: str, offset: int | None, problem: str) -> None:
        where = f" at offset {offset}" if offset is not None else ""
        super().__init__(f"{path}: {structure}{where}: {problem}")
        self.path = path
        self.structure = structure
        self.offset = offset


class StorageError(ImageportError):
    """A byte store (local file, SMB share, page blob, datastore file) failed."""


class StorageUnreachable(StorageError, Unreachable):
    pass


class StorageAccessDenied(StorageError, AccessDenied):
    pass


class StorageNotFound(StorageError, NotFound):
    pass


class StorageAlreadyExists(StorageError, AlreadyExists):
    pass


class OutputBusy(StorageError):
    """Another live run is writing the same output (it holds the output's lock)."""


class PlatformError(ImageportError):
    """A platform control plane (vSphere, Azure, local) failed."""


class PlatformUnreachable(PlatformError, Unreachable):
    pass


class PlatformAccessDenied(PlatformError, AccessDenied):
    pass


class PlatformNotFound(PlatformError, NotFound):
    pass


class TransferError(ImageportError):
    """Copying extents between stores failed (after retries) or did not verify."""


class EngineError(ImageportError):
    """The compositing engine could not be created, run or torn down."""


class GuestError(ImageportError):
    """An offline change inside a guest image was refused or failed."""
