#!/usr/bin/env python3
"""Test the declared lower bounds: install every runtime dependency at exactly its floor in a second
virtualenv (``.venv-min``) and run there the tests whose code calls the dependencies' APIs: the
``unit`` and ``integration`` tiers plus the page tests marked ``floors`` (the ones a floor was raised
for, e.g. ``AppTest.data_editor``). Page rendering, browser and soak tests run in the main pass only.

``requirements.txt`` is the single source: each ``name>=X`` becomes ``name==X``; any other specifier on
the line (``==``, ``<``, ``!=``) is kept as written. The pins go to pip as a *constraints* file next to
``requirements-dev.txt``, so the test tools stay at their normal versions and transitive dependencies
float to whatever the resolver picks for the pinned set. pip's resolver fails the install when the
floors cannot be installed together (e.g. a pandas floor that needs a newer numpy than numpy's floor).

Usage (from anywhere): ``python3 .ci/min_versions.py [install|test] [extra pytest args]``: ``install``
only builds the virtualenv (CI does it while the main suite runs), ``test`` only runs the tests in
it, neither does both. Exit code: pip's when the install fails, else pytest's (5, nothing collected,
is passed on as a failure too).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENV = ROOT / ".venv-min"
REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?\s*(.*)$")


def floor_pins(requirements: str) -> list[str]:
    """The constraint lines for a requirements.txt text: ``>=X`` becomes ``==X``, other specifiers stay.

    Comments, blank lines and pip options (``-r``, ``--index-url``) are skipped. Raises ValueError for a
    runtime requirement without a ``>=`` or ``==`` bound: an open-ended requirement has no floor to test.
    """
    pins = []
    for raw in requirements.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        match = REQUIREMENT.match(line)
        if match is None:
            raise ValueError(f"cannot parse requirement: {raw!r}")
        name, _extras, spec = match.groups()
        parts = [p.strip() for p in spec.split(";", 1)[0].split(",") if p.strip()]
        if not any(p.startswith((">=", "==")) for p in parts):
            raise ValueError(f"{name} declares no lower bound (>= or ==): {raw!r}")
        pinned = ["==" + p[2:].strip() if p.startswith(">=") else p for p in parts]
        pins.append(name + ",".join(pinned))
    return pins


def run(*cmd: str | Path) -> None:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    subprocess.run([str(c) for c in cmd], check=True, cwd=ROOT)


#: The tests run at the floors (see the module docstring).
SELECTION = "unit or integration or floors"


def install() -> int:
    """Build ``.venv-min`` with every runtime floor pinned; pip's exit code (0 when it worked)."""
    started = time.monotonic()
    pins = floor_pins((ROOT / "requirements.txt").read_text(encoding="utf-8"))
    print("== min-versions: runtime dependencies at their declared floors")
    for pin in pins:
        print("   " + pin)
    try:
        # A fresh venv each time: packages left over from an earlier run must not stand in for the resolver.
        run(sys.executable, "-m", "venv", "--clear", VENV)
        constraints = VENV / "min-constraints.txt"
        constraints.write_text("\n".join(pins) + "\n", encoding="utf-8")
        python = VENV / "bin" / "python"
        run(python, "-m", "pip", "install", "-q", "--upgrade", "pip")
        run(python, "-m", "pip", "install", "-q", "-r", "requirements-dev.txt", "-c", constraints)
        run(python, "-m", "pip", "check")
    except subprocess.CalledProcessError as exc:
        print(f"== min-versions: install FAILED ({exc.returncode}) after {time.monotonic() - started:.0f} s")
        return exc.returncode or 1
    print(f"== min-versions: installed in {time.monotonic() - started:.0f} s")
    return 0


def test(pytest_args: list[str]) -> int:
    """Run the floors selection in ``.venv-min``; pytest's exit code."""
    started = time.monotonic()
    python = VENV / "bin" / "python"
    env = dict(os.environ, VIRTUAL_ENV=str(VENV), PATH=f"{VENV / 'bin'}{os.pathsep}{os.environ['PATH']}")
    env.pop("PYTHONHOME", None)
    cmd = [str(python), "-m", "pytest", "-m", SELECTION, *pytest_args]
    print("+", " ".join(cmd), flush=True)
    status = subprocess.run(cmd, cwd=ROOT, env=env).returncode
    print(f"== min-versions: pytest exit {status}; tests {time.monotonic() - started:.0f} s")
    return status


def main(args: list[str]) -> int:
    if args[:1] == ["install"]:
        return install()
    if args[:1] == ["test"]:
        return test(args[1:])
    return install() or test(args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
