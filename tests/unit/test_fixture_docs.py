"""`pytest --fixtures` shows what each of the plugin's fixtures is: none of them lacks a
docstring (the plugin is what teams write their own scenarios against)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PUBLIC = {"lab", "cluster", "clock", "timeline", "faults", "guest", "fleet", "probe", "meter",
          "metrics", "budget", "constants", "story_nodes", "quorum_plan", "quorum_watcher",
          "ha_watcher", "invariants", "settle", "resets", "require"}


def plugin_fixtures() -> dict[str, str]:
    """fixture name -> its docstring, for the fixtures of harness.* and lab.* modules."""
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "--fixtures", "-p", "no:cacheprovider",
         "scenarios/test_ha_story.py"], cwd=ROOT, capture_output=True, text=True,
        timeout=120).stdout
    docs: dict[str, str] = {}
    ours = False
    for block in re.split(r"\n(?=-+ fixtures defined from )", out):
        header = block.splitlines()[0]
        ours = bool(re.search(r"fixtures defined from (harness|lab)\.", header))
        if not ours:
            continue
        for name, doc in re.findall(r"^(\w+)(?: \[\w+ scope\])? -- \S+\n((?:    .*\n?)*)",
                                    block, re.M):
            docs[name] = doc.strip()
    return docs


def test_every_plugin_fixture_has_a_docstring():
    docs = plugin_fixtures()
    assert PUBLIC <= set(docs), f"missing from --fixtures: {sorted(PUBLIC - set(docs))}"
    bare = sorted(n for n, d in docs.items() if not d or "no docstring" in d)
    assert not bare, f"fixtures without a docstring: {bare}"
