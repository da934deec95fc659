"""The in-process probe for Python: `memsleuth.probe.start()` names what grows in this process.

`memsleuth run` injects it into the target; call `start()` yourself for processes started by
other means (gunicorn workers, say). It writes to the same store as `memsleuth record`.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import threading
import time

from memsleuth.probe.agent import Probe, ProbeOptions

__all__ = ["Probe", "ProbeOptions", "current", "start", "start_from_env", "stop"]

_lock = threading.Lock()
_probe: Probe | None = None
_hooks_registered = False


def current() -> Probe | None:
    """The running probe of this process, if any."""
    return _probe


def start(
    store: str | os.PathLike[str] | None = None,
    run_id: int | None = None,
    *,
    options: ProbeOptions | None = None,
    name: str | None = None,
) -> Probe:
    """Start probing this process (idempotent). Without `run_id` (and no $MEMSLEUTH_RUN_ID) a
    new run of kind "run" is created in the store (`store`, $MEMSLEUTH_STORE or ./memsleuth.db).
    """
    global _probe
    with _lock:
        if _probe is not None:
            return _probe
        env = os.environ
        path = os.path.abspath(os.fspath(store or env.get("MEMSLEUTH_STORE") or "memsleuth.db"))
        if run_id is None and env.get("MEMSLEUTH_RUN_ID", "").isdigit():
            run_id = int(env["MEMSLEUTH_RUN_ID"])
        own = run_id is None
        if run_id is None:
            run_id = _create_run(path, name)
        probe = Probe(path, run_id, options or ProbeOptions.from_env(env), sample_self=own)
        _register_process_hooks()
        probe.start()
        _probe = probe
        return probe


def start_from_env(t0: float | None = None) -> Probe | None:
    """The injected start: only when `memsleuth run` set $MEMSLEUTH_STORE and $MEMSLEUTH_RUN_ID.
    `t0`: time.perf_counter() when the injection began; the start-up is charged to the budget."""
    env = os.environ
    if not env.get("MEMSLEUTH_STORE") or not env.get("MEMSLEUTH_RUN_ID", "").isdigit():
        return None
    probe = start()
    if t0 is not None:
        probe.startup_s = time.perf_counter() - t0
    return probe


def stop(timeout_s: float | None = None, *, at_exit: bool = False) -> None:
    """Stop the probe: last readings, flush, join the thread (waits at most timeout_s).
    `at_exit`: the interpreter is shutting down (see `Probe.stop`)."""
    global _probe
    with _lock:
        probe, _probe = _probe, None
    if probe is not None:
        probe.stop(timeout_s, at_exit=at_exit)


def _create_run(path: str, name: str | None) -> int:
    # Imported here: the store pulls in numpy, which the injected probe never needs.
    import sys

    from memsleuth.store import Store

    with Store(path) as store:
        run = store.create_run(
            name=name or os.path.basename(sys.argv[0] or "python"),
            kind="run",
            command=list(sys.argv),
            pid=os.getpid(),
            interval_s=ProbeOptions().interval_s,
            note="probe started from code",
        )
    return run.id


def _at_exit() -> None:
    with contextlib.suppress(BaseException):
        stop(at_exit=True)


def _before_fork() -> None:
    probe = _probe
    if probe is not None:
        with contextlib.suppress(BaseException):
            probe.before_fork()


def _after_fork_parent() -> None:
    probe = _probe
    if probe is not None:
        with contextlib.suppress(BaseException):
            probe.after_fork_parent()


def _after_fork_child() -> None:
    global _lock
    _lock = threading.Lock()
    probe = _probe
    if probe is not None:
        with contextlib.suppress(BaseException):
            probe.after_fork_child()


def _register_process_hooks() -> None:
    global _hooks_registered
    if _hooks_registered:
        return
    _hooks_registered = True
    atexit.register(_at_exit)
    os.register_at_fork(
        before=_before_fork, after_in_parent=_after_fork_parent, after_in_child=_after_fork_child
    )
