"""The inventory lab's interlock: an existing cluster's power is switched only when the
run says --destructive and every node confirms it is the cluster the inventory names.

Fake power drivers record what they are asked; a fake `read` stands in for `pvecm` over
SSH. Nothing here opens a connection or starts a process.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest
import yaml

from harness.errors import (
    ConfigError,
    InterlockError,
    LabError,
    NodeUnreachable,
    UnsupportedFault,
    WaitTimeout,
)
from harness.lab_api import LabNode
from harness.timescale import REAL_TIME, Timescale
from lab.inventory.config import Inventory, InventoryGuest, InventoryNode, PowerSpec
from lab.inventory.lab import InventoryLab, LibvirtPower
from lab.inventory.power_drivers import IpmiPower, RedfishPower

NAMES = ("pve1", "pve2", "pve3")


def inventory(cluster: str = "staging") -> Inventory:
    nodes = tuple(
        InventoryNode(name=name, address=f"10.20.0.{11 + i}", link0=None, ssh_user="root",
                      ssh_port=22, ssh_key=Path("/keys/id"), ssh_password=None,
                      power=PowerSpec("ipmi", host=f"10.20.1.{11 + i}", user="ADMIN",
                                      password="pw"))
        for i, name in enumerate(NAMES))
    guest = InventoryGuest(template="shared:vztmpl/pvechaos-guest_1.0_amd64.tar.xz",
                           first_address=ipaddress.IPv4Interface("10.20.0.200/24"),
                           bridge="vmbr1", port=7100, vmid=900)
    return Inventory(source="cluster.yaml", cluster=cluster, nodes=nodes, storage_id="shared",
                     nfs_server="10.20.0.5", nfs_export="/srv/pve-shared", guest=guest)


class FakeDriver:
    """A power switch that records every call into a log shared by all drivers."""

    def __init__(self, node: str, log: list, *, on: bool = True,
                 check_error: Exception | None = None,
                 on_error: Exception | None = None) -> None:
        self.node, self.log, self.on = node, log, on
        self.check_error, self.on_error = check_error, on_error

    def describe(self) -> str:
        return f"fake switch of {self.node}"

    def check(self) -> None:
        self.log.append((self.node, "check"))
        if self.check_error is not None:
            raise self.check_error

    def is_on(self) -> bool:
        self.log.append((self.node, "is_on"))
        return self.on

    def power_off(self) -> None:
        self.log.append((self.node, "power_off"))
        self.on = False

    def power_on(self) -> None:
        self.log.append((self.node, "power_on"))
        if self.on_error is not None:
            raise self.on_error
        self.on = True

    def shutdown(self) -> None:
        self.log.append((self.node, "shutdown"))
        self.on = False

    def reset(self) -> None:
        self.log.append((self.node, "reset"))


class FakeRead:
    """`read`: what `pvecm` shows on each node (or the error reading it raises)."""

    def __init__(self, answers: dict | None = None) -> None:
        self.answers = answers or {n: ("staging", NAMES) for n in NAMES}
        self.asked: list[LabNode] = []

    def __call__(self, node: LabNode):
        self.asked.append(node)
        answer = self.answers[node.name]
        if isinstance(answer, Exception):
            raise answer
        return answer


def power_calls(log: list) -> list:
    return [entry for entry in log if entry[1] in ("power_off", "power_on")]


def make(*, destructive: bool = True, read: FakeRead | None = None, cluster="staging",
         **driver_options):
    log: list = []
    drivers = {n: FakeDriver(n, log, **driver_options.get(n, {})) for n in NAMES}
    lab = InventoryLab(inventory(cluster), destructive=destructive, drivers=drivers,
                       read=read or FakeRead(), settle_s=0.3)
    return lab, drivers, log


# -- arming -----------------------------------------------------------------------------
def test_armed_when_names_match_every_node_is_a_member_and_destructive(capsys):
    read = FakeRead()
    lab, drivers, log = make(read=read)
    lab.start()
    assert [n.name for n in read.asked] == list(NAMES)
    assert read.asked[0] == LabNode(name="pve1", address="10.20.0.11", ssh_key=Path("/keys/id"))
    assert [entry for entry in log if entry[1] == "check"] == [(n, "check") for n in NAMES]
    assert power_calls(log) == []  # start switches nothing
    assert lab.describe()["armed"] == "yes"
    assert "armed: power cuts allowed" in capsys.readouterr().out
    lab.power_cut("pve2")
    assert power_calls(log) == [("pve2", "power_off")]
    assert drivers["pve2"].on is False
    lab.power_on("pve2")
    assert power_calls(log) == [("pve2", "power_off"), ("pve2", "power_on")]
    assert drivers["pve2"].on is True


def test_in_node_faults_follow_the_same_interlock():
    lab, _, _ = make(destructive=False)
    assert "not been checked" in lab.fault_refusal()  # before start: nothing is known
    lab.start()
    assert "--destructive" in lab.fault_refusal()
    armed, _, _ = make()
    armed.start()
    assert armed.fault_refusal() is None


def test_extra_members_of_the_cluster_do_not_disarm():
    read = FakeRead({n: ("staging", (*NAMES, "pve4")) for n in NAMES})
    lab, _, log = make(read=read)
    lab.start()
    lab.power_cut("pve1")
    assert power_calls(log) == [("pve1", "power_off")]


def refusal_after_start(lab) -> str:
    lab.start()
    with pytest.raises(InterlockError) as info:
        lab.power_cut("pve1")
    with pytest.raises(InterlockError):
        lab.power_on("pve1")
    return str(info.value)


def test_without_destructive_nothing_is_switched(capsys):
    lab, _, log = make(destructive=False)
    text = refusal_after_start(lab)
    assert "refusing to switch the power of pve1" in text
    assert "--destructive" in text
    assert power_calls(log) == []
    assert "NOT armed" in capsys.readouterr().out
    assert lab.describe()["armed"].startswith("no: ")
    assert "--destructive" in lab.describe()["armed"]


def test_wrong_cluster_name_is_refused_naming_both():
    read = FakeRead({"pve1": ("staging", NAMES), "pve2": ("production", NAMES),
                     "pve3": ("staging", NAMES)})
    lab, _, log = make(read=read)
    text = refusal_after_start(lab)
    assert "'staging'" in text and "'production'" in text
    assert "pve2 is in cluster 'production'" in text
    assert power_calls(log) == []


def test_a_node_in_no_cluster_is_refused():
    read = FakeRead({n: ("staging", NAMES) for n in NAMES} | {"pve3": ("", ())})
    lab, _, log = make(read=read)
    text = refusal_after_start(lab)
    assert "pve3 is in cluster '(none)'" in text
    assert power_calls(log) == []


def test_wrong_cluster_is_refused_even_with_destructive_off_and_names_the_cluster():
    read = FakeRead({n: ("other", NAMES) for n in NAMES})
    lab, _, _ = make(read=read, destructive=False)
    text = refusal_after_start(lab)
    assert "'staging'" in text and "'other'" in text


def test_a_node_missing_from_the_membership_is_named():
    read = FakeRead({n: ("staging", ("pve1", "pve2", "pve9")) for n in NAMES})
    lab, _, log = make(read=read)
    text = refusal_after_start(lab)
    assert "no node named pve3" in text
    assert "members: pve1, pve2, pve9" in text
    assert power_calls(log) == []


def test_membership_seen_by_only_one_node_still_disarms():
    read = FakeRead({"pve1": ("staging", NAMES), "pve2": ("staging", NAMES),
                     "pve3": ("staging", ("pve1", "pve3"))})
    lab, _, _ = make(read=read)
    text = refusal_after_start(lab)
    assert "pve3's cluster has no node named pve2" in text


def test_power_cut_is_refused_before_start():
    lab, _, log = make()
    with pytest.raises(InterlockError, match="not started"):
        lab.power_cut("pve1")
    with pytest.raises(InterlockError, match="not started"):
        lab.power_on("pve1")
    assert log == []


def test_an_unknown_node_is_refused_even_when_armed():
    lab, _, log = make()
    lab.start()
    for verb in (lab.power_cut, lab.power_on, lab.is_powered):
        with pytest.raises(InterlockError) as info:
            verb("pve9")
        assert "'pve9'" in str(info.value)
    assert power_calls(log) == []


def test_unknown_node_refusal_lists_the_nodes():
    lab, _, _ = make()
    with pytest.raises(InterlockError) as info:
        lab.power_cut("pve9")
    assert "not a node of inventory cluster.yaml" in str(info.value)
    assert "fix: nodes are pve1, pve2, pve3" in str(info.value)


def test_is_powered_asks_the_driver_without_arming():
    lab, drivers, _ = make(destructive=False, pve3={"on": False})
    assert lab.is_powered("pve1") is True
    assert lab.is_powered("pve3") is False


# -- start's failures ---------------------------------------------------------------------
def test_a_driver_whose_check_fails_stops_start():
    error = LabError("pve2: the BMC at 10.20.1.12 did not answer", hint="is it reachable?")
    lab, _, log = make(pve2={"check_error": error})
    with pytest.raises(LabError) as info:
        lab.start()
    assert info.value is error
    with pytest.raises(InterlockError):
        lab.power_cut("pve1")
    assert power_calls(log) == []


def test_an_unreachable_node_becomes_a_lab_error_naming_it_and_the_fix():
    unreachable = NodeUnreachable("pve2", "10.20.0.12", "connection refused")
    read = FakeRead({n: ("staging", NAMES) for n in NAMES} | {"pve2": unreachable})
    lab, _, log = make(read=read)
    with pytest.raises(LabError) as info:
        lab.start()
    text = str(info.value)
    assert type(info.value) is LabError
    assert "inventory cluster.yaml: cannot read the cluster on pve2" in text
    assert "connection refused" in text
    assert "fix: check the node's address and SSH credentials in the inventory" in text
    assert isinstance(info.value.__cause__, WaitTimeout)  # retried: it may be booting
    assert [e for e in log if e[1] == "check"] == []  # nothing else was touched
    with pytest.raises(InterlockError):
        lab.power_cut("pve1")


def test_a_refused_login_is_not_retried():
    refused = NodeUnreachable("pve2", "10.20.0.12", "authentication failed (bad key)")
    calls = []

    def read(node):
        calls.append(node.name)
        if node.name == "pve2":
            raise refused
        return ("staging", NAMES)

    lab, _, _ = make(read=read)
    with pytest.raises(LabError, match="authentication failed") as info:
        lab.start()
    assert calls.count("pve2") == 1
    assert info.value.__cause__ is refused


def test_a_node_still_booting_is_waited_for():
    answers = iter([LabError("pve3: `pvecm status` exited with 2: Cannot initialize CMAP"),
                    ("staging", NAMES)])

    def read(node):
        if node.name != "pve3":
            return ("staging", NAMES)
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    lab = InventoryLab(inventory("staging"), destructive=True,
                       drivers={n: FakeDriver(n, []) for n in NAMES}, read=read, settle_s=10)
    lab.start()
    lab.power_cut("pve3")  # armed once pve3 answered


def test_a_failed_second_start_disarms():
    read = FakeRead()
    lab, _, log = make(read=read)
    lab.start()
    lab.power_cut("pve1")
    read.answers["pve2"] = NodeUnreachable("pve2", "10.20.0.12", "timed out")
    with pytest.raises(LabError):
        lab.start()
    with pytest.raises(InterlockError):
        lab.power_cut("pve3")
    assert power_calls(log) == [("pve1", "power_off")]


def test_a_second_start_seeing_another_cluster_disarms():
    read = FakeRead()
    lab, _, _ = make(read=read)
    lab.start()
    read.answers = {n: ("production", NAMES) for n in NAMES}
    lab.start()
    with pytest.raises(InterlockError, match="'production'"):
        lab.power_cut("pve1")


# -- close ---------------------------------------------------------------------------------
def test_close_powers_back_on_a_node_left_off_when_armed():
    lab, drivers, log = make()
    lab.start()
    lab.power_cut("pve2")
    lab.close()
    assert power_calls(log) == [("pve2", "power_off"), ("pve2", "power_on")]
    assert all(d.on for d in drivers.values())


def test_close_switches_nothing_when_not_armed():
    lab, _, log = make(destructive=False, pve2={"on": False})
    lab.start()
    log.clear()
    lab.close()
    assert log == []


def test_close_before_start_switches_nothing():
    lab, _, log = make(pve2={"on": False})
    lab.close()
    assert log == []


def test_close_carries_on_when_one_node_cannot_be_powered_on(capsys):
    lab, drivers, log = make(pve1={"on_error": LabError("BMC gone")})
    lab.start()
    lab.power_cut("pve1")
    lab.power_cut("pve3")
    lab.close()
    assert ("pve3", "power_on") in log
    assert drivers["pve3"].on is True
    assert "could not power pve1 back on: BMC gone" in capsys.readouterr().out


# -- from_options -----------------------------------------------------------------------------
def test_from_options_without_inventory():
    with pytest.raises(ConfigError) as info:
        InventoryLab.from_options(inventory=None, destructive=True, timescale=REAL_TIME)
    assert "--inventory" in str(info.value)


def test_from_options_with_a_timescale(tmp_path):
    with pytest.raises(ConfigError) as info:
        InventoryLab.from_options(inventory=str(tmp_path / "cluster.yaml"), destructive=True,
                                  timescale=Timescale(0.5))
    assert "--timescale 0.5 cannot apply to a real cluster" in str(info.value)
    assert "fix: drop --timescale" in str(info.value)


def test_from_options_with_a_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        InventoryLab.from_options(inventory=str(tmp_path / "cluster.yaml"), timescale=REAL_TIME)


def test_from_options_loads_the_inventory_and_makes_its_drivers(tmp_path, monkeypatch):
    monkeypatch.setenv("PVECHAOS_TEST_BMC_PW", "bmc-secret")
    key = tmp_path / "id"
    key.write_text("dummy")
    power = [
        {"driver": "ipmi", "host": "10.20.1.11", "user": "ADMIN",
         "password_env": "PVECHAOS_TEST_BMC_PW"},
        {"driver": "redfish", "url": "https://10.20.1.12", "user": "root",
         "password_env": "PVECHAOS_TEST_BMC_PW"},
        {"driver": "libvirt", "uri": "qemu+ssh://root@kvm1/system", "domain": "pve3"},
    ]
    data = {"cluster": "staging", "ssh": {"key": str(key)},
            "nodes": [{"name": n, "address": f"10.20.0.{11 + i}", "power": power[i]}
                      for i, n in enumerate(NAMES)],
            "storage": {"server": "10.20.0.5", "export": "/srv/pve-shared"},
            "guest": {"template": "shared:vztmpl/g.tar.xz", "first_address": "10.20.0.200/24"}}
    path = tmp_path / "cluster.yaml"
    path.write_text(yaml.safe_dump(data))
    lab = InventoryLab.from_options(inventory=str(path), destructive=True, timescale=REAL_TIME,
                                    lab_config="ignored")
    assert lab.name == "staging" and lab.destructive is True
    assert lab.prepared() is True
    assert [n.name for n in lab.nodes()] == list(NAMES)
    drivers = lab._drivers
    assert isinstance(drivers["pve1"], IpmiPower)
    assert isinstance(drivers["pve2"], RedfishPower)
    assert isinstance(drivers["pve3"], LibvirtPower)
    assert drivers["pve3"].describe() == "libvirt domain pve3 on qemu+ssh://root@kvm1/system"
    with pytest.raises(InterlockError, match="not started"):
        lab.power_cut("pve1")


# -- the rest of the Lab protocol ----------------------------------------------------------
def test_guest_recipe_maps_the_scenario_vmids_onto_the_inventory():
    lab, _, _ = make()
    first = lab.guest_recipe(100)
    assert (first.vmid, first.address, first.prefixlen) == (900, "10.20.0.200", 24)
    assert first.sid == "ct:900"
    assert first.template == "shared:vztmpl/pvechaos-guest_1.0_amd64.tar.xz"
    assert (first.bridge, first.port, first.storage_id) == ("vmbr1", 7100, "shared")
    assert first.log_path == "/mnt/pve/shared/pvechaos/900/writes.log"
    second = lab.guest_recipe(101)
    assert (second.vmid, second.address, second.prefixlen) == (901, "10.20.0.201", 24)


def test_shared_storage_and_nodes_come_from_the_inventory():
    lab, _, _ = make()
    storage = lab.shared_storage()
    assert (storage.storage_id, storage.server, storage.export) == (
        "shared", "10.20.0.5", "/srv/pve-shared")
    assert [(n.name, n.address) for n in lab.nodes()] == [
        ("pve1", "10.20.0.11"), ("pve2", "10.20.0.12"), ("pve3", "10.20.0.13")]


def test_the_inventory_lab_has_no_network_switch():
    lab, _, _ = make()
    lab.start()
    with pytest.raises(UnsupportedFault, match="(?s)cannot link down.*PARTITION"):
        lab.link_down("pve1")
    with pytest.raises(UnsupportedFault, match="(?s)cannot link up.*PARTITION"):
        lab.link_up("pve1")


@pytest.mark.parametrize(("verb", "name"), [(InventoryLab.freeze, "freeze"),
                                           (InventoryLab.thaw, "thaw")])
def test_the_inventory_lab_has_no_hypervisor_to_freeze_a_node(verb, name):
    lab, _, _ = make()
    lab.start()
    with pytest.raises(UnsupportedFault, match=f"(?s)cannot {name}.*FREEZE"):
        verb(lab, "pve1")


def test_describe_names_the_power_switches():
    lab, _, _ = make()
    facts = lab.describe()
    assert facts["lab"] == "inventory" and facts["cluster"] == "staging"
    assert "pve2: fake switch of pve2" in facts["power"]
    assert "not started" in facts["armed"]


def test_shutdown_and_reset_go_through_the_interlock_too():
    lab, _, log = make(destructive=False)
    lab.start()
    for verb in (lab.shutdown, lab.reset):
        with pytest.raises(InterlockError, match="--destructive"):
            verb("pve1")
    armed, _, armed_log = make()
    armed.start()
    armed.shutdown("pve2")
    armed.reset("pve3")
    assert [e for e in armed_log if e[1] in ("shutdown", "reset")] == [
        ("pve2", "shutdown"), ("pve3", "reset")]
    assert [e for e in log if e[1] in ("shutdown", "reset")] == []
