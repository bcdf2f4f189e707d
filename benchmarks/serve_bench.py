"""Throughput and latency of ``rnnkit serve`` over real HTTP on 127.0.0.1, at small concurrency.

For each variant (float, int8) a server process is started on a free loopback port
(``rnnkit serve CKPT --threads 1 --slots S``), warmed up, and then ``--requests`` POST
/generate requests (``--max-tokens`` tokens each, seeded sampling) are sent by
``--concurrency`` client threads.  Recorded per variant: requests/s and tokens/s (wall
clock), latency p50/p90/p99/max, the server's own CPU time per request (from
/proc/PID/stat: what a request costs, independent of other load on the machine), and the
server's RSS before and after.  The machine description and load average are stored with
the numbers (``rnnkit.bench.machine``).

    python benchmarks/serve_bench.py --checkpoint runs/exp_shakespeare_char/best \\
        --concurrency 4 --requests 200 --max-tokens 50 --out benchmarks/results/serve_cpu.json
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _proc_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    k = min(len(xs) - 1, max(0, round(q / 100 * (len(xs) - 1))))
    return xs[k]


def bench_variant(ckpt: str, int8: bool, concurrency: int, requests: int, max_tokens: int, slots: int,
                  prompt: str) -> dict:
    port = _free_port()
    cmd = [sys.executable, "-m", "rnnkit", "serve", ckpt, "--port", str(port), "--threads", "1",
           "--slots", str(slots)] + (["--int8"] if int8 else [])
    proc = subprocess.Popen(cmd, env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 180
        while True:
            try:
                if httpx.get(url + "/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.time() > deadline:
                raise RuntimeError("server did not start")
            time.sleep(0.3)
        body = {"prompt": prompt, "max_tokens": max_tokens, "temperature": 0.8, "top_k": 40}
        with httpx.Client(base_url=url, timeout=120) as c:
            for i in range(2 * concurrency):
                assert c.post("/generate", json={**body, "seed": i}).status_code == 200
        rss0, cpu0 = _rss_mb(proc.pid), _proc_cpu_seconds(proc.pid)
        lat: list[float] = []
        errors = [0]
        lock = threading.Lock()
        counter = iter(range(requests))

        def worker() -> None:
            with httpx.Client(base_url=url, timeout=120) as c:
                while True:
                    with lock:
                        i = next(counter, None)
                    if i is None:
                        return
                    t0 = time.perf_counter()
                    r = c.post("/generate", json={**body, "seed": i})
                    dt = time.perf_counter() - t0
                    with lock:
                        lat.append(dt)
                        errors[0] += r.status_code != 200

        t0 = time.perf_counter()
        threads = [threading.Thread(target=worker) for _ in range(concurrency)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0
        cpu = _proc_cpu_seconds(proc.pid) - cpu0
        return {"variant": "int8" if int8 else "float", "requests": requests, "errors": errors[0],
                "concurrency": concurrency, "slots": slots, "max_tokens": max_tokens, "wall_seconds": wall,
                "requests_per_s": requests / wall, "tokens_per_s": requests * max_tokens / wall,
                "latency_ms": {"p50": 1e3 * _pct(lat, 50), "p90": 1e3 * _pct(lat, 90),
                               "p99": 1e3 * _pct(lat, 99), "max": 1e3 * max(lat),
                               "mean": 1e3 * statistics.mean(lat)},
                "server_cpu_ms_per_request": 1e3 * cpu / requests,
                "server_rss_mb": {"before": rss0, "after": _rss_mb(proc.pid)}}
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", default="runs/exp_shakespeare_char/best")
    p.add_argument("--concurrency", type=int, default=4)
    p.add_argument("--requests", type=int, default=200)
    p.add_argument("--max-tokens", type=int, default=50)
    p.add_argument("--slots", type=int, default=2)
    p.add_argument("--prompt", default="ROMEO:")
    p.add_argument("--variants", default="float,int8")
    p.add_argument("--out", default="benchmarks/results/serve_cpu.json")
    a = p.parse_args(argv)
    from rnnkit.bench.machine import loadavg_now, machine_info

    info = machine_info()
    load0 = loadavg_now()
    t0 = time.time()
    results = []
    for v in a.variants.split(","):
        r = bench_variant(a.checkpoint, v == "int8", a.concurrency, a.requests, a.max_tokens, a.slots, a.prompt)
        print(json.dumps(r), flush=True)
        results.append(r)
    out = {"benchmark": "serve_generate", "checkpoint": a.checkpoint, "endpoint": "/generate",
           "command": "python benchmarks/serve_bench.py " + " ".join(argv if argv is not None else sys.argv[1:]),
           "machine": info, "loadavg_start": load0, "loadavg_end": loadavg_now(),
           "wall_seconds": time.time() - t0, "date": time.strftime("%Y-%m-%d"), "results": results}
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
