"""The pytest plugin through pytester: marker, options, ini twins, xdist, no cacheprovider."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytest_plugins = ["pytester"]

TESTS = """
import threading
import pytest

_SEEN = {}
_stop = threading.Event()


@pytest.mark.leak_free(cycles=300)
def test_leaks():
    _SEEN[len(_SEEN)] = object()


@pytest.mark.leak_free(cycles=300, max_bytes_per_cycle=64)
def test_clean(tmp_path):
    data = [str(i) for i in range(50)]
    (tmp_path / "x").write_text("".join(data))


def test_starts_a_thread():
    threading.Thread(target=_stop.wait, name="stray", daemon=True).start()


def test_plain():
    assert True
"""


def test_the_marker_and_leak_free_threads_fail_with_cost_culprit_and_site(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_app=TESTS)
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "--leak-free-threads", "--leak-free-grace=0.2"
    )
    result.assert_outcomes(passed=3, failed=1, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*soak of test_app.py::test_leaks: FAILED (leak) after 300 cycles*",
            "*leaks ~* bytes per call: +1 dict entry in `test_app._SEEN` per call*",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "*ERROR at teardown of test_starts_a_thread*",
            "*test_app.py::test_starts_a_thread left 1 resource(s) behind after teardown*",
            "*thread stray (target Event.wait), started at test_app.py:2? in "
            "test_starts_a_thread:*",
        ]
    )
    assert "Traceback" not in result.stdout.str()  # the failure text, not plugin internals


def test_the_ini_twin_turns_the_check_on_too(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_app=TESTS)
    pytester.makeini("[pytest]\nleak_free_threads = true\nleak_free_grace = 0.2\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-k", "thread")
    result.assert_outcomes(passed=1, errors=1)


def test_it_works_on_xdist_workers(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_app=TESTS)
    result = pytester.runpytest_subprocess(
        "-p",
        "no:cacheprovider",
        "-n",
        "2",
        "--leak-free-threads",
        "--leak-free-grace=0.2",
        "-k",
        "leaks or starts or plain",
    )
    result.assert_outcomes(passed=2, failed=1, errors=1)
    result.stdout.fnmatch_lines(["*leaks ~* bytes per call: +1 dict entry*"])
    result.stdout.fnmatch_lines(["*thread stray*started at test_app.py*"])


def test_an_fd_left_open_names_its_line_or_how_to_have_it_named(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Its opener is read from the file object's allocation trace: outside a soak tracing is
    # off, and the line had been left out without a word.
    pytester.makepyfile(
        test_files="""
KEPT = []

def test_opens():
    KEPT.append(open(__file__))
"""
    )
    monkeypatch.delenv("PYTHONTRACEMALLOC", raising=False)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--leak-free-fds")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*fd * (FileIO), opened where is not known (PYTHONTRACEMALLOC=8*"])
    monkeypatch.setenv("PYTHONTRACEMALLOC", "8")
    traced = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--leak-free-fds")
    traced.stdout.fnmatch_lines(
        ["*fd * (FileIO), opened at test_files.py:4: KEPT.append(open(__file__))"]
    )


def test_without_marker_or_option_the_plugin_is_inert(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_app=TESTS.replace("@pytest.mark.leak_free", "# "))
    pytester.makepyfile(
        test_zz_check="""
import sys
from memsleuth.soak.resources import hooks_installed

def test_nothing_heavy_was_loaded():
    assert "memsleuth.soak.harness" not in sys.modules
    assert "tracemalloc" not in sys.modules or not __import__("tracemalloc").is_tracing()
    assert not hooks_installed()
"""
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=5)


def test_options_are_in_their_group_and_the_marker_is_documented(
    pytester: pytest.Pytester,
) -> None:
    help_text = pytester.runpytest_subprocess("--help").stdout.str()
    assert "leak checks (memsleuth):" in help_text
    for flag in (
        "--leak-free-threads",
        "--leak-free-fds",
        "--leak-free-children",
        "--leak-free-grace=SECONDS",
        "--leak-free-cycles=N",
        "--leak-free-store=PATH",
    ):
        assert flag in help_text
    for ini in ("leak_free_threads", "leak_free_fds", "leak_free_grace", "leak_free_store"):
        assert ini in help_text
    markers = pytester.runpytest_subprocess("--markers").stdout.str()
    assert "@pytest.mark.leak_free(cycles=200, warmup=None, max_bytes_per_cycle=0.0" in markers


def test_a_bad_marker_argument_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_bad="""
import pytest

@pytest.mark.leak_free(cycle=10)
def test_x():
    pass
"""
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*unexpected keyword argument 'cycle'*leak_free(cycles=200*"])


def test_bad_marker_values_and_options_fail_without_a_traceback(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        test_values="""
import pytest

@pytest.mark.leak_free(cycles="abc")
def test_text():
    pass

