"""Browser tests: Playwright driving Debian's chromium against a real `manage.py serve` process."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "test-output" / "screenshots"
DOCS_SHOTS = ROOT / "docs" / "screenshots"

# pytest-django's DB fixtures are not used here, but the live server's own ORM runs in its process.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "1")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/browser/" in str(item.fspath):
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict) -> dict:
    chromium = shutil.which("chromium")
    if chromium is None:
        message = "Debian chromium is not installed (apt-get install -y chromium)"
        if os.environ.get("SWITCHBOARD_REQUIRE_BROWSER") == "1":  # CI: a missing browser is a failure
            pytest.fail(message)
        pytest.skip(message)
    return {
        **browser_type_launch_args,
        "executable_path": chromium,
        "args": [
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
        ],
    }


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args: dict) -> dict:
    return {**browser_context_args, "viewport": {"width": 1440, "height": 900}}


@pytest.fixture
def screenshot(page) -> Callable[..., Path]:
    """Save a screenshot under test-output/screenshots/; with docs=True and SWITCHBOARD_UPDATE_SCREENSHOTS=1
    it is also copied to docs/screenshots/ for the README."""

    def take(name: str, *, docs: bool = False, full_page: bool = True) -> Path:
        SHOTS.mkdir(parents=True, exist_ok=True)
        path = SHOTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=full_page)
        # Opt-in, so that running the tests does not rewrite tracked files.
        if docs and os.environ.get("SWITCHBOARD_UPDATE_SCREENSHOTS") == "1":
            DOCS_SHOTS.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, DOCS_SHOTS / path.name)
        return path

    return take


@pytest.fixture(autouse=True)
def no_csp_violations(page) -> Iterator[list[str]]:
    """Every browser test fails on a Content-Security-Policy violation or a JS error in the page."""
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    yield problems
    relevant = [p for p in problems if "favicon" not in p]
    assert relevant == [], relevant
