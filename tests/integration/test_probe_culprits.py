"""`memsleuth run` on real Python programs names the right culprit (and none on bounded ones)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

from memsleuth.errors import ExitCode
from memsleuth.model import Culprit
from memsleuth.store import Store
from tests.conftest import EXAMPLES, memsleuth_cmd


def run_probed(
    tmp_path: Path, script: Path, seconds: float, *extra: str
) -> tuple[str, tuple[Culprit, ...]]:
    db = tmp_path / "m.db"
    proc = subprocess.run(
        memsleuth_cmd(
            "run",
            "--store",
            str(db),
            "--interval",
            "0.25",
            # These tests are of what is named, not of the budget: at the default 2%, the
            # suite's other tests on a 2-core machine had left a 5 s run too few censuses to
            # name anything (two clean-clone runs, a different test each time).
            "--probe-budget",
            "0.2",
            "-q",
            *extra,
            "--",
            sys.executable,
            str(script),
            "--seconds",
            str(seconds),
        ),
        capture_output=True,
        text=True,
        timeout=seconds + 60,
    )
    assert proc.returncode == 0, proc.stderr
    with Store(db, readonly=True) as store:
        run = store.get_run()
        return run.note, store.load_culprits(run.id)


def analyze(tmp_path: Path) -> tuple[dict[str, Any], int]:
    """`memsleuth analyze --json` of the run `run_probed` made: the verdict and exit code."""
    p = subprocess.run(
        memsleuth_cmd("analyze", "--store", str(tmp_path / "m.db"), "--json"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.stdout, p.stderr
    return json.loads(p.stdout), p.returncode


def test_seed003_dedup_map_is_named_by_its_module_global(tmp_path: Path) -> None:
    note, culprits = run_probed(tmp_path, EXAMPLES / "seed003_dedup.py", 6)
    top = culprits[0]
    assert top.name == "module __main__, global PROCESSED_SIGNATURES (dict)"
    assert top.kind == "container" and top.unit == "entries"
    # ~2,000 net new signatures a second; allow for a loaded machine.
    assert 30_000 < top.growth_per_hour / 60 < 250_000
    assert top.bytes_estimate and top.bytes_estimate > 500_000
    assert "probe in pid" in note


def test_seed000_slow_consumer_queue(tmp_path: Path) -> None:
    # The slow client falls behind by ~15 packets of 16 KiB a second, from the first seconds
    # (the example fixes its socket buffers so no host's autotuning absorbs the backlog).
    _, culprits = run_probed(tmp_path, EXAMPLES / "seed000_slow_consumer.py", 15)
    top = culprits[0]
    assert top.name == "ClientSession.outbound (Queue)", culprits
    assert 5 * 3600 < top.growth_per_hour < 20 * 3600  # ~15 packets/s; a loaded machine is slower
    # A queue a writer task drains: the leak is a backlog (the seed's own diagnosis).
    assert top.queue and top.bound is None
    verdict, code = analyze(tmp_path)
    assert code == ExitCode.PROBLEM and verdict["verdict"] == "leak", verdict
    assert verdict["cause"] == "backlog", verdict["evidence"]
    assert verdict["evidence"][0].startswith(
        "the growth is a backlog in ClientSession.outbound (Queue)"
    )


def test_slow_consumer_thread_queue_equivalent(tmp_path: Path) -> None:
    script = tmp_path / "slow.py"
    script.write_text(
        textwrap.dedent("""
        import argparse, queue, threading, time

        class Client:
            def __init__(self):
                self.outbound = queue.Queue()  # unbounded

        CLIENTS = [Client() for _ in range(4)]

        def drain(client, delay):
            while True:
                client.outbound.get()
                time.sleep(delay)

        p = argparse.ArgumentParser(); p.add_argument("--seconds", type=float)
        seconds = p.parse_args().seconds
        for i, c in enumerate(CLIENTS):
            threading.Thread(target=drain, args=(c, 0.2 if i == 3 else 0), daemon=True).start()
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            for c in CLIENTS:
                c.outbound.put(b"c" * 16384)
            time.sleep(0.02)
    """)
    )
    _, culprits = run_probed(tmp_path, script, 5)
    assert culprits[0].name == "Client.outbound (Queue)"
    assert culprits[0].kind == "container" and culprits[0].queue


def test_growth_spread_over_instances_is_aggregated(tmp_path: Path) -> None:
    # 8 s, not 5: the sessions pass the tracking size at ~1.5 s and must grow over three
    # censuses to be named, and a culprit needs four readings of its group. At the default 2%
    # budget a loaded machine spaces censuses up to ~1 s apart (a clean-clone `make test` saw
    # five censuses in 5 s, the group named at the fourth: two readings, no culprit).
    _, culprits = run_probed(tmp_path, EXAMPLES / "py_spread_sessions.py", 8)
    assert culprits[0].name == "Session.unacked (dict) over 64 instances"
    # Every session leaks (not one slow peer): said so.
    assert culprits[0].evidence[-1].endswith("reached the same way, each alike")


def test_a_callbacks_list_only_appended_to(tmp_path: Path) -> None:
    _, culprits = run_probed(tmp_path, EXAMPLES / "py_callbacks.py", 5)
    assert culprits[0].name == "EventBus.callbacks (list)"


def test_a_memo_on_unique_keys_is_named_by_its_function(tmp_path: Path) -> None:
    # The cache dict of int -> str is untracked by gc: only the lru_cache wrapper reaches it.
    _, culprits = run_probed(tmp_path, EXAMPLES / "py_memoized.py", 5)
    top = culprits[0]
    assert top.name == "lru_cache of render_page() (py_memoized.py:18) (dict)"
    assert top.kind == "container" and top.unit == "entries"
    assert top.bytes_estimate and top.bytes_estimate > 1_000_000  # ~1 KiB a page


def test_a_few_heavy_frames_are_python_objects_not_native_memory(tmp_path: Path) -> None:
    # Four 2 MB bytearrays a second in a module-global list: too few entries for a container
    # by count, and bytearrays are no gc objects; their growth used to be blamed on malloc.
    _, culprits = run_probed(tmp_path, EXAMPLES / "py_frame_cache.py", 6)
    top = culprits[0]
    assert top.name == "module __main__, global REPLAY (list)"
    assert top.bytes_estimate and top.bytes_estimate > 20_000_000
    assert not [c for c in culprits if c.kind == "native"]


def test_pending_asyncio_tasks_by_coroutine_and_creation_site(tmp_path: Path) -> None:
    _, culprits = run_probed(tmp_path, EXAMPLES / "py_asyncio_tasks.py", 5)
    top = culprits[0]
    assert top.kind == "tasks"
    assert top.name == "pending asyncio tasks of wait_for_reply created at py_asyncio_tasks.py:21"


def test_threads_started_per_request_by_target_and_creation_site(tmp_path: Path) -> None:
    _, culprits = run_probed(tmp_path, EXAMPLES / "py_threads.py", 5)
    top = culprits[0]
    assert top.kind == "threads"
    assert top.name == "threads running serve_connection() started at py_threads.py:23"


def test_a_c_level_leak_is_native_not_python(tmp_path: Path) -> None:
    _, culprits = run_probed(tmp_path, EXAMPLES / "py_ctypes_leak.py", 5)
    top = culprits[0]
    assert top.kind == "native"
    assert top.name == "memory in use by malloc that no Python container explains"
    assert not [c for c in culprits if c.kind == "container"]


def test_bounded_cache_has_no_culprit_and_the_probe_no_footprint(tmp_path: Path) -> None:
    """The cache fills in ~8 s; a run long enough to see it level off. The probe's own memory
    must not read as growth: its SQLite page cache filling with the store (2 MiB by default)
    made this flat cache a 'leak' of ~+60 MiB/h."""
    _, culprits = run_probed(tmp_path, EXAMPLES / "bounded_cache.py", 30)
    assert culprits == ()
    doc, _ = analyze(tmp_path)
    assert doc["verdict"] == "plateau", doc["evidence"]


def test_gc_sawtooth_has_no_culprit(tmp_path: Path) -> None:
    _, culprits = run_probed(tmp_path, EXAMPLES / "gc_sawtooth.py", 10)
    assert culprits == ()


def test_trace_allocations_names_the_growing_site(tmp_path: Path) -> None:
    _, culprits = run_probed(
        tmp_path, EXAMPLES / "seed003_dedup.py", 6, "--trace-allocations", "4s"
    )
    sites = [c for c in culprits if c.kind == "allocation-site"]
    assert sites, culprits
    assert sites[0].name.startswith("allocation site examples/seed003_dedup.py:")
    assert any("seed003_dedup.py" in e for e in sites[0].evidence[1:])


def test_a_native_target_is_recorded_with_a_note(tmp_path: Path) -> None:
    db = tmp_path / "m.db"
    proc = subprocess.run(
        memsleuth_cmd("run", "--store", str(db), "--interval", "0.2", "-q", "--", "sleep", "1"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    with Store(db, readonly=True) as store:
        run = store.get_run()
        assert run.kind == "run" and run.sample_count >= 2
        assert "probe not injected: the target sleep is not a Python program" in run.note
        assert store.load_culprits(run.id) == ()


def test_a_script_is_run_by_python_as_memray_takes_it(tmp_path: Path) -> None:
    # `memsleuth run app.py 3` had failed "cannot start app.py 3: No such file or directory".
    script = tmp_path / "app.py"  # not executable: run by the python3 on PATH
    script.write_text("import sys, time\ntime.sleep(0.5)\nprint(sys.argv[1:])\nsys.exit(3)\n")
    db = tmp_path / "m.db"
    proc = subprocess.run(
        memsleuth_cmd("run", "--store", str(db), "-q", str(script), "--port", "8080"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (proc.returncode, proc.stdout) == (3, "['--port', '8080']\n"), proc.stderr
    with Store(db, readonly=True) as store:
        run = store.get_run()
        events = [kind for _, kind, _ in store.load_events(run.id)]
    assert run.name == "app.py" and "probe.status" in events  # probed, as a Python program


HOST_TRACES = """
import time, tracemalloc
tracemalloc.start(3)  # the program traces for itself, inside the probe's window
keep = []
for i in range(30):
    keep.append("x" * 10000 + str(i))
    time.sleep(0.1)