@pytest.mark.leak_free(cycles=10, grace_s=-1)
def test_grace():
    pass
"""
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(
        [
            "*leak_free: cycles must be a whole number of at least 2, not 'abc'*",
            "*leak_free: grace_s must be a finite number of seconds from 0, not -1*",
        ]
    )
    out = result.stdout.str()
    assert "harness.py" not in out  # no traceback through the soak
    failures = out.split("short test summary info")[0]  # the summary repeats each (under CI)
    assert "During handling" not in out and failures.count("not 'abc'") == 1, out  # one line
    for option in ("--leak-free-cycles=0", "--leak-free-grace=-1"):
        bad = pytester.runpytest_subprocess("-p", "no:cacheprovider", option)
        assert bad.ret == pytest.ExitCode.USAGE_ERROR
        bad.stderr.fnmatch_lines([f"*{option.split('=')[0]}: must be at least*"])


def test_soak_refuses_arguments_it_cannot_run_with() -> None:
    from memsleuth.soak import soak

    for bad in ({"cycles": "abc"}, {"cycles": 10.5}, {"cycles": 10, "grace_s": -1}):
        with pytest.raises(ValueError, match="must be"):
            soak(lambda: None, **bad)  # type: ignore[arg-type]


def test_importing_the_plugin_imports_nothing_heavy() -> None:
    code = (
        "import sys, memsleuth.soak.plugin; print(sorted(m for m in ('numpy', 'scipy', "
        "'memsleuth.soak.harness', 'memsleuth.store') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


HELPERS = """
import logging, os, warnings
import pytest

class Config:
    mode = "a"

@pytest.mark.leak_free(cycles=200)
def test_logs_a_warning():
    logging.getLogger(__name__).warning("slow request %s", 42)

@pytest.mark.leak_free(cycles=200)
def test_touches_a_deprecated_api():
    warnings.warn("old_api() is deprecated", DeprecationWarning)

@pytest.mark.leak_free(cycles=200)
def test_patches(monkeypatch):
    monkeypatch.setattr(Config, "mode", "b")
    monkeypatch.setenv("APP_MODE", "b")
    assert Config.mode == "b" and os.environ["APP_MODE"] == "b"

@pytest.mark.leak_free(cycles=200)
def test_reads_its_logs(caplog):
    logging.getLogger(__name__).error("boom")
    assert [r.message for r in caplog.records] == ["boom"]

@pytest.mark.leak_free(cycles=200)
async def test_async_patches(monkeypatch):
    monkeypatch.setattr(Config, "mode", "c")

@pytest.fixture
def notifier():
    from unittest import mock
    return mock.Mock(**{"send.return_value": True})

@pytest.mark.leak_free(cycles=300)
def test_uses_a_mock(notifier):
    assert notifier.send("bob", "welcome") is True
    notifier.send.assert_called_once_with("bob", "welcome")

def test_patch_undone():
    assert Config.mode == "a" and "APP_MODE" not in os.environ
"""


def test_what_pytest_keeps_of_each_call_is_no_leak(pytester: pytest.Pytester) -> None:
    # The soak calls one test's function with the same fixtures many times: pytest's log
    # capture kept every record ("leaks ~927 bytes per call" for one logging.warning), its
    # warnings capture every DeprecationWarning (~355 bytes), monkeypatch every undo record
    # (~72 bytes), a fixture's Mock every call (~1.17 KiB), each read as the test's leak.
    pytester.makepyfile(test_helpers=HELPERS)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=7)
    # The deprecation is still reported, once, not once a cycle.
    result.stdout.fnmatch_lines(["*1 warning*"])
    result.stdout.fnmatch_lines(["*DeprecationWarning: old_api() is deprecated*"])


PRINTS = """
import pytest

_BUFFER = bytearray()
_TABLE = {i: str(i) for i in range(5000)}
_calls = [0]

@pytest.mark.leak_free(cycles=300)
def test_prints():
    print("handled request", 42)

@pytest.mark.leak_free(cycles=300)
def test_prints_into_capsys(capsys):
    print("a" * 100)

@pytest.mark.leak_free(cycles=300)
def test_reads_what_it_printed(capsys):
    print("x")
    assert capsys.readouterr().out == "x\\n"

@pytest.mark.leak_free(cycles=300)
def test_grows_a_buffer():
    print("cycle output")
    _BUFFER.extend(b"y" * 200)

@pytest.mark.leak_free(cycles=600)
def test_replaces_old_values():
    _calls[0] += 1
    _TABLE[_calls[0] % 5000] = "v%08d" % _calls[0]
