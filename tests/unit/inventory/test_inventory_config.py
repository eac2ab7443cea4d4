"""The inventory file of an existing cluster: a valid one loads, every mistake is refused
with its field path and fix, and all mistakes of a file are listed together."""

from __future__ import annotations

import copy
import ipaddress
from pathlib import Path

import pytest
import yaml

from harness.errors import ConfigError
from lab.inventory import config as inventory_config
from lab.inventory.config import PowerSpec
from tests.unit.config_messages import fix_for

ENV = {"BMC_PW": "bmc-secret", "REDFISH_PW": "rf-secret", "NODE_SSH_PW": "ssh-secret"}


@pytest.fixture
def key(tmp_path: Path) -> Path:
    path = tmp_path / "id_ed25519"
    path.write_text("dummy private key\n")
    return path


def valid(key: Path) -> dict:
    return {
        "cluster": "staging",
        "ssh": {"user": "root", "key": str(key)},
        "nodes": [
            {"name": "pve1", "address": "10.20.0.11", "link0": "10.21.0.11",
             "power": {"driver": "ipmi", "host": "10.20.1.11", "user": "ADMIN",
                       "password_env": "BMC_PW"}},
            {"name": "pve2", "address": "10.20.0.12",
             "power": {"driver": "redfish", "url": "https://10.20.1.12", "user": "root",
                       "password_env": "REDFISH_PW", "system": "System.Embedded.1",
                       "verify_tls": False}},
            {"name": "pve3", "address": "pve3.lab.example",
             "ssh": {"user": "admin", "port": 2222, "password_env": "NODE_SSH_PW"},
             "power": {"driver": "libvirt", "uri": "qemu+ssh://root@kvm1/system",
                       "domain": "pve3"}},
        ],
        "storage": {"id": "shared", "server": "10.20.0.5", "export": "/srv/pve-shared"},
        "guest": {"template": "shared:vztmpl/pvechaos-guest_1.0_amd64.tar.xz",
                  "first_address": "10.20.0.200/24", "vmid": 900},
    }


def write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "cluster.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def refusal(tmp_path: Path, data: dict, environ: dict | None = None) -> str:
    path = write(tmp_path, data)
    with pytest.raises(ConfigError) as info:
        inventory_config.load(path, environ=ENV if environ is None else environ)
    return str(info.value)


# -- a valid inventory ----------------------------------------------------------------------
def test_valid_inventory_with_three_power_drivers_loads(tmp_path, key):
    path = write(tmp_path, valid(key))
    inventory = inventory_config.load(path, environ=ENV)
    assert inventory.source == str(path)
    assert inventory.cluster == "staging"
    assert [n.name for n in inventory.nodes] == ["pve1", "pve2", "pve3"]
    pve1, pve2, pve3 = inventory.nodes
    assert (pve1.address, pve1.link0, pve1.ssh_user, pve1.ssh_port) == (
        "10.20.0.11", "10.21.0.11", "root", 22)
    assert pve1.ssh_key == key and pve1.ssh_password is None
    assert pve1.power == PowerSpec("ipmi", host="10.20.1.11", user="ADMIN",
                                   password="bmc-secret")
    assert pve2.link0 is None
    assert pve2.power == PowerSpec("redfish", url="https://10.20.1.12", user="root",
                                   password="rf-secret", system="System.Embedded.1",
                                   verify_tls=False)
    # a node's own ssh settings win over the defaults; the default key still applies
    assert (pve3.ssh_user, pve3.ssh_port, pve3.ssh_password) == ("admin", 2222, "ssh-secret")
    assert pve3.ssh_key == key
    assert pve3.power == PowerSpec("libvirt", uri="qemu+ssh://root@kvm1/system",
                                   domain="pve3")
    assert (inventory.storage_id, inventory.nfs_server, inventory.nfs_export) == (
        "shared", "10.20.0.5", "/srv/pve-shared")
    guest = inventory.guest
    assert guest.template == "shared:vztmpl/pvechaos-guest_1.0_amd64.tar.xz"
    assert guest.first_address == ipaddress.IPv4Interface("10.20.0.200/24")
    assert (guest.bridge, guest.port, guest.vmid) == ("vmbr0", 7000, 900)
    assert inventory.node("pve2") is pve2
    assert inventory.upgrade_command is None  # the upgrade verb then refuses, naming it
    with_command = inventory_config.load(write(tmp_path, valid(key) | {
        "upgrade_command": "apt-get -y dist-upgrade"}), environ=ENV)
    assert with_command.upgrade_command == "apt-get -y dist-upgrade"


