"""Answer files for the Proxmox VE automated installer, and the disk image that carries them.

The libvirt lab installs each nested PVE node unattended: the ISO is prepared once to fetch
its answer from a partition labelled PROXMOX-AIS, and every node gets a tiny FAT image with
its own `answer.toml`. Here: rendering an answer for a node, validating any answer text
against the installer's rules (all problems at once, each with its field and fix), building
and reading back the answer image, and the commands that prepare the ISO.

The rules are those of the PVE installer's answer schema (proxmox/pve-installer,
proxmox-auto-installer: `[global]`, `[network]`, `[disk-setup]`, deny_unknown_fields).
Key spelling: ISO 8.2/8.3 know snake_case only; 8.4 and later prefer kebab-case.
"""

from __future__ import annotations

import ipaddress
import os
import re
import shlex
import subprocess
import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from harness.errors import ConfigError, LabError

Style = Literal["snake", "kebab"]
IsoVersion = tuple[int, int, int]

LABEL = "PROXMOX-AIS"
MODE_FILE_TEXT = 'mode = "partition"\npartition_label = "proxmox-ais"\n'
FILESYSTEMS = ("ext4", "xfs", "zfs", "btrfs")
_NUM = (int, float)
SCHEMA: dict[str, dict[str, type | tuple[type, ...]]] = {
    "global": {"keyboard": str, "country": str, "fqdn": str, "mailto": str, "timezone": str,
               "root_password": str, "root_password_hashed": str, "root_ssh_keys": list,
               "reboot_on_error": bool, "reboot_mode": str},
    "network": {"source": str, "cidr": str, "dns": str, "gateway": str, "filter": dict},
    "disk-setup": {"filesystem": str, "disk_list": list, "filter": dict, "filter_match": str,
                   "lvm": dict, "zfs": dict, "btrfs": dict},
    "lvm": {"hdsize": _NUM, "swapsize": _NUM, "maxroot": _NUM, "maxvz": _NUM, "minfree": _NUM},
    "zfs": {"raid": str, "ashift": int, "arc_max": int, "checksum": str, "compress": str,
            "copies": int, "hdsize": _NUM},
    "btrfs": {"raid": str, "hdsize": _NUM, "compress": str},
}
_KINDS = {str: "a string", int: "an integer", bool: "true or false", list: "a list",
          dict: "a table"}
_FS_TABLE = {"lvm": ("ext4", "xfs"), "zfs": ("zfs",), "btrfs": ("btrfs",)}
_HOST = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)", re.I)


def parse_iso_version(text: str) -> IsoVersion:
    """"8.4-1" -> (8, 4, 0), "8.4.3" -> (8, 4, 3). The -N suffix is the ISO's rebuild
    counter, not an installer release, so 8.4-1 is not assumed to have 8.4.3's features."""
    m = re.fullmatch(r"\s*(\d+)\.(\d+)(?:\.(\d+))?(?:-\d+)?\s*", str(text))
    if not m:
        raise ConfigError(f"ISO version {text!r} is not understood",
                          hint='write it as on the ISO name, e.g. "8.4-1" or "9.1-1"')
    return int(m[1]), int(m[2]), int(m[3] or 0)


def _supported(iso_version: str) -> IsoVersion:
    version = parse_iso_version(iso_version)
    if version < (8, 2, 0):
        raise ConfigError(f"iso_version: ISO {iso_version} has no automated installer "
                          "(it arrived with 8.2)", hint="use a Proxmox VE ISO 8.2 or later")
    return version


def key_style(iso_version: str) -> Style:
    """The key spelling the ISO prefers: kebab-case from 8.4, snake_case before."""
    return "kebab" if _supported(iso_version) >= (8, 4, 0) else "snake"


def powers_off_when_done(iso_version: str) -> bool:
    """Whether the installer can power the VM off at the end (reboot_mode, ISO >= 8.4.3);
    otherwise the caller waits for SSH on the installed node instead."""
    return _supported(iso_version) >= (8, 4, 3)


def _spell(key: str, style: Style) -> str:
    return key.replace("_", "-") if style == "kebab" else key


