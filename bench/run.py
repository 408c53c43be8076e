"""Switchboard's own benchmark: what the proxy adds over hitting the same fake upstream directly.

    python bench/run.py [--quick] [--concurrency 50 200] [--duration 8] [--repeats 1] [--chunks 100]

Starts bench/upstream.py (fake OpenAI) and `python manage.py serve` (fresh SWITCHBOARD_DATA_DIR,
recording on) each in its own process group, then measures with a captured Claude Code body
(tests/fixtures/claude-code/main_turn.json, ~80 KB) and a small one (background_title.json, ~2 KB):
added latency (non-stream, c=1), added time to first token (stream, c=1, upstream drips chunks 2 ms
apart), streams/s and p99 at each concurrency, proxy CPU ms per stream (utime+stime of its process
tree), peak RSS (VmHWM), errors (every response is parsed and checked), and choose_target over 100
rules. Prints a table; writes JSON to bench/results/.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path[:0] = [str(BENCH), str(ROOT)]
import procstat  # noqa: E402  (sibling modules of this script)
import upstream  # noqa: E402  (the expected reply text and tool arguments)
from bodies import anthropic_to_openai, fixture  # noqa: E402

API_KEY = "sk-bench-0000"
HEADERS = {
    "content-type": "application/json",
    "x-api-key": API_KEY,
    "anthropic-version": "2023-06-01",
    "user-agent": "claude-cli/2.1.197 (external, cli)",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


# --- checking every response ---------------------------------------------------------------------


def check_anthropic(raw: bytes, stream: bool, mode: str, chunks: int) -> str:
    """'' when `raw` is a complete, valid Anthropic answer carrying the upstream's reply, else why not."""
    if not stream:
        msg = orjson.loads(raw)
        if msg.get("type") != "message":
            return f"not a message: {raw[:200]!r}"
        blocks = msg["content"]
        if mode == "tool":
            tool = [b for b in blocks if b["type"] == "tool_use"]
            ok = (
                tool
                and tool[0]["input"] == orjson.loads(upstream.tool_args(chunks))
                and msg["stop_reason"] == "tool_use"
            )
            return "" if ok else f"tool_use missing or wrong: {blocks!r:.200}"
        text = "".join(b.get("text", "") for b in blocks if b["type"] == "text")
        return (
            "" if text == upstream.TEXT and msg["stop_reason"] == "end_turn" else f"wrong text: {text[:80]!r}"
        )
    events: list[tuple[str, Any]] = []
    for block in raw.replace(b"\r\n", b"\n").split(b"\n\n"):
        name, data = "", None
        for line in block.split(b"\n"):
            if line.startswith(b"event:"):
                name = line[6:].strip().decode()
            elif line.startswith(b"data:"):
                data = orjson.loads(line[5:])
        if name:
            events.append((name, data))
    if not events or events[0][0] != "message_start" or events[-1][0] != "message_stop":
        names = [e[0] for e in events]
        return f"stream not message_start..message_stop: {names[:2]}..{names[-2:]}"
    deltas = [d["delta"] for n, d in events if n == "content_block_delta"]
    if mode == "tool":
        args = "".join(d.get("partial_json", "") for d in deltas)
        return (
            ""
            if args and orjson.loads(args) == orjson.loads(upstream.tool_args(chunks))
            else f"bad tool args {args[:80]!r}"
        )
    text = "".join(d.get("text", "") for d in deltas)
    return "" if text == upstream.TEXT else f"wrong streamed text: {text[:80]!r}"


def check_openai(raw: bytes, stream: bool) -> str:
    if stream:
        return "" if raw.rstrip().endswith(b"data: [DONE]") else "stream without [DONE]"
    return "" if orjson.loads(raw).get("choices") else "no choices"


# --- load ----------------------------------------------------------------------------------------


class Target:
    """One endpoint + body: the proxy (Anthropic body) or the upstream directly (OpenAI body)."""

    def __init__(self, kind: str, base: str, body: dict[str, Any], stream: bool) -> None:
        self.kind, self.stream = kind, stream
        if kind == "proxy":
            self.url = base + "/v1/messages"
            self.data = orjson.dumps({**body, "stream": stream})
            self.first = b"content_block_delta"
        else:
            oa = anthropic_to_openai({**body, "stream": stream})
            self.url = base + "/v1/chat/completions"
            self.data = orjson.dumps(oa)
            self.first = b'"delta":{"content"'  # the first content chunk, after the role chunk
        self.headers = (
            HEADERS if kind == "proxy" else {"content-type": "application/json", "authorization": "Bearer x"}
        )


