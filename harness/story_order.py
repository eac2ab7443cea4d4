"""A story runs whole and in order: under xdist, under ``-k`` and node ids, or not at all.

A module marked ``@pytest.mark.story`` is one story; its tests are steps that build on the
earlier ones (harness/plugin.py skips the rest once one fails). This plugin keeps that true
whatever the command line asks:

- xdist: all steps of a module go to one worker. ``-n N`` alone (``--dist load``) and
  ``--dist loadscope`` (which splits a module's classes) become ``--dist loadfile``;
  under ``loadgroup`` all steps of a story share its groups. Modes that split a module or
  repeat it on every worker (``each``, ``worksteal``) are refused.
- selection: a step selected without its earlier steps (``-k``, a node id, ``--lf``) gets
  them back, in order: they are its setup; a story's steps run in their order also under
  ``--ff``. Budget steps are checks, not setup, so they are
  not added back for a later step. An earlier step left out on purpose (``-m``,
  ``--deselect``) cannot be added back: the later steps are skipped naming it.
- random-ordering plugins (pytest-randomly, pytest-random-order, pytest-reverse) would
  shuffle the steps: they are refused before anything starts.
"""

from __future__ import annotations

import pytest

from harness import options

# --dist modes that keep every test of a module on one worker
KEEPS_A_MODULE = frozenset({"loadfile", "loadgroup"})
# loadscope groups a module's functions, but a class's methods by class: a story written
# as classes would be split, so it runs as loadfile (which keeps all loadscope keeps)
AS_LOADFILE = frozenset({"load", "loadscope"})
_ADDED = pytest.StashKey[list]()  # node ids of the steps added back, for the terminal
_CHILDREN = pytest.StashKey[dict]()  # each module's and class's collected children
_DIST_NOTE = pytest.StashKey[str]()  # how the --dist mode was changed, for the header
_WORKER_ADDED = pytest.StashKey[list]()  # what the xdist workers added back (controller)


def story_dist(dist: str | None) -> str | None:
    """The --dist mode that keeps each story module on one worker, from the one given."""
    if dist is None or dist == "no" or dist in KEEPS_A_MODULE:
        return dist
    if dist in AS_LOADFILE:
        return "loadfile"
    what = "runs every story on every worker" if dist == "each" else \
        "hands one story's steps to different workers"
    options.refuse("--dist", dist, f"{what}, but a story's steps build on each other and "
                   "must run in order on one worker", "use --dist loadfile (or loadgroup, "
                   "loadscope; -n N alone gives loadfile)")


def reordering_plugin(config: pytest.Config) -> tuple[str, str] | None:
    """(the plugin, how to turn it off) for an active plugin that reorders tests."""
    has = config.pluginmanager.has_plugin

    def opt(name: str, default: object = None) -> object:
        return config.getoption(name, default)

    if has("randomly") and opt("randomly_reorganize", True):
        return "pytest-randomly", "-p no:randomly (or --randomly-dont-reorganize)"
    if has("random_order"):
        # pytest-random-order shuffles when --random-order, or a bucket or seed, is given
        # (its defaults carry a "default:" prefix); bucket "none" keeps the order
        bucket, seed = str(opt("random_order_bucket", "")), str(opt("random_order_seed", ""))
        given = opt("random_order_enabled") or not bucket.startswith("default:") or \
            not seed.startswith("default:")
        if given and bucket.removeprefix("default:") != "none":
            return "pytest-random-order", ("-p no:random_order (or leave out --random-order "
                                           "and --random-order-bucket)")
    if has("reverse") and opt("reverse"):
        return "pytest-reverse", "leave out --reverse (or -p no:reverse)"
    return None


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    """Registers the selection wrapper (last: after cacheprovider's), refuses reordering
    plugins, and makes the xdist mode keep a story on one worker (the controller's
    config.option.dist, after xdist's pytest_cmdline_main turned -n into "load" and before
    its scheduler and workers read it at session start)."""
    config.stash[_ADDED] = []
    config.pluginmanager.register(Selection(), "pvechaos-story-selection")
    found = reordering_plugin(config)
    if found:
        plugin, fix = found
        raise pytest.UsageError(f"{plugin} reorders tests, but a story's steps build on "
                                f"each other and must run in their order\n  fix: {fix}")
    if hasattr(config, "workerinput") or not getattr(config.option, "tx", None):
        return  # a worker, or no xdist workers (-n 0, no -n, xdist not loaded)
    given = config.option.dist
    config.option.dist = story_dist(given)
    if given != config.option.dist:
        config.stash[_DIST_NOTE] = f"--dist {given} became --dist {config.option.dist}"


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node) -> None:
    """xdist resets a worker's --dist to "no": the worker learns the mode from here."""
    node.workerinput["pvechaos_dist"] = node.config.option.dist


