"""`pvechaos chaos plan|show`: a schedule and its predictions, offline."""

from __future__ import annotations

from harness.chaos.cli import main
from harness.chaos.schedule import load


def test_plan_prints_the_same_schedule_for_the_same_seed(capsys, tmp_path):
    assert main(["plan", "--seed", "5", "--timescale", "0.1", "--duration", "300"]) == 0
    first = capsys.readouterr().out
    assert main(["plan", "--seed", "5", "--timescale", "0.1", "--duration", "300",
                 "-o", str(tmp_path / "s.json")]) == 0
    assert (tmp_path / "s.json").read_text() == first
    assert "written to" in capsys.readouterr().err


def test_a_dry_run_names_nodes_moves_and_windows(capsys, tmp_path):
    assert main(["plan", "--seed", "7", "--timescale", "0.1", "--duration", "300",
                 "--mix", "power_cut", "--roles", "guest-node", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "guests ct:100 on node1, ct:101 on node2, ct:102 on node3" in out
    assert "power_cut   guest-node -> node" in out
    assert "recovered elsewhere: ct:10" in out and "within [" in out
    path = tmp_path / "s.json"
    main(["plan", "--seed", "7", "--timescale", "0.1", "--duration", "300", "-o", str(path)])
    capsys.readouterr()
    assert main(["show", str(path)]) == 0
    assert f"{len(load(path).items)} faults" in capsys.readouterr().out


def test_bad_input_is_refused_with_the_fix(capsys, tmp_path):
    assert main(["plan", "--seed", "1", "--mix", "meteor=2"]) == 2
    assert "unknown fault kind 'meteor'" in capsys.readouterr().err
    assert main(["show", str(tmp_path / "none.json")]) == 2
    assert "cannot read schedule" in capsys.readouterr().err
    (tmp_path / "bad.json").write_text("{}")
    assert main(["show", str(tmp_path / "bad.json")]) == 2
    assert "not a pvechaos schedule" in capsys.readouterr().err
