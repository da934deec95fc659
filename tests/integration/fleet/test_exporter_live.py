"""The exporter scraped by a real Prometheus while a process leaks; `fleet` finds the leaker."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request

import pytest

from conftest import Prom
from memsleuth.cli import main

pytestmark = [pytest.mark.prometheus, pytest.mark.xdist_group("prometheus")]

LEAKER = """
import time
keep = []
while True:
    keep.append(b"x" * 1_000_000)  # written pages: RSS grows ~4 MB/s
    time.sleep(0.25)
"""
STEADY = "import time\nwhile True: time.sleep(1)\n"


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as r:
        return r.read().decode()


def test_fleet_finds_the_leaker_through_the_exporter(prometheus: Prom, capsys) -> None:
    leaker = subprocess.Popen([sys.executable, "-c", LEAKER + "# memsleuth-live-leaker"])
    steady = subprocess.Popen([sys.executable, "-c", STEADY + "# memsleuth-live-steady"])
    exporter = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "memsleuth",
            "exporter",
            "--port",
            str(prometheus.exporter_port),
            "--match",
            "memsleuth-live-(leaker|steady)",
            "--interval",
            "0.5",
            "--judge-every",
            "2",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert exporter.stdout is not None
        assert exporter.stdout.readline().startswith("serving http://127.0.0.1:")
        started = time.time()
        time.sleep(40)  # Prometheus scrapes every second
        metrics = _get(f"http://127.0.0.1:{prometheus.exporter_port}/metrics")
        assert "# HELP memsleuth_process_resident_memory_bytes" in metrics
        assert f'pid="{leaker.pid}"' in metrics and f'pid="{steady.pid}"' in metrics
        # Scrapes lag on a loaded machine: ask again until the verdict is in, within a
        # generous deadline (this is about finding the leaker, not about speed).
        deadline = time.monotonic() + 120
        while True:
            code = main(
                [
                    "fleet",
                    "--prometheus",
                    prometheus.url,
                    "--query",
                    'memsleuth_process_resident_memory_bytes{job="memsleuth"}',
                    "--range",
                    f"{int(time.time() - started)}s",
                    "--step",
                    "1s",
                    "--json",
                ]
            )
            rows = json.loads(capsys.readouterr().out)
            by_pid = {r["labels"]["pid"]: r for r in rows}
            found = by_pid.get(str(leaker.pid), {}).get("verdict") == "leak"
            if found or time.monotonic() > deadline:
                break
            time.sleep(10)
        assert by_pid[str(leaker.pid)]["verdict"] == "leak", by_pid[str(leaker.pid)]
        assert by_pid[str(steady.pid)]["verdict"] != "leak", by_pid[str(steady.pid)]
        assert rows[0]["labels"]["pid"] == str(leaker.pid)
        assert code == 3
    finally:
        for p in (exporter, leaker, steady):
            p.terminate()
            p.wait(10)
