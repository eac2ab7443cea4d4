"""The lab-agnostic pytest plugin: stories, metrics, summary, and clean interruption.

- ``@pytest.mark.story``: the tests of a module are the ordered steps of one story; once
  a step fails, the later steps are skipped with the reason.
- ``@pytest.mark.budget``: a budget check of a story, apart from its behaviour steps: it
  is skipped like a step when an earlier step failed, but its own failure does not stop
  the story (a missed budget is not a broken cluster).
- ``invariants`` fixture (a started InvariantChecker), or ``fleet`` (several guests, each
  with its own): a test that uses it fails when a safety invariant breaks while it runs.
- ``metrics`` fixture: records figures into ``--metrics-file`` (reports/metrics.json), the
  Allure results and the test's JUnit properties (``--junitxml``); a compact table ends
  the terminal report.
- SIGTERM is turned into KeyboardInterrupt so fixtures tear labs down.
- harness/story_order.py (registered with this plugin) keeps a story whole and in order
  under xdist, -k and node ids, and refuses random-ordering plugins.
"""

from __future__ import annotations

import contextlib
import faulthandler
import json
import os
import signal
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from harness import options
from harness.errors import LabError
from harness.expectations import Budget, Window
from harness.guest_fleet import GuestFleet
from harness.invariants import InvariantChecker
from harness.metrics import Metric, MetricsFile
from harness.ssh import quiet_paramiko
from harness.timescale import Timescale
from harness.verdicts import CATEGORIES, LAB_ERROR, Finding, InvariantBroken, QuorumAssertion
from harness.waits import NotYet, set_progress, wait_until

pytest_plugins = ["harness.story_order", "harness.repeat", "harness.run_record",
                  "harness.baseline_plugin", "harness.chaos.options",
                  "harness.report.allure_redact"]

_FAILED_STEP = pytest.StashKey[dict]()
RUN_ID = pytest.StashKey[str]()
# The run's one timescale, made from --timescale once (pytest_configure)
TIMESCALE = pytest.StashKey[Timescale]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("pvechaos")
    group.addoption("--metrics-file", default="reports/metrics.json", type=Path,
                    help="where measured figures are written (default: %(default)s)")
    group.addoption("--timescale", type=float, default=1.0,
                    help="multiplier for PVE's HA timers on labs that scale them, from "
                         "0.01 to 10 (1 = PVE's real timings; default: %(default)s)")
    group.addoption("--recovery-budget", type=float, default=120.0,
                    help="recovery budget in seconds at timescale 1, > 0 "
                         "(default: %(default)s)")


def run_timescale(config: pytest.Config) -> Timescale:
    """The run's one timescale, made and validated once in pytest_configure."""
    return config.stash[TIMESCALE]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "story: the module's tests are ordered steps of one "
                                       "story; a failed step skips the rest")
    config.addinivalue_line("markers", "budget: a budget check of a story; its failure does "
                                       "not stop the story")
    config.addinivalue_line("markers", "quorum: a failed assertion in this test is a quorum "
                                       "assertion (its own report category)")
    config.addinivalue_line("markers", "chaos: a seeded chaos schedule or soak "
                            "(scenarios/test_chaos.py; .ci/chaos runs it, not the main job)")
    config.addinivalue_line("markers", "extended: a longer fault story or item, run only "
                                       "with --all-faults (harness/fixtures.py)")
    config.addinivalue_line("markers", "needs_verbs(*verbs): the FaultInjector verbs a "
                                       "fault story uses; skipped when one is missing")
    config.stash[_FAILED_STEP] = {}
    # every option's value is checked here, before any lab starts (harness/options.py)
    options.metrics_file(config.getoption("metrics_file"))  # writable
    options.recovery_budget(config.getoption("recovery_budget"))
    config.stash[TIMESCALE] = options.timescale(config.getoption("timescale"))  # the one place
    quiet_paramiko()  # --log-cli-level=DEBUG shows pvechaos.ssh's lines, not the kex
    if threading_main():
        signal.signal(signal.SIGTERM, _raise_interrupt)
        # `kill -USR1 <pid>` writes every thread's stack to stacks_file(pid): what a hung
        # run is waiting for (pytest captures stderr, so not there)
        try:
            _STACKS.append(open(stacks_file(os.getpid()), "w"))  # noqa: SIM115 - for life
            faulthandler.register(signal.SIGUSR1, file=_STACKS[-1], all_threads=True)
        except (OSError, ValueError):
            pass
    worker = getattr(config, "workerinput", None)
    config.stash[RUN_ID] = worker["pvechaos_run"] if worker else uuid.uuid4().hex[:12]
    if worker is None and threading_main():
        install_progress_line(config)


