"""The one SQLite connection wrapper: pragmas, validation on open, sqlite3 errors as StoreError."""

from __future__ import annotations

import contextlib
import os
import shlex
import sqlite3
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from memsleuth.errors import StoreError, StoreWriteError
from memsleuth.store.schema import APPLICATION_ID, MIGRATIONS, SCHEMA, SCHEMA_VERSION

_SQLITE_MAGIC = b"SQLite format 3\x00"
# Stores up to this size are integrity-checked on open (~20 ms); bigger ones would make every
# `runs` slow, and their corruption still surfaces as a StoreError when a query hits it.
QUICK_CHECK_MAX_BYTES = 64 << 20


def _cannot_write(text: str) -> bool:
    return "readonly" in text or "read-only" in text or "unable to open" in text


# SQLite's primary result codes (sqlite3 names them from Python 3.11 only).
_BUSY, _LOCKED, _IOERR, _FULL = 5, 6, 10, 13
# What a write that may succeed later failed on, and what frees it: the recorder keeps its
# samples through these and tries again.
_PASSING = {
    _FULL: ("its disk is full", "free some space on its disk"),
    _BUSY: (
        "another process holds its write lock",
        "end the process that holds it (an open sqlite3 shell, a backup)",
    ),
    _LOCKED: (
        "another process holds its write lock",
        "end the process that holds it (an open sqlite3 shell, a backup)",
    ),
    _IOERR: ("its disk failed a write", "check its disk (a quota, a failing device)"),
}
_PASSING_TEXT = {
    "database or disk is full": _FULL,
    "database is locked": _BUSY,
    "database table is locked": _LOCKED,
    "disk I/O error": _IOERR,
}
# How long a statement waits for another writer's lock, unless told otherwise (lock_wait).
BUSY_TIMEOUT_S = 10.0


def _disk_full(path: Path) -> bool:
    """Whether the disk that holds `path` has no room left for a page of SQLite's."""
    try:
        st = os.statvfs(path.parent)
    except OSError:
        return False
    free = st.f_bfree if os.geteuid() == 0 else st.f_bavail
    return free * st.f_frsize < 64 << 10


def _passing(exc: sqlite3.Error, path: Path) -> tuple[str, str] | None:
    """(what failed, what frees it) for an error a later write may not meet."""
    code = getattr(exc, "sqlite_errorcode", None)  # Python 3.11+
    if code is None:
        code = next((c for text, c in _PASSING_TEXT.items() if text in str(exc)), None)
    if code is not None and code & 0xFF == _IOERR and _disk_full(path):
        code = _FULL  # a -wal or -shm that could not grow: SQLite says "disk I/O error"
    return None if code is None else _PASSING.get(code & 0xFF)


def _hint_for(path: Path) -> str:
    return f"pass another file with --store, or move {path} aside"


@contextlib.contextmanager
def _no_side_files_left(path: Path) -> Iterator[None]:
    """A refused file is left as it was found: SQLite's reader had created an empty -wal and
    a -shm beside a corrupt store it then refused."""
    sides = [path.with_name(path.name + suffix) for suffix in ("-wal", "-shm")]
    new = [side for side in sides if not side.exists()]
    try:
        yield
    except StoreError:
        for side in new:
            with contextlib.suppress(OSError):
                if side.stat().st_size == 0 or side.name.endswith("-shm"):
                    side.unlink()  # an empty log, or the index of one: nothing of theirs
        raise


def _check_file(path: Path) -> None:
    """Refuse a file that is not a memsleuth store, without writing a byte to it."""
    try:
        with path.open("rb") as f:
            head = f.read(100)
    except IsADirectoryError:
        raise StoreError(f"{path} is a directory, not a store", _hint_for(path)) from None
    except PermissionError:
        raise StoreError(
            f"cannot read {path}: permission denied", "check the file's permissions"
        ) from None
    if not head:
        return  # an empty file: SQLite treats it as a new database
    if len(head) < 100 or not head.startswith(_SQLITE_MAGIC):
        raise StoreError(f"{path} is not a memsleuth store (not an SQLite file)", _hint_for(path))
    app_id = int.from_bytes(head[68:72], "big")
    if app_id not in (0, APPLICATION_ID):
        raise StoreError(
            f"{path} is an SQLite file of another application (id {app_id:#x})", _hint_for(path)
        )


