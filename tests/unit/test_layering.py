"""The dependency direction of DESIGN.md holds: cli → components → client → api;
apiserver → storage → api; no component imports another; `api` stays pure. The rules
are import-linter contracts in pyproject.toml ([tool.importlinter]); these tests run
them, and show that a module breaking one is caught."""

from __future__ import annotations

import os
import pathlib
import re
import shutil
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
LINT_IMPORTS = pathlib.Path(sys.executable).parent / "lint-imports"


def lint_imports(root: pathlib.Path) -> subprocess.CompletedProcess[str]:
    """Run the contracts of `root`/pyproject.toml over the `kybernetes` package in `root`."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run([str(LINT_IMPORTS), "--no-cache", "--no-logo"], cwd=root, env=env,
                          capture_output=True, text=True, timeout=120)


def test_every_contract_is_kept() -> None:
    result = lint_imports(REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"Contracts: [1-9]\d* kept, 0 broken", result.stdout), result.stdout


@pytest.fixture
def tree_copy(tmp_path: pathlib.Path) -> pathlib.Path:
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    shutil.copytree(REPO / "kybernetes", tmp_path / "kybernetes",
                    ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


def test_a_component_importing_another_is_reported(tree_copy: pathlib.Path) -> None:
    (tree_copy / "kybernetes" / "scheduler" / "probe.py").write_text(
        "from kybernetes.controllers import podutil\n")
    result = lint_imports(tree_copy)
    assert result.returncode != 0
    assert "BROKEN" in result.stdout
    assert "kybernetes.scheduler.probe -> kybernetes.controllers.podutil" in result.stdout


def test_api_importing_upwards_or_aiohttp_is_reported(tree_copy: pathlib.Path) -> None:
    (tree_copy / "kybernetes" / "api" / "probe.py").write_text(
        "import aiohttp\n\n\ndef f():\n    from kybernetes.client import informer\n")
    result = lint_imports(tree_copy)
    assert result.returncode != 0
    assert "kybernetes.api.probe -> kybernetes.client.informer" in result.stdout
    assert "kybernetes.api.probe -> aiohttp" in result.stdout


def test_a_new_package_must_be_placed_in_a_layer(tree_copy: pathlib.Path) -> None:
    (tree_copy / "kybernetes" / "newthing").mkdir()
    (tree_copy / "kybernetes" / "newthing" / "__init__.py").write_text("")
    result = lint_imports(tree_copy)
    assert result.returncode != 0
    assert "kybernetes.newthing" in result.stdout
