"""harness.verify_stats and harness.verify: the t-test, the verdict per figure and per
behaviour, the setting refusal, and the `pvechaos baseline` / `verify` exit codes."""

from __future__ import annotations

import json
import random

import pytest

from harness.baseline import Side, load_side, save_side
from harness.compare import Samples
from harness.errors import ConfigError
from harness.pve.version import parse_pveversion_verbose
from harness.verify import judge_behaviour, judge_figure, verify
from harness.verify_stats import betainc, t_two_sided_p, welch
from lab.cli import main as cli


def samples(*values: float, verdict: str = "ok") -> Samples:
    return Samples(tuple(values), (verdict,) * len(values))


# -- the statistics ------------------------------------------------------------------------
@pytest.mark.parametrize(("t", "df", "p"), [  # reference values: scipy.stats.t.sf x 2
    (2.0, 1.3, 0.24745515650741629), (50.0, 2.1, 0.00028902744783162635),
    (0.0, 4.0, 1.0), (2.776445105, 4.0, 0.05)])
def test_the_t_tail_matches_reference_values(t, df, p):
    assert t_two_sided_p(t, df) == pytest.approx(p, rel=1e-7)


def test_betainc_edges_and_symmetry():
    assert betainc(2, 3, 0.0) == 0.0 and betainc(2, 3, 1.0) == 1.0
    assert betainc(2.5, 0.5, 0.3) == pytest.approx(1 - betainc(0.5, 2.5, 0.7), abs=1e-12)
    with pytest.raises(ValueError):
        betainc(1, 1, 1.5)


def test_welch_matches_scipy_on_random_samples():
    stats = pytest.importorskip("scipy.stats")
    rng = random.Random(7)
    for _ in range(50):
        b = [rng.gauss(10, 1) for _ in range(rng.randint(2, 6))]
        a = [rng.gauss(11, 3) for _ in range(rng.randint(2, 6))]
        assert welch(b, a)[2] == pytest.approx(
            stats.ttest_ind(a, b, equal_var=False).pvalue, rel=1e-6)


def test_welch_needs_two_samples_a_side_and_handles_no_spread():
    with pytest.raises(ValueError, match="2 samples a side"):
        welch([1.0], [1.0, 2.0])
    assert welch([5.0, 5.0], [5.0, 5.0])[2] == 1.0
    assert welch([5.0, 5.0], [6.0, 6.0])[2] == 0.0


def _draws(rng: random.Random, mean: float, sd: float, n: int = 3) -> Samples:
    return samples(*(rng.gauss(mean, sd) for _ in range(n)))


def test_a_real_shift_is_flagged_in_every_seeded_trial():
    rng = random.Random(16)
    verdicts = {judge_figure("s", "f", _draws(rng, 20, 1), _draws(rng, 30, 1)).verdict
                for _ in range(200)}
    assert verdicts == {"REGRESSION"}
    faster = {judge_figure("s", "f", _draws(rng, 30, 1), _draws(rng, 20, 1)).verdict
              for _ in range(200)}
    assert faster == {"faster"}


def test_the_same_distribution_twice_is_never_flagged():
    rng = random.Random(17)
    verdicts = [judge_figure("s", "f", _draws(rng, 20, 1), _draws(rng, 20, 1)).verdict
                for _ in range(500)]
    assert set(verdicts) == {"same"}


def test_where_the_spread_exceeds_the_floor_the_test_keeps_false_alarms_under_alpha():
    """N(5, 2) twice: the means often differ by more than the 1 s floor; the t-test
    flags at most alpha of the trials (measured 33 in 1000 with this seed), and a shift
    of five spreads is found nearly always (measured 967 in 1000)."""
    rng = random.Random(18)
    false = sum(judge_figure("s", "f", _draws(rng, 5, 2), _draws(rng, 5, 2)).verdict != "same"
                for _ in range(1000))
    found = sum(judge_figure("s", "f", _draws(rng, 5, 2), _draws(rng, 15, 2)).verdict
                == "REGRESSION" for _ in range(1000))
    assert false <= 50 and found >= 950


def test_the_t_test_alone_would_flag_what_the_noise_floor_keeps_out():
    """A tiny spread makes 0.3 s 'significant'; below one poll it is no change."""
    before, after = samples(20.0, 20.01, 19.99), samples(20.3, 20.31, 20.29)
    result = judge_figure("s", "f", before, after)
    assert result.p < 0.001 and result.verdict == "same"
    assert "within ±3.00 s" in result.reason


