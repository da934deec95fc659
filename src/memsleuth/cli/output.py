"""Standard output that fails the way memsleuth's other errors do.

A full disk or a closed stdout becomes one `error:` line and exit 1 (it had been a traceback,
or silence and exit 0 when the failure came at the interpreter's last flush). A reader that
goes away (`analyze | head -1`) is no error: the rest of the output is dropped and the command
keeps its own exit code (a leak still exits 3).
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import sys
from collections.abc import Iterator
from typing import Any, TextIO

from memsleuth.errors import MemsleuthError


class OutputError(MemsleuthError):
    """Standard output cannot be written."""

    def __init__(self, exc: OSError) -> None:
        why = "it is closed" if exc.errno == errno.EBADF else (exc.strerror or str(exc))
        super().__init__(
            f"cannot write to standard output: {why}",
            "redirect it somewhere writable, or write to a file with -o FILE where offered",
        )


class _Closed(io.TextIOBase):
    """What Python leaves as sys.stdout when fd 1 was closed (`cmd >&-`): None."""

    def write(self, s: str) -> int:
        raise OSError(errno.EBADF, os.strerror(errno.EBADF))


class GuardedOutput:
    """Wraps sys.stdout: OSErrors become OutputError, a broken pipe ends the output quietly."""

    def __init__(self, inner: TextIO | io.TextIOBase) -> None:
        self._inner = inner
        self.broken = False

    def write(self, s: str) -> int:
        if not self.broken:
            with self._guard():
                return self._inner.write(s)
        return len(s)

    def flush(self) -> None:
        if not self.broken:
            with self._guard():
                self._inner.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    @contextlib.contextmanager
    def _guard(self) -> Iterator[None]:
        try:
            yield
        except BrokenPipeError:
            self.broken = True
            # The interpreter flushes stdout once more at exit: point fd 1 at /dev/null so
            # that flush has somewhere to go.
            with contextlib.suppress(OSError, ValueError, io.UnsupportedOperation):
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, self._inner.fileno())
                os.close(devnull)
        except OSError as exc:
            raise OutputError(exc) from None


@contextlib.contextmanager
def guarded_stdout() -> Iterator[GuardedOutput]:
    """sys.stdout guarded for the block, and flushed at its end (inside the guard)."""
    original = sys.stdout
    guarded = GuardedOutput(original if original is not None else _Closed())
    sys.stdout = guarded
    try:
        yield guarded
        guarded.flush()
    finally:
        sys.stdout = original
