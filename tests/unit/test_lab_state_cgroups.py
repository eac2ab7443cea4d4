"""The embedded lab's state file lists each node's freezer cgroup before it is made, so
close() and the sweep of a killed run can thaw and remove it (lab/embedded/state.py,
lab/embedded/freeze.py); a state file written before cgroups were listed still loads."""

from __future__ import annotations

import json

from lab.embedded import freeze
from lab.embedded.state import LabState, remove_cgroups, sweep


def test_a_cgroup_is_listed_once_and_an_older_state_file_takes_one(tmp_path):
    (tmp_path / "state.json").write_text(json.dumps(
        {"owner": None, "netns": [], "links": [], "processes": {}}))
    state = LabState(tmp_path)
    assert state.load()
    state.add("cgroups", "/sys/fs/cgroup/unified/pvechaos-x-node1")
    state.add("cgroups", "/sys/fs/cgroup/unified/pvechaos-x-node1")
    assert json.loads((tmp_path / "state.json").read_text())["cgroups"] == \
        ["/sys/fs/cgroup/unified/pvechaos-x-node1"]


def test_removing_a_cgroup_that_is_not_there_is_fine(tmp_path):
    remove_cgroups([str(tmp_path / "gone")])
    (tmp_path / "lab").mkdir()
    (tmp_path / "lab" / "state.json").write_text(json.dumps(
        {"owner": None, "netns": [], "links": [], "processes": {},
         "cgroups": [str(tmp_path / "gone")]}))
    assert sweep(tmp_path / "lab") and not (tmp_path / "lab").exists()


def test_cgroup_names_are_per_lab_and_node():
    path = freeze.cgroup_path("main", "node2")
    assert path is None or path.name == "pvechaos-main-node2"
