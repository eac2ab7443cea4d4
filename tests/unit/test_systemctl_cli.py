"""`systemctl` on an embedded node (pvemu/cli/systemctl.py): the kill options systemd
252/257 take, and what it asks the node's init."""

from __future__ import annotations

import pytest

from pvemu.cli import systemctl


@pytest.fixture
def asked(monkeypatch):
    requests: list[tuple[str, ...]] = []

    def call(verb, *units, timeout_s=30.0):
        requests.append((verb, *units))
        return {"is-active": "failed", "status": "* x.service\n     Active: failed (x)\n."
                }.get(verb, "ok")

    monkeypatch.setattr(systemctl, "call", call)
    return requests


@pytest.mark.parametrize("argv", [
    ["kill", "--kill-whom=main", "--signal=SIGKILL", "pve-cluster"],
    ["kill", "--kill-who=main", "--signal=KILL", "pve-cluster.service"],
    ["kill", "-s", "9", "pve-cluster"],
    ["kill", "--signal", "SIGKILL", "pve-cluster"],
])
def test_kill_sends_the_signal_number_to_init(asked, argv):
    assert systemctl.main(argv) == 0
    assert asked[-1][:2] == ("kill", "9")
    assert asked[-1][2].removesuffix(".service") == "pve-cluster"


def test_sigstop_and_sigcont_by_name(asked):
    systemctl.main(["kill", "--kill-whom=main", "--signal=SIGSTOP", "corosync"])
    systemctl.main(["kill", "--kill-whom=main", "--signal=SIGCONT", "corosync"])
    assert [a[1] for a in asked] == ["19", "18"]


def test_other_kill_targets_and_bad_signals_are_refused(asked, capsys):
    assert systemctl.main(["kill", "--kill-whom=all", "-s", "KILL", "corosync"]) == 1
    assert systemctl.main(["kill", "--signal=SIGNOPE", "corosync"]) == 1
    assert asked == []
    assert "Failed to parse signal string SIGNOPE." in capsys.readouterr().err


def test_is_active_quiet_prints_nothing_and_fails_for_a_failed_unit(asked, capsys):
    assert systemctl.main(["is-active", "--quiet", "corosync"]) == 3
    assert capsys.readouterr().out == ""
    assert systemctl.main(["status", "corosync"]) == 3
    assert "Active: failed" in capsys.readouterr().out
