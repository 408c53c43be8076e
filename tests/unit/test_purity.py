"""proxy/translate/ is pure: no Django, no httpx, no network, no clock (house style, rule 1)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

TRANSLATE = Path(__file__).resolve().parents[2] / "proxy" / "translate"
FORBIDDEN = (
    "django",
    "httpx",
    "aiohttp",
    "requests",
    "socket",
    "asyncio",
    "time",
    "random",
    "datetime",
    "proxy.",
)


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("path", sorted(TRANSLATE.rglob("*.py")), ids=lambda p: str(p.relative_to(TRANSLATE)))
def test_translate_module_imports_nothing_impure(path: Path) -> None:
    bad = {
        m
        for m in imported_modules(path)
        if any(m == f or m.startswith(f + ".") or m.startswith(f) for f in FORBIDDEN if f.endswith("."))
        or any(m == f or m.startswith(f + ".") for f in FORBIDDEN if not f.endswith("."))
    }
    assert not bad, f"{path.name} imports {sorted(bad)}"
