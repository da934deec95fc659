"""A small HTTP server for soak tests: `--leak BYTES` keeps that much per request (a global list
that is never pruned, the bug of seed 003); without it, memory stays flat.

    python examples/soak_server.py --port 8080 [--leak 8192]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SEEN: list[bytes] = []  # what a leaking server keeps, one entry per request
LEAK_BYTES = 0


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like a real client would use
    disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms delayed ACK

    def do_GET(self) -> None:
        if LEAK_BYTES:
            SEEN.append(os.urandom(LEAK_BYTES))
        body = json.dumps({"path": self.path, "items": list(range(20))}).encode()
        self.send_response(200 if self.path.startswith("/api/") else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass  # quiet: thousands of requests


def main() -> None:
    global LEAK_BYTES
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--leak", type=int, default=0, help="bytes kept per request")
    args = parser.parse_args()
    LEAK_BYTES = args.leak
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()


if __name__ == "__main__":
    main()
