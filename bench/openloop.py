"""Open-loop HTTP load at a fixed arrival rate (no coordinated omission).

    python bench/openloop.py --base http://127.0.0.1:8000 --paths paths.txt --rate 50 --seconds 20 \
        [--auth "Bearer ..."] [--warmup 2] [--connections 64] [--arrivals fixed|poisson]

Request i is *scheduled* at t0 + i / rate (or at Poisson arrival times) whatever
happened to the earlier ones, and its latency is measured from that scheduled
time to the last byte of the answer. A slow answer therefore delays nothing but
itself, and the requests that had to wait for it (for a free connection or for
the server) are charged their full wait: this is the latency a user arriving at
that rate sees, unlike a closed loop (wrk, N connections each waiting for its
answer before sending the next), whose latency is about N / throughput once the
server saturates and which sends fewer requests exactly when the server is slow
("coordinated omission").

The client is one process (asyncio, uvloop when installed) speaking HTTP/1.1
keep-alive over raw sockets: a request is one pre-built byte string, an answer
is read by Content-Length, so it costs little CPU next to the server. A request
takes an idle connection, or opens one up to `--connections`; beyond that it
waits in line (still charged from its scheduled time). Paths are cycled in
file order. The result is one JSON line on stdout:

  requests, ok, errors (transport errors and non-2xx), error_kinds,
  offered_rps (the schedule), achieved_rps (answers / time from first scheduled
  send to last answer), p50/p90/p99/p999/max_ms and mean_ms from the scheduled
  time, service_p50/p99_ms from the actual send (no queueing in the client),
  late_sends (requests the client itself sent > 1 ms after schedule, with the
  worst lag: if this is large, the client, not the server, was the bottleneck),
  connections_opened, client_cpu_s.

Stops by itself: after `--seconds` of schedule every outstanding request gets at
most `--timeout` seconds more; unanswered ones count as errors ("timeout").
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import random
import resource
import sys
import time
from collections import Counter, deque
from urllib.parse import urlsplit


def percentile(values: list[float], p: float) -> float | None:
    """Nearest-rank percentile (p in 0..100)."""
    if not values:
        return None
    s = sorted(values)
    k = max(0, min(len(s) - 1, math.ceil(p / 100 * len(s)) - 1))
    return s[k]


class Conn:
    __slots__ = ("reader", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def request(self, raw: bytes) -> int:
        """Send one request, read its whole answer; returns the status code."""
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        length, chunked, close = 0, False, False
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
            elif name == b"connection" and b"close" in value.lower():
                close = True
        if chunked:
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
                await self.reader.readexactly(size + 2)
                if size == 0:
                    break
        elif length:
            await self.reader.readexactly(length)
        if close:
            raise ConnectionResetError("server closed the connection")
        return status

    def close(self) -> None:
        self.writer.close()


async def run(a: argparse.Namespace) -> dict:
    url = urlsplit(a.base)
    host, port = url.hostname or "127.0.0.1", url.port or 80
    extra = f"Authorization: {a.auth}\r\n" if a.auth else ""
    with open(a.paths) as f:
        paths = [line.strip() for line in f if line.strip()]
    raws = [f"GET {p} HTTP/1.1\r\nHost: {host}:{port}\r\n{extra}\r\n".encode() for p in paths]

    idle: deque[Conn] = deque()
    waiting: deque[asyncio.Future] = deque()
    opened = [0]
    open_count = [0]

    async def acquire() -> Conn:
        if idle:
            return idle.popleft()
        if open_count[0] < a.connections:
            open_count[0] += 1
            try:
                reader, writer = await asyncio.open_connection(host, port)
            except BaseException:
                open_count[0] -= 1
                raise
            opened[0] += 1
            return Conn(reader, writer)
        fut = asyncio.get_running_loop().create_future()
        waiting.append(fut)
        return await fut

    def release(conn: Conn | None) -> None:
        if conn is None:
            open_count[0] -= 1
            if waiting:  # a slot came free: let the first in line open a connection
                fut = waiting.popleft()
                asyncio.ensure_future(_open_for(fut))
            return
        while waiting:
            fut = waiting.popleft()
            if not fut.done():
                fut.set_result(conn)
                return
        idle.append(conn)  # FIFO: spreads requests over every open connection (and so every worker)

    async def _open_for(fut: asyncio.Future) -> None:
        try:
            open_count[0] += 1
            reader, writer = await asyncio.open_connection(host, port)
            opened[0] += 1
            if not fut.done():
                fut.set_result(Conn(reader, writer))
            else:
                release(Conn(reader, writer))
        except BaseException as exc:
            open_count[0] -= 1
            if not fut.done():
                fut.set_exception(exc)

    async def fire(raw: bytes, scheduled: float, record: bool, out: dict) -> None:
        conn: Conn | None = None
        sent = None
        try:
            conn = await acquire()
            sent = time.perf_counter()
            status = await conn.request(raw)
            done = time.perf_counter()
            if record:
                if 200 <= status < 300:
                    out["lat"].append(done - scheduled)
                    out["svc"].append(done - sent)
                else:
                    out["err"][f"HTTP {status}"] += 1
            release(conn)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError, IndexError) as exc:
            if record:
                out["err"][type(exc).__name__] += 1
            if conn is not None:
                conn.close()
                release(None)
        finally:
            out["last"] = max(out["last"], time.perf_counter())

    async def phase(seconds: float, record: bool, start_index: int) -> dict:
        out = {"lat": [], "svc": [], "err": Counter(), "late": 0, "lag_max": 0.0, "last": 0.0}
        rng = random.Random(a.seed + start_index)
        n = int(round(seconds * a.rate))
        offsets: list[float] = []
        t = 0.0
        for i in range(n):
            if a.arrivals == "poisson":
                t += rng.expovariate(a.rate)
                offsets.append(t)
            else:
                offsets.append(i / a.rate)
        tasks = []
        loop_sleep = asyncio.sleep
        t0 = time.perf_counter() + 0.05
        for i, off in enumerate(offsets):
            scheduled = t0 + off
            now = time.perf_counter()
            if scheduled > now:
                await loop_sleep(scheduled - now)
                now = time.perf_counter()
            lag = now - scheduled
            if lag > 0.001:
                out["late"] += 1
                out["lag_max"] = max(out["lag_max"], lag)
            raw = raws[(start_index + i) % len(raws)]
            tasks.append(asyncio.ensure_future(fire(raw, scheduled, record, out)))
        end = t0 + (offsets[-1] if offsets else 0)
        pending = [t for t in tasks if not t.done()]
        if pending:
            _done, still = await asyncio.wait(pending, timeout=max(0.0, end + a.timeout - time.perf_counter()))
            for task in still:
                task.cancel()
                if record:
                    out["err"]["timeout"] += 1
            if still:
                await asyncio.gather(*still, return_exceptions=True)
        out["t0"], out["n"] = t0, n
        return out

    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    if a.warmup > 0:
        await phase(a.warmup, False, 0)
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    res = await phase(a.seconds, True, int(a.warmup * a.rate))
    cpu2 = resource.getrusage(resource.RUSAGE_SELF)
    for conn in idle:
        conn.close()
    ms = [x * 1000 for x in res["lat"]]
    svc = [x * 1000 for x in res["svc"]]
    errors = sum(res["err"].values())
    span = max(1e-9, res["last"] - res["t0"])

    def r(v: float | None) -> float | None:
        return None if v is None else round(v, 2)

    return {
        "client": "openloop", "arrivals": a.arrivals, "offered_rps": a.rate, "seconds": a.seconds,
        "requests": res["n"], "ok": len(ms), "errors": errors, "error_kinds": dict(res["err"]),
        "achieved_rps": round(len(ms) / span, 1),
        "p50_ms": r(percentile(ms, 50)), "p90_ms": r(percentile(ms, 90)), "p99_ms": r(percentile(ms, 99)),
        "p999_ms": r(percentile(ms, 99.9)), "max_ms": r(max(ms) if ms else None),
        "mean_ms": r(sum(ms) / len(ms) if ms else None),
        "service_p50_ms": r(percentile(svc, 50)), "service_p99_ms": r(percentile(svc, 99)),
        "late_sends": res["late"], "worst_send_lag_ms": round(res["lag_max"] * 1000, 2),
        "connections_opened": opened[0],
        "client_cpu_s": round(cpu2.ru_utime + cpu2.ru_stime - cpu1.ru_utime - cpu1.ru_stime, 3),
        "warmup_client_cpu_s": round(cpu1.ru_utime + cpu1.ru_stime - cpu0.ru_utime - cpu0.ru_stime, 3),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--base", required=True, help="http://host:port")
    ap.add_argument("--paths", required=True, help="file of request paths (path?query), one a line, cycled")
    ap.add_argument("--rate", type=float, required=True, help="requests per second (scheduled)")
    ap.add_argument("--seconds", type=float, default=20.0, help="measured schedule length")
    ap.add_argument("--warmup", type=float, default=2.0, help="seconds at the same rate before measuring (not recorded)")
    ap.add_argument("--auth", default="", help="Authorization header value")
    ap.add_argument("--connections", type=int, default=64, help="most connections open at once")
    ap.add_argument("--arrivals", choices=("fixed", "poisson"), default="fixed")
    ap.add_argument("--timeout", type=float, default=10.0, help="seconds an answer may take after the schedule ends")
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    if a.rate <= 0 or a.seconds <= 0:
        ap.error("--rate and --seconds must be positive")
    try:
        import uvloop  # type: ignore[import-not-found]
    except ImportError:
        result = asyncio.run(run(a))
    else:
        result = uvloop.run(run(a))
    print(json.dumps(result))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
