"""harness.story_order: a story's steps run whole, in order and on one worker, on small
story modules run by pytester with harness.plugin (and, for xdist, pytest-xdist)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.story_order import story_dist

pytest_plugins = ["pytester"]
ROOT = Path(__file__).resolve().parents[2]

# every step appends (module, step, xdist worker) to the file $STEPS_LOG
STORY = """
import json, os
import pytest

pytestmark = pytest.mark.story


def log(name):
    with open(os.environ["STEPS_LOG"], "a") as handle:
        handle.write(json.dumps([__name__, name,
                                 os.environ.get("PYTEST_XDIST_WORKER", "main")]) + "\\n")


def test_power_cut():
    log("power_cut")


@pytest.mark.budget
def test_recovery_budget():
    log("recovery_budget")


@pytest.mark.slow
def test_quorum_lost():
    log("quorum_lost")


def test_expected_one():
    log("expected_one")


def test_heal():
    log("heal")
"""


@pytest.fixture
def run(pytester: pytest.Pytester, tmp_path, monkeypatch):
    """Runs pytest on the generated modules with harness.plugin (and only the plugins
    named); ``run.steps()`` reads back which steps ran, in order, on which worker."""
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    pytester.makeini("[pytest]\nmarkers =\n    slow: a slow step\n")
    steps_log = tmp_path / "steps.jsonl"
    monkeypatch.setenv("STEPS_LOG", str(steps_log))
    # a subprocess run (xdist) imports harness from this checkout
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p))

    def run_it(*args: str, subprocess: bool = False, cache: bool = False) -> pytest.RunResult:
        how = pytester.runpytest_subprocess if subprocess else pytester.runpytest
        return how("-p", "harness.plugin", f"--metrics-file={tmp_path / 'metrics.json'}",
                   "-rs", *([] if cache else ["-p", "no:cacheprovider"]), *args)

    def steps() -> list[tuple[str, str, str]]:
        if not steps_log.exists():
            return []
        return [tuple(json.loads(line)) for line in steps_log.read_text().splitlines()]
    run_it.steps = steps
    run_it.steps_log = steps_log
    return run_it


def names(steps) -> list[str]:
    return [step for _, step, _ in steps]


def test_k_selecting_the_fourth_step_runs_its_earlier_steps_first(pytester, run):
    pytester.makepyfile(test_story=STORY)
    result = run("-k", "expected_one")
    # the budget check is not setup: it stays out
    assert names(run.steps()) == ["power_cut", "quorum_lost", "expected_one"]
    result.assert_outcomes(passed=3, deselected=2)
    result.stdout.fnmatch_lines([
        "pvechaos: earlier story steps added back (a selected step needs them):",
        "  test_story.py::test_power_cut",
        "  test_story.py::test_quorum_lost"])


def test_a_node_id_of_a_budget_step_runs_the_step_that_measures(pytester, run):
    pytester.makepyfile(test_story=STORY)
    result = run("test_story.py::test_recovery_budget")
    assert names(run.steps()) == ["power_cut", "recovery_budget"]
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["  test_story.py::test_power_cut"])


def test_steps_selected_out_of_order_run_in_story_order(pytester, run):
    pytester.makepyfile(test_story=STORY)
    run("test_story.py::test_heal", "test_story.py::test_power_cut")
    assert names(run.steps()) == ["power_cut", "quorum_lost", "expected_one", "heal"]


def test_a_whole_selection_adds_nothing_and_says_nothing(pytester, run):
    pytester.makepyfile(test_story=STORY, test_plain="def test_other():\n    pass\n")
    result = run("-k", "not other")
    assert names(run.steps()) == ["power_cut", "recovery_budget", "quorum_lost",
                                  "expected_one", "heal"]
    result.assert_outcomes(passed=5, deselected=1)
    assert "added back" not in result.stdout.str()


def test_k_leaves_other_modules_alone(pytester, run):
    pytester.makepyfile(test_story=STORY, test_plain="""
def test_first():
    pass


def test_heal_plain():
    pass
