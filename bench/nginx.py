"""Debian's nginx in front of panel processes, with the configuration docs/deploy.md gives
(``deploy/nginx/assist-panel.conf``): only its upstream addresses, its listen address
and its certificate paths are replaced, and TLS ends on a throwaway self-signed
certificate made with ``openssl``. The scale benchmark measures through it and the
deployment tests (tests/deploy/test_nginx.py) run it in front of two replicas.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONF = ROOT / "deploy" / "nginx" / "assist-panel.conf"
_UPSTREAM = re.compile(r"^(\s*)server 10\.0\.0\.\d+:8000( [^\n]*)\n", re.M)


class NginxMissing(RuntimeError):
    """Debian's nginx is not installed (``scripts/setup --test`` installs it)."""


def nginx_binary() -> str:
    """The nginx executable; NginxMissing when there is none."""
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(binary).exists():
        raise NginxMissing("nginx is missing: run scripts/test, which installs Debian's nginx")
    return binary


def certificate(workdir: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (a day long) and its key."""
    cert, key = workdir / "tls.crt", workdir / "tls.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return cert, key


def site_config(upstreams: list[int], listen: int, cert: Path, key: Path) -> str:
    """The shipped configuration with its upstreams on these loopback ports, listening
    on ``127.0.0.1:listen``, with this certificate: nothing else changed."""
    text = CONF.read_text()
    found = _UPSTREAM.findall(text)
    if len(found) != 2 or not upstreams:
        raise ValueError(f"{CONF} no longer has its two example upstream servers")
    indent, params = found[0]
    servers = "".join(f"{indent}server 127.0.0.1:{port}{params}\n" for port in upstreams)
    text = _UPSTREAM.sub("", text, count=1)
    text = _UPSTREAM.sub(lambda _: servers, text, count=1)
    replacements = [
        (r"listen 443 ssl http2;", f"listen 127.0.0.1:{listen} ssl http2;"),
        (r"/etc/nginx/tls/assist\.example\.com\.crt", str(cert)),
        (r"/etc/nginx/tls/assist\.example\.com\.key", str(key)),
    ]
    for pattern, value in replacements:
        text, count = re.subn(pattern, value, text)
        if count != 1:
            raise ValueError(f"{CONF} no longer matches {pattern!r}")
    return text


@contextlib.contextmanager
def running_nginx(workdir: Path, site: str, port: int, *, workers: int = 1,
                  connections: int = 512) -> Iterator[subprocess.Popen[str]]:
    """Debian's nginx in the foreground with ``site`` in its http block, until it
    accepts on ``port``; stopped (SIGTERM) when the block ends."""
    binary = nginx_binary()
    (workdir / "site.conf").write_text(site)
    main = "\n".join([
        "user root;" if os.geteuid() == 0 else "",
        "daemon off;", f"worker_processes {workers};", f"pid {workdir}/nginx.pid;",
        "error_log stderr warn;", f"events {{ worker_connections {connections}; }}",
        "http {", "  access_log off;",
        *(f"  {kind}_temp_path {workdir}/{kind};"
          for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")),
        f"  include {workdir}/site.conf;", "}", ""])
    (workdir / "nginx.conf").write_text(main)
    command = [binary, "-p", str(workdir), "-c", str(workdir / "nginx.conf")]
    checked = subprocess.run([*command, "-t"], capture_output=True, text=True)
    if checked.returncode != 0:
        raise RuntimeError(f"nginx refused the configuration:\n{checked.stderr}")
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True)
    try:
        # nginx prints nothing when it is ready: its port accepting is the event.
        deadline = time.monotonic() + 20
        while True:
            if process.poll() is not None:
                output = process.stdout.read() if process.stdout else ""
                raise RuntimeError(f"nginx exited at start:\n{output}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("nginx did not start listening within 20 s") from None
                time.sleep(0.02)
        yield process
    finally:
        process.terminate()
        process.wait(timeout=10)
