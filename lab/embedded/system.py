"""Running host commands for the embedded lab, bounded and with readable failures."""

from __future__ import annotations

import subprocess

from harness.errors import LabError


def sh(*argv: str, timeout_s: float = 15.0, check: bool = True,
       input_text: str | None = None) -> subprocess.CompletedProcess[str]:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s,
                              input=input_text)
    except FileNotFoundError as exc:
        raise LabError(f"`{argv[0]}` is not installed",
                       hint="run the README's setup command (bash .ci/setup)") from exc
    except subprocess.TimeoutExpired as exc:
        raise LabError(f"`{' '.join(argv)}` did not finish within {timeout_s} s") from exc
    if check and proc.returncode != 0:
        raise LabError(f"`{' '.join(argv)}` failed ({proc.returncode}): "
                       f"{(proc.stderr or proc.stdout).strip()}")
    return proc
