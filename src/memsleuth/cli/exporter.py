"""`memsleuth exporter`: serve per-process memory and leak judgements for Prometheus."""

from __future__ import annotations

import argparse
import errno
import re
import signal
import sys
import threading

from memsleuth.cli.options import (
    interval_arg,
    limit_arg,
    pid_arg,
    port_arg,
    positive_duration,
    whole_number,
)
from memsleuth.errors import ExitCode, MemsleuthError, UsageError

# The fewest samples a process's history keeps (exporter.History's floor): asking for fewer
# was silently raised to this, so the CLI refuses it instead.
MIN_HISTORY = 8


class ExporterCommand:
    """Serve /metrics for Prometheus: per-process RSS, PSS, USS, anonymous memory, swap,
    threads and fds (memsleuth_process_*), and memsleuth's own judgement of each process from
    its in-memory history: leak score, growth rate, time to limit, verdict. Listens on
    127.0.0.1 unless --address says otherwise. Watches every readable process unless --match
    or --pid narrows it. The guards' metrics are included when memsleuth.guards is in use."""

    def prepare_parser(self, parser: argparse.ArgumentParser) -> None:
        add = parser.add_argument
        add("--port", type=port_arg, default=9327, help="port to listen on (default: 9327; 0: any)")
        add("--address", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
        add("--match", metavar="REGEX", help="watch processes whose name or command line match")
        add(
            "--pid",
            type=pid_arg,
            action="append",
            default=[],
            metavar="N",
            help="watch this process (repeatable)",
        )
        add(
            "--interval",
            type=interval_arg,
            default=5.0,
            metavar="DURATION",
            help="sampling interval (default: 5s)",
        )
        add(
            "--history",
            type=whole_number(MIN_HISTORY),
            default=1024,
            metavar="N",
            help=f"samples kept per process, at least {MIN_HISTORY}; older ones are thinned, "
            "not dropped (default: 1024)",
        )
        add(
            "--judge-every",
            type=positive_duration,
            default=30.0,
            metavar="DURATION",
            help="how often each process is judged again (default: 30s)",
        )
        add(
            "--limit",
            type=limit_arg,
            metavar="SIZE",
            help="memory limit for time-to-limit (default: the process's cgroup limit)",
        )

    def run(self, args: argparse.Namespace) -> int:
        from prometheus_client import CollectorRegistry, start_http_server

        from memsleuth.exporter import ExporterCollector, ProcessWatcher

        try:
            match = re.compile(args.match) if args.match else None
        except re.error as exc:
            msg = f"--match is not a regular expression: {exc}"
            raise UsageError(msg, "e.g. --match 'python|nginx'") from None
        from memsleuth.sources.procfs import identify

        for pid in args.pid:  # a mistyped pid would otherwise serve nothing, silently
            identify(pid)
        watcher = ProcessWatcher(
            match=match,
            pids=tuple(args.pid),
            interval_s=args.interval,
            history=args.history,
            judge_every_s=args.judge_every,
            limit_bytes=args.limit,
        )
        registry = CollectorRegistry()
        registry.register(ExporterCollector(watcher))
        try:
            from memsleuth.guards.metrics import register_metrics
        except ImportError:
            pass
        else:
            register_metrics(registry)
        try:
            server, _thread = start_http_server(args.port, addr=args.address, registry=registry)
        except OSError as exc:
            where = f"cannot listen on {args.address}:{args.port}: {exc.strerror}"
            # A port taken (or kept for root) is the machine's state, not bad usage: exit 1.
            if exc.errno == errno.EADDRINUSE:
                raise MemsleuthError(
                    where,
                    f"port {args.port} is in use: pick another with --port, or stop what "
                    "listens there",
                ) from None
            if exc.errno == errno.EACCES:
                raise MemsleuthError(
                    where, f"port {args.port} needs root: pick one from 1024 up with --port"
                ) from None
            raise UsageError(
                where, "--address must be one of this host's own (see `ip addr`), or 0.0.0.0"
            ) from None
        watcher.start()
        host = f"[{args.address}]" if ":" in args.address else args.address
        n = len(watcher.snapshot())
        print(
            f"serving http://{host}:{server.server_port}/metrics "
            f"({n} process{'' if n == 1 else 'es'})",
            flush=True,
        )
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        try:
            stop.wait()
        except KeyboardInterrupt:
            pass
        finally:
            watcher.stop()
            server.shutdown()
        print("exporter stopped", file=sys.stderr)
        return ExitCode.OK
