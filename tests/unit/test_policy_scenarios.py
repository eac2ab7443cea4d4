"""The maintenance, shutdown-policy and failback stories: they collect on the libvirt lab
(everything up to the first libvirt call), carry the marker `upgrade` that keeps them
out of the main job (.ci/scenarios) and in .ci/upgrade, and run every policy on both
actions."""

from __future__ import annotations

from harness import ha_admin
from scenarios import test_shutdown_policy
from tests.unit.test_lab_options import ROOT, collect, lab_yaml  # noqa: F401 - a fixture

MODULES = ("scenarios/test_maintenance.py", "scenarios/test_shutdown_policy.py",
           "scenarios/test_failback.py")


def items(out: str) -> list[str]:
    return [line for line in out.splitlines() if "::" in line]


def test_the_policy_stories_collect_on_the_libvirt_lab(lab_yaml):  # noqa: F811
    done = collect("--lab", "libvirt", "--lab-config", str(lab_yaml), "-m", "upgrade",
                   env={"PVECHAOS_TEST_ROOT_PASSWORD": "lab-secret-1"})
    assert done.returncode == 0, done.stdout + done.stderr
    found = items(done.stdout)
    assert {i.split("::")[0] for i in found} == {*MODULES, "scenarios/test_rolling_upgrade.py"}
    assert "scenarios/test_shutdown_policy.py::test_shutdown_policy[migrate-reboot]" in found


def test_the_main_job_leaves_them_to_ci_upgrade():
    main = (ROOT / ".ci" / "scenarios").read_text()
    selection = "not sweep and not upgrade and not chaos"
    assert f'-m "{selection}"' in main
    done = collect("-m", selection)
    assert done.returncode == 0, done.stdout + done.stderr
    assert not [i for i in items(done.stdout) if i.split("::")[0] in MODULES]
    assert not [i for i in items(done.stdout) if "test_chaos" in i]  # .ci/chaos runs it
    chaos = (ROOT / ".ci" / "chaos").read_text()
    assert "scenarios/test_chaos.py" in chaos and "-m chaos" in chaos
    upgrade = (ROOT / ".ci" / "upgrade").read_text()
    assert all(m in upgrade for m in (*MODULES, "scenarios/test_rolling_upgrade.py"))


def test_every_policy_meets_both_actions():
    assert sorted(test_shutdown_policy.CASES) == sorted(
        (p, a) for p in ha_admin.POLICIES for a in ("poweroff", "reboot"))
    assert len(test_shutdown_policy.CASES) == 8
