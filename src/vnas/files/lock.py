"""One writer per output: an advisory lock held for the whole run.

The lock is ``fcntl.flock`` on a file next to the output (``.NAME.lock`` beside
``NAME``), holding the holder's PID and command. The kernel releases a ``flock`` when
its holder dies, even after ``kill -9``, so a stale lock never blocks a rerun: the next
run simply takes it over. A second writer stops at once with one line naming the
holder's PID. The lock file is removed when the lock is released; because another
process may have opened the old file just before, a new holder checks after locking
that the path still names the file it locked, and retries otherwise.

Child processes do not hold the lock. A ``flock`` belongs to the open file, which a
``fork`` shares with the child (``O_CLOEXEC`` only helps across ``exec``), so a
DataLoader worker would otherwise keep the lock of a parent killed with ``kill -9``
alive for the seconds it takes to notice the parent is gone, and a rerun in that window
would be refused. Every forked child therefore closes its copies of the held lock files
at once (``os.register_at_fork``); the lock stays with the process that took it.

``flock`` works on local file systems and on NFS v4 (Linux emulates it with byte-range
locks there), which covers the shared file systems of SLURM clusters.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from vnas.errors import VNASError

__all__ = ["hold_lock", "lock_path"]

#: The lock files this process holds open (their file descriptors).
_HELD: set[int] = set()


def _drop_inherited_locks() -> None:
    """In a forked child: close the lock files inherited from the parent."""
    for fd in list(_HELD):
        with contextlib.suppress(OSError):
            os.close(fd)
    _HELD.clear()


os.register_at_fork(after_in_child=_drop_inherited_locks)


def lock_path(output: str | Path) -> Path:
    """The lock file of an output file or folder: ``.NAME.lock`` in the same folder."""
    output = Path(output)
    return output.with_name(f".{output.name}.lock")


def _holder(path: Path) -> str:
    try:
        text = path.read_text().strip()
    except OSError:
        text = ""
    return text or "PID unknown"


def _acquire(path: Path, command: str, output: str | Path) -> int:
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise VNASError(
                f"another vnas process is writing it ({_holder(path)}); wait for it to end "
                f"or stop it (lock file {path.name})",
                output,
            ) from None
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            with contextlib.suppress(OSError):  # a full disk: the lock holds all the same
                os.ftruncate(fd, 0)
                os.write(fd, f"PID {os.getpid()}, vnas {command}\n".encode())
            return fd
        os.close(fd)  # the previous holder removed the file after we opened it: retry


@contextlib.contextmanager
def hold_lock(output: str | Path, command: str) -> Iterator[None]:
    """Hold the lock of ``output`` (file or folder) for the ``with`` block.

    Args:
        output: the output the caller is about to write; its folder must exist.
        command: the vnas command, recorded in the lock file for the error message.

    Raises:
        VNASError: another live process holds the lock (the message names its PID).
    """
    given = output
    path = lock_path(os.path.realpath(output))  # one lock however the folder is named
    fd = _acquire(path, command, given)
    _HELD.add(fd)
    try:
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        _HELD.discard(fd)
        os.close(fd)
