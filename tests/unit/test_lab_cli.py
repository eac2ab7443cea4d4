"""`pvechaos-lab` (the old name of `pvechaos`, same verbs): its verbs reach the right code,
and a mistake is one line with its fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from lab import cli


def pvechaos_lab(argv: list[str]) -> int:
    return cli.main(argv, prog="pvechaos-lab")


def test_a_missing_option_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as info:
        pvechaos_lab(["libvirt", "build-gateway"])
    assert info.value.code == 2
    assert "--lab-config" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [
    ["libvirt", "build-gateway", "--lab-config", "{tmp}/none.yaml", "--mirror", "x"],
    ["libvirt", "status", "--lab-config", "{tmp}/none.yaml"],
    ["inventory", "check", "--inventory", "{tmp}/none.yaml"],
])
def test_a_missing_file_is_named_with_its_fix_and_no_traceback(tmp_path, capsys, argv):
    assert pvechaos_lab([a.format(tmp=tmp_path) for a in argv]) == 1
    err = capsys.readouterr().err
    assert err.startswith("pvechaos-lab: ") and f"{tmp_path}/none.yaml does not exist" in err
    assert "fix: give the path of an existing YAML file" in err
    assert "Traceback" not in err


def test_guest_template_writes_the_storage_layout(tmp_path, capsys):
    assert pvechaos_lab(["guest-template", "--out", str(tmp_path), "--port", "7100"]) == 0
    printed = capsys.readouterr().out.split()
    assert printed == [str(tmp_path / "template/cache/pvechaos-guest_1.0_amd64.tar.xz"),
                       str(tmp_path / "snippets/pvechaos-guest.sh")]
    assert all((tmp_path / p).is_file() for p in printed)


@pytest.mark.parametrize(("args", "said"), [
    (["--port", "0"], "--port 0: not a TCP port (1-65535)\n  fix: give the port"),
    (["--port", "70000"], "--port 70000: not a TCP port (1-65535)"),
    (["--storage", "my storage"], "--storage 'my storage': not a PVE storage id\n  fix: give "
                                  "the id of the shared storage as `pvesm status` lists it"),
    (["--storage", ".."], "--storage '..': not a PVE storage id"),
    (["--storage", "../etc"], "--storage '../etc': not a PVE storage id"),
    (["--storage", "x'; rm -rf /"], "not a PVE storage id"),
])
def test_guest_template_refuses_a_bad_value_before_writing(tmp_path, capsys, args, said):
    out = tmp_path / "out"
    assert pvechaos_lab(["guest-template", "--out", str(out), *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("pvechaos-lab guest-template: ") and said in err
    assert "Traceback" not in err
    assert not out.exists()  # nothing written


@pytest.mark.parametrize("storage", ["shared", "NFS-1", "ceph.pool_2", "a..b"])
def test_guest_template_takes_every_pve_storage_id(storage):
    from lab.guest_template import check_storage_id

    assert check_storage_id(storage) == storage


def test_guest_template_refuses_an_out_under_a_file(tmp_path, capsys):
    (tmp_path / "file").write_text("")
    assert pvechaos_lab(["guest-template", "--out", str(tmp_path / "file" / "dir")]) == 2
    err = capsys.readouterr().err
    assert f"lies under {tmp_path / 'file'}, which is a file" in err
    assert "fix: give a directory you can write, e.g. --out ./pvechaos-storage" in err


def test_guest_template_refuses_an_out_that_is_a_file(tmp_path, capsys):
    (tmp_path / "file").write_text("")
    assert pvechaos_lab(["guest-template", "--out", str(tmp_path / "file")]) == 2
    assert "is a file, not a directory" in capsys.readouterr().err


def test_guest_template_refuses_an_unwritable_out(tmp_path, capsys, monkeypatch):
    from lab import guest_template

    locked = tmp_path / "locked"
    locked.mkdir()
    monkeypatch.setattr(guest_template.os, "access", lambda path, mode: Path(path) != locked)
    assert pvechaos_lab(["guest-template", "--out", str(locked)]) == 2
    assert f"--out {str(locked)!r}: is not writable" in capsys.readouterr().err
    assert pvechaos_lab(["guest-template", "--out", str(locked / "a" / "b")]) == 2
    err = capsys.readouterr().err
    assert f"cannot be made: {locked} is not writable" in err
    assert "fix: give a directory you can write" in err


def test_a_write_failing_after_the_checks_is_named_not_a_traceback(tmp_path, capsys,
                                                                  monkeypatch):
    from lab import guest_template

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device", str(tmp_path / "t.tar.xz"))

    monkeypatch.setattr(guest_template, "build_template", full)
    assert pvechaos_lab(["guest-template", "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "No space left on device" in err and "fix: free space" in err
