"""The embedded `pvecm expected`: PVE's parameter check (pve-common src/PVE/JSONSchema.pm),
its check that the node is in a cluster, then `corosync-quorumtool -e N` (pve-cluster
src/PVE/CLI/pvecm.pm), whose own refusal and exit code stand."""

from __future__ import annotations

import pytest

from pvemu.cli import pvecm


@pytest.fixture
def quorumtool(monkeypatch, tmp_path):
    calls = []
    monkeypatch.setattr(pvecm, "quorumtool", lambda *args: calls.append(args) or 1)
    monkeypatch.setenv("PVECHAOS_PVE_ROOT", str(tmp_path / "pve"))
    (tmp_path / "pve").mkdir()
    return calls


@pytest.mark.parametrize("value, message", [
    ("abc", "expected: type check ('integer') failed - got 'abc'"),
    ("1.5", "expected: type check ('integer') failed - got '1.5'"),
    ("0", "expected: value must have a minimum value of 1"),
    ("-1", "expected: value must have a minimum value of 1"),
])
def test_a_bad_value_fails_parameter_verification(quorumtool, capsys, value, message):
    assert pvecm.main(["expected", value]) == 255
    assert capsys.readouterr().err == (f"400 Parameter verification failed.\n{message}\n"
                                       "pvecm expected <expected>\n")
    assert quorumtool == []


def test_outside_a_cluster_it_dies_before_corosync(quorumtool, capsys, tmp_path):
    assert pvecm.main(["expected", "1"]) == 255
    assert "does not exist - is this node part of a cluster?" in capsys.readouterr().err
    assert quorumtool == []


def test_the_value_goes_to_corosync_which_decides_the_exit_code(quorumtool, tmp_path):
    (tmp_path / "pve/corosync.conf").write_text("totem {\n  cluster_name: c\n}\n")
    # corosync refuses 99 on a quorate 3-vote cluster and exits 1 (votequorum.c)
    assert pvecm.main(["expected", "99"]) == 1
    assert quorumtool == [("-e", "99")]
