"""The store: round trips, validation on open, and refusal to touch foreign or newer files."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest

from memsleuth.errors import StoreError
from memsleuth.model import Culprit, Sample
from memsleuth.store import Store
from memsleuth.store.schema import APPLICATION_ID, SCHEMA, SCHEMA_VERSION


def _run(store: Store, name: str = "app") -> int:
    return store.create_run(
        name=name, kind="record", command=["./app", "--x"], pid=42, interval_s=1.0
    ).id


def test_round_trip_samples_points_events_culprits(tmp_path: Path) -> None:
    with Store(tmp_path / "s.db") as store:
        run_id = _run(store)
        store.add_samples(
            run_id,
            [Sample(t=100.0 + i, rss_bytes=1000 + i, threads=3, pss_bytes=None) for i in range(5)],
        )
        store.add_points(run_id, "container:x", [(100.0, 1.0), (101.0, 2.0)])
        store.add_event(run_id, "probe.census", {"n": 1}, t=100.5)
        culprit = Culprit(
            "g", "container", "+1/s", 3600.0, "entries", 0.9, ("e",), None, ((0.0, 1.0),)
        )
        store.set_culprits(run_id, [culprit])
        store.finish_run(run_id, exit_status=0, note="target exited")
    with Store(tmp_path / "s.db", readonly=True) as store:
        run = store.get_run()
        assert run.id == run_id and run.command == ("./app", "--x") and run.exit_status == 0
        assert run.sample_count == 5 and run.ended_at is not None
        series = store.load_series(run_id)
        assert series.t.tolist() == [0.0, 1.0, 2.0, 3.0, 4.0]
        assert series.rss.tolist() == [1000, 1001, 1002, 1003, 1004]
        assert np.isnan(series.columns["pss_bytes"]).all()
        assert series.get("pss_bytes") is None and series.get("threads") is not None
        assert store.load_points(run_id, "container:") == {
            "container:x": ((100.0, 1.0), (101.0, 2.0))
        }
        assert store.load_events(run_id, "probe.census")[0][2] == {"n": 1}
        assert store.load_culprits(run_id) == (culprit,)


def test_get_run_by_name_and_newest(tmp_path: Path) -> None:
    with Store(tmp_path / "s.db") as store:
        a = _run(store, "a")
        b = _run(store, "b")
        a2 = _run(store, "a")
        assert store.get_run().id == a2
        assert store.get_run("a").id == a2
        assert store.get_run(str(b)).id == b
        assert store.get_run(a).id == a
        with pytest.raises(StoreError, match="no run 'zzz'"):
            store.get_run("zzz")


def test_empty_store_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no store at"):
        Store(tmp_path / "missing.db", readonly=True)
    with Store(tmp_path / "s.db") as store, pytest.raises(StoreError, match="holds no runs"):
        store.get_run()


def test_empty_file_is_refused_for_reading_and_initialised_for_recording(tmp_path: Path) -> None:
    empty = tmp_path / "empty.db"
    empty.touch()
    tableless = tmp_path / "tableless.db"
    with sqlite3.connect(tableless) as conn:  # a valid SQLite file that holds no table
        conn.execute("CREATE TABLE t (x)")
        conn.execute("DROP TABLE t")
    for path in (empty, tableless):
        before = path.read_bytes()
        with pytest.raises(StoreError, match="is empty: not a memsleuth store yet") as info:
            Store(path, readonly=True)
        assert "memsleuth record --store" in info.value.hint
        assert path.read_bytes() == before
        with Store(path) as store:  # recording into it makes it a store
            _run(store)
        with Store(path, readonly=True) as store:
            assert len(store.list_runs()) == 1


def test_foreign_files_are_refused_and_unchanged(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_bytes(b"hello, this is not a database" * 10)
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE t (x)")
    # Another application's `runs` table: memsleuth had written its own tables beside it.
    lookalike = tmp_path / "lookalike.db"
    with sqlite3.connect(lookalike) as conn:
        conn.execute("CREATE TABLE runs (x)")
    for path in (text, other, lookalike):
        before = path.read_bytes()
        with pytest.raises(StoreError) as info:
            Store(path)
        assert info.value.hint
        assert path.read_bytes() == before
        assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(path.name)) == [
            path.name
        ]


def test_newer_schema_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    Store(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    before = path.read_bytes()
    with pytest.raises(StoreError, match="schema version"):
        Store(path)
    assert path.read_bytes() == before


def _version_1(path: Path) -> None:
    """A store as memsleuth wrote it before `file_bytes` (schema version 1), with one run."""
    later = ("file_bytes", "lazyfree_bytes")  # added by versions 2 and 3
    sql = "\n".join(ln for ln in SCHEMA.splitlines() if not ln.lstrip().startswith(later))
    with sqlite3.connect(path) as conn:
        conn.executescript(sql)
        conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        conn.execute("PRAGMA user_version = 1")
        conn.execute(
            "INSERT INTO runs (id, name, kind, command, host, started_at, version, interval_s)"
            " VALUES (1, 'old', 'record', '[]', 'h', 100.0, '0.1.0', 1.0)"
        )
        conn.executemany(
            "INSERT INTO samples (run_id, t, rss_bytes, anon_bytes) VALUES (1, ?, ?, ?)",
            [(100.0 + i, 1000 + i, 500) for i in range(5)],
        )
    conn.close()


def test_an_older_store_is_read_as_it_stands_and_migrated_when_written(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    _version_1(path)
    before = path.read_bytes()
    with Store(path, readonly=True) as store:  # read: the column it lacks reads as missing
        series = store.load_series(1)
        assert list(series.rss) == [1000, 1001, 1002, 1003, 1004]
        assert series.get("file_bytes") is None and not store.has_values(1, "file_bytes")
        assert [s.file_bytes for s in store.iter_samples(1)] == [None] * 5
        assert series.get("lazyfree_bytes") is None
    assert path.read_bytes() == before
    with Store(path) as store:  # written: brought up to this version, nothing lost
        store.add_samples(1, [Sample(t=105.0, rss_bytes=1005, file_bytes=64, lazyfree_bytes=8)])
        series = store.load_series(1)
        assert list(series.rss) == [1000, 1001, 1002, 1003, 1004, 1005]
        assert list(series.columns["anon_bytes"][:5]) == [500] * 5
        assert series.columns["file_bytes"][-1] == 64
        assert series.columns["lazyfree_bytes"][-1] == 8
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    conn.close()
    Store(path).close()  # opened again: already at this version, nothing to do


def test_corrupt_file_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with Store(path) as store:
        store.add_samples(_run(store), [Sample(t=float(i), rss_bytes=i) for i in range(2000)])
    data = bytearray(path.read_bytes())
    data[4096:12288] = b"\xff" * 8192  # clobber pages after the header
    path.write_bytes(bytes(data))
    before = path.read_bytes()
    with pytest.raises(StoreError, match="corrupt"):
        Store(path)
    assert path.read_bytes() == before
    # ... and nothing beside it: the refused read had left an empty -wal and a -shm.
    assert [p.name for p in tmp_path.iterdir()] == ["s.db"]


def test_a_truncated_store_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with Store(path) as store:
        store.add_samples(_run(store), [Sample(t=float(i), rss_bytes=i) for i in range(2000)])
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    for readonly in (True, False):
        with pytest.raises(StoreError, match="corrupt"):
            Store(path, readonly=readonly)
        assert [p.name for p in tmp_path.iterdir()] == ["s.db"]
        assert path.read_bytes() == data[: len(data) // 2]


def test_unwritable_place_even_as_root() -> None:
    with pytest.raises(StoreError) as info:
        Store("/proc/memsleuth-test.db")
    assert "writable" in info.value.hint


def test_read_only_directory(tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        if Path(ro / "probe").exists() or _writable(ro):
            pytest.skip("running as a user that ignores directory permissions (root)")
        with pytest.raises(StoreError) as info:
            Store(ro / "s.db")
        assert "writable" in info.value.hint
    finally:
        ro.chmod(0o700)


def test_a_store_in_a_read_only_directory_is_read_not_called_corrupt(tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    with Store(ro / "s.db") as store:  # WAL mode: readers need a -shm file next to it
        _run(store)
    before = (ro / "s.db").read_bytes()
    ro.chmod(0o500)
    try:
        if _writable(ro):
            pytest.skip("running as a user that ignores directory permissions (root)")
        with Store(ro / "s.db", readonly=True) as store:
            assert [r.name for r in store.list_runs()] == ["app"]
        with pytest.raises(StoreError) as info:
            Store(ro / "s.db")
        assert "corrupt" not in info.value.message and "writable" in info.value.hint
    finally:
        ro.chmod(0o700)
    assert (ro / "s.db").read_bytes() == before


@pytest.mark.parametrize("name", ["a?b.db", "a#b.db", "a%20b.db"])
def test_a_store_path_with_uri_characters_is_read_as_is(tmp_path: Path, name: str) -> None:
    with Store(tmp_path / name) as store:
        _run(store)
    with Store(tmp_path / name, readonly=True) as store:
        assert [r.name for r in store.list_runs()] == ["app"]
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(("-wal", "-shm"))) == [
        name
    ]  # reading created no file named after the part before ? or #


def _writable(d: Path) -> bool:
    try:
        (d / ".w").touch()
    except OSError:
        return False
    (d / ".w").unlink()
    return True


def test_has_values_says_whether_a_column_was_ever_filled(tmp_path: Path) -> None:
    with Store(tmp_path / "m.db") as store:
        run = store.create_run(name="x", kind="record", command=["x"], pid=1, interval_s=1.0)
        store.add_samples(run.id, [Sample(t=1.0, rss_bytes=10), Sample(t=2.0, rss_bytes=11)])
        assert not store.has_values(run.id, "work") and store.has_values(run.id, "rss_bytes")
        store.add_samples(run.id, [Sample(t=3.0, rss_bytes=12, work=5.0)])
        assert store.has_values(run.id, "work")
        with pytest.raises(ValueError):
            store.has_values(run.id, "work; DROP TABLE samples")


def _spoil(db: Path, *statements: str) -> None:
    """Edit the store by hand, as a user's script or a bad copy might."""
    conn = sqlite3.connect(db)
    with conn:
        for sql in statements:
            conn.execute(sql)
    conn.close()


