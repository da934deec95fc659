"""Every way a Prometheus can fail gives `error:`/`hint:` and a non-zero exit; TLS with a CA."""

from __future__ import annotations

import http.server
import json
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.conftest import memsleuth_cmd

from memsleuth.cli import main
from memsleuth.errors import ExitCode

GOOD = json.dumps(
    {
        "status": "success",
        "data": {
            "resultType": "matrix",
            "result": [
                {
                    "metric": {"__name__": "m", "instance": "a"},
                    "values": [
                        [1000 + 60 * i, str(100_000_000 + 1_000_000 * i)] for i in range(120)
                    ],
                }
            ],
        },
    }
)
NO_START_TIMES = json.dumps({"status": "success", "data": {"resultType": "vector", "result": []}})
SERIES = json.dumps({"status": "success", "data": [{"__name__": "m", "instance": "a"}]})


def _matrix_of(scales: dict[str, float], flat: float = 0.0) -> str:
    """One series per instance, from `flat` rising by its scale each minute."""
    result = [
        {
            "metric": {"__name__": "m", "instance": name},
            "values": [[1000 + 60 * i, str(flat + scale * (1 + i))] for i in range(120)],
        }
        for name, scale in scales.items()
    ]
    return json.dumps({"status": "success", "data": {"resultType": "matrix", "result": result}})


def _series_of(names: list[str]) -> str:
    return json.dumps(
        {"status": "success", "data": [{"__name__": "m", "instance": k} for k in names]}
    )


# Values no memory reaches (1e300 bytes), beside a series of ordinary ones, or alone.
HUGE = {
    "huge": (_series_of(["huge", "fine"]), _matrix_of({"huge": 1e300, "fine": 1e8})),
    "huge-only": (_series_of(["huge"]), _matrix_of({"huge": 1e300})),
}
MANY = json.dumps(
    {"status": "success", "data": [{"__name__": "m", "instance": f"i{k}"} for k in range(20)]}
)


