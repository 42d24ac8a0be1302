"""The one place where a local file system's ``OSError`` becomes an imageport error.

Local files are read and written by the disk layer (``RandomAccessFile``,
``LocalFileSink``, output locks); every system call there runs inside
``translate_os_errors(path, operation)``, so a full disk, a read-only mount,
a file-size limit or a failing device ends as one line naming the file, the
operation and the errno -- never a traceback::

    /mnt/small/out.vhdx: write failed: No space left on device (ENOSPC)
"""

from __future__ import annotations

import contextlib
import errno
from collections.abc import Iterator

from imageport.errors import StorageAccessDenied, StorageAlreadyExists, StorageError, StorageNotFound

_KIND: dict[int, type[StorageError]] = {
    errno.ENOENT: StorageNotFound,
    errno.ENOTDIR: StorageNotFound,
    errno.EACCES: StorageAccessDenied,
    errno.EPERM: StorageAccessDenied,
    errno.EEXIST: StorageAlreadyExists,
}


def os_error(path: str, operation: str, exc: OSError) -> StorageError:
    """``exc`` as the error tree's storage error naming ``path``, ``operation`` and the errno."""
    code = exc.errno or 0
    name = errno.errorcode.get(code, f"errno {code}")
    reason = exc.strerror or str(exc)
    return _KIND.get(code, StorageError)(f"{path}: {operation} failed: {reason} ({name})")


@contextlib.contextmanager
def translate_os_errors(path: str, operation: str) -> Iterator[None]:
    """Run local file calls; an ``OSError`` leaves as a ``StorageError`` naming ``path`` and ``operation``."""
    try:
        yield
    except OSError as exc:
        raise os_error(path, operation, exc) from None
