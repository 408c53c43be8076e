"""Install a pinned Claude Code CLI from npm into a cache directory, once, and reuse it.

    python tests/e2e/install_claude.py 2.1.197 2.1.332   # prints each binary's path

The cache is `$SWITCHBOARD_E2E_CACHE` (default `~/.cache/switchboard-e2e`), one `claude-<version>/`
per version (`npm install --prefix`). A version counts as installed once `claude --version` prints it,
which runs offline. The npm package ships a native binary (~240 MB per version).
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
from pathlib import Path

PACKAGE = "@anthropic-ai/claude-code"
# The version the request fixtures in tests/fixtures/claude-code/ were captured on, and the latest checked.
PINNED = "2.1.197"
LATEST_CHECKED = "2.1.332"
DEFAULT_VERSIONS = (PINNED, LATEST_CHECKED)


class NpmMissing(RuntimeError):
    """npm is not on PATH: the CLI cannot be installed here."""


def cache_dir() -> Path:
    return Path(os.environ.get("SWITCHBOARD_E2E_CACHE", "~/.cache/switchboard-e2e")).expanduser()


def installed_version(binary: Path) -> str | None:
    if not binary.exists():
        return None
    try:
        out = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.split()[0] if out.returncode == 0 and out.stdout.strip() else None


def ensure_claude(version: str) -> Path:
    """Path to the `claude` binary of exactly `version`, installing it on first use."""
    prefix = cache_dir() / f"claude-{version}"
    binary = prefix / "node_modules" / ".bin" / "claude"
    if installed_version(binary) == version:
        return binary
    npm = shutil.which("npm")
    if npm is None:
        raise NpmMissing("npm is not installed (apt-get install -y npm): cannot install Claude Code")
    prefix.mkdir(parents=True, exist_ok=True)
    # One installer at a time per version (parallel test workers share the cache).
    with open(prefix / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if installed_version(binary) != version:
            cmd = [
                npm,
                "install",
                "--prefix",
                str(prefix),
                "--no-audit",
                "--no-fund",
                "--no-save",
                f"{PACKAGE}@{version}",
            ]
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
            if done.returncode != 0:
                raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
        got = installed_version(binary)
        if got != version:
            raise RuntimeError(f"installed {PACKAGE}@{version} but `claude --version` says {got!r}")
    return binary


def main(argv: list[str]) -> int:
    for version in argv or DEFAULT_VERSIONS:
        print(ensure_claude(version))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
