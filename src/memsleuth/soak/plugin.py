"""The pytest plugin (entry point `pytest11`): the `leak_free` marker and `--leak-free-*` options.

Inert unless used: start-up imports nothing heavy, and every hook returns at once when no
marker or option asks for a check. The harness is imported inside the hooks that need it.
"""

from __future__ import annotations

import contextlib
import inspect
import os
import sys
import warnings
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
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
        fresh = _Fresh(item)

        @contextlib.contextmanager
        def one_cycle() -> Iterator[None]:
            # Each cycle's warnings in a list of its own, under pytest's filters as they
            # stand: pytest records every DeprecationWarning, and a clean test that touched a
            # deprecated API had read "leaks ~355 bytes per call".
            fresh.begin()
            with warnings.catch_warnings(record=True) as caught:
                try:
                    yield
                finally:
                    for w in caught:
                        key = (str(w.message), w.category, w.filename, w.lineno)
                        if key in seen or len(seen) < MAX_WARNINGS:
                            seen.setdefault(key, w)
                    fresh.end()

        cycle: Callable[..., Any]
        if inspect.iscoroutinefunction(func):  # the soak runs it on a loop of its own

            async def cycle(**kwargs: Any) -> Any:
                with one_cycle():
                    return await func(**kwargs)

        else:

            def cycle(**kwargs: Any) -> Any:
                with one_cycle():
                    return func(**kwargs)

        failed = True
        try:
            result = soak(cycle, kwargs=funcargs, name=item.nodeid, store=store, **options)
            failed = not result.ok
        finally:
            for w in seen.values():  # once each, for pytest's warnings summary
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
            # Under tee-sys every cycle's output was shown as it came: put back again, the
            # last cycle's showed twice, with the note, for a test that passed.
            if failed or not fresh.teed:
                fresh.put_back()
        if not result.ok:
            pytest.fail(result.explain(), pytrace=False)
        if result.verdict.verdict == "inconclusive":  # a pass, but not in silence
            from memsleuth.soak import InconclusiveSoakWarning

            # At the test's own line, not this wrapper's.
            code = getattr(inspect.unwrap(func), "__code__", run.__code__)
            raised = None
            try:
                warnings.warn_explicit(
                    f"{item.nodeid}: the soak could not decide after {result.cycles:,} "
                    "cycles: " + "; ".join(result.notes),
                    InconclusiveSoakWarning,
                    code.co_filename,
                    code.co_firstlineno,
                )
            except InconclusiveSoakWarning as error:  # -W error::...: a failure, in one line
                raised = str(error)
            if raised is not None:  # outside the except: no "During handling of …" chain
                pytest.fail(f"InconclusiveSoakWarning: {raised}", pytrace=False)

    run.__name__ = getattr(func, "__name__", "test")
    return run


