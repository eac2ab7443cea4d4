"""The libvirt lab's YAML file: defaults, and every mistake refused with its path and fix."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest
import yaml

from harness.errors import ConfigError
from lab.libvirt import config as libvirt_config
from lab.libvirt.config import Gateway, GuestSpec, NodeShape
from tests.unit.config_messages import fix_for

ENV = {"PVECHAOS_ROOT_PW": "correct-horse"}
net = ipaddress.ip_network


@pytest.fixture
def key(tmp_path: Path) -> Path:
    """A (dummy) SSH key and its .pub next to it."""
    path = tmp_path / "id_ed25519"
    path.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\ndummy\n")
    path.with_name(path.name + ".pub").write_text("ssh-ed25519 AAAAdummy test\n")
    return path


def minimal(key: Path) -> dict:
    return {
        "iso_version": "8.4-1",
        "root_password_env": "PVECHAOS_ROOT_PW",
        "ssh_key": str(key),
        "gateway": {"image": "gw-debian12.qcow2"},
        "guest": {"template": "local:vztmpl/pvechaos-guest_1.0_amd64.tar.xz"},
    }


def write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "libvirt.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def load(tmp_path: Path, data: dict, environ: dict | None = None):
    return libvirt_config.load(write(tmp_path, data), environ=ENV if environ is None else environ)


def refusal(tmp_path: Path, data: dict, environ: dict | None = None) -> str:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, data, environ)
    return str(info.value)


# -- a valid file ---------------------------------------------------------------------------
def test_minimal_file_loads_with_the_documented_defaults(tmp_path, key):
    path = write(tmp_path, minimal(key))
    config = libvirt_config.load(path, environ=ENV)
    assert config.source == str(path)
    assert config.name == "pvechaos"
    assert config.node_count == 3
    assert config.hosts == ("qemu:///system",)
    assert config.allowed_range == net("198.18.0.0/15")
    assert config.management == net("198.19.0.0/24")
    assert config.corosync == net("198.19.128.0/24")
    assert config.pool == "pvechaos"
    assert config.pool_path == Path("/var/lib/pvechaos/libvirt")
    assert config.iso is None
    assert config.iso_version == "8.4-1"
    assert config.root_password == "correct-horse"
    assert config.ssh_key == key
    assert config.domain == "lab.test"
    assert config.forward == "none"
    assert config.node == NodeShape()
    assert config.node.memory_mib == 4096 and config.node.cpu == "host-passthrough"
    assert config.gateway == Gateway(image="gw-debian12.qcow2")
    assert config.gateway.export == "/srv/pvechaos"
    assert config.guest == GuestSpec(template="local:vztmpl/pvechaos-guest_1.0_amd64.tar.xz")
    assert (config.guest.port, config.guest.bridge, config.guest.storage_id) == (
        7000, "vmbr0", "shared")
    assert config.install_timeout_s == 30 * 60.0
    assert config.boot_timeout_s == 10 * 60.0
    assert config.upgrade_command is None  # the upgrade verb then refuses, naming it


def test_every_field_given(tmp_path, key):
    data = minimal(key) | {
        "name": "nightly", "hosts": ["qemu:///system", "qemu+ssh://root@runner2/system"],
        "pool": "pool_1", "pool_path": "/srv/pool", "iso": "/srv/iso/pve.iso",
        "domain": "chaos.example", "allowed_range": "10.90.0.0/16",
        "management": "10.90.0.0/24", "corosync": "10.90.1.0/24", "forward": "nat", "nodes": 5,
        "node": {"memory_mib": 8192, "vcpus": 4, "disk_gib": 64, "cpu": "host-model",
                 "watchdog": False},
        "gateway": {"image": "gw.qcow2", "export": "/export/x", "memory_mib": 1024},
        "guest": {"template": "local:vztmpl/g.tar.xz", "port": 7100, "bridge": "vmbr1",
                  "storage": "nfs1"},
        "install_timeout_min": 45, "boot_timeout_min": 5,
        "upgrade_command": "apt-get -y dist-upgrade",
    }
    config = load(tmp_path, data)
    assert config.name == "nightly"
    assert config.hosts == ("qemu:///system", "qemu+ssh://root@runner2/system")
    assert config.iso == Path("/srv/iso/pve.iso")
    assert (config.management, config.corosync) == (net("10.90.0.0/24"), net("10.90.1.0/24"))
    assert config.forward == "nat" and config.node_count == 5
    assert config.node == NodeShape(8192, 4, 64, "host-model", False)
    assert config.gateway == Gateway("gw.qcow2", "/export/x", 1024)
    assert config.guest == GuestSpec("local:vztmpl/g.tar.xz", 7100, "vmbr1", "nfs1")
    assert (config.install_timeout_s, config.boot_timeout_s) == (2700.0, 300.0)
    assert config.upgrade_command == "apt-get -y dist-upgrade"


# -- mistakes -------------------------------------------------------------------------------
def drop(*path: str):
    def change(data: dict) -> None:
        target = data
        for part in path[:-1]:
            target = target[part]
        del target[path[-1]]
    return change


def put(value, *path: str):
    def change(data: dict) -> None:
        target = data
        for part in path[:-1]:
            target = target.setdefault(part, {})
        target[path[-1]] = value
    return change


MISTAKES = [
    pytest.param(drop("gateway"), "gateway: is missing", "add a `gateway:` section",
                 id="no-gateway"),
    pytest.param(drop("guest", "template"), "guest.template: is missing",
                 "write `template:` like local:vztmpl/", id="no-guest-template"),
    pytest.param(put("nfs:pvechaos.tar.xz", "guest", "template"),
                 "guest.template: 'nfs:pvechaos.tar.xz' is not valid",
                 "write it like local:vztmpl/", id="bad-guest-template"),
    pytest.param(put(["http://x"], "hosts"),
                 "hosts[0]: 'http://x' is not a libvirt URI (scheme 'http')",
                 "write a libvirt URI such as qemu:///system", id="http-uri"),
    pytest.param(put(["qemu:///system", "qemu+ssh:///system"], "hosts"),
                 "hosts[1]: 'qemu+ssh:///system' names no host",
                 "qemu+ssh://root@runner2/system", id="ssh-uri-without-host"),
    pytest.param(put(["qemu:///foo"], "hosts"), "hosts[0]: 'qemu:///foo' must end in /system "
                 "or /session", "write a libvirt URI", id="uri-bad-path"),
    pytest.param(put(["system"], "hosts"), "hosts[0]: 'system' is not a libvirt URI "
                 "(scheme 'missing')", "write a libvirt URI", id="uri-no-scheme"),
    pytest.param(put(["qemu+ssh://[runner2/system"], "hosts"),
                 "hosts[0]: 'qemu+ssh://[runner2/system' is not a libvirt URI",
                 "write a libvirt URI", id="uri-unparsable"),
    pytest.param(put(["qemu+ssh://root@runner2:99999/system"], "hosts"),
                 "hosts[0]: 'qemu+ssh://root@runner2:99999/system' is not a libvirt URI",
                 "write a libvirt URI", id="uri-bad-port"),
    pytest.param(put([7], "hosts"), "hosts[0]: 7 is not text", "write a libvirt URI",
                 id="uri-not-text"),
    pytest.param(put([], "hosts"), "hosts: is empty", "list at least one libvirt URI",
                 id="no-hosts"),
    pytest.param(put("qemu:///system", "hosts"), "hosts: must be a list, not text",
                 "write `hosts:` as a list", id="hosts-not-a-list"),
    pytest.param(put("10.0.0.0/24", "management"),
                 "management: 10.0.0.0/24 lies outside the lab range 198.18.0.0/15",
                 "choose a network inside 198.18.0.0/15", id="management-outside-range"),
    pytest.param(put("198.19.0.0/25", "corosync"),
                 "corosync: 198.19.0.0/25 overlaps management 198.19.0.0/24",
                 "give corosync its own subnet", id="corosync-overlaps-management"),
    pytest.param(put("198.19.0.0/28", "management"), "management: 198.19.0.0/28 is too small",
                 "use a /27 or larger", id="management-too-small"),
    pytest.param(put("198.19.0.1/24", "management"), "management: '198.19.0.1/24' is not a "
                 "network", "write it as an IPv4 network", id="management-host-bits"),
    pytest.param(put("8.4-1", "iso_verison"), "iso_verison: is not a known key",
                 "did you mean `iso_version`?", id="typo-key"),
    pytest.param(put(4096, "node", "memroy_mib"), "node.memroy_mib: is not a known key",
                 "did you mean `memory_mib`?", id="typo-in-node"),
    pytest.param(drop("iso_version"), "iso_version: is missing", 'write `iso_version:` like '
                 '"8.4-1"', id="no-iso-version"),
    pytest.param(put(8.4, "iso_version"), "iso_version: must be text, not a number (8.4)",
                 'write `iso_version:` like "8.4-1"', id="iso-version-a-float"),
    pytest.param(put("Nightly", "name"), "name: 'Nightly' is not valid",
                 "write it like nightly", id="bad-name"),
    pytest.param(put("hunter22", "root_password"), "root_password: holds a secret in the "
                 "file", "write `root_password_env: THAT_VARIABLE` instead",
                 id="literal-root-password"),
    pytest.param(put("NOT_SET_ANYWHERE", "root_password_env"),
                 "root_password_env: environment variable NOT_SET_ANYWHERE is not set",
                 "export NOT_SET_ANYWHERE=... before the run", id="root-password-unset"),
    pytest.param(put("SHORT_PW", "root_password_env"),
                 "root_password_env: the root password is shorter than 8 characters",
                 "use 8 or more", id="root-password-short"),
    pytest.param(put(1024, "node", "memory_mib"), "node.memory_mib: 1024 is too small",
                 "use 2048 or more", id="memory-too-small"),
    pytest.param(put(4, "node", "disk_gib"), "node.disk_gib: 4 is too small",
                 "use 8 or more", id="disk-too-small"),
    pytest.param(put("max", "node", "cpu"), "node.cpu: 'max' is not one of host-passthrough, "
                 "host-model, qemu64", "write one of host-passthrough", id="bad-cpu"),
    pytest.param(put("4GiB", "node", "memory_mib"), "node.memory_mib: must be a whole number, "
                 "not text ('4GiB')", "write `memory_mib:` as a whole number",
                 id="memory-as-text"),
    pytest.param(put(70000, "guest", "port"), "guest.port: 70000 is not a TCP port",
                 "use 1-65535", id="port-too-big"),
    pytest.param(put(12, "nodes"), "nodes: 12 nodes are not supported", "use 1 to 9 nodes",
                 id="too-many-nodes"),
    pytest.param(put(0, "nodes"), "nodes: 0 is too small", "use 1 or more", id="no-nodes"),
    pytest.param(put(True, "nodes"), "nodes: must be a whole number, not true/false",
                 "write `nodes:` as a whole number", id="nodes-a-bool"),
    pytest.param(put("yes", "forward"), "forward: 'yes' is not one of none, nat, route",
                 "write one of none, nat, route", id="forward-unknown"),
    pytest.param(put("lab", "domain"), "domain: 'lab' is not valid", "write it like lab.test",
                 id="bad-domain"),
    pytest.param(put("ssd", "gateway"), "gateway: must be a mapping of keys, not text",
                 "indent its keys under it", id="gateway-not-a-mapping"),
    pytest.param(put("vm-bridge", "guest", "bridge"), "guest.bridge: 'vm-bridge' is not valid",
                 "write it like vmbr0", id="bad-bridge"),
    pytest.param(put("tcg", "virt_type"), "virt_type: 'tcg' is not one of kvm, qemu",
                 "write one of kvm, qemu", id="virt-type-unknown"),
    # libvirt refuses host-passthrough and host-model without KVM
    pytest.param(put("qemu", "virt_type"), "virt_type: virt_type qemu (no KVM) cannot give "
                 "the nodes cpu host-passthrough", "set node: {cpu: qemu64}",
                 id="tcg-with-host-cpu"),
]


@pytest.mark.parametrize("change, message, fix", MISTAKES)
def test_mistakes_name_the_field_and_the_fix(tmp_path, key, change, message, fix):
    data = minimal(key)
    change(data)
    text = refusal(tmp_path, data, ENV | {"SHORT_PW": "abc1234"})
    assert text.startswith("libvirt lab config ")
    assert str(tmp_path / "libvirt.yaml") in text
    assert fix in fix_for(text, message)


def test_ssh_key_without_its_pub(tmp_path, key):
    key.with_name(key.name + ".pub").unlink()
    text = refusal(tmp_path, minimal(key))
    assert f"ssh_key: {key}.pub is missing" in text
    assert f"fix: ssh-keygen -y -f {key} > {key}.pub" in text


def test_ssh_key_missing(tmp_path, key):
    data = minimal(key) | {"ssh_key": str(tmp_path / "no_such_key")}
    text = refusal(tmp_path, data)
    assert f"ssh_key: {tmp_path / 'no_such_key'} does not exist" in text
    assert "fix: give the path of an existing file" in text


def test_management_outside_a_narrowed_allowed_range(tmp_path, key):
    data = minimal(key) | {"allowed_range": "10.90.0.0/16"}
    text = refusal(tmp_path, data)
    assert "management: 198.19.0.0/24 lies outside the lab range 10.90.0.0/16" in text
    assert "corosync: 198.19.128.0/24 lies outside the lab range 10.90.0.0/16" in text


def test_missing_gateway_section_is_named_with_its_fix(tmp_path, key):
    data = minimal(key)
    del data["gateway"]
    text = refusal(tmp_path, data)
    # one problem, not one more for each of the section's fields
    assert text.endswith(": gateway: is missing\n  fix: add a `gateway:` section")


def test_all_problems_of_the_file_are_listed(tmp_path, key):
    data = minimal(key) | {"iso_verison": "8.4", "nodes": 12, "hosts": ["http://x"]}
    data["node"] = {"memory_mib": 100}
    text = refusal(tmp_path, data, {})
    assert f"libvirt lab config {tmp_path / 'libvirt.yaml'} has 5 problems:" in text
    for part in ("hosts[0]: 'http://x'", "root_password_env: environment variable "
                 "PVECHAOS_ROOT_PW is not set", "nodes: 12 nodes", "node.memory_mib: 100",
                 "iso_verison: is not a known key"):
        assert part in text


def test_a_short_password_is_never_shown(tmp_path, key):
    text = refusal(tmp_path, minimal(key), {"PVECHAOS_ROOT_PW": "Zq7#x"})
    assert "shorter than 8 characters" in text
    assert "Zq7#x" not in text


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="libvirt lab config .* does not exist"):
        libvirt_config.load(tmp_path / "nope.yaml", environ=ENV)


def test_environment_defaults_to_the_process_environment(tmp_path, key, monkeypatch):
    monkeypatch.setenv("PVECHAOS_ROOT_PW", "from-the-env")
    config = libvirt_config.load(write(tmp_path, minimal(key)))
    assert config.root_password == "from-the-env"


# -- one lab per xdist worker ----------------------------------------------------------------
def two_hosts(tmp_path, key):
    data = minimal(key) | {"name": "nightly", "hosts": ["qemu:///system",
                                                        "qemu+ssh://root@runner2/system"]}
    return load(tmp_path, data)


def test_worker_zero_is_the_configured_lab_on_the_first_host(tmp_path, key):
    config = two_hosts(tmp_path, key)
    zero = config.for_worker(0)
    assert zero.name == "nightly"
    assert (zero.management, zero.corosync) == (net("198.19.0.0/24"), net("198.19.128.0/24"))
    assert zero.hosts == ("qemu:///system",)


def test_worker_two_gets_shifted_subnets_a_suffix_and_its_host(tmp_path, key):
    config = two_hosts(tmp_path, key)
    two = config.for_worker(2)
    assert two.name == "nightly2"
    assert two.management == net("198.19.2.0/24")
    assert two.corosync == net("198.19.130.0/24")
    assert two.hosts == ("qemu:///system",)
    one = config.for_worker(1)
    assert one.hosts == ("qemu+ssh://root@runner2/system",)
    assert (one.management, one.corosync) == (net("198.19.1.0/24"), net("198.19.129.0/24"))
    # everything else is the same lab
    assert (two.root_password, two.node_count, two.guest) == (
        config.root_password, config.node_count, config.guest)
    # the original is unchanged
    assert config.hosts == ("qemu:///system", "qemu+ssh://root@runner2/system")


def test_worker_subnets_never_overlap_with_the_defaults(tmp_path, key):
    config = load(tmp_path, minimal(key))
    labs = [config.for_worker(i) for i in range(8)]
    nets = [n for lab in labs for n in (lab.management, lab.corosync)]
    for i, a in enumerate(nets):
        for b in nets[i + 1:]:
            assert not a.overlaps(b), (a, b)


def test_worker_outside_the_allowed_range_is_refused(tmp_path, key):
    data = minimal(key) | {"allowed_range": "198.19.0.0/16", "management": "198.19.0.0/24",
                           "corosync": "198.19.254.0/24"}
    config = load(tmp_path, data)
    assert config.for_worker(1).corosync == net("198.19.255.0/24")
    with pytest.raises(ConfigError) as info:
        config.for_worker(2)
    text = str(info.value)
    assert str(tmp_path / "libvirt.yaml") in text
    assert "worker 2's lab would use 198.20.0.0/24, outside allowed_range 198.19.0.0/16" \
        in text
    assert "fix: run fewer xdist workers" in text


def test_worker_past_the_end_of_the_address_space_is_refused(tmp_path, key):
    data = minimal(key) | {"allowed_range": "255.255.0.0/16", "management": "255.255.0.0/24",
                           "corosync": "255.255.255.0/24"}
    config = load(tmp_path, data)
    with pytest.raises(ConfigError, match="worker 1's lab would use"):
        config.for_worker(1)


def test_adjacent_subnets_would_hand_two_workers_the_same_network(tmp_path, key):
    config = load(tmp_path, {**minimal(key), "management": "198.19.0.0/24",
                             "corosync": "198.19.1.0/24"})
    assert config.for_worker(0).corosync == ipaddress.ip_network("198.19.1.0/24")
    with pytest.raises(ConfigError, match="management 198.19.1.0/24 overlaps another's "
                                          "corosync 198.19.1.0/24") as info:
        config.for_worker(1)
    assert "further from the management one" in str(info.value)


def test_labs_in_either_half_of_the_range_get_their_own_bridges(tmp_path, key):
    from lab.libvirt.plan import Plan

    low = load(tmp_path, {**minimal(key), "management": "198.18.5.0/24",
                          "corosync": "198.18.133.0/24"})
    high = load(tmp_path, {**minimal(key), "management": "198.19.5.0/24",
                           "corosync": "198.19.133.0/24"})
    bridges = {Plan(c).management_bridge for c in (low, high)} | {
        Plan(c).corosync_bridge for c in (low, high)}
    assert len(bridges) == 4 and all(len(b) <= 15 for b in bridges)


# -- storage ids: PVE's rule, the same as `pvechaos-lab guest-template --storage` ---------
@pytest.mark.parametrize("storage_id", ["shared", "NFS-1", "ceph.pool_2", "a..b", "ab"])
def test_every_pve_storage_id_is_taken_for_the_guest(tmp_path, key, storage_id):
    from lab.guest_template import check_storage_id

    config = load(tmp_path, {**minimal(key), "guest": {
        "template": f"{storage_id}:vztmpl/g.tar.xz", "storage": storage_id}})
    assert config.guest.storage_id == storage_id
    assert config.guest.template == f"{storage_id}:vztmpl/g.tar.xz"
    assert check_storage_id(storage_id) == storage_id  # one rule: the CLI's


@pytest.mark.parametrize("storage_id", ["my storage", "..", "s", "1abc", "shared-", "x'y",
                                        "_x", "a/b"])
def test_what_pve_refuses_as_a_storage_id_is_refused_with_the_rule(tmp_path, key,
                                                                   storage_id):
    from lab.guest_template import check_storage_id

    template = f"{storage_id}:vztmpl/g.tar.xz"
    text = refusal(tmp_path, {**minimal(key), "guest": {"template": template,
                                                        "storage": storage_id}})
    assert f"guest.template: {template!r} is not valid" in text
    assert fix_for(text, f"guest.storage: {storage_id!r} is not valid") == (
        "write it like shared (a PVE storage id: a letter, then letters, digits, '-', '_' "
        "or '.', ending in a letter or digit)")
    with pytest.raises(ConfigError):
        check_storage_id(storage_id)  # one rule: the CLI's


def test_a_template_in_a_subdirectory_is_no_volume_id(tmp_path, key):
    text = refusal(tmp_path, {**minimal(key), "guest": {"template": "local:vztmpl/a/g.tar"}})
    assert "guest.template: 'local:vztmpl/a/g.tar' is not valid" in text
