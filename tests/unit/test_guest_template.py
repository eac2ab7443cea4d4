"""The real-PVE guest's template and hookscript: contents, and the hookscript run with a
stand-in `pct` on PATH (the service itself runs in tests/integration/test_guest_template.py)."""

from __future__ import annotations

import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from harness.errors import LabError
from lab import guest_template, real_guest
from lab.guest_template import build_template, hookscript, write_storage_files

CONFIG = """arch: amd64
description: {description}
hookscript: shared:snippets/pvechaos-guest.sh
hostname: chaos100
mp0: /mnt/pve/shared/pvechaos/100,mp=/pvechaos,shared=1
net0: name=eth0,bridge=vmbr0,hwaddr=BC:24:11:5E:2A:01,ip=198.19.0.20/24,gw=198.19.0.1,type=veth
ostype: unmanaged
rootfs: shared:100/vm-100-disk-0.raw,size=1G
"""


def test_the_storage_files_have_the_layout_pve_expects(tmp_path):
    made = write_storage_files(tmp_path, storage_id="shared", port=7000)
    assert [p.relative_to(tmp_path).as_posix() for p in made] == [
        "template/cache/pvechaos-guest_1.0_amd64.tar.xz", "snippets/pvechaos-guest.sh"]
    assert os.access(made[1], os.X_OK)
    assert "dir=/mnt/pve/shared/pvechaos/$vmid" in made[1].read_text()
    with tarfile.open(made[0]) as tar:
        members = {m.name: m for m in tar.getmembers()}
        assert members["./sbin/init"].mode & 0o111
        assert members["./bin/nc"].issym() and members["./bin/nc"].linkname == "busybox"
        init = tar.extractfile("./sbin/init").read().decode()
    assert "nc -ll -p 7000 -e /bin/pvechaos-answer" in init


def test_without_busybox_the_fix_is_named(tmp_path):
    with pytest.raises(LabError, match="apt-get install busybox-static"):
        build_template(tmp_path / "t.tar.xz", port=7000, busybox=tmp_path / "nope")


def run_hook(tmp_path: Path, phase: str, description: str = "pvechaos guest"):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "pct").write_text("#!/bin/sh\ncat \"$PCT_CONFIG\"\n")
    (bin_dir / "pct").chmod(0o755)
    (bin_dir / "hostname").write_text("#!/bin/sh\necho node2\n")
    (bin_dir / "hostname").chmod(0o755)
    config = tmp_path / "config"
    config.write_text(CONFIG.format(description=description))
    hook = tmp_path / "hook.sh"
    hook.write_text(hookscript(str(tmp_path / "storage")))
    return subprocess.run(["sh", str(hook), "100", phase], capture_output=True, text=True,
                          timeout=10, env={"PATH": f"{bin_dir}:/usr/bin:/bin",
                                           "PCT_CONFIG": str(config)})


def test_pre_start_hands_the_guest_its_node_and_address(tmp_path):
    done = run_hook(tmp_path, "pre-start")
    assert done.returncode == 0, done.stderr
    directory = tmp_path / "storage" / "pvechaos" / "100"
    assert (directory / "net0").read_text() == "198.19.0.20/24 198.19.0.1\n"
    assert (directory / "node").read_text() == "node2\n"


def test_a_guest_made_to_fail_is_refused_in_pre_start_only(tmp_path):
    refused = run_hook(tmp_path, "pre-start", description="pvechaos: fail-start always")
    assert refused.returncode == 1
    assert "start of 100 is refused" in refused.stderr
    assert not (tmp_path / "storage" / "pvechaos" / "100").exists()
    assert run_hook(tmp_path, "post-stop", description="pvechaos: fail-start always"
                    ).returncode == 0


def test_the_recipe_mounts_the_log_directory_and_names_the_hookscript():
    import ipaddress

    recipe = real_guest.recipe(101, template=real_guest.template_volume("shared"),
                               interface=ipaddress.IPv4Interface("10.20.0.201/24"),
                               bridge="vmbr0", port=7000, storage_id="shared")
    assert recipe.template == "shared:vztmpl/pvechaos-guest_1.0_amd64.tar.xz"
    assert recipe.log_path == "/mnt/pve/shared/pvechaos/101/writes.log"
    assert recipe.prepare == (("rm", "-rf", "/mnt/pve/shared/pvechaos/101"),
                              ("mkdir", "-p", "/mnt/pve/shared/pvechaos/101"))
    assert "/mnt/pve/shared/pvechaos/101,mp=/pvechaos,shared=1" in recipe.create_options
    assert recipe.failing_start == ("--description", "pvechaos: fail-start always")
    assert guest_template.GUEST_DIR == "/pvechaos"
