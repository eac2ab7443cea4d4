"""The lab-agnostic pytest plugin: stories, metrics, summary, and clean interruption.

- ``@pytest.mark.story``: the tests of a module are the ordered steps of one story; once
  a step fails, the later steps are skipped with the reason.
- ``metrics`` fixture: records figures into ``--metrics-file`` (reports/metrics.json) and
  the Allure results; a compact table ends the terminal report.
- SIGTERM is turned into KeyboardInterrupt so fixtures tear labs down.
"""

from __future__ import annotations

import json
import signal
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from harness.metrics import Metric, MetricsFile
from harness.waits import NotYet, wait_until

_FAILED_STEP = pytest.StashKey[dict]()
_RUN_ID = pytest.StashKey[str]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("pvechaos")
    group.addoption("--metrics-file", default="reports/metrics.json", type=Path,
                    help="where measured figures are written (default: %(default)s)")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "story: the module's tests are ordered steps of one "
                                       "story; a failed step skips the rest")
    config.stash[_FAILED_STEP] = {}
    if threading_main():
        signal.signal(signal.SIGTERM, _raise_interrupt)
    worker = getattr(config, "workerinput", None)
    config.stash[_RUN_ID] = worker["pvechaos_run"] if worker else uuid.uuid4().hex[:12]


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node) -> None:
    """xdist: every worker writes its metrics under the controller's run id."""
    node.workerinput["pvechaos_run"] = node.config.stash[_RUN_ID]


def threading_main() -> bool:
    import threading
    return threading.current_thread() is threading.main_thread()


def _raise_interrupt(signum, frame) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("story") is None:
        return
    failed = item.config.stash[_FAILED_STEP].get(item.module.__name__)
    if failed:
        pytest.skip(f"an earlier step of this story failed ({failed}); "
                    "the story cannot go on from an unknown state")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call):
    report = yield
    if item.get_closest_marker("story") is not None and report.failed:
        item.config.stash[_FAILED_STEP].setdefault(item.module.__name__, item.name)
    return report


class MetricsRecorder:
    def __init__(self, scenario: str, file: MetricsFile) -> None:
        self.scenario, self.file = scenario, file

    def record(self, name: str, value_s: float | None, **data: object) -> Metric:
        if value_s is None:
            raise AssertionError(f"metric {name!r} could not be measured: the timeline has "
                                 "no matching observation")
        metric = Metric(self.scenario, name, value_s, data)
        self.file.append(metric)
        try:
            import allure

            allure.dynamic.parameter(name, f"{value_s:.2f} s")
            allure.attach(json.dumps(metric.to_json(), indent=1), name=f"metric {name}",
                          attachment_type=allure.attachment_type.JSON)
        except ImportError:
            pass
        return metric

    def record_observed(self, name: str, measure: Callable[[], float | None], *,
                        timeout_s: float = 10.0, **data: object) -> Metric:
        """Record a figure the background watcher has to observe first: wait (bounded)
        until ``measure()`` finds it on the timeline (0.0 is a figure, None is not yet)."""
        def observed() -> tuple[float] | NotYet:
            value = measure()
            return NotYet("not on the timeline yet") if value is None else (value,)

        (value,) = wait_until(f"the watcher to observe {name}", observed, timeout_s=timeout_s)
        return self.record(name, value, **data)


@pytest.fixture
def metrics(request: pytest.FixtureRequest) -> MetricsRecorder:
    config = request.config
    return MetricsRecorder(request.module.__name__.rsplit(".", 1)[-1],
                           MetricsFile(config.getoption("metrics_file"), config.stash[_RUN_ID]))


def pytest_terminal_summary(terminalreporter, exitstatus, config: pytest.Config) -> None:
    if hasattr(config, "workerinput"):
        return
    rows = MetricsFile(config.getoption("metrics_file"), config.stash[_RUN_ID]).read(
        this_run_only=True)
    if not rows:
        return
    terminalreporter.section("pvechaos metrics")
    width = max(len(f"{m.scenario}  {m.name}") for m in rows)
    for m in rows:
        label = f"{m.scenario}  {m.name}"
        terminalreporter.write_line(f"{label:<{width}}  {m.value_s:8.2f} s")
    terminalreporter.write_line(f"(written to {config.getoption('metrics_file')}, "
                                f"run {config.stash[_RUN_ID]})")
