"""`pytest scenarios/ --lab libvirt|inventory`: options checked before any test runs, up
to the first libvirt call or SSH connection (collection only; nothing is contacted)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def collect(*options: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    import os

    return subprocess.run(
        [sys.executable, "-m", "pytest", "scenarios/", "--co", "-q", "-p", "no:cacheprovider",
         *options], cwd=ROOT, capture_output=True, text=True, timeout=120,
        env={**os.environ, **(env or {})})


@pytest.fixture
def lab_yaml(tmp_path: Path) -> Path:
    key = tmp_path / "id_ed25519"
    key.write_text("not a real key\n")
    key.with_name("id_ed25519.pub").write_text("ssh-ed25519 AAAA harness\n")
    path = tmp_path / "lab.yaml"
    path.write_text(f"""\
hosts: [qemu:///system]
iso: /var/cache/pvechaos/proxmox-ve_9.1-1.iso
iso_version: "9.1-1"
root_password_env: PVECHAOS_TEST_ROOT_PASSWORD
ssh_key: {key}
gateway: {{image: gw-debian12.qcow2}}
guest: {{template: "shared:vztmpl/pvechaos-guest_1.0_amd64.tar.xz"}}
""")
    return path


def test_the_scenarios_collect_on_a_valid_libvirt_lab_config(lab_yaml):
    done = collect("--lab", "libvirt", "--lab-config", str(lab_yaml),
                   env={"PVECHAOS_TEST_ROOT_PASSWORD": "lab-secret-1"})
    assert done.returncode == 0, done.stdout + done.stderr
    for module in ("test_ha_story", "test_rolling_upgrade"):
        assert f"scenarios/{module}.py::" in done.stdout


@pytest.mark.parametrize("options, env, message", [
    (("--lab", "libvirt"), {}, "--lab libvirt needs --lab-config FILE"),
    (("--lab", "inventory"), {}, "--lab inventory needs --inventory FILE"),
    (("--lab", "libvirt", "--lab-config", "{yaml}"), {},
     "root_password_env: environment variable PVECHAOS_TEST_ROOT_PASSWORD is not set"),
    (("--lab", "libvirt", "--lab-config", "{yaml}", "--timescale", "0.1"),
     {"PVECHAOS_TEST_ROOT_PASSWORD": "lab-secret-1"}, "drop --timescale"),
    (("--lab", "inventory", "--inventory", "/nonexistent/cluster.yaml"), {},
     "inventory /nonexistent/cluster.yaml does not exist"),
    (("--lab", "vmware"), {}, "invalid choice: 'vmware'"),
])
def test_a_bad_lab_option_stops_the_run_before_any_test_with_the_fix(
        lab_yaml, options, env, message):
    done = collect(*(o.replace("{yaml}", str(lab_yaml)) for o in options), env=env)
    assert done.returncode == 4, done.stdout + done.stderr
    assert message in done.stderr
    assert "Traceback" not in done.stderr
