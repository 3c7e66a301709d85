"""The JavaScript client (``clients/js``): its types check with ``tsc``, and its
``node --test`` suite passes against real ``live serve`` processes that it starts
on free ports with this interpreter. ``make test`` installs its dev
dependencies with ``npm ci`` first."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "clients" / "js"


def _node_tool(name: str) -> str:
    found = shutil.which(name)
    if not found:
        pytest.fail(f"no {name} on the PATH: run .ci/install-services")
    if not (PACKAGE / "node_modules").is_dir():
        pytest.fail("clients/js has no node_modules: run `npm ci` in clients/js (make test does)")
    return found


def _run(command: list[str], *, timeout: float) -> None:
    env = {**os.environ, "LIVE_TEST_PYTHON": sys.executable}
    done = subprocess.run(
        command, cwd=PACKAGE, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert done.returncode == 0, f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}"


def test_types_check() -> None:
    tsc = "node_modules/typescript/bin/tsc"
    _run([_node_tool("node"), tsc, "--noEmit", "-p", "."], timeout=120)


def test_node_suite_against_a_real_server() -> None:
    _run([_node_tool("node"), "--test", "test/"], timeout=300)
