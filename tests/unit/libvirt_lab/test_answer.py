"""Answer files for the PVE automated installer: rendering per ISO version, validation with
every problem named with its field and fix, and the PROXMOX-AIS answer disk image."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import tomllib
from pathlib import Path

import pytest

from harness.errors import ConfigError, LabError
from lab.libvirt.answer import (
    MODE_FILE_TEXT,
    NodeAnswer,
    build_answer_image,
    image_label,
    key_style,
    parse_iso_version,
    powers_off_when_done,
    prepare_iso_commands,
    read_answer_image,
    render,
    to_toml,
    validate,
)

NODE = NodeAnswer(
    fqdn="pve1.lab.test", root_password="lab-secret", ssh_keys=("ssh-ed25519 AAAAC3 lab@host",),
    cidr="198.19.1.11/24", gateway="198.19.1.1", dns="198.19.1.1", mac="52:54:00:15:00:11")
HAVE_MTOOLS = all(shutil.which(t) for t in ("mkfs.vfat", "mcopy", "mtype", "mlabel"))


# -- ISO versions --------------------------------------------------------------------------
@pytest.mark.parametrize("text, expected", [
    ("8.4-1", (8, 4, 0)), ("8.4.3", (8, 4, 3)), ("9.1-1", (9, 1, 0)), ("8.2", (8, 2, 0))])
def test_iso_versions_parse(text, expected):
    assert parse_iso_version(text) == expected


def test_iso_versions_compare_as_releases():
    assert parse_iso_version("8.4-1") < parse_iso_version("8.4.3") < parse_iso_version("9.1-1")
    assert parse_iso_version("8.10") > parse_iso_version("8.9")


def test_a_malformed_iso_version_is_refused():
    with pytest.raises(ConfigError, match="'eight'") as err:
        parse_iso_version("eight")
    assert "8.4-1" in err.value.hint


@pytest.mark.parametrize("version, style", [
    ("8.2-1", "snake"), ("8.3-1", "snake"), ("8.4-1", "kebab"), ("8.4.3", "kebab"),
    ("9.1-1", "kebab")])
def test_key_style_follows_the_iso(version, style):
    assert key_style(version) == style


@pytest.mark.parametrize("call", [key_style, powers_off_when_done])
def test_isos_before_8_2_have_no_automated_installer(call):
    with pytest.raises(ConfigError, match="ISO 8.1-2 has no automated installer") as err:
        call("8.1-2")
    assert "8.2 or later" in err.value.hint


# -- rendering -----------------------------------------------------------------------------
@pytest.mark.parametrize("version, style", [("8.3-1", "snake"), ("8.4-1", "kebab"),
                                            ("9.1-1", "kebab")])
def test_rendered_answer_parses_and_uses_the_isos_spelling(version, style):
    data = tomllib.loads(render(NODE, iso_version=version))
    want, other = (("root_password", "root-password") if style == "snake"
                   else ("root-password", "root_password"))
    assert data["global"][want] == "lab-secret" and other not in data["global"]
    disk_list = "disk_list" if style == "snake" else "disk-list"
    assert data["disk-setup"] == {"filesystem": "ext4", disk_list: ["vda"],
                                  "lvm": {"swapsize": 0}}
    ssh_keys = "root_ssh_keys" if style == "snake" else "root-ssh-keys"
    assert data["global"][ssh_keys] == ["ssh-ed25519 AAAAC3 lab@host"]
    assert data["global"]["fqdn"] == "pve1.lab.test"
    assert data["global"]["mailto"] == "root@lab.test"
    assert data["network"]["source"] == "from-answer"
    assert data["network"]["cidr"] == "198.19.1.11/24"


@pytest.mark.parametrize("version, present", [
    ("8.3-1", False), ("8.4-1", False), ("8.4.3", True), ("9.1-1", True)])
def test_reboot_mode_power_off_only_from_8_4_3(version, present):
    data = tomllib.loads(render(NODE, iso_version=version))
    modes = {k: v for k, v in data["global"].items() if k.startswith("reboot")}
    assert modes == ({"reboot-mode": "power-off"} if present else {})
    assert powers_off_when_done(version) is present


def test_no_reboot_mode_when_the_node_should_reboot():
    node = NodeAnswer(**{**NODE.__dict__, "power_off": False})
    assert "reboot" not in render(node, iso_version="9.1-1")


def test_nic_filter_is_the_mac_without_colons_lower_case():
    node = NodeAnswer(**{**NODE.__dict__, "mac": "52:54:00:AB:0C:11"})
    data = tomllib.loads(render(node, iso_version="8.4-1"))
    assert data["network"]["filter"] == {"ID_NET_NAME_MAC": "*525400ab0c11"}
    assert 'filter.ID_NET_NAME_MAC = "*525400ab0c11"' in render(node, iso_version="8.4-1")


def test_a_bad_mac_is_refused():
    with pytest.raises(ConfigError, match="'52-54-00-15-00-11'"):
        NodeAnswer(**{**NODE.__dict__, "mac": "52-54-00-15-00-11"})


def test_mailto_defaults_to_root_at_the_domain_and_can_be_set():
    assert NODE.mailto == "root@lab.test"
    assert NodeAnswer(**{**NODE.__dict__, "mailto": "ops@example.org"}).mailto == \
        "ops@example.org"


def test_forcing_a_style():
    assert "root_password =" in render(NODE, iso_version="9.1-1", style="snake")
    with pytest.raises(ConfigError, match="only snake_case") as err:
        render(NODE, iso_version="8.3-1", style="kebab")
    assert "snake" in err.value.hint


def test_swap_goes_to_lvm_and_is_refused_without_it():
    data = tomllib.loads(render(NodeAnswer(**{**NODE.__dict__, "swap_gb": 4}),
                                iso_version="8.4-1"))
    assert data["disk-setup"]["lvm"] == {"swapsize": 4}
    zfs = tomllib.loads(render(NodeAnswer(**{**NODE.__dict__, "filesystem": "zfs"}),
                               iso_version="8.4-1"))
    assert zfs["disk-setup"] == {"filesystem": "zfs", "disk-list": ["vda"]}
    with pytest.raises(ConfigError, match="swap_gb=4 with zfs"):
        render(NodeAnswer(**{**NODE.__dict__, "filesystem": "zfs", "swap_gb": 4}),
               iso_version="8.4-1")


def test_strings_are_escaped():
    node = NodeAnswer(**{**NODE.__dict__, "root_password": 'q"uo\\te\tx#y'})
    assert tomllib.loads(render(node, iso_version="8.4-1"))["global"]["root-password"] == \
        'q"uo\\te\tx#y'
    text = to_toml({"s": {"odd key": True, "n": 3, "l": ["a", "b"], "t": {"X_Y": "v"}}})
    assert tomllib.loads(text) == {"s": {"odd key": True, "n": 3, "l": ["a", "b"],
                                         "t": {"X_Y": "v"}}}


# -- validation ----------------------------------------------------------------------------
def answer(version: str, **edits: object) -> str:
    """The rendered NODE answer with edits: "section__key" (dashes as "_d_") -> value, or
    None to delete the key."""
    data = tomllib.loads(render(NODE, iso_version=version))
    for name, value in edits.items():
        section, key = (part.replace("_d_", "-") for part in name.split("__"))
        table = data.setdefault(section, {})
        if value is None:
            table.pop(key)
        else:
            table[key] = value
    return to_toml(data)


def test_valid_text_gives_the_parsed_dict():
    text = answer("8.4-1")
    assert validate(text, iso_version="8.4-1") == tomllib.loads(text)


def test_a_short_password_is_fine_before_8_4():
    assert validate(answer("8.3-1", global__root_password="short"), iso_version="8.3-1")


def test_dhcp_and_disk_filter_answers_are_valid():
    text = answer("8.4-1", network__cidr=None, network__gateway=None, network__dns=None,
                  network__filter=None, network__source="from-dhcp",
                  disk_d_setup__disk_d_list=None, disk_d_setup__filter={"ID_SERIAL": "*QEMU*"},
                  disk_d_setup__filter_d_match="all")
    assert validate(text, iso_version="8.4-1")["network"] == {"source": "from-dhcp"}


@pytest.mark.parametrize("version, edits, path, fix", [
    ("8.4-1", {"global__fqdn": "pve1"}, "global.fqdn", "pve1.lab.test"),
    ("8.4-1", {"global__root_d_password": "short"}, "global.root-password", "at least 8"),
    ("8.4-1", {"global__root_d_password_d_hashed": "$5$x"}, "global.root-password",
     "keep one"),
    ("8.3-1", {"global__root_password": None}, "global.root_password",
     "set root_password (or root_password_hashed)"),
    ("8.4-1", {"network__filter": None}, "network.filter", 'ID_NET_NAME_MAC = "*5254'),
    ("8.4-1", {"network__source": "from-dhcp", "network__gateway": None, "network__dns": None,
               "network__filter": None}, "network.cidr", 'remove it or use source'),
    ("8.3-1", {"disk_d_setup__disk_list": None}, "disk-setup.disk_list",
     'set disk_list = ["vda"] or a filter.<UDEV_KEY>'),
    ("8.4-1", {"disk_d_setup__filter": {"ID_SERIAL": "*"}}, "disk-setup.disk-list",
     "use one of them"),
    ("8.4-1", {"global__root_pasword": "lab-secret"}, "global.root_pasword",
     "valid keys here: keyboard, country, fqdn, mailto, timezone, root-password,"),
    ("8.3-1", {"global__root_d_password": "lab-secret", "global__root_password": None},
     "global.root-password", "only ISO 8.4 and later know kebab-case keys; write root_password"),
    ("8.4-1", {"global__root_password": "lab-secret"}, "global.root_password",
     "given twice (also as root-password); keep one"),
    ("8.4-1", {"disk_d_setup__filesystem": "ntfs"}, "disk-setup.filesystem",
     'use one of "ext4", "xfs", "zfs", "btrfs"'),
    ("8.4-1", {"disk_d_setup__zfs": {"ashift": 12}}, "disk-setup.zfs", "remove them"),
    ("8.4-1", {"disk_d_setup__lvm": {"swapsize": "8G"}}, "disk-setup.lvm.swapsize",
     "must be a number"),
    ("8.4-1", {"global__reboot_d_mode": "power-off"}, "global.reboot-mode", "8.4.3 and later"),
    ("8.4-1", {"global__country": "USA"}, "global.country", "two-letter lower-case"),
    ("8.4-1", {"network__gateway": "router"}, "network.gateway", "not an IP address"),
    ("8.4-1", {"disk_setup__filesystem": "ext4"}, "disk_setup",
     "valid sections: global, network, disk-setup"),
], ids=["hostname-only-fqdn", "short-password-8.4", "password-and-hashed", "no-password",
        "from-answer-without-filter", "from-dhcp-with-cidr", "no-disk", "disk-list-and-filter",
        "unknown-key", "kebab-on-8.3", "snake-and-kebab", "bad-filesystem", "zfs-opts-on-ext4",
        "lvm-type", "reboot-mode-8.4-1", "country", "gateway", "unknown-section"])
def test_validate_names_the_field_and_the_fix(version, edits, path, fix):
    with pytest.raises(ConfigError) as err:
        validate(answer(version, **edits), iso_version=version)
    lines = [line for line in str(err.value).splitlines() if line.startswith(f"    - {path}:")]
    assert lines and fix in " ".join(lines), str(err.value)
    assert "1 problem(s)" in str(err.value)


def test_validate_refuses_iso_8_1():
    with pytest.raises(ConfigError, match="iso_version: ISO 8.1 has no automated") as err:
        validate(answer("8.3-1"), iso_version="8.1")
    assert err.value.hint == "use a Proxmox VE ISO 8.2 or later"


def test_all_problems_are_reported_together():
    text = answer("8.4-1", global__fqdn="pve1", global__root_d_password="short",
                  disk_d_setup__filesystem="ntfs", network__filter=None)
    with pytest.raises(ConfigError) as err:
        validate(text, iso_version="8.4-1")
    message = str(err.value)
    assert "4 problem(s)" in message
    for path in ("global.fqdn", "global.root-password", "disk-setup.filesystem",
                 "network.filter"):
        assert f"- {path}:" in message


def test_toml_syntax_errors_name_the_line():
    with pytest.raises(ConfigError, match=r"line 2.*'fqdn = pve1'") as err:
        validate('[global]\nfqdn = pve1\n', iso_version="8.4-1")
    assert "syntax" in err.value.hint


# -- the answer image ----------------------------------------------------------------------
@pytest.fixture
def private_tmp(tmp_path, monkeypatch) -> Path:
    """tempfile's directory, so tests see whether the temporary answer file is removed."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