def test_a_malformed_run_is_listed_with_its_bad_fields_unknown_beside_the_others(
    tmp_path: Path,
) -> None:
    # One run whose command was not JSON had made `runs`, `analyze`, `report` and `export`
    # of the whole store fail with a JSONDecodeError traceback.
    db = tmp_path / "s.db"
    with Store(db) as store:
        good, bad, dateless = _run(store, "good"), _run(store, "bad"), _run(store, "dateless")
        store.add_samples(bad, [Sample(t=500.0, rss_bytes=1), Sample(t=501.0, rss_bytes=2)])
        store.finish_run(bad, exit_status=0, note="target exited")
    _spoil(
        db,
        f"UPDATE runs SET command = '{{not json', started_at = 'x', limit_bytes = 'y', "
        f"meta = '[1' WHERE id = {bad}",
        f"UPDATE runs SET started_at = 'x', interval_s = 'z', command = '[1, 2]' "
        f"WHERE id = {dateless}",
    )
    before = db.read_bytes()
    with Store(db, readonly=True) as store:
        runs = {r.id: r for r in store.list_runs()}
        assert runs[good].command == ("./app", "--x") and runs[good].note == ""
        assert runs[bad].command == () and runs[bad].limit_bytes is None
        assert runs[bad].started_at == 500.0  # dated by its first sample
        assert (
            runs[bad].note
            == "target exited; unreadable in the store: command, limit_bytes, started_at"
        )
        assert store.run_meta(bad) == {}
        assert np.isnan(runs[dateless].started_at) and np.isnan(runs[dateless].interval_s)
        assert store.get_run("bad").exit_status == 0
    assert db.read_bytes() == before  # read as it stands, never repaired


