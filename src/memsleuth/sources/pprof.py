"""Profiles in pprof's format (profile.proto, gzipped or not): the heap profiles Go's
`/debug/pprof/heap` serves and Rust's jemalloc_pprof or `pprof -proto` write, and Go's
goroutine profiles. Each is reduced to its value at each site, the innermost frame outside the
runtime and the allocator (the bytes in use allocated there; the goroutines waiting there),
so that profiles taken over time can be diffed."""

from __future__ import annotations

import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import urllib3
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError

from memsleuth.errors import SourceError

# The most a profile may hold, gzipped or not: a big Go service's heap profile is a few MB.
# More is refused before it is all read (a 1 GiB answer, or a gzip bomb, had taken memsleuth's
# own memory to 371 and 635 MB at a cap of 256 MiB).
MAX_PROFILE_BYTES = 32 * 1024 * 1024
# The sample types that hold the bytes in use, by preference: Go's heap profile, then
# jemalloc_pprof's and gperftools' (through `pprof -proto`).
INUSE_TYPES = ("inuse_space", "space", "inuse")
OBJECT_TYPES = ("inuse_objects", "objects")
GOROUTINE_TYPES = ("goroutine",)
# Frames of the allocator or the runtime, never the place that asked for memory.
ALLOCATOR_PREFIXES = (
    "runtime.",
    "malloc",
    "calloc",
    "realloc",
    "free",
    "posix_memalign",
    "aligned_alloc",
    "memalign",
    "valloc",
    "operator new",
    "je_",
    "_rjem_",
    "prof_",
    "imalloc",
    "__libc_",
    "__rust_alloc",
    "__rust_realloc",
    "__rdl_",
    "__rg_",
    "alloc::",
    "<alloc::",
)
# Go's standard library: a site inside it (bytes.growSlice, encoding/json) is named with the
# program's own frame that called into it.
_GO_STD_PACKAGES = (
    "archive bufio bytes cmp compress container context crypto database debug embed encoding "
    "errors expvar flag fmt go hash html image index internal io iter log maps math mime net "
    "os path plugin reflect regexp runtime slices sort strconv strings structs sync syscall "
    "testing text time unicode unique unsafe vendor weak"
)
GO_STD = frozenset(_GO_STD_PACKAGES.split())

_PROTO = """\
ValueType: int64 type=1; int64 unit=2
Sample: repeated uint64 location_id=1; repeated int64 value=2; repeated Label label=3
Label: int64 key=1; int64 str=2; int64 num=3; int64 num_unit=4
Mapping: uint64 id=1; uint64 memory_start=2; uint64 memory_limit=3; uint64 file_offset=4; \
int64 filename=5; int64 build_id=6; bool has_functions=7; bool has_filenames=8; \
bool has_line_numbers=9; bool has_inline_frames=10
Line: uint64 function_id=1; int64 line=2; int64 column=3
Location: uint64 id=1; uint64 mapping_id=2; uint64 address=3; repeated Line line=4; \
bool is_folded=5
Function: uint64 id=1; int64 name=2; int64 system_name=3; int64 filename=4; int64 start_line=5
Profile: repeated ValueType sample_type=1; repeated Sample sample=2; repeated Mapping mapping=3; \
repeated Location location=4; repeated Function function=5; repeated string string_table=6; \
int64 drop_frames=7; int64 keep_frames=8; int64 time_nanos=9; int64 duration_nanos=10; \
ValueType period_type=11; int64 period=12; repeated int64 comment=13; \
int64 default_sample_type=14"""


