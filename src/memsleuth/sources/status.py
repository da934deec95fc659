"""The memory and thread fields of /proc/PID/status, read by the recorder for any process and
by the in-process probe for its own. No imports: the probe loads this into every host."""

from __future__ import annotations

_KEYS = (b"VmRSS", b"RssAnon", b"RssFile", b"VmSwap", b"VmHWM", b"Threads")


def parse_status(text: bytes) -> dict[str, int]:
    """VmRSS, RssAnon, RssFile, VmSwap and VmHWM in bytes (the kernel says kB), Threads as a count;
    a field the kernel did not print (a kernel thread has no VmRSS) is absent."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        key, _, rest = line.partition(b":")
        if key in _KEYS:
            n = int(rest.split()[0])
            out[key.decode()] = n if key == b"Threads" else n * 1024
    return out
