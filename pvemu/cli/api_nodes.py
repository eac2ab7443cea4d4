"""pvesh's node paths: GET /version, /nodes and /nodes/<node>/status (PVE::API2::Nodes,
PVE::API2Tools::extract_node_stats, PVE::API2::Nodes::Nodeinfo `status`), read from what
the node has: its node.json (version, kernel), its boot marker, /proc, statvfs("/") and
/etc/pve/nodes/<node>/pve-ssl.pem.

Every node of an embedded lab runs on the one kernel of the machine, so each node's /proc
tells the same CPU count, CPU use, memory and load: the figures are the machine's, as any
node reads them. /nodes/<node>/status of another node is proxied to it over SSH by pvesh
(pvesh.py), as PVE's pvesh does.

Guess: PVE's /nodes takes cpu, mem, uptime, ... from the RRD data each node's pvestatd
broadcasts; the emulation has no pvestatd, so the local node reads them now, and another
online node reports the machine-wide figures (the same /proc) without `uptime`, which
only that node knows. `cpu` is the share of busy CPU time over a 50 ms sample of
/proc/stat (PVE: over pvestatd's 10 s cycle). `level` is "" (no subscription).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import re
import time
from pathlib import Path

from pvemu import nodeinfo
from pvemu.cli.ha_node import HaNode
from pvemu.cli.pveversion import manager_line

PROC = Path("/proc")  # read at each call (the unit tests point it at a fake one)
BOOT_MARKER = nodeinfo.BOOT_ID
CPU_SAMPLE_S = 0.05


def version(info: nodeinfo.NodeInfo) -> dict:
    """GET /version: version, release and repoid as `pveversion` prints them."""
    major, minor = info.pve_version.split(".")[:2]
    repoid = manager_line(info).split("/")[2].split()[0]
    return {"version": info.pve_version, "release": f"{major}.{minor}", "repoid": repoid}


# -- /proc ------------------------------------------------------------------------------
def meminfo(proc: Path) -> dict[str, int]:
    """/proc/meminfo in bytes (PVE::ProcFSTools::read_meminfo: used = total - available)."""
    raw: dict[str, int] = {}
    for line in (proc / "meminfo").read_text().splitlines():
        key, _, rest = line.partition(":")
        fields = rest.split()
        if fields and fields[0].isdigit():
            raw[key] = int(fields[0]) * (1024 if fields[1:] == ["kB"] else 1)
    total, avail = raw.get("MemTotal", 0), raw.get("MemAvailable", raw.get("MemFree", 0))
    swap_total, swap_free = raw.get("SwapTotal", 0), raw.get("SwapFree", 0)
    return {"memtotal": total, "memused": total - avail, "memfree": raw.get("MemFree", 0),
            "swaptotal": swap_total, "swapfree": swap_free, "swapused": swap_total - swap_free}


def _cpu_times(proc: Path) -> tuple[int, int, int]:
    """(total, idle, iowait) jiffies of the `cpu` line of /proc/stat."""
    for line in (proc / "stat").read_text().splitlines():
        if line.startswith("cpu "):
            v = [int(x) for x in line.split()[1:]]
            return sum(v[:8]), v[3], v[4] if len(v) > 4 else 0
    raise OSError(f"{proc}/stat has no cpu line")


def cpu_usage(proc: Path, sample_s: float = CPU_SAMPLE_S) -> tuple[float, float]:
    """(cpu, wait): busy and iowait shares of all CPUs over one short sample (since boot
    when no tick passed in it)."""
    t0, i0, w0 = _cpu_times(proc)
    time.sleep(sample_s)
    t1, i1, w1 = _cpu_times(proc)
    if t1 == t0:
        t0 = i0 = w0 = 0
    span = max(t1 - t0, 1)
    busy = max(0.0, min(1.0, 1 - (i1 - i0 + w1 - w0) / span))
    return round(busy, 4), round(max(0.0, (w1 - w0) / span), 4)


def cpu_count(proc: Path) -> int:
    text = (proc / "cpuinfo").read_text()
    return len(re.findall(r"^processor\s*:", text, re.M)) or (os.cpu_count() or 1)


def cpuinfo(proc: Path) -> dict:
    """PVE::ProcFSTools::read_cpuinfo: model, cpus, sockets, cores, mhz, hvm, flags."""
    text = (proc / "cpuinfo").read_text()

    def first(key: str) -> str:
        m = re.search(rf"^{key}\s*:\s*(.*)$", text, re.M)
        return m.group(1).strip() if m else ""
    flags = first("flags")
    sockets = len(set(re.findall(r"^physical id\s*:\s*(\d+)", text, re.M))) or 1
    cores = int(first("cpu cores") or 1) * sockets
    return {"model": first("model name"), "cpus": cpu_count(proc), "sockets": sockets,
            "cores": cores, "mhz": first("cpu MHz") or "0", "flags": flags,
            "hvm": "1" if re.search(r"\b(vmx|svm)\b", flags) else "0",
            "user_hz": os.sysconf("SC_CLK_TCK")}


def uptime(proc: Path, boot_marker: Path) -> int:
    """Seconds since this node booted: the age of the boot marker its init writes at
    every boot; outside a lab node, the kernel's /proc/uptime."""
    with contextlib.suppress(OSError):
        return max(0, int(time.time() - boot_marker.stat().st_mtime))
    return int(float((proc / "uptime").read_text().split()[0]))