@cache
def _profile_class() -> Any:
    """The message class of perftools.profiles.Profile, built from the fields above (the
    schema of github.com/google/pprof's proto/profile.proto)."""
    f = descriptor_pb2.FieldDescriptorProto
    scalars = {"int64": f.TYPE_INT64, "uint64": f.TYPE_UINT64, "bool": f.TYPE_BOOL}
    scalars["string"] = f.TYPE_STRING
    file = descriptor_pb2.FileDescriptorProto(
        name="memsleuth_profile.proto", package="perftools.profiles", syntax="proto3"
    )
    for line in _PROTO.splitlines():
        name, _, fields = line.partition(": ")
        message = file.message_type.add(name=name)
        for spec in fields.split("; "):
            words = spec.split()
            repeated = words[0] == "repeated"
            kind, field = words[-2], words[-1]
            field_name, _, number = field.partition("=")
            added = message.field.add(name=field_name, number=int(number))
            added.label = f.LABEL_REPEATED if repeated else f.LABEL_OPTIONAL
            if kind in scalars:
                added.type = scalars[kind]
            else:
                added.type = f.TYPE_MESSAGE
                added.type_name = f".perftools.profiles.{kind}"
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("perftools.profiles.Profile"))


@dataclass(frozen=True, slots=True)
class Site:
    """A profile's value at one site (bytes in use, goroutines), and the stack that held most
    of it."""

    value: float
    objects: float  # a heap profile's objects in use there (0 when it has none)
    stack: tuple[str, ...]  # "function (file:line)", innermost first, allocator frames left out


@dataclass(frozen=True, slots=True)
class Profile:
    """A profile reduced to its sites."""

    time_s: float | None  # unix time the profile was taken, when it says
    total: float  # bytes in use (a heap profile), goroutines (a goroutine profile)
    objects: float | None  # a heap profile's objects in use, when it counts them
    sites: dict[str, Site]  # by name: "main.(*SlabArena).Alloc (arena.go:20)"
    sample_type: str  # the sample type read ("inuse_space", "goroutine")
    program: str | None = None  # the file of its first mapping: the program's executable


def _corrupt(what: str, source: str) -> SourceError:
    return SourceError(
        f"{source} is not a heap profile in pprof's format: {what}",
        "give a heap profile as Go's /debug/pprof/heap serves it (gzipped profile.proto), or "
        "convert one with `go tool pprof -proto`",
    )


def decompress(data: bytes, source: str) -> bytes:
    """The profile's bytes, gunzipped when gzipped; a truncated or oversized stream is an
    error that says so."""
    if not data.startswith(b"\x1f\x8b"):
        return data
    unzip = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        out = unzip.decompress(data, MAX_PROFILE_BYTES)
    except zlib.error as exc:
        raise _corrupt(f"its gzip stream is damaged ({exc})", source) from None
    if unzip.unconsumed_tail:
        raise SourceError(
            f"{source} holds more than {MAX_PROFILE_BYTES >> 20} MiB unzipped",
            "is it a heap profile? A profile this large is not one memsleuth reads",
        )
    if not unzip.eof:
        raise _corrupt(f"its gzip stream ends early, after {len(data):,} bytes (truncated)", source)
    return out