class Handler(http.server.BaseHTTPRequestHandler):
    mode = "ok"

    def log_message(self, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        asked = urllib.parse.unquote_plus(
            self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
        )
        self.server.posts += 1  # type: ignore[attr-defined]
        mode = self.server.mode  # type: ignore[attr-defined]
        if mode == "half-down":  # flat series for even instances; HTTP 400 for odd ones
            if self.path.endswith("/series"):
                return self._send(200, MANY.encode())
            name = next(f"i{k}" for k in range(20) if f"`i{k}`" in asked)
            if int(name[1:]) % 2:
                return self._send(400, b'{"status":"error","error":"bad data"}')
            return self._send(200, _matrix_of({name: 0.0}, flat=1e8).encode())
        if self.path.endswith("/query"):  # instant: no start times exported, as many do
            return self._send(200, NO_START_TIMES.encode())
        if mode == "floors-down" and "min_over_time" in asked:
            return self._send(503, b"overloaded")
        if mode == "auth" and self.headers.get("Authorization") != "Bearer s3cret":
            return self._send(401, b"Unauthorized")
        if mode == "500":
            return self._send(500, b'{"status":"error","error":"boom"}')
        if mode == "timeout":
            time.sleep(3)
        if mode == "malformed":
            return self._send(200, b"<html>login page</html>")
        if mode == "not-prometheus":  # python -m http.server: no POST, an HTML error page
            page = b"<!DOCTYPE HTML>\n<html><head>\n<title>Error response</title></head>\n"
            return self._send(501, page + b"<body><h1>Unsupported method</h1></body></html>\n")
        if mode == "trickle":  # headers, then a byte at a time: every read well within 1 s
            self.send_response(200)
            self.send_header("Content-Length", "100000")
            self.end_headers()
            for _ in range(60):
                self.wfile.write(b" ")
                self.wfile.flush()
                time.sleep(0.25)
            return None
        if mode == "stuck":  # lists its series, then never answers a query for them
            if self.path.endswith("/series"):
                return self._send(200, MANY.encode())
            time.sleep(30)
            return None
        if mode == "redirect-loop":
            self.send_response(302)
            self.send_header("Location", self.path)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        if mode == "redirect":
            self.send_response(301)
            self.send_header("Location", "https://prometheus.example/prom" + self.path)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        if mode in HUGE:
            listing, matrix = HUGE[mode]
            return self._send(200, (listing if self.path.endswith("/series") else matrix).encode())
        body = SERIES if self.path.endswith("/series") else GOOD
        if mode == "partial" and not self.path.endswith("/series"):
            body = body[: len(body) // 2]
        self._send(200, body.encode())

    def _send(self, code: int, body: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class Quiet(http.server.ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        pass  # the client hung up on purpose (timeouts)


@pytest.fixture
def server() -> Iterator[Quiet]:
    srv = Quiet(("127.0.0.1", 0), Handler)
    srv.mode = "ok"  # type: ignore[attr-defined]
    srv.posts = 0  # type: ignore[attr-defined]
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv
    srv.shutdown()
    srv.server_close()


def _run(url: str, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, str, str]:
    code = main(
        [
            "fleet",
            "--prometheus",
            url,
            "--range",
            "2h",
            "--end",
            "8200",
            "--retries",
            "1",
            "--timeout",
            "1",
            "--json",
            *extra,
        ]
    )
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def _url(srv: http.server.ThreadingHTTPServer) -> str:
    return f"http://127.0.0.1:{srv.server_address[1]}"


def test_a_healthy_server_is_judged(server, capsys) -> None:
    code, out, _ = _run(_url(server), capsys)
    (row,) = json.loads(out)
    assert row["labels"] == {"__name__": "m", "instance": "a"} and row["verdict"]
    assert code in (0, 3)


@pytest.mark.parametrize(
    ("mode", "message", "hint"),
    [
        ("500", "HTTP 500", "server is failing"),
        ("malformed", "malformed answer", "--prometheus"),
        ("partial", "malformed answer", "--prometheus"),
        ("timeout", "did not answer in full within 1 s", "--timeout"),
        ("trickle", "did not answer in full within 1 s", "--timeout"),
        ("auth", "HTTP 401", "--bearer-token-file"),
        ("not-prometheus", "HTTP 501 to v1/series: Error response", "Prometheus HTTP API"),
        # A redirect is not followed: it had read "not JSON ... it starts with b''".
        ("redirect-loop", "to itself: a redirect loop", "--prometheus URL"),
        ("redirect", "to https://prometheus.example/prom/api/v1/series", "it redirects to"),
    ],
)
def test_failures_say_what_and_what_to_do(server, capsys, mode, message, hint) -> None:
    server.mode = mode
    code, out, err = _run(_url(server), capsys)
    assert code == 1
    assert out == ""
    assert "error: " in err and message in err, err
    assert "hint: " in err and hint in err, err
    assert "Traceback" not in err and "<!DOCTYPE" not in err
    assert len(err.strip().splitlines()) == 2, err  # one error line, one hint


def test_a_stuck_server_is_given_up_after_three_batches(server, capsys) -> None:
    # 20 batches that would each wait out their 2 s timeout (20 s at 2 in flight): after three
    # failures in a row the rest are not asked for.
    server.mode = "stuck"
    started = time.monotonic()
    code, _, err = _run(_url(server), capsys, "--batch-size", "1", "--timeout", "2")
    assert time.monotonic() - started < 12
    assert code == 1 and "20 batches failed" in err and "Traceback" not in err


def test_a_scan_that_judged_part_of_the_fleet_and_found_nothing_fails(server, capsys) -> None:
    # Half the batches failed: it had exited 0 with the rest judged stable, and a warning a
    # batch: a CI gate passed with most of the fleet unseen.
    server.mode = "half-down"
    code, out, err = _run(_url(server), capsys, "--batch-size", "1")
    assert len(json.loads(out)) == 10  # what was judged is still shown
    assert code == 1, err
    assert "10 batches of 20 (10 series) failed: Prometheus answered HTTP 400" in err
    assert "error: the scan is incomplete: 10 series in 10 batches were not judged" in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("signum", "code"),
    [(signal.SIGINT, ExitCode.INTERRUPTED), (signal.SIGTERM, ExitCode.TERMINATED)],
)
def test_ctrl_c_stops_a_scan_waiting_on_its_batches(server, signum, code) -> None:
    server.mode = "stuck"
    args = ("--prometheus", _url(server), "--range", "2h", "--end", "8200", "--timeout", "60")
    proc = subprocess.Popen(
        memsleuth_cmd("fleet", *args, "--batch-size", "5"),
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(2.0)  # listed, and waiting on its queries
    proc.send_signal(signum)
    started = time.monotonic()
    _, err = proc.communicate(timeout=30)
    assert time.monotonic() - started < 5, "the scan waited for its timeouts"
    assert proc.returncode == code and "Traceback" not in err, err


def test_bearer_token_is_sent(server, capsys, tmp_path) -> None:
    server.mode = "auth"
    token = tmp_path / "token"
    token.write_text("s3cret\n")
    code, out, _ = _run(_url(server), capsys, "--bearer-token-file", str(token))
    assert code in (0, 3) and json.loads(out)[0]["labels"]["instance"] == "a"


def test_a_failed_floor_query_leaves_the_verdicts_not_the_batch(server, capsys) -> None:
    # It had thrown the batch away, its leak with it: "nothing could be judged: HTTP 503".
    server.mode = "floors-down"
    code, out, err = _run(_url(server), capsys)
    (row,) = json.loads(out)
    assert code == 3 and row["verdict"] == "leak", err
    assert "could not ask for their step floors (Prometheus answered HTTP 503" in err
    assert "the problems' verdicts stand as first judged (in one batch)" in err


def test_refused_credentials_are_said_refused_not_missing(server, capsys, tmp_path) -> None:
    # A wrong token had got the hint to "pass credentials".
    server.mode = "auth"
    token = tmp_path / "token"
    token.write_text("wrong\n")
    code, _, err = _run(_url(server), capsys, "--bearer-token-file", str(token))
    assert code == 1 and "HTTP 401" in err
    assert "hint: the credentials given were refused" in err, err


def test_unreachable(capsys) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code, _, err = _run(f"http://127.0.0.1:{port}", capsys)
    assert code == 1 and "cannot reach Prometheus" in err and "hint:" in err
    assert err.startswith("error:"), err  # no blank line from a progress bar off a terminal


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:99999", "http://[::1", "http://a b:9090", "http://", "localhost"]
)
def test_a_malformed_url_is_an_error_not_a_traceback(capsys, url: str) -> None:
    code, out, err = _run(url, capsys)
    # Not http(s) at all is refused as bad usage before anything is built.
    assert code == (1 if url.startswith("http") else 2) and out == ""
    assert err.startswith("error: ") and "URL" in err and "hint: " in err, err


@pytest.mark.parametrize("where", ["no-such-dir/fleet.html", "."])
def test_a_report_that_cannot_be_written_fails_before_the_scan(
    server, capsys, tmp_path, where: str
) -> None:
    # A directory too: the scan had run for minutes before "Is a directory".
    report = (tmp_path / where).resolve() if where == "." else tmp_path / where
    code, out, err = _run(_url(server), capsys, "--report", str(report))
    assert code == ExitCode.ERR and out == ""
    assert err.startswith(f"error: cannot write {report}") and "hint:" in err, err
    assert server.posts == 0, "the scan ran before the report was found unwritable"


def test_a_failed_scan_leaves_the_last_report_as_it_was(server, capsys, tmp_path) -> None:
    report = tmp_path / "fleet.html"
    code, _, _ = _run(_url(server), capsys, "--report", str(report))
    assert code in (0, 3) and "<html" in report.read_text()
    before = report.read_bytes()
    server.mode = "500"
    code, _, err = _run(_url(server), capsys, "--report", str(report))
    assert code == ExitCode.ERR and "HTTP 500" in err
    assert report.read_bytes() == before and sorted(tmp_path.iterdir()) == [report]


@pytest.mark.parametrize(
    ("flags", "words"),
    [
        (["--user", "me"], "--user needs --password-file"),
        (["--password-file", "{secret}"], "--password-file needs --user"),
        (
            ["--user", "me", "--password-file", "{secret}", "--bearer-token-file", "{secret}"],
            "both set credentials",
        ),
        (["--insecure", "--ca-file", "{secret}"], "contradict"),
        (["--ca-file", "{missing}"], "no CA file at"),
    ],
)
def test_credentials_that_cannot_work_are_usage_errors(
    server, capsys, tmp_path, flags: list[str], words: str
) -> None:
    (tmp_path / "secret").write_text("s3cret\n")
    paths = {"secret": tmp_path / "secret", "missing": tmp_path / "missing.pem"}
    code, out, err = _run(_url(server), capsys, *(f.format(**paths) for f in flags))
    assert code == ExitCode.USAGE and out == ""
    assert err.startswith("error: ") and words in err and "hint: " in err, err
    assert server.posts == 0


@pytest.fixture
def tls_server(tmp_path: Path, server) -> Iterator[tuple[str, Path]]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl not installed")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    srv = Quiet(("127.0.0.1", 0), Handler)
    srv.mode = "ok"  # type: ignore[attr-defined]
    srv.posts = 0  # type: ignore[attr-defined]
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"https://127.0.0.1:{srv.server_address[1]}", cert
    srv.shutdown()
    srv.server_close()


def test_custom_ca(tls_server, capsys) -> None:
    url, cert = tls_server
    code, _, err = _run(url, capsys)
    assert code == 1 and "TLS" in err and "--ca-file" in err
    code, out, _ = _run(url, capsys, "--ca-file", str(cert))
    assert code in (0, 3) and json.loads(out)[0]["labels"]["instance"] == "a"


def test_an_https_url_to_a_plain_http_server_says_to_try_http(server, capsys) -> None:
    # The hint had been to pass --ca-file, which cannot help.
    port = server.server_address[1]
    code, out, err = _run(f"https://127.0.0.1:{port}", capsys)
    assert code == ExitCode.ERR and out == "" and "error: TLS handshake" in err, err
    assert f"hint: the server may not speak TLS: try http://127.0.0.1:{port}" in err, err


def test_values_past_any_memory_are_said_once_without_a_traceback(server) -> None:
    # 1e300 bytes: an OverflowError traceback per series and numpy's RuntimeWarnings had been
    # printed (without -v), and the `last` column a 282-digit number (then "1.04e+284 EiB").
    server.mode = "huge"
    args = ("--prometheus", _url(server), "--range", "2h", "--end", "8200", "--retries", "0")
    p = subprocess.run(memsleuth_cmd("fleet", *args), capture_output=True, text=True, timeout=120)
    assert p.returncode in (ExitCode.OK, ExitCode.PROBLEM), p.stderr
    assert p.stderr.splitlines() == [
        'warning: 1 series could not be judged; the first, m{instance="huge"}: values reach '
        "1.2e+302, past any memory (16.0 EiB)"
    ], p.stderr
    (row,) = (line for line in p.stdout.splitlines() if "huge" in line)
    assert "error" in row and "EiB" not in row, row  # no level for what is not memory
    assert max(len(line) for line in p.stdout.splitlines()) <= 120, p.stdout


def test_nothing_judged_because_of_values_past_memory_says_so(server) -> None:
    # It had said "the query returned no usable samples": samples were there, and judging
    # had failed on them.
    server.mode = "huge-only"
    args = ("--prometheus", _url(server), "--range", "2h", "--end", "8200", "--retries", "0")
    p = subprocess.run(
        memsleuth_cmd("fleet", *args),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == ExitCode.ERR and "Traceback" not in p.stderr, p.stderr
    assert p.stderr.startswith(
        "error: nothing could be judged: 1 series could not be judged; the first, "
    ), p.stderr
    assert "past any memory" in p.stderr and "hint: check that --query gives memory" in p.stderr


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        (("--range", "90s"), "--range 1.5 min holds 1 steps of 1.0 min (the default step)"),
        (("--range", "1ms"), "holds 0 steps"),
        (("--range", "7d", "--step", "8d"), "--range 7.0 d holds 0 steps of 8.0 d (--step)"),
        (("--query", " "), "--query is empty"),
    ],
)
def test_a_range_too_short_for_its_step_or_no_query_is_bad_usage(
    server, capsys, extra, words
) -> None:
    # Every series had been judged on 2 samples, all `inconclusive`, exit 0.
    code, out, err = _run(_url(server), capsys, *extra)
    assert code == ExitCode.USAGE and out == "" and words in err, err
    assert server.posts == 0
