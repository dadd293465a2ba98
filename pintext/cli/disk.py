"""One line, never a traceback, when a command cannot write where it was told to: out of space (exit 1: free
space and run again), a read-only file system or a place it may not write (exit 2: give another place)."""

from __future__ import annotations

import errno
import functools
from collections.abc import Callable
from typing import Any

from pintext.cli.errors import FAILURE, USAGE, fail

ONLY_WRITES = (errno.ENOSPC, errno.EDQUOT, errno.EROFS)


def reports_disk_errors(command: Callable[..., None]) -> Callable[..., None]:
    """Wrap a command so that a `DiskWriteError` (or an OSError of a full, read-only or forbidden place) is one
    line naming the path (`pintext.atomic`)."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        from pintext.atomic import DiskWriteError, disk_write_error

        try:
            command(*args, **kwargs)
        except DiskWriteError as error:
            fail(f"{error}{_what_now(error)}", USAGE if error.usage_fault else FAILURE)
        except OSError as error:  # one our writers did not name: only the errors no read can have
            if error.filename and error.errno in (errno.EACCES, errno.EPERM):  # a read, or a write: say only that
                fail(f"{error.filename}: permission denied", USAGE)
            # A buffered write that fails on close has no file name: the command's --out is where it was writing.
            place = error.filename or kwargs.get("out")
            problem = disk_write_error(error, place) if place and error.errno in ONLY_WRITES else None
            if problem is None:
                raise
            fail(f"{problem}{_what_now(problem)}", USAGE if problem.usage_fault else FAILURE)

    return wrapper


def _what_now(error: Any) -> str:
    return " (free some space and run the command again)" if not error.usage_fault else ""
