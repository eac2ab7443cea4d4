"""The test guest for real PVE nodes: a tiny container template and its hookscript.

`pvechaos-lab guest-template --out DIR` writes, in the layout of a PVE directory or NFS
storage (copy DIR's contents into the shared storage's root, e.g. the gateway's export):

- ``template/cache/pvechaos-guest_1.0_amd64.tar.xz``: a busybox rootfs whose /sbin/init
  is the guest service of every pvechaos lab: it answers each TCP connection on its port
  with ``<sid> <node> <boot-id> <seq>`` and appends ``<seq> <node> <boot-id> <time-ns>``
  to its write log every 100 ms, synced (harness/writelog.py), going on from the last
  complete record at each start.
- ``snippets/pvechaos-guest.sh``: the hookscript (`pct create --hookscript`). PVE runs it
  on the node as ``<vmid> <phase>``; in ``pre-start`` it refuses the start of a guest
  whose description asks for it (``pvechaos: fail-start``, the same knob as the embedded
  lab), and hands the container what an unmanaged container cannot learn by itself: the
  node's name and the ``net0`` address from `pct config`, written next to the write log.

The write log and those two files live in ``/mnt/pve/<storage>/pvechaos/<vmid>/``,
bind-mounted at /pvechaos with ``shared=1`` so every node reads the same log.

Guesses, to be checked on the first real run: an ``unmanaged`` container whose init sets
its own address works under HA; the hookscript's pre-start phase runs before the bind
mount is made. Time stamps are the wall clock in nanoseconds, to the microsecond or
better (``WALL_CLOCK_NS``): records of two copies on different nodes are comparable
through chrony, to its accuracy.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import tarfile
from pathlib import Path

from harness.errors import ConfigError, LabError

TEMPLATE = "pvechaos-guest_1.0_amd64.tar.xz"
HOOKSCRIPT = "pvechaos-guest.sh"
GUEST_DIR = "/pvechaos"  # inside the container
APPLETS = ("sh", "ip", "nc", "cat", "echo", "mkdir", "mv", "awk", "tail", "od", "tr", "cut",
           "adjtimex", "sync", "usleep", "hostname", "sed", "sleep", "mount", "mknod", "test",
           "[")

# PVE's storage id (pve-common, PVE/JSONSchema.pm, parse_storage_id: the format
# 'pve-storage-id', matched case-insensitively); it becomes /mnt/pve/<id> in the hookscript,
# so it is checked before anything is written: no space, quote, slash or leading dot.
# The one rule for a storage id: the CLI here and the inventory and libvirt lab files.
STORAGE_ID = re.compile(r"[a-z][a-z0-9\-_.]*[a-z0-9]", re.IGNORECASE)
STORAGE_ID_RULE = ("a letter, then letters, digits, '-', '_' or '.', ending in a letter or "
                   "digit")
# A container template's volume id: <storage id>:vztmpl/<file>
TEMPLATE_VOLUME = re.compile(rf"(?i:{STORAGE_ID.pattern}):vztmpl/[^ /]+")
PORTS = range(1, 65536)


def check_storage_id(storage_id: str) -> str:
    if not STORAGE_ID.fullmatch(storage_id):
        raise ConfigError(
            f"--storage {storage_id!r}: not a PVE storage id",
            hint="give the id of the shared storage as `pvesm status` lists it: "
                 f"{STORAGE_ID_RULE}, e.g. --storage shared")
    return storage_id


def check_port(port: int) -> int:
    if port not in PORTS:
        raise ConfigError(f"--port {port}: not a TCP port (1-65535)",
                          hint="give the port the guest service listens on, e.g. --port "
                               "7000 (the default)")
    return port


def check_out_dir(out_dir: Path) -> Path:
    """A directory that is or can be made writable: refused before anything is written."""
    fix = "give a directory you can write, e.g. --out ./pvechaos-storage"
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"--out {str(out_dir)!r}: is a file, not a directory", hint=fix)
    existing = out_dir.absolute()
    while not existing.exists():  # the nearest existing ancestor must let us make the rest
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(f"--out {str(out_dir)!r}: lies under {existing}, which is a file",
                          hint=fix)
    if not os.access(existing, os.W_OK | os.X_OK):
        what = "is not writable" if existing == out_dir.absolute() else (
            f"cannot be made: {existing} is not writable")
        raise ConfigError(f"--out {str(out_dir)!r}: {what}",
                          hint=f"{fix} (or run as a user who may write {existing})")
    return out_dir


INIT = r"""#!/bin/sh
# pvechaos guest service: PID 1 of the container (see lab/guest_template.py)
export PATH=/bin
trap 'exit 0' TERM INT PWR USR1 USR2
DIR=/pvechaos
STATE=/run/pvechaos
LOG=$DIR/writes.log
mkdir -p $STATE /proc
[ -r /proc/sys/kernel/random/uuid ] || mount -t proc proc /proc
[ -e /dev/null ] || mknod -m 666 /dev/null c 1 3
vmid=$(hostname | sed 's/^chaos//')
node=$(cat $DIR/node)
boot=$(cat /proc/sys/kernel/random/uuid | tr -d - | cut -c1-12)
read -r address gateway < $DIR/net0
ip link set lo up
ip link set eth0 up
ip addr add "$address" dev eth0
[ -n "$gateway" ] && ip route add default via "$gateway"
seq=0
if [ -s "$LOG" ]; then
  torn=1
  [ "$(tail -c 1 "$LOG" | od -An -tx1 | tr -d ' \n')" = 0a ] && torn=0
  seq=$(awk -v torn=$torn 'NF == 4 && $1 ~ /^[0-9]+$/ && $4 ~ /^[0-9]+$/ { s[NR] = $1 }
        END { for (i = NR - torn; i > 0; i--) if (i in s) { print s[i]; exit } print 0 }' "$LOG")
  [ $torn = 1 ] && echo >> "$LOG"
fi
echo "ct:$vmid $node $boot" > $STATE/id
echo $seq > $STATE/seq
nc -ll -p @PORT@ -e /bin/pvechaos-answer &
echo "pvechaos guest ct:$vmid on $node: boot $boot, from seq $seq"
while :; do
  seq=$((seq + 1))
  now=$(@WALL_CLOCK_NS@)
  echo "$seq $node $boot $now" >> "$LOG"
  sync -d "$LOG"
  echo $seq > $STATE/seq.new && mv $STATE/seq.new $STATE/seq
  usleep 100000
done
"""

# The wall clock in nanoseconds, from busybox's adjtimex (its `date` has only seconds).
# The kernel reports time.tv_usec in nanoseconds while the NTP status has STA_NANO (0x2000,
# set by an NTP daemon that disciplines the clock in nanoseconds, e.g. systemd-timesyncd),
# in microseconds otherwise: read as microseconds, nanosecond values made stamps of
# different lengths that ordered boots wrongly.
WALL_CLOCK_NS = (
    "adjtimex | awk '/status:/ { st = $2 } /tv_sec/ { s = $2 } /tv_usec/ { u = $2 } "
    "END { if (int(st / 8192) % 2 == 0) u = u * 1000; printf \"%d%09d\", s, u }'")

ANSWER = """#!/bin/sh
echo "$(cat /run/pvechaos/id) $(cat /run/pvechaos/seq)"
"""

HOOK = r"""#!/bin/sh
# pvechaos guest hookscript (see lab/guest_template.py): pct runs it as <vmid> <phase>
vmid=$1
phase=$2
dir=@STORAGE_DIR@/pvechaos/$vmid
[ "$phase" = pre-start ] || exit 0
config=$(pct config "$vmid") || exit 1
case $config in
  *"pvechaos: fail-start"*)
    echo "pvechaos: the start of $vmid is refused (a guest made to fail)" >&2
    exit 1 ;;
