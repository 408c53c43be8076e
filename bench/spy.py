"""Where the proxy's CPU goes under streaming load: py-spy on the proxy while run.py's load runs.

    pip install py-spy   # a tool for this script only, not a dependency of the project
    python bench/spy.py [--seconds 15] [--concurrency 50]

Starts the same fake upstream and `manage.py serve` as run.py, drives c streams (80 KB Claude Code body),
records the proxy with py-spy, then prints the top functions by own time and our own functions by total
time. The raw collapsed stacks go to bench/results/ (feed them to any flame graph tool).
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import sys
import time
from collections import Counter
from pathlib import Path

import run
from bodies import fixture

FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^():]*)(?::\d+)?\)$")


def _where(frame: str) -> str:
    """'func (path/to/file.py:12)' -> 'func (file.py)': one entry per function, not per line."""
    m = FRAME.match(frame)
    if not m:
        return frame
    path = m["file"].replace(str(run.ROOT) + "/", "")
    short = path.split("site-packages/")[-1]
    return f"{m['func']} ({short})"


def summarise(collapsed: Path, top: int = 15) -> str:
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        frames = [_where(f) for f in stack.split(";")[1:]]  # [0] is the process / thread name
        if not frames:
            continue
        samples += n
        own[frames[-1]] += n
        for f in set(frames):
            total[f] += n
    lines = [f"{samples} samples of the busy proxy; top {top} functions by own time:"]
    lines += [f"  {100 * n / samples:5.1f}%  {f}" for f, n in own.most_common(top)]
    ours = [(f, n) for f, n in total.most_common() if "(proxy/" in f or "(dashboard/" in f]
    lines.append(f"our functions by total time (incl. callees), top {top}:")
    lines += [f"  {100 * n / samples:5.1f}%  {f}" for f, n in ours[:top]]
    return "\n".join(lines)


async def profile(seconds: float, concurrency: int, out: Path) -> dict[str, object]:
    big, small = fixture("main_turn"), fixture("background_title")
    srv = run.Servers(run.BENCH / "results")
    try:
        await srv.wait_ready(small)
        await srv.configure(100, 0, "text")
        await run.load(run.Target("proxy", srv.proxy_base, big, True), 20, duration=2)  # warm-up
        spy = await asyncio.create_subprocess_exec(
            "py-spy", "record", "--pid", str(srv.proxy.pid), "--duration", str(int(seconds)),
            "--rate", "100", "--gil", "--nonblocking", "--format", "raw", "--output", str(out),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        target = run.Target("proxy", srv.proxy_base, big, True)
        res = await run.load(target, concurrency, duration=seconds + 1, pids=srv.proxy_pids())
        _, err = await spy.communicate()
        if spy.returncode:
            raise SystemExit(f"py-spy failed: {err.decode()[-500:]}")
        return res
    finally:
        srv.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=15)
    ap.add_argument("--concurrency", type=int, default=50)
    args = ap.parse_args()
    if not shutil.which("py-spy"):
        sys.exit("py-spy is not installed: pip install py-spy")
    (run.BENCH / "results").mkdir(exist_ok=True)
    out = run.BENCH / "results" / f"profile-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}.txt"
    res = asyncio.run(profile(args.seconds, args.concurrency, out))
    print(
        f"c={args.concurrency} stream: {res['rps']:.1f} streams/s, {res['errors']} errors, "
        f"{res['proxy_cpu_ms_per_req']:.2f} ms proxy CPU per stream (py-spy's pauses included)"
    )
    print(summarise(out))
    print(f"collapsed stacks: {out}")


if __name__ == "__main__":
    main()
