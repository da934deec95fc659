"""The Store facade: runs, samples, named points, events and culprits in one SQLite file."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import shlex
import socket
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np

from memsleuth import __version__
from memsleuth.errors import StoreError
from memsleuth.model import SAMPLE_FIELDS, Culprit, Run, RunKind, Sample, Series
from memsleuth.store.db import Database
from memsleuth.store.schema import SCHEMA_VERSION

__all__ = ["DEFAULT_STORE", "SCHEMA_VERSION", "Store", "default_store_path", "run_ref"]

DEFAULT_STORE = "memsleuth.db"

_RUN_COLUMNS = (
    "id, name, kind, command, pid, host, started_at, ended_at, exit_status, version, "
    "interval_s, limit_bytes, note"
)
_RUN_FIELDS = tuple(_RUN_COLUMNS.split(", "))
# With the sample count and, only when started_at is not a number, the first sample's time.
_RUN_SELECT = (
    f"{_RUN_COLUMNS}, (SELECT count(*) FROM samples s WHERE s.run_id = runs.id), "
    "CASE WHEN typeof(started_at) NOT IN ('integer', 'real') THEN "
    "(SELECT min(t) FROM samples s WHERE s.run_id = runs.id "
    "AND typeof(s.t) IN ('integer', 'real')) END"
)
_SAMPLE_COLUMNS = ("t", *SAMPLE_FIELDS)
# Rows are read as they stand, never repaired: a value of the wrong type (text where a number
# belongs, a command that is not a JSON list) reads as missing, and a sample without a time is
# left out. One bad row had made the whole store unreadable, with a traceback.
_IS_NUMBER = "typeof({0}) IN ('integer', 'real')"


def _number(column: str) -> str:
    """SQL for a column read as a number, NULL where it holds anything else."""
    return f"CASE WHEN {_IS_NUMBER.format(column)} THEN {column} END AS {column}"


def _json(text: object, kind: type[Any]) -> Any:
    """A JSON value of the given kind, or None where the text is not one."""
    try:
        value = json.loads(text) if isinstance(text, (str, bytes)) else None
    except ValueError:
        return None
    return value if isinstance(value, kind) else None


_INSERT_SAMPLE = (
    f"INSERT INTO samples (run_id, {', '.join(_SAMPLE_COLUMNS)}) "
    f"VALUES (?, {', '.join('?' * len(_SAMPLE_COLUMNS))})"
)


def default_store_path(explicit: str | None = None) -> Path:
    """--store, else $MEMSLEUTH_STORE, else ./memsleuth.db."""
    return Path(explicit or os.environ.get("MEMSLEUTH_STORE") or DEFAULT_STORE)


def run_ref(store_path: str | os.PathLike[str], run_id: int) -> str:
    """A run as a command names it: `7`, or `--store PATH 7` when a bare command would look in
    another store ("see: memsleuth analyze 2" had failed with "no store at memsleuth.db")."""
    path = Path(store_path)
    if path.resolve() == default_store_path().resolve():
        return str(run_id)
    return f"--store {shlex.quote(str(path))} {run_id}"


class Store:
    """A memsleuth store. Use as a context manager; `readonly=True` never writes."""

    def __init__(self, path: str | os.PathLike[str], *, readonly: bool = False) -> None:
        self.db = Database(path, readonly=readonly)
        self.path = self.db.path
        # Read-only, an older store is read as it stands: a column it lacks reads as NULL.
        have = self._have = self.db.columns("samples")
        self._raw_select = ", ".join(c if c in have else f"NULL AS {c}" for c in _SAMPLE_COLUMNS)
        self._sample_select = ", ".join(
            _number(c) if c in have else f"NULL AS {c}" for c in _SAMPLE_COLUMNS
        )

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.db.close()

    def lock_wait(self, seconds: float) -> contextlib.AbstractContextManager[None]:
        """Meanwhile, a write waits at most `seconds` for another writer's lock."""
        return self.db.lock_wait(seconds)

    # runs ---------------------------------------------------------------------------------

    def create_run(
        self,
        *,
        name: str,
        kind: RunKind,
        command: Sequence[str],
        pid: int | None,
        interval_s: float,
        limit_bytes: int | None = None,
        note: str = "",
        meta: dict[str, Any] | None = None,
        started_at: float | None = None,
    ) -> Run:
        started = time.time() if started_at is None else started_at
        with self.db.transaction() as conn:
            cur = conn.execute(
                "INSERT INTO runs (name, kind, command, pid, host, started_at, version, "
                "interval_s, limit_bytes, note, meta) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    name,
                    kind,
                    json.dumps(list(command)),
                    pid,
                    socket.gethostname(),
                    started,
                    __version__,
                    interval_s,
                    limit_bytes,
                    note,
                    json.dumps(meta or {}),
                ),
            )
            run_id = int(cur.lastrowid or 0)
        return self.get_run(run_id)

    def update_run(self, run_id: int, **fields: Any) -> None:
        """Set some of: pid, ended_at, exit_status, limit_bytes, note, name."""
        allowed = {"pid", "ended_at", "exit_status", "limit_bytes", "note", "name"}
        bad = set(fields) - allowed
        if bad:
            raise ValueError(f"cannot update run fields {sorted(bad)}")
        if not fields:
            return
        sets = ", ".join(f"{k} = ?" for k in fields)
        with self.db.transaction() as conn:
            conn.execute(f"UPDATE runs SET {sets} WHERE id = ?", (*fields.values(), run_id))

    def finish_run(self, run_id: int, *, exit_status: int | None = None, note: str = "") -> None:
        fields: dict[str, Any] = {"ended_at": time.time(), "exit_status": exit_status}
        if note:
            fields["note"] = note
        self.update_run(run_id, **fields)

    def delete_run(self, run_id: int) -> None:
        """Remove a run and all it holds (a run that recorded nothing at all)."""
        with self.db.transaction() as conn:
            conn.execute("DELETE FROM runs WHERE id = ?", (run_id,))

    def run_meta(self, run_id: int) -> dict[str, Any]:
        row = self.db.execute("SELECT meta FROM runs WHERE id = ?", (run_id,)).fetchone()
        meta = _json(row[0], dict) if row else None
        return {} if meta is None else dict(meta)

    def set_run_meta(self, run_id: int, **values: Any) -> None:
        meta = self.run_meta(run_id)
        meta.update(values)
        with self.db.transaction() as conn:
            conn.execute("UPDATE runs SET meta = ? WHERE id = ?", (json.dumps(meta), run_id))

    def list_runs(self) -> list[Run]:
        rows = self.db.execute(f"SELECT {_RUN_SELECT} FROM runs ORDER BY id").fetchall()
        return [_run_from_row(r) for r in rows]

    def get_run(self, ref: int | str | None = None) -> Run:
        """A run by id, by name (the newest of that name), or the newest run when ref is None."""
        if ref is None:
            row = self.db.execute(
                f"SELECT {_RUN_SELECT} FROM runs ORDER BY id DESC LIMIT 1"
            ).fetchone()
            if row is None:
                raise StoreError(
                    f"the store {self.path} holds no runs",
                    "record one first: memsleuth record -- CMD",
                )
            return _run_from_row(row)
        key = str(ref)
        if key.isdigit():
            row = self.db.execute(
                f"SELECT {_RUN_SELECT} FROM runs WHERE id = ?", (int(key),)
            ).fetchone()
        else:
            row = self.db.execute(
                f"SELECT {_RUN_SELECT} FROM runs WHERE name = ? ORDER BY id DESC LIMIT 1",
                (key,),
            ).fetchone()
        if row is None:
            raise StoreError(f"no run {key!r} in {self.path}", "list the runs with: memsleuth runs")
        return _run_from_row(row)

    # samples ------------------------------------------------------------------------------

    def add_samples(self, run_id: int, samples: Iterable[Sample]) -> int:
        """Append samples and commit them; returns how many were written."""
        rows = [(run_id, *(getattr(s, f) for f in _SAMPLE_COLUMNS)) for s in samples]
        if rows:
            with self.db.transaction() as conn:
                conn.executemany(_INSERT_SAMPLE, rows)
        return len(rows)

    def iter_samples(self, run_id: int) -> Iterator[Sample]:
        cur = self.db.execute(
            f"SELECT {self._sample_select} FROM samples WHERE run_id = ? AND "
            + _IS_NUMBER.format("t")
            + " ORDER BY t",
            (run_id,),
        )
        for row in cur:
            yield Sample(**dict(zip(_SAMPLE_COLUMNS, row, strict=True)))

    def load_series(self, run_id: int) -> Series:
        """All samples of a run as columns; t counts seconds from the run's first sample."""
        rows = self.db.execute(
            f"SELECT {self._raw_select} FROM samples WHERE run_id = ? ORDER BY t", (run_id,)
        ).fetchall()
        try:
            arr = np.array(rows, dtype=np.float64)  # None becomes NaN
        except (TypeError, ValueError):  # a value that is no number: read the rows checked
            rows = self.db.execute(
                f"SELECT {self._sample_select} FROM samples WHERE run_id = ? AND "
                f"{_IS_NUMBER.format('t')} ORDER BY t",
                (run_id,),
            ).fetchall()
            arr = np.array(rows, dtype=np.float64)
        if len(rows) == 0:
            empty = np.empty(0, dtype=np.float64)
            return Series(empty, {f: empty for f in SAMPLE_FIELDS})
        t = arr[:, 0]
        return Series(t - t[0], {f: arr[:, i + 1] for i, f in enumerate(SAMPLE_FIELDS)})

    def has_values(self, run_id: int, field: str) -> bool:
        """Whether any sample of the run has a value in this column (without loading them)."""
        if field not in SAMPLE_FIELDS:
            raise ValueError(f"not a sample column: {field!r}")
        if field not in self._have:
            return False
        row = self.db.execute(
            f"SELECT 1 FROM samples WHERE run_id = ? AND {_IS_NUMBER.format(field)} LIMIT 1",
            (run_id,),
        ).fetchone()
        return row is not None

    def first_sample_time(self, run_id: int) -> float | None:
        row = self.db.execute(
            f"SELECT min(t) FROM samples WHERE run_id = ? AND {_IS_NUMBER.format('t')}", (run_id,)
        ).fetchone()
        return None if row is None or row[0] is None else float(row[0])

    # points, events, culprits -------------------------------------------------------------

    def add_points(self, run_id: int, series: str, points: Iterable[tuple[float, float]]) -> None:
        rows = [(run_id, series, float(t), float(v)) for t, v in points]
        if rows:
            with self.db.transaction() as conn:
                conn.executemany(
                    "INSERT INTO points (run_id, series, t, value) VALUES (?, ?, ?, ?)", rows
                )

    def load_points(
        self, run_id: int, prefix: str = ""
    ) -> dict[str, tuple[tuple[float, float], ...]]:
        """Named series whose name starts with prefix, as (unix t, value) tuples."""
        rows = self.db.execute(
            "SELECT series, t, value FROM points WHERE run_id = ? AND series >= ? AND series < ? "
            f"AND {_IS_NUMBER.format('t')} AND {_IS_NUMBER.format('value')} ORDER BY series, t",
            (run_id, prefix, prefix + "\U0010ffff"),
        ).fetchall()
        out: dict[str, list[tuple[float, float]]] = {}
        for name, t, v in rows:
            out.setdefault(name, []).append((t, v))
        return {k: tuple(v) for k, v in out.items()}

    def add_event(
        self, run_id: int, kind: str, payload: dict[str, Any], t: float | None = None
    ) -> None:
        with self.db.transaction() as conn:
            conn.execute(
                "INSERT INTO events (run_id, t, kind, payload) VALUES (?, ?, ?, ?)",
                (run_id, time.time() if t is None else t, kind, json.dumps(payload)),
            )

    def load_events(
        self, run_id: int, kind: str | None = None
    ) -> list[tuple[float, str, dict[str, Any]]]:
        if kind is None:
            cur = self.db.execute(
                "SELECT t, kind, payload FROM events WHERE run_id = ? ORDER BY t", (run_id,)
            )
        else:
            cur = self.db.execute(
                "SELECT t, kind, payload FROM events WHERE run_id = ? AND kind = ? ORDER BY t",
                (run_id, kind),
            )
        out = []
        for t, k, p in cur:
            payload = _json(p, dict)
            if payload is not None and isinstance(t, (int, float)):
                out.append((float(t), str(k), payload))
        return out

    def set_culprits(self, run_id: int, culprits: Sequence[Culprit]) -> None:
        with self.db.transaction() as conn:
            conn.execute("DELETE FROM culprits WHERE run_id = ?", (run_id,))
            conn.executemany(
                "INSERT INTO culprits (run_id, rank, payload) VALUES (?, ?, ?)",
                [
                    (run_id, i + 1, json.dumps(dataclasses.asdict(c)))
                    for i, c in enumerate(culprits)
                ],
            )

    def load_culprits(self, run_id: int) -> tuple[Culprit, ...]:
        rows = self.db.execute(
            "SELECT payload FROM culprits WHERE run_id = ? ORDER BY rank", (run_id,)
        ).fetchall()
        culprits = []
        for (payload,) in rows:
            with contextlib.suppress(KeyError, TypeError, ValueError):
                culprits.append(culprit_from_dict(_json(payload, dict)))
        return tuple(culprits)


