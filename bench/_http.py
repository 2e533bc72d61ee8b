"""A lean HTTP/1.1 load client: asyncio streams, one keep-alive connection per simulated client,
requests serialised to bytes before the clock starts.

On a 2-core machine the client shares the CPU with the server and the database, so it must cost
as little as possible per request; `HttpRun.client_cpu` reports what it did cost (the process CPU
time spent while the run lasted), so the bench can show that the client is not the bottleneck.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

try:  # the server's event loop; also the cheapest for the client
    import uvloop
except ImportError:  # pragma: no cover - uvloop ships with uvicorn[standard]
    uvloop = None


def request_bytes(
    base: str,
    method: str,
    path: str,
    *,
    token: str | None = None,
    body: Any = None,
    headers: dict[str, str] | None = None,
) -> bytes:
    host = urlsplit(base).netloc
    payload = b"" if body is None else json.dumps(body, separators=(",", ":")).encode()
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"]
    if token is not None:
        lines.append(f"Authorization: Bearer {token}")
    for name, value in (headers or {}).items():
        lines.append(f"{name}: {value}")
    if body is not None:
        lines.append("Content-Type: application/json")
    lines.append(f"Content-Length: {len(payload)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + payload


class HttpError(RuntimeError):
    pass


async def _exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, raw: bytes
) -> tuple[int, bytes]:
    writer.write(raw)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    lower = head.lower()
    at = lower.find(b"\r\ncontent-length:")
    if at < 0:
        raise HttpError("response without Content-Length: " + head.decode(errors="replace")[:200])
    end = lower.find(b"\r\n", at + 2)
    length = int(lower[at + 17 : end])
    body = await reader.readexactly(length) if length else b""
    return status, body


@dataclass
class HttpRun:
    seconds: float
    latencies: list[float]
    client_cpu: float  # CPU seconds the client process used during the run
    statuses: dict[int, int]
    last_body: bytes


async def _run(base: str, plans: Sequence[Sequence[bytes]], expect: int) -> HttpRun:
    parts = urlsplit(base)
    conns = [await asyncio.open_connection(parts.hostname, parts.port) for _ in plans]
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    last = [b""]

    async def client(i: int) -> None:
        reader, writer = conns[i]
        for raw in plans[i]:
            t0 = time.perf_counter()
            status, body = await _exchange(reader, writer, raw)
            latencies.append(time.perf_counter() - t0)
            statuses[status] = statuses.get(status, 0) + 1
            if status != expect:
                raise HttpError(f"HTTP {status}: {body[:300].decode(errors='replace')}")
            last[0] = body

    cpu0, t0 = time.process_time(), time.perf_counter()
    try:
        await asyncio.gather(*(client(i) for i in range(len(plans))))
    finally:
        seconds, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        for _, writer in conns:
            writer.close()
    return HttpRun(seconds, latencies, cpu, statuses, last[0])


def run(base: str, plans: Sequence[Sequence[bytes]], *, expect: int) -> HttpRun:
    """Send each plan's requests in order on its own connection, all plans at once."""
    if uvloop is not None:
        return uvloop.run(_run(base, plans, expect))
    return asyncio.run(_run(base, plans, expect))


def fetch(base: str, raw: bytes, *, expect: int = 200) -> tuple[float, bytes]:
    """One request on a fresh connection: (seconds, body)."""
    result = run(base, [[raw]], expect=expect)
    return result.latencies[0], result.last_body