async def one(session: aiohttp.ClientSession, t: Target, mode: str, chunks: int, out: dict[str, Any]) -> None:
    t0 = time.perf_counter()
    ttft = None
    try:
        async with session.post(t.url, data=t.data, headers=t.headers) as r:
            if t.stream and r.status == 200:
                buf = bytearray()
                async for piece in r.content.iter_any():
                    buf += piece
                    if ttft is None and t.first in buf:
                        ttft = time.perf_counter() - t0
                raw = bytes(buf)
            else:
                raw = await r.read()
            status = r.status
        lat = time.perf_counter() - t0
        if status != 200:
            why = f"HTTP {status}: {raw[:200]!r}"
        elif t.kind == "proxy":
            why = check_anthropic(raw, t.stream, mode, chunks)
        else:
            why = check_openai(raw, t.stream)
    except Exception as exc:
        why, lat = f"{type(exc).__name__}: {exc}", time.perf_counter() - t0
    if why:
        out["errors"] += 1
        if len(out["error_samples"]) < 3:
            out["error_samples"].append(why)
    else:
        out["lat"].append(lat * 1000)
        if ttft is not None:
            out["ttft"].append(ttft * 1000)


async def load(
    t: Target,
    concurrency: int,
    duration: float = 30,
    mode: str = "text",
    chunks: int = 100,
    pids: list[int] | None = None,
    n: int | None = None,
) -> dict[str, Any]:
    """`concurrency` workers back to back for `duration` s (or until `n` requests in all). `mode` and
    `chunks` say what the upstream answers (to check the replies); `pids`: the proxy, to measure."""
    out: dict[str, Any] = {"lat": [], "ttft": [], "errors": 0, "error_samples": []}
    conn = aiohttp.TCPConnector(limit=0, force_close=False)
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(
        connector=conn, timeout=timeout, skip_auto_headers=["User-Agent"]
    ) as session:
        cpu0, me0, t0 = procstat.tree_cpu_s(pids), time.process_time(), time.perf_counter()
        deadline = t0 + duration
        left = [n if n is not None else 1 << 30]

        async def worker() -> None:
            while time.perf_counter() < deadline and left[0] > 0:
                left[0] -= 1
                await one(session, t, mode, chunks, out)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - t0
        cpu1, me1 = procstat.tree_cpu_s(pids), time.process_time()
    done = len(out["lat"])
    res = {
        "target": t.kind,
        "stream": t.stream,
        "c": concurrency,
        "mode": mode,
        "ok": done,
        "errors": out["errors"],
        "error_samples": out["error_samples"],
        "elapsed_s": round(elapsed, 3),
        "rps": done / elapsed,
        "lat_p50": pct(out["lat"], 50),
        "lat_p95": pct(out["lat"], 95),
        "lat_p99": pct(out["lat"], 99),
        "ttft_p50": pct(out["ttft"], 50),
        "ttft_p95": pct(out["ttft"], 95),
        "client_cpu_pct": 100 * (me1 - me0) / elapsed,
    }
    if pids:
        res["proxy_cpu_ms_per_req"] = 1000 * (cpu1 - cpu0) / max(1, done + out["errors"])
        res["proxy_cpu_pct"] = 100 * (cpu1 - cpu0) / elapsed
    return res


# --- processes -----------------------------------------------------------------------------------


class Servers:
    def __init__(self, logdir: Path) -> None:
        self.up_port, self.proxy_port = free_port(), free_port()
        self.up_base = f"http://127.0.0.1:{self.up_port}"
        self.proxy_base = f"http://127.0.0.1:{self.proxy_port}"
        self.data_dir = tempfile.mkdtemp(prefix="switchboard-bench-")
        self.log = open(logdir / "proxy.log", "ab")  # noqa: SIM115  (closed in stop)
        self.up = subprocess.Popen(
            [sys.executable, str(BENCH / "upstream.py"), "--port", str(self.up_port)],
            stdout=self.log,
            stderr=self.log,
            start_new_session=True,
        )
        env = {
            k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "SWITCHBOARD_", "OPENAI_"))
        }
        env |= {
            "SWITCHBOARD_DATA_DIR": self.data_dir,
            "OPENAI_BASE_URL": self.up_base + "/v1",
            "OPENAI_API_KEY": "x",
        }
        self.proxy = subprocess.Popen(
            [sys.executable, "manage.py", "serve", "--port", str(self.proxy_port)],
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=self.log,
            start_new_session=True,
        )

    def proxy_pids(self) -> list[int]:
        return procstat.proc_tree(self.proxy.pid)

    async def configure(self, chunks: int, delay_ms: float, mode: str) -> None:
        async with (
            aiohttp.ClientSession() as s,
            s.post(
                self.up_base + "/_config", json={"chunks": chunks, "delay_ms": delay_ms, "mode": mode}
            ) as r,
        ):
            assert r.status == 200

    async def wait_ready(self, body: dict[str, Any], timeout: float = 120) -> None:
        t = Target("proxy", self.proxy_base, body, stream=False)
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proxy.poll() is not None:
                raise SystemExit(f"proxy exited with {self.proxy.returncode}; see {self.log.name}")
            res = await load(t, 1, duration=5, n=1)
            if res["ok"]:
                return
            await asyncio.sleep(0.5)
        raise SystemExit(f"proxy not ready after {timeout}s: {res['error_samples']}")

    def stop(self) -> None:
        for p in (self.proxy, self.up):
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
        for p in (self.proxy, self.up):
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        self.log.close()
        shutil.rmtree(self.data_dir, ignore_errors=True)