class Database:
    """Owns one connection. Opening validates the file first, read-only, so a bad file is
    never changed; `readonly=True` never creates or writes anything."""

    def __init__(self, path: str | os.PathLike[str], *, readonly: bool = False) -> None:
        self.path = Path(path)
        self.readonly = readonly
        self._ro_query = "mode=ro"
        if readonly and not self.path.exists():
            raise StoreError(
                f"no store at {self.path}",
                "record a run first (memsleuth record -- CMD), or pass --store PATH",
            )
        if self.path.exists():
            _check_file(self.path)
            with _no_side_files_left(self.path):
                self._validate_existing()
            if readonly and self.path.stat().st_size == 0:
                # A fresh store gets its header before its first run, so a 0-byte file was
                # never recorded into; reading it would only say "no such table: runs".
                raise self._empty_error()
        elif not self.path.parent.exists():
            raise StoreError(
                f"cannot create {self.path}: directory {self.path.parent} does not exist",
                "create the directory or pass another --store path",
            )
        self.conn = self._connect(readonly)
        if not readonly:
            self._initialise()

    def _connect(self, readonly: bool) -> sqlite3.Connection:
        try:
            if readonly:
                uri = self._ro_uri()
                conn = sqlite3.connect(
                    uri, uri=True, timeout=BUSY_TIMEOUT_S, check_same_thread=False
                )
            else:
                conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, check_same_thread=False)
            conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
            conn.execute("PRAGMA foreign_keys = ON")
        except sqlite3.Error as exc:
            raise self._wrap(exc, "open") from None
        return conn

    def _validate_existing(self) -> None:
        """Read the version with a read-only connection; refuse foreign, corrupt or newer files."""
        if self.path.stat().st_size == 0:
            return
        try:
            try:
                version, app, tables, check = self._inspect()
            except sqlite3.OperationalError as exc:
                if not (_cannot_write(str(exc)) or _disk_full(self.path)):
                    raise
                # A WAL store in a place this user cannot write (a read-only directory or
                # mount, a full disk): SQLite cannot create the -shm file it reads through,
                # so read the file as it stands. Nothing can write there, so nothing changes
                # under us. (On a full disk this had been "corrupt (disk I/O error)".)
                self._refuse_unread_log()
                self._ro_query = "mode=ro&immutable=1"
                version, app, tables, check = self._inspect()
        except sqlite3.DatabaseError as exc:
            raise StoreError(
                f"{self.path} is corrupt or not a memsleuth store ({exc})", _hint_for(self.path)
            ) from None
        if check != "ok":
            raise StoreError(
                f"{self.path} is corrupt ({check.splitlines()[-1]})", _hint_for(self.path)
            )
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{self.path} has schema version {version}; this memsleuth reads up to "
                f"{SCHEMA_VERSION}",
                "upgrade memsleuth (pip install -U memsleuth) to read this store",
            )
        # Tables, but not memsleuth's mark: another application's database, whatever its
        # tables are called (one with a `runs` table had been written into, then refused).
        if tables and app != APPLICATION_ID:
            raise StoreError(
                f"{self.path} is an SQLite database of another application", _hint_for(self.path)
            )
        if not tables and self.readonly:
            raise self._empty_error()

    def _refuse_unread_log(self) -> None:
        """Read as it stands (immutable), a store ignores its -wal file: the runs still in it
        had been missing without a word, and a store all in its log had read "empty"."""
        wal = self.path.with_name(self.path.name + "-wal")
        try:
            logged = wal.stat().st_size > 0
        except OSError:
            return
        if logged:
            raise StoreError(
                f"the newest data of {self.path} is in its write-ahead log ({wal.name}), "
                "which cannot be read without its -shm file, and none can be made here (a "
                "read-only place, or a full disk)",
                f"copy {self.path.name} with its {wal.name} (and -shm, if there is one) to a "
                "writable directory and read it there, or run memsleuth where it can write",
            )

    def _empty_error(self) -> StoreError:
        """An empty file (or SQLite database without tables): nothing recorded, not corrupt."""
        return StoreError(
            f"{self.path} is empty: not a memsleuth store yet (nothing was recorded into it)",
            f"record a run into it first (memsleuth record --store {shlex.quote(str(self.path))} "
            "-- CMD), "
            "or pass another --store",
        )

    def _ro_uri(self) -> str:
        # Quoted: a raw ? # or % in the path would cut the URI, drop mode=ro, open another file.
        return f"file:{urllib.parse.quote(str(self.path.resolve()))}?{self._ro_query}"

    def _inspect(self) -> tuple[int, int, set[str], str]:
        """The schema version, the application id, the table names and a quick check, read
        without writing."""
        uri = self._ro_uri()
        conn = sqlite3.connect(uri, uri=True, timeout=10.0)
        try:
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
            app = int(conn.execute("PRAGMA application_id").fetchone()[0])
            tables = {
                r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            }
            check = "ok"
            if self.path.stat().st_size <= QUICK_CHECK_MAX_BYTES:
                check = str(conn.execute("PRAGMA quick_check(1)").fetchone()[0])
        finally:
            conn.close()
        return version, app, tables, check

    def _initialise(self) -> None:
        try:
            version = self.conn.execute("PRAGMA user_version").fetchone()[0]
            self.conn.execute("PRAGMA journal_mode = WAL")
            self.conn.execute("PRAGMA synchronous = NORMAL")
            if version == 0:
                with self.conn:
                    self.conn.executescript(SCHEMA)
                    self.conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
                    self.conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            elif version < SCHEMA_VERSION:
                self._migrate()
        except sqlite3.Error as exc:
            raise self._wrap(exc, "initialise") from None

    def _migrate(self) -> None:
        """Bring an older store up to SCHEMA_VERSION, in one transaction that holds the write
        lock first: a recorder and its probe opening the same old store migrate it once."""
        level = self.conn.isolation_level
        self.conn.isolation_level = None  # our own BEGIN and COMMIT
        try:
            self.conn.execute("BEGIN IMMEDIATE")
            version = self.conn.execute("PRAGMA user_version").fetchone()[0]
            for v in range(version, SCHEMA_VERSION):
                for statement in filter(str.strip, MIGRATIONS[v].split(";")):
                    self.conn.execute(statement)
            self.conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            self.conn.execute("COMMIT")
        except sqlite3.Error:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            raise
        finally:
            self.conn.isolation_level = level

    def columns(self, table: str) -> set[str]:
        """The columns a table has in this file (a read-only store may be of an older version)."""
        return {str(r[1]) for r in self.execute(f"PRAGMA table_info({table})")}

    def _wrap(self, exc: sqlite3.Error, doing: str) -> StoreError:
        text = str(exc)
        passing = _passing(exc, self.path)
        if passing is not None:
            what, remedy = passing
            return StoreWriteError(
                f"cannot {doing} the store {self.path}: {what}",
                f"{remedy}, or pass --store PATH in another place",
                remedy=remedy,
            )
        if _cannot_write(text):
            return StoreError(
                f"cannot {doing} {self.path}: {text}",
                "the store's file or directory is not writable: pass --store PATH "
                "or set MEMSLEUTH_STORE to a writable place",
            )
        if isinstance(exc, sqlite3.DatabaseError) and "malformed" in text:
            return StoreError(f"{self.path} is corrupt: {text}", _hint_for(self.path))
        return StoreError(f"cannot {doing} the store {self.path}: {text}", _hint_for(self.path))

    def execute(self, sql: str, params: Any = ()) -> sqlite3.Cursor:
        try:
            return self.conn.execute(sql, params)
        except sqlite3.Error as exc:
            raise self._wrap(exc, "query") from None

    def executemany(self, sql: str, rows: Any) -> sqlite3.Cursor:
        try:
            return self.conn.executemany(sql, rows)
        except sqlite3.Error as exc:
            raise self._wrap(exc, "write to") from None

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """Commit on success, roll back on error; sqlite3 errors become StoreError."""
        try:
            with self.conn:
                yield self.conn
        except sqlite3.Error as exc:
            raise self._wrap(exc, "write to") from None

    @contextlib.contextmanager
    def lock_wait(self, seconds: float) -> Iterator[None]:
        """Meanwhile, a statement waits at most `seconds` for another writer's lock (a
        recorder waiting the usual 10 s would take no samples meanwhile)."""
        try:
            before = int(self.conn.execute("PRAGMA busy_timeout").fetchone()[0])
            self.conn.execute(f"PRAGMA busy_timeout = {int(seconds * 1000)}")
        except sqlite3.Error:
            before = int(BUSY_TIMEOUT_S * 1000)
        try:
            yield
        finally:
            with contextlib.suppress(sqlite3.Error):
                self.conn.execute(f"PRAGMA busy_timeout = {before}")

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self.conn.close()