def install_progress_line(config: pytest.Config) -> None:
    """Long waits say what they wait for and for how long, on the terminal, while the
    test's own output is captured: one line rewritten every second on a terminal, a line
    every 10 s otherwise (CI logs)."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")
    if reporter is None or capture is None:
        return
    tty = reporter.isatty() if callable(getattr(reporter, "isatty", None)) else False
    width = {"n": 0}

    def show(line: str | None) -> None:
        if not threading_main():
            return  # watchers' threads never draw on the terminal
        with capture.global_and_fixture_disabled():
            if tty:
                text = "" if line is None else f"  {line}"
                reporter.write("\r" + text.ljust(width["n"]) + ("\r" if line is None else ""),
                               flush=True)
                width["n"] = len(text)
            elif line is not None:
                reporter.write_line(f"  ... {line}")

    set_progress(show, every_s=1.0 if tty else 10.0)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node) -> None:
    """xdist: every worker writes its metrics under the controller's run id."""
    node.workerinput["pvechaos_run"] = node.config.stash[RUN_ID]


_STACKS: list = []  # the open stack-dump file, kept for the life of the run


def stacks_file(pid: int) -> Path:
    return Path(tempfile.gettempdir()) / f"pvechaos-stacks-{pid}.txt"


def pytest_unconfigure(config: pytest.Config) -> None:
    """An unused stack-dump file is removed at the end of the run."""
    while _STACKS:
        handle = _STACKS.pop()
        with contextlib.suppress(OSError, ValueError):
            faulthandler.unregister(signal.SIGUSR1)
            handle.close()
            path = Path(handle.name)
            if path.stat().st_size == 0:
                path.unlink()


def threading_main() -> bool:
    import threading
    return threading.current_thread() is threading.main_thread()


def _raise_interrupt(signum, frame) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("story") is None:
        return
    failed = item.config.stash[_FAILED_STEP].get(story_key(item))
    if failed:
        pytest.skip(f"an earlier step of this story failed ({failed}); "
                    "the story cannot go on from an unknown state")


def story_key(item: pytest.Item) -> str:
    """A story's module node: each repetition (--repeat, harness/repeat.py) is its own."""
    module = item.getparent(pytest.Module)
    return module.nodeid if module is not None else item.module.__name__


@pytest.hookimpl(wrapper=True, trylast=True)
def pytest_runtest_makereport(item: pytest.Item, call):
    """Story bookkeeping, a lab error's short report, and every report redacted. Last
    (the innermost wrapper), so Allure's own wrapper reads the redacted report."""
    report = yield
    if item.get_closest_marker("story") is not None and report.failed and \
            item.get_closest_marker("budget") is None:
        item.config.stash[_FAILED_STEP].setdefault(story_key(item), item.name)
    if report.failed and call.excinfo is not None and \
            isinstance(call.excinfo.value, LabError):
        # a lab error is the lab's story, not the test's: its message says it all
        report.longrepr = f"{LAB_ERROR}: {call.excinfo.value}"
    redact_report(report, call)
    return report


