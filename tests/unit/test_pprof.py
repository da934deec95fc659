"""Heap profiles in pprof's format: read, reduced to allocation sites, refused when damaged.

The profiles in data/ were served by examples/go_arena (Go 1.19's net/http/pprof): a heap
profile after four seconds, and a one-second CPU profile."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from memsleuth.errors import SourceError
from memsleuth.sources import pprof

DATA = Path(__file__).parent / "data"
HEAP = DATA / "go_heap.pb.gz"
CPU = DATA / "go_cpu.pb.gz"


def test_a_go_heap_profile_is_its_allocation_sites() -> None:
    p = pprof.read_file(str(HEAP))
    assert p.sample_type == "inuse_space"
    assert p.time_s is not None and p.time_s > 1.7e9  # unix time, from time_nanos
    arena = p.sites["main.(*SlabArena).Alloc (go_arena/main.go:32)"]
    # The arena keeps 256 KiB every 50 ms: the most of the heap in use, four seconds in.
    assert arena.value > 0.5 * p.total
    assert arena.stack[:2] == (
        "main.(*SlabArena).Alloc (go_arena/main.go:32)",
        "main.main (go_arena/main.go:99)",
    )
    assert sum(s.value for s in p.sites.values()) == pytest.approx(p.total)
    assert p.objects == pytest.approx(sum(s.objects for s in p.sites.values()))


def test_gzipped_or_not_reads_the_same() -> None:
    zipped = HEAP.read_bytes()
    assert pprof.parse(gzip.decompress(zipped)) == pprof.parse(zipped)


@pytest.mark.parametrize(
    ("damage", "said"),
    [
        (lambda b: b[: len(b) // 2], "truncated"),  # a download cut short
        (lambda b: b[:10] + b"\0" * 20 + b[30:], "damaged"),  # its deflate stream overwritten
        (lambda b: b"", "empty"),
        (lambda b: b"<html><body>404 page not found</body></html>", "does not decode"),
        (lambda b: gzip.decompress(b)[:-7], "does not decode"),  # raw protobuf cut short
    ],
)
def test_a_damaged_profile_is_refused_with_what_is_wrong(damage, said) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SourceError) as err:
        pprof.parse(damage(HEAP.read_bytes()), "heap.pb.gz")
    assert err.value.message.startswith("heap.pb.gz is not a heap profile")
    assert said in err.value.message
    assert "go tool pprof -proto" in err.value.hint


def test_a_cpu_profile_is_not_a_heap_profile() -> None:
    with pytest.raises(SourceError) as err:
        pprof.read_file(str(CPU))
    assert "without bytes in use (its sample types: samples, cpu)" in err.value.message
    assert "/debug/pprof/heap" in err.value.hint


def test_a_missing_file_is_an_error_with_a_hint(tmp_path: Path) -> None:
    with pytest.raises(SourceError) as err:
        pprof.read_file(str(tmp_path / "nope.pb.gz"))
    assert "cannot read the profile" in err.value.message and err.value.hint


@pytest.mark.parametrize(
    ("stack", "site"),
    [
        # The allocator's and the runtime's frames are not where memory was asked for.
        (["runtime.mallocgc (runtime/malloc.go:1)", "main.load (app/load.go:9)"],
         "main.load (app/load.go:9)"),
        (["malloc", "je_malloc_default", "server::cache::put (src/cache.rs:40)"],
         "server::cache::put (src/cache.rs:40)"),
        (["__rust_alloc", "alloc::raw_vec::finish_grow", "app::index (src/index.rs:7)"],
         "app::index (src/index.rs:7)"),
        # Inside Go's standard library: named with the program's own frame that called it.
        (["bytes.growSlice (bytes/buffer.go:249)", "bytes.(*Buffer).Write (bytes/buffer.go:1)",
          "example.com/db/internal/wal.(*Log).Append (wal/log.go:88)"],
         "bytes.growSlice ← example.com/db/internal/wal.(*Log).Append (wal/log.go:88)"),
        (["encoding/json.Marshal (json/encode.go:1)", "main.reply (app/main.go:30)"],
         "encoding/json.Marshal ← main.reply (app/main.go:30)"),
        # Only the runtime: named as it is (a goroutine's stack, say).
        (["runtime.malg (runtime/proc.go:4076)"], "runtime.malg (runtime/proc.go:4076)"),
        # Not symbolized: the binary and the offset.
        (["server+0x1a2b"], "server+0x1a2b"),
    ],
)  # fmt: skip
def test_a_site_is_the_innermost_frame_that_is_the_program(stack, site) -> None:  # type: ignore[no-untyped-def]
    assert pprof.site_of(stack)[0] == site


@pytest.mark.parametrize(
    "url", ["127.0.0.1:6060/debug/pprof/heap", "ftp://host/heap", "http://", "file:///tmp/x"]
)
def test_only_http_urls_are_endpoints(url: str) -> None:
    with pytest.raises(SourceError) as err:
        pprof.check_url(url)
    assert "/debug/pprof/heap" in err.value.hint