class _Fresh:
    """After each cycle, pytest's per-test helpers let go of what the call left with them, as
    a fresh test would find them: the soak reuses one test's fixtures for every cycle. Kept,
    a clean test read as leaking what pytest kept: each log record ("~927 bytes per call" for
    one `logging.warning`), each `monkeypatch.setattr`'s undo record (~72 bytes), each line
    it printed into `capsys` or `--capture=sys` (a buffer growing in place), each call a
    fixture's `Mock` recorded.

    Every fixture the test has is looked at (`item.funcargs`: those its fixtures requested and
    `usefixtures` too, not only its own arguments). What the last cycle that printed printed
    is kept, and put back after the soak for pytest's report: a failing cycle's output is
    what its reader needs."""

    def __init__(self, item: pytest.Function) -> None:
        values = list(item.funcargs.values())
        self.patch = next((v for v in values if isinstance(v, pytest.MonkeyPatch)), None)
        self.recorders = [v for v in values if isinstance(v, pytest.WarningsRecorder)]
        self.captures = [v for v in values if isinstance(v, pytest.CaptureFixture)]
        # A fixture's Mock records every call: kept, a clean test read as leaking "~1.17 KiB
        # per call" into `mock_calls` (and `assert_called_once` would fail its second cycle).
        mock = sys.modules.get("unittest.mock")
        self.mocks = [v for v in values if mock is not None and isinstance(v, mock.NonCallableMock)]
        logs = item.config.pluginmanager.get_plugin("logging-plugin")
        # `caplog`'s handler, and the report's.
        self.handlers = [getattr(logs, n, None) for n in ("caplog_handler", "report_handler")]
        # pytest's own capture holds the output in memory only under --capture=sys (or
        # tee-sys); the default, fd, writes it to a temporary file, kept whole as for any test.
        capture = item.config.pluginmanager.get_plugin("capturemanager")
        in_memory = item.config.getoption("capture") in ("sys", "tee-sys")
        self.teed = item.config.getoption("capture") == "tee-sys"
        self.capture = capture if in_memory else None
        self.mark: _Mark | None = None
        self.item = item
        self.properties = 0  # `record_property`'s, as the first cycle left them
        self.cycles = 0
        self.kept: tuple[int, str, str] | None = None  # (cycle, stdout, stderr)

    def begin(self) -> None:
        self.cycles += 1
        if self.patch is not None:
            self.mark = _patch_mark(self.patch)

    def end(self) -> None:
        if self.patch is not None:
            _undo_since(self.patch, self.mark)
        # One cycle's properties for the report, not one set a cycle (`record_property` had
        # read "leaks ~64 bytes per call", and the JUnit XML held 220 copies).
        if self.cycles == 1:
            self.properties = len(self.item.user_properties)
        del self.item.user_properties[self.properties :]
        for recorder in self.recorders:
            recorder.clear()
        for m in self.mocks:
            m.reset_mock()  # its calls; what the fixture configured (return values) stays
        for handler in self.handlers:
            if handler is not None:
                getattr(handler, "clear", handler.reset)()
        out, err = [], []
        for fixture in self.captures:  # what the cycle printed and did not read itself
            o, e = fixture.readouterr()
            out.append(_text(o))
            err.append(_text(e))
        if self.capture is not None:
            o, e = self.capture.read_global_capture()
            out.append(o)
            err.append(e)
        if any(out) or any(err):
            self.kept = (self.cycles, "".join(out), "".join(err))

    def put_back(self) -> None:
        """The kept output, into whatever captures it now (a fixture's or pytest's)."""
        if self.kept is None:
            return
        n, out, err = self.kept
        sys.stdout.write(
            f"{out}[memsleuth: the output of cycle {n:,} of {self.cycles:,}, the last that "
            "printed; the others' was not kept]\n"
        )
        sys.stderr.write(err)


def _text(data: str | bytes) -> str:
    return data.decode(errors="replace") if isinstance(data, bytes) else data


@dataclass(frozen=True, slots=True)
class _Mark:
    """Where a cycle's patches start, in a `monkeypatch` a fixture may have used before."""

    attrs: int
    items: int
    had_cwd: bool
    had_path: bool
    cwd: str
    path: tuple[str, ...]


def _patch_mark(patch: pytest.MonkeyPatch) -> _Mark | None:
    """Where a cycle's patches start: a fixture's, made before the soak, are kept (a fixture
    setting an environment variable through the same `monkeypatch` had lost it after the
    first cycle). None where pytest's undo records are not where they were."""
    try:
        return _Mark(
            len(patch._setattr),
            len(patch._setitem),
            patch._cwd is not None,
            patch._savesyspath is not None,
            os.getcwd(),
            tuple(sys.path),
        )
    except (AttributeError, OSError):
        return None


def _undo_since(patch: pytest.MonkeyPatch, mark: _Mark | None) -> None:
    """Undo what was patched since `mark`, the next cycle patching again. The working
    directory and `sys.path` go back to where the cycle found them when a fixture had already
    changed them through the same `monkeypatch` (its undo keeps only the first state)."""
    if mark is None:
        patch.undo()
        return
    cycle = pytest.MonkeyPatch()
    cycle._setattr, patch._setattr = patch._setattr[mark.attrs :], patch._setattr[: mark.attrs]
    cycle._setitem, patch._setitem = patch._setitem[mark.items :], patch._setitem[: mark.items]
    if not mark.had_cwd:
        cycle._cwd, patch._cwd = patch._cwd, None
    elif os.getcwd() != mark.cwd:
        os.chdir(mark.cwd)
    if not mark.had_path:
        cycle._savesyspath, patch._savesyspath = patch._savesyspath, None
    elif tuple(sys.path) != mark.path:
        sys.path[:] = mark.path
    cycle.undo()
