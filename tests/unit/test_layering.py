"""The dependency direction of DESIGN.md holds: cli → components → client → api;
apiserver → storage → api. Checked from the import statements of every module."""

from __future__ import annotations

import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[2] / "kybernetes"

# package -> packages it may import (besides itself)
ALLOWED = {
    "api": set(),
    "storage": {"api"},
    "apiserver": {"api", "storage"},
    "client": {"api"},
    "controllers": {"api", "client"},
    "scheduler": {"api", "client"},
    "agent": {"api", "client"},
    "proxy": {"api", "client"},
    "dns": {"api", "client"},
    "simnodes": {"api", "client"},
    "testing": {"api", "client", "storage", "apiserver", "agent"},
    "cli": {"api", "client", "storage", "apiserver", "controllers", "scheduler", "agent", "proxy", "dns",
            "testing", "simnodes"},
}


def imported_packages(path: pathlib.Path) -> set[str]:
    tree = ast.parse(path.read_text())
    out = set()
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        for name in names:
            parts = name.split(".")
            if parts[0] == "kybernetes" and len(parts) > 1:
                out.add(parts[1])
    return out


def test_every_module_respects_the_dependency_direction():
    violations = []
    checked = 0
    for pkg, allowed in ALLOWED.items():
        for path in (ROOT / pkg).rglob("*.py"):
            checked += 1
            for dep in imported_packages(path) - allowed - {pkg}:
                violations.append(f"{path.relative_to(ROOT)} imports kybernetes.{dep}")
    assert checked > 10
    assert violations == []