def parse(data: bytes, source: str = "the profile", *, goroutines: bool = False) -> Profile:
    """A heap profile (or with `goroutines`, a goroutine profile) from its bytes, gzipped or
    not; SourceError when it is not one."""
    raw = decompress(data, source)
    if not raw:
        raise _corrupt("it is empty", source)
    message = _profile_class()()
    try:
        message.ParseFromString(raw)
    except DecodeError as exc:
        raise _corrupt(f"it does not decode ({exc})", source) from None
    strings = list(message.string_table)
    if not strings or strings[0] != "":
        raise _corrupt("its string table is missing", source)

    def text(i: int) -> str:
        return strings[i] if 0 <= i < len(strings) else ""

    types = [text(v.type) for v in message.sample_type]
    units = [text(v.unit) for v in message.sample_type]
    if goroutines:
        value, objects = _pick(types, units, GOROUTINE_TYPES, "count"), None
    else:
        value = _pick(types, units, INUSE_TYPES, "bytes")
        objects = _pick(types, units, OBJECT_TYPES, "count")
    if value is None:
        kinds = ", ".join(types) or "none"
        if goroutines:
            raise SourceError(
                f"{source} is not a goroutine profile (its sample types: {kinds})",
                "Go serves its goroutine profile at /debug/pprof/goroutine",
            )
        raise SourceError(
            f"{source} is a profile without bytes in use (its sample types: {kinds})",
            "give a heap profile (Go: /debug/pprof/heap), not a CPU or goroutine profile",
        )
    frames = _frames(message, text)
    sites: dict[str, tuple[float, float, tuple[str, ...], float]] = {}
    total = 0.0
    total_objects = 0.0
    for sample in message.sample:
        values = sample.value
        if len(values) != len(types):
            raise _corrupt("a sample has the wrong number of values", source)
        amount = float(values[value])
        count = float(values[objects]) if objects is not None else 0.0
        total += amount
        total_objects += count
        stack = [f for loc in sample.location_id for f in frames.get(loc, ("?",))]
        name, shown = site_of(stack)
        held, objs, best_stack, best = sites.get(name, (0.0, 0.0, shown, -1.0))
        if amount > best:
            best_stack, best = shown, amount
        sites[name] = (held + amount, objs + count, best_stack, best)
    return Profile(
        time_s=message.time_nanos / 1e9 if message.time_nanos else None,
        total=total,
        objects=total_objects if objects is not None else None,
        sites={k: Site(b, o, s) for k, (b, o, s, _) in sites.items()},
        sample_type=types[value],
        program=next((text(m.filename) for m in message.mapping[:1] if text(m.filename)), None),
    )


def _pick(types: list[str], units: list[str], wanted: Sequence[str], unit: str) -> int | None:
    for name in wanted:
        if name in types and units[types.index(name)] == unit:
            return types.index(name)
    return None


def _frames(message: Any, text: Any) -> dict[int, tuple[str, ...]]:
    """Each location's frames, innermost (inlined) first: "function (file:line)", or the
    binary and offset of an address no one symbolized."""
    functions = {fn.id: (text(fn.name), text(fn.filename)) for fn in message.function}
    mappings = {m.id: m for m in message.mapping}
    out: dict[int, tuple[str, ...]] = {}
    for loc in message.location:
        named = []
        for line in loc.line:
            name, path = functions.get(line.function_id, ("", ""))
            if not name:
                continue
            file = "/".join(path.split("/")[-2:]) if path else ""
            named.append(f"{name} ({file}:{line.line})" if file else name)
        if not named:
            m = mappings.get(loc.mapping_id)
            if m is not None and m.memory_start <= loc.address < m.memory_limit:
                binary = text(m.filename).rsplit("/", 1)[-1] or "?"
                named.append(f"{binary}+{loc.address - m.memory_start + m.file_offset:#x}")
            else:
                named.append(f"{loc.address:#x}")
        out[loc.id] = tuple(named)
    return out


def _function(frame: str) -> str:
    return frame.split(" (", 1)[0]


def is_allocator(frame: str) -> bool:
    return _function(frame).startswith(ALLOCATOR_PREFIXES)


def is_go_std(frame: str) -> bool:
    """A Go function of the standard library ("encoding/json.Marshal", "bytes.growSlice")."""
    fn = _function(frame)
    package = fn.split("/", 1)[0] if "/" in fn else fn.split(".", 1)[0]
    return "." in fn and package in GO_STD


def site_of(stack: Sequence[str]) -> tuple[str, tuple[str, ...]]:
    """The site a stack (innermost first) allocated at, and the frames to show: the innermost
    frame outside the allocator and the runtime, and with it the program's own frame that
    called into a standard library ("bytes.growSlice ← main.index (index.go:88)")."""
    shown = tuple(f for f in stack if not is_allocator(f)) or tuple(stack[:1]) or ("?",)
    site = shown[0]
    if is_go_std(site):
        own = next((f for f in shown if not is_go_std(f)), None)
        if own is not None:
            site = f"{_function(site)} ← {own}"
    return site, shown


