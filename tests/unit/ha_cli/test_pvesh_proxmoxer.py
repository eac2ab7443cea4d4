"""proxmoxer's command backend (what its SSH backends run: `pvesh <cmd> <path> -<key>
<value> --output-format json`) against pvesh in this process and a temporary /etc/pve:
the argument form, the JSON and the errors as proxmoxer reads them. The same client over
real SSH to a lab node: tests/integration/test_proxmoxer.py."""

from __future__ import annotations

import contextlib
import io

import pytest
from proxmoxer import ProxmoxAPI, ResourceException

from pvemu.cli import pvesh


@pytest.fixture
def api(lab, monkeypatch):
    calls: list[list[str]] = []

    def run_here(self, cmd):
        calls.append(cmd)
        assert cmd[0] == "pvesh"
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = pvesh.main(cmd[1:])
        return out.getvalue(), err.getvalue(), code

    from proxmoxer.backends import local
    monkeypatch.setattr(local.LocalSession, "_exec", run_here)
    client = ProxmoxAPI(backend="local")
    client.calls = calls
    return client


def test_reads(api):
    assert api.version.get()["release"] == "9.1"
    assert api.calls[-1] == ["pvesh", "get", "/version", "--output-format", "json"]
    assert [s["type"] for s in api.cluster.status.get()] == ["cluster", "node", "node",
                                                             "node"]
    assert [r["id"] for r in api.cluster.resources.get(type="node")] == [
        "node/node1", "node/node2", "node/node3"]
    assert api.calls[-1][-4:] == ["-type", "node", "--output-format", "json"]


def test_ha_writes_and_errors(api, lab):
    api.cluster.ha.resources.post(sid="vm:100", state="stopped", max_restart=2)
    assert lab.read("ha/resources.cfg") == "vm: 100\n\tmax_restart 2\n\tstate stopped\n\n"
    api.cluster.ha.resources("vm:100").put(comment="db")
    assert api.cluster.ha.resources("vm:100").get()["comment"] == "db"
    api.cluster.ha.rules.post(rule="r1", type="node-affinity", resources="vm:100",
                              nodes="node1")
    assert [r["rule"] for r in api.cluster.ha.rules.get()] == ["r1"]
    with pytest.raises(ResourceException) as exc:
        api.cluster.ha.resources.post(sid="vm:999")
    assert exc.value.status_code == 500 and "does not exist in cluster" in str(exc.value)
    with pytest.raises(ResourceException) as exc:
        api.cluster.ha.resources.post()
    assert exc.value.status_code == 400 and "sid: property is missing" in str(exc.value)
    with pytest.raises(ResourceException) as exc:  # PVE 9 without groups (§3.4): HTTP 500
        api.cluster.ha.groups.get()
    assert exc.value.status_code == 500 and "ha groups have been migrated to rules" in \
        str(exc.value)
    api.cluster.ha.resources("vm:100").delete()
    assert lab.read("ha/resources.cfg") == ""
