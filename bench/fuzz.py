"""The long fuzz run: `python bench/fuzz.py --cases 100000` (tests/fuzzing.py says what is checked).

Unlike the bounded run in the suite, it does not stop at the first failure: it counts every broken case
by where it broke, shows one input of each, and exits 1 if there was any. Spread over the four
strategies: mutated Claude Code requests, random requests, mutated upstream streams, random replies.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import traceback
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repo root, when run on its own
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "proxy.settings")

import django

django.setup()

from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from tests import fuzzing  # noqa: E402

# Share of the cases per strategy: requests are where client input arrives.
PLAN = (("mutated_request", 0.55), ("random_request", 0.25), ("stream", 0.15), ("reply", 0.05))


def run(kind: str, cases: int, failures: Counter[str], samples: dict[str, str]) -> int:
    strategies: dict[str, Any] = {
        "mutated_request": fuzzing.mutated_requests(),
        "random_request": fuzzing.random_requests(),
        "stream": fuzzing.mutated_streams(),
        "reply": fuzzing.JSON_VALUES,
    }
    seen = 0

    @settings(
        max_examples=cases,
        database=None,
        deadline=None,
        phases=[Phase.generate],  # no shrinking: every case counts, failures are tallied
        suppress_health_check=list(HealthCheck),
    )
    @given(value=strategies[kind], dialect=st.sampled_from(["openai", "anthropic"]))
    def one(value: Any, dialect: str) -> None:
        nonlocal seen
        seen += 1
        if seen % 10_000 == 0:
            print(f"  {kind}: {seen} cases, {sum(failures.values())} broken so far", flush=True)
        try:
            if kind == "stream":
                fuzzing.check_stream(*value)
            elif kind == "reply":
                fuzzing.check_reply(dialect, value)
            else:
                fuzzing.check_request(value)
        except Exception as exc:
            frame = traceback.extract_tb(exc.__traceback__)[-1]
            where = f"{kind}: {type(exc).__name__} at {Path(frame.filename).name}:{frame.lineno}"
            failures[where] += 1
            samples.setdefault(where, f"{exc!r}\n    input: {repr(value)[:600]}")

    one()
    return seen


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=100_000)
    args = parser.parse_args()
    failures: Counter[str] = Counter()
    samples: dict[str, str] = {}
    started = time.monotonic()
    total = 0
    for kind, share in PLAN:
        n = max(1, int(args.cases * share))
        t0 = time.monotonic()
        done = run(kind, n, failures, samples)
        total += done
        print(f"{kind:16} {done:>8} cases in {time.monotonic() - t0:7.1f} s", flush=True)
    broken = sum(failures.values())
    print(f"total            {total:>8} cases in {time.monotonic() - started:7.1f} s, {broken} broken")
    for where, n in failures.most_common():
        print(f"  {n:>6}  {where}\n    {samples[where]}")
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