def read_file(path: str) -> Profile:
    """A heap profile from a file; SourceError when it cannot be read or is not one."""
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_PROFILE_BYTES + 1)
    except OSError as exc:
        raise SourceError(
            f"cannot read the profile {path}: {exc.strerror or exc}",
            "check the path and its permissions",
        ) from None
    if len(data) > MAX_PROFILE_BYTES:
        raise SourceError(
            f"{path} is larger than {MAX_PROFILE_BYTES >> 20} MiB",
            "is it a heap profile? A profile this large is not one memsleuth reads",
        )
    return parse(data, path)


# A profile request waits at most this long in all (a slow or stuck endpoint): the recorder
# asks from a thread of its own, so sampling never waits on it.
FETCH_TIMEOUT_S = 10.0
ENDPOINT_HINT = (
    "give the URL of the heap profile endpoint: Go serves it at /debug/pprof/heap once the "
    'program imports _ "net/http/pprof" and serves HTTP (e.g. http://127.0.0.1:6060/debug/pprof/heap)'
)


def check_url(url: str) -> str:
    """The URL, if it is one a profile can be fetched from; SourceError otherwise."""
    try:
        parsed = urllib3.util.parse_url(url)
    except urllib3.exceptions.LocationParseError:
        parsed = None
    if parsed is None or parsed.scheme not in ("http", "https") or not parsed.host:
        raise SourceError(f"not an http(s) URL: {url!r}", ENDPOINT_HINT)
    return url


def fetch(url: str, pool: urllib3.PoolManager, timeout_s: float = FETCH_TIMEOUT_S) -> bytes:
    """A profile's bytes from an HTTP endpoint, read in at most `timeout_s` (a server that
    trickles its answer is given up on as one that does not answer)."""
    deadline = time.monotonic() + timeout_s
    timeout = urllib3.Timeout(connect=min(5.0, timeout_s), read=timeout_s)
    try:
        resp = pool.request("GET", url, timeout=timeout, preload_content=False, retries=False)
        try:
            if resp.status != 200:
                # Closed, its body unread: released as it is, the pooled connection was left
                # broken and the next request failed another way (two warnings, one problem).
                resp.close()
                raise SourceError(f"{url} answered HTTP {resp.status}", ENDPOINT_HINT)
            chunks: list[bytes] = []
            size = 0
            while chunk := resp.read1(1 << 16):
                chunks.append(chunk)
                size += len(chunk)
                if size > MAX_PROFILE_BYTES:
                    raise SourceError(
                        f"{url} sent more than {MAX_PROFILE_BYTES >> 20} MiB",
                        "is it a heap profile endpoint? " + ENDPOINT_HINT,
                    )
                if time.monotonic() > deadline:
                    raise urllib3.exceptions.TimeoutError()
            return b"".join(chunks)
        finally:
            resp.release_conn()
    # NewConnectionError is a subclass of the timeout error in urllib3: caught first.
    except urllib3.exceptions.NewConnectionError:
        raise SourceError(f"nothing answers at {url} (connection refused)", ENDPOINT_HINT) from None
    except urllib3.exceptions.SSLError as exc:
        hint = ENDPOINT_HINT
        if "WRONG_VERSION_NUMBER" in str(exc):
            hint = "the endpoint answers plain HTTP: give its URL with http://, not https://"
        raise SourceError(f"cannot fetch {url}: TLS failed ({exc})", hint) from None
    except urllib3.exceptions.TimeoutError:
        raise SourceError(
            f"{url} did not send a profile within {timeout_s:g} s",
            "the program may be stalled or the endpoint slow; memsleuth asks again later",
        ) from None
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise SourceError(f"cannot fetch {url}: {exc}", ENDPOINT_HINT) from None