def redact_report(report: pytest.TestReport, call=None) -> None:
    """Secrets out of what a test's report carries to the terminal, JUnit, Allure and
    metrics.json (harness/report/redact.py): the traceback (its source lines, the
    arguments of each frame, the error lines), the captured stdout, stderr and log, and
    a failed assertion's message (Allure quotes the exception itself). A harness error's
    message is redacted where it is made (harness.errors.PvechaosError)."""
    from harness.report.redact import redact, redact_tree

    report.longrepr = redact_tree(report.longrepr)
    report.sections = redact_tree(report.sections)
    value = call.excinfo.value if call is not None and call.excinfo is not None else None
    if isinstance(value, AssertionError) and value.args:
        value.args = tuple(redact(a) if isinstance(a, str) else a for a in value.args)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item):
    """Failures get their kind (harness.verdicts): a test using the ``invariants`` (or
    ``fleet``) fixture fails with InvariantBroken when one broke while it ran, and a
    failed assertion in a test marked ``quorum`` is a QuorumAssertion."""
    funcargs = getattr(item, "funcargs", {})
    checkers = [c for c in (funcargs.get("invariants"), funcargs.get("fleet"))
                if isinstance(c, (InvariantChecker, GuestFleet))]
    try:
        result = yield  # the test's own failure comes first
    except AssertionError as exc:
        if item.get_closest_marker("quorum") is None or isinstance(exc, Finding):
            raise
        raise QuorumAssertion(str(exc)) from exc
    for checker in checkers:
        checker.check()
        new = checker.take_unreported()
        if new:
            raise InvariantBroken("safety invariants broken during this step:\n" +
                                  "\n".join(f"  {v}" for v in new))
    return result


class MetricsRecorder:
    def __init__(self, scenario: str, file: MetricsFile,
                 properties: list[tuple[str, object]] | None = None,
                 repeat: int | None = None) -> None:
        """``properties``: the test's ``user_properties``, which ``--junitxml`` writes;
        ``repeat``: the repetition (--repeat) every figure is marked with."""
        self.scenario, self.file, self.repeat = scenario, file, repeat
        self.properties = properties if properties is not None else []

    def record(self, name: str, value_s: float | None, *, window: Window | None = None,
               budget: Budget | None = None, **data: object) -> Metric:
        """Record a figure with what it is judged against (the judging is the test's:
        ``check``); a None value means it could not be measured, which fails."""
        if value_s is None:
            raise AssertionError(f"metric {name!r} could not be measured: the timeline has "
                                 "no matching observation")
        if window is not None:
            data = {**data, "window_basis": window.basis}
        if self.repeat is not None:
            data = {**data, "repeat": self.repeat}
        metric = Metric(self.scenario, name, value_s, data,
                        (window.low_s, window.high_s) if window else None,
                        budget.seconds if budget else None)
        self.file.append(metric)  # refuses a figure that is not finite
        self.properties.extend(metric.junit_properties())
        try:
            import allure

            shown = f"{value_s:.2f} s" + (f" (window {window})" if window else "") + (
                f" (budget {budget.seconds:.1f} s)" if budget else "")
            allure.dynamic.parameter(name, shown)
            allure.attach(json.dumps(metric.to_json(), indent=1), name=f"metric {name}",
                          attachment_type=allure.attachment_type.JSON)
        except ImportError:
            pass
        return metric

    def record_observed(self, name: str, measure: Callable[[], float | None], *,
                        timeout_s: float = 10.0,
                        window: Window | Callable[[], Window] | None = None,
                        **data: object) -> Metric:
        """Record a figure the background watcher has to observe first: wait (bounded)
        until ``measure()`` finds it on the timeline (0.0 is a figure, None is not yet).
        A callable ``window`` is asked once the figure is there: a window that depends on
        how the figure was observed (detect_window with the polls' measured length)."""
        def observed() -> tuple[float] | NotYet:
            value = measure()
            return NotYet("not on the timeline yet") if value is None else (value,)

        (value,) = wait_until(f"the watcher to observe {name}", observed, timeout_s=timeout_s)
        return self.record(name, value, window=window() if callable(window) else window,
                           **data)


@pytest.fixture
def metrics(request: pytest.FixtureRequest) -> MetricsRecorder:
    """``metrics.record(name, seconds, window=..., budget=...)``: a figure of this test,
    written to --metrics-file, the Allure result, its JUnit properties and the summary
    table; ``record_observed`` waits (bounded) for a watcher to see it first."""
    from harness.repeat import repeat_count, repeat_of

    config = request.config
    return MetricsRecorder(request.module.__name__.rsplit(".", 1)[-1],
                           MetricsFile(config.getoption("metrics_file"), config.stash[RUN_ID]),
                           request.node.user_properties,
                           repeat_of(request.node.nodeid) if repeat_count(config) > 1 else None)