assert tracemalloc.is_tracing(), "the probe stopped the program's tracing"
tracemalloc.take_snapshot()
"""


def test_trace_allocations_leaves_the_programs_own_tracing_on(tmp_path: Path) -> None:
    script = tmp_path / "host_traces.py"
    script.write_text(HOST_TRACES)
    proc = subprocess.run(
        memsleuth_cmd(
            "run", "--store", str(tmp_path / "m.db"), "--interval", "0.2", "-q",
            "--trace-allocations", "1s", "--", sys.executable, str(script),
        ),
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr  # it had exited 1: "must be tracing"


TASKS = """
import asyncio, sys
async def main(seconds):
    keep = []
    for _ in range(int(seconds / 0.05)):
        keep.append(asyncio.create_task(asyncio.sleep(3600)))  # never awaited, never done
        await asyncio.sleep(0.05)
asyncio.run(main(float(sys.argv[2])))
"""


def test_pending_tasks_that_keep_growing_are_a_task_leak(tmp_path: Path) -> None:
    # The culprits had named the tasks while the verdict read `plateau` and analyze exited 0.
    script = tmp_path / "tasks.py"
    script.write_text(TASKS)
    _, culprits = run_probed(tmp_path, script, 10)
    assert culprits and culprits[0].kind == "tasks"
    verdict, code = analyze(tmp_path)
    assert code == ExitCode.PROBLEM, verdict["evidence"]
    assert verdict["verdict"] == "task-leak" and verdict["task_growth_per_hour"] > 10_000


def test_the_malloc_trim_test_is_in_the_verdicts_evidence(tmp_path: Path) -> None:
    # A bounded cache has no culprit, so the trim's answer had been stored and never shown.
    run_probed(tmp_path, EXAMPLES / "bounded_cache.py", 4, "--malloc-trim-test")
    evidence = analyze(tmp_path)[0]["evidence"]
    assert any(e.startswith("malloc_trim(0) at exit gave back ") for e in evidence), evidence


def test_the_probe_finishes_before_memsleuth_stops_its_host(tmp_path: Path) -> None:
    # `--duration` ends the host with SIGTERM, and a Python program without a handler runs no
    # atexit hook: the malloc_trim test's answer and the probe's last record had been lost.
    run_probed(
        tmp_path, EXAMPLES / "bounded_cache.py", 600, "--malloc-trim-test", "--duration", "4s"
    )
    evidence = analyze(tmp_path)[0]["evidence"]
    assert any(e.startswith("malloc_trim(0) at exit gave back ") for e in evidence), evidence
    with Store(tmp_path / "m.db", readonly=True) as store:
        run = store.get_run()
        said = [p["message"] for _, _, p in store.load_events(run.id, "probe.status")]
        assert run.exit_status is not None and run.exit_status != 0  # it was stopped
    assert said[-1] == "probe stopped", said
    assert not list(tmp_path.glob("*.stop"))  # the request is cleared


def test_a_bounded_cache_still_filling_is_a_plateau_not_a_leak(tmp_path: Path) -> None:
    # An lru_cache of 40,000 pages a fifth full rises as steadily as a leak: it had read
    # `leak`, its culprit sized at a sixteenth of what the pages hold (the cache dict's values
    # are links that only the wrapper reaches through).
    _, culprits = run_probed(tmp_path, EXAMPLES / "py_lru_filling.py", 8)
    top = culprits[0]
    assert top.name == "lru_cache of render() (py_lru_filling.py:21) (dict)"
    assert top.bound == 40_000 and top.share > 0.5
    held = top.points[-1][1]
    assert top.bytes_estimate and 2000 < top.bytes_estimate / held < 2600  # ~2.1 KiB a page
    doc, code = analyze(tmp_path)
    assert (doc["verdict"], code) == ("plateau", ExitCode.OK), doc["evidence"]
    assert "bounded at 40,000 entries" in doc["evidence"][0]
    # Full, it holds 40,000 pages: the ceiling is the level now plus the room left.
    room = (40_000 - held) * top.bytes_estimate / held
    assert doc["ceiling_bytes"] > room


def test_an_unbounded_memo_stays_a_leak(tmp_path: Path) -> None:
    _, culprits = run_probed(tmp_path, EXAMPLES / "py_memoized.py", 6)
    assert culprits[0].bound is None
    doc, code = analyze(tmp_path)
    assert (doc["verdict"], code) == ("leak", ExitCode.PROBLEM), doc["evidence"]


MAIN_HOLDS = """
import sys, time

class Server:
    def __init__(self):
        self.sessions = {}

def main(seconds):
    server = Server()
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for _ in range(50):
            server.sessions[len(server.sessions)] = bytearray(5000)
        time.sleep(0.05)

main(float(sys.argv[2]))  # the leak is a local of main(): freed when it returns, before exit
"""


def test_what_main_held_is_sized_as_it_ran_not_as_the_program_ended(tmp_path: Path) -> None:
    # The probe's reading at exit came after main() returned and freed its Server: its dict
    # had been sized "at most 17.6 MiB retained ... capped, an upper bound" for 28.7 MiB held,
    # and given 58% of a growth that was all its own.
    script = tmp_path / "app.py"
    script.write_text(MAIN_HOLDS)
    _, culprits = run_probed(tmp_path, script, 5)
    [sessions] = [c for c in culprits if c.name.startswith("Server.sessions")]
    assert sessions.share >= 0.8, culprits
    assert not any("upper bound" in e for e in sessions.evidence), sessions.evidence
    assert sessions.bytes_estimate is not None and sessions.bytes_estimate > 0.7 * 5000 * 4000