def test_an_ipmi_bmc_on_its_own_port(tmp_path, key):
    """virtualbmc serves one BMC per UDP port on one address: power.port picks it."""
    data = valid(key)
    data["nodes"][0]["power"]["port"] = 6231
    pve1 = inventory_config.load(write(tmp_path, data), environ=ENV).nodes[0]
    assert pve1.power == PowerSpec("ipmi", host="10.20.1.11", port=6231, user="ADMIN",
                                   password="bmc-secret")
    from lab.inventory.lab import driver_for
    driver = driver_for("pve1", pve1.power)
    assert driver.describe() == "IPMI lanplus 10.20.1.11:6231 as ADMIN"
    assert driver.argv("chassis", "power", "status")[5:7] == ["-p", "6231"]


def test_inventory_node_lookup_refuses_an_unknown_name(tmp_path, key):
    inventory = inventory_config.load(write(tmp_path, valid(key)), environ=ENV)
    with pytest.raises(ConfigError, match="'pve9' is not a node of inventory") as info:
        inventory.node("pve9")
    assert "fix: nodes are pve1, pve2, pve3" in str(info.value)


def test_a_password_alone_is_enough_for_ssh(tmp_path, key):
    data = valid(key)
    data["ssh"] = {"password_env": "NODE_SSH_PW"}
    inventory = inventory_config.load(write(tmp_path, data), environ=ENV)
    assert all(n.ssh_password == "ssh-secret" for n in inventory.nodes)
    assert inventory.nodes[0].ssh_key is None


def test_secrets_come_from_the_process_environment_by_default(tmp_path, key, monkeypatch):
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    inventory = inventory_config.load(write(tmp_path, valid(key)))
    assert inventory.nodes[0].power.password == "bmc-secret"


# -- mistakes -------------------------------------------------------------------------------
def drop(*path):
    def change(data):
        target = data
        for part in path[:-1]:
            target = target[part]
        del target[path[-1]]
    return change


def put(value, *path):
    def change(data):
        target = data
        for part in path[:-1]:
            target = target[part]
        target[path[-1]] = value
    return change


def rename(old, new, *path):
    def change(data):
        target = data
        for part in path:
            target = target[part]
        target[new] = target.pop(old)
    return change


def duplicate_node(data):
    data["nodes"].append(copy.deepcopy(data["nodes"][0]))


def no_ssh_anywhere(data):
    del data["ssh"]
    del data["nodes"][2]["ssh"]


