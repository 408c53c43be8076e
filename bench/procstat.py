"""CPU and memory of a process tree, from /proc (Linux)."""

from __future__ import annotations

import contextlib
import os

CLK = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int | str) -> list[bytes]:
    with open(f"/proc/{pid}/stat", "rb") as f:
        st = f.read()
    return st[st.rindex(b")") + 2 :].split()  # the command name may hold spaces and parentheses


def proc_tree(pid: int) -> list[int]:
    """`pid` and all its descendants."""
    kids: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                kids.setdefault(int(_stat_fields(d)[1]), []).append(int(d))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def tree_cpu_s(pids: list[int] | None) -> float:
    """utime + stime of `pids`, in seconds."""
    total = 0
    for p in pids or ():
        try:
            f = _stat_fields(p)
            total += int(f[11]) + int(f[12])
        except (OSError, ValueError, IndexError):
            pass
    return total / CLK


def tree_kb(pids: list[int], key: str) -> int:
    """Sum of a /proc/<pid>/status field (VmHWM: peak resident set) over `pids`, in kB."""
    total = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/status") as f:
                total += next((int(line.split()[1]) for line in f if line.startswith(key + ":")), 0)
        except OSError:
            pass
    return total
