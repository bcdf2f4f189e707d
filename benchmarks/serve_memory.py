"""Server memory over identical heavy rounds of ``POST /generate`` (issue 19).

A server process (``rnnkit serve CKPT --threads 1 --slots S``) is started on a free port of
127.0.0.1, and ``--rounds`` identical rounds are sent, each ``--concurrency`` simultaneous
requests (one connection each) of ``--max-tokens`` tokens. After each round, once the
server is idle, its resident memory (VmRSS of /proc/PID/status) is read. What must hold:
after round 2, RSS after every later round stays within 5% of round 2's.

While each round runs, ``/health`` is timed every 0.5 s: it must answer at once under load.

Without ``--checkpoint`` an untrained checkpoint of the ``configs/shakespeare_char.yaml``
model (2x384 LSTM on tinyshakespeare's characters) is written to a temporary directory
(memory does not depend on what the weights learnt).

    python benchmarks/serve_memory.py --rounds 5 --concurrency 200 --max-tokens 512 \\
        --out benchmarks/results/serve_memory.json

Every request loop is bounded: a round gives up after ``--round-timeout`` seconds, the
whole run after ``--time-limit``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

HOST = "127.0.0.1"  # never any other address


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def shakespeare_checkpoint(out: Path, chars: str | None = None) -> Path:
    """An untrained checkpoint of configs/shakespeare_char.yaml's model; its vocabulary is
    tinyshakespeare's characters, or ``chars`` (quicker: the corpus is not read)."""
    import yaml

    from rnnkit import __version__
    from rnnkit.data import Vocab, load_corpus
    from rnnkit.models.lm import LanguageModel
    from rnnkit.train.checkpoint import write_checkpoint
    from rnnkit.train.config import build_run_config, to_dict

    recipe = Path(__file__).resolve().parents[1] / "configs" / "shakespeare_char.yaml"
    cfg = build_run_config(yaml.safe_load(recipe.read_text()))
    if chars is None:
        vocab = load_corpus("tinyshakespeare", download=False).vocab
    else:
        vocab = Vocab.build(sorted(set(chars)), specials=(), level="char")
    model = LanguageModel(cfg.model, len(vocab))
    return write_checkpoint(out, model_state=model.state_dict(), config=to_dict(cfg), task="lm",
                            version=__version__, write_assets=lambda d: vocab.save(d / "vocab.json"))


PROMPT_TEXT = "ROMEO:\nBut, soft! what light through yonder window breaks?\nIt is the east, and Juliet is the sun.\n"


def prompt_of(n: int) -> str:
    """'ROMEO:' (n <= 6), or lines of Shakespeare cut at ``n`` characters."""
    if n <= 6:
        return "ROMEO:"[:n]
    return (PROMPT_TEXT * (n // len(PROMPT_TEXT) + 1))[:n]


class ServerProcess:
    """``rnnkit serve`` in a subprocess on 127.0.0.1; ``close()`` stops it."""

    def __init__(self, ckpt: str | Path, *extra: str, env: dict | None = None, start_timeout: float = 120):
        self.port = _free_port()
        self.url = f"http://{HOST}:{self.port}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "rnnkit", "serve", str(ckpt), "--host", HOST, "--port", str(self.port),
             *extra], env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})},
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        deadline = time.time() + start_timeout
        while True:
            try:
                if httpx.get(self.url + "/health", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if self.proc.poll() is not None or time.time() > deadline:
                self.close()
                raise RuntimeError(f"server did not start: {self.proc.stderr.read()[-2000:]}")
            time.sleep(0.3)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


async def _round(url: str, n: int, body: dict, timeout: float) -> dict:
    """``n`` simultaneous requests (``n`` connections); /health timed every 0.5 s meanwhile."""
    limits = httpx.Limits(max_connections=n + 1, max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=url, timeout=timeout, limits=limits) as c:
        health: list[float] = []
        done = asyncio.Event()

        async def probe() -> None:
            while not done.is_set():
                t0 = time.perf_counter()
                r = await c.get("/health")
                health.append(time.perf_counter() - t0 if r.status_code == 200 else float("inf"))
                try:
                    await asyncio.wait_for(done.wait(), 0.5)
                except asyncio.TimeoutError:
                    pass

        async def one(i: int) -> int:
            r = await c.post("/generate", json={**body, "seed": i})
            return r.status_code

        t0 = time.perf_counter()
        prober = asyncio.create_task(probe())
        try:
            codes = await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(n)),
                                                          return_exceptions=True), timeout)
        finally:
            done.set()
            await prober
        wall = time.perf_counter() - t0
    errors = sum(1 for x in codes if x != 200)
    return {"wall_s": round(wall, 2), "errors": errors, "health_max_s": round(max(health), 4),
            "health_probes": len(health)}