"""


@pytest.mark.parametrize("capture", ["sys", "fd"])
def test_what_a_test_prints_is_no_leak_and_a_buffer_growing_in_place_is(
    pytester: pytest.Pytester, capture: str
) -> None:
    # Under --capture=sys and with capsys, pytest keeps what a test prints in memory, in a
    # buffer that grows in place: each cycle's output is taken out after it, and the last
    # cycle's is put back for the report.
    pytester.makepyfile(test_prints=PRINTS)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", f"--capture={capture}")
    result.assert_outcomes(passed=4, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*soak of test_prints.py::test_grows_a_buffer: FAILED (leak)*",
            "*in a buffer growing in place at test_prints.py:2? (its bytes grow, not its blocks)",
        ]
    )
    result.stdout.fnmatch_lines(["*Captured stdout call*", "cycle output"])
    if capture == "sys":
        result.stdout.fnmatch_lines(
            ["cycle output", "*the output of cycle 330 of 330, the last that printed*"]
        )
    # An inconclusive soak passes, but says so in the warnings summary.
    result.stdout.fnmatch_lines(
        [
            "*InconclusiveSoakWarning: test_prints.py::test_replaces_old_values: the soak "
            "could not decide after 600 cycles: *",
        ]
    )
    strict = pytester.runpytest_subprocess(
        "-p",
        "no:cacheprovider",
        "-W",
        "error::memsleuth.soak.InconclusiveSoakWarning",
        "-k",
        "replaces",
    )
    strict.assert_outcomes(failed=1, deselected=4)
    # One line, as the plugin's other failures: no traceback through the plugin.
    strict.stdout.fnmatch_lines(["*InconclusiveSoakWarning: test_prints.py::test_replaces_*"])
    assert "plugin.py" not in strict.stdout.str()
    assert "During handling" not in strict.stdout.str()


def test_under_tee_sys_a_passing_test_does_not_print_its_last_cycle_twice(
    pytester: pytest.Pytester,
) -> None:
    # Every cycle's output was shown as it came; the last cycle's had been put back too, with
    # the note, for a test that passed.
    pytester.makepyfile(test_prints=PRINTS)
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "--capture=tee-sys", "test_prints.py::test_prints"
    )
    result.assert_outcomes(passed=1)
    assert result.stdout.str().count("handled request 42") == 330
    assert "the last that printed" not in result.stdout.str()


FIXTURES = """
import os, pytest

@pytest.fixture
def env(monkeypatch):
    monkeypatch.setenv("APP_MODE", "test")

@pytest.fixture
def out(capsys):
    return capsys

@pytest.mark.leak_free(cycles=200)
def test_patches_beside_a_fixtures_patch(env, monkeypatch):
    assert os.environ.get("APP_MODE") == "test"
    monkeypatch.setenv("APP_EXTRA", "1")

@pytest.fixture
def project(monkeypatch, tmp_path):
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    return tmp_path

@pytest.mark.leak_free(cycles=200)
def test_moves_beside_a_fixtures_move(project, monkeypatch):
    assert os.getcwd() == str(project)
    monkeypatch.chdir(project.parent)
    monkeypatch.syspath_prepend(str(project / "plugins"))

@pytest.mark.leak_free(cycles=200)
def test_records_a_property(record_property):
    record_property("elapsed", 0.5)

@pytest.mark.leak_free(cycles=200)
@pytest.mark.usefixtures("capsys")
def test_prints_into_a_capsys_it_does_not_take():
    print("b" * 100)

@pytest.mark.leak_free(cycles=200)
def test_prints_into_a_fixtures_capsys(out):
    print("c" * 100)

_calls = [0]

@pytest.mark.leak_free(cycles=200)
def test_fails_at_its_fiftieth_call(capsys):
    _calls[0] += 1
    print(f"call {_calls[0]}")
    assert _calls[0] < 50
"""


def test_fixtures_patches_and_output_survive_the_cycles(pytester: pytest.Pytester) -> None:
    # A fixture's monkeypatch.setenv had been undone after the first cycle (the test shares
    # its monkeypatch), and output in a capsys the test took through a fixture or
    # usefixtures had read as a buffer growing in place.
    pytester.makepyfile(test_fixtures=FIXTURES)
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "--capture=sys", "--junitxml=out.xml"
    )  # fmt: skip
    # A fixture's chdir and syspath_prepend stay while the cycle's go (the cycle's had been
    # kept: "leaks ~122 bytes per call"); one cycle's record_property, not one a cycle.
    result.assert_outcomes(passed=5, failed=1)
    assert (pytester.path / "out.xml").read_text().count('name="elapsed"') == 1
    # The failing cycle's output, not the first cycle's, is what the report shows.
    result.stdout.fnmatch_lines(
        [
            "*Captured stdout call*",
            "call 50",
            "[[]memsleuth: the output of cycle 50 of 50, the last that printed; the others' "
            "was not kept[]]",
        ]
    )
    strict = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-W", "error::memsleuth.soak.InconclusiveSoakWarning",
        "-k", "patches", "--tb=long",
    )  # fmt: skip
    strict.assert_outcomes(passed=1, deselected=5)
