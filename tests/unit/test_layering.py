"""The rule that holds the design together: scenarios and the harness never reach into a
lab's internals; they talk to every lab over SSH and PVE's own commands. The emulated PVE
(pvemu/) is booted by the embedded lab and knows neither the lab nor the harness, beyond
the output formats the two share."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHECKED = sorted(p for folder in ("harness", "scenarios") for p in (ROOT / folder).rglob("*.py"))
EMULATOR = sorted((ROOT / "pvemu").rglob("*.py"))
# Code that runs without the test suite: the labs and the benchmarks (which boot the HA
# testbed from lab/, not from tests/).
NOT_TESTS = sorted(p for folder in ("bench", "lab") for p in (ROOT / folder).rglob("*.py"))
# What the emulator may take from the harness: formats both sides must agree on.
SHARED_WITH_EMULATOR = {
    "harness.writelog",  # the guest's write-log records, written by pvemu, judged by harness
}


def under(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


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
    assert {"pvemu/pmxcfs.py", "pvemu/guest_process.py"} <= {
        p.relative_to(ROOT).as_posix() for p in EMULATOR}
    assert {"bench/bench_ha_recovery.py", "lab/embedded/ha_testbed.py"} <= {
        p.relative_to(ROOT).as_posix() for p in NOT_TESTS}


@pytest.mark.parametrize("path", CHECKED, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_no_lab_imports(path):
    leaks = {m for m in imported_modules(path) if under(m, "lab") or under(m, "pvemu")}
    assert not leaks, f"{path.relative_to(ROOT)} imports {sorted(leaks)}"


@pytest.mark.parametrize("path", EMULATOR, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_the_emulator_imports_no_lab_and_only_shared_formats(path):
    leaks = {m for m in imported_modules(path)
             if under(m, "lab") or (under(m, "harness") and m not in SHARED_WITH_EMULATOR)}
    assert not leaks, f"{path.relative_to(ROOT)} imports {sorted(leaks)}"


@pytest.mark.parametrize("path", NOT_TESTS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_bench_and_lab_import_nothing_from_tests(path):
    leaks = {m for m in imported_modules(path) if under(m, "tests")}
    assert not leaks, f"{path.relative_to(ROOT)} imports {sorted(leaks)}"


def test_the_checker_sees_test_imports_however_they_are_written(tmp_path):
    sample = tmp_path / "bench_sample.py"
    sample.write_text(
        "import sys\n"
        "sys.path.insert(0, '..')\n"
        "from tests.integration.ha_support import holds  # noqa: E402\n"
        "def boot():\n"
        "    import tests.twins as twins\n"
        "    try:\n"
        "        from tests import conftest\n"
        "    except ImportError:\n"
        "        pass\n"
        "from testsuite import x\n")
    found = {m for m in imported_modules(sample) if under(m, "tests")}
    assert found == {"tests.integration.ha_support", "tests.twins", "tests"}


def test_the_checker_sees_lab_imports(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("import os\nfrom lab.embedded import EmbeddedLab\nimport lab\n")
    assert imported_modules(sample) == {"os", "lab.embedded", "lab"}