# --- the run -------------------------------------------------------------------------------------


async def bench(args: argparse.Namespace, results: dict[str, Any]) -> None:
    big, small = fixture("main_turn"), fixture("background_title")
    srv = Servers(BENCH / "results")
    try:
        await srv.wait_ready(small)
        pids = srv.proxy_pids()
        cpu0 = procstat.tree_cpu_s(pids)
        await asyncio.sleep(2)  # what the idle proxy costs, to read the per-stream figures against
        results["proxy_idle_cpu_pct"] = 100 * (procstat.tree_cpu_s(pids) - cpu0) / 2
        runs: list[dict[str, Any]] = results["runs"]

        async def run(label: str, kind: str, body: dict[str, Any], stream: bool, c: int, **kw: Any) -> None:
            base = srv.proxy_base if kind == "proxy" else srv.up_base
            pid_list = pids if kind == "proxy" else None
            r = await load(Target(kind, base, body, stream), c, chunks=args.chunks, pids=pid_list, **kw)
            runs.append(r | {"label": label})
            cpu = r.get("proxy_cpu_ms_per_req", float("nan"))
            print(
                f"  {label:<18} {kind:<6} ok={r['ok']:<6} err={r['errors']:<3} rps={r['rps']:8.1f} "
                f"p50={r['lat_p50']:8.2f} p99={r['lat_p99']:8.2f} ttft50={r['ttft_p50']:7.2f} "
                f"cpu/req={cpu:6.2f}ms client={r['client_cpu_pct']:4.0f}%",
                file=sys.stderr,
                flush=True,
            )

        # correctness smoke: text and tool, stream and not, big body
        for mode in ("text", "tool"):
            await srv.configure(args.chunks, 0, mode)
            for stream in (False, True):
                await run(f"smoke/{mode}/{'s' if stream else 'ns'}", "proxy", big, stream, 1, mode=mode, n=3)
        await srv.configure(args.chunks, 0, "text")
        await run("warmup", "proxy", big, True, 20, duration=min(3, args.duration))
        await run("warmup", "direct", big, True, 20, duration=1)

        for rep in range(args.repeats):
            print(f"# repeat {rep + 1}/{args.repeats}", file=sys.stderr)
            await srv.configure(args.chunks, 0, "text")
            for name, body in (("ns_c1", big), ("ns_c1_small", small)):
                for kind in ("direct", "proxy"):
                    await run(name, kind, body, False, 1, duration=args.duration)
            await srv.configure(args.chunks, args.drip_ms, "text")
            for kind in ("direct", "proxy"):
                await run("s_c1", kind, big, True, 1, duration=args.duration)
            await srv.configure(args.chunks, 0, "text")
            for c in args.concurrency:
                for kind in ("direct", "proxy"):
                    await run(f"s_c{c}", kind, big, True, c, duration=args.duration)
            await srv.configure(args.chunks, 0, "tool")
            c = args.concurrency[0]
            await run(f"s_tool_c{c}", "proxy", big, True, c, duration=args.duration, mode="tool")

        results["peak_rss_mb"] = procstat.tree_kb(srv.proxy_pids(), "VmHWM") / 1024
        results["proxy_pids"] = srv.proxy_pids()
    finally:
        srv.stop()


