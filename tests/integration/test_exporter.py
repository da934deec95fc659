"""`memsleuth exporter` as a user starts it: what it serves, on which address, for which pids."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from memsleuth.errors import ExitCode
from tests.conftest import memsleuth_cmd

MARKER = "memsleuth-exporter-target"


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


def test_a_dead_pid_is_an_error_not_an_empty_exporter() -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    p = subprocess.run(
        memsleuth_cmd("exporter", "--port", "0", "--pid", str(gone.pid)),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == ExitCode.ERR, p.stderr
    assert p.stderr.startswith(f"error: no process with pid {gone.pid}"), p.stderr
    assert "hint:" in p.stderr and "Traceback" not in p.stderr


def test_an_address_not_on_this_host_is_named_as_such_and_a_port_in_use_as_such() -> None:
    # The hint had said "pick another --port" for an address the host does not have.
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        cmd = memsleuth_cmd("exporter", *args)
        return subprocess.run(cmd, capture_output=True, text=True, timeout=60)

    p = run("--address", "192.0.2.1", "--port", "0")  # TEST-NET-1: nobody's address
    assert p.returncode == ExitCode.USAGE and "this host's own" in p.stderr, p.stderr
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        p = run("--port", str(port))
    # The machine's state, not bad usage: exit 1 (it had been 2), the hint naming the port.
    assert p.returncode == ExitCode.ERR and "Traceback" not in p.stderr, p.stderr
    assert f"hint: port {port} is in use: pick another with --port" in p.stderr, p.stderr


@pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback here")
def test_match_serves_the_targets_not_the_exporter_itself_on_ipv6() -> None:
    target = subprocess.Popen([sys.executable, "-c", f"import time; time.sleep(60)  # {MARKER}"])
    # The exporter's own command line holds the pattern too: it must not watch itself.
    exporter = subprocess.Popen(
        memsleuth_cmd(
            "exporter", "--address", "::1", "--port", "0", "--interval", "0.2", "--match", MARKER
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert exporter.stdout is not None
        first = exporter.stdout.readline()
        m = re.match(r"serving (http://\[::1\]:\d+/metrics) \(1 process\)", first)
        assert m, first
        time.sleep(0.5)
        with urllib.request.urlopen(m.group(1), timeout=10) as r:
            metrics = r.read().decode()
        rss = r'memsleuth_process_resident_memory_bytes\{[^}]*pid="(\d+)"'
        pids = set(re.findall(rss, metrics))
        assert pids == {str(target.pid)}, pids
    finally:
        exporter.send_signal(signal.SIGTERM)
        _, err = exporter.communicate(timeout=30)
        target.kill()
        target.wait()
    assert exporter.returncode == ExitCode.OK, err