def measure(url: str, pid: int, *, rounds: int, concurrency: int, max_tokens: int,
            round_timeout: float, time_limit: float, prompt: str = "ROMEO:", settle_s: float = 1.0,
            log=print) -> list[dict]:
    """RSS (MB) of ``pid`` after each of ``rounds`` identical rounds (see the module docstring)."""
    body = {"prompt": prompt, "max_tokens": max_tokens, "temperature": 0.8, "top_k": 40}
    out = [{"round": 0, "rss_mb": round(rss_mb(pid), 1)}]
    t_end = time.time() + time_limit
    for k in range(1, rounds + 1):
        left = t_end - time.time()
        if left <= 0:
            raise TimeoutError(f"time limit {time_limit} s reached before round {k}")
        cpu0 = _cpu_s(pid)
        r = asyncio.run(_round(url, concurrency, body, min(round_timeout, left)))
        time.sleep(settle_s)  # responses sent; let the server's threads finish their clean-up
        r.update(round=k, rss_mb=round(rss_mb(pid), 1), server_cpu_s=round(_cpu_s(pid) - cpu0, 1))
        out.append(r)
        log(json.dumps(r))
    return out


def verdict(rows: list[dict], tolerance: float = 0.05) -> dict:
    """Whether RSS after rounds 3.. stays within ``tolerance`` of RSS after round 2."""
    base = rows[2]["rss_mb"]
    later = [r["rss_mb"] for r in rows[3:]]
    worst = max(abs(x - base) / base for x in later) if later else 0.0
    return {"reference_round": 2, "reference_rss_mb": base, "worst_relative_change": round(worst, 4),
            "tolerance": tolerance, "holds": worst <= tolerance}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", help="LM checkpoint (default: an untrained shakespeare_char model)")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--concurrency", type=int, default=200)
    p.add_argument("--max-tokens", type=int, default=512)
    p.add_argument("--slots", type=int, default=2)
    p.add_argument("--prompt-chars", type=int, default=6,
                   help="prompt length: 'ROMEO:' (6, the default) or lines of Shakespeare up to N characters")
    p.add_argument("--round-timeout", type=float, default=900.0, help="seconds per round at most")
    p.add_argument("--time-limit", type=float, default=3600.0, help="seconds for all rounds at most")
    p.add_argument("--serve-arg", action="append", default=[], help="extra `rnnkit serve` argument")
    p.add_argument("--env", action="append", default=[], metavar="K=V", help="server environment")
    p.add_argument("--out", help="result JSON (e.g. benchmarks/results/serve_memory.json)")
    a = p.parse_args(argv)
    from rnnkit.bench.machine import loadavg_now, machine_info

    with tempfile.TemporaryDirectory(prefix="rnnkit-bench-") as tmp:
        ckpt = a.checkpoint or shakespeare_checkpoint(Path(tmp) / "ckpt")
        env = dict(kv.split("=", 1) for kv in a.env)
        server = ServerProcess(ckpt, "--threads", "1", "--slots", str(a.slots), "--max-tokens",
                               str(max(a.max_tokens, 1000)), *a.serve_arg, env=env)
        t0 = time.time()
        try:
            info, load0 = machine_info(), loadavg_now()
            rows = measure(server.url, server.pid, rounds=a.rounds, concurrency=a.concurrency,
                           max_tokens=a.max_tokens, round_timeout=a.round_timeout, time_limit=a.time_limit,
                           prompt=prompt_of(a.prompt_chars))
        finally:
            server.close()
    result = {"benchmark": "serve_memory", "checkpoint": a.checkpoint or "untrained configs/shakespeare_char.yaml model",
              "command": "python benchmarks/serve_memory.py " + " ".join(argv if argv is not None else sys.argv[1:]),
              "server_env": env, "slots": a.slots, "prompt_chars": a.prompt_chars, "concurrency": a.concurrency, "max_tokens": a.max_tokens,
              "machine": info, "loadavg_start": load0, "loadavg_end": loadavg_now(),
              "wall_seconds": round(time.time() - t0, 1), "date": time.strftime("%Y-%m-%d"),
              "rounds": rows, **({"verdict": verdict(rows)} if len(rows) > 3 else {})}
    print(json.dumps(result.get("verdict", {})))
    if a.out:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
