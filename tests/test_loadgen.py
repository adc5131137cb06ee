"""The benchmarks' load generator counts what a real (tiny) local HTTP server answers, and stops by itself."""

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from leadcockpit.lib import loadgen


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the ingest API's clients use it

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.path == "/hang-up":
            self.close_connection = True  # no answer at all: a connection error for the client
            return
        if self.path == "/slow":
            time.sleep(0.2)
        status = {"/ok": 202, "/slow": 202, "/busy": 429, "/bare-429": 429, "/boom": 500, "/bad": 422}[
            self.path
        ]
        body = b'{"status": %d}' % status
        self.send_response(status)
        if self.path == "/busy":
            self.send_header("Retry-After", "1")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd.server_address[1]
    httpd.shutdown()
    httpd.server_close()


def cycle(*paths):
    return lambda i: ("POST", paths[i % len(paths)], b'{"n": %d}' % i, {"Content-Type": "application/json"})


def test_each_answer_is_counted_under_its_status_and_hang_ups_as_errors(server):
    paths = ["/ok", "/ok", "/busy", "/bare-429", "/boom", "/bad", "/hang-up"]

    result = loadgen.run(
        host="127.0.0.1", port=server, request=cycle(*paths), total=70, duration_s=20, connections=3
    )

    assert result.statuses == {202: 20, 429: 20, 500: 10, 422: 10}
    assert result.errors == 10
    assert result.sent == 70
    assert result.server_errors == 10
    assert result.count(429) == 20
    assert result.missing_retry_after == 10  # only /bare-429 leaves the header out
    assert len(result.latencies_ms) == 60


def test_a_rate_paces_the_requests_and_the_time_budget_ends_the_run(server):
    result = loadgen.run(
        host="127.0.0.1", port=server, request=cycle("/ok"), total=10_000, duration_s=1.0, rate=50
    )

    # 50 per second for one second: about 50 sent, nowhere near the 10,000 allowed.
    assert 25 <= result.sent <= 51  # late threads on a busy machine send fewer, never more
    assert result.statuses == {202: result.sent}
    assert result.elapsed_s < 3


def test_a_slow_server_cannot_keep_the_run_past_its_budget(server):
    started = time.perf_counter()

    result = loadgen.run(
        host="127.0.0.1", port=server, request=cycle("/slow"), total=1000, duration_s=0.5, connections=2
    )

    assert time.perf_counter() - started < 2
    assert 2 <= result.count(202) <= 8
    assert result.percentile(50) >= 200


def test_latency_percentiles_use_the_nearest_rank():
    result = loadgen.LoadResult(latencies_ms=[float(n) for n in range(100, 0, -1)])

    assert result.percentile(95) == 95
    assert result.percentile(50) == 50
    assert result.percentile(100) == 100
    assert loadgen.LoadResult().percentile(95) is None


def test_it_refuses_to_load_anything_but_this_machine():
    with pytest.raises(ValueError, match="loopback"):
        loadgen.run(host="example.com", port=80, request=cycle("/ok"), total=1, duration_s=1)