def rootfs(path: str = "/") -> dict:
    st = os.statvfs(path)
    total, free, avail = (st.f_blocks * st.f_frsize, st.f_bfree * st.f_frsize,
                          st.f_bavail * st.f_frsize)
    return {"total": total, "used": total - free, "free": free, "avail": avail}


def ssl_fingerprint(node: HaNode, name: str) -> str | None:
    """PVE::Cluster::get_node_fingerprint: SHA-256 of nodes/<name>/pve-ssl.pem's
    certificate, colon-separated; None (JSON null, as PVE's failed eval) without one."""
    text = node.etc.read(f"nodes/{name}/pve-ssl.pem") or ""
    m = re.search(r"-----BEGIN CERTIFICATE-----(.*?)-----END CERTIFICATE-----", text, re.S)
    if not m:
        return None
    digest = hashlib.sha256(base64.b64decode("".join(m.group(1).split()))).hexdigest()
    return ":".join(digest[i:i + 2] for i in range(0, 64, 2)).upper()


# -- the API answers --------------------------------------------------------------------
def node_online(node: HaNode) -> dict[str, bool]:
    """name -> online, from .members; the local node answers, so it is online."""
    nodelist = (node.etc.members() or {}).get("nodelist") or {}
    out = {n: bool(i.get("online")) for n, i in nodelist.items()}
    for name in node.cluster_nodes():
        out.setdefault(name, False)
    out[node.name] = True
    return out


def node_entry(node: HaNode, name: str, online: bool, stats: dict) -> dict:
    """One node as extract_node_stats makes it (id, node, type, status, and the figures
    of an online node)."""
    entry: dict = {"id": f"node/{name}", "node": name, "type": "node",
                   "status": "online" if online else "offline"}
    if online:
        entry.update({k: v for k, v in stats.items() if k != "uptime"})
        if name == node.name:
            entry["uptime"] = stats["uptime"]
    return entry


def machine_stats() -> dict:
    """The figures every online node's entry shares (see the module docstring)."""
    mem, disk = meminfo(PROC), rootfs()
    return {"cpu": cpu_usage(PROC)[0], "maxcpu": cpu_count(PROC), "mem": mem["memused"],
            "maxmem": mem["memtotal"], "disk": disk["used"], "maxdisk": disk["total"],
            "uptime": uptime(PROC, BOOT_MARKER), "level": ""}


def nodes(node: HaNode) -> list[dict]:
    """GET /nodes."""
    stats = machine_stats()
    return [{**node_entry(node, name, online, stats),
             "ssl_fingerprint": ssl_fingerprint(node, name)}
            for name, online in sorted(node_online(node).items())]


def node_status(node: HaNode, info: nodeinfo.NodeInfo) -> dict:
    """GET /nodes/<this node>/status (Nodeinfo.pm `status`)."""
    load = (PROC / "loadavg").read_text().split()[:3]
    mem = meminfo(PROC)
    cpu, wait = cpu_usage(PROC)
    uname = os.uname()
    ksm = Path("/sys/kernel/mm/ksm/pages_sharing")
    shared = int(ksm.read_text()) * os.sysconf("SC_PAGE_SIZE") if ksm.exists() else 0
    return {"uptime": uptime(PROC, BOOT_MARKER), "idle": 0, "loadavg": load, "cpu": cpu,
            "wait": wait,
            "cpuinfo": cpuinfo(PROC), "kversion": f"Linux {info.kernel} {uname.version}",
            "current-kernel": {"sysname": "Linux", "release": info.kernel,
                               "version": uname.version, "machine": uname.machine},
            "boot-info": {"mode": "efi" if Path("/sys/firmware/efi").exists()
                          else "legacy-bios"},
            "memory": {"total": mem["memtotal"], "used": mem["memused"],
                       "free": mem["memfree"]},
            "swap": {"total": mem["swaptotal"], "used": mem["swapused"],
                     "free": mem["swapfree"]},
            "ksm": {"shared": shared}, "rootfs": rootfs(),
            "pveversion": manager_line(info).split(" (")[0]}