@pytest.mark.skipif(not HAVE_MTOOLS, reason="needs dosfstools and mtools")
def test_the_answer_image_is_built_and_reads_back(tmp_path, private_tmp):
    text = render(NODE, iso_version="8.4.3")
    image = tmp_path / "pve1-answer.img"
    assert build_answer_image(text, image) == image
    assert image.stat().st_size == 1440 * 1024
    assert image_label(image) == "PROXMOX-AIS"
    assert read_answer_image(image) == text
    assert list(private_tmp.iterdir()) == []
    build_answer_image("# second\n", image)  # an existing image is replaced
    assert read_answer_image(image) == "# second\n"


def test_the_image_commands_and_the_answer_they_copy(tmp_path, private_tmp):
    calls = []

    def run(argv, **kwargs):
        calls.append((argv, kwargs))
        if argv[0] == "mcopy":
            assert Path(argv[3]).read_text() == "answer text\n"
        return subprocess.CompletedProcess(argv, 0, "", "")

    image = tmp_path / "a.img"
    build_answer_image("answer text\n", image, run=run)
    assert [argv[:3] + argv[4:] for argv, _ in calls] == [
        ["mkfs.vfat", "-C", "-n", str(image), "1440"], ["mcopy", "-i", str(image), "::answer.toml"]]
    assert calls[0][0][3] == "PROXMOX-AIS"
    assert all(kw["check"] is True and kw["timeout"] == 60 for _, kw in calls)
    assert list(private_tmp.iterdir()) == []


