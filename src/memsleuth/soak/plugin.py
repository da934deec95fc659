"""The pytest plugin (entry point `pytest11`): the `leak_free` marker and `--leak-free-*` options.

Inert unless used: start-up imports nothing heavy, and every hook returns at once when no
marker or option asks for a check. The harness is imported inside the hooks that need it.
"""

from __future__ import annotations

import contextlib
import inspect
import sys
import warnings
from collections.abc import Callable, Generator, Iterator
from typing import Any

import pytest

GROUP = "memsleuth"


def leak_free(
    *,
    cycles: int = 200,
    warmup: int | None = None,
    max_bytes_per_cycle: float = 0.0,
    max_latency_ratio: float | None = None,
    threads: bool = True,
    fds: bool = True,
    tasks: bool = True,
    children: bool = True,
    grace_s: float = 1.0,
) -> dict[str, Any]:
    """run the test body `cycles` times (after `warmup` more) and fail when the Python heap grows
    per cycle beyond max_bytes_per_cycle (lower 95% bound), latency grows beyond
    max_latency_ratio, or threads, fds, tasks or child processes are left behind."""
    return {k: v for k, v in locals().items()}


def marker_help() -> str:
    """The marker's line in `pytest --markers`, generated from leak_free's signature."""
    params = ", ".join(
        f"{p.name}={p.default!r}" for p in inspect.signature(leak_free).parameters.values()
    )
    doc = " ".join((leak_free.__doc__ or "").split())
    return f"leak_free({params}): {doc}"


_OPTIONS: tuple[tuple[str, str, str, str, str | None], ...] = (
    # (flag, ini name, ini type, help, metavar)
    (
        "--leak-free-threads",
        "leak_free_threads",
        "bool",
        "fail every test that leaves threads running after its teardown (like goleak)",
        None,
    ),
    (
        "--leak-free-fds",
        "leak_free_fds",
        "bool",
        "fail every test that leaves file descriptors open after its teardown",
        None,
    ),
    (
        "--leak-free-children",
        "leak_free_children",
        "bool",
        "fail every test that leaves child processes running after its teardown",
        None,
    ),
    (
        "--leak-free-grace",
        "leak_free_grace",
        "string",
        "seconds to wait (with retries) for threads, fds, children to go away; default 1",
        "SECONDS",
    ),
    (
        "--leak-free-cycles",
        "leak_free_cycles",
        "string",
        "override the cycles of every leak_free-marked test (e.g. fewer in a quick CI job)",
        "N",
    ),
    (
        "--leak-free-store",
        "leak_free_store",
        "string",
        "save each leak_free soak as a run in this memsleuth store (see `memsleuth report`)",
        "PATH",
    ),
)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup(GROUP, "leak checks (memsleuth)")
    for flag, ini, kind, help_text, metavar in _OPTIONS:
        if kind == "bool":
            group.addoption(flag, action="store_true", default=None, dest=ini, help=help_text)
            parser.addini(ini, help_text, type="bool", default=False)
        else:
            group.addoption(
                flag, action="store", default=None, dest=ini, metavar=metavar, help=help_text
            )
            parser.addini(ini, help_text, type="string", default="")


def _setting(config: pytest.Config, name: str) -> Any:
    value = config.getoption(name, default=None)
    return config.getini(name) if value is None else value


_CHECKED = ("cycles", "warmup", "max_bytes_per_cycle", "max_latency_ratio", "grace_s")


def _number(config: pytest.Config, name: str, cast: Callable[[str], Any], low: float) -> Any:
    raw = _setting(config, name)
    if raw in (None, ""):
        return None
    flag = f"--{name.replace('_', '-')}"
    try:
        value = cast(str(raw))
    except ValueError:
        raise pytest.UsageError(f"{flag}: not a number: {raw!r}") from None
    if not low <= value < float("inf"):  # nan too
        raise pytest.UsageError(f"{flag}: must be at least {low:g}, not {raw!r}")
    return value


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", marker_help())
    manager = LeakFreeManager(
        threads=bool(_setting(config, "leak_free_threads")),
        fds=bool(_setting(config, "leak_free_fds")),
        children=bool(_setting(config, "leak_free_children")),
        grace_s=_number(config, "leak_free_grace", float, 0.0),
        cycles=_number(config, "leak_free_cycles", int, 2),
        store=_setting(config, "leak_free_store") or None,
    )
    config.pluginmanager.register(manager, "memsleuth-leak-free")