def test_values_of_the_wrong_type_read_as_missing(tmp_path: Path) -> None:
    # rss_bytes = 'abc' in some rows had made `analyze` and `report` fail with "could not
    # convert string to float"; a payload that is not JSON had failed the whole run.
    db = tmp_path / "s.db"
    with Store(db) as store:
        run_id = _run(store)
        store.add_samples(
            run_id, [Sample(t=100.0 + i, rss_bytes=1000 + i, threads=3) for i in range(6)]
        )
        store.add_points(run_id, "container:x", [(100.0, 1.0), (101.0, 2.0), (102.0, 3.0)])
        store.add_event(run_id, "probe.census", {"n": 1}, t=100.5)
        store.add_event(run_id, "probe.census", {"n": 2}, t=101.5)
        culprit = Culprit("g", "container", "+1/s", 3600.0, "entries", 0.9, ("e",), None, ())
        store.set_culprits(run_id, [culprit, culprit])
    _spoil(
        db,
        "UPDATE samples SET rss_bytes = 'abc' WHERE t = 101.0",
        "UPDATE samples SET threads = x'00' WHERE t = 102.0",
        "UPDATE samples SET t = 'late' WHERE t = 105.0",
        "UPDATE points SET value = 'v' WHERE t = 101.0",
        "UPDATE events SET payload = '{oops' WHERE t = 101.5",
        "UPDATE culprits SET payload = '{\"name\": 1}' WHERE rank = 2",
    )
    with Store(db, readonly=True) as store:
        series = store.load_series(run_id)
        assert series.t.tolist() == [0.0, 1.0, 2.0, 3.0, 4.0]  # the sample without a time is out
        assert np.isnan(series.rss[1]) and series.rss[0] == 1000 and series.rss[2] == 1002
        assert np.isnan(series.columns["threads"][2]) and series.columns["threads"][3] == 3
        samples = list(store.iter_samples(run_id))
        assert len(samples) == 5 and samples[1].rss_bytes is None
        assert store.load_points(run_id) == {"container:x": ((100.0, 1.0), (102.0, 3.0))}
        assert [e[2] for e in store.load_events(run_id)] == [{"n": 1}]
        assert store.load_culprits(run_id) == (culprit,)
