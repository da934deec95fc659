"""The reporter registry and writing a report to a path without leaving half a file."""

from __future__ import annotations

import io
import os
import stat
import threading
from pathlib import Path
from typing import TextIO

import pytest

from memsleuth.errors import MemsleuthError, UsageError
from memsleuth.reports.base import (
    FORMATS,
    ReportOptions,
    RunReport,
    get_reporter,
    write_atomically,
    write_report,
)
from memsleuth.store import Store
from tests.report_factories import build_leak_report


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_renders_the_verdict(fmt: str) -> None:
    out = io.StringIO()
    get_reporter(fmt).render(build_leak_report(), ReportOptions(), out)
    text = out.getvalue().lower().replace("\\", "")  # Markdown escapes the name's "_"
    assert "leak" in text and "40.1" in text
    assert "processed_signatures" in text


def test_an_unknown_format_is_a_usage_error_naming_the_choices() -> None:
    with pytest.raises(UsageError) as err:
        get_reporter("pdf")
    assert "pdf" in err.value.message
    assert "terminal, json, markdown, html" in err.value.hint


class _Exploding:
    """Writes half a report, then fails: what a bug or Ctrl-C mid-render looks like."""

    def render(self, report: RunReport, options: ReportOptions, out: TextIO) -> None:
        out.write("<html><body>half")
        raise RuntimeError("boom")


def test_a_failed_render_leaves_no_file_and_keeps_the_old_report(tmp_path: Path) -> None:
    target = tmp_path / "report.html"
    with pytest.raises(RuntimeError):
        write_report(_Exploding(), build_leak_report(), None, target)
    assert list(tmp_path.iterdir()) == []

    target.write_text("the previous report")
    with pytest.raises(RuntimeError):
        write_report(_Exploding(), build_leak_report(), None, target)
    assert target.read_text() == "the previous report"
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]


def test_write_report_replaces_the_file_when_complete(tmp_path: Path) -> None:
    target = tmp_path / "report.md"
    target.write_text("old")
    assert write_report("markdown", build_leak_report(), ReportOptions(), target) == target
    assert target.read_text().startswith("# memsleuth report: server")
    assert (target.stat().st_mode & 0o777) == 0o644


def test_an_unwritable_destination_is_a_user_error_with_a_hint(tmp_path: Path) -> None:
    with pytest.raises(MemsleuthError) as err:
        write_report("json", build_leak_report(), None, tmp_path / "missing" / "r.json")
    assert "missing" in err.value.message and err.value.hint
    (tmp_path / "adir").mkdir()
    with pytest.raises(MemsleuthError), write_atomically(tmp_path / "adir") as out:
        out.write("x")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adir"]


def test_a_store_is_never_replaced_by_a_report(tmp_path: Path) -> None:
    store = tmp_path / "memsleuth.db"
    with Store(store) as db:
        db.create_run(name="x", kind="record", command=["x"], pid=None, interval_s=1.0)
    before = store.read_bytes()
    with pytest.raises(MemsleuthError) as err:
        write_report("json", build_leak_report(), None, store)
    assert "SQLite" in err.value.message and err.value.hint
    assert store.read_bytes() == before


def test_a_replaced_report_keeps_its_mode_and_a_symlink_is_written_through(
    tmp_path: Path,
) -> None:
    private = tmp_path / "private.md"
    private.write_text("old")
    private.chmod(0o600)
    write_report("markdown", build_leak_report(), None, private)
    assert (private.stat().st_mode & 0o777) == 0o600  # it had become 0644
    real, link = tmp_path / "real.md", tmp_path / "link.md"
    link.symlink_to(real.name)
    write_report("markdown", build_leak_report(), None, link)
    assert link.is_symlink() and real.read_text().startswith("# memsleuth report")


def test_a_fifo_or_a_device_is_written_to_not_replaced(tmp_path: Path) -> None:
    # Renaming over the path had turned /dev/full into a regular file, and a FIFO hung.
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    got: list[str] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_text()), daemon=True)
    writer = threading.Thread(
        target=write_report, args=("json", build_leak_report(), None, fifo), daemon=True
    )
    reader.start()
    writer.start()
    writer.join(timeout=10)
    reader.join(timeout=10)
    assert not writer.is_alive(), "writing to a FIFO hung"
    assert got and got[0].startswith("{") and stat.S_ISFIFO(fifo.stat().st_mode)
    null = tmp_path / "null"
    try:
        os.mknod(null, 0o666 | stat.S_IFCHR, os.makedev(1, 3))  # another /dev/null
    except PermissionError:
        pytest.skip("making a device node needs root")
    write_report("json", build_leak_report(), None, null)
    assert stat.S_ISCHR(null.stat().st_mode)