MISTAKES = [
    pytest.param(drop("cluster"), "cluster: is missing", "write `cluster:` like staging",
                 id="no-cluster"),
    pytest.param(put("stag ing", "cluster"), "cluster: 'stag ing' is not valid",
                 "write it like staging", id="bad-cluster"),
    pytest.param(rename("address", "adress", "nodes", 1), "nodes[1].adress: is not a known key",
                 "did you mean `address`?", id="typo-adress"),
    pytest.param(rename("link0", "lnk0", "nodes", 0), "nodes[0].lnk0: is not a known key",
                 "did you mean `link0`?", id="typo-link0"),
    pytest.param(put("10.21.0.300", "nodes", 0, "link0"),
                 "nodes[0].link0: '10.21.0.300' is not an IPv4 address",
                 "write four numbers 0-255", id="bad-link0"),
    pytest.param(duplicate_node, "nodes: node pve1 is listed twice", "list each node once",
                 id="listed-twice"),
    pytest.param(put("10.20.0.11", "nodes", 1, "address"),
                 "nodes: nodes pve1 and pve2 have the same address 10.20.0.11",
                 "give each node its own address", id="one-address-two-nodes"),
    pytest.param(put("10.21.0.11", "nodes", 2, "link0"),
                 "nodes: nodes pve1 and pve3 have the same address 10.21.0.11",
                 "give each node its own address", id="one-link0-two-nodes"),
    pytest.param(put("PVE3.Lab.example", "nodes", 1, "address"),
                 "nodes: nodes pve2 and pve3 have the same address pve3.lab.example",
                 "one address reaches one node", id="one-host-name-two-nodes"),
    pytest.param(lambda d: d["nodes"].pop(), "nodes: only 2 node(s)",
                 "HA scenarios need three nodes", id="two-nodes"),
    pytest.param(drop("nodes"), "nodes: is missing", "add a `nodes:` list", id="no-nodes"),
    pytest.param(put("pve1", "nodes"), "nodes: must be a list, not text",
                 "on a line starting with '- '", id="nodes-not-a-list"),
    pytest.param(put("ilo", "nodes", 0, "power", "driver"),
                 "nodes[0].power.driver: 'ilo' is not one of ipmi, redfish, libvirt",
                 "write one of ipmi, redfish, libvirt", id="unknown-driver"),
    pytest.param(drop("nodes", 0, "power", "driver"), "nodes[0].power.driver: is missing",
                 "write `driver:` as one of ipmi, redfish, libvirt", id="no-driver"),
    pytest.param(drop("nodes", 0, "power", "host"), "nodes[0].power.host: is missing",
                 "write `host:` as an IPv4 address or host name", id="ipmi-without-host"),
    pytest.param(put("10.20.1.300", "nodes", 0, "power", "host"),
                 "nodes[0].power.host: '10.20.1.300' is not an IPv4 address",
                 "write four numbers 0-255", id="ipmi-bad-host"),
    pytest.param(drop("nodes", 0, "power", "user"), "nodes[0].power.user: is missing",
                 "add `user:`", id="ipmi-without-user"),
    pytest.param(rename("password_env", "password", "nodes", 0, "power"),
                 "nodes[0].power.password: holds a secret in the file",
                 "write `password_env: THAT_VARIABLE` instead", id="literal-password"),
    pytest.param(put("NOT_SET_ANYWHERE", "nodes", 1, "power", "password_env"),
                 "nodes[1].power.password_env: environment variable NOT_SET_ANYWHERE is not set",
                 "export NOT_SET_ANYWHERE=... before the run", id="password-env-unset"),
    pytest.param(drop("nodes", 1, "power", "url"), "nodes[1].power.url: is missing",
                 "write `url:` as https://BMC-ADDRESS", id="redfish-without-url"),
    pytest.param(put("yes", "nodes", 1, "power", "verify_tls"),
                 "nodes[1].power.verify_tls: must be true or false, not text",
                 "write `verify_tls:` as true or false", id="verify-tls-text"),
    pytest.param(put("http://kvm1", "nodes", 2, "power", "uri"),
                 "nodes[2].power.uri: 'http://kvm1' is not a libvirt URI",
                 "write a libvirt URI such as qemu+ssh://root@kvm1/system",
                 id="libvirt-bad-uri"),
    pytest.param(put("qemu+ssh:///system", "nodes", 2, "power", "uri"),
                 "nodes[2].power.uri: 'qemu+ssh:///system' names no host",
                 "write a libvirt URI", id="libvirt-uri-without-host"),
    pytest.param(drop("nodes", 2, "power", "domain"), "nodes[2].power.domain: is missing",
                 "add `domain:`", id="libvirt-without-domain"),
    pytest.param(put("pve3", "nodes", 0, "power", "domain"),
                 "nodes[0].power.domain: is not a known key", "valid keys here: driver, host",
                 id="key-of-another-driver"),
    pytest.param(drop("nodes", 0, "power"), "nodes[0].power: is missing",
                 "add a `power:` section", id="no-power"),
    pytest.param(no_ssh_anywhere, "nodes[2].ssh: gives neither a key nor a password",
                 "`ssh: {key: ~/.ssh/id_ed25519}`", id="no-ssh-credentials"),
    pytest.param(put("/no/such/key", "ssh", "key"), "ssh.key: /no/such/key does not exist",
                 "give the path of an existing file", id="ssh-key-missing"),
    pytest.param(put(0, "nodes", 0, "ssh"), "nodes[0].ssh: must be a mapping of keys",
                 "indent its keys under it", id="ssh-not-a-mapping"),
    pytest.param(put(70000, "nodes", 2, "ssh", "port"),
                 "nodes[2].ssh.port: 70000 is not a TCP port", "use 1-65535",
                 id="ssh-port-too-big"),
    pytest.param(put("10.20.0.11/24", "nodes", 0, "address"),
                 "nodes[0].address: '10.20.0.11/24' is an address with a prefix length",
                 "write the address alone: 10.20.0.11", id="address-with-prefix"),
    pytest.param(put("pve 1", "nodes", 0, "address"),
                 "nodes[0].address: 'pve 1' is neither an address nor a host name",
                 "write an IPv4 address or a DNS name", id="bad-address"),
    pytest.param(put("pve_1", "nodes", 0, "name"), "nodes[0].name: 'pve_1' is not valid",
                 "write it like pve1", id="bad-node-name"),
    pytest.param(put("10.20.0.200", "guest", "first_address"),
                 "guest.first_address: '10.20.0.200' is not an address with a prefix",
                 "write it like 10.20.0.200/24", id="first-address-without-prefix"),
    pytest.param(put("10.20.0.300/24", "guest", "first_address"),
                 "guest.first_address: '10.20.0.300/24' is not an address with a prefix",
                 "write it like 10.20.0.200/24", id="first-address-bad"),
    pytest.param(drop("guest", "first_address"), "guest.first_address: is missing",
                 "write `first_address:` like 10.20.0.200/24", id="no-first-address"),
    pytest.param(put(99, "guest", "vmid"), "guest.vmid: 99 is too small", "use 100 or more",
                 id="vmid-too-small"),
    pytest.param(put(70000, "guest", "port"), "guest.port: 70000 is not a TCP port",
                 "use 1-65535", id="guest-port-too-big"),
    pytest.param(put(70000, "nodes", 0, "power", "port"),
                 "nodes[0].power.port: 70000 is not a UDP port", "use 1-65535 (623 is IPMI's)",
                 id="ipmi-port-too-big"),
    pytest.param(drop("guest"), "guest: is missing", "add a `guest:` section", id="no-guest"),
    pytest.param(drop("storage"), "storage: is missing", "add a `storage:` section",
                 id="no-storage"),
    pytest.param(put("nfs..x", "storage", "server"),
                 "storage.server: 'nfs..x' is neither an address nor a host name",
                 "write an IPv4 address or a DNS name", id="bad-storage-server"),
    pytest.param(put("srv/share", "storage", "export"),
                 "storage.export: 'srv/share' is not valid", "write it like /srv/pve-shared",
                 id="relative-export"),
    pytest.param(put("x", "clutser"), "clutser: is not a known key", "did you mean `cluster`?",
                 id="typo-top-level"),
]


