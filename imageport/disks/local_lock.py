"""Output locks, no-replace renames and listings in a local directory (see ``ownership``).

The lock is ``flock(LOCK_EX)`` on ``NAME.imageport-lock``: the kernel drops it
when its process dies, however it dies, so a lock file nobody holds is a dead
run's. Taking it re-checks that the locked inode is still the one under the
name (the previous holder deletes the file on release), the classic pattern
for lock files that are removed.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import stat

from imageport.disks.os_errors import os_error, translate_os_errors
from imageport.disks.ownership import LOCK_SUFFIX, Lock, OutputStore, Owner, busy, parse_record

_AT_FDCWD = -100
_RENAME_NOREPLACE = 1
_libc = ctypes.CDLL(None, use_errno=True)

_KINDS = (
    (stat.S_ISREG, "file"),
    (stat.S_ISDIR, "directory"),
    (stat.S_ISCHR, "character device"),
    (stat.S_ISBLK, "block device"),
    (stat.S_ISFIFO, "FIFO"),
    (stat.S_ISSOCK, "socket"),
)


def file_kind(path: str) -> str | None:
    """What ``path`` is (following symlinks): ``None`` when absent, "file", "directory", "FIFO", ..."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise os_error(path, "stat", exc) from None
    return next((name for test, name in _KINDS if test(mode)), "special file")


def rename_noreplace(source: str, target: str) -> None:
    """Rename atomically, failing with EEXIST when ``target`` exists (renameat2 RENAME_NOREPLACE;
    link + unlink where the file system lacks it)."""
    renameat2 = getattr(_libc, "renameat2", None)
    if renameat2 is not None:
        if renameat2(_AT_FDCWD, os.fsencode(source), _AT_FDCWD, os.fsencode(target), _RENAME_NOREPLACE) == 0:
            return
        code = ctypes.get_errno()
        if code not in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
            raise OSError(code, os.strerror(code), target)
    os.link(source, target)
    os.unlink(source)


class LocalLock(Lock):
    def __init__(self, path: str, fd: int, previous: str | None) -> None:
        self.path = path
        self.fd = fd
        self.previous = previous

    def release(self, keep_record: bool = False) -> None:
        if self.fd < 0:
            return
        fd, self.fd = self.fd, -1
        try:
            if not keep_record:
                with translate_os_errors(self.path, "delete the lock"):
                    os.unlink(self.path)  # still holding it: a waiter re-checks the inode and retries
        finally:
            os.close(fd)  # the flock goes with the last descriptor


class LocalOutputStore(OutputStore):
    def display(self, path: str) -> str:
        return path or "."

    def exists(self, path: str) -> bool:
        return os.path.lexists(path)

    def remove(self, path: str) -> None:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise os_error(path, "delete", exc) from None

    def rename(self, source: str, target: str) -> None:
        with translate_os_errors(target, f"rename {os.path.basename(source)} to it"):
            rename_noreplace(source, target)

    def listdir(self, folder: str) -> list[str]:
        with translate_os_errors(folder or ".", "list"):
            return sorted(os.listdir(folder or "."))

    def split(self, path: str) -> tuple[str, str]:
        return os.path.split(path)

    def join(self, folder: str, name: str) -> str:
        return os.path.join(folder, name)

    def lock(self, path: str, text: str, wait: bool) -> Lock:
        while True:
            with translate_os_errors(path, "create the lock"):
                fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644)
            try:
                taken = self._take(path, fd, wait)
                if taken is None:
                    os.close(fd)
                    continue  # the file we locked was released and deleted meanwhile
                with translate_os_errors(path, "write the owner record"):
                    os.ftruncate(fd, 0)
                    os.pwrite(fd, text.encode(), 0)
                return LocalLock(path, fd, taken or None)
            except BaseException:
                os.close(fd)
                raise

    def _take(self, path: str, fd: int, wait: bool) -> str | None:
        """Lock ``fd``; the previous record ("" if none), or ``None`` when ``fd`` is no longer ``path``."""
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            owner, _ = parse_record(os.pread(fd, 4096, 0))
            raise busy(path.removesuffix(LOCK_SUFFIX), owner) from None
        except OSError as exc:
            raise os_error(path, "lock", exc) from None
        try:
            named = os.stat(path)
        except FileNotFoundError:
            return None
        mine = os.fstat(fd)
        if (named.st_dev, named.st_ino) != (mine.st_dev, mine.st_ino):
            return None
        return os.pread(fd, 65536, 0).decode("utf-8", "replace")

    def holder(self, path: str) -> tuple[bool, Owner | None]:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
        except FileNotFoundError:
            return False, None
        except OSError as exc:
            raise os_error(path, "open the lock", exc) from None
        try:
            owner, _ = parse_record(os.pread(fd, 65536, 0))
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return True, owner
            return False, owner
        finally:
            os.close(fd)