def culprit_from_dict(d: dict[str, Any]) -> Culprit:
    return Culprit(
        name=d["name"],
        kind=d["kind"],
        growth=d["growth"],
        growth_per_hour=float(d["growth_per_hour"]),
        unit=d["unit"],
        share=float(d["share"]),
        evidence=tuple(d.get("evidence", ())),
        bytes_estimate=d.get("bytes_estimate"),
        points=tuple((float(a), float(b)) for a, b in d.get("points", ())),
        bound=d.get("bound"),
        queue=bool(d.get("queue", False)),
    )


def _run_from_row(row: Sequence[Any]) -> Run:
    """A run as stored; a field of the wrong type reads as unknown, and the note says which
    (a command that was not JSON had hidden every run of the store behind a traceback)."""
    bad: list[str] = []

    def number(i: int, kind: type[int] | type[float]) -> Any:
        value = row[i]
        if value is None or (isinstance(value, (int, float)) and not isinstance(value, bool)):
            return None if value is None else kind(value)
        bad.append(_RUN_FIELDS[i])
        return None

    command = _json(row[3], list)
    if command is None or not all(isinstance(a, str) for a in command):
        bad.append("command")
        command = []
    pid, ended, exit_status = number(4, int), number(7, float), number(8, int)
    interval, limit = number(10, float), number(11, int)
    started = number(6, float)
    if started is None:  # NOT NULL: only a bad value gets here; dated by its first sample
        first_t = row[14]
        started = float(first_t) if isinstance(first_t, (int, float)) else math.nan
    note = "" if row[12] is None else str(row[12])
    if bad:
        note = f"{note}; unreadable in the store: {', '.join(bad)}".removeprefix("; ")
    return Run(
        id=row[0],
        name=str(row[1]),
        kind=cast(RunKind, str(row[2])),
        command=tuple(command),
        pid=pid,
        host=str(row[5]),
        started_at=started,
        ended_at=ended,
        exit_status=exit_status,
        version=str(row[9]),
        interval_s=math.nan if interval is None else interval,
        limit_bytes=limit,
        note=note,
        sample_count=row[13],
    )
