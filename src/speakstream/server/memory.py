"""Give memory back: glibc's allocator keeps what the engine's runs freed unless asked.

Engine runs allocate and free large buffers from several threads; glibc keeps freed
memory in per-thread arenas, so a server's RSS grows with load and never comes back
down. ``limit_arenas()`` (at start) caps the arenas at two, and ``trim()`` (after the
engine loads, and whenever the server falls idle) returns free memory to the system.
Both do nothing where glibc is not the allocator.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

_LOGGER = logging.getLogger(__name__)
_M_ARENA_MAX = -8


def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
    except OSError:
        return None
    return libc if hasattr(libc, "malloc_trim") and hasattr(libc, "mallopt") else None


def limit_arenas(arenas: int = 2) -> bool:
    libc = _libc()
    return bool(libc is not None and libc.mallopt(_M_ARENA_MAX, arenas))


def trim() -> bool:
    """Return free heap memory to the system; True if the allocator could."""
    libc = _libc()
    if libc is None:
        return False
    libc.malloc_trim(0)
    return True


def rss_mb() -> float:
    """This process's resident memory (Linux; 0 elsewhere)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0
