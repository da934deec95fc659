"""The store's schema: one version number, every table and column commented."""

from __future__ import annotations

# Bump on any change; a store with a newer version is refused, never altered. A store of an
# older version is brought up to this one by MIGRATIONS when it is opened for writing.
SCHEMA_VERSION = 3

# What turns a store of version N into N + 1 (columns added: nothing recorded is touched).
MIGRATIONS: dict[int, str] = {
    1: "ALTER TABLE samples ADD COLUMN file_bytes INTEGER;",
    2: "ALTER TABLE samples ADD COLUMN lazyfree_bytes INTEGER;",
}

# The application_id in the SQLite header marks a file as a memsleuth store ("MSLH").
APPLICATION_ID = 0x4D534C48

SCHEMA = """
-- One row per recording (record, run, soak, import).
CREATE TABLE IF NOT EXISTS runs (
    id            INTEGER PRIMARY KEY,   -- the RUN argument of analyze/report/export
    name          TEXT NOT NULL,         -- --name, or the command's basename
    kind          TEXT NOT NULL,         -- record | run | soak | import
    command       TEXT NOT NULL,         -- JSON list: the target's argv ([] when attached)
    pid           INTEGER,               -- the target's pid (the root pid with --children)
    host          TEXT NOT NULL,         -- hostname of the recording machine
    started_at    REAL NOT NULL,         -- unix time the recording started
    ended_at      REAL,                  -- unix time it ended; NULL if the recorder was killed
    exit_status   INTEGER,               -- target's exit status when memsleuth started it
    version       TEXT NOT NULL,         -- memsleuth version that recorded the run
    interval_s    REAL NOT NULL,         -- sampling interval asked for
    limit_bytes   INTEGER,               -- memory limit (--limit or cgroup memory.max); NULL = none
    note          TEXT NOT NULL DEFAULT '', -- how it ended, probe status, free text
    meta          TEXT NOT NULL DEFAULT '{}' -- JSON object for options of later features
);

-- One row per observation of the target. Sizes in bytes; NULL = not read at that sample.
CREATE TABLE IF NOT EXISTS samples (
    run_id        INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    t             REAL NOT NULL,         -- unix time of the observation
    rss_bytes     INTEGER NOT NULL,      -- VmRSS (summed over the tree with --children)
    pss_bytes     INTEGER,               -- Pss from smaps_rollup (read less often: it is costly)
    uss_bytes     INTEGER,               -- Private_Clean + Private_Dirty from smaps_rollup
    anon_bytes    INTEGER,               -- RssAnon from status
    file_bytes    INTEGER,               -- RssFile from status: mapped files' pages (reclaimable)
    lazyfree_bytes INTEGER,              -- LazyFree from smaps_rollup: MADV_FREE'd (reclaimable)
    swap_bytes    INTEGER,               -- VmSwap from status
    heap_bytes    INTEGER,               -- RSS of the [heap] mapping (brk heap), from smaps
    hwm_bytes     INTEGER,               -- VmHWM, peak RSS so far
    threads       INTEGER,               -- Threads from status
    fds           INTEGER,               -- entries in /proc/PID/fd
    cgroup_bytes  INTEGER,               -- cgroup v2 memory.current of the target's cgroup
    cpu_s         REAL,                  -- user + system CPU seconds of the target
    work          REAL,                  -- work counter (--work-file), cumulative units
    latency_s     REAL                   -- duration of one unit of work (soak cycles)
);
CREATE INDEX IF NOT EXISTS samples_run_t ON samples(run_id, t);

-- Named extra series of a run: culprit sizes, type counts, per-cycle figures.
CREATE TABLE IF NOT EXISTS points (
    run_id        INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    series        TEXT NOT NULL,         -- e.g. "container:module app.dedup, global SEEN (dict)"
    t             REAL NOT NULL,         -- unix time
    value         REAL NOT NULL          -- in the series' own unit (entries, bytes, count)
);
CREATE INDEX IF NOT EXISTS points_run_series ON points(run_id, series, t);

-- Things that happened or were reported during a run: probe reports, soak results, notes.
CREATE TABLE IF NOT EXISTS events (
    run_id        INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    t             REAL NOT NULL,         -- unix time
    kind          TEXT NOT NULL,         -- e.g. "probe.census", "probe.threads", "soak.result"
    payload       TEXT NOT NULL          -- JSON object, shape given by kind
);
CREATE INDEX IF NOT EXISTS events_run_kind ON events(run_id, kind, t);

-- Culprits found for a run (by the probe, or by analysis of pprof profiles).
CREATE TABLE IF NOT EXISTS culprits (
    run_id        INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    rank          INTEGER NOT NULL,      -- 1 = largest share of the growth
    payload       TEXT NOT NULL          -- JSON of a model.Culprit
);
"""
