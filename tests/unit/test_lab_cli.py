"""`pvechaos-lab`: its verbs reach the right code, and a mistake is one line with its fix."""

from __future__ import annotations

import pytest

from lab import cli


def test_a_missing_option_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["libvirt", "build-gateway", "--lab-config", "lab.yaml"])
    assert info.value.code == 2
    assert "--cloud-image" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [
    ["libvirt", "build-gateway", "--lab-config", "{tmp}/none.yaml", "--cloud-image", "x"],
    ["libvirt", "status", "--lab-config", "{tmp}/none.yaml"],
    ["inventory", "check", "--inventory", "{tmp}/none.yaml"],
])
def test_a_missing_file_is_named_with_its_fix_and_no_traceback(tmp_path, capsys, argv):
    assert cli.main([a.format(tmp=tmp_path) for a in argv]) == 1
    err = capsys.readouterr().err
    assert err.startswith("pvechaos-lab: ") and f"{tmp_path}/none.yaml does not exist" in err
    assert "fix: give the path of an existing YAML file" in err
    assert "Traceback" not in err


def test_guest_template_writes_the_storage_layout(tmp_path, capsys):
    assert cli.main(["guest-template", "--out", str(tmp_path), "--port", "7100"]) == 0
    printed = capsys.readouterr().out.split()
    assert printed == [str(tmp_path / "template/cache/pvechaos-guest_1.0_amd64.tar.xz"),
                       str(tmp_path / "snippets/pvechaos-guest.sh")]
    assert all((tmp_path / p).is_file() for p in printed)
