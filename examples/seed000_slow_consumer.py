"""Seed 000: a game server whose per-client outbound queues are unbounded, and one slow client.

The server broadcasts ~16 KiB chunk packets to every client. Each client has an unbounded
`asyncio.Queue` that a writer task drains into its socket; the slow client reads 4 KiB every
50 ms, so its socket buffer fills, `drain()` blocks, and its queue grows without end.

memsleuth should say: leak (RSS grows linearly, ~15-20 MiB/min); with `memsleuth run`, the
culprit is the slow client's `ClientSession.outbound` queue.

    python examples/seed000_slow_consumer.py [--seconds N]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import socket

PACKET = 16 * 1024
TICK_S = 0.05  # 20 broadcasts a second


class ClientSession:
    """What the server keeps per connected player."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self.outbound: asyncio.Queue[bytes] = asyncio.Queue()  # the bug: no maxsize
        self.sent = 0


CLIENTS: dict[int, ClientSession] = {}


async def _writer_loop(session: ClientSession) -> None:
    while True:
        packet = await session.outbound.get()
        session.writer.write(packet)
        await session.writer.drain()
        session.sent += 1


async def _handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    # Fixed kernel buffers (see _client): the backlog lands in the queue from the first seconds.
    writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * 1024)
    session = ClientSession(writer)
    CLIENTS[id(session)] = session
    # Shutting down, or the client went away: either way this writer is done.
    with contextlib.suppress(asyncio.CancelledError, ConnectionError):
        await _writer_loop(session)


async def _broadcast(stop_at: float) -> None:
    loop = asyncio.get_running_loop()
    n = 0
    while loop.time() < stop_at:
        for session in list(CLIENTS.values()):
            # A fresh packet per client, as a chunk encoder would produce.
            session.outbound.put_nowait(os.urandom(64) * (PACKET // 64))
        n += 1
        await asyncio.sleep(TICK_S)


async def _client(port: int, slow: bool) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if slow:
        # A player on a poor link: a small receive window. Without fixed buffers on both ends
        # the kernel's autotuning (up to net.ipv4.tcp_rmem / tcp_wmem's maxima, which differ
        # by host) would absorb tens of seconds of backlog before the queue started to grow.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    reader, _writer = await asyncio.open_connection(sock=sock)
    while True:
        data = await reader.read(4096 if slow else 1 << 20)
        if not data:
            return
        if slow:
            await asyncio.sleep(0.05)


async def main(seconds: float) -> None:
    server = await asyncio.start_server(_handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    clients = [asyncio.create_task(_client(port, slow=i == 3)) for i in range(4)]
    await asyncio.sleep(0.2)
    await _broadcast(asyncio.get_running_loop().time() + seconds)
    for c in clients:
        c.cancel()
    server.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=float("inf"))
    asyncio.run(main(parser.parse_args().seconds))
