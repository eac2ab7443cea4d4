"""`python3 -m lab.embedded cleanup`: a user other than root, or an operation the kernel
refuses, ends in a message naming the fix, never a traceback. No namespace is made."""

from __future__ import annotations

import pytest

import lab.embedded.__main__ as cleanup


def test_cleanup_as_non_root_says_it_needs_root(monkeypatch, capsys):
    monkeypatch.setattr(cleanup.os, "geteuid", lambda: 1000)
    monkeypatch.setattr(cleanup, "remove_leftovers",
                        lambda config: pytest.fail("swept as non-root"))
    assert cleanup.main(["cleanup", "lab1"]) == 2
    err = capsys.readouterr().err
    assert "cleanup run as uid 1000" in err
    assert "needs root" in err
    assert "fix: run it as root: sudo python3 -m lab.embedded cleanup lab1" in err


def test_cleanup_refused_as_root_names_the_path_and_the_fix(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(cleanup.os, "geteuid", lambda: 0)
    monkeypatch.setattr(cleanup, "STATE_ROOT", tmp_path)
    (tmp_path / "lab1").mkdir()  # a leftover

    def refused(config) -> bool:
        raise PermissionError(13, "Permission denied", str(config.lab_dir / "state.json"))

    monkeypatch.setattr(cleanup, "remove_leftovers", refused)
    assert cleanup.main(["cleanup"]) == 1
    err = capsys.readouterr().err
    assert "cleanup was refused on " in err and "state.json (Permission denied)" in err
    assert "fix: run it as root on the host" in err
    assert "sudo python3 -m lab.embedded cleanup" in err
    assert "Traceback" not in err


def test_cleanup_without_the_verb_is_a_usage_error(capsys):
    assert cleanup.main([]) == 2
    assert "usage: python -m lab.embedded cleanup" in capsys.readouterr().err


def test_cleanup_takes_the_labs_ready_states_and_never_as_a_lab(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(cleanup.os, "geteuid", lambda: 0)
    monkeypatch.setattr(cleanup, "STATE_ROOT", tmp_path)
    swept: list[str] = []
    monkeypatch.setattr(cleanup, "remove_leftovers",
                        lambda config: swept.append(config.name) or True)
    (tmp_path / "lab1").mkdir()
    for name in ("lab1", "gw0"):  # a saved formed cluster (lab/embedded/ready.py)
        (tmp_path / ".ready" / name).mkdir(parents=True)
    assert cleanup.main(["cleanup"]) == 0
    out = capsys.readouterr().out
    assert swept == ["lab1"]  # `.ready` is no lab
    assert "gw0: its ready state (a saved formed cluster) removed" in out
    assert "lab1: its ready state" in out
    assert not (tmp_path / ".ready").exists()
