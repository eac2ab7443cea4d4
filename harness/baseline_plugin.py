"""``--baseline-save FILE`` and ``--verify-against FILE``: `pvechaos baseline` and `pvechaos
verify` (harness/verify.py) at the end of a pytest run, on this run's metrics file.

- ``--baseline-save FILE``: this run's figures, step outcomes, settings and versions
  become the baseline FILE.
- ``--verify-against FILE``: this run is judged against the baseline FILE: the verdict
  table ends the terminal report, the verdict is written as JSON beside the metrics file
  (``verdict.json``), the before/after picture goes to the Allure report (--alluredir) and
  beside the metrics file (``before-after.png``). A regression makes the run fail (exit 1)
  even when every test passed; a baseline of another setting (lab, node count,
  timescale) ends it as a usage error (exit 4) naming the difference.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from harness import options
from harness.errors import ConfigError

_LINES = pytest.StashKey[list]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("pvechaos")
    group.addoption("--baseline-save", default=None, type=Path, metavar="FILE",
                    help="at the end, store this run as a baseline (`pvechaos baseline`)")
    group.addoption("--verify-against", default=None, type=Path, metavar="FILE",
                    help="at the end, judge this run against a baseline (`pvechaos "
                         "verify`); a regression fails the run")


def pytest_configure(config: pytest.Config) -> None:
    """Both files are checked before any lab starts."""
    from harness.baseline import load_side

    save = config.getoption("baseline_save")
    if save is not None:
        options.writable_file("--baseline-save", save, "--baseline-save baseline.json")
    against = config.getoption("verify_against")
    if against is not None:
        try:
            load_side([against])
        except ConfigError as exc:
            options.refuse("--verify-against", str(against), str(exc),
                           "give a baseline `pvechaos baseline` or --baseline-save wrote")


def pytest_sessionfinish(session: pytest.Session) -> None:
    config = session.config
    save, against = config.getoption("baseline_save"), config.getoption("verify_against")
    if hasattr(config, "workerinput") or (save is None and against is None):
        return
    from harness import verify
    from harness.baseline import load_side, save_side
    from harness.compare import read_document
    from harness.plugin import RUN_ID

    metrics_file = Path(config.getoption("metrics_file"))
    lines: list[str] = config.stash.setdefault(_LINES, [])
    try:
        doc = read_document(metrics_file) if metrics_file.exists() else {}
        if doc.get("run") != config.stash[RUN_ID]:
            raise ConfigError(f"this run wrote nothing to {metrics_file}",
                              hint="run a story (scenarios/), which records figures and "
                                   "step outcomes")
        run = load_side([metrics_file])
        if save is not None:
            save_side(run, save)
            lines.append(f"baseline saved to {save} ({len(run.figures)} figures, "
                         f"{len(run.steps)} steps)")
        if against is None:
            return
        before = load_side([against])
        result = verify.verify(before, run)
    except ConfigError as exc:
        lines.append(f"error: {exc}")
        session.exitstatus = pytest.ExitCode.USAGE_ERROR
        return
    lines.extend(verify.table(result, before, run))
    png = metrics_file.with_name("before-after.png")
    verify.write_outputs(result, before, run, metrics_file.with_name("verdict.json"), png)
    lines.append(f"(verdict in {metrics_file.with_name('verdict.json')}, picture in {png})")
    alluredir = getattr(config.option, "allure_report_dir", None)
    if alluredir:
        from harness.report.trends import write_global_attachment

        write_global_attachment(Path(alluredir), png.read_bytes(), "before and after")
    if result.regression and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, exitstatus, config: pytest.Config) -> None:
    lines = config.stash.get(_LINES, [])
    if lines:
        terminalreporter.section("pvechaos baseline and verdict")
        for line in lines:
            terminalreporter.write_line(line)
