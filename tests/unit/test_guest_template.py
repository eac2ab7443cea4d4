"""The real-PVE guest's template and hookscript: contents, and the hookscript run with a
stand-in `pct` on PATH (the service itself runs in tests/integration/test_guest_template.py)."""

from __future__ import annotations

import os
import shutil
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


ADJTIMEX = """    mode:         0
    status:       {status} ({flags})
-p  timeconstant: 2
    precision:    1 us
    time.tv_sec:  1796520152
    time.tv_usec: {usec}
    return value: 5 (clock not synchronized)
"""


def wall_clock_ns(tmp_path: Path, *, status: int | None = None, usec: int = 0) -> int:
    """The guest's time stamp, with busybox's awk and adjtimex as in the guest or, given a
    status, a stand-in adjtimex printing what busybox prints for it (the shell is the
    system's: busybox's own would run its adjtimex applet, not the stand-in)."""
    busybox = shutil.which("busybox")
    if busybox is None:
        pytest.skip("needs busybox (bash .ci/setup installs busybox-static)")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "awk").symlink_to(busybox)
    if status is None:
        (bin_dir / "adjtimex").symlink_to(busybox)
    else:
        flags = "NANO UNSYNC" if status & 0x2000 else "UNSYNC"
        (bin_dir / "adjtimex").write_text(
            "#!/bin/sh\nexec /bin/cat <<'END'\n" + ADJTIMEX.format(status=status, flags=flags,
                                                         usec=usec) + "END\n")
        (bin_dir / "adjtimex").chmod(0o755)
    done = subprocess.run(["/bin/sh", "-c", guest_template.WALL_CLOCK_NS],
                          capture_output=True, text=True, timeout=10,
                          env={"PATH": str(bin_dir)})
    assert done.returncode == 0, done.stderr
    return int(done.stdout)


@pytest.mark.parametrize(("status", "usec", "ns"), [
    (0x40, 286906, 286906000),  # tv_usec in microseconds
    (0x40, 12, 12000),
    (0x2040, 286906123, 286906123),  # STA_NANO: the kernel gives nanoseconds
    (0x2040, 512, 512),  # early in a second: must not make a shorter, earlier stamp
])
def test_the_time_stamp_reads_tv_usec_in_the_unit_the_kernel_gives(tmp_path, status, usec,
                                                                    ns):
    assert wall_clock_ns(tmp_path, status=status, usec=usec) == 1796520152 * 10**9 + ns


def test_the_time_stamp_is_the_wall_clock(tmp_path):
    import time

    before = time.time_ns()
    stamp = wall_clock_ns(tmp_path)
    assert before - 1_000_000 <= stamp <= time.time_ns() + 1_000_000
