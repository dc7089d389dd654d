"""The page's pure logic, unit-tested with ``node --test`` (frontend/tests/), run here so
that the README's one test command runs them too."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

FRONTEND = Path(__file__).resolve().parents[2] / "frontend"


def test_page_logic_unit_tests_pass() -> None:
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is missing: run scripts/test, which installs Debian's nodejs")
    tests = sorted(str(p.relative_to(FRONTEND)) for p in (FRONTEND / "tests").glob("*.test.js"))
    assert tests, "no page unit tests found"
    result = subprocess.run([node, "--test", *tests], cwd=FRONTEND, capture_output=True,
                            text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "# fail 0" in result.stdout