@dataclass(frozen=True)
class NodeAnswer:
    """What differs between the nested PVE nodes of a lab; the rest is fixed."""

    fqdn: str
    root_password: str
    ssh_keys: tuple[str, ...]
    cidr: str  # "198.19.1.11/24"
    gateway: str
    dns: str
    mac: str  # "52:54:00:15:00:11"
    disk: str = "vda"
    filesystem: str = "ext4"
    keyboard: str = "en-us"
    country: str = "us"
    timezone: str = "UTC"
    mailto: str = ""  # empty: root@<domain of fqdn>
    power_off: bool = True
    swap_gb: int = 0

    def __post_init__(self) -> None:
        if not re.fullmatch(r"([0-9a-f]{2}:){5}[0-9a-f]{2}", self.mac, re.I):
            raise ConfigError(f"MAC {self.mac!r} is not valid", hint='write "52:54:00:15:00:11"')
        if not self.mailto:
            object.__setattr__(self, "mailto", f"root@{self.fqdn.partition('.')[2]}")


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace('"', '\\"')
        return '"' + re.sub(r"[\x00-\x1f\x7f]", lambda m: f"\\u{ord(m[0]):04x}", escaped) + '"'
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"no TOML form for {value!r}")


def _toml_key(dotted: str) -> str:
    return ".".join(p if re.fullmatch(r"[A-Za-z0-9_-]+", p) else _toml_value(p)
                    for p in dotted.split("."))


def _flat(body: dict, prefix: str = "") -> list[tuple[str, object]]:
    return [pair for k, v in body.items() for pair in
            (_flat(v, f"{prefix}{k}.") if isinstance(v, dict) else [(f"{prefix}{k}", v)])]


def to_toml(sections: dict[str, dict]) -> str:
    """Sections of (dotted key or sub-table -> str | int | bool | list of str) as TOML."""
    return "\n".join(f"[{_toml_key(name)}]\n" + "".join(
        f"{_toml_key(k)} = {_toml_value(v)}\n" for k, v in _flat(body))
        for name, body in sections.items())


def render(answer: NodeAnswer, *, iso_version: str, style: Style | None = None) -> str:
    """The answer.toml for one node, in the ISO's key style (or a forced one)."""
    preferred = key_style(iso_version)
    if style not in (None, "snake", "kebab"):
        raise ConfigError(f"key style {style!r} is not known", hint='use "snake" or "kebab"')
    if style == "kebab" and preferred == "snake":
        raise ConfigError(f"ISO {iso_version} knows only snake_case keys",
                          hint='leave style unset or use "snake"')
    s: Style = style or preferred
    glob: dict[str, object] = {
        "keyboard": answer.keyboard, "country": answer.country, "fqdn": answer.fqdn,
        "mailto": answer.mailto, "timezone": answer.timezone,
        _spell("root_password", s): answer.root_password}
    if answer.ssh_keys:
        glob[_spell("root_ssh_keys", s)] = list(answer.ssh_keys)
    if answer.power_off and powers_off_when_done(iso_version):
        glob[_spell("reboot_mode", s)] = "power-off"
    network = {"source": "from-answer", "cidr": answer.cidr, "gateway": answer.gateway,
               "dns": answer.dns,
               "filter.ID_NET_NAME_MAC": "*" + answer.mac.replace(":", "").lower()}
    disk: dict[str, object] = {"filesystem": answer.filesystem,
                               _spell("disk_list", s): [answer.disk]}
    if answer.filesystem in _FS_TABLE["lvm"]:
        disk["lvm.swapsize"] = answer.swap_gb
    elif answer.swap_gb:
        raise ConfigError(f"swap_gb={answer.swap_gb} with {answer.filesystem}: the installer "
                          "makes swap on LVM only", hint="use ext4 or xfs, or swap_gb=0")
    text = to_toml({"global": glob, "network": network, "disk-setup": disk})
    validate(text, iso_version=iso_version)
    return text


class _Checker:
    def __init__(self, version: IsoVersion) -> None:
        self.version, self.problems = version, list[str]()
        self.written: dict[str, str] = {}  # snake path -> the path as the text spells it
        self.style: Style = "kebab" if version >= (8, 4, 0) else "snake"

    def add(self, path: str, problem: str) -> None:
        self.problems.append(f"{path}: {problem}")

    def path(self, section: str, key: str) -> str:
        return self.written.get(f"{section}.{key}", f"{section}.{_spell(key, self.style)}")

    def table(self, path: str, table: object, spec: str) -> dict:
        """Known keys of one table, under their snake_case names, with the right types."""
        if not isinstance(table, dict):
            self.add(path, f"must be a table; write [{path}]")
            return {}
        known, seen = SCHEMA[spec], {}
        for key, value in table.items():
            name, where = key.replace("-", "_"), f"{path}.{key}"
            if name not in known:
                valid = ", ".join(_spell(k, self.style) for k in known)
                self.add(where, f"unknown key; valid keys here: {valid}")
                continue
            if "-" in key and self.version < (8, 4, 0):
                self.add(where, f"only ISO 8.4 and later know kebab-case keys; write {name}")
            if name in seen:
                self.add(where, f"given twice (also as {seen[name][0]}); keep one")
            want = known[name]
            if isinstance(value, bool) != (want is bool) or not isinstance(value, want):
                self.add(where, f"must be {_KINDS.get(want, 'a number')}, not {value!r}")
                continue
            inner = value.values() if isinstance(value, dict) and name == "filter" else \
                value if isinstance(value, list) else ()
            if not all(isinstance(x, str) for x in inner):
                self.add(where, f'must hold strings only, e.g. "*525400150011", not {value!r}')
            seen[name] = (key, value)
            self.written[f"{path}.{name}"] = where
        return {name: value for name, (_, value) in seen.items()}

    def need(self, section: str, values: dict, key: str, example: str) -> bool:
        if key not in values:
            self.add(self.path(section, key), f"missing; add {_spell(key, self.style)} = "
                     f"{example}")
        return key in values

    def one_of(self, section: str, values: dict, key: str, choices: tuple[str, ...]) -> None:
        if key in values and values[key] not in choices:
            self.add(self.path(section, key), f"{values[key]!r}: use one of "
                     + ", ".join(f'"{x}"' for x in choices))