@pytest.mark.parametrize("change, message, fix", MISTAKES)
def test_mistakes_name_the_field_and_the_fix(tmp_path, key, change, message, fix):
    data = valid(key)
    change(data)
    text = refusal(tmp_path, data)
    assert text.startswith(f"inventory {tmp_path / 'cluster.yaml'}")
    assert fix in fix_for(text, message)


def test_secrets_never_appear_in_the_refusal(tmp_path, key):
    data = valid(key)
    data["nodes"][0]["power"]["password"] = "Hunter2-literal"
    del data["nodes"][0]["power"]["password_env"]
    data["clutser"] = "x"
    text = refusal(tmp_path, data)
    assert "Hunter2-literal" not in text
    for secret in ENV.values():
        assert secret not in text


def test_a_broken_node_does_not_also_count_as_a_missing_node(tmp_path, key):
    data = valid(key)
    data["nodes"][0]["power"]["driver"] = "ilo"
    text = refusal(tmp_path, data)
    assert "'ilo' is not one of" in text
    assert "only 2 node(s)" not in text
    assert "has " not in text.partition("\n")[0]  # it is the only problem


def test_one_node_listed_twice_is_reported_once(tmp_path, key):
    data = valid(key)
    duplicate_node(data)
    duplicate_node(data)
    text = refusal(tmp_path, data)
    assert text.count("node pve1 is listed twice") == 1


