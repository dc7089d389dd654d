"""The container image (Dockerfile): built and run where Docker is, and its contents
checked everywhere: the wheel it installs, in a clean virtual environment outside the
checkout, runs the image's own build step and entry command and serves the panel."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import venv
from pathlib import Path

import httpx
import pytest

from tests.checks import wait_until
from tests.factories import CLIENT_ID, ORG, SECRET
from tests.serve_process import free_port, running_serve

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"


def instructions() -> list[tuple[str, str]]:
    """The Dockerfile's instructions, continuation lines joined: (KEYWORD, rest)."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    found = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            found.append((keyword.upper(), rest.strip()))
    return found


def image_env(prefix: Path) -> dict[str, str]:
    """The ``ENV`` of the image, with its install prefix moved to ``prefix``."""
    env: dict[str, str] = {}
    for keyword, rest in instructions():
        if keyword == "ENV":
            for pair in shlex.split(rest):
                name, _, value = pair.partition("=")
                env[name] = value.replace("/opt/assist-panel", str(prefix))
    return env


def docker_available() -> bool:
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=20
                              ).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def test_the_image_runs_as_a_user_with_a_health_check_and_the_server_as_its_process() -> None:
    found = dict(instructions())
    assert found["USER"] == "10001"  # not root
    assert "/healthz" in found["HEALTHCHECK"]
    assert json.loads(found["ENTRYPOINT"]) == ["assist-panel"]  # exec form: gets SIGTERM
    assert json.loads(found["CMD"]) == ["serve"]
    assert found["STOPSIGNAL"] == "SIGTERM"


@pytest.fixture(scope="module")
def clean_install(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel the image installs, in a virtual environment of its own. Its
    dependencies come from the suite's environment (tests touch no network)."""
    work = tmp_path_factory.mktemp("image")
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "--no-index", "-w", str(work / "dist"), str(ROOT)], capture_output=True, text=True)
    assert built.returncode == 0, built.stderr
    prefix = work / "opt" / "assist-panel"
    venv.create(prefix, with_pip=False)
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    site = prefix / "lib" / version / "site-packages"
    wheel = next((work / "dist").glob("assist_panel-*.whl"))
    installed = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(prefix / "bin" / "python"), "install",
         "--no-deps", "--no-index", str(wheel)], capture_output=True, text=True)
    assert installed.returncode == 0, installed.stderr
    suite_site = Path(next(p for p in sys.path if p.endswith("site-packages")))
    (site / "zz-dependencies.pth").write_text(f"{suite_site}\n")
    return prefix


def test_the_wheel_carries_the_page_the_sample_and_the_manifest(clean_install: Path) -> None:
    python = str(clean_install / "bin" / "python")
    shipped = subprocess.run(
        [python, "-c", "from server import paths; print(paths.frontend_dir()); "
         "print(paths.sample_kb_dir()); print(paths.manifest_dir())"],
        capture_output=True, text=True, cwd="/", check=True).stdout.split()
    for path in map(Path, shipped):
        assert path.is_dir() and str(clean_install) in str(path), path  # not the checkout
    assert not list(Path(shipped[0]).rglob("node_modules"))


def test_the_wheel_ships_the_server_not_the_benchmarks_or_the_tests(clean_install: Path
                                                                    ) -> None:
    python = str(clean_install / "bin" / "python")
    for package in ("bench", "tests"):
        found = subprocess.run([python, "-c", f"import {package}"], capture_output=True,
                               text=True, cwd="/")
        assert found.returncode != 0 and "No module named" in found.stderr, package
    assert subprocess.run([python, "-c", "import server.app"], cwd="/").returncode == 0


def test_the_image_build_step_and_entry_command_serve_the_panel(clean_install: Path,
                                                                tmp_path: Path) -> None:
    home = tmp_path / "var" / "lib" / "assist-panel"
    home.mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASSIST_")}
    env.update(image_env(clean_install))
    env["ASSIST_KB_PATH"] = env["ASSIST_KB_PATH"].replace("/var/lib/assist-panel", str(home))
    env["PATH"] = f"{clean_install / 'bin'}:{os.environ['PATH']}"
    # The image's build step (importing the sample knowledge base), as written.
    build = next(rest for keyword, rest in instructions()
                 if keyword == "RUN" and rest.startswith("assist-panel"))
    done = subprocess.run(["sh", "-c", build.replace("/var/lib/assist-panel", str(home))],
                          env=env, cwd=home, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    # Then its entry command, with what a deployment must add.
    port = free_port()
    env.update({"ASSIST_HOST": "127.0.0.1", "ASSIST_PORT": str(port),
                "ASSIST_SESSION_SECRET": SECRET, "ASSIST_ALLOWED_ORGS": ORG,
                "ASSIST_OAUTH_CLIENT_ID": CLIENT_ID, "PYTHONUNBUFFERED": "1"})
    command = json.loads(dict(instructions())["ENTRYPOINT"]) + json.loads(
        dict(instructions())["CMD"])
    assert command[:2] == ["assist-panel", "serve"]
    with running_serve(command[2:], env, executable=str(clean_install / "bin" / command[0]),
                       cwd=home) as server:
        server.wait_for("Uvicorn running on")
        ready = httpx.get(f"{server.url}/readyz").json()
        assert ready["status"] == "ready" and ready["articles"] >= 40
        page = httpx.get(f"{server.url}/static/panel/main.js")
        assert page.status_code == 200 and "import" in page.text
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(timeout=30) in (0, -signal.SIGTERM)


@pytest.mark.skipif(not docker_available(),
                    reason="no Docker daemon on this machine: the image is checked through "
                           "its wheel and entry command instead (the tests above)")
def test_the_image_builds_and_answers_its_health_check(tmp_path: Path) -> None:
    tag = f"assist-panel-test:{os.getpid()}"
    subprocess.run(["docker", "build", "-t", tag, str(ROOT)], check=True, timeout=900)
    port = free_port()
    container = subprocess.run(
        ["docker", "run", "-d", "--rm", "-p", f"127.0.0.1:{port}:8000",
         "-e", f"ASSIST_SESSION_SECRET={SECRET}", "-e", f"ASSIST_ALLOWED_ORGS={ORG}",
         "-e", f"ASSIST_OAUTH_CLIENT_ID={CLIENT_ID}", tag],
        check=True, capture_output=True, text=True).stdout.strip()
    try:
        def healthy() -> bool:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(healthy, timeout=60, message="the container never became ready")
        stopped = subprocess.run(["docker", "stop", "-t", "20", container],
                                 capture_output=True, timeout=60)
        assert stopped.returncode == 0
    finally:
        subprocess.run(["docker", "rm", "-f", container], capture_output=True)
        subprocess.run(["docker", "rmi", "-f", tag], capture_output=True)
