"""The memory one large POST /statements costs, and what LRS_MAX_STATEMENTS_PER_REQUEST bounds.

Starts ``lrs up`` on a fresh data directory (the pipeline off unless ``--pipeline``: this is about
the LRS), then POSTs one batch of each size in ``--sizes``, ascending, and prints after each the
resident memory (RSS) of the server process, its peak (VmHWM), the embedded PostgreSQL's
processes, and the whole process tree. Python keeps memory it once used, so the server's figure
after a size is what the largest request so far needed. Last, one statement of as many bytes as
the largest batch, its extension an array of small numbers: what parsing alone costs, which
LRS_MAX_BODY_BYTES bounds. Prints figures; asserts nothing.

    python -m benchmarks.request_memory                       # sizes 1,000 … 20,000, default cap
    python -m benchmarks.request_memory --cap 100000          # no effective cap: the cost unbounded
"""

from __future__ import annotations

import argparse
import http.client
import tempfile
from base64 import b64encode
from pathlib import Path

import orjson
import psutil

from lrs.runtime import stop_process
from lrs.settings import ServerSettings

from .ingest import Population, spawn

KEY, SECRET = "memory", "memory-secret"


def _mb(value: int) -> float:
    return value / (1024 * 1024)


def _peak_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def memory(pid: int) -> dict[str, float]:
    """Memory (MB) of the server process (RSS, and its peak), of PostgreSQL's processes (private
    memory: shared buffers, which every backend maps, are not counted per request), and of the
    whole tree (proportional set size: shared pages split among the processes sharing them)."""
    server = psutil.Process(pid)
    tree = [p for p in (server, *server.children(recursive=True)) if p.is_running()]
    full = {p.pid: p.memory_full_info() for p in tree}
    return {
        "server": _mb(full[pid].rss),
        "server peak": _peak_mb(pid),
        "postgres": _mb(sum(full[p.pid].uss for p in tree if "postgres" in p.name())),
        "tree": _mb(sum(info.pss for info in full.values())),
    }


def post(port: int, body: bytes) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    try:
        connection.request(
            "POST",
            "/xapi/statements",
            body,
            {
                "Authorization": "Basic " + b64encode(f"{KEY}:{SECRET}".encode()).decode(),
                "X-Experience-API-Version": "1.0.3",
                "Content-Type": "application/json",
            },
        )
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def row(label: str, figures: dict[str, float]) -> str:
    return (
        f"{label:<34} server {figures['server']:6.0f} MB (peak {figures['server peak']:6.0f})"
        f"   PostgreSQL private {figures['postgres']:6.0f} MB   tree (PSS) {figures['tree']:6.0f} MB"
    )


def measure(port: int, pid: int, label: str, body: bytes) -> None:
    status, answer = post(port, body)
    print(row(f"{label}: {status}", memory(pid)))
    if status >= 400:
        print(f"{'':<34} {orjson.loads(answer)['error']['message']}")


def run(sizes: list[int], cap: int, pipeline: bool, port: int, data_dir: Path) -> None:
    population = Population(seed=1)
    env = {"LRS_MAX_STATEMENTS_PER_REQUEST": str(cap), "LRS_PIPELINE": str(pipeline).lower()}
    process = spawn(port, data_dir, KEY, SECRET, 1, **env)
    try:
        print(f"lrs up (pid {process.pid}), LRS_MAX_STATEMENTS_PER_REQUEST={cap:,}, pipeline {pipeline}")
        post(port, orjson.dumps(population.statement()))  # warm: first connections, caches
        print(row("after start-up and one statement", memory(process.pid)))
        largest = 0
        for size in sorted(sizes):
            body = orjson.dumps([population.statement() for _ in range(size)])
            largest = max(largest, len(body))
            measure(port, process.pid, f"POST {size:>6,} ({_mb(len(body)):4.1f} MB)", body)
        # as many bytes as the largest batch, in one statement of small values: parsing alone
        values = orjson.dumps({**population.statement(), "result": {"extensions": {
            "https://bench.example/values": [1] * (largest // 2)}}})  # fmt: skip
        measure(port, process.pid, f"POST 1 of {largest // 2:,} values", values)
    finally:
        stop_process(process, 60)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--sizes", default="1000,5000,10000,20000", help="statements per POST, comma-separated"
    )
    parser.add_argument(
        "--cap",
        type=int,
        default=ServerSettings().max_statements_per_request,
        help="LRS_MAX_STATEMENTS_PER_REQUEST",
    )
    parser.add_argument("--pipeline", action="store_true", help="also run the broker and a pipeline worker")
    parser.add_argument("--port", type=int, default=18090)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="lrs-memory-") as data_dir:
        run([int(s) for s in args.sizes.split(",")], args.cap, args.pipeline, args.port, Path(data_dir))


if __name__ == "__main__":
    main()