def dist_mode(config: pytest.Config) -> str | None:
    """The run's xdist mode, on the controller and on a worker alike."""
    worker = getattr(config, "workerinput", None)
    if worker is not None:
        return worker.get("pvechaos_dist")
    return getattr(config.option, "dist", None)


def pytest_report_header(config: pytest.Config) -> list[str]:
    note = config.stash.get(_DIST_NOTE, None)
    return [f"pvechaos: {note} (a story's steps run on one worker)"] if note else []


def is_step(item: pytest.Item) -> bool:
    return item.get_closest_marker("story") is not None


def is_budget(item: pytest.Item) -> bool:
    return item.get_closest_marker("budget") is not None


def story_of(item: pytest.Item) -> pytest.Module | None:
    return item.getparent(pytest.Module) if is_step(item) else None


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector: pytest.Collector):
    """Keeps what each module and class collected, before a selection narrows it (a node
    id picks from it, --lf's wrapper, outside this one, filters it in place)."""
    report = yield
    if isinstance(collector, pytest.Module | pytest.Class) and report.passed:
        collector.config.stash.setdefault(_CHILDREN, {})[collector] = list(report.result)
    return report


def all_steps(config: pytest.Config, module: pytest.Module) -> list[pytest.Item] | None:
    """Every item of a story module in collection order, also when a node id or --lf
    picked some, or None when its collection was not seen."""
    children = config.stash.get(_CHILDREN, {})

    def walk(node: pytest.Collector) -> list[pytest.Item] | None:
        found: list[pytest.Item] = []
        for child in children.get(node, None) or ():
            if isinstance(child, pytest.Item):
                found.append(child)
                continue
            inner = walk(child)
            if inner is None:
                return None
            found.extend(inner)
        return found if node in children else None

    return walk(module)


class Selection:
    """The selection wrapper, registered at configure time after cacheprovider's --lf and
    --ff wrappers so that it wraps theirs too (wrappers registered later run outside)."""

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_collection_modifyitems(self, config: pytest.Config, items: list[pytest.Item]):
        return (yield from select(config, items))


def select(config: pytest.Config, items: list[pytest.Item]):
    """Before the selection (-k, -m, --deselect, --lf, xdist's loadgroup), each story
    module is made whole; after it, the steps the chosen steps need come back and the
    rest goes."""
    chosen = list(items)
    whole = complete_stories(config, chosen)
    if dist_mode(config) == "loadgroup":
        one_group_per_story(whole)
    items[:] = whole
    result = yield
    original = set(chosen)
    kept = [item for item in items if item in original]
    final, added = restore(whole, kept, config)
    items[:] = final
    config.stash[_ADDED].extend(shown_id(item) for item in added)
    if _CHILDREN in config.stash:  # collection is over
        del config.stash[_CHILDREN]
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    deselected = getattr(reporter, "stats", {}).get("deselected", [])
    # the added steps run after all; the ones this made whole were never collected
    back = set(added)
    deselected[:] = [item for item in deselected if item in original and item not in back]
    return result


def one_group_per_story(items: list[pytest.Item]) -> None:
    """loadgroup: every step of a story gets the same xdist groups: the story's own and
    any a step carries (xdist names an item's group after all its xdist_group marks)."""
    names: dict[pytest.Module, set[str]] = {}
    for item in items:
        module = story_of(item)
        if module is not None:
            names.setdefault(module, {module.nodeid}).update(group_names(item))
    for item in items:
        module = story_of(item)
        if module is not None:
            for name in sorted(names[module] - group_names(item)):
                item.add_marker(pytest.mark.xdist_group(name))


def shown_id(item: pytest.Item) -> str:
    """The node id, without the group suffix xdist's loadgroup gives it on a worker."""
    groups = group_names(item)
    return item.nodeid.removesuffix("@" + "_".join(sorted(groups))) if groups else item.nodeid


def group_names(item: pytest.Item) -> set[str]:
    """The xdist groups an item is in, read as xdist reads them."""
    return {str(m.args[0] if m.args else m.kwargs.get("name", "default"))
            for m in item.iter_markers("xdist_group")}


