"""The test suite's own guard (``tests/conftest.py``): a test of another folder that a
worker runs after browser tests runs, though sync Playwright marks its loop as running."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CONFTEST = '''
import asyncio

import pytest

from tests.conftest import anyio_backend, playwrights_loop_put_aside  # noqa: F401


@pytest.fixture(scope="session")
def playwright_like():
    """What sync Playwright does while it lives: its loop marked as running."""
    loop = asyncio.new_event_loop()
    asyncio._set_running_loop(loop)
    yield loop
    assert asyncio._get_running_loop() is loop  # put back for its own teardown
    asyncio._set_running_loop(None)
    loop.close()
'''

BROWSER = '''
import asyncio


def test_page(playwright_like):
    assert asyncio._get_running_loop() is playwright_like
'''

OTHER = '''
import asyncio

import pytest


@pytest.mark.anyio
async def test_async_after_a_browser_test():
    await asyncio.sleep(0)


def test_asyncio_run_after_a_browser_test():
    asyncio.run(asyncio.sleep(0))


def test_leaves_a_loop_running():
    asyncio._set_running_loop(asyncio.new_event_loop())
'''


def test_tests_after_browser_tests_on_one_worker_run_and_a_leaked_loop_fails(
        tmp_path: Path) -> None:
    # Regression: with --dist worksteal a worker ran devmode tests after browser tests,
    # and sixteen failed ("Cannot run the event loop while another loop is running").
    (tmp_path / "tests" / "browser").mkdir(parents=True)
    (tmp_path / "tests" / "other").mkdir()
    (tmp_path / "conftest.py").write_text(CONFTEST)
    (tmp_path / "tests" / "browser" / "test_page.py").write_text(BROWSER)
    (tmp_path / "tests" / "other" / "test_after.py").write_text(OTHER)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider",
         "-q", "-rA", "tests/browser/test_page.py", "tests/other/test_after.py"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False)
    out = run.stdout
    assert "PASSED tests/browser/test_page.py::test_page" in out, out
    assert "PASSED tests/other/test_after.py::test_async_after_a_browser_test" in out, out
    assert "PASSED tests/other/test_after.py::test_asyncio_run_after_a_browser_test" in out, out
    assert "ERROR tests/other/test_after.py::test_leaves_a_loop_running" in out, out
    assert "left <_UnixSelectorEventLoop" in out and "set as the running loop" in out, out
    assert "1 error" in out and "4 passed" in out, out