def test_several_problems_in_one_file_are_all_listed(tmp_path, key):
    data = valid(key)
    del data["cluster"]
    data["nodes"][1]["adress"] = data["nodes"][1].pop("address")
    data["nodes"][0]["power"]["driver"] = "ilo"
    data["nodes"][2]["power"]["uri"] = "http://kvm1"
    data["guest"]["first_address"] = "10.20.0.200"
    del data["storage"]
    text = refusal(tmp_path, data, {k: v for k, v in ENV.items() if k != "REDFISH_PW"})
    first_line = text.partition("\n")[0]
    assert first_line.startswith(f"inventory {tmp_path / 'cluster.yaml'} has ")
    assert first_line.endswith(" problems:")
    for message in ("cluster: is missing",
                    "nodes[1].address: is missing",
                    "nodes[1].adress: is not a known key",
                    "nodes[0].power.driver: 'ilo' is not one of",
                    "nodes[1].power.password_env: environment variable REDFISH_PW is not set",
                    "nodes[2].power.uri: 'http://kvm1' is not a libvirt URI",
                    "guest.first_address: '10.20.0.200' is not an address with a prefix",
                    "storage: is missing"):
        assert f"  - {message}" in text
        assert fix_for(text, message)
    count = int(first_line.split(" has ")[1].split()[0])
    assert count == text.count("\n      fix: ")
    assert count >= 8


def test_not_a_mapping(tmp_path):
    path = tmp_path / "cluster.yaml"
    path.write_text("- pve1\n- pve2\n")
    with pytest.raises(ConfigError, match="must hold a mapping of keys, not a list"):
        inventory_config.load(path, environ=ENV)


# -- storage ids: PVE's rule, the same as `pvechaos-lab guest-template --storage` ---------
PVE_STORAGE_IDS = ["shared", "NFS-1", "ceph.pool_2", "a..b", "ab"]
NOT_STORAGE_IDS = ["my storage", "..", "s", "1abc", "shared-", "x'y", "_x", "a/b", "../etc"]


@pytest.mark.parametrize("storage_id", PVE_STORAGE_IDS)
def test_every_pve_storage_id_is_taken_for_the_storage_and_the_template(tmp_path, key,
                                                                        storage_id):
    from lab.guest_template import check_storage_id

    data = valid(key)
    data["storage"]["id"] = storage_id
    data["guest"]["template"] = f"{storage_id}:vztmpl/pvechaos-guest_1.0_amd64.tar.xz"
    inventory = inventory_config.load(write(tmp_path, data), environ=ENV)
    assert inventory.storage_id == storage_id
    assert inventory.guest.template.startswith(f"{storage_id}:vztmpl/")
    assert check_storage_id(storage_id) == storage_id  # one rule: the CLI's


@pytest.mark.parametrize("storage_id", NOT_STORAGE_IDS)
def test_what_pve_refuses_as_a_storage_id_is_refused_with_the_rule(tmp_path, key,
                                                                   storage_id):
    from lab.guest_template import check_storage_id

    data = valid(key)
    data["storage"]["id"] = storage_id
    template = data["guest"]["template"] = f"{storage_id}:vztmpl/pvechaos-guest_1.0_amd64.tar.xz"
    text = refusal(tmp_path, data)
    for message in (f"storage.id: {storage_id!r} is not valid",
                    f"guest.template: {template!r} is not valid"):
        assert message in text
    assert fix_for(text, "storage.id:") == (
        "write it like shared (a PVE storage id: a letter, then letters, digits, '-', '_' "
        "or '.', ending in a letter or digit)")
    with pytest.raises(ConfigError):
        check_storage_id(storage_id)  # one rule: the CLI's