def complete_stories(config: pytest.Config, items: list[pytest.Item]) -> list[pytest.Item]:
    """The items, with the steps a node id left out put back in their place."""
    whole: list[pytest.Item] = []
    done: set[pytest.Module] = set()
    present = set(items)
    for item in items:
        module = story_of(item)
        if module is None:
            whole.append(item)
            continue
        if module in done:
            continue
        done.add(module)
        steps = all_steps(config, module) or []
        if item not in steps:  # not collected the usual way: keep what was selected
            whole.extend(i for i in items if story_of(i) is module)
            continue
        whole.extend(i for i in steps if i in present or is_step(i))
    return whole


def excluded_by_user(item: pytest.Item, config: pytest.Config) -> str | None:
    """Why the user left this item out on purpose (-m, --deselect), or None."""
    prefixes = tuple(config.getoption("deselect", None) or ())
    if prefixes and item.nodeid.startswith(prefixes):
        return "--deselect"
    markexpr = config.option.markexpr
    if markexpr:  # pytest's own -m matching (no public API for one item)
        from _pytest.mark import MarkMatcher
        from _pytest.mark.expression import Expression

        matcher = MarkMatcher.from_markers(item.iter_markers())
        if not Expression.compile(markexpr).evaluate(matcher):
            return f"-m {markexpr!r}"
    return None


def restore(whole: list[pytest.Item], kept: list[pytest.Item],
            config: pytest.Config) -> tuple[list[pytest.Item], list[pytest.Item]]:
    """The items to run: the kept ones, each story's in its own order with the earlier
    non-budget steps its chosen steps need; and which steps were added back. A needed
    step the user excluded skips the chosen steps after it, naming it."""
    kept_set = set(kept)
    by_story: dict[pytest.Module, list[pytest.Item]] = {}
    for item in whole:
        module = story_of(item)
        if module is not None:
            by_story.setdefault(module, []).append(item)
    final: list[pytest.Item] = []
    added: list[pytest.Item] = []
    placed: set[pytest.Module] = set()
    for item in kept:
        module = story_of(item)
        if module is None:
            final.append(item)
        elif module not in placed:
            placed.add(module)
            run, back = story_run(by_story[module], kept_set, config)
            final.extend(run)
            added.extend(back)
    return final, added


def story_run(steps: list[pytest.Item], kept: set[pytest.Item],
              config: pytest.Config) -> tuple[list[pytest.Item], list[pytest.Item]]:
    """One story's steps to run, in order, and the ones among them added back."""
    last = max(i for i, step in enumerate(steps) if step in kept)
    run: list[pytest.Item] = []
    added: list[pytest.Item] = []
    missing: str | None = None  # the first needed step that cannot come back
    for step in steps[:last + 1]:
        if step in kept:
            if missing is not None:
                step.add_marker(pytest.mark.skip(reason=missing))
            run.append(step)
        elif not is_budget(step) and missing is None:
            why = excluded_by_user(step, config)
            if why is None:
                run.append(step)
                added.append(step)
            else:  # the steps after it cannot run: none is added back
                missing = (f"needs the earlier story step {step.name}, which {why} left "
                           f"out; select it too (its steps build on each other)")
    return run, added


def pytest_report_collectionfinish(config: pytest.Config) -> list[str]:
    return added_lines(config.stash.get(_ADDED, []))


def added_lines(node_ids: list[str]) -> list[str]:
    if not node_ids:
        return []
    return ["pvechaos: earlier story steps added back (a selected step needs them):",
            *(f"  {node_id}" for node_id in node_ids)]


def pytest_sessionfinish(session: pytest.Session) -> None:
    """xdist workers hand the steps they added back to the controller."""
    output = getattr(session.config, "workeroutput", None)
    if output is not None:
        output["pvechaos_added"] = session.config.stash.get(_ADDED, [])


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error) -> None:
    seen = node.config.stash.setdefault(_WORKER_ADDED, [])
    for node_id in getattr(node, "workeroutput", {}).get("pvechaos_added", []):
        if node_id not in seen:  # every worker collects (and adds back) the same
            seen.append(node_id)


def pytest_terminal_summary(terminalreporter, exitstatus, config: pytest.Config) -> None:
    for line in added_lines(config.stash.get(_WORKER_ADDED, [])):
        terminalreporter.write_line(line)
