"""`memsleuth run`: record a Python program with the probe injected, then name the culprits."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from memsleuth.cli.options import positive_duration
from memsleuth.cli.record import add_record_options, options_from_args
from memsleuth.errors import UsageError
from memsleuth.judgement import probe_culprits
from memsleuth.model import Run
from memsleuth.probe.agent import STOP_FILE_ENV
from memsleuth.recorder import RecordOptions
from memsleuth.recording import record_command
from memsleuth.store import Store
from memsleuth.target import not_python, with_interpreter

INJECT_DIR = Path(__file__).resolve().parent.parent / "probe" / "inject"


class RunCommand:
    """Record a Python program like `record` does, with an in-process probe that names what
    grows: containers (by module global, class attribute or owner type), object types, threads
    and asyncio tasks by creation site, fds by kind, native memory vs Python objects.

      memsleuth run -- python app.py --port 8080
      memsleuth run app.py --port 8080   # the same, with the python3 on PATH
      memsleuth run --trace-allocations 60s -- python app.py
      memsleuth analyze            # the verdict now lists the culprits

    A target that is not Python is recorded as `record` would, with a note saying why.
    Exits as `record` does: with the program's own status when it fails.
    """

    def prepare_parser(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--trace-allocations",
            type=positive_duration,
            metavar="DURATION",
            help="also diff tracemalloc snapshots over this window (e.g. 60s): the allocation "
            "sites whose live bytes grow (slows the target while the window lasts)",
        )
        parser.add_argument(
            "--malloc-trim-test",
            action="store_true",
            help="when the target exits, call malloc_trim(0) in it and report how much RSS "
            "the allocator was only retaining (glibc)",
        )
        parser.add_argument(
            "--probe-budget",
            type=float,
            default=0.02,
            metavar="SHARE",
            help="share of the target's wall time all the probe's work may take (default 0.02)",
        )
        add_record_options(parser, attach=False)

    def run(self, args: argparse.Namespace) -> int:
        argv, options = options_from_args(args)
        argv = with_interpreter(argv)
        if options.pid is not None:
            raise UsageError(
                "run starts the program itself and cannot probe a running process",
                "use `memsleuth record --pid N`, or call memsleuth.probe.start() in the program",
            )
        if not 0 < args.probe_budget <= 1:
            raise UsageError(
                f"--probe-budget must be in (0, 1], not {args.probe_budget}",
                "it is a share of the target's wall time: e.g. --probe-budget 0.05 for 5%",
            )
        started: list[Run] = []

        def env_for_run(run: Run) -> dict[str, str]:
            started.append(run)
            return probe_env(run, options, args)

        code = record_command(argv, options, kind="run", env_for_run=env_for_run)
        if started:
            finish(options.store_path, started[0].id, argv)
        return code


def probe_env(run: Run, options: RecordOptions, args: argparse.Namespace) -> dict[str, str]:
    """What the target's environment gets so the probe starts in it (and in its children)."""
    pythonpath = os.environ.get("PYTHONPATH", "")
    env = {
        "PYTHONPATH": os.pathsep.join(p for p in (str(INJECT_DIR), pythonpath) if p),
        "MEMSLEUTH_PROBE_PATH": str(INJECT_DIR.parent.parent.parent),
        "MEMSLEUTH_STORE": str(Path(options.store_path).resolve()),
        "MEMSLEUTH_RUN_ID": str(run.id),
        "MEMSLEUTH_PROBE_INTERVAL": str(options.interval_s),
        "MEMSLEUTH_PROBE_BUDGET": str(args.probe_budget),
        STOP_FILE_ENV: f"{Path(options.store_path).resolve()}.run{run.id}.stop",
    }
    if args.trace_allocations:
        env["MEMSLEUTH_TRACE_ALLOCATIONS"] = str(args.trace_allocations)
    if args.malloc_trim_test:
        env["MEMSLEUTH_MALLOC_TRIM_TEST"] = "1"
    return env


def finish(store_path: Path, run_id: int, argv: list[str]) -> None:
    """After the target exited: culprits from the probe's data, or a note on why there is none."""
    with Store(store_path) as store:
        run = store.get_run(run_id)
        events = store.load_events(run_id)
        status = [e for e in events if e[1] == "probe.status"]
        if not status:
            why = not_python(argv)
            reason = why or (
                "the probe did not start in the target (Python < 3.10, or run with -I, -S or "
                "-E so PYTHONPATH and sitecustomize were ignored)"
            )
            store.update_run(run_id, note=_join(run.note, f"probe not injected: {reason}"))
            return
        culprits = probe_culprits(store, run, store.load_series(run_id), events)
        store.set_culprits(run_id, culprits)
        pids = sorted({p.get("pid", 0) for _, _, p in status})
        found = f"{len(culprits)} culprit(s)" if culprits else "no culprit"
        store.update_run(
            run_id, note=_join(run.note, f"probe in pid {', '.join(map(str, pids))}: {found}")
        )


def _join(note: str, more: str) -> str:
    return f"{note}; {more}" if note else more


__all__ = ["RunCommand", "finish", "probe_env"]
