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
    │   │   ├── StorageBusy             SMB sharing violation (a dead session's handle)
    │   │   └── StorageThrottled        (+ AzureThrottled: 429/5xx, retry_after)
    │   ├── StorageAccessDenied     (+ AccessDenied)
    │   ├── StorageNotFound         (+ NotFound)
    │   ├── StorageAlreadyExists    (+ AlreadyExists)
    │   └── OutputBusy              another run holds the output's lock
    ├── PlatformError         control planes: vSphere, Azure, local (platforms/)
    │   ├── PlatformUnreachable     (+ Unreachable: transient)
    │   │   ├── PlatformThrottled       (+ AzureThrottled)
    │   │   ├── VsphereSessionExpired   a re-login and retry will do
    │   │   └── XenServerNotMaster      a pool member answered: ``master`` is where to log in
    │   ├── PlatformAccessDenied    (+ AccessDenied)
    │   ├── PlatformNotFound        (+ NotFound)
    │   ├── DiskExists              (+ AlreadyExists) an Azure managed disk
    │   └── DatastoreFileExists     (+ AlreadyExists) a vSphere import's file
    ├── TransferError         copying extents between stores (transfer/)
    │   ├── TargetNotEmpty          (+ AlreadyExists) a page blob holding foreign data
    │   ├── VDiskExists             (+ AlreadyExists) a PVS vDisk
    │   ├── VDiskInUse              a PVS vDisk version in use
    │   └── StageTimeout            a stage outlived its timeout (checked in the transfer loop)
    ├── EngineError           compositing engine lifecycle (engine/)
    │   ├── EngineTimeout           the agent outlived its job timeout
    │   ├── EngineCleanupFailed     resources left after retries (``left``)
    │   ├── BundleError             the agent bundle: build, or a file with another digest
    │   ├── ProtocolMismatch        job/result of another protocol (agent, Python 3.9)
    │   └── OutputExists            (+ AlreadyExists) the local backend's output
    ├── GuestError            offline changes inside an image (guest/)
    │   └── GuestRefused            an image prepare must not touch
    ├── ConnectorNotFound     (+ NotFound) no connector of that name (blocks/registry.py)
    └── ConnectorExists       (+ AlreadyExists) the name is taken

    Category mixins (never raised alone): Unreachable, AccessDenied, NotFound,
    AlreadyExists; AzureThrottled (Unreachable with the server's Retry-After).

Every error class lives here, in one tree; the modules that translate an SDK
keep only their mapping functions. ``retry_after`` (the server's advice) and
``attempts`` (how many the core's retry policy made before it gave up,
``imageport.retry``) are on every error.

Each SDK's exceptions are translated in exactly one module per adapter
(for example ``storage/smb_errors.py``); nothing above that module ever sees
an SDK exception. Messages name what failed and where, and must never carry
a secret (passwords, SAS query strings): every message passes through
``imageport.redaction.redact``.
"""

from __future__ import annotations

from typing import Any

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


# --- specific errors, by where they are raised ------------------------------

# storage: SMB (mapped in storage/smb_errors.py)


class StorageBusy(StorageUnreachable):
    """Another handle holds the file (SMB sharing violation): e.g. a dropped session the server
    has not cleaned up yet, or another run. Transient: worth trying again a little later."""


# Azure throttling, either plane (mapped in storage/azure_errors.py)


class AzureThrottled(Unreachable):
    """429 / 5xx: transient; ``retry_after`` is the server's advice in seconds, if it gave one."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class StorageThrottled(StorageUnreachable, AzureThrottled):
    pass


class PlatformThrottled(PlatformUnreachable, AzureThrottled):
    pass


# platforms: vSphere (mapped in platforms/vsphere/errors.py)


class VsphereSessionExpired(PlatformUnreachable):
    """The vCenter session timed out; a re-login and retry will do."""


# platforms: XenServer (mapped in platforms/xenserver/errors.py)


class XenServerNotMaster(PlatformUnreachable):
    """A pool member refused the call (HOST_IS_SLAVE); ``master`` is the coordinator's address it named."""

    def __init__(self, message: str, master: str) -> None:
        super().__init__(message)
        self.master = master


# platforms: Azure managed disks


class DiskExists(PlatformError, AlreadyExists):
    pass


# platforms: vSphere datastore imports


class DatastoreFileExists(PlatformError, AlreadyExists):
    pass


# transfer: page-blob uploads


class TargetNotEmpty(TransferError, AlreadyExists):
    pass


# transfer: PVS publish


class VDiskExists(TransferError, AlreadyExists):
    pass


class VDiskInUse(TransferError):
    pass


class StageTimeout(TransferError):
    """A stage outlived its ``timeout_s``: the transfer loop stopped at its next step (resumable, not transient)."""


# engine: lifecycle


class EngineTimeout(EngineError):
    """The agent outlived its job timeout; the CE was torn down."""


class EngineCleanupFailed(EngineError):
    """Some resources could not be deleted after retries; they are named so nobody pays for them unknowingly."""

    def __init__(self, message: str, left: list[Any]) -> None:  # engine.backend.Resource
        super().__init__(message)
        self.left = left


# engine: the agent bundle


class BundleError(EngineError):
    """The agent bundle could not be built, or a file is not the bundle it claims to be."""


# engine: job protocol (the agent, Python 3.9, raises it too)


class ProtocolMismatch(EngineError):
    """The job or the result speaks another protocol version than this side: the bundle is of another release."""


# engine: the local backend


class OutputExists(EngineError, AlreadyExists):
    pass


# guest (libguestfs mapped in guest/errors.py)


class GuestRefused(GuestError):
    """The image is in a state prepare must not touch (hibernated, encrypted, dirty, not Windows...)."""


# connectors: the registry (blocks/registry.py raises them)


class ConnectorNotFound(NotFound):
    pass


class ConnectorExists(AlreadyExists):
    pass
