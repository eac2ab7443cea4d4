"""``--repeat N``: every story module runs N times, each time as a module of its own.

A figure measured once says little about a change; a baseline needs repeated samples. With
``--repeat N`` each test module file is collected as N modules, ``test_x.py[repeat1]`` to
``test_x.py[repeatN]`` (the repeat index is in every node id, e.g.
``scenarios/test_ha_story.py[repeat2]::test_power_cut``). Each copy is a module for
pytest: its module-scoped fixtures (the ``lab``, the ``cluster``, the ``timeline``, ...)
are set up for it and torn down after it, so each repetition starts on a fresh lab (the
embedded lab boots its formed ready state again, a lab with Capability.SNAPSHOT reverts to
it: lab/pytest_plugin.py's ``lab`` fixture, harness/formation.py) and a failed step skips
only the later steps of its own repetition (harness/plugin.py). harness/story_order.py
sees each copy as one story. Only story modules are repeated: the copies of a module
without ``@pytest.mark.story`` are dropped after collection: it runs once, as
``[repeat1]``.

pytest parses a module's own fixtures once per module object; a copy makes pytest parse
them again under its own node id (``RepeatedModule.collect``), so a story's own fixtures
are fresh per repetition too.
"""

from __future__ import annotations

import re

import pytest

from harness import options

_SUFFIX = re.compile(r"(?<=\.py)\[repeat(\d+)\](?=::|$)")  # a module's, not a parameter


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.getgroup("pvechaos").addoption(
        "--repeat", default="1", metavar="N",
        help="run every selected story module N times, each on a fresh lab (or its "
             "revert); figures and step outcomes carry the repeat index, for a baseline "
             "(`pvechaos baseline`) (default: %(default)s)")


def pytest_configure(config: pytest.Config) -> None:
    options.repeat(config.getoption("repeat"))  # refused before any lab starts


def repeat_count(config: pytest.Config) -> int:
    return options.repeat(config.getoption("repeat"))


def repeat_of(nodeid: str) -> int:
    """The repeat index (1..N) in a node id; 1 in a run without --repeat."""
    found = _SUFFIX.search(nodeid)
    return int(found.group(1)) if found else 1


def without_repeat(nodeid: str) -> str:
    """The node id as a run without --repeat names it (the same step in every repeat)."""
    return _SUFFIX.sub("", nodeid)


class RepeatedModule(pytest.Module):
    """One repetition of a test module: its fixtures are parsed under its own node id."""

    def collect(self):
        seen = self.session._fixturemanager._holderobjseen  # pytest parses a module once
        seen.discard(self.obj)
        seen.difference_update(v for v in vars(self.obj).values() if isinstance(v, type))
        return super().collect()


@pytest.hookimpl(wrapper=True)
def pytest_collect_file(file_path, parent: pytest.Collector):
    """Each test module becomes N RepeatedModules (no change without --repeat)."""
    result = yield
    count = repeat_count(parent.config)
    if count == 1:
        return result
    out = []
    for collector in result:
        if type(collector) is not pytest.Module:
            out.append(collector)
            continue
        out.extend(RepeatedModule.from_parent(
            parent, path=collector.path, name=f"{collector.name}[repeat{k}]",
            nodeid=f"{collector.nodeid}[repeat{k}]") for k in range(1, count + 1))
    return out


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Only stories repeat: the later copies of a module without the story mark go."""
    if repeat_count(config) == 1:
        return
    items[:] = [item for item in items if item.get_closest_marker("story") is not None
                or repeat_of(item.nodeid) == 1]
