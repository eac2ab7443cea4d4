"""The rule that holds the design together: scenarios and the harness never reach into a
lab's internals; they talk to every lab over SSH and PVE's own commands."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHECKED = sorted(p for folder in ("harness", "scenarios") for p in (ROOT / folder).rglob("*.py"))


def imported_modules(path: Path) -> set[str]:
    modules = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules.add(node.module)
    return modules


def test_there_is_something_to_check():
    names = {p.relative_to(ROOT).as_posix() for p in CHECKED}
    assert {"harness/cluster.py", "scenarios/test_quorum_story.py"} <= names


@pytest.mark.parametrize("path", CHECKED, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_no_lab_imports(path):
    leaks = {m for m in imported_modules(path) if m == "lab" or m.startswith("lab.")}
    assert not leaks, f"{path.relative_to(ROOT)} imports {sorted(leaks)}"


def test_the_checker_sees_lab_imports(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("import os\nfrom lab.embedded import EmbeddedLab\nimport lab\n")
    assert imported_modules(sample) == {"os", "lab.embedded", "lab"}