class LeakFreeManager:
    """The plugin's state: settings, and the resource baseline of the running test."""

    def __init__(
        self,
        *,
        threads: bool,
        fds: bool,
        children: bool,
        grace_s: float | None,
        cycles: int | None,
        store: str | None,
    ) -> None:
        self.threads = threads
        self.fds = fds
        self.children = children
        self.grace_s = 1.0 if grace_s is None else grace_s
        self.cycles = cycles
        self.store = store
        self.watches: dict[str, Any] = {}

    @property
    def watching(self) -> bool:
        return self.threads or self.fds or self.children

    @pytest.hookimpl(wrapper=True)
    def pytest_pyfunc_call(self, pyfuncitem: pytest.Function) -> Generator[None, Any, Any]:
        marker = pyfuncitem.get_closest_marker("leak_free")
        if marker is None:
            return (yield)
        if marker.args:
            pytest.fail(f"leak_free takes keyword arguments only: {marker_help()}", pytrace=False)
        from memsleuth.soak.limits import check_soak_args

        # Failed outside the `except`: inside, pytest showed the error, "During handling of
        # the above exception, another exception occurred", and the error again.
        problem = None
        try:
            options = leak_free(**marker.kwargs)
            if self.cycles is not None:
                options["cycles"] = self.cycles
            # cycles="abc" had failed inside the soak, with a traceback through the harness.
            check_soak_args(**{k: options[k] for k in _CHECKED})
        except TypeError as exc:
            problem = f"{exc}; {marker_help()}"
        except ValueError as exc:
            problem = f"leak_free: {exc}"
        if problem is not None:
            pytest.fail(problem, pytrace=False)
        original = pyfuncitem.obj
        pyfuncitem.obj = _soaked(original, options, pyfuncitem, self.store)
        try:
            return (yield)
        finally:
            pyfuncitem.obj = original

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> Generator[None, None, None]:
        result = yield
        if self.watching:
            from memsleuth.soak.resources import ResourceWatch

            # Baseline after setup: a module- or session-scoped fixture's thread is not
            # blamed on the first test that happens to use it.
            # Native threads are not counted here: a library's lazy pool (OpenBLAS on the
            # first numpy import) would fail whichever test imported it first.
            watch = ResourceWatch(
                threads=self.threads, fds=self.fds, children=self.children, native_threads=False
            )
            watch.start()
            self.watches[item.nodeid] = watch
        return result

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_teardown(self, item: pytest.Item) -> Generator[None, None, None]:
        watch = self.watches.pop(item.nodeid, None)
        if watch is None:
            return (yield)
        try:
            result = yield
        except BaseException:
            watch.close()
            raise
        from memsleuth.soak.resources import describe

        try:
            leftovers = watch.leftovers(self.grace_s)
        finally:
            watch.close()
        if leftovers:
            lines = "\n".join(f"  {line}" for line in describe(leftovers))
            pytest.fail(
                f"{item.nodeid} left {len(leftovers)} resource(s) behind after teardown "
                f"(waited {self.grace_s:g} s):\n{lines}",
                pytrace=False,
            )
        return result


# Distinct warnings kept from the soak's cycles, to be shown once after it (a bound: one whose
# message changes at every call would otherwise grow with the cycles).
MAX_WARNINGS = 20


