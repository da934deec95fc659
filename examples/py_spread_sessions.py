"""Growth spread over many instances: every session keeps the datagrams it sent until they are
acknowledged, and acknowledgements never come (seed 000's `sent_datagrams` map, in Python).

No single container is big; together the 64 `Session.unacked` dicts grow ~1,300 entries a second.
memsleuth run should name `Session.unacked (dict) over 64 instances`.

    python examples/py_spread_sessions.py [--seconds N]
"""

from __future__ import annotations

import argparse
import os
import time


class Session:
    def __init__(self, peer: int) -> None:
        self.peer = peer
        self.next_seq = 0
        self.unacked: dict[int, bytes] = {}  # the bug: only an ACK removes an entry

    def send(self, payload: bytes) -> None:
        self.unacked[self.next_seq] = payload
        self.next_seq += 1


def main(seconds: float) -> None:
    sessions = [Session(i) for i in range(64)]
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        for s in sessions:
            s.send(os.urandom(200))
        time.sleep(0.05)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=float("inf"))
    main(parser.parse_args().seconds)
