"""This repository's composition root: its test runs use the pvechaos pytest plugin
(lab/pytest_plugin.py, where harness/ and lab/ meet: options, the ``lab`` fixture, and
through it the harness's plugin and public fixtures).

An installed pvechaos registers the same plugin by its ``pytest11`` entry point (named
after the module, so naming it here too registers it once); a checkout that was never
installed gets it from here.
"""

pytest_plugins = ["lab.pytest_plugin"]