def _soaked(
    func: Callable[..., Any], options: dict[str, Any], item: pytest.Function, store: str | None
) -> Callable[..., None]:
    def run(**funcargs: Any) -> None:
        from memsleuth.soak.harness import soak

        seen: dict[tuple[str, type[Warning], str, int], warnings.WarningMessage] = {}
        first: list[tuple[str, str]] = []  # what the first cycle printed, shown as a test's

        @contextlib.contextmanager
        def one_cycle(kwargs: dict[str, Any]) -> Iterator[None]:
            # Each cycle's warnings in a list of its own, under pytest's filters as they
            # stand: pytest records every DeprecationWarning, and a clean test that touched a
            # deprecated API had read "leaks ~355 bytes per call".
            with warnings.catch_warnings(record=True) as caught:
                try:
                    yield
                finally:
                    for w in caught:
                        key = (str(w.message), w.category, w.filename, w.lineno)
                        if key in seen or len(seen) < MAX_WARNINGS:
                            seen.setdefault(key, w)
                    printed = _as_fresh(item, kwargs)
                    if not first:
                        first.append(printed)

        cycle: Callable[..., Any]
        if inspect.iscoroutinefunction(func):  # the soak runs it on a loop of its own

            async def cycle(**kwargs: Any) -> Any:
                with one_cycle(kwargs):
                    return await func(**kwargs)

        else:

            def cycle(**kwargs: Any) -> Any:
                with one_cycle(kwargs):
                    return func(**kwargs)

        try:
            result = soak(cycle, kwargs=funcargs, name=item.nodeid, store=store, **options)
        finally:
            for w in seen.values():  # once each, for pytest's warnings summary
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
            if first and any(first[0]):  # back into pytest's capture, for its report
                out, err = first[0]
                sys.stdout.write(
                    f"{out}[memsleuth: the first cycle's output; the others' was not kept]\n"
                )
                sys.stderr.write(err)
        if not result.ok:
            pytest.fail(result.explain(), pytrace=False)
        if result.verdict.verdict == "inconclusive":  # a pass, but not in silence
            from memsleuth.soak import InconclusiveSoakWarning

            # At the test's own line, not this wrapper's.
            code = getattr(inspect.unwrap(func), "__code__", run.__code__)
            warnings.warn_explicit(
                f"{item.nodeid}: the soak could not decide after {result.cycles:,} cycles: "
                + "; ".join(result.notes),
                InconclusiveSoakWarning,
                code.co_filename,
                code.co_firstlineno,
            )

    run.__name__ = getattr(func, "__name__", "test")
    return run


def _as_fresh(item: pytest.Function, funcargs: dict[str, Any]) -> tuple[str, str]:
    """After each cycle, pytest's per-test helpers let go of what the call left with them, as
    a fresh test would find them: the soak reuses one test's fixtures for every cycle. Kept,
    a clean test read as leaking what pytest kept: each log record ("~927 bytes per call" for
    one `logging.warning`), each `monkeypatch.setattr`'s undo record (~72 bytes), each line
    it printed into `capsys` or `--capture=sys` (a buffer growing in place). Returns what the
    cycle printed into pytest's capture in memory (stdout, stderr), taken out of it."""
    patched = funcargs.get("monkeypatch")
    if isinstance(patched, pytest.MonkeyPatch):
        patched.undo()  # the next cycle patches again, from the state the test began with
    recorded = funcargs.get("recwarn")
    if isinstance(recorded, pytest.WarningsRecorder):
        recorded.clear()
    logs = item.config.pluginmanager.get_plugin("logging-plugin")
    for name in ("caplog_handler", "report_handler"):  # `caplog`'s, and the report's
        handler = getattr(logs, name, None)
        if handler is not None:
            getattr(handler, "clear", handler.reset)()
    for name in ("capsys", "capfd", "capsysbinary", "capfdbinary"):
        fixture = funcargs.get(name)
        if isinstance(fixture, pytest.CaptureFixture):
            fixture.readouterr()  # what the cycle printed and did not read itself
    # pytest's own capture holds the output in memory only under --capture=sys (or tee-sys);
    # the default, fd, writes it to a temporary file, kept whole as for any test.
    capture = item.config.pluginmanager.get_plugin("capturemanager")
    if capture is not None and item.config.getoption("capture") in ("sys", "tee-sys"):
        out, err = capture.read_global_capture()
        return out, err
    return "", ""