def summarise(results: dict[str, Any], concurrency: list[int]) -> dict[str, Any]:
    """Medians over repeats of each figure; 'added' = proxy minus direct of the same repeat."""

    def runs(label: str, kind: str) -> list[dict[str, Any]]:
        return [r for r in results["runs"] if r["label"] == label and r["target"] == kind]

    def added(label: str, key: str) -> float:
        pairs = zip(runs(label, "proxy"), runs(label, "direct"), strict=True)
        return statistics.median(p[key] - d[key] for p, d in pairs)

    def med(label: str, key: str, kind: str = "proxy") -> float:
        return statistics.median(r[key] for r in runs(label, kind))

    s: dict[str, Any] = {
        "added_latency_p50_ms": added("ns_c1", "lat_p50"),
        "added_latency_p95_ms": added("ns_c1", "lat_p95"),
        "added_latency_small_p50_ms": added("ns_c1_small", "lat_p50"),
        "added_ttft_p50_ms": added("s_c1", "ttft_p50"),
        "proxy_cpu_ms_ns_c1": med("ns_c1", "proxy_cpu_ms_per_req"),
    }
    for c in concurrency:
        s[f"streams_per_s_c{c}"] = med(f"s_c{c}", "rps")
        s[f"direct_streams_per_s_c{c}"] = med(f"s_c{c}", "rps", "direct")
        s[f"p99_ms_c{c}"] = med(f"s_c{c}", "lat_p99")
        s[f"cpu_ms_per_stream_c{c}"] = med(f"s_c{c}", "proxy_cpu_ms_per_req")
        s[f"client_cpu_pct_c{c}"] = med(f"s_c{c}", "client_cpu_pct")
    tool = [r for r in results["runs"] if r["label"].startswith("s_tool")]
    s["cpu_ms_per_tool_stream"] = statistics.median(r["proxy_cpu_ms_per_req"] for r in tool)
    s["errors"] = sum(r["errors"] for r in results["runs"] if r["target"] == "proxy")
    s["peak_rss_mb"] = results["peak_rss_mb"]
    return s


def table(s: dict[str, Any], results: dict[str, Any], concurrency: list[int]) -> str:
    rows = [
        ("added latency p50, non-stream c=1, 80 KB body (ms)", s["added_latency_p50_ms"]),
        ("added latency p95, non-stream c=1, 80 KB body (ms)", s["added_latency_p95_ms"]),
        ("added latency p50, non-stream c=1, 2 KB body (ms)", s["added_latency_small_p50_ms"]),
        ("added TTFT p50, stream c=1, 2 ms drip (ms)", s["added_ttft_p50_ms"]),
        ("proxy CPU per request, non-stream c=1 (ms)", s["proxy_cpu_ms_ns_c1"]),
    ]
    for c in concurrency:
        rows += [
            (f"streams/s c={c} (direct: {s[f'direct_streams_per_s_c{c}']:.0f})", s[f"streams_per_s_c{c}"]),
            (f"p99 c={c} (ms)", s[f"p99_ms_c{c}"]),
            (f"proxy CPU per stream c={c} (ms)", s[f"cpu_ms_per_stream_c{c}"]),
            (f"load generator CPU c={c} (% of one core)", s[f"client_cpu_pct_c{c}"]),
        ]
    rows += [
        (f"proxy CPU per tool-call stream c={concurrency[0]} (ms)", s["cpu_ms_per_tool_stream"]),
        ("errors (proxy, all runs incl. smoke)", s["errors"]),
        ("idle proxy CPU (% of one core)", results["proxy_idle_cpu_pct"]),
        ("peak RSS of the proxy tree, VmHWM (MB)", s["peak_rss_mb"]),
        ("choose_target over 100 rules, per decision (us)", results["route_decision_us"]),
    ]
    width = max(len(r[0]) for r in rows)
    return "\n".join(f"{name:<{width}}  {value:10.2f}" for name, value in rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="2 s per run, c=50 only: a smoke of the benchmark")
    ap.add_argument("--concurrency", type=int, nargs="+", default=[50, 200])
    ap.add_argument("--duration", type=float, default=8, help="seconds per timed run")
    ap.add_argument("--repeats", type=int, default=1, help="rounds of all timed runs; figures are medians")
    ap.add_argument("--chunks", type=int, default=100, help="content chunks per upstream stream")
    ap.add_argument(
        "--drip-ms", type=float, default=2, help="upstream delay between chunks for the c=1 TTFT run"
    )
    args = ap.parse_args()
    if args.quick:
        args.duration, args.concurrency, args.repeats = 2, [50], 1
    try:
        import uvloop  # optional

        uvloop.install()
    except ImportError:
        pass
    (BENCH / "results").mkdir(exist_ok=True)
    from routebench import route_decision_us

    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    results: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime()),
        "args": vars(args),
        "cpus": os.cpu_count(),
        "loadavg_start": os.getloadavg(),
        "runs": [],
    }
    results["route_decision_us"] = route_decision_us()
    asyncio.run(bench(args, results))
    results["loadavg_end"] = os.getloadavg()
    results["client_maxrss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    results["summary"] = summarise(results, args.concurrency)
    out = BENCH / "results" / f"bench-{stamp}.json"
    out.write_text(json.dumps(results, indent=1, default=str))
    print(
        f"\nSwitchboard benchmark {results['date']}, {args.duration:g} s x {args.repeats}, recording on, "
        f"{os.cpu_count()} cores, load avg {results['loadavg_start'][0]:.1f} at start"
    )
    print(table(results["summary"], results, args.concurrency))
    print(f"JSON: {out}")
    sys.exit(1 if results["summary"]["errors"] else 0)


if __name__ == "__main__":
    main()