esac
mkdir -p "$dir"
net0=$(echo "$config" | sed -n 's/^net0: //p' | tr ',' '\n')
address=$(echo "$net0" | sed -n 's/^ip=//p')
gateway=$(echo "$net0" | sed -n 's/^gw=//p')
echo "$address $gateway" > "$dir/net0"
hostname > "$dir/node"
exit 0
"""


def hookscript(storage_dir: str) -> str:
    """The hookscript for a storage mounted at ``storage_dir`` (/mnt/pve/<storage>)."""
    return HOOK.replace("@STORAGE_DIR@", storage_dir.rstrip("/"))


def init_script(port: int) -> str:
    return INIT.replace("@PORT@", str(port)).replace("@WALL_CLOCK_NS@", WALL_CLOCK_NS)


def _add(tar: tarfile.TarFile, name: str, *, data: bytes | None = None, mode: int = 0o755,
         kind: bytes = tarfile.REGTYPE, link: str = "") -> None:
    info = tarfile.TarInfo(name)
    info.mode, info.type, info.linkname, info.mtime = mode, kind, link, 0
    info.size = len(data) if data is not None else 0
    tar.addfile(info, io.BytesIO(data) if data is not None else None)


def build_template(out: Path, *, port: int, busybox: Path | None = None) -> Path:
    """The rootfs tarball (tar.xz): busybox, its applets, /sbin/init, the answer script."""
    found = busybox or (Path(p) if (p := shutil.which("busybox")) else None)
    if found is None or not found.is_file():
        raise LabError("building the guest template needs a static busybox",
                       hint="apt-get install busybox-static")
    out.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(out, "w:xz") as tar:
        for directory in ("bin", "sbin", "etc", "proc", "sys", "dev", "run", "tmp",
                          GUEST_DIR.strip("/")):
            _add(tar, f"./{directory}", kind=tarfile.DIRTYPE)
        _add(tar, "./bin/busybox", data=found.read_bytes())
        for applet in APPLETS:
            _add(tar, f"./bin/{applet}", kind=tarfile.SYMTYPE, link="busybox")
        _add(tar, "./sbin/init", data=init_script(port).encode())
        _add(tar, "./bin/pvechaos-answer", data=ANSWER.encode())
        _add(tar, "./etc/hostname", data=b"pvechaos-guest\n", mode=0o644)
    return out


def write_storage_files(out_dir: Path, *, storage_id: str, port: int,
                        busybox: Path | None = None) -> list[Path]:
    """Template and hookscript in a storage's layout under ``out_dir``; the storage id, the
    port and the directory are checked first (ConfigError naming the fix)."""
    check_storage_id(storage_id)
    check_port(port)
    check_out_dir(out_dir)
    try:
        template = build_template(out_dir / "template" / "cache" / TEMPLATE, port=port,
                                  busybox=busybox)
        hook = out_dir / "snippets" / HOOKSCRIPT
        hook.parent.mkdir(parents=True, exist_ok=True)
        hook.write_text(hookscript(f"/mnt/pve/{storage_id}"))
        hook.chmod(0o755)
    except OSError as exc:  # what the checks cannot foresee: a full disk, a read-only mount
        raise LabError(f"writing the guest template under {out_dir} failed: "
                       f"{exc.strerror or exc}" + (f" ({exc.filename})" if exc.filename else ""),
                       hint="free space or choose another --out directory") from exc
    return [template, hook]