def validate(text: str, *, iso_version: str) -> dict:
    """Check answer text against the installer's rules; the parsed dict if it is valid,
    otherwise one ConfigError listing every problem with its field path and fix."""
    c = _Checker(_supported(iso_version))
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"line (\d+)", str(exc))
        line = dict(enumerate(text.splitlines(), 1)).get(int(m[1]) if m else 0, "")
        raise ConfigError(f"answer file is not valid TOML: {exc}: {line.strip()!r}",
                          hint="fix the syntax of that line") from exc
    for name in data:
        if name not in ("global", "network", "disk-setup"):
            c.add(name, "unknown section; valid sections: global, network, disk-setup")
    _check_global(c, c.table("global", data.get("global", {}), "global"))
    _check_network(c, c.table("network", data.get("network", {}), "network"))
    _check_disk(c, c.table("disk-setup", data.get("disk-setup", {}), "disk-setup"))
    if c.problems:
        raise ConfigError(f"answer file has {len(c.problems)} problem(s):\n    - "
                          + "\n    - ".join(c.problems), hint="correct each field listed above")
    return data


def _check_global(c: _Checker, g: dict) -> None:
    for key, example in (("keyboard", '"en-us"'), ("country", '"us"'), ("timezone", '"UTC"'),
                         ("mailto", '"root@lab.test"'), ("fqdn", '"pve1.lab.test"')):
        c.need("global", g, key, example)
    labels = g.get("fqdn", "x.y").split(".")
    if len(labels) < 2 or not all(_HOST.fullmatch(x) for x in labels):
        c.add("global.fqdn", f"{g['fqdn']!r} is not a host name with a domain; "
              "write a full name such as pve1.lab.test")
    if not re.fullmatch(r"[a-z]{2}", g.get("country", "us")):
        c.add("global.country", f"{g['country']!r}: write a two-letter lower-case code "
              'such as "us"')
    plain, hashed = c.path("global", "root_password"), c.path("global", "root_password_hashed")
    if "root_password" in g and "root_password_hashed" in g:
        c.add(plain, f"both {plain} and {hashed} are set; keep one")
    elif "root_password" not in g and "root_password_hashed" not in g:
        c.add(plain, f"missing; set {plain.split('.')[1]} (or {hashed.split('.')[1]})")
    elif c.version >= (8, 4, 0) and len(g.get("root_password", "long enough")) < 8:
        c.add(plain, "ISO 8.4 and later need at least 8 characters; use a longer password")
    if "reboot_mode" in g and c.version < (8, 4, 3):
        c.add(c.path("global", "reboot_mode"), "only ISO 8.4.3 and later know it; remove it")
    c.one_of("global", g, "reboot_mode", ("reboot", "power-off"))


def _is_ip(text: str, network: bool = False) -> bool:
    try:
        ipaddress.ip_network(text, strict=False) if network else ipaddress.ip_address(text)
    except ValueError:
        return False
    return "/" in text or not network


def _check_network(c: _Checker, n: dict) -> None:
    if not c.need("network", n, "source", '"from-dhcp" (or "from-answer")'):
        return
    if n["source"] == "from-dhcp":
        for key in ("cidr", "dns", "gateway", "filter"):
            if key in n:
                c.add(f"network.{key}", 'not allowed with source = "from-dhcp"; remove it '
                      'or use source = "from-answer"')
    elif n["source"] == "from-answer":
        if c.need("network", n, "cidr", '"198.19.1.11/24"') and not _is_ip(n["cidr"], True):
            c.add("network.cidr", f'{n["cidr"]!r}: write address/prefix, "198.19.1.11/24"')
        for key in ("gateway", "dns"):
            if c.need("network", n, key, '"198.19.1.1"') and not _is_ip(n[key]):
                c.add(f"network.{key}", f"{n[key]!r} is not an IP address; write one")
        if not n.get("filter"):
            c.add("network.filter", 'from-answer needs a NIC filter; add '
                  'filter.ID_NET_NAME_MAC = "*525400150011" (the MAC, no colons)')
    else:
        c.one_of("network", n, "source", ("from-dhcp", "from-answer"))