def pytest_terminal_summary(terminalreporter, exitstatus, config: pytest.Config) -> None:
    if hasattr(config, "workerinput"):
        return
    rows = MetricsFile(config.getoption("metrics_file"), config.stash[RUN_ID]).read(
        this_run_only=True)
    if not rows:
        return
    terminalreporter.section("pvechaos metrics")
    for line in metrics_table(rows):
        terminalreporter.write_line(line)
    terminalreporter.write_line(f"(written to {config.getoption('metrics_file')}, "
                                f"run {config.stash[RUN_ID]})")


def metrics_table(rows: list[Metric]) -> list[str]:
    """scenario, metric, measured, predicted window, budget, verdict: one line each."""
    table = [("scenario", "metric", "measured", "window", "budget", "verdict")]
    for m in rows:
        window = f"[{m.window_s[0]:.1f}, {m.window_s[1]:.1f}] s" if m.window_s else "-"
        budget = f"{m.budget_s:.1f} s" if m.budget_s is not None else "-"
        table.append((m.scenario, m.name, f"{m.value_s:.2f} s", window, budget, m.verdict))
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    return ["  ".join(cell.ljust(w) if i < 2 or i == 5 else cell.rjust(w)
                      for i, (cell, w) in enumerate(zip(row, widths, strict=True))).rstrip()
            for row in table]


# -- Allure: environment and categories --------------------------------------------------
_ENVIRONMENT = pytest.StashKey[dict]()


def record_environment(config: pytest.Config, facts: dict[str, str]) -> None:
    """Facts about the run for the report's environment (lab, versions, constants)."""
    config.stash.setdefault(_ENVIRONMENT, {}).update(facts)


def _git_revision(root: Path) -> str:
    import subprocess

    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"],
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 else "unknown"


def _static_environment(config: pytest.Config) -> dict[str, str]:
    facts = {"git.revision": _git_revision(config.rootpath)}
    for option, key in (("lab", "lab"), ("pve_flavour", "pve.flavour"),
                        ("timescale", "timescale"), ("recovery_budget", "recovery_budget_s")):
        try:
            value = config.getoption(option)
        except ValueError:  # an option of the lab plugin, absent without it
            continue
        facts[key] = f"{value:g}" if isinstance(value, float) else str(value)
    return facts


def write_allure_files(directory: Path, facts: dict[str, str]) -> None:
    """environment.properties (merged with what other xdist workers wrote) and
    categories.json in the Allure results directory."""
    import fcntl

    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / "environment.properties", "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        handle.seek(0)
        merged = dict(line.split("=", 1) for line in handle.read().splitlines()
                      if "=" in line)
        merged.update({k: v.replace("\n", " ") for k, v in facts.items()})
        handle.seek(0)
        handle.truncate()
        handle.write("".join(f"{k}={v}\n" for k, v in sorted(merged.items())))
    (directory / "categories.json").write_text(json.dumps(CATEGORIES, indent=1) + "\n")


def pytest_sessionfinish(session: pytest.Session) -> None:
    config = session.config
    directory = getattr(config.option, "allure_report_dir", None)
    controller = not hasattr(config, "workerinput")
    if controller:
        keep_trend(config, Path(directory) if directory else None)
    if not directory:
        return
    facts = config.stash.get(_ENVIRONMENT, {})
    if controller:
        facts = {**_static_environment(config), **facts}
    if facts:
        write_allure_files(Path(directory), facts)


def keep_trend(config: pytest.Config, alluredir: Path | None) -> None:
    """A run that measured something joins the history beside metrics.json
    (metrics-history.jsonl); the report gets the recovery figures across runs."""
    from harness.report import trends

    metrics_file = config.getoption("metrics_file")
    measured = MetricsFile(metrics_file, config.stash[RUN_ID]).read(this_run_only=True)
    if not measured:
        return
    setting = f"{config.getoption('lab', 'embedded')} lab, timescale {run_timescale(config)}"
    runs = trends.append_run(metrics_file.with_name("metrics-history.jsonl"),
                             config.stash[RUN_ID], _git_revision(config.rootpath), measured,
                             setting=setting)
    if alluredir is not None:
        trends.write_global_attachment(alluredir, trends.render(trends.comparable(runs)),
                                       "recovery time across runs")