def test_a_shift_beyond_the_floor_that_noise_explains_is_not_flagged():
    """After scatters wildly: the means differ by 4 s (beyond the floor) but not
    significantly."""
    result = judge_figure("s", "f", samples(20.0, 21.0, 19.0), samples(10.0, 40.0, 22.0))
    assert result.p > 0.05 and result.verdict == "same"


def test_one_sample_falls_back_to_the_compare_rule():
    assert judge_figure("s", "f", samples(20.0), samples(20.5)).verdict == "same"
    one = judge_figure("s", "f", samples(20.0), samples(30.0))
    assert one.verdict == "REGRESSION" and one.p is None and "1 sample" in one.reason


def test_a_broken_window_is_a_regression_however_small():
    after = Samples((20.1, 20.0, 20.2), ("ok", "outside_window", "ok"))
    result = judge_figure("s", "f", samples(20.0, 20.1, 19.9), after)
    assert result.verdict == "REGRESSION" and "ok -> outside_window" in result.reason


def test_figures_on_one_side_are_listed_never_regressions():
    assert judge_figure("s", "f", None, samples(1.0)).verdict == "only after"
    assert judge_figure("s", "f", samples(1.0), None).verdict == "only before"


# -- behaviours ----------------------------------------------------------------------------
@pytest.mark.parametrize(("before", "after", "verdict"), [
    (("passed",) * 3, ("passed", "failed", "passed"), "REGRESSION"),
    (("passed",) * 3, ("passed",) * 3, "same"),
    (("failed", "passed"), ("passed", "passed"), "fixed"),
    (("failed", "passed"), ("failed", "passed"), "same"),
    (("passed",) * 3, ("skipped",) * 3, "not reached"),
    (("skipped",) * 2, ("skipped",) * 2, "same"),
    ((), ("passed",), "only after"),
    (("passed",), (), "only before")])
def test_behaviour_verdicts(before, after, verdict):
    assert judge_behaviour("s", "step", before, after).verdict == verdict


def side(timescale: float = 0.1, figure: tuple[float, ...] = (20.0, 21.0, 19.5),
         outcomes: tuple[str, ...] = ("passed",) * 3) -> Side:
    return Side(sources=["r"], figures={("story", "time_to_recovery"): samples(*figure)},
                steps={("story", "test_cut"): outcomes},
                settings={"story": {"lab": "embedded", "nodes": 3, "timescale": timescale}},
                versions={"node1": {"pve-manager": "8.4.1"}})


def test_a_step_that_fails_now_is_a_regression_whatever_the_figures_say():
    result = verify(side(), side(outcomes=("passed", "failed", "passed")))
    assert [f.verdict for f in result.figures] == ["same"]
    assert [b.verdict for b in result.behaviours] == ["REGRESSION"] and result.regression


def test_different_settings_are_refused_naming_the_difference_unless_forced():
    with pytest.raises(ConfigError, match=r"story: timescale 0.1 before, 1 after") as err:
        verify(side(), side(timescale=1, figure=(200.0, 210.0, 195.0)))
    assert "--force" in str(err.value)
    forced = verify(side(), side(timescale=1, figure=(200.0, 210.0, 195.0),
                                 outcomes=("failed",) * 3), force=True)
    assert [f.verdict for f in forced.figures] == ["different setting"]
    assert [b.verdict for b in forced.behaviours] == ["REGRESSION"]


# -- files and the command line ------------------------------------------------------------
def metrics_doc(run: str, values: list[float], outcomes: list[str], timescale: float = 0.1,
                version: str = "8.4.1") -> dict:
    return {"run": run,
            "metrics": [{"scenario": "story", "name": "time_to_recovery", "value_s": v,
                         "data": {"repeat": i + 1}, "window_s": None, "budget_s": 60.0,
                         "verdict": "ok"} for i, v in enumerate(values)],
            "steps": [{"scenario": "story", "step": "test_cut", "repeat": i + 1,
                       "outcome": o, "budget": False} for i, o in enumerate(outcomes)],
            "settings": [{"scenario": "story", "repeat": i + 1, "lab": "embedded",
                          "nodes": 3, "timescale": timescale,
                          "versions": {"node1": {"pve-manager": version}},
                          "constants": {"token_ms": 3650, "consensus_ms": 4380}}
                         for i in range(len(outcomes))]}


def write(tmp_path, name: str, doc: dict):
    path = tmp_path / name
    path.write_text(json.dumps(doc))
    return path


