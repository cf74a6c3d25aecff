"""Handing freed heap memory back to the system when the engine goes idle (glibc only).

The worker allocates and frees many mid-sized blocks (prefill activations, the keys and
values it copies in and out of the prefix cache). glibc keeps freed blocks in its arenas for
reuse rather than returning them, so a long-running process's resident memory holds its
largest working set plus whatever fragmentation left behind, spread over up to 8 arenas per
core. ``malloc_trim(0)`` returns the free pages of every arena. The worker calls it when its
queue and batch are empty, at most once per ``interval`` seconds, so no request waits on it
and a busy engine never trims. Elsewhere (musl, macOS, Windows) it does nothing.

May import: nothing of the package.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
import time
from collections.abc import Callable

DEFAULT_IDLE_TRIM_INTERVAL = 10.0
"""Seconds between two trims at most (the worker goes idle after every call)."""


def _glibc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``, or None where the C library is not glibc."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.gnu_get_libc_version  # glibc only  # noqa: B018
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim


_TRIM = _glibc_trim()


def available() -> bool:
    """Whether this process's C library can hand freed heap back (glibc)."""
    return _TRIM is not None


class IdleTrim:
    """Calls ``malloc_trim(0)`` when asked, at most once per ``interval`` seconds.

    Args:
        interval: seconds between two trims at most; None or 0 turns trimming off.
        trim: the function called (default glibc's ``malloc_trim``; tests pass their own).
    """

    def __init__(self, interval: float | None = DEFAULT_IDLE_TRIM_INTERVAL,
                 trim: Callable[[int], int] | None = None):
        self.interval = check_interval(interval)
        self._trim = trim if trim is not None else _TRIM
        self._last = time.monotonic()  # nothing to hand back right after start
        self.count = 0  # trims so far
        self.seconds = 0.0  # time spent in them

    def wait_time(self) -> float | None:
        """Seconds until the next trim may run (0: now); None when trimming is off or unsupported."""
        if not self.interval or self._trim is None:
            return None
        return max(0.0, self.interval - (time.monotonic() - self._last))

    def __call__(self) -> bool:
        """Trim if on, supported and ``interval`` seconds have passed since the last; whether it did."""
        now = time.monotonic()
        if not self.interval or self._trim is None or now - self._last < self.interval:
            return False
        self._trim(0)
        self._last = time.monotonic()
        self.count += 1
        self.seconds += self._last - now
        return True


def check_interval(interval: float | None) -> float | None:
    if interval is None:
        return None
    if isinstance(interval, bool) or not isinstance(interval, (int, float)) or not interval >= 0:
        raise ValueError(f"idle_trim_interval={interval!r} must be a number of seconds >= 0, or None (off)")
    return float(interval)