def _check_disk(c: _Checker, d: dict) -> None:
    c.need("disk-setup", d, "filesystem", '"ext4"')
    c.one_of("disk-setup", d, "filesystem", FILESYSTEMS)
    disks, match = c.path("disk-setup", "disk_list"), c.path("disk-setup", "filter_match")
    if "disk_list" in d and "filter" in d:
        c.add(disks, "disk_list and filter are both set; use one of them")
    elif "disk_list" not in d and "filter" not in d:
        c.add(disks, f'no disk chosen; set {disks.split(".")[1]} = ["vda"] or a '
              'filter.<UDEV_KEY> = "glob"')
    elif d.get("disk_list") == []:
        c.add(disks, 'is empty; name the disks, e.g. ["vda"]')
    c.one_of("disk-setup", d, "filter_match", ("any", "all"))
    if "filter_match" in d and "filter" not in d:
        c.add(match, "only applies together with filter; remove it")
    fs = d.get("filesystem")
    for name, systems in _FS_TABLE.items():
        if name in d:
            c.table(f"disk-setup.{name}", d[name], name)
            if fs in FILESYSTEMS and fs not in systems:
                c.add(f"disk-setup.{name}", f"options for {'/'.join(systems)}, but filesystem "
                      f"is {fs}; remove them")


def _run(run, argv: list[str], fix: str) -> str:
    try:
        done = run(argv, check=True, timeout=60, capture_output=True, encoding="utf-8")
    except FileNotFoundError as exc:
        raise LabError(f"{argv[0]} is not installed (needed for the answer disk image)",
                       hint="apt-get install dosfstools mtools") from exc
    except subprocess.CalledProcessError as exc:
        raise LabError(f"`{shlex.join(argv)}` exited with {exc.returncode}: "
                       f"{(exc.stderr or '').strip() or '(no stderr)'}", hint=fix) from exc
    except subprocess.TimeoutExpired as exc:
        raise LabError(f"`{shlex.join(argv)}` did not finish within 60 s", hint=fix) from exc
    return done.stdout


def build_answer_image(text: str, image: Path, *, run=subprocess.run) -> Path:
    """A 1.44 MB FAT image labelled PROXMOX-AIS holding answer.toml (replaces `image`)."""
    image = Path(image)
    fix = f"check that {image.parent} exists and is writable"
    image.unlink(missing_ok=True)  # mkfs.vfat -C refuses an existing file
    fd, tmp = tempfile.mkstemp(prefix="answer-", suffix=".toml")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        _run(run, ["mkfs.vfat", "-C", "-n", LABEL, str(image), "1440"], fix)
        _run(run, ["mcopy", "-i", str(image), tmp, "::answer.toml"], fix)
    finally:
        os.unlink(tmp)
    return image


def read_answer_image(image: Path, *, run=subprocess.run) -> str:
    """The answer.toml inside an answer image."""
    return _run(run, ["mtype", "-i", str(image), "::answer.toml"], f"is {image} an answer image?")


def image_label(image: Path, *, run=subprocess.run) -> str:
    """The FAT volume label of an image ("" when it has none)."""
    out = _run(run, ["mlabel", "-i", str(image), "-s", "::"], f"is {image} a FAT image?")
    m = re.search(r"Volume label is (.*?)(?: \(abbr=.*\))?\s*$", out)
    return m[1].strip() if m else ""


def prepare_iso_commands(iso: Path, out: Path, *, assistant_available: bool,
                         mode_file: Path) -> list[list[str]]:
    """Commands that turn a stock PVE ISO into one fetching its answer from PROXMOX-AIS.
    Without the assistant, the caller first writes MODE_FILE_TEXT to `mode_file`."""
    if assistant_available:
        return [["proxmox-auto-install-assistant", "prepare-iso", str(iso),
                 "--fetch-from", "partition", "--partition-label", "proxmox-ais",
                 "--output", str(out)]]
    # UNVERIFIED fallback, read from the assistant's source (prepare-iso writes this file
    # into the ISO root); not yet tried against a real installer boot.
    return [["xorriso", "-indev", str(iso), "-outdev", str(out),
             "-map", str(mode_file), "/auto-installer-mode.toml", "-boot_image", "any", "keep"]]