def test_baseline_round_trip_keeps_samples_steps_settings_and_versions(tmp_path):
    run = write(tmp_path, "m.json", metrics_doc("a", [20.0, 21.0, 19.0], ["passed"] * 3))
    loaded = load_side([run])
    save_side(loaded, tmp_path / "b.json")
    again = load_side([tmp_path / "b.json"])
    assert again.figures == loaded.figures and again.steps == loaded.steps
    assert again.settings == {"story": {"lab": "embedded", "nodes": 3, "timescale": 0.1}}
    assert again.pve_managers() == "8.4.1 (node1)"
    assert again.constants == {"story": {"token_ms": 3650, "consensus_ms": 4380}}


def test_a_side_mixing_settings_is_refused(tmp_path):
    a = write(tmp_path, "a.json", metrics_doc("a", [20.0], ["passed"]))
    b = write(tmp_path, "b.json", metrics_doc("b", [20.0], ["passed"], timescale=1.0))
    with pytest.raises(ConfigError, match="must come from one setting"):
        load_side([a, b])


def test_the_cli_exit_codes(tmp_path, capsys):
    before = write(tmp_path, "before.json", metrics_doc("a", [20.0, 21.0, 19.0], ["passed"] * 3))
    same = write(tmp_path, "same.json", metrics_doc("b", [20.5, 19.5, 20.2], ["passed"] * 3,
                                                    version="9.1.1"))
    slower = write(tmp_path, "slow.json", metrics_doc("c", [40.0, 41.0, 39.5], ["passed"] * 3))
    other = write(tmp_path, "other.json", metrics_doc("d", [2.0, 2.1, 1.9], ["passed"] * 3,
                                                      timescale=0.01))
    baseline = tmp_path / "BASELINE.json"
    assert cli(["baseline", "--from", str(before), "-o", str(baseline)]) == 0
    assert "1 figures (1 with 3 sample(s)), 1 steps, PVE 8.4.1 (node1)" in \
        capsys.readouterr().out
    assert cli(["verify", "--against", str(baseline), str(same), "--json",
                str(tmp_path / "v.json"), "--plot", str(tmp_path / "v.png")]) == 0
    out = capsys.readouterr().out
    assert "before: PVE 8.4.1 (node1); corosync token 3650 ms, consensus 4380 ms" in out
    assert "after:  PVE 9.1.1 (node1)" in out
    assert json.loads((tmp_path / "v.json").read_text())["figures"][0]["verdict"] == "same"
    assert (tmp_path / "v.png").read_bytes().startswith(b"\x89PNG")
    assert cli(["verify", "--against", str(baseline), str(slower)]) == 1
    assert "REGRESSION (p=" in capsys.readouterr().out
    assert cli(["verify", "--against", str(baseline), str(other)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: the runs' settings differ") and "fix: " in err
    assert cli(["verify", "--against", str(baseline), str(other), "--force"]) == 0
    assert "different setting" in capsys.readouterr().out
    assert cli(["verify", "--against", str(tmp_path / "missing.json"), str(same)]) == 2
    assert cli(["baseline", "--from", str(write(tmp_path, "e.json", {"run": "x",
                                                                      "metrics": []})),
                "-o", str(baseline)]) == 2
    assert "holds no figure and no story step" in capsys.readouterr().err


def test_bad_step_outcome_is_bad_input(tmp_path):
    doc = metrics_doc("a", [20.0], ["passed"])
    doc["steps"][0]["outcome"] = "exploded"
    with pytest.raises(ConfigError, match="has outcome 'exploded'"):
        load_side([write(tmp_path, "m.json", doc)])


def test_pveversion_verbose_parses_real_and_emulated_lines():
    text = ("proxmox-ve: 8.4.0 (running kernel: 6.8.12-9-pve)\n"
            "pve-manager: 8.4.1 (running version: 8.4.1/2a5fa54a8503f96d)\n"
            "corosync: 3.1.9-pve1\nfonts-font-logos: not correctly installed\n")
    assert parse_pveversion_verbose(text) == {
        "proxmox-ve": "8.4.0", "pve-manager": "8.4.1", "corosync": "3.1.9-pve1",
        "fonts-font-logos": "not correctly installed"}
    from harness.errors import ParseError
    with pytest.raises(ParseError, match="no pve-manager line"):
        parse_pveversion_verbose("corosync: 3.1.9\n")
    with pytest.raises(ParseError, match="'package: version'"):
        parse_pveversion_verbose("pve-manager 8.4.1\n")
