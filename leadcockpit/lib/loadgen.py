"""A small, bounded HTTP load generator for benchmarks on this machine (standard library only).

Threads, each holding one keep-alive connection, send requests until a request count or a time budget runs out,
whichever comes first; it stops by itself. It only talks to the loopback interface. With `rate` it is open-loop
(request i is due at start + i / rate, sent late when every connection is busy); without, each connection sends
its next request as soon as the last one answered (closed loop: the server's throughput at that concurrency).
"""

import http.client
import itertools
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

LOOPBACK = {"127.0.0.1", "::1", "localhost"}
MAX_CONNECTIONS = 256


@dataclass
class LoadResult:
    """What came back: counts per HTTP status, connection errors, latencies (ms) of answered requests."""

    statuses: Counter = field(default_factory=Counter)
    errors: int = 0
    missing_retry_after: int = 0
    latencies_ms: list = field(default_factory=list)
    elapsed_s: float = 0.0

    @property
    def sent(self) -> int:
        return sum(self.statuses.values()) + self.errors

    @property
    def server_errors(self) -> int:
        return sum(n for status, n in self.statuses.items() if status >= 500)

    def count(self, *statuses) -> int:
        return sum(self.statuses[status] for status in statuses)

    def per_second(self, *statuses) -> float:
        return self.count(*statuses) / self.elapsed_s if self.elapsed_s else 0.0

    def percentile(self, p) -> float | None:
        """The p-th percentile (0-100) of the latencies, nearest rank; None when nothing was answered."""
        if not self.latencies_ms:
            return None
        ordered = sorted(self.latencies_ms)
        rank = max(1, -(-len(ordered) * p // 100))  # ceil without floats
        return ordered[int(rank) - 1]


def run(
    *,
    host,
    port,
    request,
    total,
    duration_s,
    connections=8,
    rate=None,
    timeout_s=10.0,
) -> LoadResult:
    """Send up to `total` requests within `duration_s` seconds over `connections` keep-alive connections.

    `request(i)` returns (method, path, body bytes or None, headers dict) for the i-th request; it is called from
    the sending threads, so it must be thread-safe (indexing prepared lists is). A request that fails to connect,
    times out or gets a broken answer counts as an error and its connection is opened afresh.
    """
    if host not in LOOPBACK:
        raise ValueError(f"the load generator only talks to the loopback interface, not {host!r}")
    if not 1 <= connections <= MAX_CONNECTIONS:
        raise ValueError(f"connections must lie between 1 and {MAX_CONNECTIONS}")
    if total < 0 or duration_s <= 0 or (rate is not None and rate <= 0):
        raise ValueError("total must not be negative; duration and rate must be positive")

    result = LoadResult()
    lock = threading.Lock()
    indexes = itertools.count()
    start = time.perf_counter()
    deadline = start + duration_s

    def worker():
        conn = None
        statuses, latencies, errors, missing = Counter(), [], 0, 0
        while True:
            with lock:
                i = next(indexes)
            if i >= total:
                break
            if rate is not None:
                due = start + i / rate
                wait = due - time.perf_counter()
                if due >= deadline:
                    break
                if wait > 0:
                    time.sleep(wait)
            if time.perf_counter() >= deadline:
                break
            method, path, body, headers = request(i)
            sent = time.perf_counter()
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(host, port, timeout=timeout_s)
                conn.request(method, path, body=body, headers=headers)
                response = conn.getresponse()
                response.read()
            except (OSError, http.client.HTTPException):
                errors += 1
                if conn is not None:
                    conn.close()
                conn = None
                continue
            latencies.append((time.perf_counter() - sent) * 1000)
            statuses[response.status] += 1
            if response.status == 429 and not response.getheader("Retry-After"):
                missing += 1
            if response.will_close:
                conn.close()
                conn = None
        if conn is not None:
            conn.close()
        with lock:
            result.statuses.update(statuses)
            result.latencies_ms.extend(latencies)
            result.errors += errors
            result.missing_retry_after += missing

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        # Every request is bounded by its timeout, so a thread ends at most that long after the deadline.
        thread.join(duration_s + timeout_s + 5)
    result.elapsed_s = time.perf_counter() - start
    return result
