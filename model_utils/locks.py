"""One writer per output: a second run that would write the same file or folder is refused in one sentence."""
import os
from collections.abc import Iterator
from contextlib import contextmanager

from filelock import FileLock, Timeout

from model_utils.errors import UserError


@contextmanager
def sole_writer(path: str) -> Iterator[None]:
    """Hold `path`.lock (an OS file lock, beside the output) while writing path.

    The OS drops the lock when its holder exits, even on kill -9, so a stale lock never blocks a rerun.
    """
    path = os.path.abspath(path)
    lock = FileLock(path + ".lock", thread_local=False)
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        lock.acquire(timeout=0)
    except Timeout:
        raise UserError(f"{path!r} is being written by another run right now: wait for it to end, "
                        f"or write somewhere else.") from None
    except OSError as e:
        raise UserError(f"{path!r} cannot be written ({e.strerror}): choose another place.") from e
    try:
        yield
    finally:
        lock.release()
