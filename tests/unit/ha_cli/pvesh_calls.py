"""`pvesh` called in-process, as the pvesh unit tests drive it."""

from __future__ import annotations

import json

from pvemu.cli import pvesh


def run(capsys, *argv):
    """pvesh's exit code, stdout and stderr for ``argv``."""
    code = pvesh.main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def get_json(capsys, path, *extra):
    """`pvesh get PATH --output-format json`, which must succeed, parsed."""
    code, out, err = run(capsys, "get", path, "--output-format", "json", *extra)
    assert (code, err) == (0, "")
    return json.loads(out)
