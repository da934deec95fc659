"""`memsleuth run`: record a Python program with the probe injected, then name the culprits."""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
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

INJECT_DIR = Path(__file__).resolve().parent.parent / "probe" / "inject"
_PYTHON = re.compile(r"^(python[\d.]*|pypy[\d.]*)$")


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


def with_interpreter(argv: list[str]) -> list[str]:
    """`memsleuth run app.py ARGS`, as memray and scalene take it: a Python script that is not
    executable is run by the `python3` on PATH (an activated virtualenv's), else by memsleuth's
    own. It had failed "cannot start app.py: No such file or directory"."""
    script = Path(argv[0]) if argv else None
    if script is None or script.suffix != ".py" or not script.is_file():
        return argv
    if os.access(script, os.X_OK) and (os.sep in argv[0] or shutil.which(argv[0])):
        return argv  # its own #! line says what runs it
    return [shutil.which("python3") or sys.executable, *argv]


def not_python(argv: list[str]) -> str | None:
    """Why the command is not a Python program, or None when it looks like one."""
    exe = shutil.which(argv[0]) or argv[0]
    name = Path(exe).name
    if _PYTHON.match(name):
        return None
    try:
        with open(exe, "rb") as f:
            head = f.read(256)
    except OSError:
        return None  # a shell builtin or a wrapper we cannot read: the probe status decides
    if head.startswith(b"#!") and b"python" in head.split(b"\n", 1)[0]:
        return None
    kind = "a native executable" if head.startswith(b"\x7fELF") else "not a Python interpreter"
    return f"the target {name} is not a Python program ({kind})"


def _join(note: str, more: str) -> str:
    return f"{note}; {more}" if note else more


__all__ = ["RunCommand", "finish", "not_python", "probe_env"]
