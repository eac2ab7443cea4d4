"""The embedded node's `journalctl`: its daemons' log files, merged and filtered by time."""

from __future__ import annotations

import time

import pytest

from pvemu.cli import journalctl


def epoch(text: str) -> float:
    return time.mktime(time.strptime(text, "%Y-%m-%d %H:%M:%S"))


@pytest.fixture
def logs(tmp_path, monkeypatch):
    monkeypatch.setattr(journalctl, "LOG", tmp_path)
    year = time.localtime().tm_year
    (tmp_path / "corosync").mkdir()
    (tmp_path / "corosync/corosync.log").write_text(
        f"--- {year}-11-25 16:16:00 starting corosync\n"
        "Nov 25 16:16:00.561 notice  [MAIN  ] Corosync Cluster Engine 3.1.7 starting up\n"
        "Nov 25 16:17:10.100 notice  [QUORUM] Members[2]: 2 3\n")
    (tmp_path / "pve-ha-crm.log").write_text(
        "Nov 25 16:16:28 node1 pve-ha-crm[37]: status change startup => wait_for_quorum\n"
        "Nov 25 16:17:30 node1 pve-ha-crm[37]: got unexpected error - boom\n"
        "Traceback (most recent call last):\n")
    (tmp_path / "pve-cluster.log").write_text(
        f"{year}-11-25 16:15:59,928 pmxcfs[13]: serving /etc/pve\n")
    (tmp_path / "pvechaos-guests").mkdir()
    (tmp_path / "pvechaos-guests/100.log").write_text(
        "--- 2026-11-25 16:17:20 starting ct:100 on node1\n")
    return year


def lines(capsys) -> list[str]:
    return capsys.readouterr().out.splitlines()


def test_every_unit_merged_in_time_order(logs, capsys):
    assert journalctl.main([]) == 0
    out = lines(capsys)
    units = [line.split()[2] for line in out]
    assert units == ["pve-cluster:", "corosync:", "corosync:", "pve-ha-crm:", "corosync:",
                     "pve-ha-crm:", "pve-ha-crm:"]
    assert out[-1].endswith("pve-ha-crm: Traceback (most recent call last):")


def test_units_and_a_time_window(logs, capsys):
    y = logs
    assert journalctl.main(["-u", "pve-ha-crm", "-u", "corosync.service", "--since",
                            f"@{epoch(f'{y}-11-25 16:17:00'):.0f}", "--until",
                            f"{y}-11-25 16:17:20", "--no-pager", "-o", "short-iso"]) == 0
    out = lines(capsys)
    assert len(out) == 1 and "Members[2]: 2 3" in out[0]


def test_a_line_without_a_time_of_its_own_goes_with_the_line_before(logs, capsys):
    y = logs
    journalctl.main(["-u", "pve-ha-crm", "--since", f"{y}-11-25 16:17:30"])
    assert [line.split(": ", 1)[1] for line in lines(capsys)] == [
        "Nov 25 16:17:30 node1 pve-ha-crm[37]: got unexpected error - boom",
        "Traceback (most recent call last):"]


def test_a_guest_unit_and_no_entries(logs, capsys):
    journalctl.main(["-u", "pve-container@100"])
    assert "starting ct:100 on node1" in lines(capsys)[0]
    journalctl.main(["-u", "pve-ha-lrm"])
    assert lines(capsys) == ["-- No entries --"]


def test_bad_arguments_are_refused(logs, capsys):
    assert journalctl.main(["--frobnicate"]) == 1
    assert "unrecognized option '--frobnicate'" in capsys.readouterr().err
    assert journalctl.main(["--since", "yesterday-ish"]) == 1
    assert "Failed to parse timestamp" in capsys.readouterr().err