""")
    result = run("-k", "heal")
    assert names(run.steps()) == ["power_cut", "quorum_lost", "expected_one", "heal"]
    result.assert_outcomes(passed=5, deselected=2)  # test_first and the budget check


@pytest.mark.parametrize(("how", "named"), [(["-m", "not slow"], "-m 'not slow'"),
                                            (["--deselect", "test_story.py::test_quorum_lost"],
                                             "--deselect")])
def test_a_needed_step_left_out_on_purpose_skips_the_later_steps_naming_it(
        pytester, run, how, named):
    pytester.makepyfile(test_story=STORY)
    result = run("-k", "heal or power_cut", *how)
    assert names(run.steps()) == ["power_cut"]
    result.assert_outcomes(passed=1, skipped=1)  # heal; expected_one is not added back
    result.stdout.fnmatch_lines([
        f"SKIPPED * needs the earlier story step test_quorum_lost, which {named} left out; "
        "select it too (its steps build on each other)"])


def test_an_added_back_step_that_fails_stops_the_story(pytester, run):
    pytester.makepyfile(test_story=STORY.replace('log("quorum_lost")',
                                                 'assert False, "still quorate"'))
    result = run("-k", "heal")
    result.assert_outcomes(passed=1, failed=1, skipped=2)
    result.stdout.fnmatch_lines(["SKIPPED * an earlier step of this story failed "
                                 "(test_quorum_lost)*"])


@pytest.mark.parametrize(("option", "expected"), [
    ("--lf", ["power_cut", "quorum_lost", "expected_one"]),
    # (failed first would put expected_one first; it fails again, so heal is skipped)
    ("--ff", ["power_cut", "recovery_budget", "quorum_lost", "expected_one"]),
])
def test_last_failed_and_failed_first_keep_the_story_in_order(pytester, run, monkeypatch,
                                                              option, expected):
    pytester.makepyfile(test_story=STORY.replace(
        'log("expected_one")', 'log("expected_one")\n    assert os.environ.get("FAIL") is None'))
    monkeypatch.setenv("FAIL", "1")
    run(cache=True).assert_outcomes(passed=3, failed=1, skipped=1)
    run.steps_log.unlink()
    result = run(option, cache=True)
    assert names(run.steps()) == expected
    if option == "--lf":
        result.stdout.fnmatch_lines(["collected 1 item", "pvechaos: earlier story steps *"])


def test_collect_only_lists_the_added_steps(pytester, run):
    pytester.makepyfile(test_story=STORY)
    result = run("--collect-only", "-q", "-k", "heal")
    result.stdout.fnmatch_lines(["test_story.py::test_power_cut",
                                 "test_story.py::test_quorum_lost",
                                 "test_story.py::test_expected_one",
                                 "test_story.py::test_heal"])
    assert "test_recovery_budget" not in result.stdout.str()


# -- xdist -----------------------------------------------------------------------------
def two_stories(pytester: pytest.Pytester) -> None:
    # two stories, and plain tests to fill the workers: load would spread each story
    pytester.makepyfile(test_story_a=STORY, test_story_b=STORY,
                        test_plain="\n".join(f"def test_{i}():\n    pass\n"
                                             for i in range(8)))


def workers_by_story(steps) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for module, _, worker in steps:
        found.setdefault(module, set()).add(worker)
    return found


@pytest.mark.parametrize("dist", [[], ["--dist", "loadfile"], ["--dist", "loadscope"],
                                  ["--dist", "loadgroup"]])
def test_under_xdist_each_story_runs_on_one_worker_in_order(pytester, run, dist):
    two_stories(pytester)
    result = run("-p", "xdist", "-n", "2", *dist, subprocess=True)
    result.assert_outcomes(passed=18)
    steps = run.steps()
    assert {m: len(w) for m, w in workers_by_story(steps).items()} == {
        "test_story_a": 1, "test_story_b": 1}
    for module in ("test_story_a", "test_story_b"):
        assert [s for m, s, _ in steps if m == module] == [
            "power_cut", "recovery_budget", "quorum_lost", "expected_one", "heal"]
    assert all(w.startswith("gw") for _, _, w in steps)


def test_without_the_plugin_a_story_runs_on_both_workers(pytester, run):
    """The check above can fail: without the plugin, --dist each runs every story on both
    workers (plain --dist load splits one too, but only as the workers' timing falls:
    under load one worker may take a whole story, so that is no test)."""
    two_stories(pytester)
    run("-p", "xdist", "-p", "no:harness.story_order", "-n", "2", "--dist", "each",
        subprocess=True)
    assert {m: len(w) for m, w in workers_by_story(run.steps()).items()} == {
        "test_story_a": 2, "test_story_b": 2}


def test_loadgroup_keeps_a_story_whose_steps_have_their_own_groups(pytester, run):
    story = STORY.replace("@pytest.mark.slow", '@pytest.mark.xdist_group("slow")')
    pytester.makepyfile(test_story_a=story, test_story_b=story,
                        test_plain="\n".join(f"def test_{i}():\n    pass\n"
                                             for i in range(8)))
    result = run("-p", "xdist", "-n", "2", "--dist", "loadgroup", subprocess=True)
    result.assert_outcomes(passed=18)
    assert {m: len(w) for m, w in workers_by_story(run.steps()).items()} == {
        "test_story_a": 1, "test_story_b": 1}


@pytest.mark.parametrize(("dist", "header"), [
    ([], "*--dist load became --dist loadfile*"),
    (["--dist", "loadgroup"], "*"),  # the workers' node ids carry the group: not shown
])
def test_under_xdist_a_k_selection_adds_back_and_says_so(pytester, run, dist, header):
    two_stories(pytester)
    result = run("-p", "xdist", "-n", "2", *dist, "-k", "story_a and heal",
                 subprocess=True)
    assert names(run.steps()) == ["power_cut", "quorum_lost", "expected_one", "heal"]
    assert len(workers_by_story(run.steps())["test_story_a"]) == 1
    result.stdout.fnmatch_lines([
        header,
        "pvechaos: earlier story steps added back (a selected step needs them):",
        "  test_story_a.py::test_power_cut",
        "  test_story_a.py::test_quorum_lost",
        "  test_story_a.py::test_expected_one",
        "=* 4 passed *"])


@pytest.mark.parametrize("mode", ["each", "worksteal"])
def test_a_dist_mode_that_splits_a_story_is_refused(pytester, run, mode):
    pytester.makepyfile(test_story=STORY)
    result = run("-p", "xdist", "-n", "2", "--dist", mode)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: --dist '{mode}': * one worker",
                                 "  fix: use --dist loadfile*"])
    assert run.steps() == []


def test_a_dist_mode_without_workers_changes_nothing(pytester, run):
    pytester.makepyfile(test_story=STORY)
    result = run("-p", "xdist", "--dist", "each")  # no -n: xdist distributes nothing
    result.assert_outcomes(passed=5)
    assert "became" not in result.stdout.str()


def test_the_dist_mode_for_stories():
    assert [story_dist(d) for d in (None, "no", "load", "loadscope", "loadfile",
                                    "loadgroup")] == [None, "no", "loadfile", "loadfile",
                                                      "loadfile", "loadgroup"]
    with pytest.raises(pytest.UsageError, match="--dist loadfile"):
        story_dist("worksteal")


# -- random-ordering plugins -------------------------------------------------------------
@pytest.mark.parametrize(("plugin", "options", "args", "fix"), [
    ("randomly", "", [], "-p no:randomly"),
    ("random_order", "--random-order:random_order_enabled:store_true",
     ["--random-order"], "-p no:random_order"),
    ("reverse", "--reverse:reverse:store_true", ["--reverse"], "leave out --reverse"),
])
def test_a_plugin_that_reorders_tests_is_refused(pytester, run, plugin, options, args, fix):
    register_plugin(pytester, plugin, options)
    pytester.makepyfile(test_story=STORY)
    result = run("-p", plugin, *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: pytest-* reorders tests, but a story's steps *",
                                 f"  fix: {fix}*"])
    assert run.steps() == []


@pytest.mark.parametrize(("plugin", "options", "args"), [
    ("randomly", "--randomly-dont-reorganize:randomly_reorganize:store_false",
     ["--randomly-dont-reorganize"]),
    ("random_order", "--random-order:random_order_enabled:store_true", []),
    ("reverse", "--reverse:reverse:store_true", []),
])
def test_such_a_plugin_installed_but_not_reordering_is_left_alone(pytester, run, plugin,
                                                                  options, args):
    register_plugin(pytester, plugin, options)
    pytester.makepyfile(test_story=STORY)
    run("-p", plugin, *args).assert_outcomes(passed=5)


def register_plugin(pytester: pytest.Pytester, name: str, spec: str) -> None:
    """A module importable as ``name`` (so ``-p name`` registers it under that name) with
    the option (flag:dest:action) the real plugin has; random_order's defaults carry its
    "default:" prefix."""
    lines = ["def pytest_addoption(parser):"]
    if spec:
        flag, dest, action = spec.split(":")
        lines.append(f"    parser.addoption({flag!r}, dest={dest!r}, action={action!r})")
    if name == "random_order":
        lines += ["    parser.addoption('--random-order-bucket', dest='random_order_bucket',",
                  "                     default='default:module')",
                  "    parser.addoption('--random-order-seed', dest='random_order_seed',",
                  "                     default='default:1')"]
    if len(lines) == 1:
        lines.append("    pass")
    pytester.makepyfile(**{name: "\n".join(lines) + "\n"})
    pytester.syspathinsert()


# -- the real scenarios ------------------------------------------------------------------
def collected(*args: str) -> list[str]:
    """`pytest scenarios/ --collect-only -q ARGS` in this checkout (no lab needed): the
    node ids it would run, in order."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "COV_"))}
    out = subprocess.run([sys.executable, "-m", "pytest", "scenarios/", "--collect-only",
                          "-q", "-p", "no:cacheprovider", *args], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    return [line for line in out.stdout.splitlines() if line.startswith("scenarios/")]


def test_k_quorum_runs_the_ha_story_steps_that_set_up_its_quorum_step():
    ids = collected("-k", "quorum")
    ha = [i.split("::")[1] for i in ids if i.startswith("scenarios/test_ha_story.py")]
    assert ha[:3] == ["test_setup_guest_under_ha",
                      "test_power_cut_guest_node_recovers_elsewhere",
                      "test_power_cut_second_node_no_recovery_without_quorum"]
    assert "test_recovery_meets_budget" not in ha  # a check, not setup


def test_k_budget_runs_each_budget_check_after_the_step_that_measures():
    ids = [i.split("::")[1] for i in collected("-k", "budget")
           if i.startswith("scenarios/test_ha_story.py")]
    assert ids == ["test_setup_guest_under_ha", "test_power_cut_guest_node_recovers_elsewhere",
                   "test_recovery_meets_budget"]