def test_a_missing_tool_says_what_to_install(tmp_path, private_tmp):
    def run(argv, **kwargs):
        raise FileNotFoundError(2, "No such file or directory", argv[0])

    with pytest.raises(LabError, match="mkfs.vfat is not installed") as err:
        build_answer_image("x = 1\n", tmp_path / "a.img", run=run)
    assert err.value.hint == "apt-get install dosfstools mtools"
    assert list(private_tmp.iterdir()) == []


def test_a_failing_command_quotes_its_stderr(tmp_path, private_tmp):
    def run(argv, **kwargs):
        if argv[0] == "mcopy":
            raise subprocess.CalledProcessError(1, argv, "", "Disk full\n")
        return subprocess.CompletedProcess(argv, 0, "", "")

    with pytest.raises(LabError, match=r"`mcopy -i .*` exited with 1: Disk full"):
        build_answer_image("x = 1\n", tmp_path / "a.img", run=run)
    assert list(private_tmp.iterdir()) == []


# -- preparing the ISO ---------------------------------------------------------------------
def test_prepare_iso_with_the_assistant():
    assert prepare_iso_commands(Path("/isos/pve.iso"), Path("/isos/auto.iso"),
                                assistant_available=True, mode_file=Path("/t/mode.toml")) == [
        ["proxmox-auto-install-assistant", "prepare-iso", "/isos/pve.iso", "--fetch-from",
         "partition", "--partition-label", "proxmox-ais", "--output", "/isos/auto.iso"]]


def test_prepare_iso_without_the_assistant_maps_the_mode_file():
    assert prepare_iso_commands(Path("/isos/pve.iso"), Path("/isos/auto.iso"),
                                assistant_available=False, mode_file=Path("/t/mode.toml")) == [
        ["xorriso", "-indev", "/isos/pve.iso", "-outdev", "/isos/auto.iso",
         "-map", "/t/mode.toml", "/auto-installer-mode.toml", "-boot_image", "any", "keep"]]
    assert tomllib.loads(MODE_FILE_TEXT) == {"mode": "partition",
                                             "partition_label": "proxmox-ais"}
